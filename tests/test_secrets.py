"""A repo password reaches no output: every command, with and without --debug and -v, on success and on every
error path of the fetch layer (retries given up, timeouts, redirect loops, 401, 404, integrity). The example's
repos are served by the fault-injecting loopback server and configured with the password in their URLs, the
place most likely to leak it; stdout, stderr, every file the commands write and the metadata cache are read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SENTINEL  # noqa: E402
from faultserver import EXAMPLE, FaultPlan, example_project, fault_server  # noqa: E402

PASSWORD = SENTINEL + "@:/%"  # characters a URL must percent-encode: both spellings are looked for
NEEDLES = (PASSWORD, quote(PASSWORD, safe=""), SENTINEL)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultPlan, Path]]:
    plan = FaultPlan()
    with fault_server(EXAMPLE / "mirror", plan) as url:
        proj = tmp_path_factory.mktemp("proj")
        secret_url = url.replace("http://", f"http://ark:{quote(PASSWORD, safe='')}@")
        example_project(proj, secret_url)
        (proj / "sources.list").write_text(f"deb {secret_url}/debian bookworm main\n")
        (proj / "installed.txt").write_text("bash\t5.2.15-2+b7\tamd64\n")
        yield plan, proj


def _run(proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(proj / ".cache"), "IMAGEBUILD_HTTP_TIMEOUT": "1"}
    return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(proj / "imagebuild.toml"), *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=proj, check=False)


def _leaks(proj: Path, res: subprocess.CompletedProcess[str]) -> list[str]:
    found = [f"std{name}" for name, text in (("out", res.stdout), ("err", res.stderr))
             if any(n in text for n in NEEDLES)]
    for path in proj.rglob("*"):
        if path.is_file() and path.name not in ("imagebuild.toml", "sources.list"):
            data = path.read_bytes()
            if any(n.encode() in data for n in NEEDLES):
                found.append(str(path.relative_to(proj)))
    return found


COMMANDS = {  # name: (arguments, the exit codes it may have here)
    "lock": (("lock",), {0}),
    "lock --check": (("lock", "--check"), {0}),
    "lock --dry-run": (("lock", "--dry-run"), {0}),
    "bump": (("bump", "--to", "20261123T000000Z", "--dry-run"), {0, 2}),
    "check": (("check",), {0, 1}),
    "why": (("why", "nvidia-driver-550", "--role", "compute", "--arch", "amd64"), {0}),
    "why --reverse": (("why", "--reverse", "rdma-core", "--role", "compute", "--arch", "amd64"), {0}),
    "bom diff": (("bom", "diff", "boms", "boms"), {0}),
    "snapshot latest": (("snapshot", "latest"), {0, 2, 4}),
    "repo rewrite": (("repo", "rewrite", "sources.list", "--snapshot", "20261122T000000Z", "--provider", "debian"),
                     {0}),
    "mirror": (("mirror", "--role", "compute", "--role", "rocky-compute", "--out", "mirror-out"), {0}),
    "bake": (("bake", "--target", "packer"), {0}),
    "bake containers": (("bake", "--target", "docker", "--role", "compute"), {0}),
    "sbom": (("sbom", "--role", "compute", "--arch", "amd64", "--format", "spdx", "-o", "sbom.json"), {0}),
    "verify": (("verify", "--role", "compute", "--arch", "amd64", "--installed", "installed.txt"), {1}),
}


@pytest.mark.parametrize("flags", [(), ("--debug", "-v")], ids=["plain", "debug"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_keeps_the_password(served: tuple[FaultPlan, Path], name: str, flags: tuple[str, ...]) -> None:
    plan, proj = served
    plan.rules.clear()
    if name != "lock" and not (proj / "snapshots.lock").exists():
        assert _run(proj, "lock").returncode == 0
    args, codes = COMMANDS[name]
    res = _run(proj, *flags, *args)
    assert res.returncode in codes, res.stderr[-2000:]
    assert "Traceback" not in res.stderr or flags
    assert _leaks(proj, res) == []


FAULTS = {  # name: (path pattern, fault, the exit code, what the message says)
    "503 given up": ("*/dists/bookworm/InRelease", "503", 4, "HTTP 503"),
    "stalled body": ("*/cuda/InRelease", "stall", 4, "cannot fetch after 4 attempts"),
    "redirect loop": ("*/repodata/repomd.xml", "loop", 4, "too many redirects"),
    "401": ("*/dists/bookworm/InRelease", "401", 4, "HTTP 401"),
    "404": ("*/repodata/repomd.xml", "404", 4, "repomd.xml"),
    "cut index": ("*/binary-amd64/Packages.xz", "cut", 4, "Packages.xz"),
    "short index": ("*/binary-amd64/Packages.xz", "short", 4, "checksum mismatch"),
}


@pytest.mark.parametrize("flags", [(), ("--debug",)], ids=["plain", "debug"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_fetch_error_keeps_the_password(served: tuple[FaultPlan, Path], tmp_path: Path, fault: str,
                                              flags: tuple[str, ...]) -> None:
    plan, proj = served
    pattern, kind, code, says = FAULTS[fault]
    shutil.rmtree(proj / ".cache", ignore_errors=True)  # a cold lock: every file is fetched
    plan.rules.clear()
    plan.add(pattern, kind, every=True)
    try:
        res = _run(proj, *flags, "lock", "--dry-run")
    finally:
        plan.rules.clear()
    assert res.returncode == code, res.stderr[-2000:]
    assert says in res.stderr, res.stderr[-2000:]
    assert ("Traceback" in res.stderr) == bool(flags)
    assert _leaks(proj, res) == []
