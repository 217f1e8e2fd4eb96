"""Locking a role's container (`<role>-container`) from its node image's locked set.

The container is resolved like the node — by the same resolver, on the same repositories — but the resolver only
sees the node's own versions of the packages the container rule lets in, on top of the container's base. So every
package the container keeps is the node's, what only the node's kernel, modules or driver needed falls away, and a
package that cannot be kept without an excluded one fails with its chain (exit 3). Host-provided dependencies
(the NVIDIA driver's libraries) are met by a generated stub (deb).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import log
from imagebuild.apt.packages import R_ARCH, R_NAME, R_VERSION, Record, parse_stanzas
from imagebuild.apt.repository import PackagesIndex, ReleaseInfo
from imagebuild.bom import read_bom
from imagebuild.config import ContainerSpec, Distro, Family, PackageRequest, Role
from imagebuild.container import Rule, agreement, deb_stub, rule_for, stub_name, stub_record_fields
from imagebuild.debversion import version_key
from imagebuild.errors import ConfigError, ResolutionError
from imagebuild.lockfile import STUB_REPO, LockedStub, LockedTarget

if TYPE_CHECKING:
    from imagebuild.apt.universe import Universe, Version
    from imagebuild.rpm.repository import RepoMetadata


_RULE = "the container rule "  # how the rpm pool explains a package the rule hides ...
_ABSENT = "being absent from the node image"  # ... and one the node does not have


def base_path(distro: Distro, spec: ContainerSpec, arch: str) -> Path | None:
    """The file listing what the container's base holds: the distro's base for "rootfs", else base-bom."""
    return distro.base_for(arch) if spec.rootfs else spec.base_bom_for(arch)


def _requests(role: Role, node: LockedTarget, rule: Rule, universe: Universe) -> list[PackageRequest]:
    """What the container asks for: its own `packages` or the node's requests, each name the node holds at the
    node's version, without what the rule excludes."""
    spec = role.container
    assert spec is not None
    versions = {p.name: p.version for p in node.packages}
    out = []
    for r in spec.packages if spec.packages is not None else role.packages:
        cls = rule.classify(r.name)
        if cls is not None:
            if spec.packages is not None:
                raise ConfigError(f"roles.{role.name}.container.packages: {r} is excluded from containers "
                                  f"({cls.name})", hint="the host provides it (driver, kernel); drop it here")
            log.debug(f"{role.name}-container: request {r} left out ({cls.name})")
            continue
        if spec.packages is not None and r.name not in versions and universe.get(r.name) is not None \
                and universe.get(r.name).versions:  # type: ignore[union-attr]
            raise ConfigError(f"roles.{role.name}.container.packages: {r} is not in the {role.name} node image",
                              hint="a container holds only what its node image has: add it to the role's packages")
        # a virtual name stays as it is: the resolver finds its provider among the node's packages
        out.append(PackageRequest(r.name, r.arch, versions[r.name]) if r.name in versions else r)
    return out


def _node_version(universe: Universe, name: str, version: str) -> Version | None:
    pkg = universe.get(name)
    return next((v for v in pkg.versions if v.version == version), None) if pkg is not None else None


def _stubs(universe: Universe, node: LockedTarget, rule: Rule, arch: str) -> list[LockedStub]:
    """One stub per host-provided class the node has packages of: it Provides those of their names (each at the
    node's version) and of their provides that a package the container may keep depends on; its own version is
    the class's most common one (the driver version)."""
    wanted: set[str] = set()
    for p in node.packages:
        v = _node_version(universe, p.name, p.version) if rule.classify(p.name) is None else None
        wanted.update(rel.name for _, group in (v.deps if v is not None else ()) for rel in group)
    by_class: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for p in node.packages:
        cls = rule.classify(p.name)
        if cls is None or not cls.host_provided:
            continue
        v = _node_version(universe, p.name, p.version)
        provides = [(p.name, p.version), *(v.provides if v is not None else ())]
        by_class[cls.name].extend((p.version, f"{n} (= {ver})" if ver else n) for n, ver in provides if n in wanted)
    stubs = []
    for name, items in sorted(by_class.items()):
        if not items:
            continue
        counts = collections.Counter(v for v, _ in items)
        version = max(counts, key=lambda v: (counts[v], version_key(v)))
        cls = next(c for c in rule.classes if c.name == name)
        stubs.append(LockedStub(stub_name(cls), version, arch, tuple(dict.fromkeys(x for _, x in items))))
    return stubs


def _stub_index(stubs: Sequence[LockedStub]) -> tuple[PackagesIndex, list[Record]]:
    stanzas = "\n".join("".join(f"{k}: {v}\n" for k, v in stub_record_fields(s, deb_stub(s)).items()) for s in stubs)
    records = parse_stanzas(stanzas.encode())
    info = ReleaseInfo(STUB_REPO, "", "", "", "", "", "imagebuild", "imagebuild", "", "", False, False)
    index = PackagesIndex(info, "", "", "", "", records, [s.name for s in stubs])
    return index, records


def lock_deb(role: Role, node: LockedTarget, universe: Universe, distro: Distro) -> LockedTarget:
    """The container target of a deb role, from its node target and the distro × arch universe it came from."""
    from imagebuild.app.lock import _locked_packages, _resolve, read_base

    spec = role.container
    assert spec is not None
    arch = node.arch
    rule = rule_for(Family.DEB, spec.exclude)
    node_nva = {(p.name, p.version, p.arch) for p in node.packages}
    sub = universe.subset(lambda rec: rule.classify(rec[R_NAME]) is None
                          and (rec[R_NAME], rec[R_VERSION], rec[R_ARCH] or arch) in node_nva)
    base = read_base(base_path(distro, spec, arch))
    sub.add(base, None, 0)
    stubs = _stubs(universe, node, rule, arch)
    if stubs:
        index, records = _stub_index(stubs)
        sub.add(records, index, 500)
    requests = _requests(role, node, rule, universe)
    node_versions = {(p.name, p.arch): p.version for p in node.packages}
    for rec in base:  # the base's packages at the node's version where the node has another one
        want = node_versions.get((rec[R_NAME], rec[R_ARCH]))
        if want is not None and want != rec[R_VERSION] and rule.classify(rec[R_NAME]) is None:
            requests.append(PackageRequest(rec[R_NAME], None, want))
    name = f"{role.name}-container"
    try:
        res = _resolve(sub, distro, name, arch, tuple(requests))
    except ResolutionError as e:
        raise _explained(e, node, rule) from None
    packages = _locked_packages(res, sub, distro.recommends)
    used = {p.name for p in packages if p.repo == STUB_REPO}
    target = LockedTarget(role=role.name, arch=arch, distro=distro.name, requests=tuple(str(r) for r in requests),
                          packages=packages, removed=res.removed, container=True,
                          stubs=tuple(s for s in stubs if s.name in used))
    return _checked(target, node, rule)


def lock_rpm(role: Role, node: LockedTarget, metadata: Sequence[RepoMetadata], distro: Distro) -> LockedTarget:
    """The container target of an rpm role: a libsolv pool of the same repos where only the node's NEVRAs the
    rule lets in are considered, on the container's base."""
    from imagebuild.app.lock import rpm_locked_packages
    from imagebuild.resolution import Unsatisfiable
    from imagebuild.rpm.resolver import RpmResolver

    spec = role.container
    assert spec is not None
    arch = node.arch
    rule = rule_for(Family.RPM, spec.exclude)
    path = base_path(distro, spec, arch)
    base = read_bom(path) if path is not None else []
    resolver = RpmResolver(arch, metadata, base, distro.recommends, distro.modules, distro.exclude)
    keep = {(p.name, p.version, p.arch) for p in node.packages}
    resolver.only(lambda s: (s.name, s.evr, s.arch) in keep, _ABSENT,
                  lambda s: (f"{_RULE}({c.name})" if (c := rule.classify(s.name)) else None))
    specs = []
    for r in spec.packages if spec.packages is not None else role.packages:
        hidden = resolver.hidden(str(r))
        if spec.packages is not None and hidden and all(h == _ABSENT for h in hidden):
            raise ConfigError(f"roles.{role.name}.container.packages: {r} is not in the {role.name} node image",
                              hint="a container holds only what its node image has: add it to the role's packages")
        if hidden and all(h.startswith(_RULE) for h in hidden):
            classes = ", ".join(sorted(h[len(_RULE):].strip("()") for h in hidden))
            if spec.packages is not None:
                raise ConfigError(f"roles.{role.name}.container.packages: {r} is excluded from containers "
                                  f"({classes})", hint="the host provides it (driver, kernel); drop it here")
            log.debug(f"{role.name}-container: request {r} left out ({classes})")
            continue
        specs.append(str(r))
    node_versions = {(p.name, p.arch): p.version for p in node.packages}
    for e in base:
        want = node_versions.get((e.name, e.arch))
        if want is not None and want != e.version and rule.classify(e.name) is None:
            specs.append(f"{e.name}-{want}.{e.arch}")
    name = f"{role.name}-container"
    try:
        res = resolver.install(specs)
    except Unsatisfiable as e:
        raise _explained(ResolutionError(f"role {name!r} ({arch}): {e.message}", chain=e.chain[1:]), node, rule) \
            from None
    target = LockedTarget(role=role.name, arch=arch, distro=distro.name, requests=tuple(specs),
                          packages=rpm_locked_packages(res), removed=res.removed, family=Family.RPM.value,
                          container=True)
    return _checked(target, node, rule)


def _explained(e: ResolutionError, node: LockedTarget, rule: Rule) -> ResolutionError:
    """A failed container resolution, with the excluded packages its chain runs into named."""
    text = " ".join([e.message, *e.chain])
    hits = sorted({f"{p.name} ({c.name})" for p in node.packages if (c := rule.classify(p.name)) is not None
                   and p.name in text.replace(",", " ").replace("(", " ").split()})
    hint = ("it needs what containers leave out: " + ", ".join(hits) +
            "; drop the package from the container (`packages` in [roles.R.container]), or keep what it needs")\
        if hits else e.hint
    return ResolutionError(e.message, chain=e.chain, hint=hint)


def _checked(target: LockedTarget, node: LockedTarget, rule: Rule) -> LockedTarget:
    problems = agreement(node, target, rule)
    if problems:
        raise ResolutionError(f"{target.key} is not the userspace of {node.key}: {problems[0]}",
                              chain=tuple(problems[1:]),
                              hint="the container's base holds them: use a base without them (base-bom)")
    return target
