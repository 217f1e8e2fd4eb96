"""`imagebuild verify`: what a built image really has installed, compared with the lock's BOM.

The installed set comes from one of two places:

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

* `installed_from_list(path)`: a captured `dpkg-query -W -f '${Package} ${Version} ${Architecture}\\n'` or
  `rpm -qa --qf '%{NAME} %{EVR} %{ARCH}\\n'` output (any order, blank lines and `#` comments allowed,
  `gpg-pubkey` lines dropped), or a copy of a dpkg status file (read like the one in a tarball).

`compare(expected, actual, family)` is `bomdiff.diff_boms(expected, actual, family)`: *added* = in the image
but not in the lock, *removed* = in the lock but not in the image, *upgraded*/*downgraded* = the image has
a newer/older version than the lock. `has_drift` is the exit semantic (1 when true).

Every unusable input (missing, unreadable or corrupt file, not a tarball, no package database, a database
rpm cannot read, no `rpm` on the host) is a `ConfigError` (exit 2) naming the file.
"""

from __future__ import annotations

import io
import lzma
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from imagebuild.apt.packages import R_ARCH, R_NAME, R_STATUS, R_VERSION, parse_stanzas
from imagebuild.bom import BomEntry, parse_bom
from imagebuild.bomdiff import BomDiff, diff_boms
from imagebuild.config import Family
from imagebuild.errors import ConfigError, ImagebuildError

__all__ = [
    "DPKG_STATUS", "DPKG_UPDATES", "RPM_DB_DIRS", "compare", "entries_from_dpkg_status", "has_drift",
    "installed_from_list", "installed_from_rootfs",
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


@dataclass
class _Members:
    """What one or more passes over the tarball collected."""

    files: dict[str, bytes] = field(default_factory=dict)  # regular files that were wanted
    hardlinks: dict[str, str] = field(default_factory=dict)  # wanted name -> link target (normalized)
    symlinks: dict[str, str] = field(default_factory=dict)  # every symlink: name -> raw target
    names: set[str] = field(default_factory=set)  # every member name (normalized)

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


_TarErrors = tuple[type[BaseException], ...]


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
    import zstandard

    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw)

    def close() -> None:
        reader.close()
        raw.close()

    return reader, close, (zstandard.ZstdError,)


def _scan(tar: Path, wanted: Callable[[str], bool], into: _Members) -> None:
    """One streaming pass: keep the wanted regular files and hard links; note every symlink and name."""
    stream, close, codec_errors = _open_stream(tar)
    errors: _TarErrors = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError,
                          *codec_errors)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for m in tf:
                name = _norm(m.name)
                into.names.add(name)
                if m.issym():  # a later member of the same name replaces an earlier one, as on extraction
                    into.symlinks[name] = m.linkname
                    into.files.pop(name, None)
                    into.hardlinks.pop(name, None)
                    continue
                into.symlinks.pop(name, None)
                if wanted(name):
                    if m.islnk():
                        into.hardlinks[name] = _norm(m.linkname)
                    elif m.isreg():
                        f = tf.extractfile(m)
                        if f is not None:
                            into.files[name] = f.read()
    except errors as e:
        raise ConfigError(f"{tar}: not a readable root filesystem tarball: {e}",
                          hint="pass a .tar, .tar.gz, .tar.xz, .tar.bz2 or .tar.zst of the image root") from None
    finally:
        close()


_MAX_PASSES = 4  # the first pass, then one per level of indirection (dir symlink, hard link)


class _Image:
    """The package-database part of a root filesystem tarball."""

    def __init__(self, tar: Path) -> None:
        self.tar = tar
        if tar.is_dir():
            raise ConfigError(f"{tar}: is a directory, not a root filesystem tarball",
                              hint="tar the image root first (tar -C ROOT -cf rootfs.tar .)")
        self.m = _Members()
        self._files: set[str] = {DPKG_STATUS, _RPM_MACROS}  # what the passes so far kept ...
        self._dirs: set[str] = {DPKG_UPDATES, *RPM_DB_DIRS}  # ... and whose direct children they kept
        self._scan()

    def _wanted(self, name: str) -> bool:
        return name in self._files or posixpath.dirname(name) in self._dirs

    def _scan(self) -> None:
        files, dirs = frozenset(self._files), frozenset(self._dirs)
        _scan(self.tar, lambda n: n in files or posixpath.dirname(n) in dirs, self.m)

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
        raise ConfigError(f"{self.tar}: rpm databases in both /{' and /'.join(sorted(found))}, and the image's "
                          f"/{_RPM_MACROS} does not say which one rpm uses",
                          hint="remove the stale one from the image")


def _what_else(image: _Image, family: Family) -> str:
    if family is Family.DEB and image.rpm_db() is not None:
        return " (it has an rpm database: is this an rpm image?)"
    if family is Family.RPM and image.dpkg_status() is not None:
        return " (it has a dpkg status file: is this a deb image?)"
    return ""


def installed_from_rootfs(tar: Path, family: Family) -> list[BomEntry]:
    """The packages installed in a root filesystem tarball, as BOM entries (unsorted)."""
    image = _Image(tar)
    if family is Family.DEB:
        status = image.dpkg_status()
        if status is None:
            raise ConfigError(f"{tar}: no /{DPKG_STATUS} in the root filesystem tarball{_what_else(image, family)}",
                              hint="pass the tarball of a Debian/Ubuntu image root")
        data, updates = status
        return entries_from_dpkg_status(data, f"{tar}:/{DPKG_STATUS}", updates.items())
    db = image.rpm_db()
    if db is None:
        raise ConfigError(f"{tar}: no rpm database (/{' or /'.join(RPM_DB_DIRS)}) in the root filesystem "
                          f"tarball{_what_else(image, family)}",
                          hint="pass the tarball of an rpm (Rocky/RHEL/Fedora) image root")
    return _rpm_qa(tar, *db)


def _rpm_qa(tar: Path, where: str, files: dict[str, bytes]) -> list[BomEntry]:
    rpm = shutil.which("rpm")
    if rpm is None:
        raise ConfigError(f"{tar}: reading its rpm database needs `rpm` on this host, and there is none",
                          hint="apt-get install rpm (or dnf install rpm)")
    source = f"{tar}:/{where}"
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
            raise ConfigError(f"{source}: cannot run {rpm}: {e}") from None
    err = res.stderr.decode("utf-8", "replace").strip()
    if res.returncode != 0:
        first = next((ln for ln in err.splitlines() if ln.startswith("error:")), err.splitlines()[0] if err else "")
        raise ConfigError(f"{source}: rpm cannot read this database (exit {res.returncode}): {first}",
                          hint="the rpmdb in the tarball is damaged, or newer than this host's rpm")
    out = []
    for n, line in enumerate(io.StringIO(res.stdout.decode("utf-8", "replace")), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise ConfigError(f"{source}: rpm -qa line {n}: expected `name evr arch`, got {line.rstrip()!r}")
        out.append(BomEntry(parts[0], parts[2], parts[1]))
    return _drop_pseudo(out)
