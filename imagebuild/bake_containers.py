"""`imagebuild bake --target docker|apptainer`: a role's container from its `<role>-container` lock target.

Both definitions run the node image's provisioning bundle unchanged (rendered from the container target into
`containers/<role>/<arch>/`): a Dockerfile whose one `RUN` bind-mounts the bundle and takes credentials from a
build secret, and an Apptainer definition whose `%post` runs it (credentials from a file removed in `%post`).
ENV and labels are the same in both. The distro's first arch gets `Dockerfile` and `<role>.def`, every other arch
`Dockerfile.<arch>` and `<role>.<arch>.def`.

`--build` (docker): for base = "rootfs" the distro's base is built from the snapshot (mmdebstrap) and imported with
podman, then `buildah bud --isolation chroot` builds the Dockerfile and `buildah push` writes
`images/<role>-container-<arch>.oci.tar`, which is checked against the container BOM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from imagebuild.config import Config, ContainerSpec, Family, Role
from imagebuild.container import cuda_of, deb_stub, environment, stub_filename
from imagebuild.errors import ConfigError, DriftError
from imagebuild.family import backend, find_tool, run_tool
from imagebuild.lockfile import LOCK_NAME, STUB_REPO, Lock, LockedTarget

CONTAINERS_DIR = "containers"
AUTH_SECRET = "imagebuild-auth"
_QUERY = {Family.DEB: "dpkg-query -W -f '${Package} ${Version} ${Architecture}\\n'",
          Family.RPM: "rpm -qa --qf '%{NAME} %{EVR} %{ARCH}\\n' | grep -v '^gpg-pubkey '"}
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


def container_targets(lock: Lock, pairs: list[tuple[Role, LockedTarget]]) -> list[tuple[Role, LockedTarget]]:
    """The container targets of the (role, node target) pairs whose role declares a container."""
    out = []
    for role, node in pairs:
        if role.container is None:
            continue
        t = lock.target(role.name, node.arch, container=True)
        if t is None:
            raise DriftError(f"{LOCK_NAME} has no {role.name}-container-{node.arch}", hint="run `imagebuild lock`")
        out.append((role, t))
    return out


def file_names(config: Config, role: Role, arch: str) -> tuple[str, str]:
    """(Dockerfile, .def) names under containers/<role>/: plain for the distro's first arch."""
    if arch == config.distros[role.distro].arches[0]:
        return "Dockerfile", f"{role.name}.def"
    return f"Dockerfile.{arch}", f"{role.name}.{arch}.def"


def stub_files(target: LockedTarget) -> dict[str, bytes]:
    """The target's stub packages, regenerated from the lock and checked against the digests it records."""
    files = {}
    digests = {p.name: p.sha256 for p in target.packages if p.repo == STUB_REPO}
    for stub in target.stubs:
        data = deb_stub(stub)
        if hashlib.sha256(data).hexdigest() != digests.get(stub.name):
            raise DriftError(f"{target.key}: the stub {stub.name} this imagebuild generates differs from the one "
                             f"{LOCK_NAME} records", hint="run `imagebuild lock` with this version of imagebuild")
        files[stub_filename(stub)] = data
    return files


def base_image(spec: ContainerSpec, role: Role, arch: str) -> str:
    """What the Dockerfile's FROM names: the pinned reference, or the imported rootfs base."""
    return f"localhost/imagebuild/{role.name}-base:{arch}" if spec.rootfs else spec.base


def created(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels(lock: Lock, digest: str, role: Role, target: LockedTarget, node: LockedTarget | None,
           epoch: int) -> list[tuple[str, str]]:
    from imagebuild.bake import _stack

    snapshots = sorted({(r.name, r.snapshot) for r in lock.repos if r.distro == target.distro and r.arch == target.arch
                        and r.snapshot is not None})
    stack = _stack(node) if node is not None else {}
    cuda = cuda_of((p.name, p.version) for p in target.packages)
    bom = render_bom_text(target)
    out = [("org.opencontainers.image.created", created(epoch)),
           ("org.opencontainers.image.revision", digest),
           ("org.opencontainers.image.title", f"{role.name}-container"),
           ("org.opencontainers.image.description", f"userspace of the {role.name} node image, from snapshots.lock"),
           ("org.imagebuild.role", role.name), ("org.imagebuild.arch", target.arch),
           ("org.imagebuild.distro", target.distro),
           ("org.imagebuild.bom.sha256", hashlib.sha256(bom.encode()).hexdigest()),
           ("org.imagebuild.snapshots", ",".join(f"{n}={s}" for n, s in snapshots) or "none")]
    if cuda is not None:
        out.append(("org.imagebuild.cuda", cuda.version))
    if stack.get("driver"):
        out.append(("org.imagebuild.driver", str(stack["driver"])))
    return out


def render_bom_text(target: LockedTarget) -> str:
    from imagebuild.bake import _bom_text

    return _bom_text(target)


def render_container(config: Config, lock: Lock, digest: str, role: Role, target: LockedTarget,
                     epoch: int) -> dict[str, bytes]:
    """containers/<role>/: the Dockerfile and .def of one arch (the bundle is rendered by bake)."""
    from imagebuild.bake import bundle_repos, render_template

    spec = role.container
    assert spec is not None
    distro = config.distros[role.distro]
    family = Family(target.family)
    node = lock.target(role.name, target.arch)
    repos = bundle_repos(config, lock, distro, target.arch)
    auth = any(r.auth_var for r in repos)
    dockerfile, def_name = file_names(config, role, target.arch)
    env = environment(target)
    lab = labels(lock, digest, role, target, node, epoch)
    common = {"role": role.name, "arch": target.arch, "key": target.key, "lock_short": digest[:12], "auth": auth,
              "env": env, "labels": lab}
    base = base_image(spec, role, target.arch)
    if spec.rootfs:
        bootstrap, source = "oci-archive", f"../../images/{role.name}-container-base-{target.arch}.oci.tar"
    else:
        bootstrap, source = "docker", spec.base
    return {
        f"{CONTAINERS_DIR}/{role.name}/{dockerfile}": render_template(
            "Dockerfile.j2", base=base, dockerfile=dockerfile, **common).encode(),
        f"{CONTAINERS_DIR}/{role.name}/{def_name}": render_template(
            "apptainer.def.j2", bootstrap=bootstrap, source=source, def_name=def_name,
            cuda=any(k == "NVIDIA_REQUIRE_CUDA" for k, _ in env), query=_QUERY[family], **common).encode(),
    }


# -- --build ----------------------------------------------------------------------------------------------


def _storage(env: dict[str, str]) -> list[str]:
    """podman/buildah storage options: IMAGEBUILD_PODMAN_ROOT (as the Packer shim uses it), vfs."""
    root = env.get("IMAGEBUILD_PODMAN_ROOT")
    opts = ["--storage-driver", "vfs"]
    return [*opts, "--root", f"{root}/storage", "--runroot", f"{root}/run"] if root else opts


def build_docker(config: Config, lock: Lock, role: Role, target: LockedTarget, root: Path, epoch: int) -> str:
    """Build the container of one arch with buildah (the base imported with podman for "rootfs"), write its OCI
    archive and check what it holds against the container BOM."""
    from imagebuild import verify
    from imagebuild.app.containers import base_path
    from imagebuild.bake import IMAGES_DIR, auth_var, bundle_repos

    spec = role.container
    assert spec is not None
    buildah = find_tool("buildah", "buildah")
    distro = config.distros[role.distro]
    env = {**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": str(epoch)}
    storage = _storage(env)
    images = root / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    if spec.rootfs:
        _build_base(config, lock, role, target, root, env, storage, base_path(distro, spec, target.arch))
    out = images / f"{target.key}.oci.tar"
    tag = f"localhost/imagebuild/{role.name}-container:{target.arch}"
    dockerfile, _ = file_names(config, role, target.arch)
    repos = bundle_repos(config, lock, distro, target.arch)
    with tempfile.TemporaryDirectory(prefix=".container-", dir=images) as tmp:
        secret = Path(tmp) / "auth"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            for r in repos:
                if r.auth_var:
                    value = env.get(r.auth_var, "")
                    if ":" not in value:
                        raise ConfigError(f"repo {r.name!r} needs credentials: set {auth_var(r.name)}=user:password "
                                          "in the environment")
                    f.write(f"{r.auth_var}={value}\n")
        context = root / CONTAINERS_DIR / role.name
        run_tool([buildah, *storage, "bud", "--isolation", "chroot", "--pull=false", "--layers=false",
                  "--timestamp", str(epoch), "--arch", OCI_ARCH.get(target.arch, target.arch),
                  "--network", "host", "--ulimit", "nofile=1024:1024",
                  *(["--secret", f"id={AUTH_SECRET},src={secret}"] if any(r.auth_var for r in repos) else []),
                  "-f", str(context / dockerfile), "-t", tag, str(context)], f"buildah bud {target.key}", env)
        partial = Path(tmp) / out.name
        run_tool([buildah, *storage, "push", tag, f"oci-archive:{partial}"], f"buildah push {target.key}", env)
        found = verify.installed_from_image(partial, Family(target.family), target.arch)
        diff = verify.compare(target.bom(), found, Family(target.family))
        if verify.has_drift(diff):
            raise DriftError(f"{target.key}: the built container differs from its BOM", hint="imagebuild verify "
                             f"--role {role.name} --arch {target.arch} --container --image … lists the difference")
        os.replace(partial, out)
    return str(out.relative_to(root))


def _build_base(config: Config, lock: Lock, role: Role, target: LockedTarget, root: Path, env: dict[str, str],
                storage: list[str], base_file: Path | None) -> None:
    """The "rootfs" base: the distro's base package set from the snapshot (the backend's root filesystem build),
    checked against its file, imported as localhost/imagebuild/<role>-base:<arch> and saved as an OCI archive
    (Apptainer's oci-archive bootstrap reads it)."""
    from imagebuild import verify
    from imagebuild.bake import IMAGES_DIR

    podman = find_tool("podman", "podman")
    family = Family(target.family)
    bundle = root / CONTAINERS_DIR / role.name / target.arch
    base = verify.installed_from_list(base_file) if base_file is not None else []
    images = root / IMAGES_DIR
    tar = images / f"{role.name}-container-base-{target.arch}.tar"
    with tempfile.TemporaryDirectory(prefix=".base-", dir=images) as tmp:
        partial = Path(tmp) / tar.name
        backend(family).build_base(bundle, base, target.arch, partial, env)
        diff = verify.compare(base, verify.installed_from_rootfs(partial, family), family)
        if verify.has_drift(diff):
            raise DriftError(f"the base built from the snapshot differs from {base_file}",
                             hint="the base file must list what the snapshot's packages give, exactly")
        os.replace(partial, tar)
    tag = f"localhost/imagebuild/{role.name}-base:{target.arch}"
    podman_cmd = [podman, *storage, "--runtime", shutil.which("runc") or "runc", "--cgroup-manager", "cgroupfs",
                  "--events-backend", "file"]
    run_tool([*podman_cmd, "import", str(tar), tag], f"podman import {tar.name}", env)
    oci = images / f"{role.name}-container-base-{target.arch}.oci.tar"
    oci.unlink(missing_ok=True)
    run_tool([*podman_cmd, "save", "--format", "oci-archive", "-o", str(oci), tag], f"podman save {oci.name}", env)


def build_apptainer(config: Config, role: Role, target: LockedTarget, root: Path) -> str:
    """`apptainer build` of the .def (Apptainer or SingularityCE on PATH)."""
    from imagebuild.bake import IMAGES_DIR

    tool = shutil.which("apptainer") or shutil.which("singularity")
    if tool is None:
        raise ConfigError("apptainer is not installed", hint="install Apptainer (or SingularityCE) to build .sif "
                          "images; the .def is rendered without it")
    _, def_name = file_names(config, role, target.arch)
    out = root / IMAGES_DIR / f"{target.key}.sif"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LC_ALL": "C"}
    run_tool([tool, "build", "--force", str(out), def_name], f"apptainer build {target.key}", env,
             cwd=root / CONTAINERS_DIR / role.name)
    return str(out.relative_to(root))
