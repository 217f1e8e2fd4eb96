"""`why`: the dependency chain that put a package into an image, from the lock alone (no resolving)."""

from __future__ import annotations

from imagebuild.config import Config
from imagebuild.errors import ConfigError, DriftError
from imagebuild.lockfile import LOCK_NAME, LockedPackage, read_lock


def why(config: Config, package: str, role: str, arch: str | None, container: bool = False) -> list[str]:
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
    lines: list[str] = []
    for t in targets:
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
