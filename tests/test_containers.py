"""Containers from the node's lock: the rule, the stub, the lock target, the rendered Dockerfile/.def, and the real
package managers' view of the container sets (apt on the real bookworm data, dnf on the example's rpm repos)."""

from __future__ import annotations

import importlib.util
import lzma
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dnf_oracle  # noqa: E402
from apt_oracle import AptOracle, AptRepo, debian_repos  # noqa: E402
from conftest import MINBASE_STATUS, REPO_ROOT, bookworm_config  # noqa: E402

from imagebuild.config import Family  # noqa: E402
from imagebuild.container import (  # noqa: E402
    agreement,
    cuda_of,
    deb_stub,
    default_rule,
    min_driver,
    require_cuda,
    rule_for,
    stub_record_fields,
)
from imagebuild.lockfile import STUB_REPO, LockedStub, read_lock  # noqa: E402

EXAMPLE = REPO_ROOT / "examples" / "gpu-cluster"


# -- the rule, as data ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "name", "cls"), [
    ("deb", "linux-image-6.1.0-56-amd64", "kernel"), ("deb", "linux-headers-amd64", "kernel"),
    ("deb", "nvidia-kernel-dkms", "kernel-modules"), ("deb", "dkms", "kernel-modules"),
    ("deb", "firmware-nvidia-gsp", "firmware"), ("deb", "grub-efi-amd64", "bootloader"),
    ("deb", "libcuda1", "nvidia-driver"), ("deb", "nvidia-driver", "nvidia-driver"),
    ("deb", "libnvidia-ml1", "nvidia-driver"), ("deb", "nvidia-smi", "nvidia-driver"),
    ("deb", "nvidia-fabricmanager-550", "nvidia-driver"), ("deb", "cuda-drivers-550", "nvidia-driver"),
    ("deb", "libnvidia-ml-dev", None), ("deb", "nvidia-cuda-toolkit", None), ("deb", "nvidia-cuda-dev", None),
    ("deb", "linux-libc-dev", None), ("deb", "cuda-toolkit-12-4", None), ("deb", "rdma-core", None),
    ("deb", "libnvidia-container1", None), ("deb", "slurmd", None),
    ("rpm", "kernel-core", "kernel"), ("rpm", "kernel-devel-matched", "kernel"),
    ("rpm", "kmod-nvidia-open-dkms", "kernel-modules"), ("rpm", "kmod-mlnx-ofa_kernel", "kernel-modules"),
    ("rpm", "linux-firmware", "firmware"), ("rpm", "grub2-efi-x64", "bootloader"),
    ("rpm", "nvidia-driver-cuda-libs", "nvidia-driver"), ("rpm", "nvidia-fabricmanager", "nvidia-driver"),
    ("rpm", "kernel-headers", None), ("rpm", "cuda-libraries-12-6", None), ("rpm", "libnccl", None),
    ("rpm", "ucx-ib", None),
])
def test_default_rule_classes(family: str, name: str, cls: str | None) -> None:
    found = default_rule(Family(family)).classify(name)
    assert (found.name if found else None) == cls


def test_a_container_adds_its_own_globs() -> None:
    rule = rule_for(Family.DEB, ["nsight-*"])
    assert rule.classify("nsight-systems").name == "config"  # type: ignore[union-attr]
    assert default_rule(Family.DEB).classify("nsight-systems") is None


# -- CUDA ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cuda", "driver"), [("12.4", "550.54.14"), ("12.6", "560.28.03"), ("12.8", "570.26"),
                                               ("13.0", "580.65.06")])
def test_nvidia_require_cuda_for_the_minimum_driver_table(cuda: str, driver: str) -> None:
    major, minor = cuda.split(".")
    found = cuda_of([(f"cuda-cudart-{major}-{minor}", f"{cuda}.77-1"),
                     (f"cuda-toolkit-{major}-{minor}", f"{cuda}.1-1")])
    assert found is not None and found.version == cuda and found.home == f"/usr/local/cuda-{cuda}"
    assert require_cuda(found.version) == f"cuda>={cuda}"
    assert min_driver(cuda) == driver


def test_debian_cuda_lives_in_usr() -> None:
    found = cuda_of([("nvidia-cuda-toolkit", "11.8.89~11.8.0-5~deb12u1")])
    assert found is not None and (found.version, found.home) == ("11.8", None)
    assert cuda_of([("rdma-core", "44.0-2")]) is None


# -- the stub --------------------------------------------------------------------------------------------

STUB = LockedStub("imagebuild-host-nvidia-driver", "535.309.01-0+deb12u1", "amd64",
                  ("libcuda1 (= 535.309.01-0+deb12u1)", "libcuda.so.1 (= 535.309.01)", "libcuda-11.8-1"))


def test_stub_is_reproducible_and_dpkg_reads_it(tmp_path: Path) -> None:
    data = deb_stub(STUB)
    assert data == deb_stub(STUB)
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not installed")
    deb = tmp_path / "stub.deb"
    deb.write_bytes(data)
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Provides"], capture_output=True,
                            text=True, check=True).stdout
    assert "Package: imagebuild-host-nvidia-driver" in fields and "libcuda.so.1 (= 535.309.01)" in fields
    contents = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "README.imagebuild" in contents and "libcuda" not in contents.replace("README", "")
    filename = stub_record_fields(STUB, data)["Filename"]
    assert filename == "stubs/imagebuild-host-nvidia-driver_535.309.01-0+deb12u1_amd64.deb"


# -- config ----------------------------------------------------------------------------------------------

_BASE_REF = "127.0.0.1:5000/library/debian:12-slim@sha256:" + "ab" * 32


@pytest.mark.parametrize(("table", "message"), [
    ('base = "rootfs"', 'base = "rootfs" builds the distro\'s base, and distros.bookworm.base is "none"'),
    ('base = "127.0.0.1:5000/library/debian:12-slim"', "neither \"rootfs\" nor an image reference pinned by digest"),
    (f'base = "{_BASE_REF}"', "base-bom: missing"),
    (f'base = "{_BASE_REF}"\nbase-bom = "nope-{{arch}}.bom"', "nope-amd64.bom does not exist"),
    ('base = "rootfs"\nflavour = 1', "roles.compute.container.flavour: unknown key"),
])
def test_container_config_errors(tmp_path: Path, run_imagebuild, table: str, message: str) -> None:  # type: ignore[no-untyped-def]
    proj = _example(tmp_path)
    cfg = proj / "imagebuild.toml"
    text = re.sub(r"\[roles\.compute\.container\]\n(?:[^\[\n].*\n|#.*\n|\n)*", "", cfg.read_text())
    cfg.write_text(text + f"\n[roles.compute.container]\n{table}\n")
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_a_role_named_like_a_container_is_refused(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    proj = _example(tmp_path)
    cfg = proj / "imagebuild.toml"
    cfg.write_text(cfg.read_text() + '\n[roles.compute-container]\ndistro = "bookworm"\npackages = ["slurmd"]\n')
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 2 and "taken by the container of role 'compute'" in res.stderr, res.stderr


# -- the example's container targets ---------------------------------------------------------------------

def _example(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle", "dnf-oracle", "containers", "packer",
                                                                "images"))
    return dst


def test_example_containers_are_the_node_userspace() -> None:
    lock = read_lock(EXAMPLE / "snapshots.lock")
    seen = 0
    for c in (t for t in lock.targets if t.container):
        node = lock.target(c.role, c.arch)
        assert node is not None
        rule = rule_for(Family(c.family))
        assert agreement(node, c, rule) == []
        names = {p.name for p in c.packages}
        assert not names & {"cuda-drivers", "nvidia-fabricmanager-550", "nvidia-dkms-550", "dkms", "kernel",
                            "kernel-core", "kmod-nvidia-open-dkms", "nvidia-driver", "nvidia-fabricmanager"}
        assert (EXAMPLE / "boms" / f"{c.key}.bom").is_file()
        seen += 1
    assert seen == 4  # compute and rocky-compute, two arches each
    compute = lock.target("compute", "amd64", container=True)
    assert compute is not None and "cuda-drivers=550.54.15-1" not in compute.requests
    assert {"cuda-toolkit-12-4", "openmpi-bin", "slurmd", "rdma-core"} <= {p.name for p in compute.packages}
    # the base image's libc6 (deb12u13) is moved to the node's (deb12u9): one version of each package everywhere
    libc = next(p for p in compute.packages if p.name == "libc6")
    assert libc.version == next(p.version for p in node_of(lock, "compute").packages if p.name == "libc6")


def node_of(lock, role: str):  # type: ignore[no-untyped-def]
    return lock.target(role, "amd64")


def test_a_kept_package_needing_an_excluded_one_is_exit_3(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    proj = _example(tmp_path)
    cfg = proj / "imagebuild.toml"
    # without its own request list, the rocky container asks for doca-ofed, which needs DOCA's kernel module
    cfg.write_text(re.sub(r'^packages = \["cuda-libraries-12-6".*\]\n', "", cfg.read_text(), flags=re.M))
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 3, res.stderr
    assert "rocky-compute-container" in res.stderr and "requires kmod-mlnx-ofa_kernel" in res.stderr
    assert "kmod-mlnx-ofa_kernel (kernel-modules)" in res.stderr  # the hint names what the rule left out


def test_excluded_package_in_the_container_request_list_is_refused(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    proj = _example(tmp_path)
    cfg = proj / "imagebuild.toml"
    cfg.write_text(cfg.read_text().replace('packages = ["cuda-libraries-12-6",',
                                           'packages = ["kernel", "cuda-libraries-12-6",'))
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 2 and "container.packages: kernel is excluded from containers (kernel)" in res.stderr


# -- rendering -------------------------------------------------------------------------------------------

def _spython() -> tuple[type, type]:
    if importlib.util.find_spec("spython") is None:
        pytest.skip("spython not installed (pip install spython)")
    from spython.main.parse.parsers import DockerParser, SingularityParser

    return DockerParser, SingularityParser


def test_dockerfile_and_def_agree_and_parse(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    docker_parser, singularity_parser = _spython()
    proj = _example(tmp_path)
    cfg = proj / "imagebuild.toml"
    assert run_imagebuild(cfg, "bake", "--role", "compute", "--target", "docker").returncode == 0
    out = proj / "containers" / "compute"
    assert {p.name for p in out.iterdir()} == {"Dockerfile", "Dockerfile.arm64", "compute.def", "compute.arm64.def",
                                               "amd64", "arm64"}
    dockerfile = (out / "Dockerfile").read_text()
    assert "\nFROM 127.0.0.1:5000/library/debian:12-slim@sha256:" in dockerfile
    assert "ARG " not in dockerfile and "IMAGEBUILD_AUTH" not in dockerfile.split("FROM", 1)[1]
    assert (out / "amd64" / "bom").read_text() == (proj / "boms" / "compute-container-amd64.bom").read_text()
    assert 'ENV NVIDIA_REQUIRE_CUDA="cuda>=12.4"' in dockerfile
    lock_digest = __import__("hashlib").sha256((proj / "snapshots.lock").read_bytes()).hexdigest()
    assert f'LABEL org.opencontainers.image.revision="{lock_digest}"' in dockerfile

    (d,) = docker_parser(str(out / "Dockerfile")).recipe.values()
    (s,) = singularity_parser(str(out / "compute.def")).recipe.values()
    assert d.fromHeader == s.fromHeader
    docker_labels = dict(re.match(r'^(\S+)="(.*)"$', lab[0] if isinstance(lab, list) else lab).groups()  # type: ignore[union-attr]
                         for lab in d.labels)
    def_labels = dict(lab.split(" ", 1) for lab in s.labels)
    assert docker_labels == def_labels and "org.imagebuild.role" in def_labels
    assert d.environ == s.environ and any(e.startswith("NVIDIA_VISIBLE_DEVICES=") for e in s.environ)
    assert s.files == [["amd64", "/tmp/imagebuild"]] or s.files == ["amd64 /tmp/imagebuild"]
    assert "sh -eu /tmp/imagebuild/provision.sh" in s.install and s.install[:2] == ["set -eu", "cd /"]
    assert any("sh -eu /tmp/imagebuild/provision.sh" in line for line in d.install)
    for k in (e.split("=", 1)[0] for e in s.environ):  # exported in %post too
        assert any(line.startswith(f"export {k}=") for line in s.install)
    text = (out / "compute.def").read_text()
    assert "apptainer exec --nv compute.sif" in text and "%test" in text and "/etc/imagebuild/bom" in text


def test_credentials_come_from_a_build_secret(run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    """A repo whose URL carries user:password: the Dockerfile mounts a build secret, the .def takes a file it
    removes in %post; neither names the credential."""
    from dataclasses import replace

    from imagebuild import bake_containers
    from imagebuild.config import load_config

    config = load_config(EXAMPLE / "imagebuild.toml")
    lock = read_lock(EXAMPLE / "snapshots.lock")
    distro = config.distros["bookworm"]
    authed = replace(distro, repos=tuple(replace(r, url="https://ark:S3cr3t@127.0.0.1:8443/cuda") if r.name == "cuda"
                                         else r for r in distro.repos))
    config = replace(config, distros={**config.distros, "bookworm": authed})
    target = lock.target("compute", "amd64", container=True)
    assert target is not None
    files = bake_containers.render_container(config, lock, "0" * 64, config.roles["compute"], target, 0)
    dockerfile = files["containers/compute/Dockerfile"].decode()
    definition = files["containers/compute/compute.def"].decode()
    assert "--mount=type=secret,id=imagebuild-auth" in dockerfile and "/run/secrets/imagebuild-auth" in dockerfile
    assert "--secret id=imagebuild-auth,src=AUTH_FILE" in dockerfile
    assert "imagebuild-auth.env /tmp/imagebuild-auth.env" in definition
    assert "rm -f /tmp/imagebuild-auth.env" in definition
    for text in (dockerfile, definition):
        assert "S3cr3t" not in text and "ARG " not in text


# -- the real package managers on the container sets ------------------------------------------------------

def test_rpm_container_set_is_what_dnf_installs(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    """CUDA userspace without the driver's kernel module: `dnf --installroot` of the container's set (on an empty
    base) installs exactly its BOM."""
    why = dnf_oracle.missing()
    if why:
        pytest.skip(f"real dnf unavailable: {why}")
    proj = _example(tmp_path)
    for bom in (proj / "bases").glob("rockylinux-9-minimal-*.bom"):
        bom.write_text("# an empty base\n")
    cfg = proj / "imagebuild.toml"
    assert run_imagebuild(cfg, "lock").returncode == 0
    lock = read_lock(proj / "snapshots.lock")
    target = lock.target("rocky-compute", "x86_64", container=True)
    assert target is not None
    names = {p.name for p in target.packages}
    assert {"cuda-libraries-12-6", "libcublas-12-6", "libnccl", "ucx-ib"} <= names
    assert not any(n.startswith(("kmod-", "kernel", "nvidia-driver")) or n == "dkms" for n in names)
    spec = importlib.util.spec_from_file_location("dnf_check", REPO_ROOT / "scripts/example-mirror/dnf_check.py")
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    ((distro, _),) = [(d, p) for r, d, p in check.rpm_roles(cfg) if r == "rocky-compute"]
    oracle = dnf_oracle.DnfOracle(check.repos_of(distro, proj), tmp_path / "dnf")
    pins = [f"{p.name}-{p.version}.{p.arch}" for p in target.packages]
    res = check.run_dnf(oracle, "x86_64", distro, list(distro.get("modules", [])), pins)
    assert res.ok, res.output[-3000:]
    assert set(res.bom) == {f"{p.name} {p.version} {p.arch}" for p in target.packages}


@pytest.mark.slow
def test_real_bookworm_cuda_container_needs_the_driver_virtual(tmp_path: Path, debian_http: str,
                                                               run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    """Debian's nvidia-cuda-toolkit on bookworm: its container has no driver, DKMS or kernel, a stub for
    `libcuda1 | libcuda.so.1`, the node's version of every shared package, and apt accepts the set."""
    cfg = bookworm_config(tmp_path / "imagebuild.toml", debian_http, """[roles.gpu]
distro = "bookworm"
packages = ["nvidia-driver", "nvidia-cuda-toolkit", "rdma-core", "slurmd", "linux-image-amd64"]

[roles.gpu.container]
base = "rootfs"
""")
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 0, res.stderr
    lock = read_lock(tmp_path / "snapshots.lock")
    node, container = lock.target("gpu", "amd64"), lock.target("gpu", "amd64", container=True)
    assert node is not None and container is not None
    names = {p.name for p in container.packages}
    assert "libcuda1" in {p.name for p in node.packages} and "nvidia-kernel-dkms" in {p.name for p in node.packages}
    bad = [n for n in names if n == "libcuda1" or n.startswith(("nvidia-driver", "linux-image-"))
           or n.endswith("-dkms") or n == "dkms"]
    assert bad == []
    assert {"nvidia-cuda-toolkit", "nvidia-cuda-dev", "libnvidia-ml-dev", "rdma-core", "slurmd"} <= names
    assert agreement(node, container, rule_for(Family.DEB)) == []
    (stub,) = container.stubs
    libcuda = next(p for p in node.packages if p.name == "libcuda1")
    assert stub.version == libcuda.version and f"libcuda1 (= {libcuda.version})" in stub.provides
    assert any(p.repo == STUB_REPO and p.name == stub.name for p in container.packages)

    # apt, given the container set explicitly (the stub from a flat repo of its generated .deb), installs exactly it
    stubs = Path(tempfile.mkdtemp(prefix="imagebuild-stubs-", dir="/tmp"))  # apt reads it as _apt
    stubs.chmod(0o755)
    data = deb_stub(stub)
    fields = stub_record_fields(stub, data)
    (stubs / "stubs").mkdir(parents=True)
    (stubs / fields["Filename"]).write_bytes(data)
    index = "".join(f"{k}: {v}\n" for k, v in fields.items()).encode()
    (stubs / "Packages").write_bytes(index)
    (stubs / "Packages.xz").write_bytes(lzma.compress(index))  # apt asks for it first
    oracle = AptOracle(tmp_path / "apt")
    repos = [*debian_repos(debian_http, ["bookworm", "bookworm-updates", "bookworm-security"]),
             AptRepo(f"file:{stubs}", flat=True, trusted=True)]
    ok, why, _ = oracle.check_explicit(repos, "amd64", MINBASE_STATUS, False,
                                       {(p.name, p.version, p.arch) for p in container.packages})
    shutil.rmtree(stubs)
    assert ok, why


def test_why_explains_the_container_and_what_it_leaves_out(run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    cfg = EXAMPLE / "imagebuild.toml"
    kept = run_imagebuild(cfg, "why", "libcublas-12-4", "--role", "compute", "--arch", "amd64", "--container")
    assert kept.returncode == 0 and kept.stdout.startswith("compute-container/amd64: libcublas-12-4 ")
    driver = run_imagebuild(cfg, "why", "dkms", "--role", "compute", "--arch", "amd64", "--container")
    assert driver.returncode == 1 and "containers leave it out (kernel-modules)" in driver.stderr
    only_node = run_imagebuild(cfg, "why", "gcc", "--role", "compute", "--arch", "amd64", "--container")
    assert only_node.returncode == 1 and "only the node image needs it" in only_node.stderr
    none = run_imagebuild(cfg, "why", "slurmctld", "--role", "control", "--container")
    assert none.returncode == 2 and "no entry for control-container" in none.stderr


@pytest.mark.skipif(shutil.which("apptainer") is not None or shutil.which("singularity") is not None,
                    reason="an Apptainer runtime is installed here")
def test_apptainer_build_without_apptainer_is_exit_2(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    proj = _example(tmp_path)
    res = run_imagebuild(proj / "imagebuild.toml", "bake", "--role", "compute", "--target", "apptainer", "--build")
    assert res.returncode == 2 and "apptainer is not installed" in res.stderr, res.stderr
    assert (proj / "containers" / "compute" / "compute.def").is_file()  # rendered all the same
