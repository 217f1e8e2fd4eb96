"""`imagebuild bake`: node images from the lock — provisioning bundles, Packer templates, root filesystems.

Everything is rendered from the lock (never re-resolved) plus the config's image settings: a stale lock is
refused. A bundle (`packer/<role>/<arch>/`) is one POSIX script with its data; the very same script runs in a
Packer build, a container build and, with `--root`, against a root filesystem being built. Credentials never
reach a rendered file: the script takes them from the environment (`IMAGEBUILD_AUTH_<REPO>`), Packer from
`sensitive` variables fed by `PKR_VAR_…`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from imagebuild import log
from imagebuild.bom import render_bom
from imagebuild.config import (
    AptRepo,
    Builder,
    Config,
    Distro,
    Family,
    ImageSpec,
    Role,
    RpmRepo,
    ShipRepos,
)
from imagebuild.errors import ConfigError, DriftError, RepositoryError
from imagebuild.fsutil import write_atomic
from imagebuild.lockfile import LOCK_NAME, Lock, LockedRepo, LockedTarget, read_lock

PACKER_DIR = "packer"
IMAGES_DIR = "images"
PHASES = ("users", "repos", "install", "hold", "verify", "ship", "clean")
BUNDLE_ROOT = "/tmp/imagebuild"  # where Packer uploads a bundle


class Target(StrEnum):
    PACKER = "packer"
    ROOTFS = "rootfs"
    ALL = "all"


# Packer >= 1.7 plugins of each builder, pinned (plugins.pkr.hcl)
PLUGINS = {
    Builder.QEMU: ("qemu", "1.1.0", "github.com/hashicorp/qemu"),
    Builder.OPENSTACK: ("openstack", "1.1.2", "github.com/hashicorp/openstack"),
    Builder.AMAZON_EBS: ("amazon", "1.3.3", "github.com/hashicorp/amazon"),
    Builder.DOCKER: ("docker", "1.1.0", "github.com/hashicorp/docker"),
}
# Packages whose versions image.json reports: the GPU/fabric/scheduler stack of a node (first match wins)
STACK = {
    "driver": ("nvidia-driver", "nvidia-open", "nvidia-kernel-dkms", "kmod-nvidia-open-dkms", "cuda-drivers"),
    "cuda": ("nvidia-cuda-toolkit", "cuda-toolkit", "cuda-runtime", "cuda-cudart", "libcudart12"),
    "ofed": ("doca-ofed", "mlnx-ofed-kernel-utils", "rdma-core"),
    "slurm": ("slurmd", "slurm-slurmd", "slurmctld", "slurm"),
}
_QEMU_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


# -- templates: one environment, strict, with the quoting filters -------------------------------------------


def sh_quote(value: object) -> str:
    return shlex.quote(str(value))


def hcl_quote(value: object) -> str:
    """An HCL string literal that stays a literal: quotes and backslashes escaped, `${`/`%{` doubled."""
    s = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        raise ConfigError(f"{s!r}: control characters cannot go into a Packer template")
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${").replace("%{", "%%{")
    return f'"{s}"'


def _hcl_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(hcl_quote(v) for v in value) + "]"
    return hcl_quote(value)


def _hcl_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "number"
    if isinstance(value, tuple | list):
        return "list(string)"
    return "string"


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("imagebuild", "templates"), undefined=jinja2.StrictUndefined,
                          keep_trailing_newline=True, autoescape=False)
_ENV.filters["sh"] = sh_quote
_ENV.filters["hcl"] = hcl_quote
_ENV.filters["hcl_comment"] = lambda s: re.sub(r"[^A-Za-z0-9_.+-]", "_", str(s))


def render_template(name: str, **values: object) -> str:
    return _ENV.get_template(name).render(**values)


_ATTR = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_-]+) += (?P<value>.*)$")


def align_hcl(text: str) -> str:
    """Align the `=` of consecutive one-line attributes, as `packer fmt` does."""
    lines = text.splitlines()
    out: list[str] = []
    run: list[re.Match[str]] = []

    def flush() -> None:
        width = max((len(m["key"]) for m in run), default=0)
        out.extend(f"{m['indent']}{m['key'].ljust(width)} = {m['value']}" for m in run)
        run.clear()

    for line in lines:
        m = _ATTR.match(line)
        if m and not m["value"].endswith("{") and (not run or run[0]["indent"] == m["indent"]):
            run.append(m)
            continue
        flush()
        if m and not m["value"].endswith("{"):
            run.append(m)
        else:
            out.append(line)
    flush()
    return "\n".join(out) + "\n"


# -- what a bundle is made of ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleRepo:
    """A repo of the lock as the image sees it: credential-free URL(s) on the locked snapshot, its key."""

    name: str
    urls: tuple[tuple[str, str], ...]  # (suite, url) for apt; (("", url),) for dnf
    key: Path | None
    auth_var: str | None  # IMAGEBUILD_AUTH_<NAME> when the config's URL carries credentials
    config: AptRepo | RpmRepo


def auth_var(repo: str) -> str:
    return "IMAGEBUILD_AUTH_" + re.sub(r"[^A-Z0-9]", "_", repo.upper())


def packer_var(repo: str) -> str:
    return "repo_auth_" + re.sub(r"[^a-z0-9]", "_", repo.lower())


def _absolute(config: Config, url: str) -> str:
    return f"file://{config.root}/{url[len('file:'):]}" if url.startswith("file:") and not url.startswith(
        "file://") else url


def _has_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def bundle_repos(config: Config, lock: Lock, distro: Distro, arch: str) -> list[BundleRepo]:
    locked: dict[tuple[str, str], LockedRepo] = {
        (r.name, r.suite): r for r in lock.repos if r.distro == distro.name and r.arch == arch}
    out = []
    for repo in distro.all_repos:
        suites = ("./",) if isinstance(repo, AptRepo) and repo.flat else (
            repo.suites if isinstance(repo, AptRepo) else ("",))
        urls = []
        for suite in suites:
            lr = locked.get((repo.name, suite))
            if lr is None:
                raise DriftError(f"{LOCK_NAME} has no entry for repo {repo.name!r} {suite} ({distro.name}/{arch})",
                                 hint="run `imagebuild lock`")
            urls.append((suite, _absolute(config, lr.url)))
        key = repo.signed_by if isinstance(repo, AptRepo) else repo.gpgkey
        out.append(BundleRepo(repo.name, tuple(urls), key,
                              auth_var(repo.name) if _has_credentials(repo.url) else None, repo))
    return out


def _auth_machine(url: str) -> str:
    """apt auth.conf's `machine` of a repo URL: with its scheme, which apt needs before it sends a password
    over plain http."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path.rstrip('/')}"


def _apt_sources(repos: list[BundleRepo], keys_dir: str, *, deb822: bool, enabled: bool = True) -> str:
    """build-time one-line sources (keys under `keys_dir`) or the deb822 file the image ships."""
    lines = []
    for r in repos:
        assert isinstance(r.config, AptRepo)
        opts = f"signed-by={keys_dir}/{r.name}.gpg" if r.key is not None else "trusted=yes"
        comps = "" if r.config.flat else " " + " ".join(r.config.components)
        if not deb822:
            for suite, url in r.urls:
                lines.append(f"deb [{opts} check-valid-until=no] {url} {suite}{comps}")
            continue
        url = r.urls[0][1]
        stanza = [f"# {r.name}: the snapshot it was locked at", "Types: deb", f"URIs: {url}",
                  f"Suites: {' '.join(s for s, _ in r.urls)}"]
        if not r.config.flat:
            stanza.append(f"Components: {' '.join(r.config.components)}")
        stanza += [f"Signed-By: {keys_dir}/{r.name}.gpg" if r.key is not None else "Trusted: yes",
                   "Check-Valid-Until: no"]
        if not enabled:
            stanza.append("Enabled: no")
        lines.append("\n".join(stanza) + "\n")
    return "\n".join(lines) + ("" if deb822 else "\n")


def _dnf_repo(r: BundleRepo, keys_dir: str, *, enabled: bool = True) -> str:
    assert isinstance(r.config, RpmRepo)
    c = r.config
    lines = [f"[{r.name}]", f"name={r.name} (imagebuild snapshot)", f"baseurl={r.urls[0][1]}",
             f"enabled={1 if enabled else 0}", f"gpgcheck={1 if c.gpgcheck else 0}",
             f"repo_gpgcheck={1 if c.repo_gpgcheck else 0}", f"priority={c.priority}", f"cost={c.cost}"]
    if r.key is not None:
        lines.append(f"gpgkey=file://{keys_dir}/{r.name}.asc")
    if c.module_hotfixes:
        lines.append("module_hotfixes=1")
    if c.exclude:
        lines.append("excludepkgs=" + " ".join(c.exclude))
    if c.includepkgs:
        lines.append("includepkgs=" + " ".join(c.includepkgs))
    return "\n".join(lines) + "\n"


def _dnf_conf(distro: Distro) -> str:
    return "\n".join([
        "[main]", "reposdir=@BUILD@/repos.d", "cachedir=@BUILD@/cache", "keepcache=0", "gpgcheck=1", "best=True",
        "installonly_limit=3", f"install_weak_deps={distro.recommends}", "skip_if_unavailable=False",
        # an empty installroot has no os-release to read the platform from (RHEL-likes: platform:elN)
        f"module_platform_id=platform:el{distro.releasever.split('.')[0]}",
        "excludepkgs=" + " ".join(distro.exclude) if distro.exclude else "# no excludes", "",
    ])


def _pins(target: LockedTarget, family: Family) -> list[str]:
    """What the install names: every package the transaction adds or changes (apt also removes)."""
    if family is Family.RPM:
        return [f"{p.name}-{p.version}.{p.arch}" for p in sorted(target.packages, key=lambda p: (p.name, p.arch))
                if p.repo != "base"]
    pins = []
    for p in sorted(target.packages, key=lambda p: (p.name, p.arch)):
        if p.repo == "base":
            continue
        qual = f":{p.arch}" if p.arch not in ("all", target.arch) else ""
        pins.append(f"{p.name}{qual}={p.version}")
    return pins + [f"{name}-" for name in target.removed]


def _stack(target: LockedTarget) -> dict[str, str | None]:
    by_name = {p.name: p.version for p in target.packages}
    out: dict[str, str | None] = {}
    for what, names in STACK.items():
        out[what] = next((by_name[n] for n in names if n in by_name), None)
        if out[what] is None:  # versioned names: cuda-toolkit-12-6, …
            out[what] = next((v for n, v in sorted(by_name.items()) for prefix in names if n.startswith(prefix + "-")
                              and n[len(prefix) + 1:][:1].isdigit()), None)
    kernels = sorted(v for n, v in by_name.items() if n == "kernel-core" or re.match(r"^linux-image-\d", n))
    out["kernel"] = kernels[-1] if kernels else None
    return out


def lock_digest(config: Config) -> str:
    return hashlib.sha256((config.root / LOCK_NAME).read_bytes()).hexdigest()


def fresh_lock(config: Config) -> Lock:
    """The project's lock, if it is current for the config; bake/verify never re-resolve."""
    from imagebuild import app

    problems = app.check(config)
    if problems:
        raise DriftError(f"{LOCK_NAME} is missing or stale: {problems[0]}",
                         hint="run `imagebuild lock` (bake, verify and sbom read the lock, they never resolve)")
    return read_lock(config.root / LOCK_NAME)


def _bom_text(target: LockedTarget) -> str:
    from imagebuild import app

    return render_bom(target.bom(), app.bom_header(target))


def render_bundle(config: Config, lock: Lock, digest: str, role: Role, target: LockedTarget) -> dict[str, bytes]:
    """The files of `packer/<role>/<arch>/`, relative to it."""
    distro = config.distros[role.distro]
    image = role.image or ImageSpec(Builder.DOCKER, "none")
    repos = bundle_repos(config, lock, distro, target.arch)
    family = distro.family
    files: dict[str, bytes] = {}
    setup_pin = next((p for p in _pins(target, family) if p.startswith("setup-")), "setup")
    files["provision.sh"] = render_template(
        "provision.sh.j2", role=role.name, arch=target.arch, family=family.value, lock_short=digest[:12],
        phases=PHASES, hold=image.hold, ship_repos=image.ship_repos.value, releasever=distro.releasever,
        setup_pin=setup_pin).encode()
    files["packages"] = ("\n".join(_pins(target, family)) + "\n").encode()
    files["bom"] = _bom_text(target).encode()
    files["users"] = "".join(
        f"{u.name} {u.uid} {u.gid} {u.home} {u.shell} {','.join(u.groups) or '-'}\n" for u in config.users).encode()
    snapshots = {r.name: r.snapshot for r in lock.repos if r.distro == distro.name and r.arch == target.arch}
    info = {"role": role.name, "arch": target.arch, "distro": distro.name, "family": family.value,
            "lock_digest": digest, "snapshots": dict(sorted(snapshots.items())), **_stack(target)}
    files["image.json"] = (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()
    files["repos/auth"] = "".join(
        f"{r.auth_var} {_auth_machine(r.urls[0][1]) if family is Family.DEB else r.name}\n"
        for r in repos if r.auth_var).encode()
    for r in repos:
        if r.key is not None:
            try:
                files[f"keys/{r.name}.{'gpg' if family is Family.DEB else 'asc'}"] = r.key.read_bytes()
            except OSError as e:
                raise ConfigError(f"repo {r.name!r}: cannot read its key {r.key}: {e.strerror}") from None
    ship = image.ship_repos
    if family is Family.DEB:
        files["repos/sources.list.in"] = _apt_sources(repos, "@BUNDLE@/keys", deb822=False).encode()
        if ship is not ShipRepos.NONE:
            files["ship/imagebuild.sources"] = _apt_sources(
                repos, "/etc/apt/keyrings/imagebuild-", deb822=True, enabled=ship is ShipRepos.SNAPSHOT).replace(
                "imagebuild-/", "imagebuild-").encode()
    else:
        for r in repos:
            files[f"repos/{r.name}.repo"] = _dnf_repo(r, "@BUNDLE@/keys").encode()
        files["repos/dnf.conf.in"] = _dnf_conf(distro).encode()
        files["repos/modules"] = "".join(f"{m}\n" for m in distro.modules).encode()
        if ship is not ShipRepos.NONE:
            files["ship/imagebuild.repo"] = "\n".join(
                _dnf_repo(r, "/etc/pki/rpm-gpg/imagebuild-", enabled=ship is ShipRepos.SNAPSHOT) for r in repos
            ).replace("imagebuild-/", "imagebuild-").encode()
    return files


# -- Packer ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    name: str
    type: str
    default: str
    sensitive: bool = False


_Attrs = list[tuple[str, str]]


def _source_settings(role: Role, image: ImageSpec, arch: str, builder: Builder,
                     variables: dict[str, _Var]) -> tuple[_Attrs, list[tuple[str, _Attrs]]]:
    def var(name: str, value: object) -> str:
        variables.setdefault(name, _Var(name, _hcl_type(value), _hcl_value(value)))
        return f"var.{name}"

    settings = dict(image.settings)
    s: _Attrs = []
    blocks: list[tuple[str, _Attrs]] = []
    source = image.source.replace("{arch}", arch)
    if builder is Builder.QEMU:
        checksum = (image.source_checksum or "none").replace("{arch}", arch)
        s += [("iso_url", var(f"source_{arch}", source)),
              ("iso_checksum", var(f"source_checksum_{arch}", checksum)),
              ("disk_image", "true"), ("vm_name", hcl_quote(f"{role.name}-{arch}.{settings.get('format', 'qcow2')}")),
              ("output_directory", hcl_quote(f"output-{role.name}-{arch}")),
              ("qemu_binary", hcl_quote(f"qemu-system-{_QEMU_ARCH.get(arch, arch)}")),
              ("shutdown_command", hcl_quote("sudo shutdown -P now"))]
        if _QEMU_ARCH.get(arch) == "aarch64":
            s.append(("machine_type", hcl_quote("virt")))
        defaults: dict[str, object] = {"ssh_username": "debian", "disk_size": "20G", "format": "qcow2",
                                       "headless": True, "memory": 4096, "cpus": 2}
    elif builder is Builder.OPENSTACK:
        s += [("source_image_name", var(f"source_{arch}", source)),
              ("image_name", hcl_quote(f"{role.name}-{arch}"))]
        defaults = {"ssh_username": "debian"}
    elif builder is Builder.AMAZON_EBS:
        s += [("ami_name", hcl_quote(f"{role.name}-{arch}"))]
        blocks.append(("source_ami_filter", [
            ("filters", "{ name = " + var(f"source_{arch}", source) + ", architecture = "
             + hcl_quote(_QEMU_ARCH.get(arch, arch).replace("aarch64", "arm64")) + " }"),
            ("owners", var("owners", settings.pop("owners", ("amazon",)))),
            ("most_recent", "true")]))
        defaults = {"ssh_username": "admin"}
    else:
        s += [("image", var(f"source_{arch}", source)),
              # role names and arches are validated names: safe inside the interpolation
              ("export_path", f'"${{path.root}}/../{IMAGES_DIR}/{role.name}-{arch}.packer.tar"')]
        defaults = {}
    for key, value in sorted({**defaults, **settings}.items()):
        s.append((key, var(key, value)))
    return s, blocks


def render_packer(config: Config, lock: Lock, digest: str, role: Role, arches: list[str],
                  repos: list[BundleRepo]) -> str:
    image = role.image
    assert image is not None
    variables: dict[str, _Var] = {}
    sources = []
    for arch in arches:
        settings, blocks = _source_settings(role, image, arch, image.builder, variables)
        sources.append({"arch": arch, "settings": settings, "blocks": blocks})
    env = ['"LC_ALL=C"', '"DEBIAN_FRONTEND=noninteractive"']
    for r in repos:
        if r.auth_var:
            name = packer_var(r.name)
            variables[name] = _Var(name, "string", '""', sensitive=True)
            env.append(f'"{r.auth_var}=${{var.{name}}}"')
    execute = ("chmod +x {{ .Path }}; {{ .Vars }} sh -eu {{ .Path }}" if image.builder is Builder.DOCKER
               else "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} sh -eu {{ .Path }}")
    text = render_template("role.pkr.hcl.j2", role=role.name, lock_digest=digest, builder=image.builder.value,
                           variables=sorted(variables.values(), key=lambda v: v.name), sources=sources, env=env,
                           execute_command=execute)
    return align_hcl(text)


def render_plugins(builders: set[Builder]) -> str:
    plugins = [{"name": n, "version": f">= {v}, < {int(v.split('.')[0]) + 1}.0.0", "source": s}
               for b, (n, v, s) in sorted(PLUGINS.items()) if b in builders]
    return align_hcl(render_template("plugins.pkr.hcl.j2", plugins=plugins))


# -- bake ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BakeResult:
    written: tuple[str, ...]
    unchanged: int
    built: tuple[str, ...]


def _targets(config: Config, lock: Lock, roles: tuple[str, ...], arch: str | None) -> list[tuple[Role, LockedTarget]]:
    for r in roles:
        if r not in config.roles:
            raise ConfigError(f"unknown role {r!r}", hint=f"roles: {', '.join(sorted(config.roles))}")
    out = []
    for name in roles or tuple(sorted(config.roles)):
        role = config.roles[name]
        distro = config.distros[role.distro]
        if arch is not None and arch not in distro.arches:
            if roles:
                raise ConfigError(f"role {name!r}: --arch {arch} is not an arch of distro {distro.name!r}",
                                  hint=f"arches: {', '.join(distro.arches)}")
            continue
        for a in (arch,) if arch else distro.arches:
            t = lock.target(name, a)
            if t is None:
                raise DriftError(f"{LOCK_NAME} has no {name}-{a}", hint="run `imagebuild lock`")
            out.append((role, t))
    return out


def bake(config: Config, roles: tuple[str, ...], arch: str | None, target: Target, build: bool,
         out: Path | None) -> BakeResult:
    lock = fresh_lock(config)
    digest = lock_digest(config)
    root = out or config.root
    pairs = _targets(config, lock, roles, arch)
    files: dict[str, bytes] = {}
    for role, t in pairs:
        for rel, data in render_bundle(config, lock, digest, role, t).items():
            files[f"{PACKER_DIR}/{role.name}/{t.arch}/{rel}"] = data
    if target in (Target.PACKER, Target.ALL):
        imaged = {role.name: role for role, _ in pairs if role.image is not None}
        if not imaged and roles:
            raise ConfigError(f"role {roles[0]!r} has no [roles.{roles[0]}.image] table: nothing for Packer to build",
                              hint="add builder and source to it, or use --target rootfs")
        for name, role in sorted(imaged.items()):
            arches = [t.arch for r, t in pairs if r.name == name]
            distro = config.distros[role.distro]
            repos = bundle_repos(config, lock, distro, arches[0])
            files[f"{PACKER_DIR}/{name}.pkr.hcl"] = render_packer(config, lock, digest, role, arches, repos).encode()
        if imaged:
            files[f"{PACKER_DIR}/plugins.pkr.hcl"] = render_plugins(
                {r.image.builder for r in imaged.values() if r.image}).encode()
    written = tuple(rel for rel, data in sorted(files.items()) if write_atomic(root / rel, data))
    built: list[str] = []
    if build:
        if target in (Target.ROOTFS, Target.ALL):
            for role, t in pairs:
                built.append(build_rootfs(config, role, t, root))
        if target in (Target.PACKER, Target.ALL):
            for name in sorted({role.name for role, _ in pairs if role.image is not None}):
                built.append(build_packer(root, config.roles[name]))
    return BakeResult(written, len(files) - len(written), tuple(built))


# -- builds -------------------------------------------------------------------------------------------------


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} is not installed", hint=f"apt-get install {package}")
    return path


def source_date_epoch(lock: Lock) -> int:
    """A build's timestamp: SOURCE_DATE_EPOCH, else the newest Release/repomd date the lock names."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    dates = []
    for r in lock.repos:
        try:
            dates.append(int(email.utils.parsedate_to_datetime(r.date).timestamp()))
        except (TypeError, ValueError):
            continue
    return max(dates, default=0)


def _run(cmd: list[str], what: str, env: dict[str, str], cwd: Path | None = None) -> None:
    log.info(f"{what}: {' '.join(shlex.quote(c) for c in cmd[:3])} …")
    res = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         check=False)
    if res.returncode != 0:
        # the tool's own errors and warnings first (apt's come long before its last lines), then its tail
        lines = res.stdout.splitlines()
        errors = [ln for ln in lines[:-25] if re.match(r"^(E|W|Err:\d+|Error|error):? ", ln)]
        tail = "\n".join([*errors[-15:], *lines[-25:]])
        raise RepositoryError(f"{what} failed (exit {res.returncode}):\n{tail}",
                              hint="the lines above are the build's own; -v shows the steps")
    log.debug(res.stdout)


def build_rootfs(config: Config, role: Role, target: LockedTarget, root: Path) -> str:
    """`images/<role>-<arch>.tar` without Packer, from the bundle: mmdebstrap (deb) or dnf --installroot (rpm)."""
    lock = read_lock(config.root / LOCK_NAME)
    bundle = root / PACKER_DIR / role.name / target.arch
    out = root / IMAGES_DIR / f"{target.key}.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "SOURCE_DATE_EPOCH": str(source_date_epoch(lock))}
    distro = config.distros[role.distro]
    with tempfile.TemporaryDirectory(prefix=".rootfs-", dir=out.parent) as tmp:
        partial = Path(tmp) / out.name
        if distro.family is Family.DEB:
            _mmdebstrap(bundle, target, partial, env)
        else:
            _dnf_rootfs(bundle, Path(tmp) / "root", partial, env)
        os.replace(partial, out)
    return str(out.relative_to(root))


def _mmdebstrap(bundle: Path, target: LockedTarget, out: Path, env: dict[str, str]) -> None:
    mm = _tool("mmdebstrap", "mmdebstrap")
    # apt verifies and downloads as its sandbox user (_apt): the keyrings go where it can read them, not into
    # a project that may sit in a private home or tmp directory
    with tempfile.TemporaryDirectory(prefix="imagebuild-keys-") as keys:
        os.chmod(keys, 0o755)
        for key in (bundle / "keys").glob("*"):
            shutil.copyfile(key, Path(keys) / key.name)
            os.chmod(Path(keys) / key.name, 0o644)
        sources = out.parent / "sources.list"
        sources.write_text((bundle / "repos/sources.list.in").read_text().replace("@BUNDLE@/keys", keys))
        _mmdebstrap_run(mm, bundle, target, out, sources, env)


def _mmdebstrap_run(mm: str, bundle: Path, target: LockedTarget, out: Path, sources: Path,
                    env: dict[str, str]) -> None:
    auth = (bundle / "repos/auth").read_text().split()
    netrc = out.parent / "auth.conf.d"
    netrc.mkdir(mode=0o700)
    for var, machine in zip(auth[::2], auth[1::2], strict=True):
        value = env.get(var, "")
        if ":" not in value:
            raise ConfigError(f"{machine} needs credentials: set {var}=user:password in the environment")
        user, _, password = value.partition(":")
        fd = os.open(netrc / "imagebuild.conf", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"machine {machine} login {user} password {password}\n")
    # every locked package pinned: the essential variant installs the Essential set first (the essential hook then
    # creates the fixed accounts), then these in one apt transaction; verify proves nothing else came in
    include = [f"{p.name}{':' + p.arch if p.arch not in ('all', target.arch) else ''}={p.version}"
               for p in sorted(target.packages, key=lambda p: (p.name, p.arch))]
    script = shlex.quote(str(bundle / "provision.sh"))
    suite = next((line.split()[4] for line in sources.read_text().splitlines() if line.startswith("deb ")), "stable")
    _run([mm, "--mode=root", "--variant=essential", f"--architectures={target.arch}", "--format=tar",
          "--include=" + ",".join(include),
          "--aptopt=Acquire::Check-Valid-Until \"false\"", "--aptopt=Acquire::Languages \"none\"",
          f"--aptopt=Dir::Etc::netrcparts \"{netrc}\"",
          f"--essential-hook=sh {script} --root \"$1\" users",
          "--customize-hook=rm -f \"$1/etc/apt/sources.list.d/0000sources.list\" "
          "\"$1/etc/apt/apt.conf.d/99mmdebstrap\"",
          f"--customize-hook=sh {script} --root \"$1\" hold verify ship clean",
          suite, str(out), str(sources)], f"mmdebstrap {target.key}", env)


def _dnf_rootfs(bundle: Path, root: Path, out: Path, env: dict[str, str]) -> None:
    _tool("dnf", "dnf")
    _tool("rpm", "rpm")
    root.mkdir()
    _run(["sh", str(bundle / "provision.sh"), "--root", str(root)], "provision.sh --root", env)
    tar = _tool("tar", "tar")
    _run([tar, "--sort=name", f"--mtime=@{env['SOURCE_DATE_EPOCH']}", "--clamp-mtime", "--numeric-owner",
          "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime", "-C", str(root), "-cf", str(out),
          "."], "tar", env)


PACKER_MIN = (1, 6)


def packer_version(packer: str) -> tuple[int, ...]:
    res = subprocess.run([packer, "version"], capture_output=True, text=True, check=False,
                         env={**os.environ, "CHECKPOINT_DISABLE": "1", "LC_ALL": "C"})
    m = re.search(r"Packer v(\d+)\.(\d+)\.(\d+)", res.stdout)
    if res.returncode != 0 or m is None:
        raise ConfigError(f"{packer} version: not a Packer binary ({(res.stdout + res.stderr).strip()[:200]!r})",
                          hint="apt-get install packer")
    return tuple(int(x) for x in m.groups())


def _docker_shim(env: dict[str, str], work: Path) -> None:
    """Without a Docker engine, Packer's docker builder talks to podman through a `docker` shim on PATH."""
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker is not None and subprocess.run([docker, "info"], capture_output=True, check=False,
                                             timeout=30).returncode == 0:
        return
    _tool("podman", "podman")
    from importlib.resources import files

    shim = work / "docker"
    shim.write_bytes(files("imagebuild").joinpath("templates/docker-podman-shim").read_bytes())
    shim.chmod(0o755)
    env["PATH"] = f"{work}{os.pathsep}{env.get('PATH', '')}"
    log.info("no Docker engine: Packer's docker builder runs on podman (IMAGEBUILD_PODMAN_ROOT)")


def build_packer(root: Path, role: Role) -> str:
    """`packer build` of the role's template. The binary is called directly: packer-py passes neither an
    environment (CHECKPOINT_DISABLE, PACKER_TMP_DIR, the podman shim's PATH) nor a working directory."""
    packer = _tool("packer", "packer")
    version = packer_version(packer)
    if version[:2] < PACKER_MIN:
        raise ConfigError(f"Packer {'.'.join(map(str, version))} is too old: templates need >= 1.6",
                          hint="apt-get install packer (Debian 12: 1.6.6), or HashiCorp's packer >= 1.7")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "LC_ALL": "C"}
    with tempfile.TemporaryDirectory(prefix="imagebuild-packer-") as tmp:
        env.setdefault("PACKER_TMP_DIR", str(Path(tmp) / "packer"))
        Path(env["PACKER_TMP_DIR"]).mkdir(parents=True, exist_ok=True)
        if role.image is not None and role.image.builder is Builder.DOCKER:
            _docker_shim(env, Path(tmp))
        (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        _run([packer, "build", "-color=false", str(root / PACKER_DIR / f"{role.name}.pkr.hcl")],
             f"packer build {role.name}", env, cwd=root)
    return f"{PACKER_DIR}/manifest-{role.name}.json"
