"""Reading one configured apt repository for one architecture: signed Release, verified Packages.

Network and cache access happen here (called from the application layer); what comes out are
values: `ReleaseInfo` for the lock and `PackagesIndex` (records + their origin) for the resolver.
"""

from __future__ import annotations

import array
import contextlib
import functools
import hashlib
import marshal
import mmap
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import overload

from imagebuild.apt.packages import FIELDS, Record, mention_order, parse_stanza_chunks
from imagebuild.apt.release import Release, check_validity, parse_release
from imagebuild.compression import decompress_chunks
from imagebuild.config import AptRepo
from imagebuild.errors import RepositoryError
from imagebuild.fetch import Cache, NotFound, fetch, redact
from imagebuild.fsutil import atomic_file, gc_paused, write_atomic
from imagebuild.openpgp import verify_signature

COMPRESSIONS = (".xz", ".gz", ".bz2", "")
_PARSED_FORMAT = "records-v3"
_MAGIC = b"imagebuild records 3\n"
_RECORD_LEN = len(FIELDS)


@dataclass(frozen=True)
class ReleaseInfo:
    """What the lock records about one signed Release file."""

    repo: str
    suite: str  # the configured suite ("./" for a flat repo)
    url: str  # redacted base URL
    sha256: str  # digest of the (In)Release file as fetched
    date: str
    valid_until: str
    origin: str
    label: str
    archive: str  # the Release's Suite field
    codename: str
    not_automatic: bool
    but_automatic_upgrades: bool

    @property
    def pin_priority(self) -> int:
        """apt's default pin: 500, NotAutomatic 1, NotAutomatic + ButAutomaticUpgrades 100."""
        if self.not_automatic:
            return 100 if self.but_automatic_upgrades else 1
        return 500


class PackagesIndex:
    """One Packages index of a Release: where it is, and its records (from the cache, read as they are asked for) and
    the package names in the order apt's cache would create them for `arch` (`mentions`, computed on first use)."""

    __slots__ = ("release", "component", "path", "sha256", "base_url", "records", "_mentions")

    def __init__(self, release: ReleaseInfo, component: str, path: str, sha256: str, base_url: str,
                 records: Sequence[Record], mentions: list[str] | Callable[[], list[str]]) -> None:
        self.release = release
        self.component = component  # "" for flat repos
        self.path = path  # index path inside the Release, e.g. main/binary-amd64/Packages.xz
        self.sha256 = sha256
        self.base_url = base_url  # where Filename paths are relative to (not redacted; used for downloads only)
        self.records = records
        self._mentions = mentions

    @property
    def mentions(self) -> list[str]:
        if callable(self._mentions):
            self._mentions = self._mentions()
        return self._mentions


class RecordFile(Sequence[Record]):
    """A parsed index in the cache, each record read when it is asked for: `_MAGIC`, the record count, the end
    offset of every record's marshal, then the records. Mapped, so a lock that looks at 300 of 60,000 packages
    reads 300 records."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        m = self._map
        if m[:len(_MAGIC)] != _MAGIC:
            raise ValueError(f"{path}: not a record file")
        (count,) = struct.unpack_from("<Q", m, len(_MAGIC))
        self._body = len(_MAGIC) + 8 + 8 * count
        self._ends = array.array("Q")
        self._ends.frombytes(m[len(_MAGIC) + 8:self._body])
        if len(self._ends) != count or (self._ends[-1] if count else 0) != len(m) - self._body:
            raise ValueError(f"{path}: truncated")

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Record]: ...

    def __getitem__(self, i: int | slice) -> Record | Sequence[Record]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        start = self._body + (self._ends[i - 1] if i else 0)
        rec = marshal.loads(self._map[start:self._body + self._ends[i]])
        if type(rec) is not tuple or len(rec) != _RECORD_LEN:
            raise RepositoryError(f"a cached index is damaged (record {i})",
                                  hint="remove the cache (IMAGEBUILD_CACHE, ~/.cache/imagebuild) and re-run")
        return rec

    def __iter__(self) -> Iterator[Record]:
        m, body, start = self._map, self._body, self._body
        for end in self._ends:
            yield marshal.loads(m[start:body + end])
            start = body + end


def write_records(path: Path, records: Sequence[Record]) -> None:
    """The records as RecordFile reads them, marshalled one by one into the file (after room for the offsets,
    written last): all of them marshalled at once would hold a second copy of the index in memory."""
    ends = array.array("Q")
    with atomic_file(path) as f:
        f.seek(len(_MAGIC) + 8 + 8 * len(records))
        end = 0
        for r in records:
            end += f.write(marshal.dumps(r))
            ends.append(end)
        f.seek(0)
        f.write(_MAGIC + struct.pack("<Q", len(records)) + ends.tobytes())


def _record_file(path: Path) -> RecordFile | None:
    try:
        return RecordFile(path)
    except (OSError, ValueError):
        return None


def _release_base(repo: AptRepo, base: str, suite: str) -> str:
    return base if repo.flat else f"{base}/dists/{suite}"


def read_release(repo: AptRepo, base: str, suite: str, cache: Cache, at: datetime) -> tuple[ReleaseInfo, Release]:
    where = _release_base(repo, base, suite)
    what = f"repo {repo.name!r} ({redact(where)})"
    try:
        raw = fetch(f"{where}/InRelease")
        detached, name = None, "InRelease"
    except NotFound:
        name = "Release"
        try:
            raw = fetch(f"{where}/Release")
        except NotFound:
            raise RepositoryError(f"{what}: no InRelease or Release file",
                                  hint="check the url and suites (for `deb URL ./` repos set flat = true)") from None
        detached = None
        if not repo.trusted:
            try:
                detached = fetch(f"{where}/Release.gpg")
            except NotFound:
                raise RepositoryError(f"{what}: Release is not signed (no Release.gpg)",
                                      hint="set trusted = true only if you really trust the transport") from None
    digest = hashlib.sha256(raw).hexdigest()
    if repo.trusted and repo.signed_by is None:
        content = _strip_clearsign(raw)
    else:
        assert repo.signed_by is not None
        verified_key = cache.derived_path("verified", f"{digest}-{_file_digest(repo.signed_by)}")
        try:
            content = verified_key.read_bytes()
        except OSError:
            content = verify_signature(raw, repo.signed_by, f"{what}: {name}", detached)
            write_atomic(verified_key, content)
    release = parse_release(content.decode("utf-8", errors="replace"), what)
    check_validity(release, what, at)
    info = ReleaseInfo(
        repo=repo.name, suite="./" if repo.flat else suite, url=redact(base), sha256=digest,
        date=release.get("Date"), valid_until=release.get("Valid-Until"), origin=release.get("Origin"),
        label=release.get("Label"), archive=release.get("Suite"), codename=release.get("Codename"),
        not_automatic=release.not_automatic, but_automatic_upgrades=release.but_automatic_upgrades,
    )
    return info, release


def _strip_clearsign(data: bytes) -> bytes:
    text = data.decode("utf-8", errors="replace")
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return data
    body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    return body.split("\n-----BEGIN PGP SIGNATURE-----", 1)[0].encode()


def _file_digest(path: object) -> str:
    return hashlib.sha256(Path(str(path)).read_bytes()).hexdigest()[:32]


def read_packages(repo: AptRepo, base: str, info: ReleaseInfo, release: Release, component: str,
                  arch: str, cache: Cache) -> PackagesIndex:
    """Fetch, verify against the signed Release and parse one Packages index (cached by digest)."""
    stem = "Packages" if repo.flat else f"{component}/binary-{arch}/Packages"
    where = _release_base(repo, base, info.suite if not repo.flat else "")
    what = f"repo {repo.name!r} {info.suite}"
    candidates = [stem + ext for ext in COMPRESSIONS if stem + ext in release.files]
    if not candidates:
        if not repo.flat and component not in release.components:
            raise RepositoryError(f"{what}: component {component!r} does not exist",
                                  hint=f"the Release lists: {' '.join(release.components) or '(none)'}")
        if not repo.flat and release.architectures and arch not in release.architectures:
            raise RepositoryError(f"{what}: architecture {arch!r} is not in this repository",
                                  hint=f"the Release lists: {' '.join(release.architectures)}")
        raise RepositoryError(f"{what}: the Release lists no {stem} index")
    last_error: RepositoryError | None = None
    for path in candidates:
        entry = release.files[path]
        parsed_key = cache.derived_path("parsed", f"{entry.sha256}-{_PARSED_FORMAT}")
        mentions_key = cache.derived_path("parsed", f"{entry.sha256}-{arch}-mentions-{_PARSED_FORMAT}")
        records: Sequence[Record] | None = _record_file(parsed_key)
        if records is None:
            try:
                data = _fetch_verified(f"{where}/{path}", entry.sha256, entry.size, release.by_hash, cache, what)
            except NotFound as e:
                last_error = e
                continue
            try:
                with gc_paused():
                    records = parse_stanza_chunks(decompress_chunks(path, data))
            except RepositoryError as e:
                raise RepositoryError(f"{what}: {path}: {e.message}") from None
            write_records(parsed_key, records)
            stored = _record_file(parsed_key)
            if stored is not None and len(stored) >= _MENTIONS_AHEAD and len(os.sched_getaffinity(0)) > 1:
                del records  # from here on read as a warm run reads them: the parsed list goes before the fork
                return PackagesIndex(info, component, path, entry.sha256, base, stored,
                                     _mentions_ahead(mentions_key, stored, arch))
            mentions = _mentions(mentions_key, records, arch)
            # from here on read as a warm run reads them: the parsed list goes, and memory with it
            return PackagesIndex(info, component, path, entry.sha256, base, stored or records, mentions)
        return PackagesIndex(info, component, path, entry.sha256, base, records,
                             functools.partial(_mentions, mentions_key, records, arch))
    assert last_error is not None
    raise RepositoryError(f"{what}: no index file could be fetched ({last_error.message})")


#: An index of this many records has its mention order computed by a child process on another core while this one
#: reads the next indices (bookworm main: 63 000 records, 0.3 s).
_MENTIONS_AHEAD = 20_000


def _mentions_ahead(key: Path, records: RecordFile, arch: str) -> Callable[[], list[str]]:
    """`_mentions`, computed and saved by a forked child meanwhile: what the returned function gives, once the
    child has ended (if it failed, the function computes them itself)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _mentions(key, records, arch)
            code = 0
        finally:
            os._exit(code)  # nothing of the parent's runs here: no atexit, no buffered output

    def wait() -> list[str]:
        with contextlib.suppress(ChildProcessError):  # reaped already (SIGCHLD ignored): its file tells
            os.waitpid(pid, 0)
        return _mentions(key, records, arch)  # the child's file, or computed here

    return wait


def _mentions(key: Path, records: Sequence[Record], arch: str) -> list[str]:
    try:
        with open(key, "rb") as f:
            loaded = marshal.loads(f.read())
        if isinstance(loaded, list):
            return loaded
    except (OSError, EOFError, ValueError, TypeError):
        pass
    mentions = mention_order(records, arch)
    with contextlib.suppress(OSError):  # an unwritable cache costs the computation next time, nothing else
        write_atomic(key, marshal.dumps(mentions))
    return mentions


def cached_records(cache: Cache, sha256: str) -> Sequence[Record] | None:
    """The parsed records of a Packages index this cache has read before (by its sha256), or None."""
    return _record_file(cache.derived_path("parsed", f"{sha256}-{_PARSED_FORMAT}"))


def _fetch_verified(url: str, sha256: str, size: int, by_hash: bool, cache: Cache, what: str) -> bytes:
    cached = cache.get_blob(sha256)
    if cached is not None:
        return cached
    data = None
    if by_hash:
        directory, _, _ = url.rpartition("/")
        try:
            data = fetch(f"{directory}/by-hash/SHA256/{sha256}", size=size)
        except NotFound:
            data = None
    if data is None:
        data = fetch(url, size=size)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256 or len(data) != size:
        raise RepositoryError(
            f"{what}: {redact(url)}: checksum mismatch (expected sha256 {sha256}, {size} bytes; got {actual}, "
            f"{len(data)} bytes)",
            hint="the mirror is inconsistent or tampered with; retry later or use another snapshot",
        )
    if not url.startswith("file:"):
        cache.put_blob(data)
    return data
