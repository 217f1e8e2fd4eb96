"""Two writing runs in one project serialise on a file lock: the second waits (saying so) or, with --no-wait,
fails at once naming the holder; both end with the same correct outputs. And the child a lock forks to lock the
later targets (deb or rpm) gives the parent's own result, or fails without effect."""

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

from imagebuild import log
from imagebuild.app import lock as lock_module
from imagebuild.app.lock import _Ahead, _lock_deb, _lock_target, _roles_of
from imagebuild.config import Config, Distro, Role, load_config
from imagebuild.fetch import Cache
from imagebuild.lockfile import Lock, render_lock

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"


def _project(tmp_path: Path) -> Path:
    dst = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle", "dnf-oracle", "containers", "packer",
                                                                "images", "snapshots.lock", "boms"))
    return dst


def _example(tmp_path: Path, distro: str) -> tuple[Config, Distro, list[Role]]:
    """The example project copied under `tmp_path`, loaded: its config, `distro` and that distro's roles."""
    config = load_config(_project(tmp_path) / "imagebuild.toml")
    return config, config.distros[distro], _roles_of(config, distro)


# the child that locks the later targets is forked only where this process may run on two CPUs
_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: no child is forked")


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


@_two_cpus
def test_the_child_locks_later_targets_as_the_parent_would_or_fails_quietly(tmp_path: Path) -> None:
    """A lock of several deb distro × arch targets has a forked child lock the later ones on the second core. Its
    result is what the parent computes itself, byte for byte in the lock; it is taken only if it was resolved
    against the Releases the run already holds; what it printed is printed by the parent when taken (a warning
    the parent already gave, once); a child that fails leaves the parent waiting for nothing and reporting
    nothing."""
    config, distro, roles = _example(tmp_path, "bookworm")
    cache = Cache(tmp_path / "cache")
    releases: dict = {}
    resolved: dict[tuple[str, str], str] = {}
    mine = _lock_deb(distro, "amd64", roles, config, cache, releases, resolved)
    log.set_verbosity(1)
    ahead = _Ahead([(distro, "arm64", roles)], config, cache)
    assert ahead.pid
    theirs = ahead.take(0, dict(releases), dict(resolved))
    ahead.close()
    assert theirs is not None
    alone = _lock_deb(distro, "arm64", roles, config, Cache(tmp_path / "cache-alone"), {}, {})
    assert render_lock(Lock("x", (*mine[0], *theirs[0]), (*mine[1], *theirs[1]))) == \
        render_lock(Lock("x", (*mine[0], *alone[0]), (*mine[1], *alone[1])))

    # another InRelease than the one this run read: not taken
    (key, (info, release)), *_ = releases.items()
    changed = {**releases, key: (dataclasses.replace(info, sha256="0" * 64), release)}
    ahead = _Ahead([(distro, "arm64", roles)], config, cache)
    assert ahead.take(0, changed, dict(resolved)) is None
    ahead.close()

    broken = dataclasses.replace(distro, repos=tuple(dataclasses.replace(r, url=f"file://{tmp_path}/nowhere")
                                                     for r in distro.repos))
    ahead = _Ahead([(broken, "arm64", roles)], config, Cache(tmp_path / "cache2"))
    assert ahead.take(0, {}, {}) is None  # returns: the child ended without the target
    assert ahead.pid == 0
    ahead.close()


@_two_cpus
def test_the_child_locks_later_rpm_targets_as_the_parent_would(tmp_path: Path) -> None:
    """rpm targets go to the child too (reading the repodata, writing the .solv files, resolving): its result is
    the parent's own, byte for byte in the lock, and it is not taken when a repo the run has already locked (the
    same URL: the example's dnf repos serve both arches) had another repomd digest."""
    config, distro, roles = _example(tmp_path, "rocky9")
    cache = Cache(tmp_path / "cache")
    mine = _lock_target(distro, "x86_64", roles, config, cache, {}, {})
    ahead = _Ahead([(distro, "aarch64", roles)], config, Cache(tmp_path / "cache-child"))
    assert ahead.pid
    theirs = ahead.take(0, {}, {}, mine[0])
    ahead.close()
    assert theirs is not None
    alone = _lock_target(distro, "aarch64", roles, config, Cache(tmp_path / "cache-alone"), {}, {})
    assert render_lock(Lock("x", (*mine[0], *theirs[0]), (*mine[1], *theirs[1]))) == \
        render_lock(Lock("x", (*mine[0], *alone[0]), (*mine[1], *alone[1])))
    assert {r.url for r in mine[0]} & {r.url for r in theirs[0]}  # the check below has something to compare

    held = [dataclasses.replace(mine[0][0], release_sha256="0" * 64), *mine[0][1:]]
    ahead = _Ahead([(distro, "aarch64", roles)], config, cache)
    assert ahead.take(0, {}, {}, held) is None
    ahead.close()


@_two_cpus
def test_the_child_s_output_is_printed_by_the_parent_and_a_warning_once(tmp_path: Path,
                                                                         capfd: pytest.CaptureFixture[str]) -> None:
    config, distro, roles = _example(tmp_path, "bookworm")
    roles = roles[:1]
    log.set_verbosity(1)
    log.warn("said by the parent")
    real_lock_deb = lock_module._lock_deb

    def chatty(*args: object) -> object:
        log.warn("said by the parent")
        log.warn("said by the child")
        return real_lock_deb(*args)  # type: ignore[arg-type]

    lock_module._lock_deb = chatty  # type: ignore[assignment]
    try:
        ahead = _Ahead([(distro, "arm64", roles)], config, Cache(tmp_path / "cache"))
    finally:
        lock_module._lock_deb = real_lock_deb
    assert ahead.take(0, {}, {}) is not None
    ahead.close()
    err = capfd.readouterr().err
    log.set_verbosity(0)
    assert err.count("warning: said by the parent") == 1 and err.count("warning: said by the child") == 1, err
    assert f"{distro.name}/arm64: reading repositories" in err and err.index("said by the child") < \
        err.index("/arm64: reading repositories"), err


@_two_cpus
def test_a_large_index_s_mention_order_from_a_child_is_the_one_computed_here(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold read of a large Packages index leaves its mention order (apt's package ids) to a forked child; the
    lock is the same as with the order computed in line, and a child that fails costs only its work: the parent
    computes the order itself."""
    from imagebuild.apt import repository
    from imagebuild.apt.packages import mention_order, parse_stanzas

    config, distro, roles = _example(tmp_path, "bookworm")
    inline = _lock_deb(distro, "amd64", roles, config, Cache(tmp_path / "c1"), {}, {})
    monkeypatch.setattr(repository, "_MENTIONS_AHEAD", 1)
    forks = []
    fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or fork())
    ahead = _lock_deb(distro, "amd64", roles, config, Cache(tmp_path / "c2"), {}, {})
    assert forks  # the children ran
    assert render_lock(Lock("x", *map(tuple, ahead))) == render_lock(Lock("x", *map(tuple, inline)))

    stanzas = "".join(f"Package: p{i}\nVersion: 1\nArchitecture: amd64\nDepends: q{i % 7}, p{i - 1} | z\n"
                      f"Provides: v{i % 3}\n\n" for i in range(200)).encode()
    records = parse_stanzas(stanzas)
    repository.write_records(tmp_path / "records", records)
    stored = repository.RecordFile(tmp_path / "records")
    assert repository._mentions_ahead(tmp_path / "m1", stored, "amd64")() == mention_order(records, "amd64")
    assert (tmp_path / "m1").exists()  # written by the child
    parent = os.getpid()

    def fails_in_the_child(key: Path, recs: object, arch: str) -> list[str]:
        if os.getpid() != parent:
            raise MemoryError
        return real(key, recs, arch)  # type: ignore[arg-type]

    real = repository._mentions
    monkeypatch.setattr(repository, "_mentions", fails_in_the_child)
    assert repository._mentions_ahead(tmp_path / "m2", stored, "amd64")() == mention_order(records, "amd64")
