"""Differential tests: ``imagebuild lock`` against real apt on the real Debian bookworm snapshot.

Each case writes an ``imagebuild.toml`` (the four bookworm suites served on loopback, one role, one
arch, base none or minbase, recommends on/off), runs ``imagebuild lock`` and compares the set in
``boms/<role>-<arch>.bom`` with what ``apt-get -s install`` gives for the same inputs
(``tests/apt_oracle.py``).  The contract (PRODUCT.md, "Semantics"):

* apt succeeds  -> imagebuild exits 0 and its BOM set equals apt's set exactly;
* apt gives up  -> imagebuild exits 3, or exits 0 with a set that apt accepts when every package is
                   given explicitly (``apt-get -s install name=version ...`` succeeds and yields
                   exactly that set) and that honours the requests (``pkg=ver`` pins, real names).

Cases: the GPU compute / login / control roles on amd64 and arm64 x base none/minbase x recommends
off/on; recommends-on mixes of GPU, graphics and compute packages (``gpu-gfx-*``: the NVIDIA driver,
CUDA, VDPAU/VA-API and the HPC stack) given in both request orders, where apt's answer depends on
the order; bookworm-backports pinning (NotAutomatic/ButAutomaticUpgrades); exact-version requests;
a removal and a downgrade of base packages; and single-package requests drawn with a fixed seed from
bookworm main.  The arm64 "minbase" is the amd64 minbase status with ``Architecture: amd64``
rewritten to ``arm64`` (same archive state; a realistic arm64 base for both tools).

Run:   pytest -m slow tests/test_differential_apt.py -rs -s
       IMAGEBUILD_DIFF_ORACLE_ONLY=1 pytest ... runs only the apt side (skips the imagebuild half),
       useful to check the oracle and the data while imagebuild is in flux.
The oracle alone is exercised by the ``test_oracle_*`` tests, which don't need imagebuild.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import lzma
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from apt_oracle import (
    DEBIAN_COMPONENTS,
    DEBIAN_KEYRING,
    AptOracle,
    Pkg,
    debian_repos,
    parse_status,
    set_diff,
)
from conftest import DEBIAN_DATA, DEBIAN_SNAPSHOT, MINBASE_STATUS

pytestmark = pytest.mark.slow

ORACLE_ONLY = os.environ.get("IMAGEBUILD_DIFF_ORACLE_ONLY") == "1"
SEED = 20261122
ARCHES = ("amd64", "arm64")
MAIN_SUITES = ("bookworm", "bookworm-updates", "bookworm-backports")

# Role package lists, checked against the snapshot (bookworm, captured 2026-11-22).  Debian ships
# the NVIDIA 535 driver and CUDA 11.8 toolkit in non-free for both amd64 and arm64, so the compute
# role is the same on both arches.  libnccl2 is *not* in this snapshot (no Debian package), pmix
# neither, so they are left out.
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "compute": {
        arch: ("nvidia-driver", "nvidia-cuda-toolkit", "nvidia-smi", "rdma-core", "infiniband-diags",
               "ibverbs-providers", "slurmd", "munge", "openmpi-bin")
        for arch in ARCHES
    },
    "login": {
        arch: ("slurm-client", "openssh-server", "environment-modules", "build-essential", "gfortran",
               "libopenmpi-dev", "openmpi-bin", "munge")
        for arch in ARCHES
    },
    "control": {
        arch: ("slurmctld", "slurmdbd", "mariadb-server", "munge", "chrony")
        for arch in ARCHES
    },
}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    arch: str
    base: str  # "none" | "minbase"
    recommends: bool
    packages: tuple[str, ...]
    role: str = "test"
    note: str = ""


def _role_cases() -> list[Case]:
    out = []
    for role, per_arch in ROLES.items():
        for arch, pkgs in per_arch.items():
            for base in ("none", "minbase"):
                for rec in (False, True):
                    out.append(Case(f"role-{role}-{arch}-{base}-{'rec' if rec else 'norec'}",
                                    arch, base, rec, pkgs, role=role))
    return out


# bookworm-backports is NotAutomatic: yes + ButAutomaticUpgrades: yes (priority 100).  Versions in
# this snapshot: openssh-server stable 1:9.2p1-2+deb12u10, updates deb12u7 (older), security
# deb12u9, backports 1:10.0p1-7~bpo12+1; nvidia-driver stable 535.261.03-1, security
# 535.309.01-0+deb12u1, backports 535.216.03-2~bpo12+1 (older than stable!); e2fsprogs and
# systemd/libsystemd0 newer in backports than in minbase; 7zip-standalone exists only in backports.
BACKPORTS_CASES = [
    Case("bpo-kernel-amd64", "amd64", "none", False, ("linux-image-amd64/bookworm-backports",), "compute"),
    Case("bpo-kernel-amd64-minbase-rec", "amd64", "minbase", True, ("linux-image-amd64/bookworm-backports",),
         "compute"),
    Case("bpo-kernel-arm64", "arm64", "none", False, ("linux-image-arm64/bookworm-backports",), "compute"),
    Case("bpo-stable-wins-openssh", "amd64", "none", False, ("openssh-server",),
         note="backports has 1:10.0p1; stable/security must win"),
    Case("bpo-stable-wins-systemd-minbase", "amd64", "minbase", False, ("systemd",)),
    Case("bpo-stable-wins-e2fsprogs-arm64", "arm64", "none", False, ("e2fsprogs",)),
    Case("bpo-only-package", "amd64", "none", False, ("7zip-standalone",),
         note="only candidate is in backports"),
    Case("bpo-only-package-arm64-minbase", "arm64", "minbase", False, ("7zip-standalone",)),
    Case("bpo-upgrade-base-e2fsprogs", "amd64", "minbase", False, ("e2fsprogs/bookworm-backports",),
         note="upgrades base packages e2fsprogs + libext2fs2"),
    Case("bpo-openssh-server", "amd64", "minbase", False, ("openssh-server/bookworm-backports",),
         note="apt gives up (openssh-sftp-server needs the stable client)"),
    Case("bpo-systemd-minbase", "amd64", "minbase", False, ("systemd/bookworm-backports",),
         note="apt gives up (libsystemd0 = bpo version)"),
    Case("bpo-nvidia-driver-older", "amd64", "none", False, ("nvidia-driver/bookworm-backports",),
         note="backports is older than stable; apt gives up"),
    Case("brief-example", "amd64", "none", False,
         ("slurmd", "rdma-core=44.0-2", "linux-image-amd64/bookworm-backports", "munge:amd64"), "compute"),
]

EXACT_CASES = [
    Case("exact-rdma-core", "amd64", "none", False, ("rdma-core=44.0-2", "infiniband-diags")),
    Case("exact-rdma-core-arm64-minbase", "arm64", "minbase", True, ("rdma-core=44.0-2",)),
    Case("exact-slurmd-same-in-security", "amd64", "minbase", False, ("slurmd=22.05.8-4+deb12u3",)),
    Case("exact-openssh-client-security-older", "amd64", "none", False, ("openssh-client=1:9.2p1-2+deb12u9",),
         note="security version older than the stable point release"),
    Case("exact-openssh-server-updates-older", "amd64", "minbase", False,
         ("openssh-server=1:9.2p1-2+deb12u7",), note="apt gives up: client = deb12u7 needed"),
    Case("exact-openssh-server-and-client", "amd64", "minbase", False,
         ("openssh-server=1:9.2p1-2+deb12u7", "openssh-client=1:9.2p1-2+deb12u7")),
    Case("exact-openssh-trio-updates-older", "amd64", "minbase", False,
         ("openssh-server=1:9.2p1-2+deb12u7", "openssh-client=1:9.2p1-2+deb12u7",
          "openssh-sftp-server=1:9.2p1-2+deb12u7"), note="apt succeeds once all three are pinned"),
    Case("exact-nvidia-driver-stable-not-security", "amd64", "minbase", False,
         ("nvidia-driver=535.261.03-1",),
         note="apt gives up: its resolver picks the security version for the = deps"),
    Case("exact-nvidia-driver-arm64", "arm64", "none", False, ("nvidia-driver=535.261.03-1",)),
    Case("exact-mariadb-older", "amd64", "none", False, ("mariadb-server=1:10.11.18-0+deb12u1",),
         note="apt gives up: mariadb-client Breaks older server"),
    Case("exact-tzdata-downgrade-base", "amd64", "minbase", False, ("tzdata=2025b-0+deb12u1",),
         note="base has 2026f (stable); updates' 2025b is a downgrade"),
    Case("exact-tzdata-none", "amd64", "none", False, ("tzdata=2025b-0+deb12u1",)),
    Case("remove-base-libsystemd0", "amd64", "minbase", False, ("libelogind0",),
         note="libelogind0 Conflicts/Replaces/Provides libsystemd0: apt removes the base package"),
    Case("switch-init-sysvinit", "amd64", "minbase", False, ("sysvinit-core",)),
]


# Recommends-on mixes of GPU, graphics and compute packages.  apt >= 2.5.3 (bookworm's apt 2.6)
# visits the requests in command-line order in its auto-install pass, so an or-group Recommends is
# satisfied when an *earlier* request's chain already marked a provider.  The shape in bookworm:
# libvdpau1 Recommends "vdpau-driver-all | vdpau-driver"; nvidia-vdpau-driver Provides vdpau-driver
# and is marked by nvidia-driver (Depends) or xserver-xorg-video-nvidia (Recommends); libvdpau1 is
# reached through nvidia-cuda-toolkit -> nvidia-cuda-dev Recommends libvdpau-dev -> libvdpau1.  When
# the libvdpau1 request/chain comes first, vdpau-driver-all is marked (with mesa-vdpau-drivers,
# libvdpau-va-gl1 and libva2's "va-driver-all | va-driver": 10 more packages on amd64, 7 on arm64,
# which has no Intel VA drivers); when the NVIDIA chain comes first it is not.  Checked with real
# apt in both orders; every "<a>" / "<a>-rev" id pair below differs, the "-any-order" cases don't
# (nvidia-vdpau-driver or mesa-vdpau-drivers is requested explicitly, or nothing reaches libvdpau1).
_HPC = ("rdma-core", "infiniband-diags", "slurmd", "munge", "openmpi-bin")
_COMPUTE_CUDA_FIRST = ("nvidia-cuda-toolkit", "nvidia-driver") + tuple(
    p for p in ROLES["compute"]["amd64"] if p not in ("nvidia-driver", "nvidia-cuda-toolkit"))

GPU_GFX_CASES = [
    # the compute role with CUDA before the driver: apt adds the vdpau-driver-all chain that the
    # role order (role-compute-ARCH-BASE-rec) doesn't
    Case("gpu-gfx-compute-cuda-first-amd64-minbase-rec", "amd64", "minbase", True, _COMPUTE_CUDA_FIRST,
         "compute", note="vs role-compute-amd64-minbase-rec: +vdpau-driver-all chain"),
    Case("gpu-gfx-compute-cuda-first-arm64-none-rec", "arm64", "none", True, _COMPUTE_CUDA_FIRST,
         "compute", note="vs role-compute-arm64-none-rec: +vdpau-driver-all chain"),
    Case("gpu-gfx-driver-cuda-amd64-none-rec", "amd64", "none", True, ("nvidia-driver", "nvidia-cuda-toolkit")),
    Case("gpu-gfx-driver-cuda-rev-amd64-none-rec", "amd64", "none", True,
         ("nvidia-cuda-toolkit", "nvidia-driver"), note="+vdpau-driver-all chain"),
    Case("gpu-gfx-vdpaudev-hpc-xorgnv-amd64-minbase-rec", "amd64", "minbase", True,
         ("libvdpau-dev", *_HPC, "xserver-xorg-video-nvidia"), "compute", note="+vdpau-driver-all chain"),
    Case("gpu-gfx-vdpaudev-hpc-xorgnv-rev-amd64-minbase-rec", "amd64", "minbase", True,
         ("xserver-xorg-video-nvidia", *reversed(_HPC), "libvdpau-dev"), "compute"),
    Case("gpu-gfx-cudadev-xorgnv-arm64-minbase-rec", "arm64", "minbase", True,
         ("nvidia-cuda-dev", "xserver-xorg-video-nvidia"), note="+vdpau-driver-all chain"),
    Case("gpu-gfx-cudadev-xorgnv-rev-arm64-minbase-rec", "arm64", "minbase", True,
         ("xserver-xorg-video-nvidia", "nvidia-cuda-dev")),
    Case("gpu-gfx-cudadev-libcuda-driver-amd64-none-rec", "amd64", "none", True,
         ("nvidia-cuda-dev", "libcuda1", "nvidia-driver"), note="+vdpau-driver-all chain"),
    Case("gpu-gfx-cudadev-libcuda-driver-rev-amd64-none-rec", "amd64", "none", True,
         ("nvidia-driver", "libcuda1", "nvidia-cuda-dev")),
    Case("gpu-gfx-vdpau-va-hpc-any-order-arm64-none-rec", "arm64", "none", True,
         ("libva-dev", "vdpau-driver-all", "mesa-vdpau-drivers", "nvidia-vdpau-driver", *_HPC), "compute"),
    Case("gpu-gfx-va-xorgnv-hpc-any-order-arm64-minbase-rec", "arm64", "minbase", True,
         ("libva-dev", "xserver-xorg-video-nvidia", *_HPC), "compute"),
]
# id -> the id of the same request set in the other order, for the summary's order report
GPU_GFX_TWINS = {
    "gpu-gfx-compute-cuda-first-amd64-minbase-rec": "role-compute-amd64-minbase-rec",
    "gpu-gfx-compute-cuda-first-arm64-none-rec": "role-compute-arm64-none-rec",
    **{c.id: c.id.replace("-rev-", "-", 1) for c in GPU_GFX_CASES if "-rev-" in c.id},
}


@functools.cache
def _main_package_names(arch: str) -> tuple[str, ...]:
    """Sorted, unique package names of bookworm main/binary-ARCH (empty when the data is absent)."""
    path = DEBIAN_DATA / "debian" / "dists" / "bookworm" / "main" / f"binary-{arch}" / "Packages.xz"
    if not path.is_file():
        return ()
    # decompressing 50 MB takes seconds at every collection, so keep the name list in a temp file
    st = path.stat()
    cache = Path(tempfile.gettempdir()) / f"imagebuild-test-names-{arch}-{st.st_size}-{st.st_mtime_ns}.txt"
    try:
        return tuple(cache.read_text(encoding="utf-8").split())
    except OSError:
        pass
    with lzma.open(path, "rt", encoding="utf-8", errors="replace") as f:
        names = tuple(sorted({line[9:].strip() for line in f if line.startswith("Package: ")}))
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}")
    tmp.write_text("\n".join(names) + "\n", encoding="utf-8")
    tmp.replace(cache)
    return names


def _random_cases(n_amd64: int = 26, n_arm64: int = 10) -> list[Case]:
    rng = random.Random(SEED)
    out = []
    i = 0
    for arch, n in (("amd64", n_amd64), ("arm64", n_arm64)):
        names = _main_package_names(arch)
        if not names:
            continue
        for name in rng.sample(names, n):
            base = "none" if i % 2 == 0 else "minbase"
            rec = (i // 2) % 2 == 1
            cid = f"rand-{arch}-{name}-{base}-{'rec' if rec else 'norec'}"
            out.append(Case(cid, arch, base, rec, (name,)))
            i += 1
    return out


CASES: list[Case] = _role_cases() + GPU_GFX_CASES + BACKPORTS_CASES + EXACT_CASES + _random_cases()


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> AptOracle:
    return AptOracle(tmp_path_factory.mktemp("apt-oracle"))


@pytest.fixture(scope="session")
def minbase(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Base status files per arch (the real amd64 minbase; arm64 derived from it)."""
    if not MINBASE_STATUS.is_file():
        pytest.skip(f"base status not found at {MINBASE_STATUS}")
    d = tmp_path_factory.mktemp("bases")
    text = MINBASE_STATUS.read_text(encoding="utf-8")
    out = {"amd64": MINBASE_STATUS.resolve()}
    arm = d / "bookworm-minbase-arm64.status"
    arm.write_text(re.sub(r"^Architecture: amd64$", "Architecture: arm64", text, flags=re.M),
                   encoding="utf-8")
    out["arm64"] = arm
    return out


# Outcome counters, printed at the end of the module (visible with -s, and in the terminal summary).
_OUTCOMES: collections.Counter[str] = collections.Counter()
_TIMES: dict[str, list[float]] = collections.defaultdict(list)
_DETAILS: list[str] = []
_APT_SETS: dict[str, frozenset[Pkg] | None] = {}  # case id -> apt's set (None: apt gave up)


def _order_report() -> list[str]:
    """For the gpu-gfx cases whose twin (same requests, other order) also ran: does apt differ?"""
    out = []
    for cid, twin in GPU_GFX_TWINS.items():
        if cid not in _APT_SETS or twin not in _APT_SETS:
            continue
        a, b = _APT_SETS[cid], _APT_SETS[twin]
        if a is None or b is None:
            verdict = "apt gives up in " + " and ".join(x for x, r in ((cid, a), (twin, b)) if r is None)
        elif a == b:
            verdict = "same set"
        else:
            verdict = f"order matters: +{len(a - b)} -{len(b - a)} vs the other order"
        out.append(f"{cid} vs {twin}: {verdict}")
    return out


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    if not _OUTCOMES:
        return
    lines = [f"differential apt summary: {sum(_OUTCOMES.values())} cases in {time.monotonic() - t0:.0f}s"]
    lines += [f"  {k:<40} {v}" for k, v in sorted(_OUTCOMES.items())]
    for k, ts in sorted(_TIMES.items()):
        mean = sum(ts) / len(ts)
        lines.append(f"  time {k:<35} total {sum(ts):7.1f}s  mean {mean:5.2f}s  max {max(ts):5.2f}s")
    lines += ["  " + d for d in _DETAILS + _order_report()]
    tr = request.config.pluginmanager.getplugin("terminalreporter")
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if tr is None or capman is None:
        print("\n" + "\n".join(lines))
        return
    with capman.global_and_fixture_disabled():  # show it even without -s
        tr.write_line("")
        for line in lines:
            tr.write_line(line)


# -- helpers -----------------------------------------------------------------------------------

def write_config(dirpath: Path, base_url: str, case: Case, base_path: Path | None) -> Path:
    def arr(xs: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(_toml_str(x) for x in xs) + "]"

    cfg = dirpath / "imagebuild.toml"
    cfg.write_text(
        f"""# generated by tests/test_differential_apt.py, case {case.id}
snapshot = "{DEBIAN_SNAPSHOT}"
[distros.bookworm]
family = "deb"
arches = [{_toml_str(case.arch)}]
base = {_toml_str(str(base_path) if base_path else "none")}
recommends = {"true" if case.recommends else "false"}

[[distros.bookworm.repos]]
name = "debian"
url = {_toml_str(base_url + "/debian")}
suites = {arr(MAIN_SUITES)}
components = {arr(DEBIAN_COMPONENTS)}
signed-by = {_toml_str(DEBIAN_KEYRING)}

[[distros.bookworm.repos]]
name = "security"
url = {_toml_str(base_url + "/debian-security")}
suites = ["bookworm-security"]
components = {arr(DEBIAN_COMPONENTS)}
signed-by = {_toml_str(DEBIAN_KEYRING)}

[roles.{case.role}]
distro = "bookworm"
packages = {arr(case.packages)}
""",
        encoding="utf-8",
    )
    return cfg


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_bom(path: Path) -> frozenset[Pkg]:
    """Parse a BOM; also checks the contract's shape (3 fields, sorted by name then arch, no dups)."""
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        assert len(fields) == 3, f"{path}:{lineno}: expected 'name version arch', got {line!r}"
        entries.append((fields[0], fields[1], fields[2]))
    keys = [(n, a) for n, _, a in entries]
    assert keys == sorted(keys), f"{path}: BOM lines are not sorted by name then arch"
    assert len(set(keys)) == len(keys), f"{path}: duplicate name/arch entries"
    return frozenset(entries)


def _requests_unmet(bom: frozenset[Pkg], requests: tuple[str, ...], arch: str) -> list[str]:
    """Requests a set visibly ignores: a ``name=version`` pin with another version, or a real
    package name (not a virtual one) that is absent."""
    by_name: dict[str, set[str]] = collections.defaultdict(set)
    for n, v, _ in bom:
        by_name[n].add(v)
    real = set(_main_package_names(arch))
    unmet = []
    for req in requests:
        m = re.fullmatch(r"([^=/:]+)(?::[^=/]+)?(?:=(.+)|/(.+))?", req)
        if not m:
            continue
        name, version = m.group(1), m.group(2)
        if version is not None and version not in by_name.get(name, set()):
            unmet.append(f"{req} (set has {sorted(by_name.get(name, set())) or 'nothing'})")
        elif version is None and name in real and name not in by_name:
            unmet.append(f"{req} (absent)")
    return unmet


# -- the oracle alone (does not need imagebuild) -------------------------------------------------

def test_oracle_selftest_slurmd_amd64(debian_http: str, oracle: AptOracle, minbase: dict[str, Path]) -> None:
    repos = debian_repos(debian_http)
    r = oracle.simulate(repos, "amd64", None, False, ["slurmd"])
    assert not r.failed, r.describe()
    assert r.packages is not None
    pkgs = {n: (v, a) for n, v, a in r.packages}
    assert pkgs["slurmd"] == ("22.05.8-4+deb12u3", "amd64")
    assert pkgs["munge"][1] == "amd64" and pkgs["libc6"][1] == "amd64"
    # Architecture: all packages come out as "all", as dpkg-query prints them
    assert pkgs["adduser"][1] == "all" and pkgs["debconf"][1] == "all"
    assert "bash" not in pkgs and "dpkg" not in pkgs, "base none must not pull Essential packages by itself"
    assert 30 < len(r.packages) < 80
    assert not r.removed

    # the same with the minbase: base kept, only the new packages added
    base = parse_status(minbase["amd64"])
    assert len(base) == 96
    rb = oracle.simulate(repos, "amd64", minbase["amd64"], False, ["slurmd"])
    assert not rb.failed and rb.packages is not None, rb.describe()
    assert base <= rb.packages
    assert set(rb.installed) == rb.packages - base and "slurmd" in {n for n, _, _ in rb.installed}

    # round trip: apt accepts its own answer when every package is given explicitly
    ok, why, _ = oracle.check_explicit(repos, "amd64", minbase["amd64"], False, rb.packages)
    assert ok, why
    # ... and rejects a set that misses a dependency
    broken = frozenset(p for p in rb.packages if p[0] != "munge")
    ok, why, _ = oracle.check_explicit(repos, "amd64", minbase["amd64"], False, broken)
    assert not ok and "munge" in why


def test_oracle_base_matches_dpkg_query(minbase: dict[str, Path], tmp_path: Path) -> None:
    """parse_status() == what dpkg-query prints for the same database."""
    admin = tmp_path / "admin"
    (admin / "info").mkdir(parents=True)
    (admin / "status").write_bytes(minbase["amd64"].read_bytes())
    (admin / "available").write_text("")
    fmt = "${Package} ${Version} ${Architecture}\n"
    out = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f", fmt],
                         capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"}).stdout
    dq = frozenset(tuple(line.split(" ")) for line in out.splitlines() if line)
    assert dq == parse_status(minbase["amd64"])
    assert ("adduser", "3.134", "all") in dq


def test_oracle_upgrade_remove_downgrade_and_failure(debian_http: str, oracle: AptOracle,
                                                     minbase: dict[str, Path]) -> None:
    repos = debian_repos(debian_http)
    mb = minbase["amd64"]
    base = parse_status(mb)
    # upgrade of base packages from backports: "Inst e2fsprogs [OLD] (NEW Debian Backports:... [amd64])"
    r = oracle.simulate(repos, "amd64", mb, False, ["e2fsprogs/bookworm-backports"])
    assert not r.failed and r.packages is not None, r.describe()
    assert ("e2fsprogs", "1.47.2-3~bpo12+1", "amd64") in r.packages
    assert ("e2fsprogs", "1.47.0-2+b2", "amd64") not in r.packages
    assert len(r.packages) == len(base)
    # removal: libelogind0 replaces libsystemd0 ("Remv libsystemd0 [OLD] [rdeps...]")
    r = oracle.simulate(repos, "amd64", mb, False, ["libelogind0"])
    assert not r.failed and r.packages is not None, r.describe()
    assert not any(n == "libsystemd0" for n, _, _ in r.packages)
    assert any(n == "libelogind0" for n, _, _ in r.packages)
    # downgrade (plain apt-get -s, no -y: apt simulates it)
    r = oracle.simulate(repos, "amd64", mb, False, ["tzdata=2025b-0+deb12u1"])
    assert not r.failed and r.packages is not None, r.describe()
    assert ("tzdata", "2025b-0+deb12u1", "all") in r.packages
    # apt gives up
    r = oracle.simulate(repos, "amd64", mb, False, ["nvidia-driver=535.261.03-1"])
    assert r.failed and r.packages is None and r.returncode != 0
    assert any("Unable to correct problems" in e for e in r.errors)
    r = oracle.simulate(repos, "amd64", None, False, ["no-such-package-xyz"])
    assert r.failed


def test_oracle_explicit_accepts_a_repaired_pin_set(debian_http: str, oracle: AptOracle,
                                                     minbase: dict[str, Path]) -> None:
    """apt gives up on openssh-server=<older>; the set with its source siblings pinned is what a
    better resolver would answer, and check_explicit() accepts exactly that."""
    repos = debian_repos(debian_http)
    mb = minbase["amd64"]
    v = "1:9.2p1-2+deb12u7"
    assert oracle.simulate(repos, "amd64", mb, False, [f"openssh-server={v}"]).failed
    r = oracle.simulate(repos, "amd64", mb, False,
                        [f"openssh-server={v}", f"openssh-client={v}", f"openssh-sftp-server={v}"])
    assert not r.failed and r.packages is not None, r.describe()
    ok, why, _ = oracle.check_explicit(repos, "amd64", mb, False, r.packages)
    assert ok, why
    assert not _requests_unmet(r.packages, (f"openssh-server={v}",), "amd64")
    assert _requests_unmet(r.packages, ("openssh-server=1:9.2p1-2+deb12u10",), "amd64")


def test_oracle_arm64(debian_http: str, oracle: AptOracle, minbase: dict[str, Path]) -> None:
    repos = debian_repos(debian_http)
    r = oracle.simulate(repos, "arm64", minbase["arm64"], False, ["rdma-core"])
    assert not r.failed and r.packages is not None, r.describe()
    assert {a for _, _, a in r.packages} == {"arm64", "all"}
    assert ("rdma-core", "44.0-2", "arm64") in r.packages


def test_oracle_request_order_changes_recommends(debian_http: str, oracle: AptOracle) -> None:
    """apt 2.6's auto-install pass follows the command-line order: with nvidia-driver first, its
    nvidia-vdpau-driver (Provides vdpau-driver) satisfies libvdpau1's "vdpau-driver-all |
    vdpau-driver" Recommends (reached via nvidia-cuda-toolkit -> nvidia-cuda-dev -> libvdpau-dev);
    with nvidia-cuda-toolkit first, apt takes vdpau-driver-all and its chain (the gpu-gfx pairs)."""
    repos = debian_repos(debian_http)
    fwd = oracle.simulate(repos, "amd64", None, True, ["nvidia-driver", "nvidia-cuda-toolkit"])
    rev = oracle.simulate(repos, "amd64", None, True, ["nvidia-cuda-toolkit", "nvidia-driver"])
    assert not fwd.failed and not rev.failed, fwd.describe() + rev.describe()
    assert fwd.packages is not None and rev.packages is not None
    assert fwd.packages < rev.packages
    extra = {n for n, _, _ in rev.packages - fwd.packages}
    assert {"vdpau-driver-all", "mesa-vdpau-drivers", "libvdpau-va-gl1", "va-driver-all"} <= extra, extra
    assert {"nvidia-vdpau-driver", "libvdpau1", "libvdpau-dev"} <= {n for n, _, _ in fwd.packages}


# -- the differential cases ----------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lock_matches_apt(case: Case, debian_http: str, oracle: AptOracle, minbase: dict[str, Path],
                          run_imagebuild, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repos = debian_repos(debian_http)
    base_path = minbase[case.arch] if case.base == "minbase" else None
    cfg = write_config(tmp_path, debian_http, case, base_path)

    def timed_lock() -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        try:
            return run_imagebuild(cfg, "lock")  # type: ignore[no-any-return]
        finally:
            _TIMES["imagebuild lock"].append(time.monotonic() - t0)

    # imagebuild runs in the background while apt simulates (both are mostly CPU-bound, single-threaded)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = None if ORACLE_ONLY else pool.submit(timed_lock)
        t = time.monotonic()
        apt = oracle.simulate(repos, case.arch, base_path, case.recommends, case.packages)
        _TIMES["apt-get -s install"].append(time.monotonic() - t)
        _APT_SETS[case.id] = apt.packages
        kind = "apt-fails" if apt.failed else "apt-ok"
        if future is None:
            _OUTCOMES[f"{kind} (oracle only)"] += 1
            if apt.failed:
                _DETAILS.append(f"{case.id}: apt gives up: {'; '.join(apt.errors)[:150]}")
            pytest.skip(f"IMAGEBUILD_DIFF_ORACLE_ONLY=1 ({kind}, "
                        f"{'-' if apt.packages is None else len(apt.packages)} packages)")
        proc = future.result()
    bom_path = tmp_path / "boms" / f"{case.role}-{case.arch}.bom"
    out = f"imagebuild exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback (most recent call last)" not in proc.stderr, out

    if not apt.failed:
        assert apt.packages is not None
        if proc.returncode != 0:
            _OUTCOMES["apt-ok / imagebuild-error"] += 1
            pytest.fail(f"apt resolves {case.packages} ({len(apt.packages)} packages) but {out}")
        bom = read_bom(bom_path)
        if bom != apt.packages:
            _OUTCOMES["apt-ok / MISMATCH"] += 1
            pytest.fail(f"BOM {bom_path.name} differs from apt-get -s install {' '.join(case.packages)}:\n"
                        + set_diff(bom, apt.packages) + f"\napt: {apt.command}")
        _OUTCOMES["apt-ok / match"] += 1
        return

    # apt gives up: imagebuild may fail with 3, or find a set that apt accepts explicitly
    if proc.returncode == 3:
        _OUTCOMES["apt-fails / imagebuild exit 3"] += 1
        return
    if proc.returncode != 0:
        _OUTCOMES["apt-fails / imagebuild bad exit"] += 1
        pytest.fail(f"apt gives up ({'; '.join(apt.errors)}); imagebuild must exit 0 or 3, {out}")
    bom = read_bom(bom_path)
    unmet = _requests_unmet(bom, case.packages, case.arch)
    assert not unmet, f"imagebuild's set ignores requests: {unmet}"
    ok, why, _ = oracle.check_explicit(repos, case.arch, base_path, case.recommends, bom)
    if not ok:
        _OUTCOMES["apt-fails / imagebuild set REJECTED"] += 1
        pytest.fail(f"apt gives up on {case.packages}; imagebuild's set is not accepted by apt: {why}")
    _OUTCOMES["apt-fails / imagebuild set accepted"] += 1


def test_case_count() -> None:
    """The suite keeps its breadth (role matrix + gpu-gfx + backports + exact + >= 30 random cases)."""
    n_random = sum(c.id.startswith("rand-") for c in CASES)
    assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"
    if _main_package_names("amd64"):
        assert n_random >= 30
    ids = {c.id for c in CASES}
    assert len(GPU_GFX_CASES) == 12 and all(c.id.startswith("gpu-gfx-") and c.recommends for c in GPU_GFX_CASES)
    assert {(c.arch, c.base) for c in GPU_GFX_CASES} == {(a, b) for a in ARCHES for b in ("none", "minbase")}
    assert all(k in ids and v in ids for k, v in GPU_GFX_TWINS.items()), "gpu-gfx twin ids"
    by_id = {c.id: c for c in CASES}
    for k, v in GPU_GFX_TWINS.items():  # a twin is the same request set, arch and base in another order
        a, b = by_id[k], by_id[v]
        assert (sorted(a.packages), a.arch, a.base, a.recommends) == (sorted(b.packages), b.arch, b.base,
                                                                      b.recommends), (k, v)
        assert a.packages != b.packages, (k, v)
    print(f"\n{len(CASES)} differential cases: {len(_role_cases())} role, {len(GPU_GFX_CASES)} gpu-gfx, "
          f"{len(BACKPORTS_CASES)} backports, {len(EXACT_CASES)} exact/base-change, "
          f"{n_random} random (seed {SEED})")
