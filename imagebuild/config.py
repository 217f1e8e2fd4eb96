"""`imagebuild.toml`: load, validate and turn into frozen values. Every error names file, key and a hint."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from imagebuild.debversion import is_valid as is_valid_deb_version
from imagebuild.errors import ConfigError
from imagebuild.snapshots import Provider, parse_provider, snapshot_url, validate_id

CONFIG_NAME = "imagebuild.toml"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*\Z")
_DISTRO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")  # a directory name (mirror, bake)
_REQUEST_RE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.-]*)(?::(?P<arch>[a-z0-9-]+))?"
    r"(?:=(?P<version>[A-Za-z0-9.+~:_-]+)|/(?P<release>[A-Za-z0-9.+_-]+))?\Z"
)
RPM_ARCHES = frozenset({"x86_64", "aarch64", "ppc64le", "s390x"})
_RPM_SPEC_RE = re.compile(r"^(?:/[A-Za-z0-9_.+:~^*?\[\]/-]+"  # a file path
                          r"|@[A-Za-z0-9_.+-]+(?::[A-Za-z0-9_.+-]+)?(?:/[A-Za-z0-9_.+-]+)?"  # @module:stream/profile
                          r"|[A-Za-z0-9_.+:~^*?\[\]-]+(?:\([^\s\"'`$\\]+\))?"  # NEVRA glob, provide
                          r"(?: [<>=]{1,2} [^\s\"'`$\\]+)?)\Z")
DEB_ARCHES = frozenset({"amd64", "arm64", "armhf", "armel", "i386", "ppc64el", "s390x", "riscv64", "mips64el"})


class Family(StrEnum):
    DEB = "deb"
    RPM = "rpm"


@dataclass(frozen=True)
class SnapshotSettings:
    """How a repo is put on a dated snapshot: its own id (else the global one) and the provider that maps
    the URL onto the snapshot service; no provider and no `{snapshot}` in the URL = a floating repo."""

    snapshot: str | None = None  # overrides the top-level `snapshot`
    provider: Provider | None = None
    service: str | None = field(default=None, repr=False)  # a site mirror of snapshot.debian.org/ubuntu.com

    def snapshot_for(self, url: str, default: str | None) -> str | None:
        """The snapshot id this repo is configured at, or None for a floating repo."""
        if self.provider is None and "{snapshot}" not in url:
            return None
        return self.snapshot or default

    @property
    def askable(self) -> bool:
        """Whether the provider can say which snapshot an instant falls in (redirects, index listings)."""
        return self.provider in (Provider.DEBIAN, Provider.UBUNTU, Provider.PULP)

    def apply(self, repo: str, url: str, snapshot: str | None) -> str:
        """`url` at snapshot id `snapshot` (the effective id: from snapshot_for, possibly resolved)."""
        if self.provider is None and "{snapshot}" not in url:
            return url
        if snapshot is None:
            raise ConfigError(f"repo {repo!r}: it is on a snapshot ({self.provider or '{snapshot}'}) but no "
                              "snapshot id is set",
                              hint="set `snapshot = \"YYYYMMDDTHHMMSSZ\"` at the top of imagebuild.toml or in the repo")
        if self.provider is Provider.APT_NATIVE:
            raise ConfigError(f"repo {repo!r}: snapshot-provider \"apt-native\" is for repo files apt >= 2.7 "
                              "resolves itself; a lock must name the snapshot URL",
                              hint="use snapshot-provider = \"debian\" or \"ubuntu\" (what the archive's "
                                   "Snapshots: field points at)")
        return snapshot_url(self.provider or Provider.TEMPLATE, url, snapshot, service=self.service)


@dataclass(frozen=True)
class AptRepo:
    """One `[[distros.X.repos]]` entry of a deb distro."""

    name: str
    url: str = field(repr=False)  # may still contain {snapshot}, {arch} and credentials (never shown)
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: Path | None
    trusted: bool
    flat: bool
    snap: SnapshotSettings = SnapshotSettings()

    def raw_url(self, arch: str) -> str:
        """The URL for `arch`, not yet on a snapshot."""
        return self.url.replace("{arch}", arch)

    def url_for(self, arch: str, snapshot: str | None) -> str:
        """The URL for `arch` at the effective snapshot id `snapshot`."""
        return self.snap.apply(self.name, self.raw_url(arch), snapshot).rstrip("/")

    def snapshot_for(self, snapshot: str | None) -> str | None:
        return self.snap.snapshot_for(self.url, snapshot)


@dataclass(frozen=True)
class RpmRepo:
    """A dnf repository: `url` is the repo root (the directory holding repodata/)."""

    name: str
    url: str = field(repr=False)  # may contain {snapshot}, {arch}, $basearch, $releasever, credentials
    priority: int  # dnf: lower wins; default 99
    cost: int  # dnf: lower wins among equal priority; default 1000
    module_hotfixes: bool
    gpgkey: Path | None
    repo_gpgcheck: bool
    exclude: tuple[str, ...]
    includepkgs: tuple[str, ...]
    snap: SnapshotSettings = SnapshotSettings()
    gpgcheck: bool = True  # dnf's gpgcheck: package signatures, checked when an image is built from the repo

    def raw_url(self, arch: str, releasever: str) -> str:
        """The URL for `arch` with dnf's variables filled in, not yet on a snapshot."""
        return self.url.replace("{arch}", arch).replace("$basearch", arch).replace("$releasever", releasever)

    def url_for(self, arch: str, snapshot: str | None, releasever: str) -> str:
        """The URL for `arch` at the effective snapshot id `snapshot`."""
        return self.snap.apply(self.name, self.raw_url(arch, releasever), snapshot).rstrip("/")

    def snapshot_for(self, snapshot: str | None) -> str | None:
        return self.snap.snapshot_for(self.url, snapshot)


@dataclass(frozen=True)
class Distro:
    """One `[distros.X]` table: its family, arches, base, repos and dnf settings."""

    name: str
    family: Family
    arches: tuple[str, ...]
    base: Path | None  # dpkg status file or BOM file, may contain {arch}; None = empty base
    recommends: bool
    repos: tuple[AptRepo, ...]
    rpm_repos: tuple[RpmRepo, ...] = ()
    releasever: str = ""
    modules: tuple[str, ...] = ()  # "module:stream" / "!module": `dnf module enable` / `dnf module disable`
    exclude: tuple[str, ...] = ()  # dnf excludepkgs globs
    max_snapshot_skew_days: int = 7  # warn when this distro's repos sit on snapshots further apart
    os: str | None = None  # os-release ID-VERSION_ID ("debian-12", "rocky-9"); None: from the name (purl.py)

    @property
    def all_repos(self) -> tuple[AptRepo | RpmRepo, ...]:
        return self.rpm_repos if self.family is Family.RPM else self.repos

    def base_for(self, arch: str) -> Path | None:
        return None if self.base is None else Path(str(self.base).replace("{arch}", arch))


@dataclass(frozen=True)
class PackageRequest:
    """One entry of a role's `packages`: `name`, `name=version`, `name/release`, optionally `name:arch`."""

    name: str
    arch: str | None = None
    version: str | None = None
    release: str | None = None

    @classmethod
    def parse(cls, spec: str) -> PackageRequest:
        m = _REQUEST_RE.match(spec)
        if not m or (m["version"] and not is_valid_deb_version(m["version"])):
            raise ValueError(spec)
        return cls(m["name"], m["arch"], m["version"], m["release"])

    def __str__(self) -> str:
        s = self.name + (f":{self.arch}" if self.arch else "")
        if self.version:
            return f"{s}={self.version}"
        return f"{s}/{self.release}" if self.release else s


class Builder(StrEnum):
    """The Packer builders a node image can be made with."""

    QEMU = "qemu"
    OPENSTACK = "openstack"
    AMAZON_EBS = "amazon-ebs"
    DOCKER = "docker"


class ShipRepos(StrEnum):
    """Which repo files the built image keeps."""

    SNAPSHOT = "snapshot"  # the lock's snapshot repos, credential-free
    DISABLED = "disabled"  # the same files, disabled
    NONE = "none"  # no repo files at all


# Per builder: the settings `[roles.R.image]` may carry (key -> TOML type) and which of them are required.
# They become Packer variables (defaults = these values); anything secret comes from the environment instead.
BUILDER_SETTINGS: dict[Builder, dict[str, type]] = {
    Builder.QEMU: {"disk_size": str, "memory": int, "cpus": int, "ssh_username": str, "accelerator": str,
                   "format": str, "headless": bool, "ssh_timeout": str,
                   # how Packer gets in: a NoCloud seed (cd_files relative to the project, cd_label "cidata")
                   # with the user's key or password; the password itself only as PKR_VAR_ssh_password
                   "cd_files": list, "cd_label": str},
    Builder.OPENSTACK: {"flavor": str, "networks": list, "ssh_username": str, "security_groups": list,
                        "floating_ip_network": str, "availability_zone": str, "image_name": str},
    Builder.AMAZON_EBS: {"instance_type": str, "region": str, "ssh_username": str, "owners": list,
                         "subnet_id": str, "volume_size": int, "ami_name": str},
    Builder.DOCKER: {"pull": bool},  # pull = false: a local base image (podman import, a registry mirror)
}
BUILDER_REQUIRED: dict[Builder, tuple[str, ...]] = {
    Builder.QEMU: ("source-checksum",), Builder.OPENSTACK: ("flavor",),
    Builder.AMAZON_EBS: ("instance_type", "region"), Builder.DOCKER: (),
}
SettingValue = str | int | bool | tuple[str, ...]


@dataclass(frozen=True)
class ImageSpec:
    """`[roles.R.image]`: how the node image of a role is built."""

    builder: Builder
    source: str  # qemu: image URL; openstack: image name; amazon-ebs: AMI name filter; docker: image reference
    source_checksum: str | None = None  # qemu: "sha256:…" or "file:URL"
    hold: bool = True
    ship_repos: ShipRepos = ShipRepos.SNAPSHOT
    settings: tuple[tuple[str, SettingValue], ...] = ()  # sorted builder settings


@dataclass(frozen=True)
class User:
    """A fixed system account of `[users]`: the same ids on every image, created before any package."""

    name: str
    uid: int
    gid: int
    home: str = "/nonexistent"
    shell: str = "/usr/sbin/nologin"
    groups: tuple[str, ...] = ()


ROOTFS_BASE = "rootfs"
_IMAGE_REF_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*(?::[0-9]+)?(?:/[a-z0-9][a-z0-9._-]*)+"  # registry/path
                           r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?@sha256:[0-9a-f]{64}\Z")  # optional tag, the digest


@dataclass(frozen=True)
class ContainerSpec:
    """`[roles.R.container]`: a container of the role's userspace, locked as `<role>-container` from the node's set.

    `base` is "rootfs" (the distro's base, built by imagebuild from the snapshot and imported) or an image
    reference pinned by digest, whose packages `base_bom` lists. `packages` (None: the node's requests) are
    what the container asks for, each at the node image's version; `exclude` adds globs to the default rule."""

    base: str
    base_bom: Path | None = None
    exclude: tuple[str, ...] = ()
    packages: tuple[PackageRequest, ...] | None = None

    @property
    def rootfs(self) -> bool:
        return self.base == ROOTFS_BASE

    def base_bom_for(self, arch: str) -> Path | None:
        return None if self.base_bom is None else Path(str(self.base_bom).replace("{arch}", arch))


@dataclass(frozen=True)
class Role:
    """One `[roles.X]` table: what its node image (and container) install."""

    name: str
    distro: str
    packages: tuple[PackageRequest, ...]
    image: ImageSpec | None = None
    pip: tuple[str, ...] = ()  # exact `name==version` pins, locked with their hashes (hashin)
    pip_index: str | None = field(default=None, repr=False)  # a PyPI-JSON index root; None: hashin's default
    container: ContainerSpec | None = None


class CheckLevel(StrEnum):
    ERROR = "error"
    WARN = "warn"
    OFF = "off"


# The coherence checks of checks.py, each "warn" unless `[checks]` says otherwise
CHECKS = ("cuda-min-driver", "driver-one-version", "kernel-modules", "same-version-across-arches",
          "container-userspace")


@dataclass(frozen=True)
class Config:
    """The whole imagebuild.toml, checked."""

    path: Path
    snapshot: str | None
    distros: dict[str, Distro]
    roles: dict[str, Role]
    users: tuple[User, ...] = ()
    checks: tuple[tuple[str, CheckLevel], ...] = ()  # `[checks]`: check -> level

    @property
    def root(self) -> Path:
        """Where outputs (snapshots.lock, boms/, packer/) live: the config file's directory."""
        return self.path.parent


class _Table:
    """A TOML table being validated: remembers its dotted key path for error messages."""

    def __init__(self, file: Path, where: str, data: Any, allowed: set[str]) -> None:
        self.file, self.where = file, where
        if not isinstance(data, dict):
            raise self.error(where, f"must be a table, not {type(data).__name__}")
        self.data = data
        for key in data:
            if key not in allowed:
                import difflib

                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                raise self.error(
                    self.key(key),
                    "unknown key",
                    hint=f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(sorted(allowed))}",
                )

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, what: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {what}", hint=hint)

    def get(self, key: str, kind: type, default: Any = ..., *, required: bool = False) -> Any:
        if key not in self.data:
            if required or default is ...:
                raise self.error(self.key(key), "missing required key")
            return default
        value = self.data[key]
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.error(self.key(key), "must be a list of strings")
            return tuple(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(self.key(key), f"must be a {kind.__name__}, not {type(value).__name__}")
        return value


def find_config(explicit: Path | None) -> Path:
    path = explicit if explicit is not None else Path.cwd() / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found",
            hint="run in a directory with imagebuild.toml or pass --config PATH",
        )
    return path.resolve()


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    top = _Table(path, "", raw, {"snapshot", "distros", "roles", "users", "checks"})
    snapshot = top.get("snapshot", str, None)
    if snapshot is not None:
        snapshot = validate_id(snapshot, where=f"{path}: snapshot")
    distros_t = _Table(path, "distros", top.get("distros", dict, {}), set(top.get("distros", dict, {})))
    distros = {name: _distro(path, name, data) for name, data in distros_t.data.items()}
    if not distros:
        raise top.error("distros", "no distros configured", hint="add a [distros.NAME] table")
    roles_t = _Table(path, "roles", top.get("roles", dict, {}), set(top.get("roles", dict, {})))
    roles = {name: _role(path, name, data, distros) for name, data in roles_t.data.items()}
    if not roles:
        raise top.error("roles", "no roles configured", hint="add a [roles.NAME] table")
    for name, role in roles.items():
        if role.container is not None and f"{name}-container" in roles:
            raise roles_t.error(f"roles.{name}-container", f"this name is taken by the container of role {name!r}",
                                hint="rename the role: its lock target and BOMs would collide")
    users_t = _Table(path, "users", top.get("users", dict, {}), set(top.get("users", dict, {})))
    users = tuple(_user(path, name, data) for name, data in sorted(users_t.data.items()))
    uids = [u.uid for u in users]
    for u in users:
        if uids.count(u.uid) > 1:
            raise users_t.error(f"users.{u.name}.uid", f"uid {u.uid} is given to two users",
                                hint="every fixed account needs its own uid")
    checks_t = _Table(path, "checks", top.get("checks", dict, {}), set(CHECKS))
    checks = tuple((name, _choice(checks_t, name, CheckLevel)) for name in sorted(checks_t.data))
    return Config(path=path, snapshot=snapshot, distros=distros, roles=roles, users=users, checks=checks)


_ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+-]*\Z")
# what may reach a rendered file (HCL, shell data, repo files) from a builder setting: printable, one line
_SAFE_TEXT_RE = re.compile(r"^[^\x00-\x1f\x7f`$\\\"']*\Z")


def _user(file: Path, name: str, data: Any) -> User:
    t = _Table(file, f"users.{name}", data, {"uid", "gid", "home", "shell", "groups"})
    if not _ACCOUNT_RE.match(name):
        raise t.error(f"users.{name}", f"{name!r} is not a valid account name",
                      hint="lowercase letters, digits, _ and -, starting with a letter or _, at most 32")
    ids = {}
    for key in ("uid", "gid"):
        value = t.get(key, int, required=True)
        if not 1 <= value <= 65533:
            raise t.error(t.key(key), f"{value} is out of range", hint="1 to 65533 (0 is root, 65534 nobody)")
        ids[key] = value
    home, shell = t.get("home", str, "/nonexistent"), t.get("shell", str, "/usr/sbin/nologin")
    for key, value in (("home", home), ("shell", shell)):
        if not _PATH_RE.match(value):
            raise t.error(t.key(key), f"{value!r} is not an absolute path of plain characters")
    groups = t.get("groups", list, ())
    for g in groups:
        if not _ACCOUNT_RE.match(g):
            raise t.error(t.key("groups"), f"{g!r} is not a valid group name")
    return User(name, ids["uid"], ids["gid"], home, shell, groups)


def _image(file: Path, where: str, data: Any) -> ImageSpec:
    # the builder decides which keys are allowed: read it from a table that allows them all
    builder = _choice(_Table(file, where, data, set(data) if isinstance(data, dict) else set()), "builder", Builder)
    kinds = BUILDER_SETTINGS[builder]
    t = _Table(file, where, data, {"builder", "source", "source-checksum", "hold", "ship-repos", *kinds})
    for key in BUILDER_REQUIRED[builder]:
        if key not in t.data:
            raise t.error(t.key(key), f"missing: the {builder} builder needs it")
    source = _safe_text(t, "source", t.get("source", str, required=True))
    if builder is Builder.QEMU and urlsplit(source).scheme not in ("http", "https", "file"):
        raise t.error(t.key("source"), f"{source!r} is not an image URL", hint="http(s):// or file:// of a cloud image")
    checksum = t.get("source-checksum", str, None)
    if checksum is not None and not re.match(r"^(?:(?:sha256|sha512):[0-9a-f]{64,128}|file:[^\s\"'`$\\]+|none)\Z",
                                             checksum):
        raise t.error(t.key("source-checksum"), f"{checksum!r} is not a checksum",
                      hint="sha256:<hex>, sha512:<hex> or file:<URL of a SHA256SUMS>")
    ship = _choice(t, "ship-repos", ShipRepos, ShipRepos.SNAPSHOT)
    settings: list[tuple[str, SettingValue]] = []
    for key, kind in sorted(kinds.items()):
        if key in t.data:
            value = t.get(key, kind)
            for text in (value if isinstance(value, tuple) else (value,)):
                if isinstance(text, str):
                    _safe_text(t, key, text)
            settings.append((key, value))
    return ImageSpec(builder, source, checksum, t.get("hold", bool, True), ship, tuple(settings))


_E = TypeVar("_E", bound=StrEnum)


def _choice(t: _Table, key: str, kind: type[_E], default: _E | None = None) -> _E:
    """The value of `key` as one of the closed set `kind` (a missing key is `default`, or an error without one)."""
    value = t.get(key, str, default.value if default is not None else ..., required=default is None)
    try:
        return kind(value)
    except ValueError:
        raise t.error(t.key(key), f"unknown value {value!r}", hint="one of " + ", ".join(k.value for k in kind)) \
            from None


def _safe_text(t: _Table, key: str, value: str) -> str:
    """A config string that is rendered into HCL, shell data or repo files: one printable line without
    quotes, backslashes, backticks, `$` or HCL's `%{` (nothing a template could turn into code)."""
    if not value or not _SAFE_TEXT_RE.match(value) or "%{" in value:
        raise t.error(t.key(key), f"{value!r}: quotes, backslashes, backticks, $, %{{ and control characters are "
                                  "not allowed here", hint="a plain value: a URL, a name, a size")
    return value


def _resolve_path(config: Path, value: str) -> Path:
    try:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (config.parent / p).resolve()
    except (RuntimeError, ValueError, OSError) as e:  # ~unknown-user, a NUL byte
        raise ConfigError(f"{config}: path {value[:200]!r} cannot be used: {e}") from None


def _is_file(path: Path) -> bool:
    """Path.is_file, False also for names the OS refuses (too long, a NUL byte) instead of raising."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _distro(file: Path, name: str, data: Any) -> Distro:
    if not _DISTRO_RE.match(name):
        raise ConfigError(f"{file}: distros.{name!r}: invalid distro name", hint="letters, digits, _ . + -")
    family_s = _Table(file, f"distros.{name}", data, set(data) if isinstance(data, dict) else set()).get(
        "family", str, required=True)
    try:
        family = Family(family_s)
    except ValueError:
        raise ConfigError(f"{file}: distros.{name}.family: unknown family {family_s!r}",
                          hint="use \"deb\" or \"rpm\"") from None
    allowed = {"family", "arches", "base", "recommends", "repos", "max-snapshot-skew-days", "os"}
    if family is Family.RPM:
        allowed |= {"releasever", "modules", "exclude"}
    t = _Table(file, f"distros.{name}", data, allowed)
    arches = t.get("arches", list, required=True)
    if not arches:
        raise t.error(t.key("arches"), "must name at least one architecture")
    known = RPM_ARCHES if family is Family.RPM else DEB_ARCHES
    for arch in arches:
        if arch not in known:
            raise t.error(t.key("arches"), f"unknown {family.value} architecture {arch!r}",
                          hint=f"one of {', '.join(sorted(known))}")
    base_s = t.get("base", str, "none")
    base = None if base_s == "none" else _resolve_path(file, base_s)
    for arch in arches if base is not None else ():
        path = Path(str(base).replace("{arch}", arch))
        if not _is_file(path):
            raise t.error(t.key("base"), f"base file {path} does not exist",
                          hint="a dpkg status file, a BOM file (may contain {arch}), or \"none\"")
    repos_raw = t.data.get("repos")
    if not isinstance(repos_raw, list) or not repos_raw:
        raise t.error(t.key("repos"), "must be a non-empty array of tables", hint=f"add [[distros.{name}.repos]]")
    recommends = t.get("recommends", bool, False)
    os_id = t.get("os", str, None)
    if os_id is not None and not re.match(r"^[a-z][a-z0-9]*-[0-9][0-9.]*\Z", os_id):
        raise t.error(t.key("os"), f"{os_id!r} is not ID-VERSION_ID",
                      hint='e.g. "debian-12", "rocky-9", "ubuntu-24.04" (os-release ID and VERSION_ID)')
    skew = t.get("max-snapshot-skew-days", int, 7)
    if skew < 0:
        raise t.error(t.key("max-snapshot-skew-days"), "must be >= 0")
    seen: set[str] = set()
    if family is Family.RPM:
        rpm_repos = tuple(repo for i, r in enumerate(repos_raw)
                          for repo in _rpm_repos(file, f"distros.{name}.repos[{i}]", r))
        names = [r.name for r in rpm_repos]
    else:
        repos = tuple(_apt_repo(file, f"distros.{name}.repos[{i}]", r) for i, r in enumerate(repos_raw))
        names = [r.name for r in repos]
    for n in names:
        if n in seen:
            raise t.error(t.key("repos"), f"two repos are named {n!r}", hint="repo names must be unique")
        seen.add(n)
    if family is Family.RPM:
        modules = t.get("modules", list, ())
        for m in modules:
            if not re.match(r"^(?:[A-Za-z0-9_.+-]+:[A-Za-z0-9_.+-]+|![A-Za-z0-9_.+-]+)\Z", m):
                raise t.error(t.key("modules"), f"{m!r} is not module:stream (enable) or !module (disable)",
                              hint="e.g. \"nvidia-driver:575-open\" or \"!nvidia-driver\"")
        releasever = t.get("releasever", str, required=True)
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", releasever):
            raise t.error(t.key("releasever"), f"{releasever!r} is not a release version", hint="e.g. \"9\"")
        return Distro(name, family, arches, base, recommends, (), rpm_repos, releasever, modules,
                      _globs(t, "exclude"), skew, os_id)
    return Distro(name, family, arches, base, recommends, repos, max_snapshot_skew_days=skew, os=os_id)


def _rpm_repos(file: Path, where: str, data: Any) -> list[RpmRepo]:
    """A `[[repos]]` entry: one repo by `url`, or every enabled section of a dnf `.repo` file (the snapshot
    keys, when given, apply to each of its sections)."""
    if isinstance(data, dict) and "repofile" in data:
        t = _Table(file, where, data, {"repofile", *_SNAPSHOT_KEYS})
        path = _resolve_path(file, t.get("repofile", str, required=True))
        return [replace(r, snap=_snapshot_settings(t, r.url)) for r in parse_repofile(path)]
    return [_rpm_repo(file, where, data)]


def _words(value: str | None) -> tuple[str, ...]:
    return tuple((value or "").replace(",", " ").split())


def parse_repofile(path: Path) -> list[RpmRepo]:
    """The enabled sections of a dnf `.repo` file. `baseurl` (first URL) is used; `mirrorlist`/`metalink`
    are refused because a lock must name one place; `username`/`password` go into the fetch URL and are
    redacted everywhere."""
    from urllib.parse import quote

    from imagebuild.repofiles import parse_dnf_repo

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as e:  # UnicodeDecodeError, a NUL byte in the name
        raise ConfigError(f"{path}: cannot read .repo file: {getattr(e, 'strerror', None) or e}") from None
    repos = []
    for sec in parse_dnf_repo(text, source=str(path)):
        if not sec.enabled:
            continue
        where = f"{path}:{sec.line} [{sec.id}]"
        opts = dict(sec.options)
        if not sec.baseurls:
            kind = "metalink" if sec.metalink else "mirrorlist" if sec.mirrorlist else None
            hint = ("replace it with a baseurl (a snapshot URL; `imagebuild repo rewrite` does it) so the lock "
                    "names one place") if kind else None
            raise ConfigError(f"{where}: " + (f"{kind} is not supported" if kind else "no baseurl"), hint=hint)
        if not _REPO_ID_RE.match(sec.id):
            raise ConfigError(f"{path}:{sec.line}: {sec.id[:80]!r} is not a valid repo id")
        # the checks a [[repos]] table gets
        url = _checked_url(_Table(path, f"[{sec.id}]", {}, set()), "baseurl", sec.baseurls[0])
        excludes, includes = _words(opts.get("exclude") or opts.get("excludepkgs")), _words(opts.get("includepkgs"))
        for g in (*excludes, *includes):
            if not _GLOB_RE.match(g):
                raise ConfigError(f"{where}: {g[:80]!r} is not a package glob", hint="e.g. kernel-debug*")
        if sec.username:
            scheme, sep, rest = url.partition("://")
            url = f"{scheme}{sep}{quote(sec.username, safe='')}:{quote(sec.password or '', safe='')}@{rest}"
        key = Path(sec.gpgkeys[0][len("file://"):]) if sec.gpgkeys and sec.gpgkeys[0].startswith("file://") else None
        repo_gpgcheck = sec.flag("repo_gpgcheck")
        if repo_gpgcheck and key is None:
            raise ConfigError(f"{where}: repo_gpgcheck needs a local gpgkey (file://…)")
        try:
            priority, cost = int(opts.get("priority", "99")), int(opts.get("cost", "1000"))
        except ValueError:
            raise ConfigError(f"{where}: priority and cost must be integers") from None
        repos.append(RpmRepo(sec.id, url, priority, cost, sec.flag("module_hotfixes"), key,
                             repo_gpgcheck, excludes, includes, gpgcheck=sec.flag("gpgcheck", True)))
    if not repos:
        raise ConfigError(f"{path}: no enabled repositories")
    return repos


def _rpm_repo(file: Path, where: str, data: Any) -> RpmRepo:
    t = _Table(file, where, data, {"name", "url", "priority", "cost", "module_hotfixes", "gpgkey", "repo_gpgcheck",
                                   "gpgcheck", "exclude", "includepkgs", *_SNAPSHOT_KEYS})
    name = t.get("name", str, required=True)
    if not _REPO_ID_RE.match(name):
        raise t.error(t.key("name"), f"{name!r} is not a valid repo id")
    url = _checked_url(t, "url", t.get("url", str, required=True))
    gpgkey_s = t.get("gpgkey", str, None)
    gpgkey = _resolve_path(file, gpgkey_s) if gpgkey_s else None
    repo_gpgcheck = t.get("repo_gpgcheck", bool, False)
    if repo_gpgcheck and gpgkey is None:
        raise t.error(t.key("gpgkey"), "repo_gpgcheck = true needs a gpgkey")
    return RpmRepo(name, url, t.get("priority", int, 99), t.get("cost", int, 1000),
                   t.get("module_hotfixes", bool, False), gpgkey, repo_gpgcheck,
                   _globs(t, "exclude"), _globs(t, "includepkgs"), _snapshot_settings(t, url),
                   t.get("gpgcheck", bool, True))


_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]*\Z")
_WORD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*\Z")
_GLOB_RE = re.compile(r"^[A-Za-z0-9_.+:~^*?\[\]-]+\Z")


def _globs(t: _Table, key: str) -> tuple[str, ...]:
    """dnf package globs (excludepkgs, includepkgs): they are written into repo files of the image build."""
    globs: tuple[str, ...] = t.get(key, list, ())
    for g in globs:
        if not _GLOB_RE.match(g):
            raise t.error(t.key(key), f"{g!r} is not a package glob", hint="e.g. \"kernel-debug*\"")
    return globs


def _apt_repo(file: Path, where: str, data: Any) -> AptRepo:
    t = _Table(file, where, data, {"name", "url", "suites", "components", "signed-by", "trusted", "flat",
                                   *_SNAPSHOT_KEYS})
    name = t.get("name", str, required=True)
    if not _NAME_RE.match(name):
        raise t.error(t.key("name"), f"{name!r} is not a valid repo name", hint="lowercase letters, digits, . + -")
    url = _checked_url(t, "url", t.get("url", str, required=True))
    flat = t.get("flat", bool, False)
    suites = t.get("suites", list, ())
    components = t.get("components", list, ())
    if flat and (suites or components):
        raise t.error(t.key("suites"), "a flat repo has no suites or components", hint="drop them or set flat = false")
    if not flat and not suites:
        raise t.error(t.key("suites"), "missing required key", hint="e.g. suites = [\"bookworm\"]; or flat = true")
    if not flat and not components:
        raise t.error(t.key("components"), "missing required key", hint="e.g. components = [\"main\"]")
    for key, words in (("suites", suites), ("components", components)):
        for w in words:
            if not _WORD_RE.match(w):
                raise t.error(t.key(key), f"{w!r} is not a suite or component name",
                              hint="letters, digits and . _ / + - only")
    signed = t.get("signed-by", str, None)
    trusted = t.get("trusted", bool, False)
    if signed is None and not trusted:
        raise t.error(t.key("signed-by"), "missing: the repo's signing key is needed to verify it",
                      hint="set signed-by = \"/path/keyring.gpg\" (or trusted = true to skip verification)")
    signed_by = _resolve_path(file, signed) if signed else None
    if signed_by is not None and not _is_file(signed_by):
        raise t.error(t.key("signed-by"), f"keyring {signed_by} does not exist")
    return AptRepo(name, url, suites, components, signed_by, trusted, flat, _snapshot_settings(t, url))


_SNAPSHOT_KEYS = ("snapshot", "snapshot-provider", "snapshot-service")


def _checked_url(t: _Table, key: str, url: str, *, local: bool = True) -> str:
    """An http(s):// URL (or file:, made absolute against the config's directory) that fetching can use;
    the message never shows its credentials."""
    from imagebuild.fetch import redact

    hint = "use http://, https:// or file:" if local else "use http:// or https://"
    if re.search(r"[\s\x00-\x1f\x7f\"'`\\<>]", url):
        raise t.error(t.key(key), f"URL {redact(url)!r} holds whitespace, quotes, backslashes or control "
                                  "characters", hint="percent-encode them (%20, …)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        raise t.error(t.key(key), f"invalid URL {redact(url)!r}: {e}", hint=hint) from None
    if parts.scheme not in (("http", "https", "file") if local else ("http", "https")):
        raise t.error(t.key(key), f"unsupported URL {redact(url)!r}", hint=hint)
    if parts.scheme != "file" and not parts.hostname:
        raise t.error(t.key(key), f"URL {redact(url)!r} names no host", hint=hint)
    if parts.scheme == "file":
        path = url[len("file:"):]
        path = path[2:] if path.startswith("//") else path
        url = "file://" + str(_resolve_path(t.file, path))
    return url


def _snapshot_settings(t: _Table, url: str) -> SnapshotSettings:
    snapshot = t.get("snapshot", str, None)
    if snapshot is not None:
        snapshot = validate_id(snapshot, where=f"{t.file}: {t.key('snapshot')}")
    provider_s = t.get("snapshot-provider", str, None)
    provider = parse_provider(provider_s, where=f"{t.file}: {t.key('snapshot-provider')}") if provider_s else None
    if provider is Provider.TEMPLATE and "{snapshot}" not in url:
        raise t.error(t.key("url"), "snapshot-provider \"template\" needs {snapshot} in the URL")
    service = t.get("snapshot-service", str, None)
    if service is not None:
        service = _checked_url(t, "snapshot-service", service, local=False)
    if service is not None and provider not in (Provider.DEBIAN, Provider.UBUNTU):
        raise t.error(t.key("snapshot-service"), "only applies to snapshot-provider \"debian\" or \"ubuntu\"")
    return SnapshotSettings(snapshot, provider, service)


def _packages(t: _Table, key: str, distro: Distro) -> tuple[PackageRequest, ...]:
    packages = []
    for spec in t.get(key, list, required=True):
        if distro.family is Family.RPM:
            if not _RPM_SPEC_RE.match(spec):
                raise t.error(t.key(key), f"bad package spec {spec!r}",
                              hint="use a dnf spec: name, name-version, name-epoch:version-release, name.arch, "
                                   "@module:stream/profile, "
                                   "a provide ('libcuda.so.1()(64bit)', 'dkms >= 3.1.8') or a file path")
            packages.append(PackageRequest(spec))
            continue
        try:
            req = PackageRequest.parse(spec)
        except ValueError:
            raise t.error(t.key(key), f"bad package spec {spec!r}",
                          hint="use name, name=version, name/suite or name:arch") from None
        if req.arch and req.arch not in distro.arches and req.arch != "all":
            raise t.error(t.key(key), f"{spec!r}: architecture {req.arch!r} is not in the distro's arches")
        packages.append(req)
    if not packages:
        raise t.error(t.key(key), "must list at least one package")
    return tuple(packages)


def _role(file: Path, name: str, data: Any, distros: dict[str, Distro]) -> Role:
    t = _Table(file, f"roles.{name}", data, {"distro", "packages", "image", "pip", "pip-index", "container"})
    if not _NAME_RE.match(name):
        raise t.error(f"roles.{name}", "invalid role name", hint="lowercase letters, digits, . + -")
    distro = t.get("distro", str, required=True)
    if distro not in distros:
        raise t.error(t.key("distro"), f"unknown distro {distro!r}", hint=f"defined: {', '.join(sorted(distros))}")
    packages = _packages(t, "packages", distros[distro])
    image = _image(file, t.key("image"), t.data["image"]) if "image" in t.data else None
    pip = t.get("pip", list, ())
    for spec in pip:
        if not _PIP_PIN_RE.match(spec):
            raise t.error(t.key("pip"), f"{spec!r} is not an exact pin",
                          hint="name==version, e.g. \"clustershell==1.9.2\": the lock records its hashes")
    index = t.get("pip-index", str, None)
    if index is not None:
        index = _checked_url(t, "pip-index", index, local=False)
    container = (_container(file, t.key("container"), t.data["container"], distros[distro])
                 if "container" in t.data else None)
    return Role(name, distro, packages, image, pip, index, container)


def _container(file: Path, where: str, data: Any, distro: Distro) -> ContainerSpec:
    t = _Table(file, where, data, {"base", "base-bom", "exclude", "packages"})
    base = t.get("base", str, required=True)
    bom = t.get("base-bom", str, None)
    if base == ROOTFS_BASE:
        if bom is not None:
            raise t.error(t.key("base-bom"), "base = \"rootfs\" is the distro's base: its packages are "
                                             f"distros.{distro.name}.base", hint="drop base-bom")
        if distro.base is None:
            raise t.error(t.key("base"), f"base = \"rootfs\" builds the distro's base, and distros.{distro.name}.base "
                                         "is \"none\"",
                          hint=f"set distros.{distro.name}.base to the dpkg status (or BOM) of a minimal base, or "
                               "give base = \"REGISTRY/IMAGE@sha256:…\" with base-bom")
        base_bom = None
    else:
        if not _IMAGE_REF_RE.match(base):
            raise t.error(t.key("base"), f"{base!r} is neither \"rootfs\" nor an image reference pinned by digest",
                          hint="e.g. \"127.0.0.1:5000/library/debian:12-slim@sha256:<64 hex digits>\" (a tag alone "
                               "moves; the digest is what is locked)")
        if bom is None:
            raise t.error(t.key("base-bom"), "missing: the packages of the base image are needed to lock against it",
                          hint="a BOM (`name version arch` lines, e.g. `dpkg-query -W -f '${Package} ${Version} "
                               "${Architecture}\\n'` run in the base) or a dpkg status file")
        base_bom = _resolve_path(file, bom)
        for arch in distro.arches:
            path = Path(str(base_bom).replace("{arch}", arch))
            if not _is_file(path):
                raise t.error(t.key("base-bom"), f"base BOM {path} does not exist",
                              hint="one file for every arch of the distro: the path may contain {arch}")
    packages = _packages(t, "packages", distro) if "packages" in t.data else None
    return ContainerSpec(base, base_bom, _globs(t, "exclude"), packages)


_PIP_PIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*\Z")
