"""dnf 4's resolution, done the way libdnf drives libsolv: same pool setup, flags, excludes, repo
priorities and costs, installonly packages and modular filtering. No I/O beyond handing libsolv the
already verified, decompressed metadata files."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import solv
import yaml

from imagebuild.apt.resolver import Reason, UnknownPackage, Unsatisfiable
from imagebuild.bom import BomEntry
from imagebuild.errors import ConfigError
from imagebuild.rpm.repository import RepoMetadata

# dnf.conf's default installonlypkgs
INSTALLONLY = ("kernel", "kernel-PAE", "installonlypkg(kernel)", "installonlypkg(kernel-module)",
               "installonlypkg(vm)", "multiversion(kernel)")


@dataclass(frozen=True)
class RpmPackage:
    name: str
    evr: str
    arch: str
    repo: str  # "base" for packages of the base image
    location: str
    size: int
    sha256: str


@dataclass(frozen=True)
class RpmResolution:
    installed: tuple[RpmPackage, ...]  # the rpmdb after the transaction
    added: frozenset[str]  # nevra of what the transaction installs
    removed: tuple[str, ...]
    reasons: dict[str, Reason]  # by name


def _nevra(s: solv.XSolvable) -> str:
    return f"{s.name}-{s.evr}.{s.arch}"


def _nevra_forms(s: solv.XSolvable) -> tuple[str, ...]:
    evr = s.evr
    vr = evr.split(":", 1)[1] if ":" in evr else evr
    return (s.name, f"{s.name}.{s.arch}", f"{s.name}-{vr}", f"{s.name}-{evr}", f"{s.name}-{vr}.{s.arch}",
            f"{s.name}-{evr}.{s.arch}", f"{s.name}-{evr if ':' in evr else '0:' + evr}.{s.arch}")


def _matches(s: solv.XSolvable, patterns: Iterable[str]) -> bool:
    forms = _nevra_forms(s)
    return any(fnmatch.fnmatchcase(f, p) for p in patterns for f in forms)


class ModuleIndex:
    """modules.yaml of all repos: streams with their artifacts, and default streams."""

    def __init__(self, documents: Iterable[dict]) -> None:  # type: ignore[type-arg]
        self.artifacts: dict[tuple[str, str], set[str]] = {}
        self.defaults: dict[str, str] = {}
        for doc in documents:
            if not isinstance(doc, dict):
                continue
            data = doc.get("data") or {}
            if doc.get("document") == "modulemd":
                key = (str(data.get("name")), str(data.get("stream")))
                rpms = ((data.get("artifacts") or {}).get("rpms")) or []
                self.artifacts.setdefault(key, set()).update(str(r) for r in rpms)
            elif doc.get("document") == "modulemd-defaults" and data.get("stream") is not None:
                self.defaults[str(data.get("module"))] = str(data["stream"])

    def active(self, enabled: Sequence[str]) -> set[tuple[str, str]]:
        chosen: dict[str, str] = dict(self.defaults)
        for spec in enabled:
            module, stream = spec.split(":", 1)
            if (module, stream) not in self.artifacts:
                have = sorted(s for m, s in self.artifacts if m == module)
                raise ConfigError(f"module stream {spec!r} does not exist in the configured repos",
                                  hint=f"streams of {module}: {', '.join(have)}" if have else f"no module {module!r}")
            chosen[module] = stream
        return {(m, s) for m, s in chosen.items() if (m, s) in self.artifacts}


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
            r = pool.add_repo(md.repo.name)
            r.priority = -md.repo.priority
            r.subpriority = -md.repo.cost
            f = solv.xfopen(str(md.primary))
            r.add_rpmmd(f, "", 0)
            f.close()
            if md.filelists is not None:
                f = solv.xfopen(str(md.filelists))
                r.add_rpmmd(f, "FL", solv.Repo.REPO_EXTEND_SOLVABLES)
                f.close()
            if md.modules is not None:
                documents.extend(d for d in yaml.safe_load_all(md.modules.read_text()) if isinstance(d, dict))
            r.internalize()
            by_name[md.repo.name] = md
        self.repos = by_name
        # file provides first: they are added to the repo packages' provides, and the base packages copy
        # those (an installed systemd-udev must still provide /usr/bin/kernel-install, as in the rpmdb)
        pool.addfileprovides()
        self._load_base(base)
        pool.createwhatprovides()
        self._exclude(ModuleIndex(documents), modules, exclude)

    def _load_base(self, base: Sequence[BomEntry]) -> None:
        pool = self.pool
        known = {(s.name, s.evr, s.arch): s for s in pool.solvables_iter()}
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
        """dnf's excludes: excludepkgs/includepkgs, then modular filtering of repo packages."""
        active = modules.active(enabled)
        keep = set().union(*(modules.artifacts[k] for k in active)) if active else set()
        keep = {_artifact_key(a) for a in keep}
        every = {_artifact_key(a) for arts in modules.artifacts.values() for a in arts}
        active_names = {k.rsplit("-", 2)[0] for k in keep}
        self.excluded: dict[int, str] = {}  # solvable id -> why it is hidden, in dnf's words
        for s in self.pool.solvables_iter():
            if s.repo is None or s.repo.name == "@System":
                continue
            md = self.repos[s.repo.name]
            nevra = _nevra(s)
            if _matches(s, exclude) or _matches(s, md.repo.exclude) or (
                    bool(md.repo.includepkgs) and not _matches(s, md.repo.includepkgs)):
                self.excluded[s.id] = "exclude filtering"
            elif not md.repo.module_hotfixes and (nevra not in keep if nevra in every else s.name in active_names):
                # artifacts of inactive streams are hidden, and so are non-modular packages
                # that share a name with an artifact of an active stream
                self.excluded[s.id] = "modular filtering"
        considered_ids = [s.id for s in self.pool.solvables_iter() if s.id not in self.excluded]
        self.pool.set_considered_list(considered_ids)
        self.pool.createwhatprovides()

    def _select(self, spec: str, extra: int = 0) -> solv.Selection:
        pool = self.pool
        flags = (solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_CANON | solv.Selection.SELECTION_DOTARCH
                 | solv.Selection.SELECTION_GLOB | extra)
        sel = pool.select(spec, flags)
        if sel.isempty():
            sel = pool.select(spec, solv.Selection.SELECTION_PROVIDES | solv.Selection.SELECTION_REL
                              | solv.Selection.SELECTION_GLOB | extra)
        if sel.isempty() and spec.startswith("/"):
            sel = pool.select(spec, solv.Selection.SELECTION_FILELIST | extra)
        return sel

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
        for spec in specs:
            sel = self._select(spec)
            if sel.isempty():
                disabled = self._select(spec, solv.Selection.SELECTION_WITH_DISABLED).solvables()
                hidden = {self.excluded.get(x.id, "") for x in disabled} - {""}
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
        return RpmResolution(tuple(installed), frozenset(_nevra(s) for s in new), removed, reasons)

    def _problem_line(self, info: solv.XRuleinfo) -> str:
        """libsolv's problem text, with hidden packages explained the way dnf explains them."""
        if info.type == solv.Solver.SOLVER_RULE_PKG_NOT_INSTALLABLE and info.solvable is not None:
            why = self.excluded.get(info.solvable.id)
            if why:
                return f"package {_nevra(info.solvable)} is filtered out by {why}"
        text: str = info.problemstr()
        return text

    def names(self) -> list[str]:
        return sorted({s.name for s in self.pool.solvables_iter() if s.id not in self.excluded})

    def _package(self, s: solv.XSolvable) -> RpmPackage:
        if s.repo is not None and s.repo.name == "@System":
            return RpmPackage(s.name, s.evr, s.arch, "base", "", 0, "")
        chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
        return RpmPackage(s.name, s.evr, s.arch, s.repo.name, s.lookup_location()[0],
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
