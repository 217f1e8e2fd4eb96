"""BOM diff: what changes between two BOMs (or two `boms/` directories), with real version ordering.

Packages are keyed by (name, arch). A key on one side only is *added* or *removed*; a key on both sides
with one version each is *upgraded* or *downgraded* by dpkg ordering (deb BOMs, `imagebuild.debversion`)
or rpm ordering (rpm BOMs, `imagebuild.rpmversion`). Installonly packages (several kernels of one
name and arch in one rpm BOM) are compared as sets of versions: versions only in the new BOM are added,
versions only in the old one removed. Versions that compare equal (`1.0` and `0:1.0`) are unchanged.

The family is an explicit parameter; `detect_family` guesses it from a `family: deb|rpm` header
comment, then from architecture names (`amd64`/`all` vs `x86_64`/`noarch`), then from the tool the header
names (`dpkg-query` vs `rpm -qa`).

JSON, two files (`render_json(BomDiff)`), every list sorted by name, arch, then version::

    {"added": [{"name", "arch", "version"}], "removed": [...],
     "upgraded": [{"name", "arch", "old", "new"}], "downgraded": [...]}

JSON, two directories (`render_json(TreeDiff)`): one such object per `*.bom` file name found on either
side, keyed by the file name; a file only in the new directory lists all its packages as added, one only
in the old directory all as removed; unchanged files are present with empty lists::

    {"compute-amd64.bom": {"added": [...], "removed": [...], "upgraded": [...], "downgraded": [...]}, ...}

`render_markdown` gives the same facts for a PR comment: a count line per BOM and a table of changes.
`has_changes` on either result is the exit semantic (1 when something changed).
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from imagebuild import debversion, rpmversion
from imagebuild.bom import BomEntry, parse_bom
from imagebuild.config import Family
from imagebuild.errors import ConfigError

BOM_SUFFIX = ".bom"

_DEB_ARCHES = frozenset({"amd64", "arm64", "i386", "armhf", "armel", "ppc64el", "mips64el", "riscv64", "all"})
_RPM_ARCHES = frozenset({"x86_64", "aarch64", "i686", "i386", "noarch", "ppc64le", "src", "sbsa"}) - {"i386"}
_FAMILY_MARK = re.compile(r"\bfamily\s*[:=]?\s*(deb|rpm)\b", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class VersionChange:
    name: str
    arch: str
    old: str
    new: str


@dataclass(frozen=True)
class BomDiff:
    """The changes between two BOMs. Lists are sorted by name, arch, then version order."""

    family: Family | None  # None: nothing needed ordering (no key with a version on both sides)
    added: tuple[BomEntry, ...]
    removed: tuple[BomEntry, ...]
    upgraded: tuple[VersionChange, ...]
    downgraded: tuple[VersionChange, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.upgraded or self.downgraded)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.upgraded)} upgraded, "
                f"{len(self.downgraded)} downgraded")


class FileStatus(StrEnum):
    """Where a BOM file of a directory diff exists: on both sides, or only in the new / old directory."""

    BOTH = "both"
    NEW = "new"
    GONE = "gone"


@dataclass(frozen=True)
class FileDiff:
    name: str  # the file name, e.g. "compute-amd64.bom"
    status: FileStatus
    diff: BomDiff


@dataclass(frozen=True)
class TreeDiff:
    """The diff of two `boms/` directories: one FileDiff per file name on either side, sorted by name."""

    files: tuple[FileDiff, ...]

    @property
    def has_changes(self) -> bool:
        return any(f.diff.has_changes for f in self.files)


# -- family ---------------------------------------------------------------------------------------------


def detect_family(entries: Iterable[BomEntry], header: Iterable[str] = ()) -> Family | None:
    """Guess deb or rpm from header comments and architecture names; None when nothing tells."""
    header = list(header)
    for line in header:
        m = _FAMILY_MARK.search(line)
        if m:
            return Family(m.group(1).lower())
    arches = {e.arch for e in entries}
    deb, rpm = bool(arches & _DEB_ARCHES), bool(arches & _RPM_ARCHES)
    if deb and rpm:
        raise ConfigError(f"BOM mixes deb and rpm architectures ({', '.join(sorted(arches))})",
                          hint="diff BOMs of one package family; pass --family deb|rpm if the names mislead")
    if deb or rpm:
        return Family.DEB if deb else Family.RPM
    text = "\n".join(header)
    if "rpm -q" in text:
        return Family.RPM
    if "dpkg-query" in text:
        return Family.DEB
    return None


def comparator(family: Family) -> Callable[[str, str], int]:
    """The version comparison of a family: dpkg's for deb, rpm.vercmp's for rpm."""
    return debversion.compare if family is Family.DEB else rpmversion.compare_evr


# -- diffing --------------------------------------------------------------------------------------------


def diff_boms(old: Iterable[BomEntry], new: Iterable[BomEntry], family: Family | None) -> BomDiff:
    """Diff two BOMs. `family` may be None only when no package needs ordering (else ConfigError)."""
    before: dict[tuple[str, str], set[str]] = defaultdict(set)
    after: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in old:
        before[(e.name, e.arch)].add(e.version)
    for e in new:
        after[(e.name, e.arch)].add(e.version)

    def cmp(a: str, b: str) -> int:
        if a == b:
            return 0
        if family is None:
            raise ConfigError(f"cannot tell whether these BOMs are deb or rpm, and {a} vs {b} needs ordering",
                              hint="pass --family deb or --family rpm")
        return comparator(family)(a, b)

    added: list[BomEntry] = []
    removed: list[BomEntry] = []
    upgraded: list[VersionChange] = []
    downgraded: list[VersionChange] = []
    for key in sorted(before.keys() | after.keys()):
        name, arch = key
        olds, news = before.get(key, set()), after.get(key, set())
        if len(olds) == 1 and len(news) == 1:
            o, n = next(iter(olds)), next(iter(news))
            c = cmp(o, n)
            if c < 0:
                upgraded.append(VersionChange(name, arch, o, n))
            elif c > 0:
                downgraded.append(VersionChange(name, arch, o, n))
            continue
        # one side absent, or installonly: several versions of one name+arch compare as sets
        only_new = [v for v in news if not any(cmp(v, o) == 0 for o in olds)]
        only_old = [v for v in olds if not any(cmp(v, n) == 0 for n in news)]
        key_fn = functools.cmp_to_key(cmp)
        added += [BomEntry(name, arch, v) for v in sorted(only_new, key=key_fn)]
        removed += [BomEntry(name, arch, v) for v in sorted(only_old, key=key_fn)]
    return BomDiff(family, tuple(added), tuple(removed), tuple(upgraded), tuple(downgraded))


def _read(path: Path) -> tuple[list[BomEntry], list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read BOM: {e.strerror}",
                          hint="pass two BOM files or two boms/ directories") from None
    header = [ln.lstrip("#").strip() for ln in text.splitlines() if ln.lstrip().startswith("#")]
    return parse_bom(text, str(path)), header


def _family_of(family: Family | None, old: tuple[list[BomEntry], list[str]],
               new: tuple[list[BomEntry], list[str]], what: str) -> Family | None:
    if family is not None:
        return family
    fo, fn = detect_family(*old), detect_family(*new)
    if fo is not None and fn is not None and fo is not fn:
        raise ConfigError(f"{what}: the old BOM is {fo}, the new one {fn}",
                          hint="diff BOMs of the same package family")
    return fo or fn


def diff_files(old: Path, new: Path, family: Family | None = None) -> BomDiff:
    """Diff two BOM files; the family is detected from them unless given."""
    a, b = _read(old), _read(new)
    return diff_boms(a[0], b[0], _family_of(family, a, b, f"{old} vs {new}"))


def diff_dirs(old: Path, new: Path, family: Family | None = None) -> TreeDiff:
    """Diff the `*.bom` files of two directories, matched by file name."""
    names_old = {p.name for p in old.glob(f"*{BOM_SUFFIX}") if p.is_file()}
    names_new = {p.name for p in new.glob(f"*{BOM_SUFFIX}") if p.is_file()}
    if not names_old and not names_new:
        raise ConfigError(f"no *{BOM_SUFFIX} files in {old} or {new}",
                          hint="pass two boms/ directories written by `imagebuild lock`")
    files = []
    for name in sorted(names_old | names_new):
        a = _read(old / name) if name in names_old else ([], [])
        b = _read(new / name) if name in names_new else ([], [])
        status = (FileStatus.BOTH if name in names_old and name in names_new
                  else FileStatus.NEW if name in names_new else FileStatus.GONE)
        fam = _family_of(family, a, b, name)
        files.append(FileDiff(name, status, diff_boms(a[0], b[0], fam)))
    return TreeDiff(tuple(files))


def diff_paths(old: Path, new: Path, family: Family | None = None) -> BomDiff | TreeDiff:
    """`bom diff OLD NEW`: two BOM files, or two directories of them."""
    for p in (old, new):
        if not p.exists():
            raise ConfigError(f"{p}: no such BOM file or directory", hint="pass two BOM files or two boms/ directories")
    if old.is_dir() and new.is_dir():
        return diff_dirs(old, new, family)
    if old.is_dir() or new.is_dir():
        raise ConfigError(f"{old} and {new}: one is a directory, the other a file",
                          hint="pass two BOM files or two boms/ directories")
    return diff_files(old, new, family)


# -- renderers ------------------------------------------------------------------------------------------


def _json_obj(d: BomDiff) -> dict[str, list[dict[str, str]]]:
    def entry(e: BomEntry) -> dict[str, str]:
        return {"name": e.name, "arch": e.arch, "version": e.version}

    def change(c: VersionChange) -> dict[str, str]:
        return {"name": c.name, "arch": c.arch, "old": c.old, "new": c.new}

    return {
        "added": [entry(e) for e in d.added],
        "removed": [entry(e) for e in d.removed],
        "upgraded": [change(c) for c in d.upgraded],
        "downgraded": [change(c) for c in d.downgraded],
    }


def render_json(d: BomDiff | TreeDiff) -> str:
    """The machine format (see the module docstring); deterministic, ends with a newline."""
    doc: Any = _json_obj(d) if isinstance(d, BomDiff) else {f.name: _json_obj(f.diff) for f in d.files}
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _cell(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


_DETAILS_ABOVE = 30  # longer tables fold into <details> so a PR comment stays readable


def _markdown_section(title: str, d: BomDiff, note: str = "") -> list[str]:
    head = f"**{_cell(title)}**{note}: " + (d.summary() if d.has_changes else "no changes")
    if not d.has_changes:
        return [head, ""]
    rows: list[tuple[str, str, str, str, str]] = []
    rows += [(e.name, e.arch, "", e.version, "added") for e in d.added]
    rows += [(e.name, e.arch, e.version, "", "removed") for e in d.removed]
    rows += [(c.name, c.arch, c.old, c.new, "upgraded") for c in d.upgraded]
    rows += [(c.name, c.arch, c.old, c.new, "**downgraded**") for c in d.downgraded]
    order = {"**downgraded**": 0, "removed": 1, "upgraded": 2, "added": 3}
    rows.sort(key=lambda r: (r[0], r[1], order[r[4]]))
    table = ["| package | arch | old | new | change |", "|---|---|---|---|---|"]
    table += [f"| {_cell(n)} | {_cell(a)} | {_cell(o)} | {_cell(nw)} | {k} |" for n, a, o, nw, k in rows]
    if len(rows) > _DETAILS_ABOVE:
        return [head, "", f"<details><summary>{len(rows)} changes</summary>", "", *table, "", "</details>", ""]
    return [head, "", *table, ""]


def render_markdown(d: BomDiff | TreeDiff, title: str = "BOM diff") -> str:
    """A PR-comment body: a heading, one count line per BOM, and a table of the changes of each."""
    lines = [f"### {_cell(title)}", ""]
    if isinstance(d, BomDiff):
        lines += _markdown_section("BOM", d)
    else:
        changed = sum(f.diff.has_changes for f in d.files)
        lines += [f"{changed} of {len(d.files)} BOMs changed.", ""]
        notes = {FileStatus.BOTH: "", FileStatus.NEW: " (new BOM)", FileStatus.GONE: " (BOM removed)"}
        for f in d.files:
            lines += _markdown_section(f.name, f.diff, notes[f.status])
    return "\n".join(lines).rstrip("\n") + "\n"


def changed_files(d: TreeDiff) -> Sequence[str]:
    """The names of the BOM files that changed, sorted."""
    return [f.name for f in d.files if f.diff.has_changes]


def _text_section(d: BomDiff) -> list[str]:
    lines = [f"  + {e.name} {e.version} {e.arch}" for e in d.added]
    lines += [f"  - {e.name} {e.version} {e.arch}" for e in d.removed]
    lines += [f"  ^ {c.name} {c.arch} {c.old} -> {c.new}" for c in d.upgraded]
    lines += [f"  v {c.name} {c.arch} {c.old} -> {c.new} (downgrade)" for c in d.downgraded]
    return sorted(lines, key=lambda ln: ln[4:])


def render_text(d: BomDiff | TreeDiff) -> str:
    """For a terminal: a count line per BOM, then one line per change (+ added, - removed, ^ up, v down)."""
    if isinstance(d, BomDiff):
        return "\n".join([d.summary() if d.has_changes else "no changes", *_text_section(d)]) + "\n"
    lines = []
    for f in d.files:
        note = {FileStatus.BOTH: "", FileStatus.NEW: " (new)", FileStatus.GONE: " (gone)"}[f.status]
        lines.append(f"{f.name}{note}: " + (f.diff.summary() if f.diff.has_changes else "no changes"))
        lines += _text_section(f.diff)
    return "\n".join(lines) + "\n"
