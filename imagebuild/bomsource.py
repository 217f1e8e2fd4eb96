"""The two sides of `bom diff OLD NEW`: BOM files, `boms/` directories, locks and project directories, on disk
or at a git revision.

A side is one of

* a **BOM file** (`name version arch` lines, see `imagebuild.bom`) — a single BOM;
* a **lock** (`snapshots.lock`, recognised by its content: a JSON object) — one BOM per lock target, named
  `<target>-<arch>.bom` as `imagebuild lock` names the files in `boms/`, carrying each package's sha256;
* a **`boms/` directory** — its `*.bom` files;
* a **project directory** — its `snapshots.lock` when it has one (the lock is what the BOMs are written from, and
  it carries the sha256 the integrity check needs), else its `boms/` directory.

Every kind but the BOM file is a *set* of BOMs, matched with the other side's by file name; a single BOM is only
compared with a single BOM.

A spec is read as a path first: **an existing path (relative to cwd) wins** over a git revision of the same name.
Anything else is a git revision, optionally with a path, read from the repository cwd is in:

* `REV` — the directory cwd is in, at REV (`REV:<cwd relative to the repository top>`, as `git rev-parse
  --show-prefix` says). Run in a project directory, `imagebuild bom diff main HEAD` compares that project at
  the two revisions; run at the repository top, the top-level tree.
* `REV:path` — `path` at REV, relative to the repository top (git's own rule); `REV:./path` and `REV:../path`
  are relative to cwd. The path may name any of the kinds above (`origin/main:examples/gpu-cluster`,
  `HEAD~1:boms`, `v1.2:boms/compute-amd64.bom`, `HEAD:snapshots.lock`).

Git is only read, never checked out: `git cat-file --batch-check` resolves the names, `git ls-tree -z` lists
trees and one `git cat-file --batch` reads every blob needed; always with `LC_ALL=C` and machine formats. A spec
that is neither a path nor a revision, a revision without that path, git missing, or cwd outside a repository
are `ConfigError`s (exit 2) naming the spec.

Each BOM also knows, when it can, the operating system it is for (`OsRelease`, for the package URLs the gate's
allow rules may match): the distro its lock target or its BOM header names, mapped by `imagebuild.purl.os_release`
with the `os` key of that distro in the project's `imagebuild.toml` (the one next to the lock or to `boms/`, at the
same revision), else the known Debian/Ubuntu codenames and `rocky9`-like rpm names. An explicit `os` given to
`read_side` applies to every BOM instead.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from imagebuild.config import CONFIG_NAME, Distro, Family
from imagebuild.errors import ConfigError
from imagebuild.lockfile import LOCK_NAME, Lock, LockedTarget, parse_lock
from imagebuild.purl import OsRelease, os_release

BOM_DIR = "boms"
BOM_SUFFIX = ".bom"

_HEADER_DISTRO = re.compile(r"\bdistro[ \t:=]+([A-Za-z0-9][A-Za-z0-9._+-]*)")
_HEADER_FAMILY = re.compile(r"\bfamily[ \t:=]+(deb|rpm)\b", re.IGNORECASE)
_OS_SPEC = re.compile(r"^([a-z][a-z0-9._]*)-([0-9][0-9a-z.]*)$")


class SideKind(StrEnum):
    FILE = "file"  # one BOM
    TREE = "tree"  # a set of BOMs matched by file name


@dataclass(frozen=True)
class BomSource:
    """One BOM of a side: the text of a BOM file, or a lock target."""

    name: str  # the file name a set of BOMs is matched on: "compute-amd64.bom"
    where: str  # for messages: "boms/compute-amd64.bom", "HEAD~1:snapshots.lock (compute-amd64)"
    text: str | None = None
    target: LockedTarget | None = None
    os: OsRelease | None = None  # what operating system it is for, when known

    @property
    def stem(self) -> str:
        return self.name[: -len(BOM_SUFFIX)] if self.name.endswith(BOM_SUFFIX) else self.name


@dataclass(frozen=True)
class Side:
    """One side of `bom diff`, as the user named it, and the BOMs read from it."""

    spec: str  # as given
    kind: SideKind
    what: str  # "BOM file", "lock", "boms/ directory", "project" (for messages)
    boms: tuple[BomSource, ...]


def parse_os(spec: str) -> OsRelease:
    """`debian-12`, `ubuntu-24.04`, `rocky-9`: os-release ID-VERSION_ID."""
    m = _OS_SPEC.match(spec)
    if not m:
        raise ConfigError(f"{spec!r}: expected an operating system as ID-VERSION_ID",
                          hint='e.g. "debian-12", "ubuntu-24.04", "rocky-9"')
    return OsRelease(m[1], m[2])


def read_side(spec: str, cwd: Path | None = None, *, os_override: OsRelease | None = None) -> Side:
    """Read one side of a diff (see the module docstring for what `spec` may be)."""
    cwd = Path.cwd() if cwd is None else cwd
    if not spec:
        raise ConfigError("an empty BOM path or revision", hint="pass a BOM file, a directory or a git revision")
    path = Path(spec) if Path(spec).is_absolute() else cwd / spec
    side = _local(spec, path) if path.exists() else _git_side(spec, cwd)
    if os_override is not None:
        side = Side(side.spec, side.kind, side.what,
                    tuple(BomSource(b.name, b.where, b.text, b.target, os_override) for b in side.boms))
    return side


# -- what a BOM is for ----------------------------------------------------------------------------------------


def _os_for(distro: str | None, family: str | None, config_text: str | None) -> OsRelease | None:
    if not distro:
        return None
    raw: Any = {}
    if config_text:
        try:
            raw = tomllib.loads(config_text)
        except tomllib.TOMLDecodeError:
            raw = {}
    table = raw.get("distros", {}).get(distro, {}) if isinstance(raw.get("distros"), dict) else {}
    table = table if isinstance(table, dict) else {}
    os_key = table.get("os") if isinstance(table.get("os"), str) else None
    fam: str = family or (table["family"] if table.get("family") in ("deb", "rpm") else "deb")
    try:
        return os_release(Distro(distro, Family(fam), (), None, False, (), os=os_key))
    except (ConfigError, ValueError):
        return None


def _header_os(text: str, config_text: str | None) -> OsRelease | None:
    """The distro (and family) a BOM's leading comment block names, as an operating system."""
    distro = family = None
    pos = 0
    while True:  # the leading comment lines only, without splitting the whole text
        end = text.find("\n", pos)
        line = text[pos:end if end >= 0 else len(text)]
        if not line.lstrip().startswith("#"):
            break
        pos = end + 1
        distro = distro or (m[1].rstrip(",.") if (m := _HEADER_DISTRO.search(line)) else None)
        family = family or (m[1].lower() if (m := _HEADER_FAMILY.search(line)) else None)
        if end < 0:
            break
    return _os_for(distro, family, config_text)


def _is_lock(text: str) -> bool:
    return text.lstrip()[:1] == "{"


def _lock_sources(lock: Lock, where: str, config_text: str | None) -> tuple[BomSource, ...]:
    return tuple(BomSource(f"{t.key}{BOM_SUFFIX}", f"{where} ({t.key})", target=t,
                           os=_os_for(t.distro, t.family, config_text))
                 for t in sorted(lock.targets, key=lambda t: t.key))


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})",
                          hint="pass a BOM file, a boms/ directory, a lock or a project directory") from None


# -- local paths ----------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return _decode(path.read_bytes(), str(path))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _config_near(directory: Path) -> str | None:
    p = directory / CONFIG_NAME
    return _read_text(p) if p.is_file() else None


def _local(spec: str, path: Path) -> Side:
    if path.is_file():
        text = _read_text(path)
        if _is_lock(text):
            cfg = _config_near(path.parent)
            return Side(spec, SideKind.TREE, "lock", _lock_sources(parse_lock(text, Path(spec)), spec, cfg))
        cfg = _config_near(path.parent.parent) if path.parent.name == BOM_DIR else None
        return Side(spec, SideKind.FILE, "BOM file", (BomSource(path.name, spec, text, os=_header_os(text, cfg)),))
    if not path.is_dir():
        raise ConfigError(f"{spec}: not a file or directory")
    if (path / LOCK_NAME).is_file():
        cfg = _config_near(path)
        where = _join(spec, LOCK_NAME)
        return Side(spec, SideKind.TREE, "project",
                    _lock_sources(parse_lock(_read_text(path / LOCK_NAME), Path(where)), where, cfg))
    if (path / BOM_DIR).is_dir():
        return _local_boms(spec, _join(spec, BOM_DIR), path / BOM_DIR, _config_near(path), "project")
    return _local_boms(spec, spec, path, _config_near(path.parent), "boms/ directory")


def _local_boms(spec: str, where: str, directory: Path, cfg: str | None, what: str) -> Side:
    files = sorted(p for p in directory.glob(f"*{BOM_SUFFIX}") if p.is_file())
    if not files:
        raise ConfigError(f"{where}: no *{BOM_SUFFIX} files, no {BOM_DIR}/ and no {LOCK_NAME}",
                          hint="pass a BOM file, a boms/ directory, a lock or a project directory")
    sources = []
    for p in files:
        text = _read_text(p)
        sources.append(BomSource(p.name, _join(where, p.name), text, os=_header_os(text, cfg)))
    return Side(spec, SideKind.TREE, what, tuple(sources))


def _join(base: str, name: str) -> str:
    return name if base in ("", ".") else f"{base.rstrip('/')}/{name}"


# -- git ------------------------------------------------------------------------------------------------------


class _Git:
    """Plumbing calls in the repository that holds cwd."""

    def __init__(self, cwd: Path, spec: str) -> None:
        self.cwd, self.spec = cwd, spec
        exe = shutil.which("git")
        if exe is None:
            raise ConfigError(f"{spec!r} is not a file or directory, and git is not installed to read it as a "
                              "revision", hint="pass a BOM file, a boms/ directory, a lock or a project directory")
        self.exe = exe
        proc = self._run(["rev-parse", "--show-toplevel", "--show-prefix"], check=False)
        if proc.returncode != 0:
            why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ConfigError(f"{spec!r} is not a file or directory, and {cwd} is not in a git repository to read "
                              f"it as a revision ({why[-1] if why else 'git rev-parse failed'})",
                              hint="pass an existing path, or run in the repository to name a revision")
        out = proc.stdout.decode("utf-8", "surrogateescape").split("\n")
        self.top = out[0]
        self.prefix = out[1].strip("/") if len(out) > 1 else ""

    def _run(self, args: list[str], stdin: bytes | None = None,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0",
               "GIT_PAGER": "cat"}
        try:
            proc = subprocess.run([self.exe, "--no-optional-locks", *args], cwd=self.cwd, input=stdin,
                                  capture_output=True, env=env, check=False)
        except OSError as e:
            raise ConfigError(f"{self.spec!r}: cannot run git: {e.strerror}") from None
        if check and proc.returncode != 0:
            why = proc.stderr.decode("utf-8", "replace").strip()
            raise ConfigError(f"{self.spec!r}: git {args[0]} failed: {why or f'exit {proc.returncode}'}")
        return proc

    def objects(self, names: list[str]) -> list[tuple[str, str] | None]:
        """(object id, type) of each object name, None when git has no such object (`cat-file --batch-check`)."""
        if any("\n" in n for n in names):
            raise ConfigError(f"{self.spec!r}: a revision or path with a newline")
        out = self._run(["cat-file", "--batch-check"], "".join(f"{n}\n" for n in names).encode()).stdout
        found: list[tuple[str, str] | None] = []
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            parts = line.rsplit(" ", 2)
            found.append((parts[0], parts[1]) if len(parts) == 3 and parts[2].isdigit() else None)
        if len(found) != len(names):
            raise ConfigError(f"{self.spec!r}: unexpected output of git cat-file --batch-check")
        return found

    def ls_tree(self, tree: str) -> dict[str, tuple[str, str]]:
        """name -> (type, object id) of a tree's entries (`ls-tree -z`)."""
        out = self._run(["ls-tree", "-z", "--full-tree", "--end-of-options", tree]).stdout
        entries = {}
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, name = rec.partition(b"\t")
            _mode, kind, oid = meta.decode("ascii").split(" ")
            entries[name.decode("utf-8", "surrogateescape")] = (kind, oid)
        return entries

    def blobs(self, oids: list[str]) -> dict[str, bytes]:
        """The contents of blobs, read by one `cat-file --batch`."""
        if not oids:
            return {}
        out = self._run(["cat-file", "--batch"], "".join(f"{o}\n" for o in oids).encode()).stdout
        contents, pos = {}, 0
        for oid in oids:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode("ascii").split(" ")
            if len(header) != 3 or header[1] != "blob":
                raise ConfigError(f"{self.spec!r}: git cat-file --batch: {oid} is not a blob ({' '.join(header)})")
            size = int(header[2])
            contents[oid] = out[end + 1:end + 1 + size]
            pos = end + 1 + size + 1  # the content, then a newline
        return contents


def _git_side(spec: str, cwd: Path) -> Side:
    git = _Git(cwd, spec)
    rev, colon, rel = spec.partition(":")
    if not rev:
        raise ConfigError(f"{spec!r}: not a file or directory, and no revision before ':'",
                          hint="name a revision: HEAD:path, main:path (the index is not read)")
    if not colon:
        path = git.prefix
    elif rel in (".", "..") or rel.startswith(("./", "../")):
        path = posixpath.normpath(posixpath.join(git.prefix, rel))
    else:
        path = posixpath.normpath(rel) if rel.strip("/") else ""
    path = "" if path in (".", "") else path.strip("/")
    if path == ".." or path.startswith("../"):
        raise ConfigError(f"{spec!r}: the path leaves the repository ({git.top})")
    tree_of_rev, obj = git.objects([f"{rev}^{{tree}}", f"{rev}:{path}"])
    if tree_of_rev is None:
        raise ConfigError(f"{spec!r}: no such file or directory, and {rev!r} is not a revision of the git repository "
                          f"at {git.top}", hint="pass a BOM file, a boms/ directory, a lock, a project directory or "
                          "a revision (main, HEAD~1, REV:path)")
    label = f"{rev}:{path}" if path else f"{rev}:"
    bare = "" if colon else f" (a bare revision means {label}, the directory cwd is in)"
    if obj is None:
        raise ConfigError(f"{spec!r}: {rev} has no {path or 'top-level tree'}{bare}",
                          hint="name the path: REV:path/to/project, REV:path/boms or REV:path/file.bom")
    oid, kind = obj
    parent = posixpath.dirname(path)
    if kind == "blob":
        text = _decode(git.blobs([oid])[oid], label)
        if _is_lock(text):
            cfg = _git_blob_at(git, rev, posixpath.join(parent, CONFIG_NAME))
            return Side(spec, SideKind.TREE, "lock", _lock_sources(parse_lock(text, Path(label)), label, cfg))
        in_boms = posixpath.basename(parent) == BOM_DIR
        cfg = _git_blob_at(git, rev, posixpath.join(posixpath.dirname(parent), CONFIG_NAME)) if in_boms else None
        return Side(spec, SideKind.FILE, "BOM file",
                    (BomSource(posixpath.basename(path), label, text, os=_header_os(text, cfg)),))
    if kind != "tree":
        raise ConfigError(f"{spec!r}: {label} is a {kind}, not a file or directory")
    entries = git.ls_tree(oid)
    cfg_entry = entries.get(CONFIG_NAME)
    lock_entry = entries.get(LOCK_NAME)
    if lock_entry and lock_entry[0] == "blob":
        want = [lock_entry[1]] + ([cfg_entry[1]] if cfg_entry and cfg_entry[0] == "blob" else [])
        data = git.blobs(want)
        cfg = _decode(data[want[1]], f"{label}/{CONFIG_NAME}") if len(want) > 1 else None
        where = _join(label, LOCK_NAME)
        lock = parse_lock(_decode(data[lock_entry[1]], where), Path(where))
        return Side(spec, SideKind.TREE, "project", _lock_sources(lock, where, cfg))
    boms_entry = entries.get(BOM_DIR)
    if boms_entry and boms_entry[0] == "tree":
        cfg_oid = cfg_entry[1] if cfg_entry and cfg_entry[0] == "blob" else None
        return _git_boms(git, spec, _join(label, BOM_DIR), git.ls_tree(boms_entry[1]), cfg_oid, "project")
    cfg_oid = None
    if path:
        found = git.objects([f"{rev}:{posixpath.join(parent, CONFIG_NAME)}"])[0]
        cfg_oid = found[0] if found and found[1] == "blob" else None
    return _git_boms(git, spec, label, entries, cfg_oid, "boms/ directory", bare)


def _git_blob_at(git: _Git, rev: str, path: str) -> str | None:
    found = git.objects([f"{rev}:{path}"])[0]
    if found is None or found[1] != "blob":
        return None
    return _decode(git.blobs([found[0]])[found[0]], f"{rev}:{path}")


def _git_boms(git: _Git, spec: str, where: str, entries: dict[str, tuple[str, str]], cfg_oid: str | None,
              what: str, note: str = "") -> Side:
    boms = sorted((name, oid) for name, (kind, oid) in entries.items() if kind == "blob" and name.endswith(BOM_SUFFIX))
    if not boms:
        raise ConfigError(f"{spec!r}: {where} has no *{BOM_SUFFIX} files, no {BOM_DIR}/ and no {LOCK_NAME}{note}",
                          hint="name a project directory, its boms/ or a BOM file: REV:path/to/project")
    data = git.blobs(list(dict.fromkeys([oid for _, oid in boms] + ([cfg_oid] if cfg_oid else []))))
    cfg = _decode(data[cfg_oid], CONFIG_NAME) if cfg_oid else None
    sources = []
    for name, oid in boms:
        text = _decode(data[oid], _join(where, name))
        sources.append(BomSource(name, _join(where, name), text, os=_header_os(text, cfg)))
    return Side(spec, SideKind.TREE, what, tuple(sources))
