"""dnf 4's resolution, done the way libdnf drives libsolv: same pool setup, flags, excludes, repo
priorities and costs, installonly packages and modular filtering. No I/O beyond handing libsolv the
verified, cached metadata the application layer prepared (imagebuild.rpm.repository: read_repo
writes, load_repo only reads)."""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import solv

from imagebuild.bom import BomEntry
from imagebuild.errors import ConfigError, RepositoryError
from imagebuild.lockfile import repo_path
from imagebuild.resolution import Reason, UnknownPackage, Unsatisfiable
from imagebuild.rpm.repository import RepoMetadata, add_filelists, load_repo

# dnf.conf's default installonlypkgs
INSTALLONLY = ("kernel", "kernel-PAE", "installonlypkg(kernel)", "installonlypkg(kernel-module)",
               "installonlypkg(vm)", "multiversion(kernel)")


@dataclass(frozen=True)
class RpmPackage:
    """One package of a resolved rpm image."""

    name: str
    evr: str
    arch: str
    repo: str  # "base" for packages of the base image
    location: str
    size: int
    sha256: str


# what rpm(8) lets a package be named and versioned (no blanks, no shell or glob characters): a pin
# `name-evr.arch` in the lock and a provisioning script stays one word
_NAME_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*")
_EVR_RE = re.compile(r"(?:[0-9]{1,10}:)?[A-Za-z0-9._+~^]+-[A-Za-z0-9._+~^]+")
_ARCH_RE = re.compile(r"[A-Za-z0-9_]+")


def _problem(name: str, evr: str, arch: str, location: str) -> str | None:
    if not _NAME_RE.fullmatch(name):
        return "is not a valid package name"
    if not _EVR_RE.fullmatch(evr):
        return f"has an invalid version {evr[:80]!r}"
    if not _ARCH_RE.fullmatch(arch):
        return f"has an invalid arch {arch[:80]!r}"
    if repo_path(location) is None:
        return f"has a location outside its repository: {location[:200]!r}"
    return None


@dataclass(frozen=True)
class RpmResolution:
    """What resolving a role gives: the rpmdb after the transaction, what it adds and removes, and why."""

    installed: tuple[RpmPackage, ...]  # the rpmdb after the transaction
    added: frozenset[str]  # nevra of what the transaction installs
    removed: tuple[str, ...]
    reasons: dict[str, Reason]  # by name
    depends: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # name -> installed names it needs


def _nevra(s: solv.XSolvable) -> str:
    return f"{s.name}-{s.evr}.{s.arch}"


def _nevra_forms(s: solv.XSolvable) -> tuple[str, ...]:
    evr = s.evr
    vr = evr.split(":", 1)[1] if ":" in evr else evr
    return (s.name, f"{s.name}.{s.arch}", f"{s.name}-{vr}", f"{s.name}-{evr}", f"{s.name}-{vr}.{s.arch}",
            f"{s.name}-{evr}.{s.arch}", f"{s.name}-{evr if ':' in evr else '0:' + evr}.{s.arch}")


@functools.lru_cache(maxsize=64)
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a list of globs, each as fnmatch.fnmatchcase reads it: a match per form and pattern
    is most of the cost of an exclude pass."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


def _matches(s: solv.XSolvable, patterns: Sequence[str]) -> bool:
    if not patterns:
        return False
    rx = _globs(tuple(patterns))
    return any(rx.match(f) for f in _nevra_forms(s))


def _glob_prefix(pattern: str) -> str:
    """The literal start of a glob (everything before its first `*`, `?` or `[`)."""
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return pattern


class ModuleIndex:
    """modules.yaml of all repos: streams with their artifacts, and default streams."""

    def __init__(self, documents: Iterable[dict]) -> None:  # type: ignore[type-arg]
        self.artifacts: dict[tuple[str, str], set[str]] = {}
        self.profiles: dict[tuple[str, str], dict[str, set[str]]] = {}  # stream -> profile -> rpm names
        self.defaults: dict[str, str] = {}
        self.default_profiles: dict[tuple[str, str], list[str]] = {}
        for doc in documents:
            if not isinstance(doc, dict):
                continue
            data = doc.get("data") or {}
            if doc.get("document") == "modulemd":
                key = (str(data.get("name")), str(data.get("stream")))
                rpms = ((data.get("artifacts") or {}).get("rpms")) or []
                self.artifacts.setdefault(key, set()).update(str(r) for r in rpms)
                for profile, names in (data.get("profiles") or {}).items():
                    self.profiles.setdefault(key, {}).setdefault(str(profile), set()).update(names)
            elif doc.get("document") == "modulemd-defaults":
                module = str(data.get("module"))
                if data.get("stream") is not None:
                    self.defaults[module] = str(data["stream"])
                for stream, profiles in (data.get("profiles") or {}).items():
                    self.default_profiles[(module, str(stream))] = [str(p) for p in profiles]

    def active(self, enabled: Sequence[str]) -> set[tuple[str, str]]:
        """The streams whose artifacts are visible: the default streams, then `module:stream` enables one
        (replacing the default) and `!module` disables the module (none of its streams, as `dnf module
        disable`: its artifacts are hidden, packages of the same names outside the module are not)."""
        chosen: dict[str, str] = dict(self.defaults)
        for spec in enabled:
            if spec.startswith("!"):
                module = spec[1:]
                if not any(m == module for m, _ in self.artifacts):
                    raise ConfigError(f"module {module!r} (to disable) does not exist in the configured repos",
                                      hint="modules: " + ", ".join(sorted({m for m, _ in self.artifacts})))
                chosen.pop(module, None)
                continue
            module, stream = spec.split(":", 1)
            if (module, stream) not in self.artifacts:
                have = sorted(s for m, s in self.artifacts if m == module)
                raise ConfigError(f"module stream {spec!r} does not exist in the configured repos",
                                  hint=f"streams of {module}: {', '.join(have)}" if have else f"no module {module!r}")
            chosen[module] = stream
        return {(m, s) for m, s in chosen.items() if (m, s) in self.artifacts}

    def profile_packages(self, spec: str, active: set[tuple[str, str]]) -> list[str]:
        """The rpm names of `@module[:stream][/profile]` (dnf's module install spec): the stream must be the
        active one (enabled in `modules`, or the default); no profile means the stream's default profiles."""
        body = spec[1:]
        body, _, profile = body.partition("/")
        module, _, stream = body.partition(":")
        current = next((s for m, s in active if m == module), None)
        if not any(m == module for m, _ in self.artifacts):
            raise UnknownPackage(f"no module {module!r} for argument: {spec}", (spec,))
        if current is None or (stream and stream != current):
            raise ModuleNotActive(spec, module, stream or None, current)
        profiles = self.profiles.get((module, current), {})
        wanted = [profile] if profile else self.default_profiles.get((module, current), [])
        if not wanted or any(p not in profiles for p in wanted):
            raise UnknownPackage(f"module {module}:{current} has no profile {profile or '(default)'!r} for argument: "
                                 f"{spec} (profiles: {', '.join(sorted(profiles))})", (spec,))
        return sorted(set().union(*(profiles[p] for p in wanted)))


class ModuleNotActive(Unsatisfiable):
    """`@module:stream/...` asks for a stream other than the one the distro has enabled."""

    def __init__(self, spec: str, module: str, stream: str | None, current: str | None) -> None:
        what = f"stream {stream!r} of module {module!r}" if stream else f"module {module!r}"
        now = f"{module}:{current} is active" if current else f"{module} has no enabled or default stream"
        super().__init__(f"{what} is not enabled for argument: {spec} ({now})", (spec,))
        self.module, self.stream = module, stream


def _artifact_key(nevra: str) -> str:
    """`name-epoch:version-release.arch` as libsolv prints it (no `0:` epoch)."""
    name_ev, _, arch = nevra.rpartition(".")
    name, _, rest = name_ev.rpartition("-")
    name, _, ver = name.rpartition("-")
    epoch, sep, version = ver.partition(":")
    evr = f"{version}-{rest}" if sep and epoch == "0" else f"{ver}-{rest}"
    return f"{name}-{evr}.{arch}"


class RpmResolver:
    def __init__(self, arch: str, repos: Sequence[RepoMetadata], base: Sequence[BomEntry], weak_deps: bool,
                 modules: Sequence[str], exclude: Sequence[str]) -> None:
        self.pool = pool = solv.Pool()
        pool.setdisttype(solv.Pool.DISTTYPE_RPM)
        # libdnf's setting: x86_64 and i686 builds of one name may be installed side by side (multilib)
        pool.set_flag(solv.Pool.POOL_FLAG_IMPLICITOBSOLETEUSESCOLORS, 1)
        pool.set_flag(solv.Pool.POOL_FLAG_WHATPROVIDESWITHDISABLED, 1)
        pool.setarch(arch)
        self.weak_deps = weak_deps
        by_name: dict[str, RepoMetadata] = {}
        documents: list[dict] = []  # type: ignore[type-arg]
        for md in repos:
            r = load_repo(pool, md)
            # not stored in a .solv: the repo's config, set on every load
            r.priority = -md.repo.priority
            r.subpriority = -md.repo.cost
            documents.extend(md.module_docs)
            by_name[md.repo.name] = md
        self.repos = by_name
        self._filelists = False
        # file provides first: they are added to the repo packages' provides, and the base packages copy
        # those (an installed systemd-udev must still provide /usr/bin/kernel-install, as in the rpmdb)
        # (libsolv skips those a repo's .solv lists as added already: all of them, from prepare_solvs)
        pool.addfileprovides()
        self._load_base(base)
        pool.createwhatprovides()
        self.modules = ModuleIndex(documents)
        self._exclude(self.modules, modules, exclude)

    def _load_base(self, base: Sequence[BomEntry]) -> None:
        pool = self.pool
        known: dict[tuple[str, str, str], solv.XSolvable] = {}
        if base:
            # only the base's names, looked up through whatprovides (every package provides its own name)
            # rather than a pass over every solvable; of equal NEVRAs in two repos the last repo's wins
            pool.createwhatprovides()
            for name in {e.name for e in base}:
                name_id = pool.str2id(name, False)
                if name_id:
                    for c in sorted(pool.whatprovides(name_id), key=lambda c: c.id):
                        if c.name == name:
                            known[(c.name, c.evr, c.arch)] = c
        system = pool.add_repo("@System")
        for e in base:
            s = system.add_solvable()
            s.name, s.evr, s.arch = e.name, e.version, e.arch
            src = known.get((e.name, e.version, e.arch))
            if src is not None:  # the installed package's own metadata, when a repo still has it
                for key in (solv.SOLVABLE_PROVIDES, solv.SOLVABLE_REQUIRES, solv.SOLVABLE_OBSOLETES,
                            solv.SOLVABLE_CONFLICTS, solv.SOLVABLE_RECOMMENDS, solv.SOLVABLE_SUPPLEMENTS,
                            solv.SOLVABLE_SUGGESTS, solv.SOLVABLE_ENHANCES):
                    for dep in src.lookup_deparray(key, 0):
                        s.add_deparray(key, dep)
            s.add_deparray(solv.SOLVABLE_PROVIDES, pool.rel2id(s.nameid, s.evrid, solv.REL_EQ))
        system.priority, system.subpriority = -99, -1000  # as libdnf gives it (dnf --debugsolver)
        system.internalize()
        pool.installed = system

    def _exclude(self, modules: ModuleIndex, enabled: Sequence[str], exclude: Sequence[str]) -> None:
        """dnf's excludes: excludepkgs/includepkgs, then modular filtering of repo packages.

        Only packages that a pattern or a module artifact can concern are looked at: with tens of thousands
        of packages a pass over all of them in Python costs more than the whole resolution."""
        active = self.active_streams = modules.active(enabled)
        keep = set().union(*(modules.artifacts[k] for k in active)) if active else set()
        keep = {_artifact_key(a) for a in keep}
        every = {_artifact_key(a) for arts in modules.artifacts.values() for a in arts}
        active_names = {k.rsplit("-", 2)[0] for k in keep}
        self.excluded: dict[int, str] = {}  # solvable id -> why it is hidden, in dnf's words
        for s in self._candidates([*exclude, *(p for md in self.repos.values() for p in md.repo.exclude)]):
            md = self.repos[s.repo.name]
            if _matches(s, exclude) or _matches(s, md.repo.exclude):
                self.excluded[s.id] = "exclude filtering"
        for md in self.repos.values():
            if md.repo.includepkgs:  # everything of the repo that no includepkgs pattern names
                repo = next(r for r in self.pool.repos if r.name == md.repo.name)
                for s in repo.solvables_iter():
                    if s.id not in self.excluded and not _matches(s, md.repo.includepkgs):
                        self.excluded[s.id] = "exclude filtering"
        # artifacts of inactive streams are hidden, and so are non-modular packages that share a name with an
        # artifact of an active stream: both only concern packages named like some artifact
        for s in self._named({k.rsplit("-", 2)[0] for k in every}):
            md = self.repos[s.repo.name]
            if s.id in self.excluded or md.repo.module_hotfixes:
                continue
            nevra = _nevra(s)
            if nevra not in keep if nevra in every else s.name in active_names:
                self.excluded[s.id] = "modular filtering"
        if self.excluded:
            # with no considered list every solvable is considered; dnf likewise only sets one to exclude
            self._consider_all_but_excluded()

    def _consider_all_but_excluded(self) -> None:
        # whatprovides stays as it is: with POOL_FLAG_WHATPROVIDESWITHDISABLED it holds the disabled ones too.
        # (libsolv makes the considered map "all but these" itself: a list of every other id cost 5 ms)
        self.pool.set_disabled_list(sorted(self.excluded))

    def only(self, keep: Callable[[solv.XSolvable], bool], why_not: str,
             excluded_by: Callable[[solv.XSolvable], str | None]) -> None:
        """Hide every repo package `keep` rejects (`why_not`) or `excluded_by` names a reason for: a container's
        pool holds only its node image's packages that the container rule lets in."""
        system = self.pool.installed
        for s in self.pool.solvables_iter():
            if s.repo is None or s.repo == system or s.id in self.excluded:
                continue
            why = excluded_by(s) or (None if keep(s) else why_not)
            if why is not None:
                self.excluded[s.id] = why
        self._consider_all_but_excluded()

    def hidden(self, spec: str) -> set[str]:
        """Why every repo package `spec` names is hidden (empty: some are visible, or it names none)."""
        found = self._repo_solvables(self._select(spec, solv.Selection.SELECTION_WITH_DISABLED).solvables())
        if not found or any(s.id not in self.excluded for s in found):
            return set()
        return {self.excluded[s.id] for s in found}

    def _repo_solvables(self, found: Iterable[solv.XSolvable]) -> list[solv.XSolvable]:
        """Repo packages (not the base's) in solvable order, each once."""
        system = self.pool.installed
        unique = {s.id: s for s in found if s.repo is not None and s.repo != system}
        return [unique[i] for i in sorted(unique)]

    def _named(self, names: Iterable[str]) -> list[solv.XSolvable]:
        """Repo packages with one of these names (every package provides its own name)."""
        pool = self.pool
        ids = (pool.str2id(n, False) for n in names)
        return self._repo_solvables(c for i in ids if i for c in pool.whatprovides(i) if c.nameid == i)

    def _candidates(self, patterns: Sequence[str]) -> list[solv.XSolvable]:
        """Every package one of these globs can match in one of its NEVRA forms: each form starts with the
        name, so the glob's literal prefix either starts the name or is the name followed by `-` or `.`."""
        if not patterns:
            return []
        pool = self.pool
        prefixes = {_glob_prefix(p) for p in patterns}
        if "" in prefixes:
            return self._repo_solvables(pool.solvables_iter())
        names: set[str] = set()
        found: list[solv.XSolvable] = []
        for prefix in prefixes:
            names.update(prefix[:i] for i, c in enumerate(prefix) if c in "-.")
            names.add(prefix)
            # libsolv's glob is fnmatch: escape what it would read as special in the literal prefix
            literal = "".join(f"\\{c}" if c in "\\*?[]" else c for c in prefix)
            sel = pool.select(f"{literal}*", solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_GLOB
                              | solv.Selection.SELECTION_WITH_DISABLED | solv.Selection.SELECTION_WITH_SOURCE)
            found.extend(sel.solvables())
        return self._repo_solvables([*found, *self._named(names)])

    def _select(self, spec: str, extra: int = 0) -> solv.Selection:
        pool = self.pool
        flags = (solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_CANON | solv.Selection.SELECTION_DOTARCH
                 | solv.Selection.SELECTION_GLOB | extra)
        sel = pool.select(spec, flags)
        if sel.isempty():
            sel = pool.select(spec, solv.Selection.SELECTION_PROVIDES | solv.Selection.SELECTION_REL
                              | solv.Selection.SELECTION_GLOB | extra)
        if sel.isempty() and spec.startswith("/"):
            self._add_filelists()
            sel = pool.select(spec, solv.Selection.SELECTION_FILELIST | extra)
        return sel

    def _add_filelists(self) -> None:
        """filelists.xml of every repo, the first time a request names a file no dependency does (the cached
        .solv files hold primary's file lists only): dnf looks such a path up in them."""
        if self._filelists:
            return
        self._filelists = True
        for repo in self.pool.repos:
            md = self.repos.get(repo.name)
            if md is not None and repo != self.pool.installed:
                add_filelists(repo, md)

    def _obsoleters(self, sel: solv.Selection) -> list[solv.XSolvable]:
        """Available packages that obsolete every candidate the selection names."""
        pool = self.pool
        candidates = [c for c in sel.solvables() if c.id not in self.excluded and c.repo is not pool.installed]
        if not candidates:
            return []
        found: dict[int, solv.XSolvable] = {}
        for c in candidates:
            dep = pool.rel2id(c.nameid, c.evrid, solv.REL_EQ)
            hits = [o for o in pool.whatmatchesdep(solv.SOLVABLE_OBSOLETES, dep)
                    if o.id not in self.excluded and o.name != c.name and o.repo is not pool.installed
                    and (o.arch == c.arch or "noarch" in (o.arch, c.arch))]
            if not hits:
                return []
            found.update((o.id, o) for o in hits)
        return list(found.values())

    def install(self, specs: Sequence[str]) -> RpmResolution:
        pool = self.pool
        jobs = []
        # `@module:stream/profile` is dnf's module install: the profile's packages, from the active stream
        names = [n for spec in specs
                 for n in (self.modules.profile_packages(spec, self.active_streams) if spec.startswith("@")
                           else [spec])]
        for spec in dict.fromkeys(names):
            sel = self._select(spec)
            if sel.isempty():
                hidden = {self.excluded.get(x.id, "") for x in
                          self._select(spec, solv.Selection.SELECTION_WITH_DISABLED).solvables()} - {""}
                if hidden:
                    raise UnknownPackage(f"all matches were filtered out by {' and '.join(sorted(hidden))} for "
                                         f"argument: {spec}", (spec,))
                raise UnknownPackage(f"no match for argument: {spec}", (spec,))
            obsoleters = self._obsoleters(sel)
            if obsoleters:
                # dnf: "Package X is obsoleted by Y, trying to install Y instead"
                jobs.append(pool.Job(solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_SOLVABLE_ONE_OF
                                     | solv.Job.SOLVER_FORCEBEST, pool.towhatprovides([o.id for o in obsoleters])))
                continue
            jobs += sel.jobs(solv.Job.SOLVER_INSTALL | solv.Job.SOLVER_FORCEBEST)
        for name in INSTALLONLY:
            jobs.append(pool.Job(solv.Job.SOLVER_MULTIVERSION | solv.Job.SOLVER_SOLVABLE_PROVIDES, pool.str2id(name)))
        solver = pool.Solver()
        # libdnf's Goal::Impl::initSolver() and solve() for `dnf install`; best=True is the FORCEBEST on each job
        solver.set_flag(solv.Solver.SOLVER_FLAG_ALLOW_VENDORCHANGE, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_DUP_ALLOW_VENDORCHANGE, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_KEEP_ORPHANS, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_BEST_OBEY_POLICY, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_YUM_OBSOLETES, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_ALLOW_DOWNGRADE, 1)
        solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED, 0 if self.weak_deps else 1)
        problems = solver.solve(jobs)
        if problems:
            lines = [self._problem_line(info) for p in problems for rule in p.findallproblemrules()
                     for info in rule.allinfos()]
            lines = list(dict.fromkeys(lines))
            raise Unsatisfiable(lines[0] if lines else str(problems[0]), tuple(lines))
        trans = solver.transaction()
        new = list(trans.newsolvables())
        kept = list(trans.keptsolvables())
        installed = [self._package(s) for s in kept + new]
        removed = tuple(sorted({s.name for s in pool.installed.solvables} - {p.name for p in installed}))
        reasons = {s.name: self._reason(solver, s) for s in new}
        return RpmResolution(tuple(installed), frozenset(_nevra(s) for s in new), removed, reasons,
                             self._depends(kept + new))

    def _depends(self, installed: list[solv.XSolvable]) -> dict[str, tuple[str, ...]]:
        """Per installed package, the installed packages that provide its requires (and recommends, with weak
        deps on): the edges `why --reverse` walks."""
        ids = {s.id for s in installed}
        keys = [solv.SOLVABLE_REQUIRES, *([solv.SOLVABLE_RECOMMENDS] if self.weak_deps else [])]
        out: dict[str, set[str]] = {}
        providers: dict[int, list[str]] = {}  # dep -> installed providers: most deps are shared (libc.so.6, ...)
        for s in installed:
            names = out.setdefault(s.name, set())
            for key in keys:
                for dep in s.lookup_deparray(key, 0):
                    found = providers.get(dep.id)
                    if found is None:
                        found = providers[dep.id] = [p.name for p in self.pool.whatprovides(dep.id) if p.id in ids]
                    names.update(found)
            names.discard(s.name)
        return {n: tuple(sorted(v)) for n, v in out.items()}

    def _problem_line(self, info: solv.XRuleinfo) -> str:
        """libsolv's problem text, with hidden packages explained the way dnf explains them."""
        if info.type == solv.Solver.SOLVER_RULE_PKG_NOT_INSTALLABLE and info.solvable is not None:
            why = self.excluded.get(info.solvable.id)
            if why:
                return f"package {_nevra(info.solvable)} is filtered out by {why}"
        text: str = info.problemstr()
        return text

    def names(self) -> list[str]:
        """Names that could be requested here: excludes only look at packages of this pool's arches (as
        libsolv's selections and whatprovides do), so packages of other arches are left out here too."""
        return sorted({s.name for s in self.pool.solvables_iter() if s.id not in self.excluded
                       and (s.installable() or s.repo == self.pool.installed)})

    def _package(self, s: solv.XSolvable) -> RpmPackage:
        if s.repo is not None and s.repo.name == "@System":
            return RpmPackage(s.name, s.evr, s.arch, "base", "", 0, "")
        chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        location = s.lookup_location()[0] or ""
        problem = _problem(s.name, s.evr, s.arch, location)
        if problem is not None:
            raise RepositoryError(f"repo {s.repo.name!r}: package {s.name[:80]!r} {problem}",
                                  hint="the repo's primary.xml is damaged or hostile")
        return RpmPackage(s.name, s.evr, s.arch, s.repo.name, location,
                          s.lookup_num(solv.SOLVABLE_DOWNLOADSIZE), chk.hex() if chk is not None else "")

    def _reason(self, solver: solv.Solver, s: solv.XSolvable) -> Reason:
        reason, rule = solver.describe_decision(s)
        if rule is not None:
            for info in rule.allinfos():
                if info.type == solv.Solver.SOLVER_RULE_PKG_REQUIRES and info.solvable is not None:
                    kind = "Recommends" if reason == solv.Solver.SOLVER_REASON_WEAKDEP else "Requires"
                    return Reason(info.solvable.name, kind, str(info.dep))
        if reason == solv.Solver.SOLVER_REASON_WEAKDEP:
            return Reason(None, "", f"{s.name} (weak dependency)")
        return Reason(None, "", s.name)
