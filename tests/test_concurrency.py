"""Two writing runs in one project serialise on a file lock: the second waits (saying so) or, with --no-wait,
fails at once naming the holder; both end with the same correct outputs. And the child one cold lock forks to read
later targets into the cache does that, or fails without effect."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagebuild.app.lock import _load_distro_arch, _Prefill
from imagebuild.config import load_config
from imagebuild.fetch import Cache

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"


def _project(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle", "dnf-oracle", "containers", "packer",
                                                                "images", "snapshots.lock", "boms"))
    return dst


def _lock(cfg: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LC_ALL": "C"})


def test_a_second_run_waits_or_fails_with_no_wait(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    cfg = proj / "imagebuild.toml"
    held = os.open(proj / ".imagebuild.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)  # another run holds the project
    os.pwrite(held, b"4242\n", 0)
    try:
        busy = _lock(cfg, "--no-wait")
        _, err = busy.communicate(timeout=120)
        assert busy.returncode == 2 and "another imagebuild run (pid 4242) is writing in" in err, err
        assert not (proj / "snapshots.lock").exists()
        waiting = _lock(cfg)
        time.sleep(2)
        assert waiting.poll() is None  # still waiting
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0 and "waiting for another imagebuild run (pid 4242)" in err, err
    first = (proj / "snapshots.lock").read_bytes()
    # two at once: both succeed, one after the other, and the outputs are what one run writes
    a, b = _lock(cfg), _lock(cfg)
    assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0
    assert (proj / "snapshots.lock").read_bytes() == first
    assert not [p for p in proj.rglob(".*") if p.name != ".imagebuild.lock" and p.is_file()]  # no temp files left


def test_the_prefill_child_reads_later_targets_into_the_cache_or_fails_quietly(tmp_path: Path) -> None:
    """A cold lock of several deb distro × arch targets has a forked child read the later ones into the cache on
    the second core. It fills the cache (the parent then loads that target from it without parsing anything), and
    a child that fails leaves the parent waiting for nothing and reporting nothing."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no child is forked")
    config = load_config(_project(tmp_path) / "imagebuild.toml")
    distro = config.distros["bookworm"]
    cache = Cache(tmp_path / "cache")
    helper = _Prefill([(distro, "arm64")], config, cache)
    assert helper.pid
    helper.wait(1)
    assert helper.done == 1
    helper.stop()
    saved = list((tmp_path / "cache" / "universe").rglob("*"))
    assert [p for p in saved if p.is_file()], "the child saved the arm64 universe"
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    target = _load_distro_arch(distro, "arm64", config, cache, {}, {})
    assert target.universe.get("slurmd") is not None
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert after == before, "the parent read the arm64 target from what the child wrote"

    broken = dataclasses.replace(distro, repos=tuple(dataclasses.replace(r, url=f"file://{tmp_path}/nowhere")
                                                     for r in distro.repos))
    helper = _Prefill([(broken, "arm64")], config, Cache(tmp_path / "cache2"))
    helper.wait(1)  # returns: the child ended without the target
    assert (helper.pid, helper.done) == (0, 0)
    helper.stop()
