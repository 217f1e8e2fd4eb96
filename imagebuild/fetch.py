"""Getting bytes from http(s):// and file:// URLs, and the content-addressed local cache.

Only the application layer calls this module; resolvers never do I/O.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from imagebuild.errors import RepositoryError
from imagebuild.fsutil import write_atomic

# up to the last "@" of the authority: a password may itself contain "@" (urlsplit splits there too)
_USERINFO = re.compile(r"//[^/?#\s]*@")


def redact(url: str) -> str:
    """The URL as it may appear in logs, errors and outputs: without user:password@."""
    return _USERINFO.sub("//", url)


CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = float(os.environ.get("IMAGEBUILD_HTTP_TIMEOUT", "60"))  # between two bytes, not for a whole body
ATTEMPTS = 4  # per URL: the first request and three retries, also when the body was already streaming
BACKOFF = 0.5  # seconds before the first retry, doubled for each next one
RETRY_AFTER_MAX = 30.0  # a server's Retry-After is honoured up to this
MAX_BODY = int(os.environ.get("IMAGEBUILD_MAX_DOWNLOAD", str(4 << 30)))  # a larger body is refused, not read
_CHUNK = 1 << 20
_RETRY_STATUS = (429, 500, 502, 503, 504)


_meter: Callable[[int], None] | None = None


@contextlib.contextmanager
def metered(callback: Callable[[int], None] | None) -> Iterator[None]:
    """Within this block, every byte received (by any fetch or download) is reported to `callback` (a retry
    takes back what its failed attempt had reported)."""
    global _meter
    before, _meter = _meter, callback
    try:
        yield
    finally:
        _meter = before


class NotFound(RepositoryError):
    """The URL does not exist (404 / missing file); callers may fall back to another name."""


def fetch(url: str, timeout: float = READ_TIMEOUT, *, size: int | None = None) -> bytes:
    return get(url, timeout, size=size)[1]


def get(url: str, timeout: float = READ_TIMEOUT, *, size: int | None = None) -> tuple[str, bytes]:
    """(the URL that finally answered, after redirects; the body, at most MAX_BODY bytes, or `size` when the caller
    knows it: an index larger than its Release says is cut off there, not read to the end). Credentials in `url`
    go into a Basic header (never to another host on a redirect), never into a message."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        try:
            return url, Path(parts.path).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{redact(url)}: not found") from None
        except OSError as e:
            raise RepositoryError(f"{redact(url)}: {e.strerror}") from None
    sink = _Memory(size)
    final, encoding = _stream(url, sink, timeout)
    return final, _undo_transfer_gzip(parts.path, encoding, sink.value())


def _undo_transfer_gzip(path: str, encoding: str, body: bytes) -> bytes:
    """The file itself, when a server labelled the body `Content-Encoding: gzip`: a server may gzip a file on the
    way (then the body is gzip over the file), or only label a file that is gzip already (a `.gz`): gunzip once
    where the file is not a .gz itself, or where unpacking a .gz leaves gzip still."""
    if encoding.strip().lower() not in ("gzip", "x-gzip") or body[:2] != b"\x1f\x8b":
        return body
    import zlib

    unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        inner = unpack.decompress(body, MAX_BODY)  # bounded: a gzip bomb stops at MAX_BODY
    except zlib.error:
        return body  # not a gzip stream after all: the digest check says whether it is the file
    if unpack.unconsumed_tail:
        raise RepositoryError(f"{path}: the gzip body unpacks to more than {MAX_BODY} bytes: refused",
                              hint="IMAGEBUILD_MAX_DOWNLOAD raises the limit")
    if not path.endswith(".gz") or inner[:2] == b"\x1f\x8b":
        return inner
    return body


def download(url: str, dest: Path, *, sha256: str, size: int | None = None, timeout: float = READ_TIMEOUT) -> None:
    """Stream `url` into `dest` while hashing it, never whole in memory: the file appears (atomically) only when
    its size and sha256 are the expected ones; otherwise a RepositoryError names both digests."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    sinks = [_File(dest.parent, size)]
    try:
        if urlsplit(url).scheme == "file":
            try:
                with open(urlsplit(url).path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        sinks[0].write(chunk)
            except FileNotFoundError:
                raise NotFound(f"{redact(url)}: not found") from None
            except OSError as e:
                raise RepositoryError(f"{redact(url)}: {e.strerror}") from None
            except _TooLarge as e:
                raise _too_large(url, e) from None
        else:
            _stream(url, sinks[0], timeout)
        sink = sinks[0]
        if sink.digest.hexdigest() != sha256 and sink.encoded and (plain := sink.gunzipped()) is not None:
            sinks.append(plain)  # the server gzipped the file on the way
            sink = plain
        got = sink.digest.hexdigest()
        if size is not None and sink.size != size:
            raise RepositoryError(f"{redact(url)}: {sink.size} bytes where {size} are expected (sha256 {got}, "
                                  f"expected {sha256})", hint="the mirror serves another file under this name")
        if got != sha256:
            raise RepositoryError(f"{redact(url)}: sha256 mismatch: expected {sha256}, got {got}",
                                  hint="the mirror serves another file under this name")
        sink.commit(dest)
    finally:
        for s in sinks:
            s.discard()


# -- HTTP: one requests Session per run --------------------------------------------------------------------

_session: Any = None


def forget_session() -> None:
    """In a forked child: open connections of its own, not the parent's."""
    global _session
    _session = None


def session() -> Any:
    """The run's requests Session: connections reused per host, urllib3 retrying 429/5xx with backoff that honours
    Retry-After (capped), proxies from the environment as requests reads them."""
    global _session
    if _session is None:
        import requests  # not at import time: a lock from the cache needs no HTTP stack
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        from imagebuild import __version__

        class CappedRetry(Retry):
            def get_retry_after(self, response: Any) -> float | None:
                after = super().get_retry_after(response)
                return None if after is None else min(after, RETRY_AFTER_MAX)

        # connection and read errors are retried by _stream (also mid-body); urllib3 retries statuses
        retry = CappedRetry(total=None, connect=0, read=0, other=0, status=ATTEMPTS - 1, redirect=10,
                            backoff_factor=BACKOFF, status_forcelist=_RETRY_STATUS,
                            allowed_methods=frozenset({"GET"}), respect_retry_after_header=True,
                            raise_on_status=False, raise_on_redirect=True)
        s = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=8, pool_maxsize=8)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        s.headers["User-Agent"] = f"imagebuild/{__version__}"
        s.headers["Accept-Encoding"] = "identity"  # the file as the repository has it: its digest is what is checked
        _session = s
    return _session


class _Memory:
    def __init__(self, expected: int | None) -> None:
        self.expected = expected
        self.encoded = False  # a Content-Encoding: `expected` is the size of the file, not of this body
        self.parts: list[bytes] = []
        self.size = 0

    def reset(self) -> None:
        if _meter is not None and self.size:
            _meter(-self.size)
        self.parts, self.size = [], 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        _check_size(self.size, None if self.encoded else self.expected)
        if _meter is not None:
            _meter(len(chunk))
        self.parts.append(chunk)

    def value(self) -> bytes:
        return b"".join(self.parts)


class _File:
    """A temporary file beside the destination, hashed as it is written."""

    def __init__(self, where: Path, expected: int | None) -> None:
        import tempfile

        self.expected = expected
        self.encoded = False
        fd, name = tempfile.mkstemp(prefix=".part-", dir=where)
        self.path = Path(name)
        self.f = os.fdopen(fd, "wb")
        self.size = 0
        self.reset()

    def reset(self) -> None:
        if _meter is not None and self.size:
            _meter(-self.size)
        self.f.seek(0)
        self.f.truncate()
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        _check_size(self.size, None if self.encoded else self.expected)
        if _meter is not None:
            _meter(len(chunk))
        self.digest.update(chunk)
        self.f.write(chunk)

    def gunzipped(self) -> _File | None:
        """What this body gunzips to, in a new file (bounded by `expected`), or None when it is not gzip."""
        import zlib

        self.f.flush()
        with open(self.path, "rb") as src:
            if src.read(2) != b"\x1f\x8b":
                return None
            src.seek(0)
            unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = _File(self.path.parent, self.expected)
            try:
                with metered(None):  # the body was counted as it came
                    while chunk := src.read(_CHUNK):
                        while chunk:
                            out.write(unpack.decompress(chunk, _CHUNK))
                            chunk = unpack.unconsumed_tail
                    out.write(unpack.flush())
            except (zlib.error, _TooLarge):
                out.discard()
                return None
        return out

    def commit(self, dest: Path) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.path, dest)

    def discard(self) -> None:
        if not self.f.closed:
            self.f.close()
        self.path.unlink(missing_ok=True)


class _TooLarge(Exception):
    def __init__(self, size: int, expected: int | None) -> None:
        self.size, self.expected = size, expected


def _too_large(url: str, e: _TooLarge) -> RepositoryError:
    if e.expected is not None and e.size > e.expected:
        return RepositoryError(f"{redact(url)}: {e.size} bytes or more where {e.expected} are expected: refused",
                               hint="the mirror serves another file under this name")
    return RepositoryError(f"{redact(url)}: larger than {MAX_BODY} bytes ({e.size} and more): refused",
                           hint="IMAGEBUILD_MAX_DOWNLOAD raises the limit")


def _check_size(size: int, expected: int | None) -> None:
    if size > MAX_BODY or (expected is not None and size > expected):
        raise _TooLarge(size, expected)


def _stream(url: str, sink: _Memory | _File, timeout: float) -> tuple[str, str]:
    """GET `url` into `sink`, the body as the server sent it, retrying what a flaky mirror does (reset, cut or
    stalled body, 429/5xx) up to ATTEMPTS times; (the URL that answered, its Content-Encoding)."""
    import time

    import requests
    import urllib3

    parts = urlsplit(url)
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username is not None else None
    clean = _without_userinfo(url)
    transient = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                 urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.SSLError)
    why = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        try:
            with session().get(clean, auth=auth, timeout=(CONNECT_TIMEOUT, timeout), stream=True,
                               allow_redirects=True) as r:
                if r.status_code in (403, 404, 410):
                    raise NotFound(f"{redact(url)}: HTTP {r.status_code}")
                if r.status_code >= 400:
                    hint = "check the repo's username and password" if r.status_code == 401 else (
                        "the mirror kept failing; try again later" if r.status_code in _RETRY_STATUS else None)
                    raise RepositoryError(f"{redact(url)}: HTTP {r.status_code} {r.reason}", hint=hint)
                length = r.headers.get("Content-Length")
                if length is not None and length.isdigit():  # not against `expected`: a wrong length is retried
                    _check_size(int(length), None)
                sink.reset()
                sink.encoded = r.headers.get("Content-Encoding", "").strip().lower() not in ("", "identity")
                for chunk in r.raw.stream(_CHUNK, decode_content=False):
                    sink.write(chunk)
                return str(r.url), r.headers.get("Content-Encoding", "")
        except _TooLarge as e:
            raise _too_large(url, e) from None
        except requests.exceptions.TooManyRedirects:
            raise RepositoryError(f"{redact(url)}: too many redirects", hint="the mirror redirects in a loop") from None
        except requests.exceptions.InvalidURL as e:
            raise RepositoryError(f"{redact(url)}: not a usable URL ({redact(str(e))})") from None
        except transient as e:
            why = _reason(e, sink.size)
        except (requests.RequestException, ValueError) as e:
            raise RepositoryError(f"{redact(url)}: cannot fetch: {redact(_reason(e, sink.size))}") from None
    raise RepositoryError(f"{redact(url)}: cannot fetch after {ATTEMPTS} attempts: {redact(why)}",
                          hint="is the repository reachable from here?")


def _reason(e: BaseException, received: int) -> str:
    """The innermost cause of a requests/urllib3 error, in one line."""
    cause: BaseException = e
    while True:
        inner = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    text = str(cause) or type(cause).__name__
    if "IncompleteRead" in text or "Connection broken" in text or "ProtocolError" in type(cause).__name__:
        return f"connection closed after {received} bytes ({text})"
    return text


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def cache_root() -> Path:
    explicit = os.environ.get("IMAGEBUILD_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "imagebuild"


class Cache:
    """Content-addressed store: blobs by sha256, and derived artefacts keyed by the digests they derive from."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def get_blob(self, sha256: str) -> bytes | None:
        try:
            data = self.blob_path(sha256).read_bytes()
        except OSError:
            return None
        # a corrupted cache entry is a miss, not a result
        return data if hashlib.sha256(data).hexdigest() == sha256 else None

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        write_atomic(self.blob_path(digest), data)
        return digest

    def derived_path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key
