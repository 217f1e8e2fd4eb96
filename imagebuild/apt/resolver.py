"""apt-get's resolver, reimplemented: candidate policy plus pkgDepCache::MarkInstall's greedy marking.

Where apt succeeds, the result is apt's: the same candidate versions by pin priority, the same
order of trying or-group members and providers, the same protection of user requests. The
resolver does no I/O; it works on a `Universe` and reports the edge that pulled in each package.
When marking leaves something broken (where apt would call its problem resolver), it raises
`Unsatisfiable` with the failing chain instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagebuild.apt.packages import Group, Relation
from imagebuild.apt.universe import CRITICAL, NEGATIVE, DepType, Universe, Version
from imagebuild.config import PackageRequest
from imagebuild.debversion import satisfies
from imagebuild.resolution import Reason, UnknownPackage, Unsatisfiable

MAX_DEPTH = 3000


@dataclass(frozen=True)
class Resolution:
    """What resolving a role gives: the final package set, what changed against the base, and why."""

    installed: dict[str, Version]  # the final image: name -> version (base + added, minus removed)
    added: dict[str, Version]  # new or changed relative to the base
    removed: tuple[str, ...]
    reasons: dict[str, Reason]


def _group_str(group: Group) -> str:
    return " | ".join(str(r) for r in group)


class Resolver:
    def __init__(self, universe: Universe, recommends: bool) -> None:
        self.u = universe
        self.recommends = recommends
        self.cand: dict[str, Version | None] = {}
        self.inst: dict[str, Version | None] = {n: universe[n].current for n in universe.base}
        self.mode: dict[str, str] = {}  # "install" / "delete"; absent = keep
        self.protected: set[str] = set()
        self.reasons: dict[str, Reason] = {}
        self._parent_of_attempt = ""
        # critical dependencies marking could not satisfy, in the order met: the first is the root cause
        self.failures: list[tuple[str, str, str, Group]] = []  # (parent, package, dep type, group)

    # -- candidate policy (pkgPolicy::GetCandidateVer) ------------------------------------------

    def candidate(self, name: str) -> Version | None:
        if name in self.cand:
            return self.cand[name]
        pkg = self.u.get(name)
        best: Version | None = None
        if pkg is not None:
            best_prio = -1
            cur = pkg.current
            for v in pkg.versions:
                prio = max((o.priority for o in v.origins if o.index is not None or v is cur), default=0)
                if prio == 0 or prio <= best_prio:
                    continue
                if cur is not None and prio < 1000 and v.key < cur.key:
                    continue
                best_prio, best = prio, v
        self.cand[name] = best
        return best

    def set_candidate(self, v: Version) -> None:
        old = self.candidate(v.name)
        if old is v:
            return
        if self.mode.get(v.name) == "install" and self.inst.get(v.name) is old:
            self.inst[v.name] = v
        self.cand[v.name] = v

    # -- dependency state ----------------------------------------------------------------------

    def _sat_by(self, rel: Relation, state: dict[str, Version | None], owner: str | None = None) -> bool:
        return any(state.get(v.name) is v and v.name != owner for v in self.u.targets(rel))

    def _cand_state(self, rel: Relation) -> bool:
        return any(self.candidate(v.name) is v for v in self.u.targets(rel))

    def group_satisfied(self, group: Group) -> bool:
        return any(self._sat_by(r, self.inst) for r in group)

    def conflicts_with_state(self, owner: Version, rel: Relation) -> list[Version]:
        return [v for v in self.u.targets(rel) if v.name != owner.name and self.inst.get(v.name) is v]

    def important(self, dep_type: str) -> bool:
        return dep_type in CRITICAL or (self.recommends and dep_type == DepType.RECOMMENDS)

    def broken(self, v: Version) -> tuple[str, Group] | None:
        """The first critical dependency of installed-to-be `v` that is not met, if any."""
        for dep_type, group in v.deps:
            if dep_type in NEGATIVE:
                if any(self.conflicts_with_state(v, r) for r in group):
                    return dep_type, group
            elif dep_type in CRITICAL and not self.group_satisfied(group):
                return dep_type, group
        return None

    # -- marking (pkgDepCache::MarkInstall and helpers) ------------------------------------------

    def _state_change(self, name: str, v: Version, reason: Reason) -> None:
        pkg = self.u[name]
        self.inst[name] = v
        self.mode[name] = "install" if v is not pkg.current else "keep"
        self.reasons.setdefault(name, reason)

    def _discard_install(self, name: str) -> None:
        cur = self.u[name].current
        if cur is None:
            self.inst.pop(name, None)
        else:
            self.inst[name] = cur
        self.mode.pop(name, None)
        self.cand[name] = cur

    def mark_keep(self, name: str, from_user: bool) -> bool:
        if name in self.protected and not from_user:
            return False
        cur = self.u[name].current
        if cur is None:
            self.inst.pop(name, None)
        else:
            self.inst[name] = cur
        self.mode.pop(name, None)
        return True

    def _delete_ok(self, name: str) -> bool:
        """Installed Essential/Important packages are never removed to make room for a request."""
        pkg = self.u[name]
        return not (pkg.current is not None and (pkg.essential or pkg.important))

    def mark_delete(self, name: str, from_user: bool = False) -> bool:
        if (name in self.protected and not from_user) or not self._delete_ok(name):
            return False
        pkg = self.u[name]
        reason = self.reasons.get(name)
        if pkg.current is None and self.mode.get(name) == "install" and reason is not None and reason.parent is None:
            return False  # a manual install request is never removed by the marker
        self.inst.pop(name, None)
        self.mode[name] = "delete" if pkg.current is not None else "keep"
        if self.mode[name] == "keep":
            self.mode.pop(name)
        return True

    def _install_ok(self, name: str, cand: Version, auto: bool) -> bool:
        """IsInstallOkDependenciesSatisfiableByCandidates: one level of look-ahead."""
        pkg = self.u[name]
        if not auto or cand is pkg.current:
            return True
        for dep_type, group in cand.deps:
            if dep_type in NEGATIVE or dep_type not in CRITICAL:
                continue
            if any(self._sat_by(r, self.inst) or self._cand_state(r) for r in group):
                continue
            self.failures.append((self._parent_of_attempt, name, dep_type, group))
            if name not in self.protected:
                self.cand[name] = pkg.current
                if self.mode.get(name) != "delete":
                    self.mode.pop(name, None)
            return False
        return True

    def _solutions(self, group: Group, sort: bool) -> list[Version]:
        """getAllPossibleSolutions with the CANDIDATE selector: upgrades first, then new installs."""
        upgrades: list[Version] = []
        new: list[Version] = []
        for rel in group:
            vs = [v for v in self.u.targets(rel) if self.candidate(v.name) is v]
            seen: set[str] = set()
            uniq = []
            for v in vs:
                if v.name not in seen:
                    seen.add(v.name)
                    uniq.append(v)
            if sort:
                uniq.sort(key=lambda v: self._provider_key(v, rel))
            for v in uniq:
                (upgrades if self.u[v.name].current is not None else new).append(v)
        out: list[Version] = []
        for v in upgrades + new:
            if v not in out:
                out.append(v)
        return [v for v in out if not (v.name in self.protected and (
            self.mode.get(v.name) == "delete" or (self.mode.get(v.name) is None and self.u[v.name].current is None)))]

    def _provider_key(self, v: Version, rel: Relation) -> tuple[int, ...]:
        """CompareProviders as a sort key (smaller first)."""
        pkg = self.u[v.name]
        return (
            0 if v.name in self.protected else 1,
            0 if pkg.current is not None else 1,
            0 if v.name == rel.name else 1,
            0 if pkg.essential else 1,
            0 if pkg.important else 1,
            v.priority,
            -pkg.id,
        )

    def mark_install(self, name: str, auto: bool, depth: int, from_user: bool, reason: Reason) -> bool:
        if depth > MAX_DEPTH:
            return False
        pkg = self.u.get(name)
        if pkg is None:
            return False
        cand = self.candidate(name)
        if cand is None:
            return False
        protected = name in self.protected
        if not protected:
            if cand is pkg.current:
                if self.inst.get(name) is None:
                    return self.mark_keep(name, from_user)
                return True
            if self.mode.get(name) == "install":
                return True
        self._parent_of_attempt = reason.parent or name
        if not self._install_ok(name, cand, auto):
            return False
        if from_user:
            self._state_change(name, cand, reason)
        fail_early = not protected and not from_user
        failed = False
        to_install: list[tuple[str, Group]] = []
        to_upgrade: list[str] = []
        delayed_remove: list[str] = []
        if auto:
            for dep_type, group in cand.deps:
                if dep_type in NEGATIVE:
                    satisfied = not any(self.conflicts_with_state(cand, r) for r in group)
                else:
                    satisfied = self.group_satisfied(group)
                if satisfied and not protected:
                    continue
                if not self.important(dep_type):
                    continue
                if dep_type in NEGATIVE:
                    if not self._remove_conflicts(cand, group, to_upgrade, delayed_remove, protected, from_user):
                        if fail_early:
                            return False
                        failed = True
                else:
                    to_install.append((dep_type, group))
        if not from_user:
            self._state_change(name, cand, reason)
        if not auto:
            return not failed
        scoped = not protected
        self.protected.add(name)
        try:
            for other in to_upgrade:
                upgraded = self.mode.get(other) == "install" or self.mark_install(
                    other, True, depth + 1, False, Reason(name, "Breaks/Conflicts upgrade", other))
                if not upgraded and not self.mark_delete(other):
                    failed = True
                    if not protected and not from_user:
                        break
            if failed and fail_early:
                self._discard_install(name)
                return False
            if not self._install_dependencies(cand, name, depth, to_install, protected, from_user):
                if fail_early:
                    self._discard_install(name)
                    return False
                failed = True
            for other in delayed_remove:
                if not self.mark_delete(other):
                    if fail_early:
                        self._discard_install(name)
                        return False
                    failed = True
        finally:
            if scoped:
                self.protected.discard(name)
        return not failed

    def _remove_conflicts(self, cand: Version, group: Group, to_upgrade: list[str], delayed_remove: list[str],
                          propagate: bool, from_user: bool) -> bool:
        ok = True
        bad_candidate: set[str] = set()
        for rel in group:
            for v in self.u.targets(rel):
                if v.name == cand.name or self.candidate(v.name) is not v:
                    continue
                pkg = self.u[v.name]
                if pkg.current is not v:
                    if self.mode.get(v.name) == "install" and not self.mark_keep(v.name, False):
                        ok = False
                    elif propagate:
                        self.cand[v.name] = self.inst.get(v.name)
                    else:
                        bad_candidate.add(v.name)
                elif not self._delete_not_upgradeable(v.name, propagate, delayed_remove):
                    ok = False
            for v in self.u.targets(rel):
                pkg = self.u[v.name]
                if v.name == cand.name or pkg.current is not v:
                    continue
                c = self.candidate(v.name)
                if c is not v and c is not None and v.name not in bad_candidate:
                    to_upgrade.append(v.name)
                elif c is v:
                    pass
                elif not self._delete_not_upgradeable(v.name, propagate, delayed_remove):
                    ok = False
        return ok

    def _delete_not_upgradeable(self, name: str, propagate: bool, delayed_remove: list[str]) -> bool:
        if not propagate:
            if self.mode.get(name) == "delete":
                return True
            if name in self.protected or not self._delete_ok(name):
                return False
            delayed_remove.append(name)
            return True
        if self.mode.get(name) != "delete" and not self.mark_delete(name):
            return False
        self.cand[name] = self.inst.get(name)
        self.protected.add(name)
        return True

    def _install_dependencies(self, cand: Version, name: str, depth: int, to_install: list[tuple[str, Group]],
                              propagate: bool, from_user: bool) -> bool:
        failed = False
        for dep_type, group in to_install:
            critical = dep_type in CRITICAL
            found = self.group_satisfied(group)
            if found and not propagate:
                continue
            if found:
                if not critical:
                    continue
                sols = self._solutions_cand_and_inst(group)
                if len(sols) != 1 or sols[0].name in self.protected:
                    continue
                self.protected.add(sols[0].name)
                if not self.mark_install(sols[0].name, True, depth + 1, False,
                                         Reason(name, dep_type, _group_str(group))):
                    failed = True
                continue
            pkg = self.u[name]
            if pkg.current is not None and not critical and not self._recommends_new_or_kept(pkg.current, group):
                continue
            sols = self._solutions(group, sort=True)
            reason = Reason(name, dep_type, _group_str(group))
            for v in sols:
                if self.candidate(v.name) is not v:
                    continue
                if propagate and critical and len(sols) == 1:
                    if not self.mark_install(v.name, False, depth + 1, False, reason):
                        continue
                    self.protected.add(v.name)
                if not self.mark_install(v.name, True, depth + 1, False, reason):
                    continue
                found = True
                break
            if not found and critical:
                failed = True
                if not propagate and not from_user:
                    break
        return not failed

    def _recommends_new_or_kept(self, current: Version, group: Group) -> bool:
        target = group[0].name
        for dep_type, g in current.deps:
            if dep_type in CRITICAL or not self.important(dep_type) or g[0].name != target:
                continue
            return any(self._sat_by(r, self.inst) for r in g)
        return True  # a new important dependency

    def _solutions_cand_and_inst(self, group: Group) -> list[Version]:
        out: list[Version] = []
        for rel in group:
            for v in self.u.targets(rel):
                if (self.candidate(v.name) is v or self.u[v.name].current is v) and v not in out:
                    out.append(v)
        return out

    # -- release candidate switching (pkgDepCache::SetCandidateRelease) ---------------------------

    def _release_version(self, name: str, release: str) -> Version | None:
        pkg = self.u.get(name)
        if pkg is None:
            return None
        for v in pkg.versions:
            for o in v.origins:
                if o.index is not None and release in (o.index.release.archive, o.index.release.codename):
                    return v
        return None

    def set_candidate_release(self, target: Version, release: str, changed: list[Version]) -> bool:
        """pkgDepCache::SetCandidateRelease, quirks included: the first critical dependency that cannot
        be made to hold ends the walk (later ones are not switched), and candidates switched on a
        failed branch stay switched (apt's "undo" re-applies the new versions)."""
        self.set_candidate(target)
        start = len(changed) - 1  # apt remembers the caller's entry for `target` and erases from it
        for dep_type, group in target.deps:
            if dep_type not in (DepType.PRE_DEPENDS, DepType.DEPENDS) and not (
                    dep_type == DepType.RECOMMENDS and self.recommends):
                continue
            if self._release_group_fine(group):
                continue
            its_fine = False
            for i, rel in enumerate(group):
                last = i == len(group) - 1
                if rel.op is None:
                    if last:
                        break
                    continue
                v = self._release_version(rel.name, release)
                if v is None or not satisfies(v.version, rel.op, rel.version or ""):
                    if last:
                        break
                    continue
                old = self.candidate(rel.name)
                if v is old and any(c.name == v.name for c in changed):
                    its_fine = True
                if not its_fine:
                    changed.append(v)
                    if not self.set_candidate_release(v, release, changed):
                        if last:
                            break
                        if old is not None:
                            self.set_candidate(old)
                        else:
                            self.cand[rel.name] = None
                        if changed:
                            changed.pop()
                        continue
                    its_fine = True
                break
            if not its_fine and dep_type in (DepType.PRE_DEPENDS, DepType.DEPENDS):
                del changed[max(start, 0):]
                return False
        return True

    def _release_group_fine(self, group: Group) -> bool:
        for rel in group:
            pkg = self.u.get(rel.name)
            if pkg is None or (not pkg.versions and not self.u.providers(rel.name)):
                continue
            if pkg.current is not None and pkg.current in self.u.targets(rel):
                return True
            cand = self.candidate(rel.name)
            if rel.op is None:
                provs = self.u.providers(rel.name)
                if provs:
                    if any(self.candidate(v.name) is v and self._cand_installable(v) for v, _ in provs):
                        return True
                    continue
                if cand is not None and self._cand_installable(cand):
                    return True
                continue
            if cand is not None and cand in self.u.targets(rel) and self._cand_installable(cand):
                return True
        return False

    def _cand_installable(self, v: Version) -> bool:
        """apt's VersionState(..., DepInstall, DepCandMin): every critical dependency of `v` already
        holds in the install state. (Not "could be satisfied": apt checks what is marked.)"""
        return self.broken(v) is None

    # -- apt-get install ------------------------------------------------------------------------

    def select(self, req: PackageRequest) -> Version:
        """The version a request names (like apt-get's cacheset helper), or UnknownPackage."""
        pkg = self.u.get(req.name)
        if req.arch and req.arch not in (self.u.arch, "all"):
            raise UnknownPackage(f"{req}: architecture {req.arch} is not configured for this lock")
        if pkg is None or (not pkg.versions):
            provs = [v for v, _ in self.u.providers(req.name) if self.candidate(v.name) is v]
            names = sorted({v.name for v in provs})
            if req.version is None and req.release is None and len(names) == 1:
                return provs[0]  # apt: "Note, selecting 'x' instead of 'virtual'"
            if names:
                raise UnknownPackage(f"package {req.name!r} is a virtual package provided by {', '.join(names)}",
                                     (req.name,))
            raise UnknownPackage(f"unable to locate package {req.name!r}", (req.name,))
        if req.version is not None:
            for v in pkg.versions:
                if v.version == req.version and any(o.index is not None for o in v.origins):
                    return v
            have = ", ".join(v.version for v in pkg.versions) or "none"
            raise UnknownPackage(f"version {req.version!r} of {req.name!r} was not found (available: {have})",
                                 (str(req),))
        if req.release is not None:
            in_release = self._release_version(req.name, req.release)
            if in_release is None:
                raise UnknownPackage(f"release {req.release!r} has no package {req.name!r}", (str(req),))
            return in_release
        cand = self.candidate(req.name)
        if cand is None:
            raise UnknownPackage(f"package {req.name!r} has no installation candidate", (req.name,))
        return cand

    def install(self, requests: tuple[PackageRequest, ...]) -> Resolution:
        selected = [(req, self.select(req)) for req in requests]
        release_switches = [(v, req.release) for req, v in selected if req.release is not None]
        for req, v in selected:
            self.set_candidate(v)
            self.protected.add(v.name)
            self.mark_install(v.name, False, 0, True, Reason(None, "", str(req)))
        for v, release in release_switches:
            assert release is not None
            self.set_candidate_release(v, release, [v])
            self.mark_install(v.name, False, 0, True, Reason(None, "", v.name))
        # TryToInstall::doAutoInstall: since apt 2.5.3 (bookworm's 2.6, trixie's 3.0) the auto-install
        # pass visits the requests in command-line order (verset is a VersionVector, deduplicated by
        # version keeping the first; apt commit e1f3323 "Respect users pkg order"), not in package-id
        # order as APT::PackageSet did. That order decides whose Recommends see whose providers already
        # marked. Since 2.5.2 (e481022) it also runs MarkInstall(P, true) on every request, broken or
        # not: a protected request still walks its deps to propagate protection.
        seen: set[int] = set()
        for _, v in selected:
            if id(v) in seen:
                continue
            seen.add(id(v))
            self.mark_install(v.name, True, 0, True, Reason(None, "", v.name))
        return self._result([v.name for _, v in selected])

    def _result(self, requested: list[str]) -> Resolution:
        installed = {n: v for n, v in self.inst.items() if v is not None}
        for name in requested:
            if name not in installed:
                raise Unsatisfiable(f"{name} cannot be installed", self.chain(name))
        broken = [(n, v) for n, v in sorted(installed.items()) if self.broken(v) is not None]
        if broken and self.failures:
            parent, name, dep_type, group = self.failures[0]
            v = self.candidate(name) or self.u[name].versions[0]
            have = "; ".join(f"{r.name} candidate is {c.version}" for r in group
                             for c in [self.candidate(r.name)] if c is not None) or "nothing provides it"
            raise Unsatisfiable(
                f"{name} {v.version} {dep_type}: {_group_str(group)}, which cannot be satisfied ({have})",
                (*self.chain(parent), f"{name} {dep_type}: {_group_str(group)}"),
            )
        for name, v in broken:
            problem = self.broken(v)
            if problem is not None:
                dep_type, group = problem
                raise Unsatisfiable(
                    f"{name} {v.version} {dep_type} {_group_str(group)}, which "
                    + ("is also to be installed" if dep_type in NEGATIVE else "cannot be satisfied"),
                    self.chain(name) + (f"{dep_type}: {_group_str(group)}",),
                )
        added = {n: v for n, v in installed.items() if self.u[n].current is not v}
        removed = tuple(sorted(n for n in self.u.base if n not in installed))
        reasons = {n: self.reasons.get(n, Reason(None, "", n)) for n in added}
        return Resolution(installed, added, removed, reasons)

    def chain(self, name: str) -> tuple[str, ...]:
        out: list[str] = []
        seen: set[str] = set()
        cur: str | None = name
        while cur is not None and cur not in seen:
            seen.add(cur)
            r = self.reasons.get(cur)
            if r is None or r.parent is None:
                out.append(f"{cur} (requested)" if r is not None else cur)
                break
            out.append(f"{cur} <- {r.parent} {r.dep_type}: {r.relation}")
            cur = r.parent
        return tuple(reversed(out))
