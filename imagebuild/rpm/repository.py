"""Reading one dnf repository: repomd.xml (optionally signed), primary/filelists/modules verified by checksum.

Metadata files are stored decompressed in the content-addressed cache and handed to libsolv by path.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from imagebuild.apt.release import verify_signature
from imagebuild.config import RpmRepo
from imagebuild.errors import RepositoryError
from imagebuild.fetch import Cache, NotFound, fetch, redact
from imagebuild.fsutil import write_atomic

_NS = {"r": "http://linux.duke.edu/metadata/repo"}


@dataclass(frozen=True)
class RepoMetadata:
    repo: RpmRepo
    url: str  # redacted
    repomd_sha256: str
    revision: str
    primary: Path
    filelists: Path | None
    modules: Path | None
    files: tuple[tuple[str, str], ...]  # (type, checksum) of what was used


def _decompress(name: str, data: bytes) -> bytes:
    try:
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".bz2"):
            return bz2.decompress(data)
        if name.endswith(".zst") or name.endswith(".zstd"):
            try:
                import zstandard
            except ImportError:
                raise RepositoryError(f"{name}: zstd-compressed metadata needs the zstandard module",
                                      hint="pip install zstandard") from None
            out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            return out
    except (OSError, EOFError, lzma.LZMAError, ValueError) as e:
        raise RepositoryError(f"{name}: corrupt compressed data: {e}") from None
    return data


def read_repo(repo: RpmRepo, url: str, cache: Cache) -> RepoMetadata:
    what = f"repo {repo.name!r} ({redact(url)})"
    try:
        raw = fetch(f"{url}/repodata/repomd.xml")
    except NotFound:
        raise RepositoryError(f"{what}: no repodata/repomd.xml", hint="url must be the repo root") from None
    if repo.repo_gpgcheck:
        assert repo.gpgkey is not None
        try:
            sig = fetch(f"{url}/repodata/repomd.xml.asc")
        except NotFound:
            raise RepositoryError(f"{what}: repo_gpgcheck is on but repomd.xml.asc is missing") from None
        verify_signature(raw, repo.gpgkey, f"{what} repomd.xml", sig)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        raise RepositoryError(f"{what}: repomd.xml is not valid XML: {e}") from None
    entries: dict[str, tuple[str, str, str]] = {}
    for data in root.findall("r:data", _NS):
        kind = data.get("type", "")
        checksum = data.find("r:checksum", _NS)
        location = data.find("r:location", _NS)
        if checksum is None or location is None or not checksum.text:
            continue
        entries[kind] = (checksum.get("type", ""), checksum.text.strip(), location.get("href", ""))
    if "primary" not in entries:
        raise RepositoryError(f"{what}: repomd.xml lists no primary metadata")
    paths: dict[str, Path] = {}
    for kind in ("primary", "filelists", "modules"):
        if kind in entries:
            paths[kind] = _fetch_file(url, *entries[kind], cache, what)
    revision = root.findtext("r:revision", default="", namespaces=_NS) or ""
    return RepoMetadata(
        repo=repo, url=redact(url), repomd_sha256=hashlib.sha256(raw).hexdigest(), revision=revision,
        primary=paths["primary"], filelists=paths.get("filelists"), modules=paths.get("modules"),
        files=tuple(sorted((k, entries[k][1]) for k in paths)),
    )


def _fetch_file(url: str, algo: str, digest: str, href: str, cache: Cache, what: str) -> Path:
    if algo not in ("sha256", "sha512", "sha384", "sha224", "sha1"):
        raise RepositoryError(f"{what}: {href}: unsupported checksum type {algo!r}")
    out = cache.derived_path("rpmmd", f"{algo}-{digest}")
    if out.exists():
        return out
    try:
        data = fetch(f"{url}/{href}")
    except NotFound:
        raise RepositoryError(f"{what}: {href} is listed in repomd.xml but missing") from None
    actual = hashlib.new(algo, data).hexdigest()
    if actual != digest:
        raise RepositoryError(f"{what}: {href}: checksum mismatch (repomd.xml says {algo} {digest[:16]}…, "
                              f"got {actual[:16]}…)", hint="the mirror is inconsistent or tampered with")
    write_atomic(out, _decompress(href, data))
    return out
