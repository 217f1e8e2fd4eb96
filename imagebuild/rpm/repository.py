"""Reading one dnf repository: repomd.xml (optionally signed), primary/filelists/modules verified by checksum,
and loading it into a libsolv pool.

Metadata files are stored in the content-addressed cache: gzip as fetched (libsolv reads it), everything else
decompressed. The repo libsolv parses from primary+filelists is cached as a `.solv` file keyed by their
checksums, so an unchanged repo is parsed from XML once, not on every lock.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import json
import lzma
import mmap
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import solv

from imagebuild.config import RpmRepo
from imagebuild.errors import RepositoryError
from imagebuild.fetch import Cache, NotFound, fetch, redact
from imagebuild.fsutil import write_atomic
from imagebuild.openpgp import verify_signature

_NS = {"r": "http://linux.duke.edu/metadata/repo"}

#: Bump when what goes into a cached .solv changes (which files are loaded, and how).
_SOLV_FORMAT = "1"
#: Bump when module_documents keeps other keys.
_MODULES_FORMAT = "2"
#: A cached .solv ends with the sha256 of the bytes before it: libsolv accepts some corrupted files
#: silently (a flipped bit in a string), so the cache checks the whole file before handing it over.
_TRAILER = 32


@dataclass(frozen=True)
class RepoMetadata:
    repo: RpmRepo
    url: str  # redacted
    repomd_sha256: str
    revision: str
    primary: Path  # plain XML, or gzip (which solv.xfopen reads by its .gz suffix)
    filelists: Path | None
    modules: Path | None  # plain YAML
    files: tuple[tuple[str, str], ...]  # (type, checksum) of what was used
    solv_cache: Path | None = None  # the checked cache of the parsed primary+filelists; None: parse the XML
    module_docs: tuple[dict[str, object], ...] = ()  # modules.yaml, reduced (module_documents)


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
            # libsolv reads gzip itself; modules.yaml is read by Python, so it is always stored plain
            paths[kind] = _fetch_file(url, *entries[kind], cache, what, keep_gzip=kind != "modules")
    revision = root.findtext("r:revision", default="", namespaces=_NS) or ""
    # what the parsed repo depends on: the two files, whether filelists exist, and libsolv's version
    parsed_from = "\n".join([_SOLV_FORMAT, _solv_version(), *(f"{k} {':'.join(entries[k][:2])}"
                                                              for k in ("primary", "filelists") if k in paths)])
    md = RepoMetadata(
        repo=repo, url=redact(url), repomd_sha256=hashlib.sha256(raw).hexdigest(), revision=revision,
        primary=paths["primary"], filelists=paths.get("filelists"), modules=paths.get("modules"),
        files=tuple(sorted((k, entries[k][1]) for k in paths)),
        solv_cache=cache.derived_path("rpmsolv", hashlib.sha256(parsed_from.encode()).hexdigest() + ".solv"),
    )
    # the cache files are made here, by the application layer; the resolver only reads them
    if md.solv_cache is not None and not _valid_solv(md.solv_cache):
        try:
            _write_solv(md, what)
        except OSError:
            md = replace(md, solv_cache=None)  # an unwritable cache costs the parse, nothing else
    return replace(md, module_docs=tuple(module_documents(md)))


def _solv_version() -> str:
    """The libsolv build in use (its parser decides what a .solv holds): the extension module's file
    identity, cheaper than package metadata and also right for a distro's python3-solv."""
    binary = getattr(solv, "_solv", solv)
    try:
        st = os.stat(binary.__file__ or "")
    except (OSError, TypeError):
        return "unknown"  # libsolv still refuses .solv files of another format version on its own
    return f"{binary.__file__} {st.st_size} {st.st_mtime_ns}"


def _fetch_file(url: str, algo: str, digest: str, href: str, cache: Cache, what: str, keep_gzip: bool) -> Path:
    if algo not in ("sha256", "sha512", "sha384", "sha224", "sha1"):
        raise RepositoryError(f"{what}: {href}: unsupported checksum type {algo!r}")
    # the solv wheel's xfopen reads only gzip (not xz, bz2 or zstd): those are stored decompressed
    keep = keep_gzip and href.endswith(".gz")
    out = cache.derived_path("rpmmd", f"{algo}-{digest}" + (".gz" if keep else ""))
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
    write_atomic(out, data if keep else _decompress(href, data))
    return out


def module_documents(md: RepoMetadata) -> list[dict[str, object]]:
    """The modulemd and modulemd-defaults documents of modules.yaml, reduced to the keys the resolver reads
    (document; data: name, stream, module, artifacts.rpms, profiles) and cached as JSON next to the file: PyYAML
    (import and parse) is slower than the rest of a warm lock's module handling."""
    if md.modules is None:
        return []
    cached = md.modules.with_name(f"{md.modules.name}.v{_MODULES_FORMAT}.json")
    try:
        docs: list[dict[str, object]] = json.loads(cached.read_bytes())
        return docs
    except (OSError, ValueError):
        pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when PyYAML has it: ~10x faster
    try:
        raw = list(yaml.load_all(md.modules.read_text(), Loader=loader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RepositoryError(f"repo {md.repo.name!r} ({md.url}): modules.yaml cannot be read: {e}") from None

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    docs = []
    for doc in raw:
        if not isinstance(doc, dict) or doc.get("document") not in ("modulemd", "modulemd-defaults"):
            continue
        data = doc.get("data") or {}
        rpms = (data.get("artifacts") or {}).get("rpms") or []
        found = data.get("profiles")
        raw_profiles: dict[Any, Any] = found if isinstance(found, dict) else {}
        if doc["document"] == "modulemd":  # profile -> its rpm names
            profiles = {str(k): [str(r) for r in ((v or {}).get("rpms") or [])] for k, v in raw_profiles.items()}
        else:  # modulemd-defaults: stream -> its default profiles
            profiles = {str(k): [str(p) for p in (v or [])] for k, v in raw_profiles.items()}
        docs.append({"document": doc["document"], "data": {
            "name": text(data.get("name")), "stream": text(data.get("stream")), "module": text(data.get("module")),
            "artifacts": {"rpms": [str(r) for r in rpms]}, "profiles": profiles}})
    with contextlib.suppress(OSError):  # an unwritable cache costs the parse next time, nothing else
        write_atomic(cached, json.dumps(docs))
    return docs


def load_repo(pool: solv.Pool, md: RepoMetadata) -> solv.Repo:
    """Add the repo's packages (primary + filelists) to `pool`, from the cached .solv when there is a good one.

    read_repo checks the .solv against its trailer and writes it when missing, truncated or corrupted (and
    sets `solv_cache` to None when it cannot), so the pool is always filled from a checked .solv and a cold
    and a warm run intern the same strings in the same order and cannot resolve differently; only without
    one is the XML parsed here. Reads only. Priorities and file provides are not in the file: callers set
    those."""
    what = f"repo {md.repo.name!r} ({md.url})"
    if md.solv_cache is None:
        repo = pool.add_repo(md.repo.name)
        _add_xml(repo, md, what)
        return repo
    repo = pool.add_repo(md.repo.name)
    f = solv.xfopen(str(md.solv_cache))
    ok = f is not None and repo.add_solv(f, 0)
    if f is not None:
        f.close()
    if not ok:  # only when libsolv refuses its own, checksummed output; the XML is still there
        repo.empty(True)
        _add_xml(repo, md, what)
    return repo


def _valid_solv(path: Path) -> bool:
    """Whether the file ends with the sha256 of what precedes it (hashed from a mapping: it is tens of MiB)."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size <= _TRAILER:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m, memoryview(m) as view:
                return hashlib.sha256(view[:-_TRAILER]).digest() == view[-_TRAILER:]
    except (OSError, ValueError):
        return False


def _write_solv(md: RepoMetadata, what: str) -> None:
    """Parse the XML in a pool of its own and write the repo as .solv + sha256 trailer, atomically."""
    assert md.solv_cache is not None
    scratch = solv.Pool()
    scratch.setdisttype(solv.Pool.DISTTYPE_RPM)
    repo = scratch.add_repo(md.repo.name)
    _add_xml(repo, md, what)
    out = md.solv_cache
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        f = solv.xfopen(tmp, "w")
        if f is None or not repo.write(f) or not f.close():
            raise OSError(f"{tmp}: cannot write the parsed repo")
        with open(tmp, "r+b") as w:
            body = w.read()
            w.write(hashlib.sha256(body).digest())
            w.flush()
            os.fsync(w.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add_xml(repo: solv.Repo, md: RepoMetadata, what: str) -> None:
    for path, language, flags in ((md.primary, "", 0), (md.filelists, "FL", solv.Repo.REPO_EXTEND_SOLVABLES)):
        if path is None:
            continue
        f = solv.xfopen(str(path))
        if f is None:  # handing libsolv no file would crash it
            raise RepositoryError(f"{what}: cannot open {path}")
        ok = repo.add_rpmmd(f, language, flags)
        f.close()
        if not ok:
            raise RepositoryError(f"{what}: {path.name}: cannot parse: {repo.pool.errstr}",
                                  hint=f"remove {path} from the cache if it was damaged there")
    repo.internalize()
