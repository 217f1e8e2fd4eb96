"""GPU-stack coherence checks (`imagebuild check`, the end of `lock`): each rule with a failing and a passing
fixture, the levels of `[checks]`, the real bookworm case that motivated them; and `why --reverse` against
re-locking without the request."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO_ROOT, bookworm_config  # noqa: E402

from imagebuild import checks  # noqa: E402
from imagebuild.bom import read_bom  # noqa: E402
from imagebuild.config import load_config  # noqa: E402
from imagebuild.lockfile import Lock, LockedPackage, LockedTarget, read_lock  # noqa: E402

EXAMPLE = REPO_ROOT / "examples" / "gpu-cluster"


def pkg(name: str, version: str, arch: str = "amd64", dep_type: str = "depends") -> LockedPackage:
    return LockedPackage(name, version, arch, "repo", "", f"pool/{name}.deb", 1, "0" * 64, None, dep_type, "")


def target(*packages: LockedPackage, family: str = "deb", arch: str = "amd64", role: str = "compute",
           container: bool = False) -> LockedTarget:
    return LockedTarget(role, arch, "d", (), tuple(packages), (), family, container=container)


@pytest.mark.parametrize(("t", "expected"), [
    (target(pkg("cuda-cudart-12-6", "12.6.77-1"), pkg("nvidia-driver", "550.54.15-1")),
     "CUDA 12.6 needs an NVIDIA driver >= 560.28.03, and the lock has nvidia-driver 550.54.15-1"),
    (target(pkg("cuda-cudart-12-6", "12.6.77-1"), pkg("nvidia-driver", "560.35.03-1")), None),
    (target(pkg("cuda-cudart-13-0", "13.0.48-1", "x86_64"), pkg("nvidia-driver", "3:575.57.08-1.el9", "x86_64"),
            family="rpm", arch="x86_64"), "CUDA 13.0 needs an NVIDIA driver >= 580.65.06"),
    (target(pkg("cuda-cudart-12-8", "12.8.57-1", "x86_64"), pkg("nvidia-driver", "3:570.26-1.el9", "x86_64"),
            family="rpm", arch="x86_64"), None),
    (target(pkg("nvidia-cuda-toolkit", "11.8.89~11.8.0-5~deb12u1"), pkg("nvidia-driver", "535.309.01-0+deb12u1")),
     None),
    (target(pkg("cuda-cudart-12-4", "12.4.127-1")), None),  # no driver locked (a login node, a container)
])
def test_cuda_min_driver(t: LockedTarget, expected: str | None) -> None:
    found = checks.cuda_min_driver(t)
    assert (found[0].startswith(expected) if expected else found == []), found


@pytest.mark.parametrize(("t", "expected"), [
    (target(pkg("nvidia-driver-550", "550.54.15-0ubuntu1"), pkg("libnvidia-compute-550", "550.54.15-0ubuntu1"),
            pkg("nvidia-fabricmanager-550", "550.54.14-1")), "nvidia-fabricmanager-550 at 550.54.14"),
    (target(pkg("nvidia-driver-550", "550.54.15-0ubuntu1"), pkg("nvidia-fabricmanager-550", "550.54.15-1"),
            pkg("cuda-drivers", "550.54.15-1")), None),
    (target(pkg("nvidia-driver", "3:575.57.08-1.el9", "x86_64"), pkg("kmod-nvidia-open-dkms", "3:575.57.08-1.el9",
            "noarch"), pkg("nvidia-fabricmanager", "575.57.08-1", "x86_64"), family="rpm", arch="x86_64"), None),
    (target(pkg("nvidia-driver", "3:575.57.08-1.el9", "x86_64"), pkg("kmod-nvidia-open-dkms", "3:590.44.01-1.el9",
            "noarch"), family="rpm", arch="x86_64"), "kmod-nvidia-open-dkms at 590.44.01"),
    # separately versioned packages that look like driver parts are not compared
    (target(pkg("nvidia-driver", "535.309.01-0+deb12u1"), pkg("libnvidia-egl-wayland1", "1:1.1.10-1"),
            pkg("libnvidia-ml-dev", "11.8.86~11.8.0-5~deb12u1")), None),
])
def test_driver_one_version(t: LockedTarget, expected: str | None) -> None:
    found = checks.driver_one_version(t)
    assert (found[0].startswith(expected) if expected else found == []), found


KERNEL = "5.14.0-427.42.1.el9_4"


@pytest.mark.parametrize(("t", "expected"), [
    (target(pkg("linux-image-6.12.48+deb12-amd64", "6.12.48-1~bpo12+1"), pkg("nvidia-kernel-dkms", "535.309.01-1")),
     "nvidia-kernel-dkms 535.309.01-1 can never be built for linux-image-6.12.48+deb12-amd64: "
     "linux-headers-6.12.48+deb12-amd64 is not locked"),
    (target(pkg("linux-image-6.12.48+deb12-amd64", "6.12.48-1~bpo12+1"), pkg("nvidia-kernel-dkms", "535.309.01-1"),
            pkg("linux-headers-6.12.48+deb12-amd64", "6.12.48-1~bpo12+1")), None),
    (target(pkg("kernel-core", KERNEL, "x86_64"), pkg("kmod-nvidia-open-dkms", "3:575.57.08-1.el9", "noarch"),
            family="rpm", arch="x86_64"), f"kmod-nvidia-open-dkms 3:575.57.08-1.el9 can never be built for "
                                          f"kernel-core {KERNEL}: kernel-devel {KERNEL} is not locked"),
    (target(pkg("kernel-core", KERNEL, "x86_64"), pkg("kernel-devel", KERNEL, "x86_64"),
            pkg("kmod-nvidia-open-dkms", "3:575.57.08-1.el9", "noarch"), family="rpm", arch="x86_64"), None),
    (target(pkg("kernel-core", "5.14.0-427.13.1.el9_4", "x86_64"),
            pkg("kmod-mlnx-ofa_kernel", "24.10-OFED.24.10.1.1.4.1.1.kver.5.14.0_427.42.1.el9_4.x86_64", "x86_64"),
            family="rpm", arch="x86_64"), f"kmod-mlnx-ofa_kernel 24.10-OFED.24.10.1.1.4.1.1.kver.5.14.0_427.42.1"
                                          f".el9_4.x86_64 was built for kernel {KERNEL}, which is not a locked kernel"),
    (target(pkg("kernel-core", KERNEL, "x86_64"),
            pkg("kmod-mlnx-ofa_kernel", "24.10-OFED.24.10.1.1.4.1.1.kver.5.14.0_427.42.1.el9_4.x86_64", "x86_64"),
            family="rpm", arch="x86_64"), None),
])
def test_kernel_modules(t: LockedTarget, expected: str | None) -> None:
    found = checks.kernel_modules(t)
    assert (found[0].startswith(expected) if expected else found == []), found


def test_same_version_across_arches() -> None:
    a = target(pkg("rdma-core", "44.0-2"), arch="amd64")
    b = target(pkg("rdma-core", "44.0-1", "arm64"), arch="arm64")
    assert checks.same_version_across_arches([a, b]) == [("compute", "rdma-core is 44.0-2 on amd64, 44.0-1 on arm64")]
    c = target(pkg("rdma-core", "44.0-2", "arm64"), arch="arm64")
    assert checks.same_version_across_arches([a, c]) == []
    # DOCA names the arch in the release: the same build on each arch
    x = target(pkg("kmod-mlnx-ofa_kernel", "24.10-1.el9_4.x86_64", "x86_64"), family="rpm", arch="x86_64")
    y = target(pkg("kmod-mlnx-ofa_kernel", "24.10-1.el9_4.aarch64", "aarch64"), family="rpm", arch="aarch64")
    assert checks.same_version_across_arches([x, y]) == []


def test_container_userspace_and_levels(tmp_path: Path) -> None:
    config = load_config(EXAMPLE / "imagebuild.toml")
    lock = read_lock(EXAMPLE / "snapshots.lock")
    assert checks.run(config, lock) == []  # the example is coherent
    c = lock.target("compute", "amd64", container=True)
    assert c is not None
    broken = LockedTarget(c.role, c.arch, c.distro, c.requests, (*c.packages, pkg("nvidia-kernel-dkms", "550-1")),
                          c.removed, c.family, container=True)
    bad = Lock(lock.inputs_digest, lock.repos, tuple(broken if t is c else t for t in lock.targets))
    found = [f for f in checks.run(config, bad) if f.check == "container-userspace"]
    assert [f.message for f in found] == [
        "compute-container-amd64: nvidia-kernel-dkms 550-1 is excluded from containers (kernel-modules)"]
    assert found[0].level.value == "warn"
    assert checks.run(config, bad, strict=True)[0].level.value == "error"


def _project(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle", "dnf-oracle", "containers", "packer",
                                                                "images"))
    return dst


def test_check_levels_from_the_config(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    proj = _project(tmp_path)
    cfg = proj / "imagebuild.toml"
    # a second, older kernel next to the newest: DKMS gets kernel-devel for one of them only
    text = cfg.read_text().replace('  "kernel",\n', '  "kernel",\n  "kernel-core-5.14.0-427.13.1.el9_4",\n', 1)
    cfg.write_text(text)
    before = (proj / "snapshots.lock").read_bytes()
    finding = ("kernel-modules: rocky-compute-x86_64: kmod-nvidia-open-dkms 3:575.57.08-1.el9 can never be built for "
               "kernel-core 5.14.0-427.13.1.el9_4: kernel-devel 5.14.0-427.13.1.el9_4 is not locked")
    warned = run_imagebuild(cfg, "lock")
    assert warned.returncode == 0 and f"warning: {finding}" in warned.stderr, warned.stderr
    assert run_imagebuild(cfg, "check").returncode == 0
    strict = run_imagebuild(cfg, "check", "--strict")
    assert strict.returncode == 1 and f"error: {finding}" in strict.stderr
    (proj / "snapshots.lock").write_bytes(before)
    cfg.write_text(text + '\n[checks]\nkernel-modules = "error"\n')
    failed = run_imagebuild(cfg, "lock")
    assert failed.returncode == 3 and "coherence check(s) failed; nothing written" in failed.stderr
    assert (proj / "snapshots.lock").read_bytes() == before
    cfg.write_text(text + '\n[checks]\nkernel-modules = "off"\n')
    quiet = run_imagebuild(cfg, "lock")
    assert quiet.returncode == 0 and "kernel-modules" not in quiet.stderr
    cfg.write_text(text + '\n[checks]\nkernel-modules = "loud"\n')
    bad = run_imagebuild(cfg, "lock")
    assert bad.returncode == 2 and "checks.kernel-modules: unknown value 'loud'" in bad.stderr
    cfg.write_text(text + '\n[checks]\nkernel-module = "off"\n')
    typo = run_imagebuild(cfg, "lock")
    assert typo.returncode == 2 and "did you mean 'kernel-modules'" in typo.stderr


@pytest.mark.slow
def test_real_bookworm_dkms_without_headers_is_flagged(tmp_path: Path, debian_http: str,
                                                       run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    """The case from the field: a compute role with the backports kernel and recommends off locks
    nvidia-kernel-dkms and the 6.12 kernel but no linux-headers-* at all: the module can never be built."""
    cfg = bookworm_config(tmp_path / "imagebuild.toml", debian_http, """[roles.compute]
distro = "bookworm"
packages = ["nvidia-driver", "nvidia-cuda-toolkit", "rdma-core", "infiniband-diags", "slurmd", "munge",
            "openmpi-bin", "linux-image-amd64/bookworm-backports"]
""", suites=("bookworm", "bookworm-updates", "bookworm-backports"))
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 0, res.stderr
    bom = {e.name: e.version for e in read_bom(tmp_path / "boms" / "compute-amd64.bom")}
    assert bom["nvidia-kernel-dkms"].startswith("535.309.01") and not any(n.startswith("linux-headers-") for n in bom)
    kernel = next(n for n in bom if re.match(r"^linux-image-6\.12", n))
    m = re.search(r"warning: kernel-modules: compute-amd64: nvidia-kernel-dkms 535\.309\.01\S* can never be built for "
                  rf"{re.escape(kernel)}: linux-headers-\S+ is not locked", res.stderr)
    assert m, res.stderr
    strict = run_imagebuild(cfg, "check", "--strict")
    assert strict.returncode == 1 and "kernel-modules" in strict.stderr


# -- why --reverse ---------------------------------------------------------------------------------------

def _requests(cfg: Path, role: str) -> list[str]:
    return [str(p) for p in load_config(cfg).roles[role].packages]


@pytest.mark.parametrize(("role", "arch"), [("compute", "amd64"), ("rocky-compute", "x86_64")])
def test_why_reverse_is_what_relocking_without_the_request_removes(tmp_path: Path, role: str, arch: str,
                                                                    run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    """For every request of the role: `why --reverse` (from the lock's edges) names exactly the packages a lock
    without that request no longer has."""
    proj = _project(tmp_path)
    cfg = proj / "imagebuild.toml"
    original = cfg.read_text()
    block = re.search(rf"^\[roles\.{re.escape(role)}\]\n(?:[^\[].*\n|\n)*", original, re.M)
    assert block
    before = {(e.name, e.arch) for e in read_bom(proj / "boms" / f"{role}-{arch}.bom")}
    agreed = 0
    requested = [p.name for p in read_lock(proj / "snapshots.lock").target(role, arch).packages  # type: ignore[union-attr]
                 if p.dep_type == "requested"]
    for request in _requests(cfg, role):
        # the package a request names: `name`, `name=version` (apt), `name-version-release` (dnf)
        name = max((n for n in requested if request == n or request.startswith((f"{n}=", f"{n}-", f"{n}/"))), key=len)
        res = run_imagebuild(cfg, "why", "--reverse", name, "--role", role, "--arch", arch)
        assert res.returncode == 0, res.stderr
        said = {(ln.split()[1], ln.split()[3]) for ln in res.stdout.splitlines() if ln.startswith("  - ")}
        trial = tmp_path / f"trial-{agreed}"
        shutil.copytree(proj, trial)
        text = block[0].replace(f'  "{request}",\n', "")
        assert text != block[0], request
        # the containers ask for packages of the node image: leave them out of the trial
        trial_text = re.sub(r"^\[roles\.[a-z-]+\.container\]\n(?:[^\[].*\n|\n)*", "", original.replace(block[0], text),
                            flags=re.M)
        (trial / "imagebuild.toml").write_text(trial_text)
        relocked = run_imagebuild(trial / "imagebuild.toml", "lock")
        assert relocked.returncode == 0, relocked.stderr
        after = {(e.name, e.arch) for e in read_bom(trial / "boms" / f"{role}-{arch}.bom")}
        assert said == before - after, f"{request}: why --reverse {sorted(said ^ (before - after))}"
        agreed += 1
        shutil.rmtree(trial)
    assert agreed == len(_requests(cfg, role))
