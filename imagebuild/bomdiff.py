"""BOM diff: what changes between two BOMs (or two sets of them), with real version ordering, and the CI gate.

Packages are matched by name and architecture. Classes of changes:

* **added** / **removed** — a (name, arch) on one side only;
* **upgraded** / **downgraded** — a (name, arch) with one version on each side, ordered by dpkg (deb BOMs,
  `imagebuild.debversion`) or rpm (rpm BOMs, `imagebuild.rpmversion`). Versions that compare equal (`1.0` and
  `0:1.0`) are unchanged. Installonly packages (several kernels of one name and arch in one rpm BOM) are compared
  as sets of versions: versions only in the new BOM are added, versions only in the old one removed;
* **arch-changed** — a name whose architecture changed (`foo 1.0 amd64` -> `foo 1.0 all`): when a name has one
  entry on each side (one arch, one version) and the arches differ, that is one arch change (with the old and new
  version, which may differ too), not a removal and an addition. A name with several arches or versions on a side
  (multiarch `i386` next to `amd64`, installonly kernels) is compared per arch: an arch on one side only is removed
  / added;
* **integrity** — only when both sides carry the sha256 of their packages (both are locks, or project directories
  holding one): the same name, arch and version (equal by the version ordering) with a different sha256 — a
  rebuilt or tampered package. Packages without a sha256 (those of a base image) are not compared.

The family is an explicit parameter; `detect_family` guesses it from a `family: deb|rpm` header comment, then
from architecture names (`amd64`/`all` vs `x86_64`/`noarch`), then from the tool the header names (`dpkg-query` vs
`rpm -qa`). Lock targets record their family.

`run_diff(old, new, family=..., cwd=...)` is `bom diff OLD NEW`: each side a BOM file, a `boms/` directory, a lock,
a project directory or a git revision (`imagebuild.bomsource`); two single BOMs give a `BomDiff`, two sets of BOMs
a `TreeDiff` (one `FileDiff` per file name on either side; a lock target `compute-amd64` is `compute-amd64.bom`).

JSON, two single BOMs (`render_json(BomDiff)`), every list sorted by name, arch, then version::

    {"added": [{"name", "arch", "version"}], "removed": [...],
     "upgraded": [{"name", "arch", "old", "new"}], "downgraded": [...],
     "arch-changed": [{"name", "old_arch", "new_arch", "old", "new"}],
     "integrity": [{"name", "arch", "version", "old_sha256", "new_sha256"}]}

The four first keys are always there; "arch-changed" and "integrity" only when they have entries (so a diff
without such changes is byte for byte what earlier versions printed). Two sets of BOMs (`render_json(TreeDiff)`):
one such object per `*.bom` file name found on either side, keyed by the file name; a file only on the new side
lists all its packages as added, one only on the old side all as removed; unchanged files are present with empty
lists::

    {"compute-amd64.bom": {"added": [...], "removed": [...], "upgraded": [...], "downgraded": [...]}, ...}

`render_markdown` is a PR comment: a count line per BOM (`compute-amd64: +3 −1 ↑12 ↓0`, with `⇄N` arch changes
and `≠N` sha256 changes when there are some) and one table per BOM (`| package | arch | old | new | change |`),
folded into `<details>` above 10 rows; cell text is Markdown-escaped. `render_text` is for a terminal (ANSI colours
only when asked: `color=True`, for a TTY). `render(diff, fmt, title, color, gate)` picks one.

The gate (`gate(diff, fail_on, allows, today)`): the changes of the classes in `fail_on` that no allow rule
covers trip it. An allow rule (`Allow`) is a glob over package names, or over package URLs when it starts with
`pkg:` (`pkg:deb/debian/nvidia-*`, matched against the purl of the package as NEW has it — as OLD had it for a
removal — both percent-encoded as `imagebuild.purl.purl` writes it and decoded, so `+` may be written as is); a
purl rule only matches BOMs whose family and operating system are known. A rule has a reason, optionally the
classes it covers (default: all) and an expiry date: it applies through that date and not after; an expired rule
allows nothing and is reported. `parse_allow` reads the command-line form, `read_allow_file` the TOML file form
(see their docstrings). Without any `--fail-on`, the CLI gates every class: exit 1 when anything changed (as
before), unless allowed.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import functools
import html
import json
import operator
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from imagebuild import debversion, rpmversion
from imagebuild.bom import BomEntry, parse_bom
from imagebuild.config import Family
from imagebuild.errors import ConfigError

if TYPE_CHECKING:
    from imagebuild.purl import OsRelease

BOM_SUFFIX = ".bom"

ADDED, REMOVED, UPGRADED, DOWNGRADED, ARCH_CHANGED, INTEGRITY = (
    "added", "removed", "upgraded", "downgraded", "arch-changed", "integrity")
CLASSES = (ADDED, REMOVED, UPGRADED, DOWNGRADED, ARCH_CHANGED, INTEGRITY)

_DEB_ARCHES = frozenset({"amd64", "arm64", "i386", "armhf", "armel", "ppc64el", "mips64el", "riscv64", "all"})
_RPM_ARCHES = frozenset({"x86_64", "aarch64", "i686", "i386", "noarch", "ppc64le", "src", "sbsa"}) - {"i386"}
_FAMILY_MARK = re.compile(r"\bfamily\s*[:=]?\s*(deb|rpm)\b", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class VersionChange:
    """A package whose version changed between two BOMs."""

    name: str
    arch: str
    old: str
    new: str


@dataclass(frozen=True, order=True)
class ArchChange:
    """A package with one build on each side, of another arch on the new side (`all` → `amd64`)."""

    name: str
    old_arch: str
    new_arch: str
    old: str  # version
    new: str


@dataclass(frozen=True, order=True)
class IntegrityChange:
    """A package of the same version whose recorded sha256 changed."""

    name: str
    arch: str
    version: str  # as the new side writes it
    old_sha256: str
    new_sha256: str


@dataclass(frozen=True)
class BomDiff:
    """The changes between two BOMs. Lists are sorted by name, arch, then version order."""

    family: Family | None  # None: nothing needed ordering (no key with a version on both sides)
    added: tuple[BomEntry, ...]
    removed: tuple[BomEntry, ...]
    upgraded: tuple[VersionChange, ...]
    downgraded: tuple[VersionChange, ...]
    arch_changed: tuple[ArchChange, ...] = ()
    integrity: tuple[IntegrityChange, ...] = ()
    name: str = ""  # the BOM's name when known ("compute-amd64"), for titles and gate messages
    os: OsRelease | None = None  # the operating system it is for, when known (package URLs for allow rules)
    integrity_checked: bool = False  # both sides carried sha256s

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.upgraded or self.downgraded or self.arch_changed
                    or self.integrity)

    def summary(self) -> str:
        extra = (f", {len(self.arch_changed)} arch-changed" if self.arch_changed else "") + \
            (f", {len(self.integrity)} integrity" if self.integrity else "")
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.upgraded)} upgraded, "
                f"{len(self.downgraded)} downgraded{extra}")

    def counts(self) -> str:
        """`+3 −1 ↑12 ↓0`, then `⇄N` (arch changed) and `≠N` (sha256 changed) when there are some."""
        s = f"+{len(self.added)} −{len(self.removed)} ↑{len(self.upgraded)} ↓{len(self.downgraded)}"
        s += f" ⇄{len(self.arch_changed)}" if self.arch_changed else ""
        return s + (f" ≠{len(self.integrity)}" if self.integrity else "")

    def changes(self) -> int:
        return (len(self.added) + len(self.removed) + len(self.upgraded) + len(self.downgraded)
                + len(self.arch_changed) + len(self.integrity))


class FileStatus(StrEnum):
    """Where a BOM file of a directory diff exists: on both sides, or only in the new / old directory."""

    BOTH = "both"
    NEW = "new"
    GONE = "gone"


@dataclass(frozen=True)
class FileDiff:
    """The diff of one BOM file between two sides (a directory, lock or project diff has several)."""

    name: str  # the file name, e.g. "compute-amd64.bom"
    status: FileStatus
    diff: BomDiff


@dataclass(frozen=True)
class TreeDiff:
    """The diff of two sets of BOMs: one FileDiff per file name on either side, sorted by name."""

    files: tuple[FileDiff, ...]

    @property
    def has_changes(self) -> bool:
        return any(f.diff.has_changes for f in self.files)


# -- family ---------------------------------------------------------------------------------------------


def detect_family(entries: Iterable[BomEntry], header: Iterable[str] = ()) -> Family | None:
    """Guess deb or rpm from header comments and architecture names; None when nothing tells."""
    return _detect(list(header), lambda: {e.arch for e in entries})


def _detect(header: list[str], arches_of: Callable[[], set[str]]) -> Family | None:
    for line in header:
        m = _FAMILY_MARK.search(line)
        if m:
            return Family(m.group(1).lower())
    arches = arches_of()
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


# A Debian version as policy writes them: an optional decimal epoch, then upstream[-revision] of the characters
# policy allows (no blanks, no further colons). Anything else goes to debversion.compare as it is.
_DEB_PLAIN = re.compile(r"(?:([0-9]{1,9}):)?([0-9A-Za-z.+~-]+)")
_DIGIT_RUN = re.compile(r"[0-9]*")


def _deb_part(x: str, y: str, upstream: bool) -> int:
    """dpkg's verrevcmp(x, y) of two upstream versions or two revisions, by debversion, on what follows their
    common prefix cut back to the start of a digit run: verrevcmp walks both strings in lockstep through
    alternating non-digit and digit runs, so an equal prefix ending in a non-digit leaves it in the state it starts
    in (a prefix ending inside a digit run would not: `29` vs `201`). `2.36-9+deb12u9` vs `2.36-9+deb12u10` is
    then `9` vs `10`: short keys, mostly computed already."""
    if x == y:
        return 0
    n, k = min(len(x), len(y)), 0
    while k < n and x[k] == y[k]:
        k += 1
    while k and x[k - 1].isdigit():
        k -= 1
    x, y = x[k:], y[k:]
    # Both now start a digit run (or end): verrevcmp compares those runs as numbers first (`9` vs `10`, the
    # usual security bump), which needs no key; leading zeros do not count, and an absent run is 0.
    dx, dy = _DIGIT_RUN.match(x).group(), _DIGIT_RUN.match(y).group()  # type: ignore[union-attr]
    if (dx or not x) and (dy or not y):
        nx, ny = dx.lstrip("0"), dy.lstrip("0")
        if nx != ny:
            return -1 if (len(nx), nx) < (len(ny), ny) else 1
        if len(dx) == len(x) and len(dy) == len(y):
            return 0
    # complete versions that parse back into just that part (the appended `-0` is the last hyphen)
    return debversion.compare(f"0:{x}-0", f"0:{y}-0") if upstream else debversion.compare(f"0:0-{x}", f"0:0-{y}")


def _deb_compare(a: str, b: str) -> int:
    """debversion.compare(a, b), faster for the pairs a BOM diff orders: versions that differ in a short tail."""
    ma, mb = _DEB_PLAIN.fullmatch(a), _DEB_PLAIN.fullmatch(b)
    if ma is None or mb is None:
        return debversion.compare(a, b)
    ea, eb = int(ma[1] or 0), int(mb[1] or 0)
    if ea != eb:
        return -1 if ea < eb else 1
    ua, sep, ra = ma[2].rpartition("-")
    if not sep:
        ua, ra = ma[2], ""
    ub, sep, rb = mb[2].rpartition("-")
    if not sep:
        ub, rb = mb[2], ""
    c = _deb_part(ua, ub, True)
    if c:
        return -1 if c < 0 else 1
    c = _deb_part(ra, rb, False)
    return (c > 0) - (c < 0)


def _ordering(family: Family) -> Callable[[str, str], int]:
    """What the diff orders versions with: `comparator(family)`, with the deb fast path above."""
    return _deb_compare if family is Family.DEB else rpmversion.compare_evr


# -- one BOM, indexed -----------------------------------------------------------------------------------

Groups = dict[str, set[str]]  # arch -> versions, of one package name
Sha = Mapping[tuple[str, str, str], str]  # (name, arch, version) -> sha256


class _Side(Protocol):
    header: list[str]
    sha: Sha | None

    def group(self, name: str) -> Groups: ...

    def arches(self) -> set[str]: ...


class _EntrySide:
    """A BOM as entries, grouped by name (what API callers and locks give)."""

    def __init__(self, entries: Iterable[BomEntry], header: Sequence[str] = (), sha: Sha | None = None) -> None:
        self.groups: dict[str, Groups] = {}
        for e in entries:
            self.groups.setdefault(e.name, {}).setdefault(e.arch, set()).add(e.version)
        self.header, self.sha = list(header), sha

    def group(self, name: str) -> Groups:
        return self.groups.get(name, {})

    def arches(self) -> set[str]:
        return {a for g in self.groups.values() for a in g}


class _LineSide:
    """A BOM file in the canonical form `render_bom` writes (leading `#` comments, then `name version arch` with
    single spaces and LF line ends): its lines, so two of them are diffed by set difference of lines and only the
    names on changed lines are ever split. Lines are sorted only when a name is looked up (a line's name is
    everything before its first space, so the lines of one name are adjacent in sorted order), and then only one
    side's, the one that looks sorted already (timsort is linear on sorted input)."""

    sha: Sha | None = None

    def __init__(self, header: list[str], lines: list[str]) -> None:
        self.header, self.lines, self.set = header, lines, frozenset(lines)
        self._sorted = False

    def sorted_lines(self) -> list[str]:
        if not self._sorted:
            self.lines.sort()
            self._sorted = True
        return self.lines

    def looks_sorted(self) -> bool:
        """Are 64 evenly spread adjacent pairs in order? (A hint for which side to sort, not a promise.)"""
        lines, n = self.lines, len(self.lines)
        step = max(1, n // 64)
        return self._sorted or all(lines[i] <= lines[i + 1] for i in range(0, n - 1, step))

    def group(self, name: str) -> Groups:
        prefix, lines = name + " ", self.sorted_lines()
        out: Groups = {}
        i = bisect.bisect_left(lines, prefix)
        while i < len(lines) and lines[i].startswith(prefix):
            _, version, arch = lines[i].split(" ")
            out.setdefault(arch, set()).add(version)
            i += 1
        return out

    def arches(self) -> set[str]:
        return {ln.rpartition(" ")[2] for ln in self.lines}

    def entries(self) -> list[BomEntry]:
        return [BomEntry(n, a, v) for n, v, a in (ln.split(" ") for ln in self.lines)]


# The canonical form, checked in one pass of the regex engine instead of a Python loop over every line: a block of
# `#` comment lines (without the characters str.splitlines() also breaks at), then `name version arch` lines of
# printable ASCII with single spaces and LF line ends.
# (Possessive quantifiers: nothing here ever needs to backtrack, and sre runs them a third faster.)
_CANONICAL = re.compile(r"((?:#[^\n\r\v\f\x1c-\x1e\x85\u2028\u2029]*+\n)*+)"
                        r"(?:[!-\"$-~][!-~]*+ [!-~]++ [!-~]++\n)*+(?:[!-\"$-~][!-~]*+ [!-~]++ [!-~]++)?+")


def _canonical(text: str) -> _LineSide | None:
    """The text as a _LineSide when it is in the canonical form, else None."""
    m = _CANONICAL.fullmatch(text)
    if m is None:
        return None
    head = m.end(1)
    header = [ln.lstrip("#").strip() for ln in text[:head].split("\n")[:-1]]
    body = text[head:].split("\n")
    if body[-1] == "":
        body.pop()
    return _LineSide(header, body)


def parse_text(text: str, source: str) -> _EntrySide | _LineSide:
    """A BOM file's text, indexed for diffing (`imagebuild.bom.parse_bom`'s rules and errors)."""
    fast = _canonical(text)
    if fast is not None:
        return fast
    header = [ln.lstrip("#").strip() for ln in text.splitlines() if ln.lstrip().startswith("#")]
    return _EntrySide(parse_bom(text, source), header)


# -- diffing --------------------------------------------------------------------------------------------


@dataclass
class _Out:
    """The changes of a diff as it collects them, by kind."""

    added: list[BomEntry] = field(default_factory=list)
    removed: list[BomEntry] = field(default_factory=list)
    upgraded: list[VersionChange] = field(default_factory=list)
    downgraded: list[VersionChange] = field(default_factory=list)
    arch_changed: list[ArchChange] = field(default_factory=list)
    integrity: list[IntegrityChange] = field(default_factory=list)


_Change = tuple[str, Groups, Groups, tuple[str, str, str] | None]  # name, old and new groups, (arch, old, new)


def _changes(old: _Side, new: _Side) -> Iterator[_Change]:
    """Per name whose entries (or sha256s) may differ, sorted: its groups on both sides, and (arch, old version,
    new version) when it has one entry of the same arch on each side (then the groups are not built)."""
    if isinstance(old, _LineSide) and isinstance(new, _LineSide):
        yield from _line_changes(old, new)
        return
    if isinstance(old, _LineSide):
        old = _EntrySide(old.entries(), old.header)
    if isinstance(new, _LineSide):
        new = _EntrySide(new.entries(), new.header)
    assert isinstance(old, _EntrySide) and isinstance(new, _EntrySide)
    names = {n for n in old.groups.keys() | new.groups.keys() if old.groups.get(n) != new.groups.get(n)}
    if old.sha is not None and new.sha is not None:
        for key, s in old.sha.items():
            other = new.sha.get(key)
            if s and other and other != s:
                names.add(key[0])
    for name in sorted(names):
        og, ng = old.group(name), new.group(name)
        single = None
        if len(og) == 1 and len(ng) == 1:
            ((oa, ov),), ((na, nv),) = og.items(), ng.items()
            if oa == na and len(ov) == 1 and len(nv) == 1:
                single = (oa, next(iter(ov)), next(iter(nv)))
        yield name, og, ng, single


def _line_changes(old: _LineSide, new: _LineSide) -> Iterator[_Change]:
    """_changes of two canonical BOMs from the set difference of their lines: only the changed lines, and the
    unchanged lines of their names (found by bisection of the old side's sorted lines: an unchanged line is on
    both sides), are ever split."""
    changed: dict[str, tuple[list[str], list[str]]] = {}
    old_set, new_set = old.set, new.set
    # two differences, not `^`: that copies a whole set and leaves a 100 000-slot table to iterate
    for side, only in ((0, old_set - new_set), (1, new_set - old_set)):
        for ln in only:
            name = ln.partition(" ")[0]
            entry = changed.get(name)
            if entry is None:
                entry = changed[name] = ([], [])
            entry[side].append(ln)
    if not changed:
        return
    # an unchanged line is on both sides: look for those of a name on one side only, the one cheaper to sort
    base, other = (new, old_set) if new.looks_sorted() and not old.looks_sorted() else (old, new_set)
    lines = base.sorted_lines()
    end = len(lines)
    for name in sorted(changed):
        ol, nl = changed[name]
        prefix = name + " "
        i = bisect.bisect_left(lines, prefix)
        common = []
        while i < end and lines[i].startswith(prefix):
            if lines[i] in other:
                common.append(lines[i])
            i += 1
        if not common and len(ol) == 1 and len(nl) == 1:
            _, ov, oa = ol[0].split(" ")
            _, nv, na = nl[0].split(" ")
            if oa == na:
                yield name, {}, {}, (oa, ov, nv)
                continue
        og: Groups = {}
        ng: Groups = {}
        for groups, group_lines in ((og, ol + common), (ng, nl + common)):
            for ln in group_lines:
                _, v, a = ln.split(" ")
                groups.setdefault(a, set()).add(v)
        yield name, og, ng, None


def _diff_sides(old: _Side, new: _Side, family: Family | None, *, name: str = "",
                os: OsRelease | None = None) -> BomDiff:
    compare = _ordering(family) if family is not None else None

    def cmp(a: str, b: str) -> int:
        if a == b:
            return 0
        if compare is None:
            raise ConfigError(f"cannot tell whether these BOMs are deb or rpm, and {a} vs {b} needs ordering",
                              hint="pass --family deb or --family rpm")
        return compare(a, b)

    key_fn = functools.cmp_to_key(cmp)

    def ordered(versions: Iterable[str]) -> list[str]:
        """In version order; versions that compare equal (`1.0`, `0:1.0`) by their text, so the order never
        depends on how a set iterates."""
        return sorted(sorted(versions), key=key_fn)

    osha, nsha = old.sha, new.sha
    check_sha = osha is not None and nsha is not None
    out = _Out()

    def integrity(pkg: str, arch: str, o: str, n: str) -> None:
        if check_sha:
            a, b = osha.get((pkg, arch, o)), nsha.get((pkg, arch, n))  # type: ignore[union-attr]
            if a and b and a != b:
                out.integrity.append(IntegrityChange(pkg, arch, n, a, b))

    def one_version(pkg: str, arch: str, o: str, n: str) -> None:
        c = cmp(o, n)
        if c < 0:
            out.upgraded.append(VersionChange(pkg, arch, o, n))
        elif c > 0:
            out.downgraded.append(VersionChange(pkg, arch, o, n))
        else:
            integrity(pkg, arch, o, n)

    for pkg, og, ng, single in _changes(old, new):
        if single is not None:  # the common case (one version of one arch on each side), without the set algebra
            one_version(pkg, *single)
            continue
        for arch in sorted(og.keys() & ng.keys()):
            olds, news = og[arch], ng[arch]
            if len(olds) == 1 and len(news) == 1:
                (o,), (n,) = olds, news
                one_version(pkg, arch, o, n)
                continue
            # installonly: several versions of one name+arch compare as sets
            only_new = []
            for v in ordered(news):
                match = next((o for o in ordered(olds) if cmp(v, o) == 0), None)
                if match is None:
                    only_new.append(v)
                else:
                    integrity(pkg, arch, match, v)
            only_old = [v for v in olds if not any(cmp(v, n) == 0 for n in news)]
            out.added += [BomEntry(pkg, arch, v) for v in only_new]
            out.removed += [BomEntry(pkg, arch, v) for v in ordered(only_old)]
        gone, new_arches = sorted(og.keys() - ng.keys()), sorted(ng.keys() - og.keys())
        if (len(og) == 1 and len(ng) == 1 and gone and new_arches and len(og[gone[0]]) == 1
                and len(ng[new_arches[0]]) == 1):
            (o,), (n,) = og[gone[0]], ng[new_arches[0]]
            out.arch_changed.append(ArchChange(pkg, gone[0], new_arches[0], o, n))
            continue
        for arch in gone:
            out.removed += [BomEntry(pkg, arch, v) for v in ordered(og[arch])]
        for arch in new_arches:
            out.added += [BomEntry(pkg, arch, v) for v in ordered(ng[arch])]
    by_key = operator.attrgetter("name", "arch")  # a stable sort: the versions of a key keep their order
    return BomDiff(family, tuple(sorted(out.added, key=by_key)), tuple(sorted(out.removed, key=by_key)),
                   tuple(out.upgraded), tuple(out.downgraded), tuple(out.arch_changed), tuple(out.integrity),
                   name=name, os=os, integrity_checked=check_sha)


def diff_boms(old: Iterable[BomEntry], new: Iterable[BomEntry], family: Family | None, *,
              old_sha: Sha | None = None, new_sha: Sha | None = None) -> BomDiff:
    """Diff two BOMs. `family` may be None only when no package needs ordering (else ConfigError). With the
    sha256 of both sides' packages ((name, arch, version) -> sha256), integrity drift is reported too."""
    return _diff_sides(_EntrySide(old, sha=old_sha), _EntrySide(new, sha=new_sha), family)


def _family_of(family: Family | None, old: _Side, new: _Side, what: str,
               recorded: tuple[str | None, str | None] = (None, None)) -> Family | None:
    if family is not None:
        return family
    fo = Family(recorded[0]) if recorded[0] else _detect(old.header, old.arches)
    fn = Family(recorded[1]) if recorded[1] else _detect(new.header, new.arches)
    if fo is not None and fn is not None and fo is not fn:
        raise ConfigError(f"{what}: the old BOM is {fo}, the new one {fn}",
                          hint="diff BOMs of the same package family")
    return fo or fn


def _read(path: Path) -> _EntrySide | _LineSide:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read BOM: {e.strerror}",
                          hint="pass two BOM files or two boms/ directories") from None
    return parse_text(text, str(path))


_EMPTY = _EntrySide(())


def diff_files(old: Path, new: Path, family: Family | None = None) -> BomDiff:
    """Diff two BOM files; the family is detected from them unless given."""
    a, b = _read(old), _read(new)
    return _diff_sides(a, b, _family_of(family, a, b, f"{old} vs {new}"))


def diff_dirs(old: Path, new: Path, family: Family | None = None) -> TreeDiff:
    """Diff the `*.bom` files of two directories, matched by file name."""
    names_old = {p.name for p in old.glob(f"*{BOM_SUFFIX}") if p.is_file()}
    names_new = {p.name for p in new.glob(f"*{BOM_SUFFIX}") if p.is_file()}
    if not names_old and not names_new:
        raise ConfigError(f"no *{BOM_SUFFIX} files in {old} or {new}",
                          hint="pass two boms/ directories written by `imagebuild lock`")
    files = []
    for name in sorted(names_old | names_new):
        a = _read(old / name) if name in names_old else _EMPTY
        b = _read(new / name) if name in names_new else _EMPTY
        status = (FileStatus.BOTH if name in names_old and name in names_new
                  else FileStatus.NEW if name in names_new else FileStatus.GONE)
        fam = _family_of(family, a, b, name)
        files.append(FileDiff(name, status, _diff_sides(a, b, fam, name=_stem(name))))
    return TreeDiff(tuple(files))


def diff_paths(old: Path, new: Path, family: Family | None = None) -> BomDiff | TreeDiff:
    """Two BOM files, or two directories of them (the `*.bom` files directly in them); see `run_diff` for all
    that `bom diff` reads."""
    for p in (old, new):
        if not p.exists():
            raise ConfigError(f"{p}: no such BOM file or directory", hint="pass two BOM files or two boms/ directories")
    if old.is_dir() and new.is_dir():
        return diff_dirs(old, new, family)
    if old.is_dir() or new.is_dir():
        raise ConfigError(f"{old} and {new}: one is a directory, the other a file",
                          hint="pass two BOM files or two boms/ directories")
    return diff_files(old, new, family)


def _stem(name: str) -> str:
    return name[: -len(BOM_SUFFIX)] if name.endswith(BOM_SUFFIX) else name


def run_diff(old: str, new: str, *, family: Family | None = None, cwd: Path | None = None,
             os: str | OsRelease | None = None) -> BomDiff | TreeDiff:
    """`bom diff OLD NEW`: each a BOM file, a boms/ directory, a lock, a project directory, or a git revision
    (`REV`, `REV:path`), read by `imagebuild.bomsource`. Two single BOMs give a BomDiff, two sets a TreeDiff.
    `family` forces the version ordering (default: the lock's, else detected); `os` ("debian-12") the operating
    system of every BOM, for purl allow rules (default: from the lock / BOM header and the project config).
    ConfigError (exit 2) for anything unreadable."""
    from imagebuild import bomsource

    osr = bomsource.parse_os(os) if isinstance(os, str) else os
    a = bomsource.read_side(old, cwd, os_override=osr)
    b = bomsource.read_side(new, cwd, os_override=osr)
    if a.kind is not b.kind:
        one, other = (a, b) if a.kind is bomsource.SideKind.FILE else (b, a)
        raise ConfigError(f"{one.spec!r} is a single BOM, {other.spec!r} a set of them ({other.what})",
                          hint="compare a BOM file with a BOM file (REV:path/boms/NAME.bom), or two sets of BOMs")
    if a.kind is bomsource.SideKind.FILE:
        (one_old,), (one_new,) = a.boms, b.boms
        return _diff_sources(one_old, one_new, family, one_old.stem if one_old.stem == one_new.stem else "")
    olds, news = {s.name: s for s in a.boms}, {s.name: s for s in b.boms}
    files = []
    for name in sorted(olds.keys() | news.keys()):
        x, y = olds.get(name), news.get(name)
        status = FileStatus.BOTH if x and y else FileStatus.NEW if y else FileStatus.GONE
        files.append(FileDiff(name, status, _diff_sources(x, y, family, _stem(name))))
    return TreeDiff(tuple(files))


def _source_side(s: Any) -> _Side:
    if s is None:
        return _EMPTY
    if s.target is not None:
        pkgs = s.target.packages
        return _EntrySide((BomEntry(p.name, p.arch, p.version) for p in pkgs), (),
                          {(p.name, p.arch, p.version): p.sha256 for p in pkgs})
    return parse_text(s.text, s.where)


def _diff_sources(old: Any, new: Any, family: Family | None, name: str) -> BomDiff:
    """Diff two `bomsource.BomSource`s (either may be None: the BOM is on one side only)."""
    a, b = _source_side(old), _source_side(new)
    recorded = (old.target.family if old is not None and old.target is not None else None,
                new.target.family if new is not None and new.target is not None else None)
    what = f"{old.where} vs {new.where}" if old is not None and new is not None else (old or new).where
    fam = _family_of(family, a, b, what, recorded)
    os = (new.os if new is not None else None) or (old.os if old is not None else None)
    return _diff_sides(a, b, fam, name=name, os=os)


# -- the gate -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One change, as the gate sees it."""

    bom: str  # the BOM's name ("compute-amd64"; "" for an unnamed single BOM)
    cls: str  # one of CLASSES
    name: str
    arch: str  # the arch as NEW has it (removed: as OLD had it)
    version: str  # the version as NEW has it (removed: as OLD had it)
    detail: str  # "nvidia-driver 550.54.15-1 -> 535.216.01-1"
    family: Family | None = None
    os: OsRelease | None = None

    @functools.cached_property
    def purl(self) -> str | None:
        if self.family is None or self.os is None:
            return None
        from imagebuild.purl import purl  # packageurl: only for purl allow rules

        return purl(self.family, self.os, self.name, self.version, self.arch)

    def __str__(self) -> str:
        return f"{self.bom}: {self.detail}" if self.bom else self.detail


@dataclass(frozen=True)
class Allow:
    """An allow rule: a glob over package names, or over package URLs when it starts with `pkg:`."""

    pattern: str
    reason: str
    expires: date | None = None  # applies through this date (UTC), not after
    classes: frozenset[str] = frozenset()  # empty: every class
    source: str = "--allow"  # where it was given, for messages

    def is_expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def matches(self, f: Finding) -> bool:
        if self.classes and f.cls not in self.classes:
            return False
        if not self.pattern.startswith("pkg:"):
            return fnmatch.fnmatchcase(f.name, self.pattern)
        p = f.purl
        return p is not None and (fnmatch.fnmatchcase(p, self.pattern) or fnmatch.fnmatchcase(unquote(p), self.pattern))

    def describe(self) -> str:
        until = f", until {self.expires.isoformat()}" if self.expires else ""
        only = f", only {','.join(c for c in CLASSES if c in self.classes)}" if self.classes else ""
        return f"{self.pattern!r} ({self.reason}{until}{only}; {self.source})"


@dataclass(frozen=True)
class GateResult:
    """How `--fail-on` judged a diff: the gated changes no rule allows, and those one allows."""

    fail_on: frozenset[str]
    tripped: tuple[Finding, ...]  # gated changes no rule allows
    allowed: tuple[tuple[Finding, Allow], ...]  # gated changes and the (first) rule that allowed each
    expired: tuple[Allow, ...]  # rules past their expiry date: they allowed nothing
    expired_hits: tuple[tuple[Finding, Allow], ...]  # tripped changes an expired rule would have allowed
    unused: tuple[Allow, ...]  # rules in force that allowed nothing
    ungated: int  # changes in classes not in fail_on

    @property
    def failed(self) -> bool:
        return bool(self.tripped)

    def report(self, limit: int = 10) -> list[str]:
        """What tripped the gate (one line per class), what was allowed and why, expired and unused rules."""
        lines = []
        for cls in CLASSES:
            hits = [f for f in self.tripped if f.cls == cls]
            if hits:
                lines.append(f"gate: {len(hits)} {cls} ({_listing(hits, limit)})")
        for f, rule in self.expired_hits:
            lines.append(f"gate: {f} ({f.cls}) would be allowed by {rule.pattern!r}, but that rule expired on "
                         f"{rule.expires}")
        for rule in self.expired:
            lines.append(f"gate: allow rule {rule.describe()} expired on {rule.expires}: it no longer applies")
        by_rule: dict[int, list[Finding]] = {}
        rules: dict[int, Allow] = {}
        for f, rule in self.allowed:
            by_rule.setdefault(id(rule), []).append(f)
            rules[id(rule)] = rule
        for key, hits in by_rule.items():
            lines.append(f"gate: allowed {len(hits)} by {rules[key].describe()}: {_listing(hits, limit, True)}")
        for rule in self.unused:
            lines.append(f"gate: allow rule {rule.describe()} matched nothing")
        gated = ",".join(c for c in CLASSES if c in self.fail_on)
        verdict = "failed" if self.failed else "passed"
        tail = f"; {self.ungated} change(s) in other classes not gated" if self.ungated else ""
        lines.append(f"gate: {verdict} (fail on {gated or 'nothing'}: {len(self.tripped)} tripped, "
                     f"{len(self.allowed)} allowed{tail})")
        return lines


def _listing(hits: Sequence[Finding], limit: int, classes: bool = False) -> str:
    shown = "; ".join(f"{f.cls} {f}" if classes else str(f) for f in hits[:limit])
    return shown + (f"; … and {len(hits) - limit} more" if len(hits) > limit else "")


def findings(d: BomDiff | TreeDiff) -> list[Finding]:
    """Every change of a diff as a Finding, BOM by BOM, class by class."""
    diffs = [d] if isinstance(d, BomDiff) else [f.diff for f in d.files]
    out: list[Finding] = []
    for x in diffs:
        rows: list[tuple[str, str, str, str, str]] = []
        rows += [(ADDED, e.name, e.arch, e.version, f"{e.name} {e.version} {e.arch}") for e in x.added]
        rows += [(REMOVED, e.name, e.arch, e.version, f"{e.name} {e.version} {e.arch}") for e in x.removed]
        rows += [(UPGRADED, c.name, c.arch, c.new, f"{c.name} {c.old} -> {c.new}") for c in x.upgraded]
        rows += [(DOWNGRADED, c.name, c.arch, c.new, f"{c.name} {c.old} -> {c.new}") for c in x.downgraded]
        rows += [(ARCH_CHANGED, a.name, a.new_arch, a.new, f"{a.name} {a.old} {a.old_arch} -> {a.new} {a.new_arch}")
                 for a in x.arch_changed]
        rows += [(INTEGRITY, i.name, i.arch, i.version,
                  f"{i.name} {i.version} {i.arch} sha256 {i.old_sha256[:12]} -> {i.new_sha256[:12]}")
                 for i in x.integrity]
        out += [Finding(x.name, cls, n, a, v, detail, x.family, x.os) for cls, n, a, v, detail in rows]
    return out


def gate(d: BomDiff | TreeDiff, fail_on: Iterable[str], allows: Sequence[Allow], today: date) -> GateResult:
    """The CI gate: every change of a class in `fail_on` must be allowed by a rule in force on `today`."""
    gated = frozenset(fail_on)
    unknown = gated - set(CLASSES)
    if unknown:
        raise ConfigError(f"unknown change class(es): {', '.join(sorted(unknown))}",
                          hint=f"one of {', '.join(CLASSES)}")
    live = [r for r in allows if not r.is_expired(today)]
    dead = [r for r in allows if r.is_expired(today)]
    tripped, allowed, expired_hits, ungated = [], [], [], 0
    used: set[int] = set()
    for f in findings(d):
        if f.cls not in gated:
            ungated += 1
            continue
        rule = next((r for r in live if r.matches(f)), None)
        if rule is not None:
            allowed.append((f, rule))
            used.add(id(rule))
            continue
        tripped.append(f)
        old_rule = next((r for r in dead if r.matches(f)), None)
        if old_rule is not None:
            expired_hits.append((f, old_rule))
    return GateResult(gated, tuple(tripped), tuple(allowed), tuple(dead), tuple(expired_hits),
                      tuple(r for r in live if id(r) not in used), ungated)


def parse_classes(spec: str | Iterable[str]) -> frozenset[str]:
    """`--fail-on added,removed` (repeatable; `all` for every class) -> the set of classes."""
    items = [spec] if isinstance(spec, str) else list(spec)
    out: set[str] = set()
    for item in items:
        for part in item.split(","):
            c = part.strip().lower()
            if not c:
                continue
            if c == "all":
                out.update(CLASSES)
            elif c in CLASSES:
                out.add(c)
            else:
                close = difflib.get_close_matches(c, CLASSES, n=1)
                raise ConfigError(f"--fail-on: unknown change class {part.strip()!r}",
                                  hint=(f"did you mean {close[0]!r}? " if close else "")
                                  + f"classes: {', '.join(CLASSES)}, or all")
    if not out:
        raise ConfigError("--fail-on: no change class given", hint=f"classes: {', '.join(CLASSES)}, or all")
    return frozenset(out)


def _date(value: Any, where: str) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{where}: expires must be a date YYYY-MM-DD, not {value!r}")


def _allow(pattern: Any, reason: Any, expires: Any, classes: Any, where: str) -> Allow:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError(f"{where}: an allow rule needs a pattern (a package name glob or a pkg: purl glob)")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where}: allow rule {pattern!r} needs a reason",
                          hint='say why, e.g. reason = "driver bump PR-123"')
    cls: frozenset[str] = frozenset()
    if classes is not None:
        if isinstance(classes, str):
            classes = [classes]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ConfigError(f"{where}: classes must be a list of change classes")
        try:
            cls = parse_classes(classes)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e.message.removeprefix('--fail-on: ')}", hint=e.hint) from None
    return Allow(pattern.strip(), reason.strip(), None if expires is None else _date(expires, where), cls, where)


def parse_allow(spec: str, source: str = "--allow") -> Allow:
    """The command-line form `PATTERN[;reason=TEXT][;expires=YYYY-MM-DD][;classes=CLASS,CLASS]`, e.g.
    `nvidia-*;reason=driver bump PR-123;expires=2027-01-31`; the reason defaults to "allowed on the command line"."""
    pattern, *opts = spec.split(";")
    values: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("reason", "expires", "classes"):
            raise ConfigError(f"{source} {spec!r}: expected PATTERN[;reason=TEXT][;expires=YYYY-MM-DD]"
                              f"[;classes=CLASS,…], got {opt!r}")
        values[key] = value.strip()
    classes = values["classes"].split(",") if "classes" in values else None
    rule = _allow(pattern, values.get("reason", "allowed on the command line"), values.get("expires"), classes,
                  f"{source} {spec!r}")
    return Allow(rule.pattern, rule.reason, rule.expires, rule.classes, source)


def read_allow_file(path: Path) -> list[Allow]:
    """A TOML file of `[[allow]]` tables::

        [[allow]]
        pattern = "nvidia-*"                  # a name glob, or a purl glob: "pkg:deb/debian/nvidia-*"
        reason = "driver bump PR-123"         # required
        expires = 2027-01-31                  # optional: applies through that date (a TOML date or "YYYY-MM-DD")
        classes = ["upgraded", "downgraded"]  # optional: only these classes (default: all)
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the allow file: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    extra = set(doc) - {"allow"}
    if extra:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(extra))}", hint="only [[allow]] tables")
    rules = doc.get("allow", [])
    if not isinstance(rules, list):
        raise ConfigError(f"{path}: allow must be an array of tables ([[allow]])")
    out = []
    for n, rule in enumerate(rules, 1):
        where = f"{path}: [[allow]] #{n}"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = set(rule) - {"pattern", "reason", "expires", "classes"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
                              hint="keys: pattern, reason, expires, classes")
        out.append(_allow(rule.get("pattern"), rule.get("reason"), rule.get("expires"), rule.get("classes"), where))
    return out


# -- renderers ------------------------------------------------------------------------------------------


def _json_obj(d: BomDiff) -> dict[str, list[dict[str, str]]]:
    def entry(e: BomEntry) -> dict[str, str]:
        return {"name": e.name, "arch": e.arch, "version": e.version}

    def change(c: VersionChange) -> dict[str, str]:
        return {"name": c.name, "arch": c.arch, "old": c.old, "new": c.new}

    doc = {
        "added": [entry(e) for e in d.added],
        "removed": [entry(e) for e in d.removed],
        "upgraded": [change(c) for c in d.upgraded],
        "downgraded": [change(c) for c in d.downgraded],
    }
    if d.arch_changed:
        doc[ARCH_CHANGED] = [{"name": a.name, "old_arch": a.old_arch, "new_arch": a.new_arch, "old": a.old,
                              "new": a.new} for a in d.arch_changed]
    if d.integrity:
        doc[INTEGRITY] = [{"name": i.name, "arch": i.arch, "version": i.version, "old_sha256": i.old_sha256,
                           "new_sha256": i.new_sha256} for i in d.integrity]
    return doc


def render_json(d: BomDiff | TreeDiff) -> str:
    """The machine format (see the module docstring); deterministic, ends with a newline."""
    doc: Any = _json_obj(d) if isinstance(d, BomDiff) else {f.name: _json_obj(f.diff) for f in d.files}
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# `>` only quotes at a line's start, where no cell text is; `_` only emphasises at a word boundary (GFM leaves
# intraword underscores alone), so `x86_64` and `el9_4` stay as they are
_MD_SPECIAL = re.compile(r"([\\`*\[\]<|~&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _md(s: str) -> str:
    """Text for a Markdown paragraph or table cell: every character GFM could read as markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", s)


_DETAILS_ABOVE = 10  # longer tables fold into <details> so a PR comment stays readable
_LEGEND = "+ added · − removed · ↑ upgraded · ↓ downgraded · ⇄ arch changed · ≠ sha256 changed"
_KIND_ORDER = {"integrity": 0, "downgraded": 1, "removed": 2, "arch": 3, "upgraded": 4, "added": 5}
_KIND_LABEL = {"integrity": "**sha256 changed**", "downgraded": "**downgraded**", "removed": "removed",
               "arch": "arch changed", "upgraded": "upgraded", "added": "added"}


def _short(sha: str) -> str:
    return f"sha256:{sha[:12]}…"


def _rows(d: BomDiff) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    rows += [(e.name, _md(e.arch), "", _md(e.version), "added") for e in d.added]
    rows += [(e.name, _md(e.arch), _md(e.version), "", "removed") for e in d.removed]
    rows += [(c.name, _md(c.arch), _md(c.old), _md(c.new), "upgraded") for c in d.upgraded]
    rows += [(c.name, _md(c.arch), _md(c.old), _md(c.new), "downgraded") for c in d.downgraded]
    rows += [(a.name, f"{_md(a.old_arch)} → {_md(a.new_arch)}", _md(a.old), _md(a.new), "arch")
             for a in d.arch_changed]
    rows += [(i.name, _md(i.arch), f"{_md(i.version)} {_short(i.old_sha256)}", f"{_md(i.version)} "
              f"{_short(i.new_sha256)}", "integrity") for i in d.integrity]
    rows.sort(key=lambda r: (r[0], r[1], _KIND_ORDER[r[4]]))
    return rows


def _table(label: str, note: str, d: BomDiff) -> list[str]:
    rows = _rows(d)
    table = ["| package | arch | old | new | change |", "|---|---|---|---|---|"]
    table += [f"| {_md(n)} | {a} | {o} | {nw} | {_KIND_LABEL[k]} |" for n, a, o, nw, k in rows]
    what = f"{len(rows)} change{'s' if len(rows) != 1 else ''} ({d.counts()})"
    if len(rows) > _DETAILS_ABOVE:
        summary = f"<b>{html.escape(label)}</b>{html.escape(note)}: {html.escape(what)}"
        return [f"<details><summary>{summary}</summary>", "", *table, "", "</details>", ""]
    return [f"**{_md(label)}**{_md(note)}: {what}", "", *table, ""]


def _md_gate(g: GateResult, limit: int = 20) -> list[str]:
    gated = ", ".join(c for c in CLASSES if c in g.fail_on)
    head = f"**Gate** (fail on {_md(gated)}): "
    if g.failed:
        counts = ", ".join(f"{sum(f.cls == c for f in g.tripped)} {c}" for c in CLASSES
                           if any(f.cls == c for f in g.tripped))
        lines = [head + f"❌ **failed**: {_md(counts)}", ""]
        lines += [f"- {_md(str(f))} ({f.cls})" for f in g.tripped[:limit]]
        if len(g.tripped) > limit:
            lines.append(f"- … and {len(g.tripped) - limit} more")
    else:
        lines = [head + f"✅ passed ({len(g.allowed)} allowed)", ""]
    for f, rule in g.allowed[:limit]:
        lines.append(f"- allowed: {_md(str(f))} ({f.cls}) by {_md(rule.describe())}")
    if len(g.allowed) > limit:
        lines.append(f"- … and {len(g.allowed) - limit} more allowed")
    lines += [f"- expired: {_md(rule.describe())} expired on {rule.expires}" for rule in g.expired]
    return [*lines, ""] if lines[-1] != "" else lines


def render_markdown(d: BomDiff | TreeDiff, title: str = "BOM diff", gate: GateResult | None = None) -> str:
    """A PR-comment body: a heading, one count line per BOM, the gate's verdict (when given), and a table of the
    changes of each changed BOM."""
    lines = [f"### {_md(title)}", ""]
    notes = {FileStatus.BOTH: "", FileStatus.NEW: " (new BOM)", FileStatus.GONE: " (BOM removed)"}
    if isinstance(d, BomDiff):
        items = [(d.name or "BOM", "", d)]
    else:
        items = [(_stem(f.name), notes[f.status], f.diff) for f in d.files]
        changed = sum(f.diff.has_changes for f in d.files)
        lines += [f"{changed} of {len(d.files)} BOMs changed.", ""]
    for label, note, x in items:
        lines.append(f"- **{_md(label)}**{_md(note)}: " + (x.counts() if x.has_changes else "no changes"))
    lines.append("")
    if d.has_changes:
        lines += [f"<sub>{html.escape(_LEGEND)}</sub>", ""]
    if gate is not None:
        lines += _md_gate(gate)
    for label, note, x in items:
        if x.has_changes:
            lines += _table(label, note, x)
    return "\n".join(lines).rstrip("\n") + "\n"


def changed_files(d: TreeDiff) -> Sequence[str]:
    """The names of the BOM files that changed, sorted."""
    return [f.name for f in d.files if f.diff.has_changes]


_ANSI = {"+": "32", "-": "31", "^": "36", "v": "1;33", "~": "35", "!": "1;31"}


def _text_section(d: BomDiff, color: bool) -> list[str]:
    lines = [f"  + {e.name} {e.version} {e.arch}" for e in d.added]
    lines += [f"  - {e.name} {e.version} {e.arch}" for e in d.removed]
    lines += [f"  ^ {c.name} {c.arch} {c.old} -> {c.new}" for c in d.upgraded]
    lines += [f"  v {c.name} {c.arch} {c.old} -> {c.new} (downgrade)" for c in d.downgraded]
    lines += [f"  ~ {a.name} {a.old} {a.old_arch} -> {a.new} {a.new_arch} (arch changed)" for a in d.arch_changed]
    lines += [f"  ! {i.name} {i.arch} {i.version} sha256 {i.old_sha256} -> {i.new_sha256} (integrity)"
              for i in d.integrity]
    lines.sort(key=lambda ln: ln[4:])
    if color:
        lines = [f"\x1b[{_ANSI[ln[2]]}m{ln}\x1b[0m" for ln in lines]
    return lines


def _bold(s: str, color: bool) -> str:
    return f"\x1b[1m{s}\x1b[0m" if color else s


def render_text(d: BomDiff | TreeDiff, color: bool = False) -> str:
    """For a terminal: a count line per BOM, then one line per change (+ added, - removed, ^ up, v down,
    ~ arch changed, ! sha256 changed); ANSI colours when `color` (pass it only for a TTY)."""
    if isinstance(d, BomDiff):
        head = _bold(d.summary(), color) if d.has_changes else "no changes"
        return "\n".join([head, *_text_section(d, color)]) + "\n"
    lines = []
    for f in d.files:
        note = {FileStatus.BOTH: "", FileStatus.NEW: " (new)", FileStatus.GONE: " (gone)"}[f.status]
        head = f"{f.name}{note}: " + (f.diff.summary() if f.diff.has_changes else "no changes")
        lines.append(_bold(head, color) if f.diff.has_changes else head)
        lines += _text_section(f.diff, color)
    return "\n".join(lines) + "\n"


def render(d: BomDiff | TreeDiff, fmt: str, title: str = "BOM diff", color: bool = False,
           gate: GateResult | None = None) -> str:
    """`--format text|markdown|json`. The gate's verdict goes into the Markdown (a PR comment shows it); for text
    and json print `GateResult.report()` on stderr instead (json keeps its contract shape)."""
    if fmt == "json":
        return render_json(d)
    if fmt == "markdown":
        return render_markdown(d, title, gate)
    if fmt == "text":
        return render_text(d, color)
    raise ConfigError(f"unknown format {fmt!r}", hint="text, markdown or json")
