"""GPU-stack coherence checks of a lock: what a resolver accepts but a node cannot use.

The checks read the lock alone (offline); what each looks at is data (`data/checks.toml`, `data/cuda.toml`):

- `cuda-min-driver`: the CUDA toolkit's minimum driver against the locked driver;
- `driver-one-version`: every NVIDIA driver component (kernel module package, libcuda/libnvidia-*, nvidia-smi, the
  fabric manager) at one driver version;
- `kernel-modules`: every DKMS package has the headers/devel of exactly each locked kernel, every prebuilt kmod
  was built for a locked kernel;
- `same-version-across-arches`: a role's package at one version on all its arches;
- `container-userspace`: a container holds its node image's versions and nothing the container rule excludes.

Each is "warn" by default; `[checks]` in imagebuild.toml makes one an "error" or turns it "off".
"""

from __future__ import annotations

import fnmatch
import functools
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imagebuild import PACKAGE_DIR, debversion, rpmversion
from imagebuild.config import CHECKS, CheckLevel, Config, Family
from imagebuild.container import agreement, cuda_of, min_driver, rule_for
from imagebuild.lockfile import Lock, LockedPackage, LockedTarget


@dataclass(frozen=True, order=True)
class Finding:
    """One finding of a coherence check, at its level."""

    check: str
    target: str  # the lock target's key, or the role for checks across arches
    message: str
    level: CheckLevel = CheckLevel.WARN

    def __str__(self) -> str:
        return f"{self.check}: {self.target}: {self.message}"


@functools.cache
def _data() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((PACKAGE_DIR / "data/checks.toml").read_text(encoding="utf-8"))


def _match(name: str, globs: Iterable[str]) -> bool:
    return _globs(tuple(globs)).match(name) is not None


@functools.cache
def _globs(globs: tuple[str, ...]) -> re.Pattern[str]:
    """The globs as one regex, each read as fnmatch.fnmatchcase reads it (`(?!)` for none): the checks ask it
    of every package of every target."""
    return re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)")


def upstream(version: str, family: Family) -> str:
    """The upstream part of a version: no epoch, no Debian revision / rpm release (`3:575.57.08-1.el9` → 575.57.08)."""
    version = version.split(":", 1)[1] if re.match(r"^\d+:", version) else version
    return version.rsplit("-", 1)[0] if "-" in version else version


def _first(packages: Sequence[LockedPackage], globs: Sequence[str]) -> LockedPackage | None:
    for g in globs:
        for p in sorted(packages, key=lambda p: p.name):
            if fnmatch.fnmatchcase(p.name, g):
                return p
    return None


def cuda_min_driver(t: LockedTarget) -> list[str]:
    family = Family(t.family)
    cuda = cuda_of((p.name, p.version) for p in t.packages)
    driver = _first(t.packages, _data()["cuda-min-driver"][family.value])
    if cuda is None or driver is None:
        return []
    need = min_driver(cuda.version)
    if need is None:
        return []
    have = upstream(driver.version, family)
    compare = debversion.compare if family is Family.DEB else rpmversion.compare_evr
    if compare(have, need) < 0:
        return [f"CUDA {cuda.version} needs an NVIDIA driver >= {need}, and the lock has {driver.name} "
                f"{driver.version}"]
    return []


def driver_one_version(t: LockedTarget) -> list[str]:
    family = Family(t.family)
    rule = _data()["driver-one-version"]
    parts = [p for p in t.packages if _match(p.name, rule[family.value]) and not _match(p.name, rule["not"])]
    versions: dict[str, list[str]] = defaultdict(list)
    for p in parts:
        versions[upstream(p.version, family)].append(p.name)
    if len(versions) < 2:
        return []
    main = max(versions, key=lambda v: len(versions[v]))
    return [f"{', '.join(sorted(names))} at {v}, the rest of the driver at {main} ({len(versions[main])} packages)"
            for v, names in sorted(versions.items()) if v != main]


def kernel_modules(t: LockedTarget) -> list[str]:
    family = Family(t.family)
    rule = _data()["kernel-modules"]
    by_name = {p.name: p for p in t.packages}
    out = []
    if family is Family.DEB:
        kernels = sorted(n[len("linux-image-"):] for n in by_name if fnmatch.fnmatchcase(n, rule["kernel"]["deb"]))
        # no locked kernel: the base image's (a cloud image) is the one, and the lock cannot say anything about it
        for dkms in sorted(n for n in by_name if _match(n, rule["dkms"]["deb"])):
            p = by_name[dkms]
            for abi in kernels:
                if f"linux-headers-{abi}" not in by_name:
                    out.append(f"{dkms} {p.version} can never be built for linux-image-{abi}: linux-headers-{abi} is "
                               "not locked (add it to the role, or the headers metapackage of the kernel flavour)")
        return out
    kernels = sorted(upstream_release(p.version) for p in t.packages if p.name == rule["kernel"]["rpm"])
    devel = {upstream_release(p.version) for p in t.packages if p.name == "kernel-devel"}
    for p in sorted(t.packages, key=lambda p: p.name):
        if _match(p.name, rule["dkms"]["rpm"]):
            for k in kernels:
                if k not in devel:
                    out.append(f"{p.name} {p.version} can never be built for kernel-core {k}: kernel-devel {k} is not "
                               "locked")
        elif _match(p.name, rule["kmod"]["rpm"]):
            m = re.search(rule["kmod-kernel"], p.version)
            if m is None:
                continue  # the version does not say which kernel it was built for
            built = f"{m['version']}-{m['release']}"
            if built not in kernels:
                out.append(f"{p.name} {p.version} was built for kernel {built}, which is not a locked kernel "
                           f"({', '.join(kernels) or 'none'})")
    return out


def upstream_release(evr: str) -> str:
    """An rpm EVR without its epoch (`5.14.0-427.42.1.el9_4`)."""
    return evr.split(":", 1)[1] if re.match(r"^\d+:", evr) else evr


def same_version_across_arches(targets: Sequence[LockedTarget]) -> list[tuple[str, str]]:
    """(role target name, message) for packages of one role whose versions differ between its arches."""
    by_role: dict[str, list[LockedTarget]] = defaultdict(list)
    for t in targets:
        by_role[t.name].append(t)
    out = []
    for name, ts in sorted(by_role.items()):
        if len(ts) < 2:
            continue
        versions: dict[str, dict[str, str]] = defaultdict(dict)
        for t in ts:
            for p in t.packages:
                versions[p.name][t.arch] = p.version
        for pkg, per_arch in sorted(versions.items()):
            # a release naming its own arch (DOCA's `…el9_4.x86_64`) is the same build on each
            if len({v.replace(a, "{arch}") for a, v in per_arch.items()}) > 1:
                shown = ", ".join(f"{v} on {a}" for a, v in sorted(per_arch.items()))
                out.append((name, f"{pkg} is {shown}"))
    return out


def run(config: Config, lock: Lock, *, strict: bool = False) -> list[Finding]:
    """Every finding of the checks the config does not turn off, at its level (`strict`: warnings are errors)."""
    levels = dict(config.checks)

    def level(check: str) -> CheckLevel:
        lv = levels.get(check, CheckLevel.WARN)
        return CheckLevel.ERROR if strict and lv is CheckLevel.WARN else lv

    findings = []
    per_target = {"cuda-min-driver": cuda_min_driver, "driver-one-version": driver_one_version,
                  "kernel-modules": kernel_modules}
    for t in sorted(lock.targets, key=lambda t: t.key):
        for check, fn in per_target.items():
            if level(check) is not CheckLevel.OFF:
                findings += [Finding(check, t.key, m, level(check)) for m in fn(t)]
        if t.container and level("container-userspace") is not CheckLevel.OFF:
            node = lock.target(t.role, t.arch)
            role = config.roles.get(t.role)
            if node is not None and role is not None and role.container is not None:
                rule = rule_for(Family(t.family), role.container.exclude)
                findings += [Finding("container-userspace", t.key, m, level("container-userspace"))
                             for m in agreement(node, t, rule)]
    if level("same-version-across-arches") is not CheckLevel.OFF:
        findings += [Finding("same-version-across-arches", name, m, level("same-version-across-arches"))
                     for name, m in same_version_across_arches(lock.targets)]
    assert all(f.check in CHECKS for f in findings)
    return findings
