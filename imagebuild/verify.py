"""`imagebuild verify`: what a built image really has installed, compared with the lock's BOM.

The installed set comes from one of these:

* `installed_from_rootfs(tar, family)`: a root filesystem tarball (plain, gzip, bzip2, xz or zstd). It is
  read in one streaming pass (a second one only when a symlink or hard link points outside what the first
  collected); only the package database is kept, nothing else is extracted and nothing of the image is run.

  - deb: `var/lib/dpkg/status`. A stanza counts when dpkg has the package's files unpacked and configured:
    the third word of `Status` is `installed` (or `triggers-pending` / `triggers-awaited`: configured, only
    triggers outstanding) and the error flag is `ok`. The selection (first word) does not matter:
    `hold ok installed` (`apt-mark hold`) and `deinstall ok installed` are installed. `config-files`,
    `not-installed`, `half-installed`, `unpacked` and `half-configured` packages do not count. Version and
    architecture are the `Version` and `Architecture` fields, as `dpkg-query -W -f '${Version} ${Architecture}'`
    prints them. dpkg's journal (`var/lib/dpkg/updates/NNNN`, left by an interrupted dpkg) is applied over
    the status file as dpkg-query does. Note that `dpkg-query -W` itself also lists `config-files` packages.
  - rpm: the rpmdb directory (`var/lib/rpm`, or `usr/lib/sysimage/rpm` as on Fedora / EL10, following a
    `var/lib/rpm -> ../../usr/lib/sysimage/rpm` symlink): sqlite (`rpmdb.sqlite` with its `-wal`/`-shm`),
    BDB (`Packages`, read by rpm's bdb_ro backend) or ndb (`Packages.db`). Its files are copied to a temp
    directory and the host's `rpm --dbpath DIR -qa --qf '%{NAME} %{EVR} %{ARCH}\\n'` runs with `LC_ALL=C`.
    `gpg-pubkey` entries (imported signing keys: `gpg-pubkey 8783d481-63ceb953 (none)`) are not packages
    and are dropped.

* `installed_from_image(path, family, arch=None)`: a container image archive, as `podman save --format
  oci-archive` / `buildah push IMAGE oci-archive:FILE` (an OCI image layout: `index.json`, `blobs/sha256/`)
  or `podman save --format docker-archive` (`manifest.json`) write it. The image manifest is found from
  `index.json` (through nested image indexes; with several manifests, the one whose `platform.architecture`
  is `arch`, given in deb or rpm spelling: amd64/x86_64, arm64/aarch64), then its layers (tar, gzip or zstd)
  are applied bottom to top with OCI whiteouts (`.wh.NAME` deletes NAME of the layers below, `.wh..wh..opq`
  empties a directory of them). Every blob is checked against its digest while it streams past (a
  docker-archive layer against its config's `rootfs.diff_ids`); only the package database and the symlinks
  are kept, and the database is read as in a root filesystem tarball.

* `installed_from_list(path)`: a captured `dpkg-query -W -f '${Package} ${Version} ${Architecture}\\n'` or
  `rpm -qa --qf '%{NAME} %{EVR} %{ARCH}\\n'` output (any order, blank lines and `#` comments allowed,
  `gpg-pubkey` lines dropped), or a copy of a dpkg status file (read like the one in a tarball).

`compare(expected, actual, family)` is `bomdiff.diff_boms(expected, actual, family)`: *added* = in the image
but not in the lock, *removed* = in the lock but not in the image, *upgraded*/*downgraded* = the image has
a newer/older version than the lock. `has_drift` is the exit semantic (1 when true).

Every unusable input (missing, unreadable or corrupt file, not a tarball, not an image archive, a missing or
damaged blob, an unknown media type, no package database, a database rpm cannot read, no `rpm` on the host)
is a `ConfigError` (exit 2) naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, TypeVar

from imagebuild.apt.packages import R_ARCH, R_NAME, R_STATUS, R_VERSION, parse_stanzas
from imagebuild.bom import BomEntry, parse_bom
from imagebuild.bomdiff import BomDiff, diff_boms
from imagebuild.config import Family
from imagebuild.errors import ConfigError, ImagebuildError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DPKG_STATUS", "DPKG_UPDATES", "RPM_DB_DIRS", "compare", "entries_from_dpkg_status", "has_drift",
    "installed_from_image", "installed_from_list", "installed_from_rootfs",
]

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_UPDATES = "var/lib/dpkg/updates"  # dpkg's journal, merged into status at the end of every dpkg run
#: Where rpm keeps its database, in the order they are looked at (EL <= 9, then Fedora >= 36 / EL10).
RPM_DB_DIRS = ("var/lib/rpm", "usr/lib/sysimage/rpm")
_RPM_MACROS = "usr/lib/rpm/macros"  # the image's %_dbpath, only read when both RPM_DB_DIRS hold a database
_RPM_DB_FILES = ("rpmdb.sqlite", "Packages", "Packages.db")  # sqlite, BDB, ndb
_RPM_SKIP = frozenset({".rpm.lock", ".dbenv.lock"})  # lock files; BDB environments `__db.*` are skipped too
_RPM_QF = "%{NAME} %{EVR} %{ARCH}\\n"
_GPG_PUBKEY = "gpg-pubkey"
_INSTALLED_STATES = frozenset({"installed", "triggers-pending", "triggers-awaited"})
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_RPM_TIMEOUT = 600
_MAX_LINK_HOPS = 40


# -- comparing ------------------------------------------------------------------------------------------


def compare(expected: Iterable[BomEntry], actual: Iterable[BomEntry], family: Family) -> BomDiff:
    """The drift of the image (`actual`) from the lock (`expected`), with the family's version ordering."""
    return diff_boms(expected, actual, family)


def has_drift(diff: BomDiff) -> bool:
    """True when the image differs from the lock (verify exits 1)."""
    return diff.has_changes


# -- dpkg status ----------------------------------------------------------------------------------------


def entries_from_dpkg_status(data: bytes, source: str, updates: Iterable[tuple[str, bytes]] = ()) -> list[BomEntry]:
    """The installed packages of a dpkg status file (see the module docstring for what counts).

    `updates` are dpkg's journal (`var/lib/dpkg/updates/NNNN`: (name, bytes)), applied over the status in
    numeric order as dpkg-query does; a non-empty journal means dpkg was interrupted in the image.
    """
    merged: dict[tuple[str, str], tuple[str, ...]] = {}
    journal = sorted(((int(n), n, d) for n, d in updates if n.isdigit()), key=lambda t: t[0])
    for src, blob in [(source, data), *((f"{source} (updates/{n})", d) for _, n, d in journal)]:
        if not blob.strip():
            continue
        try:
            records = parse_stanzas(blob)
        except ImagebuildError as e:
            raise ConfigError(f"{src}: not a dpkg status file: {e.message}") from None
        for rec in records:
            merged[(rec[R_NAME], rec[R_ARCH])] = rec
    out = []
    for rec in merged.values():
        name = rec[R_NAME]
        words = rec[R_STATUS].split()
        if len(words) != 3:
            raise ConfigError(f"{source}: package {name}: bad Status {rec[R_STATUS]!r}",
                              hint="expected `want flag state`, e.g. `install ok installed`")
        _want, flag, state = words
        if flag != "ok" or state not in _INSTALLED_STATES:
            continue
        if not rec[R_VERSION] or not rec[R_ARCH]:
            raise ConfigError(f"{source}: installed package {name} has no Version or Architecture")
        out.append(BomEntry(name, rec[R_ARCH], rec[R_VERSION]))
    return out


# -- captured lists -------------------------------------------------------------------------------------


def _drop_pseudo(entries: Iterable[BomEntry]) -> list[BomEntry]:
    return [e for e in entries if e.name != _GPG_PUBKEY]


def installed_from_list(path: Path) -> list[BomEntry]:
    """A captured `dpkg-query -W` / `rpm -qa` listing (`name version arch` lines), or a dpkg status file."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the installed-package list: {e.strerror}",
                          hint="pass the output of dpkg-query -W -f '${Package} ${Version} ${Architecture}\\n' "
                               "or rpm -qa --qf '%{NAME} %{EVR} %{ARCH}\\n'") from None
    if b"\0" in data:
        raise ConfigError(f"{path}: binary data, not an installed-package list",
                          hint="a root filesystem tarball is read with --rootfs")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first.startswith("Package:"):
        return entries_from_dpkg_status(data, str(path))
    return _drop_pseudo(parse_bom(text, str(path)))


# -- reading the tarball --------------------------------------------------------------------------------


def _norm(name: str) -> str:
    """A member name as a path relative to the image root: `./var/x`, `/var/x`, `var//x` -> `var/x`."""
    p = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    return "" if p == "." else p


def _parents(path: str) -> Iterator[str]:
    """The directories `path` is in, innermost first, the root (`""`) last."""
    while path:
        path = posixpath.dirname(path)
        yield path


@dataclass
class _Members:
    """What one pass over a tarball (or over the layers of an image, merged) collected."""

    files: dict[str, bytes] = field(default_factory=dict)  # regular files that were wanted
    hardlinks: dict[str, str] = field(default_factory=dict)  # wanted name -> link target (normalized)
    symlinks: dict[str, str] = field(default_factory=dict)  # every symlink: name -> raw target
    names: set[str] = field(default_factory=set)  # every member name (normalized; of an image: of any layer)

    def resolve(self, path: str) -> str:
        """`path` with every symlink among its components followed inside the image root (like chroot)."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            done.append(parts.pop(0))
            cur = "/".join(done)
            target = self.symlinks.get(cur)
            if target is None:
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return cur  # a loop: give up on this path, it will not be found
            base = "" if target.startswith("/") else posixpath.dirname(cur)
            parts = [p for p in _norm(posixpath.join("/", base, target)).split("/") if p] + parts
            done = []
        return "/".join(done)

    def content(self, path: str) -> bytes | None:
        """The bytes of the regular file at `path` (already resolved), following one hard link."""
        if path in self.files:
            return self.files[path]
        target = self.hardlinks.get(path)
        return self.files.get(target) if target is not None else None


def _take(tf: tarfile.TarFile, m: tarfile.TarInfo, wanted: Callable[[str], bool], into: _Members) -> None:
    """Note member `m` of a tar stream: every symlink, the wanted regular files and hard links. A later member
    of the same name replaces an earlier one, as on extraction."""
    name = _norm(m.name)
    into.names.add(name)
    into.files.pop(name, None)
    into.hardlinks.pop(name, None)
    into.symlinks.pop(name, None)
    if m.issym():
        into.symlinks[name] = m.linkname
    elif wanted(name):
        if m.islnk():
            into.hardlinks[name] = _norm(m.linkname)
        elif m.isreg():
            f = tf.extractfile(m)
            if f is not None:
                into.files[name] = f.read()


_TarErrors = tuple[type[BaseException], ...]
#: what a damaged tar stream, or its gzip, bzip2 or xz compression, raises while it is read
_READ_ERRORS: _TarErrors = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


def _zstd_reader(raw: IO[bytes]) -> tuple[IO[bytes], _TarErrors]:
    """A zstd stream decoded, all its frames (pzstd and zstd:chunked layers have many), and its errors."""
    import zstandard

    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
    return reader, (zstandard.ZstdError,)


def _open_stream(tar: Path) -> tuple[IO[bytes], Callable[[], None], _TarErrors]:
    """The tarball as a byte stream (zstd decoded here; tarfile handles gzip, bzip2 and xz itself)."""
    try:
        raw = open(tar, "rb")  # noqa: SIM115 - closed by the returned closer
    except OSError as e:
        raise ConfigError(f"{tar}: cannot read the root filesystem tarball: {e.strerror}") from None
    if raw.read(4) != _ZSTD_MAGIC:
        raw.seek(0)
        return raw, raw.close, ()
    raw.seek(0)
    reader, codec_errors = _zstd_reader(raw)

    def close() -> None:
        reader.close()
        raw.close()

    return reader, close, codec_errors


def _scan(tar: Path, wanted: Callable[[str], bool]) -> _Members:
    """One streaming pass over a root filesystem tarball."""
    stream, close, codec_errors = _open_stream(tar)
    into = _Members()
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for m in tf:
                _take(tf, m, wanted, into)
    except (*_READ_ERRORS, *codec_errors) as e:
        raise ConfigError(f"{tar}: not a readable root filesystem tarball: {e}",
                          hint="pass a .tar, .tar.gz, .tar.xz, .tar.bz2 or .tar.zst of the image root") from None
    finally:
        close()
    return into


_MAX_PASSES = 4  # the first pass, then one per level of indirection (dir symlink, hard link)
#: one pass over an image's filesystem: what it has of the paths the predicate wants, and every symlink
_Pass = Callable[[Callable[[str], bool]], _Members]


class _Image:
    """The package-database part of an image's root filesystem, collected by passes of `scan`."""

    def __init__(self, source: str, scan: _Pass) -> None:
        self.source = source  # how messages name the image
        self._pass = scan
        self._files: set[str] = {DPKG_STATUS, _RPM_MACROS}  # what the passes so far kept ...
        self._dirs: set[str] = {DPKG_UPDATES, *RPM_DB_DIRS}  # ... and whose direct children they kept
        self.m = _Members()
        self._scan()

    def _wanted(self, name: str) -> bool:
        return name in self._files or posixpath.dirname(name) in self._dirs

    def _scan(self) -> None:
        files, dirs = frozenset(self._files), frozenset(self._dirs)
        self.m = self._pass(lambda n: n in files or posixpath.dirname(n) in dirs)

    def _ensure(self, files: Iterable[str] = (), dirs: Iterable[str] = ()) -> None:
        """Make sure `files` and the direct children of `dirs` are kept, with the targets of their hard links."""
        new_files = {f for f in files if f in self.m.names and not self._wanted(f)}
        new_dirs = set(dirs) - self._dirs
        for _ in range(_MAX_PASSES):
            targets = {t for n, t in self.m.hardlinks.items() if self._wanted(n) and not self._wanted(t)}
            new_files |= targets
            if not new_files and not new_dirs:
                return
            self._files |= new_files
            self._dirs |= new_dirs
            new_files, new_dirs = set(), set()
            self._scan()

    def file(self, path: str) -> bytes | None:
        real = self.m.resolve(path)
        self._ensure(files=[real])
        return self.m.content(real)

    def children(self, d: str) -> dict[str, bytes]:
        """{base name: bytes} of the regular files directly in directory `d` (already resolved)."""
        self._ensure(dirs=[d])
        out: dict[str, bytes] = {}
        for n in sorted({*self.m.files, *self.m.hardlinks}):
            if posixpath.dirname(n) == d:
                data = self.m.content(n)
                if data is not None:
                    out[posixpath.basename(n)] = data
        return out

    def dpkg_status(self) -> tuple[bytes, dict[str, bytes]] | None:
        """The dpkg status file and its journal (`updates/`), or None when the image has no status file."""
        data = self.file(DPKG_STATUS)
        if data is None:
            return None
        return data, self.children(self.m.resolve(DPKG_UPDATES))

    def rpm_db(self) -> tuple[str, dict[str, bytes]] | None:
        """(directory, {file name: bytes}) of the image's rpmdb, or None when it has none."""
        reals = list(dict.fromkeys(self.m.resolve(d) for d in RPM_DB_DIRS))
        self._ensure(dirs=reals)
        found: dict[str, dict[str, bytes]] = {}
        for real in reals:
            files = {b: d for b, d in self.children(real).items() if b not in _RPM_SKIP and not b.startswith("__db.")}
            if any(f in files for f in _RPM_DB_FILES):
                found[real] = files
        if not found:
            return None
        if len(found) > 1:
            chosen = self._configured_dbpath(found)
            return chosen, found[chosen]
        ((d, files),) = found.items()
        return d, files

    def _configured_dbpath(self, found: dict[str, dict[str, bytes]]) -> str:
        macros = self.file(_RPM_MACROS) or b""
        for line in macros.decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "%_dbpath":
                value = (parts[1].replace("%{_var}", "/var").replace("%{_usr}", "/usr")
                         .replace("%{_prefix}", "/usr"))
                real = self.m.resolve(_norm(value))
                if real in found:
                    return real
        raise ConfigError(f"{self.source}: rpm databases in both /{' and /'.join(sorted(found))}, and the image's "
                          f"/{_RPM_MACROS} does not say which one rpm uses",
                          hint="remove the stale one from the image")


def _what_else(image: _Image, family: Family) -> str:
    if family is Family.DEB and image.rpm_db() is not None:
        return " (it has an rpm database: is this an rpm image?)"
    if family is Family.RPM and image.dpkg_status() is not None:
        return " (it has a dpkg status file: is this a deb image?)"
    return ""


@dataclass(frozen=True)
class _Kind:
    """How the messages about one kind of input name it, and what they suggest when it has no database."""

    noun: str
    deb_hint: str
    rpm_hint: str


_ROOTFS = _Kind("root filesystem tarball", "pass the tarball of a Debian/Ubuntu image root",
                "pass the tarball of an rpm (Rocky/RHEL/Fedora) image root")
_CONTAINER = _Kind("image", "pass a Debian/Ubuntu-based image (distroless and scratch images have no package database)",
                   "pass an rpm (Rocky/RHEL/Fedora)-based image (distroless and scratch images have no package "
                   "database)")


def _installed(image: _Image, family: Family, kind: _Kind) -> list[BomEntry]:
    if family is Family.DEB:
        status = image.dpkg_status()
        if status is None:
            raise ConfigError(f"{image.source}: no /{DPKG_STATUS} in the {kind.noun}{_what_else(image, family)}",
                              hint=kind.deb_hint)
        data, updates = status
        return entries_from_dpkg_status(data, f"{image.source}:/{DPKG_STATUS}", updates.items())
    db = image.rpm_db()
    if db is None:
        raise ConfigError(f"{image.source}: no rpm database (/{' or /'.join(RPM_DB_DIRS)}) in the "
                          f"{kind.noun}{_what_else(image, family)}", hint=kind.rpm_hint)
    return _rpm_qa(image.source, *db)


def installed_from_rootfs(tar: Path, family: Family) -> list[BomEntry]:
    """The packages installed in a root filesystem tarball, as BOM entries (unsorted)."""
    if tar.is_dir():
        raise ConfigError(f"{tar}: is a directory, not a root filesystem tarball",
                          hint="tar the image root first (tar -C ROOT -cf rootfs.tar .)")
    return _installed(_Image(str(tar), lambda wanted: _scan(tar, wanted)), family, _ROOTFS)


def _rpm_qa(source: str, where: str, files: dict[str, bytes]) -> list[BomEntry]:
    rpm = shutil.which("rpm")
    if rpm is None:
        raise ConfigError(f"{source}: reading its rpm database needs `rpm` on this host, and there is none",
                          hint="apt-get install rpm (or dnf install rpm)")
    db_source = f"{source}:/{where}"
    with tempfile.TemporaryDirectory(prefix="imagebuild-rpmdb-") as tmp:
        dbdir = Path(tmp) / "db"
        dbdir.mkdir()
        for base, data in files.items():
            (dbdir / base).write_bytes(data)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "LANGUAGE": "C", "HOME": tmp}
        try:
            res = subprocess.run([rpm, "--dbpath", str(dbdir), "-qa", "--qf", _RPM_QF], capture_output=True,
                                 env=env, timeout=_RPM_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ConfigError(f"{db_source}: cannot run {rpm}: {e}") from None
    err = res.stderr.decode("utf-8", "replace").strip()
    if res.returncode != 0:
        first = next((ln for ln in err.splitlines() if ln.startswith("error:")), err.splitlines()[0] if err else "")
        raise ConfigError(f"{db_source}: rpm cannot read this database (exit {res.returncode}): {first}",
                          hint="the rpmdb in the image is damaged, or newer than this host's rpm")
    out = []
    for n, line in enumerate(io.StringIO(res.stdout.decode("utf-8", "replace")), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise ConfigError(f"{db_source}: rpm -qa line {n}: expected `name evr arch`, got {line.rstrip()!r}")
        out.append(BomEntry(parts[0], parts[2], parts[1]))
    return _drop_pseudo(out)


# -- reading a container image archive ------------------------------------------------------------------

_INDEX_TYPES = frozenset({"application/vnd.oci.image.index.v1+json",
                          "application/vnd.docker.distribution.manifest.list.v2+json"})
_MANIFEST_TYPES = frozenset({"application/vnd.oci.image.manifest.v1+json",
                             "application/vnd.docker.distribution.manifest.v2+json"})
_LAYER_TYPES = frozenset({
    *(f"application/vnd.oci.image.layer{kind}.v1.tar{codec}"
      for kind in ("", ".nondistributable") for codec in ("", "+gzip", "+zstd")),
    "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})
#: deb and rpm architecture names -> OCI's `platform.architecture` (Go's GOARCH); others are taken as they are
_OCI_ARCH = {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64", "i386": "386",
             "i686": "386", "armhf": "arm", "armv7hl": "arm", "ppc64el": "ppc64le", "ppc64le": "ppc64le",
             "s390x": "s390x", "riscv64": "riscv64"}
_DIGEST_LEN = {"sha256": 64, "sha512": 128}
_DIGEST_HINT = "expected sha256:<64 hex digits>"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_JSON = 4 << 20  # an index, manifest or config is a few KiB: a bigger blob is not one
_CHUNK = 1 << 20
_SAVE_HINT = "save the image again (podman save --format oci-archive -o FILE IMAGE)"
_FORMAT_HINT = "the OCI image spec and Docker's image manifest v2 schema 2 are read"
_T = TypeVar("_T")
_JSON_KINDS: dict[type, str] = {list: "a list", dict: "an object", str: "a string"}


def _get(doc: object, key: str, kind: type[_T], where: str) -> _T:
    """`doc[key]` of a JSON document, which must be a `kind`."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key!r} is missing or not {_JSON_KINDS.get(kind, kind.__name__)}",
                          hint=_FORMAT_HINT)
    return value


def _blob_name(digest: str, where: str) -> str:
    """The member of an OCI layout that holds the blob `digest` (`sha256:HEX`)."""
    alg, _, hexdigest = digest.partition(":")
    if len(hexdigest) != _DIGEST_LEN.get(alg) or hexdigest.strip("0123456789abcdef"):
        raise ConfigError(f"{where}: bad digest {digest!r}", hint=_DIGEST_HINT)
    return f"blobs/{alg}/{hexdigest}"


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Digesting(io.RawIOBase):
    """A read-only stream over `f` that hashes what passes through it (when given an algorithm)."""

    def __init__(self, f: _Readable, algorithm: str | None) -> None:
        super().__init__()
        self._f = f
        self._hash = hashlib.new(algorithm) if algorithm else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._f.read(len(view))
        view[:len(data)] = data
        if self._hash is not None:
            self._hash.update(data)
        return len(data)

    def digest(self) -> str:
        assert self._hash is not None
        return f"{self._hash.name}:{self._hash.hexdigest()}"


def _drain(f: _Readable) -> None:
    while f.read(_CHUNK):
        pass


def _decoded(blob: io.BufferedReader) -> _Readable:
    """A layer blob decompressed by its magic number (gzip or zstd), or as it is (a tar)."""
    head = blob.peek(4)[:4]
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if head == _ZSTD_MAGIC:
        return _zstd_reader(blob)[0]
    return blob


@dataclass(frozen=True)
class _Layer:
    """One layer of an image archive and the digest it is known by."""

    member: str  # the blob's name in the archive
    digest: str  # `sha256:HEX`
    of_content: bool  # True: the digest of the uncompressed tar (docker-archive's diff_ids), else of the blob


@dataclass(frozen=True)
class _Manifest:
    """An image manifest an index lists, with the platform it says (if any)."""

    digest: str
    os: str | None
    arch: str | None
    variant: str | None

    @property
    def label(self) -> str:
        if self.arch is None:
            return f"{self.digest} (no platform)"
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)


def _apply_layer(below: _Members, tf: tarfile.TarFile, wanted: Callable[[str], bool]) -> None:
    """Put one layer (a tar stream) over `below`, the layers under it merged, as a container runtime does.

    A member replaces what was at its path below, a non-directory a whole directory tree too; a whiteout
    `.wh.NAME` deletes NAME below, `.wh..wh..opq` everything below in its directory. Whiteouts do not touch the
    layer's own members. A hard link gets the content of its target (in the same layer) here.
    """
    below_dirs = {p for n in (*below.files, *below.hardlinks, *below.symlinks) for p in _parents(n)}
    layer = _Members()
    hidden: set[str] = set()  # directories whose contents below this layer hides
    for m in tf:
        name = _norm(m.name)
        parent, base = posixpath.split(name)
        if base == _OPAQUE:
            if parent in below_dirs:
                hidden.add(parent)
            continue
        whiteout = base.startswith(_WHITEOUT)
        if whiteout:
            name = posixpath.join(parent, base[len(_WHITEOUT):])
        else:
            _take(tf, m, wanted, layer)
        for kept in (below.files, below.hardlinks, below.symlinks):
            kept.pop(name, None)
        if (whiteout or not m.isdir()) and name in below_dirs:
            hidden.add(name)
    if hidden:
        for kept in (below.files, below.hardlinks, below.symlinks):
            for n in [n for n in kept if any(p in hidden for p in _parents(n))]:
                del kept[n]
    for n, target in list(layer.hardlinks.items()):
        if target in layer.files:
            layer.files[n] = layer.files[target]
            del layer.hardlinks[n]
        elif wanted(target):  # a link to nothing this layer has: there is nothing to read
            del layer.hardlinks[n]
        # else a later pass, which also wants the target, resolves it
    below.files.update(layer.files)
    below.hardlinks.update(layer.hardlinks)
    below.symlinks.update(layer.symlinks)
    below.names |= layer.names


class _Archive:
    """A container image archive (OCI layout or docker-archive), its members read in place, none extracted."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory, not a container image archive",
                              hint="podman save --format oci-archive -o FILE IMAGE writes one")
        try:
            self._tf = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
        except tarfile.TarError:
            raise ConfigError(f"{path}: not a container image archive (not a tar)",
                              hint="podman save --format oci-archive -o FILE IMAGE writes one") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the container image archive: {e.strerror or e}") from None
        try:
            self._members = {_norm(m.name): m for m in self._tf.getmembers()}
        except _READ_ERRORS as e:
            self._tf.close()
            raise ConfigError(f"{path}: not a readable container image archive: {e}", hint=_SAVE_HINT) from None

    def close(self) -> None:
        self._tf.close()

    def _open(self, name: str, what: str) -> IO[bytes]:
        m = self._members.get(name)
        try:
            f = self._tf.extractfile(m) if m is not None else None  # follows links inside the archive
        except KeyError:  # a link to a member the archive does not have
            f = None
        if f is None:
            raise ConfigError(f"{self.path}: {what} is missing: the archive has no file {name}",
                              hint=f"the archive is incomplete: {_SAVE_HINT}")
        return f

    def _check(self, name: str, expected: str, actual: str) -> None:
        if actual != expected:
            raise ConfigError(f"{self.path}: blob {name} is damaged: expected digest {expected}, got {actual}",
                              hint=f"the archive changed after it was written: {_SAVE_HINT}")

    def _json(self, name: str, what: str, digest: str | None = None) -> object:
        """The JSON document in member `name`, checked against `digest` when given."""
        try:
            with self._open(name, what) as f:
                data = f.read(_MAX_JSON + 1)
        except _READ_ERRORS as e:
            raise ConfigError(f"{self.path}: cannot read {what} ({name}): {e}", hint=_SAVE_HINT) from None
        if len(data) > _MAX_JSON:
            raise ConfigError(f"{self.path}: {what} ({name}) is over {_MAX_JSON >> 20} MiB: not image metadata",
                              hint=_FORMAT_HINT)
        if digest is not None:
            alg = digest.partition(":")[0]
            self._check(name, digest, f"{alg}:{hashlib.new(alg, data).hexdigest()}")
        try:
            return json.loads(data)
        except ValueError as e:
            raise ConfigError(f"{self.path}: {what} ({name}) is not JSON: {e}", hint=_FORMAT_HINT) from None

    # which layers, in which order

    def layers(self, arch: str | None) -> list[_Layer]:
        """The layers of the archive's image, bottom first."""
        if "index.json" in self._members:
            return self._oci_layers(arch)
        if "manifest.json" in self._members:
            return self._docker_layers()
        raise ConfigError(f"{self.path}: not a container image archive: it has neither index.json (OCI layout) nor "
                          "manifest.json (docker-archive)",
                          hint="podman save --format oci-archive -o FILE IMAGE writes one; a root filesystem "
                               "tarball is read with --rootfs")

    def _oci_layers(self, arch: str | None) -> list[_Layer]:
        found: list[_Manifest] = []
        others: set[str] = set()
        self._list_manifests(self._json("index.json", "index.json"), "index.json", found, others)
        if not found:
            listed = f" (only {', '.join(sorted(others))})" if others else ""
            raise ConfigError(f"{self.path}: index.json lists no image manifest{listed}", hint=_FORMAT_HINT)
        chosen = _choose(found, arch, f"{self.path}: index.json")
        what = f"image manifest {chosen.digest}"
        manifest = self._json(_blob_name(chosen.digest, f"{self.path}: index.json"), what, chosen.digest)
        out = []
        for n, d in enumerate(_get(manifest, "layers", list, f"{self.path}: {what}"), 1):
            where = f"{self.path}: {what}: layer {n}"
            media_type, digest = _get(d, "mediaType", str, where), _get(d, "digest", str, where)
            if media_type not in _LAYER_TYPES:
                raise ConfigError(f"{where} ({digest}) has the unknown media type {media_type!r}",
                                  hint="tar layers (plain, gzip or zstd) are read; encrypted or other layers are not")
            out.append(_Layer(_blob_name(digest, where), digest, of_content=False))
        return out

    def _list_manifests(self, index: object, what: str, found: list[_Manifest], others: set[str]) -> None:
        """Add the image manifests `index` lists to `found`, following nested indexes; other types to `others`."""
        for n, d in enumerate(_get(index, "manifests", list, f"{self.path}: {what}"), 1):
            where = f"{self.path}: {what}: manifests[{n - 1}]"
            media_type, digest = _get(d, "mediaType", str, where), _get(d, "digest", str, where)
            if media_type in _INDEX_TYPES:
                nested = f"image index {digest}"
                self._list_manifests(self._json(_blob_name(digest, where), nested, digest), nested, found, others)
            elif media_type in _MANIFEST_TYPES:
                platform = d.get("platform")
                p = platform if isinstance(platform, dict) else {}
                found.append(_Manifest(digest, *(v if isinstance(v := p.get(k), str) else None
                                                 for k in ("os", "architecture", "variant"))))
            else:
                others.add(media_type)

    def _docker_layers(self) -> list[_Layer]:
        where = f"{self.path}: manifest.json"
        doc = self._json("manifest.json", "manifest.json")
        if not isinstance(doc, list) or not doc:
            raise ConfigError(f"{where}: not a list of images", hint="podman save --format docker-archive writes one")
        if len(doc) > 1:
            tags = ", ".join(" ".join(map(str, e.get("RepoTags") or ["(untagged)"])) if isinstance(e, dict) else "?"
                             for e in doc)
            raise ConfigError(f"{where}: {len(doc)} images ({tags}): cannot tell which one to read",
                              hint="save one image per archive")
        names = _get(doc[0], "Layers", list, where)
        config_name = _norm(_get(doc[0], "Config", str, where))
        # podman and docker name the config after its digest (HEX.json, or blobs/sha256/HEX in an OCI layout)
        stem = posixpath.basename(config_name).removesuffix(".json")
        config_digest = f"sha256:{stem}" if len(stem) == 64 and not stem.strip("0123456789abcdef") else None
        config = self._json(config_name, "the image config", config_digest)
        diff_ids = _get(_get(config, "rootfs", dict, f"{self.path}: {config_name}"), "diff_ids", list,
                        f"{self.path}: {config_name}: rootfs")
        if len(diff_ids) != len(names) or not all(isinstance(x, str) for x in (*names, *diff_ids)):
            raise ConfigError(f"{self.path}: {config_name}: {len(diff_ids)} rootfs.diff_ids for the {len(names)} "
                              "Layers of manifest.json", hint=_SAVE_HINT)
        for digest in diff_ids:
            _blob_name(digest, f"{self.path}: {config_name}: rootfs.diff_ids")  # only checks its spelling
        return [_Layer(_norm(name), digest, of_content=True) for name, digest in zip(names, diff_ids, strict=True)]

    # the merged filesystem

    def merged(self, layers: list[_Layer], wanted: Callable[[str], bool]) -> _Members:
        """One pass over the layers, bottom to top: the wanted files of the final filesystem, and its symlinks."""
        below = _Members()
        for n, layer in enumerate(layers, 1):
            self._read_layer(layer, f"layer {n} of {len(layers)} ({layer.digest})",
                             lambda tf: _apply_layer(below, tf, wanted))
        return below

    def _read_layer(self, layer: _Layer, what: str, apply: Callable[[tarfile.TarFile], None]) -> None:
        """Stream one layer through `apply`, and check its digest (the digest of all of it: read to the end)."""
        import zstandard

        errors: _TarErrors = (*_READ_ERRORS, zstandard.ZstdError)
        alg = layer.digest.partition(":")[0]
        f = self._open(layer.member, what)
        blob = _Digesting(f, None if layer.of_content else alg)
        content = blob
        try:
            content = _Digesting(_decoded(io.BufferedReader(blob, _CHUNK)), alg if layer.of_content else None)
            with tarfile.open(fileobj=content, mode="r|") as tf:
                apply(tf)
            _drain(content)
            _drain(blob)
        except errors as e:
            if not layer.of_content:  # a damaged blob is best named by its digest
                with contextlib.suppress(*errors):
                    _drain(blob)
                self._check(layer.member, layer.digest, blob.digest())
            raise ConfigError(f"{self.path}: {what}: not a readable tar layer: {e}", hint=_SAVE_HINT) from None
        finally:
            f.close()
        self._check(layer.member, layer.digest, (content if layer.of_content else blob).digest())


def _choose(found: list[_Manifest], arch: str | None, where: str) -> _Manifest:
    """The image manifest to read: the only one, or the one for `arch` (a deb, rpm or OCI architecture name)."""
    images = [m for m in found if m.arch != "unknown"] or found  # buildx lists attestations as unknown/unknown
    want = _OCI_ARCH.get(arch, arch) if arch is not None else None
    if len(images) == 1:
        only = images[0]
        if want is not None and only.arch is not None and only.arch != want:
            raise ConfigError(f"{where}: the image is for {only.label}, not {arch}",
                              hint="pass the image built for this architecture")
        return only
    listed = ", ".join(m.label for m in images)
    if want is None:
        raise ConfigError(f"{where}: {len(images)} image manifests ({listed}) and no architecture to choose by",
                          hint="say the architecture (amd64, arm64, x86_64, aarch64, ...)")
    matches = [m for m in images if m.arch == want]
    if len(matches) > 1:
        matches = [m for m in matches if m.os in (None, "linux")]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(f"{where}: no image manifest for {arch} among {listed}",
                          hint="pass the image built for this architecture")
    raise ConfigError(f"{where}: {len(matches)} image manifests for {arch} ({listed}): cannot tell which one to read",
                      hint="save only the one image (podman save --format oci-archive IMAGE@DIGEST)")


def installed_from_image(path: Path, family: Family, arch: str | None = None) -> list[BomEntry]:
    """The packages installed in a container image archive (OCI layout or docker-archive), as BOM entries.

    `arch` (amd64/x86_64, arm64/aarch64, ...) chooses among the manifests of a multi-platform index.
    """
    archive = _Archive(path)
    try:
        layers = archive.layers(arch)
        return _installed(_Image(str(path), lambda wanted: archive.merged(layers, wanted)), family, _CONTAINER)
    finally:
        archive.close()
