"""Getting bytes from http(s):// and file:// URLs, and the content-addressed local cache.

Only the application layer calls this module; resolvers never do I/O.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from imagebuild.errors import RepositoryError
from imagebuild.fsutil import write_atomic

# up to the last "@" of the authority: a password may itself contain "@" (urlsplit splits there too)
_USERINFO = re.compile(r"//[^/?#\s]*@")


def redact(url: str) -> str:
    """The URL as it may appear in logs, errors and outputs: without user:password@."""
    return _USERINFO.sub("//", url)


class NotFound(RepositoryError):
    """The URL does not exist (404 / missing file); callers may fall back to another name."""


def fetch(url: str, timeout: float = 60.0) -> bytes:
    return get(url, timeout)[1]


def get(url: str, timeout: float = 60.0) -> tuple[str, bytes]:
    """(the URL that finally answered, after redirects; the body). Credentials in `url` go into a Basic
    header, never into a message."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        try:
            return url, Path(parts.path).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{redact(url)}: not found") from None
        except OSError as e:
            raise RepositoryError(f"{redact(url)}: {e.strerror}") from None
    import http.client
    import urllib.error
    import urllib.request  # not at import time: http.client and ssl cost ~20 ms of every start

    try:
        request = urllib.request.Request(_without_userinfo(url), headers={"User-Agent": "imagebuild"})
    except ValueError as e:
        raise RepositoryError(f"{redact(url)}: not a usable URL ({redact(str(e))})") from None
    if parts.username is not None:
        import base64

        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with _opener().open(request, timeout=timeout) as response:
            data: bytes = response.read()
            final: str = response.geturl()
            return final, data
    except urllib.error.HTTPError as e:
        if e.code in (403, 404, 410):
            raise NotFound(f"{redact(url)}: HTTP {e.code}") from None
        hint = "check the repo's username and password" if e.code == 401 else None
        raise RepositoryError(f"{redact(url)}: HTTP {e.code} {e.reason}", hint=hint) from None
    except (http.client.InvalidURL, ValueError) as e:
        raise RepositoryError(f"{redact(url)}: not a usable URL ({redact(str(e))})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RepositoryError(f"{redact(url)}: cannot fetch: {reason}",
                              hint="is the repository reachable from here?") from None


def _opener() -> Any:
    """urllib's opener, but a redirect to another host does not take the Authorization header along
    (urllib copies every header onto the redirected request: a repo password would go to a mirror)."""
    import urllib.request

    class SameOriginAuth(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            old_origin, new_origin = urlsplit(req.full_url), urlsplit(newurl)
            if new is not None and (old_origin.scheme, old_origin.netloc) != (new_origin.scheme, new_origin.netloc):
                new.remove_header("Authorization")
            return new

    return urllib.request.build_opener(SameOriginAuth)


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
