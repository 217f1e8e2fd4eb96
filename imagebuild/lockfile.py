"""`snapshots.lock`: the versioned, deterministic record of what was resolved against what.

Serialised as JSON with sorted keys and sorted lists so identical inputs give identical bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imagebuild.bom import BomEntry
from imagebuild.errors import ConfigError

LOCK_NAME = "snapshots.lock"
LOCK_FORMAT = 1
STUB_REPO = "imagebuild-stub"  # the `repo` of a container's generated host-provided stub package


@dataclass(frozen=True)
class LockedRepo:
    distro: str
    arch: str
    name: str
    suite: str
    url: str  # credential-free
    snapshot: str | None
    release_sha256: str
    date: str
    valid_until: str
    indices: tuple[tuple[str, str], ...]  # (path in the Release, sha256)


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    arch: str
    repo: str  # "base" for packages the base image already had
    suite: str
    filename: str
    size: int
    sha256: str
    required_by: str | None  # None: requested by the role (or in the base)
    dep_type: str
    relation: str
    depends: tuple[str, ...] = ()  # the locked packages that meet its dependencies (and weak ones, if installed)


@dataclass(frozen=True)
class LockedPip:
    """A pip requirement of a role: the exact version and the sha256 of every file PyPI has for it."""

    name: str
    version: str
    hashes: tuple[str, ...]

    def requirement(self) -> str:
        return f"{self.name}=={self.version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in self.hashes)


@dataclass(frozen=True)
class LockedStub:
    """A container's generated package standing for what the host provides (the NVIDIA driver's libraries):
    it Provides each `name (= version)` the node image has, so dependencies on them are met without them."""

    name: str
    version: str
    arch: str
    provides: tuple[str, ...]


@dataclass(frozen=True)
class LockedTarget:
    role: str
    arch: str
    distro: str
    requests: tuple[str, ...]
    packages: tuple[LockedPackage, ...]  # everything the image holds, base included
    removed: tuple[str, ...]  # base packages the transaction removes
    family: str = "deb"  # "deb" or "rpm": which version ordering and BOM tool apply
    pip: tuple[LockedPip, ...] = ()  # installed into /opt/imagebuild/venv with --require-hashes
    container: bool = False  # the role's container (`<role>-container`), derived from its node image
    stubs: tuple[LockedStub, ...] = ()  # a container's host-provided stubs (also listed in packages)

    @property
    def name(self) -> str:
        """The lock target's name: the role, or `<role>-container`."""
        return f"{self.role}-container" if self.container else self.role

    @property
    def key(self) -> str:
        return f"{self.name}-{self.arch}"

    def bom(self) -> list[BomEntry]:
        return [BomEntry(p.name, p.arch, p.version) for p in self.packages]


@dataclass(frozen=True)
class Lock:
    inputs_digest: str
    repos: tuple[LockedRepo, ...]
    targets: tuple[LockedTarget, ...]

    def target(self, role: str, arch: str, container: bool = False) -> LockedTarget | None:
        return next((t for t in self.targets if t.role == role and t.arch == arch and t.container == container),
                    None)


def render_lock(lock: Lock) -> str:
    from imagebuild import __version__

    doc: dict[str, Any] = {
        "lock-format": LOCK_FORMAT,
        "generator": f"imagebuild {__version__}",
        "inputs-digest": lock.inputs_digest,
        "repos": [asdict(r) for r in sorted(lock.repos, key=lambda r: (r.distro, r.arch, r.name, r.suite))],
        "targets": {
            t.key: {
                "role": t.role, "arch": t.arch, "distro": t.distro, "family": t.family, "requests": list(t.requests),
                "removed": list(t.removed),
                "packages": [asdict(p) for p in sorted(t.packages, key=lambda p: (p.name, p.arch))],
                # only when there is some: locks without pip stay byte-identical to earlier ones
                **({"pip": [asdict(p) for p in sorted(t.pip, key=lambda p: p.name.lower())]} if t.pip else {}),
                **({"container": True} if t.container else {}),
                **({"stubs": [asdict(s) for s in sorted(t.stubs, key=lambda s: s.name)]} if t.stubs else {}),
            }
            for t in sorted(lock.targets, key=lambda t: t.key)
        },
    }
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def parse_lock(text: str, source: Path) -> Lock:
    try:
        doc = json.loads(text)
        if doc.get("lock-format") != LOCK_FORMAT:
            raise ConfigError(f"{source}: unsupported lock format {doc.get('lock-format')!r}",
                              hint=f"this imagebuild reads format {LOCK_FORMAT}; re-run `imagebuild lock`")
        repos = tuple(LockedRepo(**{**r, "indices": tuple(tuple(i) for i in r["indices"])}) for r in doc["repos"])
        targets = tuple(
            LockedTarget(t["role"], t["arch"], t["distro"], tuple(t["requests"]),
                         tuple(LockedPackage(**{**p, "depends": tuple(p.get("depends", ()))}) for p in t["packages"]),
                         tuple(t["removed"]),
                         t.get("family", "deb"),
                         tuple(LockedPip(p["name"], p["version"], tuple(p["hashes"])) for p in t.get("pip", ())),
                         bool(t.get("container", False)),
                         tuple(LockedStub(s["name"], s["version"], s["arch"], tuple(s["provides"]))
                               for s in t.get("stubs", ())))
            for t in doc["targets"].values()
        )
        return Lock(doc["inputs-digest"], repos, targets)
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{source}: not a valid imagebuild lock ({e.__class__.__name__}: {e})",
                          hint="re-run `imagebuild lock` to regenerate it") from None


def read_lock(path: Path) -> Lock:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no lock file", hint="run `imagebuild lock` first") from None
    return parse_lock(text, path)
