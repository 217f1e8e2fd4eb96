"""Reading one dnf repository: repomd.xml (optionally signed), primary/filelists/modules verified by checksum,
and loading it into a libsolv pool.

Metadata files are stored in the content-addressed cache: gzip as fetched, everything else decompressed. The repo
libsolv parses from primary.xml is cached as a `.solv` file keyed by the checksums of primary and filelists and
those of the other repos of its pool, so an unchanged set of repos is parsed from XML once, not on every lock
(filelists.xml itself is not in it: `add_filelists` adds it for a request that names a path). As libdnf's does, the
.solv also holds the file provides libsolv adds for that set (`/usr/bin/python3` required by one package, provided
through another's file list), listed under REPOSITORY_ADDEDFILEPROVIDES: libsolv then skips searching the file
lists for them, the largest part of loading a warm pool. Keyed by the whole set (not, as libdnf's, by the repo
alone and rewritten when another set needs more), every .solv is a function of the XML it was parsed from, and a
warm pool is the cold one, whatever ran before with this cache. What nothing here reads (descriptions, summaries
and the like: _UNREAD) is left out of primary.xml before libsolv parses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import solv

from imagebuild import compression
from imagebuild.config import RpmRepo
from imagebuild.errors import RepositoryError
from imagebuild.fetch import Cache, NotFound, fetch, redact
from imagebuild.fsutil import write_atomic
from imagebuild.lockfile import repo_path
from imagebuild.openpgp import verify_signature

_NS = {"r": "http://linux.duke.edu/metadata/repo"}

#: Bump when what goes into a cached .solv changes (which files are loaded, and how).
_SOLV_FORMAT = "4"
#: Left out of the parsed repo: the elements of primary.xml that nothing here reads and that cost the most to
#: keep. libsolv compresses every description into the .solv's pages (half the time of writing a large repo's
#: .solv), and the other texts are most of the strings a warm lock reads back: on the 40 000-package benchmark
#: repo the .solv goes from 14.4 to 6.5 MB, its parse 0.1 s and its write 0.15 s shorter, its load 20 -> 12.5 ms.
#: Kept: name, arch, version, checksum, time (libsolv compares build times), size, location, license, vendor
#: (libsolv's vendor policy), header range and every dependency. Two patterns, each found by its first tag, in
#: createrepo_c's order (in another order they match less and keep more); text without `<` only, so removing a
#: match leaves the document well-formed whatever surrounds it.
_UNREAD = tuple(re.compile(rb"".join(rb"(?:<%s(?:>[^<]*</%s>|/>)\s*)%s" % (tag, tag, b"" if i == 0 else b"?")
                                     for i, tag in enumerate(tags)))
                for tags in ((b"summary", b"description", b"packager", b"url"),
                             (b"rpm:group", b"rpm:buildhost", b"rpm:sourcerpm")))
#: A package's entry is held back until the next one starts, unless it is larger than this.
_HOLD = 1 << 20
#: How filelists.xml is added: to the packages primary.xml gave, its strings kept in its own repodata.
_FILELISTS = solv.Repo.REPO_EXTEND_SOLVABLES | solv.Repo.REPO_LOCALPOOL
#: Bump when module_documents keeps other keys.
_MODULES_FORMAT = "2"
#: A cached .solv ends with the sha256 of the bytes before it: libsolv accepts some corrupted files
#: silently (a flipped bit in a string), so the cache checks the whole file before handing it over.
_TRAILER = 32


@dataclass(frozen=True)
class RepoMetadata:
    """One dnf repo's checked metadata: the files it was read from and their cached forms."""

    repo: RpmRepo
    url: str  # redacted
    repomd_sha256: str
    revision: str
    primary: Path  # plain XML, or gzip as fetched (decompressed, bounded, when parsed: _add_rpmmd)
    filelists: Path | None
    modules: Path | None  # plain YAML
    files: tuple[tuple[str, str], ...]  # (type, checksum) of what was used
    solv_cache: Path | None = None  # the checked cache of the parsed primary+filelists; None: parse the XML
    parsed_from: str = ""  # what the parsed repo depends on (its files, libsolv's version): part of the .solv's key
    module_docs: tuple[dict[str, object], ...] = ()  # modules.yaml, reduced (module_documents)


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
    entries, revision = parse_repomd(raw, what)
    paths: dict[str, Path] = {}
    for kind in ("primary", "filelists", "modules"):
        if kind in entries:
            # gzip is kept as fetched (decompressed when parsed); modules.yaml is read by Python, stored plain
            paths[kind] = _fetch_file(url, *entries[kind], cache, what, keep_gzip=kind != "modules")
    # what the parsed repo depends on: the two files, whether filelists exist, and libsolv's version
    parsed_from = "\n".join([_SOLV_FORMAT, _solv_version(), *(f"{k} {':'.join(entries[k][:2])}"
                                                              for k in ("primary", "filelists") if k in paths)])
    md = RepoMetadata(
        repo=repo, url=redact(url), repomd_sha256=hashlib.sha256(raw).hexdigest(), revision=revision,
        primary=paths["primary"], filelists=paths.get("filelists"), modules=paths.get("modules"),
        files=tuple(sorted((k, entries[k][1]) for k in paths)), parsed_from=parsed_from,
    )
    return replace(md, module_docs=tuple(module_documents(md)))


def prepare_solvs(mds: Sequence[RepoMetadata], cache: Cache) -> list[RepoMetadata]:
    """`mds`, the repos of one pool, each with its .solv for this set of repos: checked against its trailer, and
    written when missing or damaged, so that load_repo fills the pool from checked .solv files and a cold and a warm
    run intern the same strings in the same order and cannot resolve differently. The XML is parsed in a pool of
    its own holding all of `mds` (the good .solv files are read), so the file provides the set needs are added
    before the files are written. A repo whose .solv cannot be written gets `solv_cache` None: its XML is parsed
    by load_repo, which costs time only. Called by the application layer (it writes the cache); the resolver
    only reads."""
    pool_key = "\n".join(sorted(hashlib.sha256(md.parsed_from.encode()).hexdigest() for md in mds))
    mds = [replace(md, solv_cache=cache.derived_path("rpmsolv", hashlib.sha256(
        f"{md.parsed_from}\npool\n{pool_key}".encode()).hexdigest() + ".solv")) for md in mds]
    todo = [i for i, md in enumerate(mds) if md.solv_cache is not None and not _valid_solv(md.solv_cache)]
    if not todo:
        return mds
    scratch = solv.Pool()
    scratch.setdisttype(solv.Pool.DISTTYPE_RPM)
    repos, firsts = [], {}
    for i, md in enumerate(mds):
        if i in todo:
            repos.append(scratch.add_repo(md.repo.name))
            firsts[i] = _add_xml(repos[-1], md)
        else:  # its packages' provides hold the set's file provides: libsolv does not search it for them
            repos.append(load_repo(scratch, md))
    added = scratch.addfileprovides_queue()
    for i in todo:
        try:
            _write_solv(repos[i], firsts[i], mds[i], added)
        except OSError:
            mds[i] = replace(mds[i], solv_cache=None)  # an unwritable cache costs the parse, nothing else
    return mds


class _NoDoctype(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _Doctype


class _Doctype(Exception):
    pass


def _parse_xml(raw: bytes, what: str) -> ET.Element:
    """A metadata XML document, refused if it has a DOCTYPE: repository metadata has none, and a DTD is how XML
    expands a few bytes into gigabytes (entity expansion) or pulls in other files (external entities)."""
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(raw)
        root: ET.Element = parser.close()
    except _Doctype:
        raise RepositoryError(f"{what}: has a DOCTYPE (entity declarations are not accepted)",
                              hint="repository metadata has no DTD: the file is damaged or hostile") from None
    except ET.ParseError as e:
        raise RepositoryError(f"{what}: not valid XML: {e}") from None
    return root


def parse_repomd(raw: bytes, what: str) -> tuple[dict[str, tuple[str, str, str]], str]:
    """repomd.xml: (type -> (checksum type, checksum, location href), revision). `what` names the repo."""
    root = _parse_xml(raw, f"{what}: repomd.xml")
    entries: dict[str, tuple[str, str, str]] = {}
    for data in root.findall("r:data", _NS):
        kind = data.get("type", "")
        checksum = data.find("r:checksum", _NS)
        location = data.find("r:location", _NS)
        if checksum is None or location is None or not checksum.text:
            continue
        href = location.get("href", "")
        if repo_path(href) is None:
            raise RepositoryError(f"{what}: repomd.xml: the {kind[:40]!r} location {href[:200]!r} is not a path in the "
                                  "repository", hint="the file is damaged or hostile")
        entries[kind] = (checksum.get("type", ""), checksum.text.strip(), href)
    if "primary" not in entries:
        raise RepositoryError(f"{what}: repomd.xml lists no primary metadata")
    return entries, root.findtext("r:revision", default="", namespaces=_NS) or ""


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
    # gzip is stored as fetched (a tenth of the size; _add_rpmmd decompresses it, bounded); xz, bz2, zstd plain
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
    write_atomic(out, data if keep else compression.decompress(href, data))
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
    where = f"repo {md.repo.name!r} ({md.url}): modules.yaml"
    try:
        raw = list(yaml.load_all(md.modules.read_text(encoding="utf-8"), Loader=loader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        raise RepositoryError(f"{where} cannot be read: {e}") from None

    def table(value: object, key: str) -> dict[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise RepositoryError(f"{where}: {key} is not a mapping")
        return value

    def items(value: object, key: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise RepositoryError(f"{where}: {key} is not a list")
        return [scalar(v, key) for v in value]

    def scalar(value: object, key: str) -> str:
        # only scalars: str() of a nested list built from YAML aliases grows exponentially (billion laughs)
        if isinstance(value, (dict, list, set)):
            raise RepositoryError(f"{where}: {key} holds a {type(value).__name__}, not a name")
        return str(value)

    def text(value: object, key: str) -> str | None:
        return None if value is None else scalar(value, key)

    docs = []
    for doc in raw:
        if not isinstance(doc, dict) or doc.get("document") not in ("modulemd", "modulemd-defaults"):
            continue
        data = table(doc.get("data"), "data")
        rpms = items(table(data.get("artifacts"), "data.artifacts").get("rpms"), "data.artifacts.rpms")
        found = data.get("profiles")
        raw_profiles: dict[Any, Any] = found if isinstance(found, dict) else {}
        if doc["document"] == "modulemd":  # profile -> its rpm names
            profiles = {scalar(k, "data.profiles"): items(table(v, "data.profiles.*").get("rpms"),
                                                           "data.profiles.*.rpms")
                        for k, v in raw_profiles.items()}
        else:  # modulemd-defaults: stream -> its default profiles
            profiles = {scalar(k, "data.profiles"): items(v, "data.profiles.*") for k, v in raw_profiles.items()}
        docs.append({"document": doc["document"], "data": {
            "name": text(data.get("name"), "data.name"), "stream": text(data.get("stream"), "data.stream"),
            "module": text(data.get("module"), "data.module"), "artifacts": {"rpms": rpms}, "profiles": profiles}})
    with contextlib.suppress(OSError):  # an unwritable cache costs the parse next time, nothing else
        write_atomic(cached, json.dumps(docs))
    return docs


def load_repo(pool: solv.Pool, md: RepoMetadata) -> solv.Repo:
    """Add the repo's packages to `pool`, from the cached .solv (prepare_solvs has checked or written it); only
    without one is the XML parsed here. Reads only. Priorities are not in the file: callers set them, and call
    addfileprovides (with the set's .solv files, it finds the file provides all there). The .solv holds primary's
    file lists (/etc, */bin/), not filelists.xml's: add_filelists adds those when a request names another path."""
    if md.solv_cache is None:
        return _xml_repo(pool, md)
    repo = pool.add_repo(md.repo.name)
    f = solv.xfopen(str(md.solv_cache))
    ok = f is not None and repo.add_solv(f, 0)
    if f is not None:
        f.close()
    if not ok:  # only when libsolv refuses its own, checksummed output; the XML is still there
        repo.empty(True)
        _add_xml(repo, md)
    return repo


def add_filelists(repo: solv.Repo, md: RepoMetadata) -> None:
    """Add filelists.xml to `repo` (loaded by load_repo), for a request naming a file that only it lists. A repo
    parsed from the XML has them already: it gets them again, which changes no answer."""
    if md.filelists is not None:
        if not _add_rpmmd(repo, md.filelists, "FL", _FILELISTS, f"repo {md.repo.name!r} ({md.url})", lean=False):
            raise RepositoryError(f"repo {md.repo.name!r} ({md.url}): {md.filelists.name}: cannot parse: "
                                  f"{repo.pool.errstr}", hint=f"remove {md.filelists} from the cache if it was "
                                                              "damaged there")
        repo.internalize()


def _xml_repo(pool: solv.Pool, md: RepoMetadata) -> solv.Repo:
    repo = pool.add_repo(md.repo.name)
    _add_xml(repo, md)
    return repo


def _valid_solv(path: Path) -> bool:
    """Whether the file ends with the sha256 of what precedes it (hashed from a mapping: it is tens of MiB). A
    file found good is not hashed again while it is the same file: `<name>.ok` records its inode, size and
    mtime (every write is a new file, renamed into place)."""
    stamp = path.with_name(path.name + ".ok")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            identity = f"{st.st_ino} {st.st_size} {st.st_mtime_ns}\n"
            with contextlib.suppress(OSError):
                if stamp.read_text() == identity:
                    return True
            if st.st_size <= _TRAILER:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m, memoryview(m) as view:
                if hashlib.sha256(view[:-_TRAILER]).digest() != view[-_TRAILER:]:
                    return False
    except (OSError, ValueError):
        return False
    with contextlib.suppress(OSError):  # without it the file is hashed again next time, nothing else
        write_atomic(stamp, identity)
    return True


def _write_solv(repo: solv.Repo, first: Any, md: RepoMetadata, fileprovides: Sequence[int]) -> None:
    """Write `repo` (parsed from md's XML by _add_xml, with the file provides addfileprovides gave it) as md's
    .solv + sha256 trailer, atomically: its packages and their primary.xml data (`first`, its first repodata),
    without filelists.xml's, listing the `fileprovides` it holds: all the pool's, as libdnf lists them."""
    assert md.solv_cache is not None
    for i in fileprovides:
        first.add_idarray(solv.SOLVID_META, solv.REPOSITORY_ADDEDFILEPROVIDES, i)
    first.internalize()
    out = md.solv_cache
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        f = solv.xfopen(tmp, "w")
        if f is None or not repo.write_first_repodata(f) or not f.close():
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


def _add_xml(repo: solv.Repo, md: RepoMetadata) -> Any:
    """Parse md's XML into `repo`: primary.xml into the repo's first repodata (returned: _write_solv writes it
    alone), filelists.xml into one of its own whose strings stay out of the pool's (REPO_LOCALPOOL)."""
    first = repo.add_repodata(0)
    what = f"repo {md.repo.name!r} ({md.url})"
    for path, language, flags in ((md.primary, "", solv.Repo.REPO_REUSE_REPODATA), (md.filelists, "FL", _FILELISTS)):
        if path is None:
            continue
        if not _add_rpmmd(repo, path, language, flags, what, lean=path is md.primary):
            raise RepositoryError(f"{what}: {path.name}: cannot parse: {repo.pool.errstr}",
                                  hint=f"remove {path} from the cache if it was damaged there")
    repo.internalize()
    return first


def _add_rpmmd(repo: solv.Repo, path: Path, language: str, flags: int, what: str, lean: bool) -> bool:
    """Parse one metadata file into `repo` (`lean`: without the descriptions); whether libsolv could. A .gz is
    decompressed here, bounded (libsolv's own reader has no bound), into a nameless file beside it that libsolv
    parses as plain XML: decompressed once, where checking the bound and letting libsolv decompress again cost
    both; a file, not memory, because a large filelists.xml is hundreds of MiB."""
    if not lean and not path.name.endswith(".gz"):
        return _parse(repo, solv.xfopen(str(path)), language, flags, what, path)
    try:
        plain = tempfile.TemporaryFile(dir=path.parent)  # noqa: SIM115  (closed below)
    except OSError:  # a read-only cache: the system's temp dir
        plain = tempfile.TemporaryFile()  # noqa: SIM115
    with plain:
        data = path.read_bytes()
        # primary.xml: decompressed by a child while this process takes the texts out of it (_Lean)
        if not (lean and path.name.endswith(".gz") and _lean(plain, compression.feed_forked, path.name, data)):
            plain.seek(0)
            plain.truncate()
            if lean:
                _lean(plain, compression.feed, path.name, data)
            else:
                compression.feed(path.name, data, plain.write)
        plain.flush()
        plain.seek(0)
        return _parse(repo, solv.xfopen_fd("", plain.fileno()), language, flags, what, path)  # it dup()s the fd


def _lean(plain: IO[bytes], feed: Callable[[str, bytes, Callable[[bytes], object]], object], name: str,
          data: bytes) -> bool:
    """`feed` the decompressed `data` through a _Lean into `plain`; whether `feed` says it gave all of it."""
    out = _Lean(plain.write)
    if feed(name, data, out) is False:
        return False
    out.close()
    return True


class _Lean:
    """A writer that passes primary.xml on without the elements of _UNREAD, piece by piece. Every match lies in
    one package's entry, so the end of a piece from its last entry's start on waits for the next piece."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._rest = b""

    def __call__(self, piece: bytes) -> None:
        data = self._rest + piece if self._rest else piece
        cut = data.rfind(b"<package ")
        if cut <= 0:  # no entry starts after the first one
            if len(data) <= _HOLD:
                self._rest = data
                return
            cut = len(data)  # an entry larger than any real one: passed on (less is left out)
        self._rest = data[cut:]
        self._out(memoryview(data)[:cut])  # (re reads a view: the piece is not copied once more)

    def close(self) -> None:
        self._out(self._rest)
        self._rest = b""

    def _out(self, data: bytes | memoryview) -> None:
        texts, package = _UNREAD
        self._write(package.sub(b"", texts.sub(b"", data)))


def _parse(repo: solv.Repo, f: Any, language: str, flags: int, what: str, path: Path) -> bool:
    if f is None:  # handing libsolv no file would crash it
        raise RepositoryError(f"{what}: cannot open {path}")
    try:
        return bool(repo.add_rpmmd(f, language, flags))
    finally:
        f.close()
