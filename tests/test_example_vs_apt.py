"""The embedded example against real apt's recorded answers (examples/gpu-cluster/apt-oracle/).

scripts/check-example-mirror.sh ran `apt-get -s install` for every role, arch and recommends
setting plus a set of edge cases, and saved the sets (`.txt`) or apt's refusal (`.fail`). Each file
names its request in its first line, so this test re-runs exactly that through imagebuild.
When apt gives up, imagebuild must exit 3 (or give a set apt accepts when asked explicitly).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"
ORACLE = EXAMPLE / "apt-oracle"
HEADER = re.compile(r"^# apt-get -s install (?P<reqs>.+?)  \(APT::Architecture=(?P<arch>\w+), "
                    r"Install-Recommends=(?P<rec>true|false), empty status\)$")
CASES = sorted(p for p in ORACLE.glob("*") if p.suffix in (".txt", ".fail"))


def _lock(tmp_path: Path, reqs: list[str], arch: str, recommends: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    proj = tmp_path / "proj"
    shutil.copytree(EXAMPLE / "mirror", proj / "mirror")
    shutil.copytree(EXAMPLE / "keys", proj / "keys")
    text = (EXAMPLE / "imagebuild.toml").read_text()
    text = text.replace('arches = ["amd64", "arm64"]', f'arches = ["{arch}"]', 1)
    text = text.replace("recommends = false", f"recommends = {recommends}", 1)
    text = text[: text.index("[roles.")] + '[roles.case]\ndistro = "bookworm"\npackages = [' + \
        ", ".join(f'"{r}"' for r in reqs) + "]\n"
    (proj / "imagebuild.toml").write_text(text)
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(proj / "imagebuild.toml"), "lock"],
                         capture_output=True, text=True, env=env, timeout=120)
    return res, proj / "boms" / f"case-{arch}.bom"


def _set(path: Path) -> set[str]:
    return {ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")}


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_example_case_equals_apt(case: Path, tmp_path: Path) -> None:
    m = HEADER.match(case.read_text().splitlines()[0])
    assert m, f"{case.name}: unexpected header"
    res, bom = _lock(tmp_path, m["reqs"].split(), m["arch"], m["rec"])
    if case.suffix == ".txt":
        assert res.returncode == 0, res.stderr
        mine, apts = _set(bom), _set(case)
        assert mine == apts, f"only imagebuild: {sorted(mine - apts)}; only apt: {sorted(apts - mine)}"
    else:
        assert res.returncode == 3, f"apt gives up here; imagebuild: rc={res.returncode}\n{res.stderr}"
        assert "Traceback" not in res.stderr
