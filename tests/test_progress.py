"""Progress for long work: `mirror` shows a bar (files, bytes, rate) on a terminal, nothing when stderr is not a
terminal, nothing but warnings and errors with --quiet; the outputs are the same in every case."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proj = tmp_path_factory.mktemp("proj")
    shutil.copytree(EXAMPLE, proj, dirs_exist_ok=True, ignore=shutil.ignore_patterns("imagebuild-mirror", "packer",
                                                                                       "containers", "images"))
    assert _run(proj, ["lock"], tty=False)[0] == 0
    return proj


def _run(proj: Path, args: list[str], tty: bool) -> tuple[int, str]:
    """(exit code, stderr) of imagebuild in `proj`, stderr a pseudo-terminal when `tty`."""
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(proj / ".cache"), "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "imagebuild", "--config", str(proj / "imagebuild.toml"), *args]
    if not tty:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
        return res.returncode, res.stderr
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=secondary, env=env)
        os.close(secondary)
        out = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        return proc.wait(timeout=300), out.decode(errors="replace")
    finally:
        os.close(primary)


@pytest.fixture(scope="module")
def runs(project: Path) -> dict[str, tuple[int, str]]:
    """`mirror` on a terminal, into a pipe, and on a terminal with --quiet: (exit code, stderr) by name."""
    return {"tty": _run(project, ["mirror", "--role", "compute", "--out", str(project / "m-tty")], tty=True),
            "pipe": _run(project, ["mirror", "--role", "compute", "--out", str(project / "m-pipe")], tty=False),
            "quiet": _run(project, ["-q", "mirror", "--role", "compute", "--out", str(project / "m-quiet")],
                          tty=True)}


def test_mirror_shows_files_bytes_and_rate_on_a_terminal(runs: dict[str, tuple[int, str]]) -> None:
    code, err = runs["tty"]
    assert code == 0, err
    assert "mirror: 0/92 files" in err and "mirror: 92/92 files" in err and "MiB/s" in err and "100%" in err
    assert "92 files downloaded" in err


def test_no_progress_when_stderr_is_not_a_terminal(runs: dict[str, tuple[int, str]]) -> None:
    code, err = runs["pipe"]
    assert code == 0, err
    assert err == "92 files downloaded, 0 already there\n"


def test_quiet_keeps_only_warnings_and_errors(project: Path, runs: dict[str, tuple[int, str]]) -> None:
    code, err = runs["quiet"]
    assert code == 0 and err == "", err
    code, err = _run(project, ["-q", "mirror", "--role", "no-such-role"], tty=True)
    assert code == 2 and "unknown role 'no-such-role'" in err


def test_the_files_are_the_same_whichever_way_it_ran(project: Path, runs: dict[str, tuple[int, str]]) -> None:
    trees = [sorted((p.relative_to(project / d), p.read_bytes()) for p in (project / d).rglob("*") if p.is_file())
             for d in ("m-tty", "m-pipe", "m-quiet")]
    assert trees[0] == trees[1] == trees[2] and len(trees[0]) > 92
