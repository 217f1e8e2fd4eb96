"""End-to-end on the embedded example mirror: lock, determinism, --check, why, and bad input.

Every bad-input case must fail with one clear line, the right exit code, and leave the existing
lock and BOMs byte-for-byte untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "gpu-cluster"


def run(cfg: Path, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("snapshots.lock", "boms", "apt-oracle"))
    return dst


def snapshot_outputs(root: Path) -> dict[str, str]:
    files = [root / "snapshots.lock", *sorted((root / "boms").glob("*.bom"))]
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_lock_is_deterministic_and_check_detects_staleness(project: Path, tmp_path: Path) -> None:
    cfg = project / "imagebuild.toml"
    first = run(cfg, "lock", cache=tmp_path / "c1")
    assert first.returncode == 0, first.stderr
    boms = sorted(p.name for p in (project / "boms").glob("*.bom"))
    assert boms == sorted([f"{r}-{a}.bom" for r in ("compute", "control", "login") for a in ("amd64", "arm64")]
                          + [f"compute-container-{a}.bom" for a in ("amd64", "arm64")]
                          + [f"rocky-compute{c}-{a}.bom" for c in ("", "-container") for a in ("x86_64", "aarch64")])
    before = snapshot_outputs(project)
    # a cold cache and a warm one give the same bytes
    again = run(cfg, "lock", cache=tmp_path / "c2")
    assert again.returncode == 0 and "lock unchanged" in again.stderr
    assert snapshot_outputs(project) == before
    same = run(cfg, "lock", "--dry-run", "--format", "json", cache=tmp_path / "c2")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout).keys() == {f"{Path(b).stem}.bom" for b in boms}
    assert not any(v for diff in json.loads(same.stdout).values() for v in diff.values())  # the same lock: no change
    assert run(cfg, "lock", "--check", cache=tmp_path / "c2").returncode == 0

    cfg.write_text(cfg.read_text().replace('"slurmd"', '"slurmd", "munge"', 1))
    stale = run(cfg, "lock", "--check", cache=tmp_path / "c2")
    assert stale.returncode == 1 and "stale" in stale.stderr
    assert snapshot_outputs(project) == before  # --check writes nothing

    bom = project / "boms" / "compute-amd64.bom"
    bom.write_text(bom.read_text() + "extra 1.0 amd64\n")
    cfg.write_text(cfg.read_text().replace('"slurmd", "munge"', '"slurmd"', 1))
    edited = run(cfg, "lock", "--check", cache=tmp_path / "c2")
    assert edited.returncode == 1 and "compute-amd64.bom does not match" in edited.stderr


def test_bom_lines_are_sorted_name_version_arch(project: Path, tmp_path: Path) -> None:
    assert run(project / "imagebuild.toml", "lock", cache=tmp_path / "c").returncode == 0
    lines = [ln for ln in (project / "boms" / "compute-amd64.bom").read_text().splitlines() if not ln.startswith("#")]
    assert lines and all(len(ln.split()) == 3 for ln in lines)
    keys = [(ln.split()[0], ln.split()[2]) for ln in lines]
    assert keys == sorted(keys)
    assert any(ln.endswith(" all") for ln in lines) and any(ln.endswith(" amd64") for ln in lines)


def test_why_prints_the_chain_from_the_request(project: Path, tmp_path: Path) -> None:
    cfg = project / "imagebuild.toml"
    assert run(cfg, "lock", cache=tmp_path / "c").returncode == 0
    lock_text = (project / "snapshots.lock").read_text()
    assert '"required_by"' in lock_text
    out = run(cfg, "why", "libmunge2", "--role", "compute", "--arch", "amd64", cache=tmp_path / "c")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("compute/amd64: libmunge2 ")
    assert "requested" in lines[1]
    assert "libmunge2" in lines[-1] and "Depends" in lines[-1]
    missing = run(cfg, "why", "no-such-package", "--role", "compute", cache=tmp_path / "c")
    assert missing.returncode == 1


def _locked(project: Path, tmp_path: Path) -> dict[str, str]:
    assert run(project / "imagebuild.toml", "lock", cache=tmp_path / "good").returncode == 0
    return snapshot_outputs(project)


def _tamper_packages(project: Path) -> None:
    # change one byte of every Packages variant the Release lists; its signature stays valid
    for p in (project / "mirror" / "debian" / "dists" / "bookworm" / "main" / "binary-amd64").glob("Packages*"):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x01
        p.write_bytes(bytes(data))


def _tamper_inrelease(project: Path) -> None:
    for name in ("InRelease", "Release"):
        p = project / "mirror" / "debian" / "dists" / "bookworm" / name
        if p.exists():
            p.write_text(p.read_text().replace("Codename: bookworm", "Codename: bookwarm", 1))


def _wrong_key(project: Path) -> None:
    cfg = project / "imagebuild.toml"
    cfg.write_text(cfg.read_text().replace('signed-by = "keys/example-archive.gpg"',
                                           'signed-by = "/usr/share/keyrings/debian-archive-keyring.gpg"', 1))


def _missing_component(project: Path) -> None:
    cfg = project / "imagebuild.toml"
    cfg.write_text(cfg.read_text().replace('components = ["main", "non-free"]',
                                           'components = ["main", "non-free", "contrb"]', 1))


def _typo_package(project: Path) -> None:
    cfg = project / "imagebuild.toml"
    cfg.write_text(cfg.read_text().replace('"slurmd"', '"slurmdd"', 1))


def _unknown_key(project: Path) -> None:
    cfg = project / "imagebuild.toml"
    cfg.write_text(cfg.read_text().replace("recommends = false", "recomends = false", 1))


def _bad_version_spec(project: Path) -> None:
    cfg = project / "imagebuild.toml"
    cfg.write_text(cfg.read_text().replace('"slurmd"', '"slurmd=="', 1))


@pytest.mark.parametrize(
    ("breakage", "code", "needle"),
    [
        (_tamper_packages, 4, "checksum mismatch"),
        (_tamper_inrelease, 4, "bad signature"),
        (_wrong_key, 4, "no signature by a key in the keyring"),
        (_missing_component, 4, "component 'contrb' does not exist"),
        (_typo_package, 3, "unable to locate package 'slurmdd'"),
        (_unknown_key, 2, "distros.bookworm.recomends: unknown key"),
        (_bad_version_spec, 2, "bad package spec 'slurmd=='"),
    ],
    ids=["tampered-packages", "bad-signature", "wrong-keyring", "missing-component", "typo-package",
         "unknown-config-key", "bad-package-spec"],
)
def test_bad_input_fails_clearly_and_keeps_the_lock(project: Path, tmp_path: Path, breakage, code: int,
                                                    needle: str) -> None:
    before = _locked(project, tmp_path)
    breakage(project)
    res = run(project / "imagebuild.toml", "lock", cache=tmp_path / "fresh")
    assert res.returncode == code, res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines()[0].startswith("imagebuild: error: ")
    assert snapshot_outputs(project) == before


def test_older_release_than_the_locked_one_is_refused_as_rollback(project: Path, tmp_path: Path) -> None:
    cfg = project / "imagebuild.toml"
    assert run(cfg, "lock", cache=tmp_path / "c").returncode == 0
    lock = project / "snapshots.lock"
    # pretend the previous lock saw a newer bookworm Release than the mirror now serves
    text = lock.read_text()
    newer = text.replace('"date": "Sat, 21 Nov 2026', '"date": "Sun, 22 Nov 2027', 1)
    assert newer != text
    lock.write_text(newer)
    before = snapshot_outputs(project)
    res = run(cfg, "lock", cache=tmp_path / "c")
    assert res.returncode == 4, res.stderr
    assert "refusing a rollback" in res.stderr
    assert snapshot_outputs(project) == before


def test_did_you_mean_names_only_close_matches() -> None:
    from imagebuild.app import did_you_mean

    # the names real bookworm offered for a typo'd `rdma-coer` before: only the one-edit match belongs
    names = ["rdma-core", "xracer", "mate-core", "rdma-core-dev", "librdmacm1"]
    assert did_you_mean("rdma-coer", names) == "did you mean rdma-core?"
    assert did_you_mean("slurmdd", ["slurmd", "slurmctld", "slurm-client"]) == "did you mean slurmd?"
    assert did_you_mean("zzz", names) is None


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime not installed (apt-get install faketime)")
@pytest.mark.skipif("faketime" in os.environ.get("LD_PRELOAD", ""),
                    reason="already under a fake clock (.ci/run's second pass): nested libfaketime skews gpgv's time")
def test_no_snapshot_means_now_and_says_so(project: Path, tmp_path: Path) -> None:
    """Without `snapshot`, Release validity is the one thing checked against the clock: lock says so while the
    metadata is valid (the example's expires 2026-11-28), and names the key to set once it has expired."""
    cfg = project / "imagebuild.toml"
    cfg.write_text(re.sub(r'^snapshot = "[^"]*"\n', "", cfg.read_text(), count=1, flags=re.M))
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(tmp_path / "c"), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock"]
    before = subprocess.run(["faketime", "2026-11-25 12:00:00", *cmd], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert before.returncode == 0, before.stderr
    assert "no `snapshot` is set" in before.stderr and "Sat, 28 Nov 2026" in before.stderr
    after = subprocess.run(["faketime", "2026-12-01 12:00:00", *cmd], capture_output=True, text=True, env=env,
                           timeout=120, check=False)
    assert after.returncode == 4 and "expired" in after.stderr and "set `snapshot`" in after.stderr, after.stderr
