"""Reading one configured apt repository for one architecture: signed Release, verified Packages.

Network and cache access happen here (called from the application layer); what comes out are
values: `ReleaseInfo` for the lock and `PackagesIndex` (records + their origin) for the resolver.
"""

from __future__ import annotations

import hashlib
import marshal
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imagebuild.apt.packages import Record, mention_order, parse_stanzas
from imagebuild.apt.release import Release, check_validity, parse_release
from imagebuild.compression import decompress
from imagebuild.config import AptRepo
from imagebuild.errors import RepositoryError
from imagebuild.fetch import Cache, NotFound, fetch, redact
from imagebuild.fsutil import gc_paused, write_atomic
from imagebuild.openpgp import verify_signature

COMPRESSIONS = (".xz", ".gz", ".bz2", "")
_PARSED_FORMAT = "records-v2"


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


@dataclass(frozen=True)
class PackagesIndex:
    release: ReleaseInfo
    component: str  # "" for flat repos
    path: str  # index path inside the Release, e.g. main/binary-amd64/Packages.xz
    sha256: str
    base_url: str  # where Filename paths are relative to (not redacted; used for downloads only)
    records: list[Record]
    mentions: list[str]  # package names in the order apt's cache would create them (for this arch)


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
    from pathlib import Path

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
        records = _load_parsed(parsed_key)
        if records is None:
            try:
                data = _fetch_verified(f"{where}/{path}", entry.sha256, entry.size, release.by_hash, cache, what)
            except NotFound as e:
                last_error = e
                continue
            try:
                with gc_paused():
                    records = parse_stanzas(decompress(path, data))
            except RepositoryError as e:
                raise RepositoryError(f"{what}: {path}: {e.message}") from None
            write_atomic(parsed_key, marshal.dumps(records))
        mentions_key = cache.derived_path("parsed", f"{entry.sha256}-{arch}-mentions-{_PARSED_FORMAT}")
        mentions: list[str] | None = _load_parsed(mentions_key)
        if mentions is None:
            mentions = mention_order(records, arch)
            write_atomic(mentions_key, marshal.dumps(mentions))
        return PackagesIndex(info, component, path, entry.sha256, base, records, mentions)
    assert last_error is not None
    raise RepositoryError(f"{what}: no index file could be fetched ({last_error.message})")


def cached_records(cache: Cache, sha256: str) -> list[Record] | None:
    """The parsed records of a Packages index this cache has read before (by its sha256), or None."""
    return _load_parsed(cache.derived_path("parsed", f"{sha256}-{_PARSED_FORMAT}"))


def _load_parsed(path: object) -> list[Any] | None:
    try:
        with open(str(path), "rb") as f:
            data = f.read()
        with gc_paused():
            loaded = marshal.loads(data)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return loaded if isinstance(loaded, list) else None


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
