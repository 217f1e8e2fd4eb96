"""`why`: the dependency chain that put a package into an image, from the lock alone (no resolving)."""

from __future__ import annotations

from imagebuild.config import Config
from imagebuild.errors import ConfigError, DriftError
from imagebuild.lockfile import LOCK_NAME, LockedPackage, LockedTarget, read_lock


def _targets(config: Config, role: str, arch: str | None, container: bool) -> list[LockedTarget]:
    """The lock's targets of a role (or of its container), on one arch or all."""
    lock = read_lock(config.root / LOCK_NAME)
    if role not in config.roles:
        raise ConfigError(f"unknown role {role!r}", hint=f"roles: {', '.join(sorted(config.roles))}")
    targets = [t for t in lock.targets if t.role == role and t.container == container
               and (arch is None or t.arch == arch)]
    if not targets:
        what = f"{role}-container" if container else f"role {role!r}"
        raise ConfigError(f"the lock has no entry for {what}" + (f" on {arch}" if arch else ""),
                          hint="add [roles.R.container] and run `imagebuild lock`" if container
                          else "run `imagebuild lock`")
    return targets


def why(config: Config, package: str, role: str, arch: str | None, container: bool = False) -> list[str]:
    lines: list[str] = []
    for t in _targets(config, role, arch, container):
        by_name = {p.name: p for p in t.packages}
        p = by_name.get(package)
        if p is None:
            hint = None
            if container:
                from imagebuild.config import Family
                from imagebuild.container import rule_for

                spec = config.roles[role].container
                cls = rule_for(Family(t.family), spec.exclude if spec else ()).classify(package)
                hint = (f"containers leave it out ({cls.name}): the host provides it" if cls else
                        f"only the node image needs it: `imagebuild why {package} --role {role}` shows what pulls it")
            raise DriftError(f"{package} is not in the {t.name} image on {t.arch}", hint=hint)
        lines.append(f"{t.name}/{t.arch}: {p.name} {p.version} {p.arch}")
        if p.dep_type == "base":
            lines.append("  part of the base image")
            continue
        chain: list[LockedPackage] = []
        seen: set[str] = set()
        cur: LockedPackage | None = p
        while cur is not None and cur.name not in seen:
            seen.add(cur.name)
            chain.append(cur)
            cur = by_name.get(cur.required_by) if cur.required_by else None
        for depth, link in enumerate(reversed(chain)):
            pad = "  " + "   " * depth
            if link.required_by is None:
                lines.append(f"{pad}{link.name} {link.version}  (requested: {link.relation})")
            else:
                edge = f"{link.required_by} {link.dep_type}: {link.relation}"
                lines.append(f"{pad}└─ {link.name} {link.version}  ({edge})")
    return lines


def why_reverse(config: Config, package: str, role: str, arch: str | None, container: bool = False) -> list[str]:
    """What would leave the image if `package` were dropped from the role's requests: the packages reachable
    from the requests and the base only through it (over the lock's dependency edges, as apt's autoremove and
    dnf's unneeded-package logic see them)."""
    lines: list[str] = []
    for t in _targets(config, role, arch, container):
        by_name = {p.name: p for p in t.packages}
        p = by_name.get(package)
        if p is None:
            raise DriftError(f"{package} is not in the {t.name} image on {t.arch}")
        if p.dep_type == "base":
            raise ConfigError(f"{package} is part of the base image of {t.name}: dropping requests cannot remove it")
        if p.dep_type != "requested":
            raise ConfigError(f"{package} is not one of the requests of {t.name}: it is pulled in by "
                              f"{p.required_by}", hint=f"`imagebuild why {package} --role {role}` shows the chain")
        if any(q.depends for q in t.packages) is False and len(t.packages) > 1:
            raise DriftError(f"{LOCK_NAME} has no dependency edges for {t.key} (made by an older imagebuild)",
                             hint="run `imagebuild lock` to record them")
        roots = [q.name for q in t.packages if q.dep_type in ("requested", "base") and q.name != package]
        kept: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name in kept or name not in by_name:
                continue
            kept.add(name)
            todo.extend(by_name[name].depends)
        leaving = sorted(n for n in by_name if n not in kept)
        lines.append(f"{t.name}/{t.arch}: without {package}, {len(leaving)} of {len(t.packages)} packages leave "
                     "the image")
        lines.extend(f"  - {n} {by_name[n].version} {by_name[n].arch}" for n in leaving)
    return lines
