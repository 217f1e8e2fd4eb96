"""The package universe of one distro × architecture, as apt's cache sees it.

Built from parsed Packages indices plus the base image's installed packages. Versions of the same
(name, version, arch) found in several indices are merged, like apt merges them, keeping every
origin so pin priorities and download locations are known.
"""

from __future__ import annotations

import array
import hashlib
import marshal
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from imagebuild.apt.packages import (
    R_ARCH,
    R_BREAKS,
    R_CONFLICTS,
    R_DEPENDS,
    R_ESSENTIAL,
    R_FILENAME,
    R_IMPORTANT,
    R_MA,
    R_NAME,
    R_PREDEPENDS,
    R_PRIORITY,
    R_PROVIDES,
    R_RECOMMENDS,
    R_SHA256,
    R_SIZE,
    R_STATUS,
    R_VERSION,
    Group,
    Record,
    Relation,
    mention_order,
    parse_relations,
    priority_rank,
)
from imagebuild.apt.repository import PackagesIndex
from imagebuild.debversion import satisfies, version_key
from imagebuild.errors import RepositoryError
from imagebuild.fsutil import gc_paused, write_atomic
from imagebuild.lockfile import repo_path

STATUS_PRIORITY = 100  # apt's pin for the installed version (the dpkg status "file")


@dataclass(frozen=True)
class Origin:
    """Where a version can be downloaded from, with the pin priority of that index."""

    index: PackagesIndex | None  # None: the base image's status
    priority: int
    filename: str
    size: int
    sha256: str


class DepType:
    PRE_DEPENDS = "Pre-Depends"
    DEPENDS = "Depends"
    CONFLICTS = "Conflicts"
    BREAKS = "Breaks"
    RECOMMENDS = "Recommends"


# the order apt's cache keeps a version's dependencies in
_DEP_SLOTS = (
    (DepType.PRE_DEPENDS, R_PREDEPENDS), (DepType.DEPENDS, R_DEPENDS), (DepType.CONFLICTS, R_CONFLICTS),
    (DepType.BREAKS, R_BREAKS), (DepType.RECOMMENDS, R_RECOMMENDS),
)
NEGATIVE = frozenset({DepType.CONFLICTS, DepType.BREAKS})
CRITICAL = frozenset({DepType.PRE_DEPENDS, DepType.DEPENDS, DepType.CONFLICTS, DepType.BREAKS})


class Version:
    """One version of one package. Dependencies are parsed on first use."""

    __slots__ = ("name", "version", "arch", "multi_arch", "priority", "origins", "record", "key",
                 "_deps", "_provides")

    def __init__(self, record: Record, arch: str) -> None:
        self.name = record[R_NAME]
        self.version = record[R_VERSION]
        self.arch = record[R_ARCH] or arch  # what dpkg reports: "all" stays "all"
        self.multi_arch = record[R_MA]
        self.priority = priority_rank(record[R_PRIORITY])
        self.origins: list[Origin] = []
        self.record = record
        self.key = version_key(self.version)
        self._deps: tuple[tuple[str, Group], ...] | None = None
        self._provides: tuple[tuple[str, str | None], ...] | None = None

    def __repr__(self) -> str:
        return f"{self.name}={self.version}"

    @property
    def pin(self) -> int:
        return max((o.priority for o in self.origins), default=0)

    @property
    def deps(self) -> tuple[tuple[str, Group], ...]:
        """(type, or-group) in apt's order: Pre-Depends, Depends, Conflicts, Breaks, Recommends."""
        if self._deps is None:
            out: list[tuple[str, Group]] = []
            for kind, slot in _DEP_SLOTS:
                raw = self.record[slot]
                if raw:
                    try:
                        out.extend((kind, g) for g in parse_relations(raw))
                    except RepositoryError as e:
                        raise RepositoryError(f"{self.name} {self.version}: cannot parse {kind}: {e.message}") \
                            from None
            self._deps = tuple(out)
        return self._deps

    @property
    def provides(self) -> tuple[tuple[str, str | None], ...]:
        if self._provides is None:
            raw = self.record[R_PROVIDES]
            try:
                self._provides = tuple((g[0].name, g[0].version) for g in parse_relations(raw)) if raw else ()
            except RepositoryError as e:
                raise RepositoryError(f"{self.name} {self.version}: cannot parse Provides: {e.message}") from None
        return self._provides


class Package:
    __slots__ = ("name", "id", "versions", "current", "essential", "important")

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.id = pid
        self.versions: list[Version] = []  # highest first once the universe is sealed
        self.current: Version | None = None
        self.essential = False
        self.important = False


class Universe:
    """Packages by name, providers by virtual name; single architecture, like `APT::Architectures=ARCH`.

    Records are indexed eagerly (cheap) but turned into `Version` objects only when the resolver
    first looks at a package, so a 60,000-package distro costs only what a resolution touches.
    """

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self._raw: dict[str, list[Entry]] = {}
        self._packages: dict[str, Package] = {}
        self._ids: dict[str, int] = {}
        self._provides_raw: dict[str, list[str]] = {}  # virtual -> names of packages whose records provide it
        self.base: list[str] = []
        self._providers: dict[str, list[tuple[Version, str | None]]] = {}
        self._targets: dict[Relation, list[Version]] = {}
        self._indices: list[tuple[PackagesIndex, int]] = []  # what was added, in order (for `save`)
        self._positions: dict[str, list[int]] = {}  # name -> (index number, record number)* of its entries
        self._stored: _Stored | None = None  # entries still in a saved universe, read when a package is looked at

    def _id(self, name: str) -> int:
        pid = self._ids.get(name)
        if pid is None:
            pid = self._ids[name] = len(self._ids)
        return pid

    def add(self, records: Iterable[Record], index: PackagesIndex | None, priority: int, keep: bool = True) -> None:
        """Add the records of one index (None: the base's status file). Without `keep`, only what `save` writes is
        kept (names, provides, where each package's records are), not the records."""
        arch = self.arch
        raw = self._raw
        ids = self._ids
        provides = self._provides_raw
        lookup = raw.get if self._stored is None else self._entries
        positions = self._positions
        number = len(self._indices)
        if index is not None:
            self._indices.append((index, priority))
        for name in (index.mentions if index is not None else mention_order(records, arch)):
            if name not in ids:
                ids[name] = len(ids)
        with gc_paused():
            for r, rec in enumerate(records):
                rarch = rec[R_ARCH]
                if rarch != arch and rarch != "all":
                    continue
                name = rec[R_NAME]
                if index is None:
                    if not _installed(rec[R_STATUS]):
                        continue
                    self.base.append(name)
                else:
                    where = positions.get(name)
                    if where is None:
                        positions[name] = [number, r]
                    else:
                        where += (number, r)
                if keep:
                    entries = lookup(name)
                    if entries is None:
                        raw[name] = [(rec, index, priority)]
                    else:
                        entries.append((rec, index, priority))
                if rec[R_PROVIDES]:
                    # only the names here; versions are parsed when a provider is looked at
                    for part in rec[R_PROVIDES].split(","):
                        virtual = part.split("(", 1)[0].strip()
                        if virtual in provides:
                            provides[virtual].append(name)
                        else:
                            provides[virtual] = [name]
                        if virtual not in ids:
                            ids[virtual] = len(ids)

    def subset(self, keep: Callable[[Record], bool]) -> Universe:
        """A universe of the same architecture with only the repository records `keep` accepts (their origins
        kept) and no base: what apt would see if the repos held nothing else. Package ids (apt's cache order)
        stay as they are here."""
        sub = Universe(self.arch)
        sub._ids = dict(self._ids)
        for name in self.names():
            self._entries(name)
        for name, entries in self._raw.items():
            kept = [e for e in entries if e[1] is not None and keep(e[0])]
            if not kept:
                continue
            sub._raw[name] = kept
            for rec, _, _ in kept:
                for part in rec[R_PROVIDES].split(",") if rec[R_PROVIDES] else ():
                    sub._provides_raw.setdefault(part.split("(", 1)[0].strip(), []).append(name)
        return sub

    def seal(self) -> None:
        """Nothing more will be added (kept for symmetry; versions are built lazily)."""

    def names(self) -> Iterable[str]:
        """Every package name with a version (not only provided)."""
        if self._stored is None:
            return self._raw.keys()
        return {*self._raw, *self._stored.names()}

    def _entries(self, name: str) -> list[Entry] | None:
        entries = self._raw.get(name)
        if entries is None and self._stored is not None:
            pid = self._ids.get(name)
            if pid is not None:
                entries = self._stored.entries(pid)
                if entries is not None:
                    self._raw[name] = entries
        return entries

    # -- a saved universe: what every index added, without reading the indices ------------------------------

    def save(self, path: Path) -> None:
        """Write what the indices added so far (not the base) to `path`, for `load` with the same indices."""
        if self._stored is not None or self.base:
            raise ValueError("only a universe built from indices alone can be saved")
        names = list(self._ids)  # ids are given in order: the list is id -> name
        starts = array.array("I", [0])
        pairs = array.array("I")
        positions = self._positions
        for name in names:
            where = positions.get(name)
            if where is not None:
                pairs.extend(where)
            starts.append(len(pairs) // 2)
        header = marshal.dumps((names, self._provides_raw, [(i.sha256, p) for i, p in self._indices]))
        write_atomic(path, b"".join([_STORE_MAGIC, struct.pack("<QQ", len(header), len(starts)), header,
                                     starts.tobytes(), pairs.tobytes()]))

    @classmethod
    def load(cls, path: Path, arch: str, indices: list[tuple[PackagesIndex, int]]) -> Universe | None:
        """The universe `save` wrote after adding `indices` (the same files, priorities and order), or None when
        there is none or it does not hold them. Records are read from the indices when a package is looked at."""
        try:
            data = path.read_bytes()
            if not data.startswith(_STORE_MAGIC):
                return None
            at = len(_STORE_MAGIC)
            header_len, nstarts = struct.unpack_from("<QQ", data, at)
            at += 16
            with gc_paused():
                names, provides, added = marshal.loads(data[at:at + header_len])
            at += header_len
            starts = array.array("I")
            starts.frombytes(data[at:at + 4 * nstarts])
            pairs = array.array("I")
            pairs.frombytes(data[at + 4 * nstarts:])
        except (OSError, ValueError, EOFError, TypeError, struct.error):
            return None
        if (added != [(i.sha256, p) for i, p in indices] or len(starts) != len(names) + 1
                or len(pairs) != 2 * starts[-1] or not isinstance(provides, dict)):
            return None
        u = cls(arch)
        u._ids = dict(zip(names, range(len(names)), strict=True))  # built in C, faster than a comprehension
        u._provides_raw = provides
        u._indices = list(indices)
        u._stored = _Stored(path, names, starts, pairs, u._indices)
        return u

    def get(self, name: str) -> Package | None:
        pkg = self._packages.get(name)
        if pkg is not None:
            return pkg
        entries = self._entries(name)
        if entries is None and name not in self._ids:
            return None
        pkg = self._packages[name] = Package(name, self._id(name))
        by_nva: dict[tuple[str, str], Version] = {}
        for rec, index, priority in entries or ():
            _check(rec, index)
            nva = (rec[R_VERSION], rec[R_ARCH])
            ver = by_nva.get(nva)
            if ver is None:
                ver = by_nva[nva] = Version(rec, self.arch)
                pkg.versions.append(ver)
            elif index is not None and ver.origins and ver.origins[0].index is None:
                ver.record = rec
            if rec[R_ESSENTIAL].lower() == "yes":
                pkg.essential = True
            if rec[R_IMPORTANT].lower() == "yes":
                pkg.important = True
            if index is None:
                pkg.current = ver
                ver.origins.append(Origin(None, STATUS_PRIORITY, "", 0, ""))
            else:
                ver.origins.append(Origin(index, priority, rec[R_FILENAME], int(rec[R_SIZE] or 0), rec[R_SHA256]))
        # base-only versions (from the status file) must sort among repository versions too
        pkg.versions.sort(key=lambda v: v.key, reverse=True)
        return pkg

    def __getitem__(self, name: str) -> Package:
        pkg = self.get(name)
        if pkg is None:
            raise KeyError(name)
        return pkg

    def providers(self, virtual: str) -> list[tuple[Version, str | None]]:
        cached = self._providers.get(virtual)
        if cached is not None:
            return cached
        out: list[tuple[Version, str | None]] = []
        self._providers[virtual] = out
        for name in dict.fromkeys(self._provides_raw.get(virtual, ())):
            pkg = self[name]
            for v in pkg.versions:
                for pname, pver in v.provides:
                    if pname == virtual:
                        out.append((v, pver))
        return out

    # -- queries used by the resolver -------------------------------------------------------------

    def targets(self, rel: Relation) -> list[Version]:
        """Every version that satisfies `rel`: the package's own versions and its providers."""
        cached = self._targets.get(rel)
        if cached is None:
            cached = self._targets[rel] = self._find_targets(rel)
        return cached

    def _find_targets(self, rel: Relation) -> list[Version]:
        archq = rel.archq
        if archq and archq not in ("any", self.arch, "native"):
            return []  # another architecture: not configured
        out: list[Version] = []
        pkg = self.get(rel.name)
        if pkg is not None:
            for v in pkg.versions:
                if archq == "any" and v.multi_arch != "allowed":
                    continue
                if rel.op is None or satisfies(v.version, rel.op, rel.version or ""):
                    out.append(v)
        if archq != "any":
            for v, pver in self.providers(rel.name):
                matches = rel.op is None or (pver is not None and satisfies(pver, rel.op, rel.version or ""))
                if matches and (v.name != rel.name or v not in out):
                    out.append(v)
        return out



Entry = tuple[Record, "PackagesIndex | None", int]  # a record, the index it is from (None: the base), its priority
_STORE_MAGIC = b"imagebuild universe 1\n"


def store_key(arch: str, indices: list[tuple[PackagesIndex, int]]) -> str:
    """The name of the saved universe of `indices` (files by digest, with their priorities, in order) on `arch`."""
    h = hashlib.sha256(_STORE_MAGIC + arch.encode())
    for index, priority in indices:
        h.update(f"\n{index.sha256} {priority}".encode())
    return h.hexdigest()


class _Stored:
    """The entries of a saved universe: per package id, a run of (index number, record number) pairs."""

    def __init__(self, path: Path, names: list[str], starts: array.array[int], pairs: array.array[int],
                 indices: list[tuple[PackagesIndex, int]]) -> None:
        self.path, self._names, self._starts, self._pairs, self._indices = path, names, starts, pairs, indices

    def names(self) -> list[str]:
        s = self._starts
        return [n for i, n in enumerate(self._names) if s[i] < s[i + 1]]

    def entries(self, pid: int) -> list[Entry] | None:
        if pid + 1 >= len(self._starts):
            return None  # a name the base brought
        a, b = self._starts[pid], self._starts[pid + 1]
        if a >= b:
            return None
        out: list[Entry] = []
        pairs, indices = self._pairs, self._indices
        try:
            for k in range(2 * a, 2 * b, 2):
                index, priority = indices[pairs[k]]
                out.append((index.records[pairs[k + 1]], index, priority))
        except IndexError:
            self.path.unlink(missing_ok=True)  # the next run builds it again
            raise RepositoryError(f"{self.path}: a saved universe does not match its indices (removed)",
                                  hint="run the command again") from None
        return out


# dpkg's rules (pkg_name_is_illegal, parseversion): what apt and dpkg refuse is refused here, before any of it can
# reach the lock, a BOM or a provisioning script. Versions keep to the characters dpkg accepts without a warning (and
# `_`), so a pin `name=version` is one shell word that no glob can expand.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._-]*")
_VERSION_RE = re.compile(r"[A-Za-z0-9.+~:_-]+")
_SIZE_RE = re.compile(r"[0-9]{1,20}")


def _valid_version(version: str) -> bool:
    """`[epoch:]upstream[-revision]` with a decimal epoch (a C int), a non-empty upstream and revision."""
    if not _VERSION_RE.fullmatch(version):
        return False
    epoch, colon, rest = version.partition(":")
    if not colon:
        rest = version
    elif not (epoch.isdigit() and len(epoch) <= 10 and int(epoch) <= 2**31 - 1):
        return False
    upstream, dash, revision = rest.rpartition("-")
    return bool(upstream or not dash) and bool(rest) and (not dash or bool(revision))


def _problem(rec: Record, index: PackagesIndex | None) -> str | None:
    """What is wrong with a record that apt would refuse, or None."""
    name, version = rec[R_NAME], rec[R_VERSION]
    if not _NAME_RE.fullmatch(name):
        return "is not a valid package name"
    if not _valid_version(version):
        return f"has an invalid version {version[:80]!r}"
    if index is None:
        return None
    if rec[R_SIZE] and not _SIZE_RE.fullmatch(rec[R_SIZE]):
        return f"has an invalid Size {rec[R_SIZE][:80]!r}"
    if rec[R_FILENAME] and repo_path(rec[R_FILENAME]) is None:
        return f"has a Filename outside its repository: {rec[R_FILENAME][:200]!r}"
    return None


def _check(rec: Record, index: PackagesIndex | None) -> None:
    problem = _problem(rec, index)
    if problem is not None:
        where = "the base image's packages" if index is None else (
            f"repo {index.release.repo!r} {index.release.suite}: {index.path}")
        raise RepositoryError(f"{where}: package {rec[R_NAME][:80]!r} {problem}",
                              hint="the index is damaged or hostile" if index is not None else None)


def _installed(status: str) -> bool:
    parts = status.split()
    return len(parts) == 3 and parts[2] in ("installed", "half-configured", "unpacked", "triggers-awaited",
                                             "triggers-pending", "half-installed")
