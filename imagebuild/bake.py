"""`imagebuild bake`: node images from the lock — provisioning bundles, Packer templates, root filesystems.

Everything is rendered from the lock (never re-resolved) plus the config's image settings: a stale lock is
refused. A bundle (`packer/<role>/<arch>/`) is one POSIX script with its data; the very same script runs in a
Packer build, a container build and, with `--root`, against a root filesystem being built. Credentials never
reach a rendered file: the script takes them from the environment (`IMAGEBUILD_AUTH_<REPO>`), Packer from
`sensitive` variables fed by `PKR_VAR_…`.

What speaks a package manager's language (the install's pins, the repo files, the script's install/hold/query
commands, the root filesystem build) is the family's backend, `family.backend()`: apt/render.py, rpm/render.py.
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
from imagebuild.config import Builder, Config, Distro, ImageSpec, Role
from imagebuild.errors import ConfigError, DriftError
from imagebuild.family import BundleRepo, backend, find_tool, run_tool
from imagebuild.fetch import redact
from imagebuild.fsutil import write_atomic
from imagebuild.lockfile import LOCK_NAME, Lock, LockedRepo, LockedTarget, read_lock

PACKER_DIR = "packer"
IMAGES_DIR = "images"
PHASES = ("users", "repos", "install", "pip", "hold", "verify", "ship", "clean")
BUNDLE_ROOT = "/tmp/imagebuild"  # where Packer uploads a bundle


class Target(StrEnum):
    PACKER = "packer"
    ROOTFS = "rootfs"
    DOCKER = "docker"
    APPTAINER = "apptainer"
    ALL = "all"  # everything renderable; --build: root filesystems, Packer and the Docker containers


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


def dq(value: object) -> str:
    """A double-quoted value for a Dockerfile ENV/LABEL and a shell `export`, refused if it could be code."""
    s = str(value)
    if any(c in s for c in '"\\$`\n\r'):
        raise ConfigError(f"{s!r}: quotes, backslashes, $ and backticks cannot go into a container definition")
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


_ENV.filters["dq"] = lambda v: dq(v)


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


def auth_var(repo: str) -> str:
    return "IMAGEBUILD_AUTH_" + re.sub(r"[^A-Z0-9]", "_", repo.upper())


def packer_var(repo: str) -> str:
    return "repo_auth_" + re.sub(r"[^a-z0-9]", "_", repo.lower())


def _has_credentials(url: str) -> bool:
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def bundle_repos(config: Config, lock: Lock, distro: Distro, arch: str) -> list[BundleRepo]:
    from imagebuild import app

    locked: dict[tuple[str, str], LockedRepo] = {
        (r.name, r.suite): r for r in lock.repos if r.distro == distro.name and r.arch == arch}
    pm = backend(distro.family)
    out = []
    for repo in distro.all_repos:
        urls = []
        snapshot = None
        for suite in pm.suites(repo):
            lr = locked.get((repo.name, suite))
            if lr is None:
                raise DriftError(f"{LOCK_NAME} has no entry for repo {repo.name!r} {suite} ({distro.name}/{arch})",
                                 hint="run `imagebuild lock`")
            urls.append((suite, app.url_from_lock(config, lr.url)))
            snapshot = lr.snapshot
        out.append(BundleRepo(repo.name, tuple(urls), pm.signing_key(repo),
                              auth_var(repo.name) if _has_credentials(repo.url) else None, repo, snapshot))
    return out


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
    pm = backend(distro.family)
    image = role.image or ImageSpec(Builder.DOCKER, "none")
    repos = bundle_repos(config, lock, distro, target.arch)
    pins = pm.pins(target)
    files: dict[str, bytes] = {}
    files["provision.sh"] = render_template(
        pm.script, role=role.name, arch=target.arch, family=distro.family.value, lock_short=digest[:12],
        phases=PHASES, hold=image.hold, ship_repos=image.ship_repos.value,
        **pm.script_values(distro, pins)).encode()
    files["packages"] = ("\n".join(pins) + "\n").encode()
    files["bom"] = _bom_text(target).encode()
    files["users"] = "".join(
        f"{u.name} {u.uid} {u.gid} {u.home} {u.shell} {','.join(u.groups) or '-'}\n" for u in config.users).encode()
    snapshots = {r.name: r.snapshot for r in lock.repos if r.distro == distro.name and r.arch == target.arch}
    info = {"role": role.name, "arch": target.arch, "distro": distro.name, "family": distro.family.value,
            **({"container": True} if target.container else {}),
            "lock_digest": digest, "snapshots": dict(sorted(snapshots.items())), **_stack(target)}
    files["image.json"] = (json.dumps(info, indent=1, sort_keys=True) + "\n").encode()
    files["repos/auth"] = "".join(f"{r.auth_var} {pm.auth_target(r)}\n" for r in repos if r.auth_var).encode()
    for r in repos:
        if r.key is not None:
            try:
                files[f"keys/{pm.key_name(r.name)}"] = r.key.read_bytes()
            except OSError as e:
                raise ConfigError(f"repo {r.name!r}: cannot read its key {r.key}: {e.strerror}") from None
    for rel, text in pm.repo_files(repos, distro, image.ship_repos).items():
        files[rel] = text.encode()
    files.update(_sboms(config, lock, digest, target))
    if target.stubs:
        from imagebuild.bake_containers import stub_files

        files.update(stub_files(target))
    if target.pip:
        files["pip/requirements.txt"] = "".join(p.requirement() + "\n" for p in target.pip).encode()
        if role.pip_index:  # pip reads the simple index beside the JSON API hashin read (PyPI's layout)
            files["pip/index"] = (redact(role.pip_index).rstrip("/") + "/simple/\n").encode()
    return files


def _sboms(config: Config, lock: Lock, digest: str, target: LockedTarget) -> dict[str, bytes]:
    """`sbom.cdx.json` and `sbom.spdx.json` of the image (the ship phase puts them in /etc/imagebuild/); none, with a
    warning, for a distro whose operating system imagebuild cannot name."""
    from imagebuild import sbom
    from imagebuild.purl import os_release

    try:
        os_release(config.distros[target.distro])
    except ConfigError as e:
        log.warn(f"{target.key}: no SBOM in the image: {e.message} ({e.hint})")
        return {}
    return {Path(sbom.image_path(fmt)).name: sbom.render_sbom(config, lock, target, fmt, digest).encode()
            for fmt in sbom.FORMATS}


# -- Packer ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    """A variable of a generated Packer template."""

    name: str
    type: str
    default: str
    sensitive: bool = False


def _secret(name: str) -> _Var:
    """A Packer variable only the environment fills (PKR_VAR_<name>): sensitive, empty by default."""
    return _Var(name, "string", '""', sensitive=True)


_Attrs = list[tuple[str, str]]


def _source_settings(role: Role, image: ImageSpec, arch: str,
                     variables: dict[str, _Var]) -> tuple[_Attrs, list[tuple[str, _Attrs]]]:
    def var(name: str, value: object) -> str:
        variables.setdefault(name, _Var(name, _hcl_type(value), _hcl_value(value)))
        return f"var.{name}"

    builder = image.builder
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
        # Packer's way into a cloud image: a seed ISO of the project's files, a password only from the environment
        variables.setdefault("ssh_password", _secret("ssh_password"))
        s.append(("ssh_password", "var.ssh_password"))
        if "cd_files" in settings:
            files = var("cd_files", settings.pop("cd_files"))
            s.append(("cd_files", f'[for f in {files} : "${{path.root}}/../${{f}}"]'))
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


def render_packer(digest: str, role: Role, arches: list[str], repos: list[BundleRepo]) -> str:
    image = role.image
    assert image is not None
    variables: dict[str, _Var] = {}
    sources = []
    for arch in arches:
        settings, blocks = _source_settings(role, image, arch, variables)
        sources.append({"arch": arch, "settings": settings, "blocks": blocks})
    env = ['"LC_ALL=C"', '"DEBIAN_FRONTEND=noninteractive"']
    for r in repos:
        if r.auth_var:
            name = packer_var(r.name)
            variables[name] = _secret(name)
            env.append(f'"{r.auth_var}=${{var.{name}}}"')
    execute = ("chmod +x {{ .Path }}; {{ .Vars }} sh -eu {{ .Path }}" if image.builder is Builder.DOCKER
               else "chmod +x {{ .Path }}; sudo -E env {{ .Vars }} sh -eu {{ .Path }}")
    text = render_template("role.pkr.hcl.j2", role=role.name, lock_digest=digest, builder=image.builder.value,
                           variables=sorted(variables.values(), key=lambda v: v.name), sources=sources, env=env,
                           execute_command=execute, bundle_root=BUNDLE_ROOT)
    return align_hcl(text)


def render_plugins(builders: set[Builder]) -> str:
    plugins = [{"name": n, "version": f">= {v}, < {int(v.split('.')[0]) + 1}.0.0", "source": s}
               for b, (n, v, s) in sorted(PLUGINS.items()) if b in builders]
    return align_hcl(render_template("plugins.pkr.hcl.j2", plugins=plugins))


# -- bake ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BakeResult:
    """What `bake` did: the files it wrote, how many it left as they were, the images it built."""

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
    from imagebuild import bake_containers as bc

    lock = fresh_lock(config)
    digest = lock_digest(config)
    root = out or config.root
    pairs = _targets(config, lock, roles, arch)
    files: dict[str, bytes] = {}
    nodes = target in (Target.PACKER, Target.ROOTFS, Target.ALL)
    if nodes:
        for role, t in pairs:
            for rel, data in render_bundle(config, lock, digest, role, t).items():
                files[f"{PACKER_DIR}/{role.name}/{t.arch}/{rel}"] = data
    if target in (Target.PACKER, Target.ALL):
        imaged = {role.name: role for role, _ in pairs if role.image is not None}
        if not imaged and not roles and target is Target.PACKER:
            log.warn("no role has a [roles.R.image] table: only the provisioning bundles were rendered")
        if not imaged and roles and target is Target.PACKER:
            raise ConfigError(f"role {roles[0]!r} has no [roles.{roles[0]}.image] table: nothing for Packer to build",
                              hint="add builder and source to it, or use --target rootfs")
        for name, role in sorted(imaged.items()):
            arches = [t.arch for r, t in pairs if r.name == name]
            distro = config.distros[role.distro]
            repos = bundle_repos(config, lock, distro, arches[0])
            files[f"{PACKER_DIR}/{name}.pkr.hcl"] = render_packer(digest, role, arches, repos).encode()
        if imaged:
            files[f"{PACKER_DIR}/plugins.pkr.hcl"] = render_plugins(
                {r.image.builder for r in imaged.values() if r.image}).encode()
    containers: list[tuple[Role, LockedTarget]] = []
    if target in (Target.DOCKER, Target.APPTAINER, Target.ALL):
        containers = bc.container_targets(lock, pairs)
        if not containers and roles and target is not Target.ALL:
            raise ConfigError(f"role {roles[0]!r} has no [roles.{roles[0]}.container] table: no container to render",
                              hint="add one with base = \"rootfs\" or an image reference pinned by digest")
        if not containers and target is not Target.ALL:
            log.warn("no role has a [roles.R.container] table: nothing rendered")
        epoch = source_date_epoch(lock)
        for role, t in containers:
            for rel, data in render_bundle(config, lock, digest, role, t).items():
                files[f"{bc.CONTAINERS_DIR}/{role.name}/{t.arch}/{rel}"] = data
            files.update(bc.render_container(config, lock, digest, role, t, epoch))
    written = tuple(rel for rel, data in sorted(files.items()) if write_atomic(root / rel, data))
    built: list[str] = []
    if build:
        if target in (Target.ROOTFS, Target.ALL):
            for role, t in pairs:
                built.append(build_rootfs(config, lock, role, t, root))
        if target in (Target.PACKER, Target.ALL):
            for name in sorted({role.name for role, _ in pairs if role.image is not None}):
                built.append(build_packer(root, config.roles[name]))
        if target in (Target.DOCKER, Target.ALL):
            for role, t in containers:
                built.append(bc.build_docker(config, lock, role, t, root, source_date_epoch(lock)))
        if target is Target.APPTAINER:
            for role, t in containers:
                built.append(bc.build_apptainer(config, role, t, root))
    return BakeResult(written, len(files) - len(written), tuple(built))


# -- builds -------------------------------------------------------------------------------------------------


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


def build_rootfs(config: Config, lock: Lock, role: Role, target: LockedTarget, root: Path) -> str:
    """`images/<role>-<arch>.tar` without Packer, from the bundle, by the family's backend: mmdebstrap (deb) or
    dnf --installroot (rpm)."""
    bundle = root / PACKER_DIR / role.name / target.arch
    out = root / IMAGES_DIR / f"{target.key}.tar"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "SOURCE_DATE_EPOCH": str(source_date_epoch(lock))}
    with tempfile.TemporaryDirectory(prefix=".rootfs-", dir=out.parent) as tmp:
        partial = Path(tmp) / out.name
        backend(config.distros[role.distro].family).build_rootfs(bundle, target, partial, env)
        os.replace(partial, out)
    return str(out.relative_to(root))


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
    find_tool("podman", "podman")
    from imagebuild import PACKAGE_DIR

    shim = work / "docker"
    shim.write_bytes((PACKAGE_DIR / "templates/docker-podman-shim").read_bytes())
    shim.chmod(0o755)
    env["PATH"] = f"{work}{os.pathsep}{env.get('PATH', '')}"
    log.info("no Docker engine: Packer's docker builder runs on podman (IMAGEBUILD_PODMAN_ROOT)")


def build_packer(root: Path, role: Role) -> str:
    """`packer build` of the role's template. The binary is called directly: packer-py passes neither an
    environment (CHECKPOINT_DISABLE, PACKER_TMP_DIR, the podman shim's PATH) nor a working directory."""
    packer = find_tool("packer", "packer")
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
        run_tool([packer, "build", "-color=false", str(root / PACKER_DIR / f"{role.name}.pkr.hcl")],
             f"packer build {role.name}", env, cwd=root)
    return f"{PACKER_DIR}/manifest-{role.name}.json"
