"""A bump between two real states of Debian 12, checked against real apt.

The older state is the bookworm point release alone; the newer one adds bookworm-updates and
bookworm-security (the real signed data in ../shared/data). A site that locked against the point release
re-locks against the newer state with ``imagebuild lock --dry-run --format json``: the diff must list
exactly what apt itself changes in the image between the two states (``apt-get -s install`` of the same
role on the same minbase, once per state), every upgrade must be one apt takes from the security or
updates suite, and nothing may be written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from apt_oracle import DEBIAN_COMPONENTS, DEBIAN_KEYRING, AptOracle, debian_repos
from conftest import MINBASE_STATUS

pytestmark = pytest.mark.slow

ROLE = ("openssh-server", "curl", "rdma-core", "slurmd", "munge", "libssl3")
_INST = re.compile(r"^Inst (?P<name>[^\s:]+)(?::\S+)? (?:\[[^\]]*\] )?"
                   r"\((?P<ver>\S+) (?P<rel>.*?) \[(?P<arch>[^\]]+)\]\)")


def _config(url: str, newer: bool) -> str:
    comps = ", ".join(f'"{c}"' for c in DEBIAN_COMPONENTS)
    suites = '"bookworm", "bookworm-updates"' if newer else '"bookworm"'
    text = f"""\
snapshot = "20261122T000000Z"
[distros.bookworm]
family = "deb"
arches = ["amd64"]
base = "{MINBASE_STATUS}"
[[distros.bookworm.repos]]
name = "debian"
url = "{url}/debian"
suites = [{suites}]
components = [{comps}]
signed-by = "{DEBIAN_KEYRING}"
"""
    if newer:
        text += f"""[[distros.bookworm.repos]]
name = "debian-security"
url = "{url}/debian-security"
suites = ["bookworm-security"]
components = [{comps}]
signed-by = "{DEBIAN_KEYRING}"
"""
    roles = ", ".join(f'"{p}"' for p in ROLE)
    return text + f'[roles.compute]\ndistro = "bookworm"\npackages = [{roles}]\n'


def test_point_release_to_security_updates(debian_http: str, tmp_path: Path) -> None:
    if not MINBASE_STATUS.is_file():
        pytest.skip(f"{MINBASE_STATUS} not found")
    project = tmp_path / "site"
    project.mkdir()
    cfg = project / "imagebuild.toml"
    env = {**os.environ, "LC_ALL": "C"}

    def imagebuild(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), *args], capture_output=True,
                              text=True, env=env, timeout=900)

    cfg.write_text(_config(debian_http, newer=False))
    first = imagebuild("lock")
    assert first.returncode == 0, first.stderr
    locked = (project / "snapshots.lock").read_bytes()

    cfg.write_text(_config(debian_http, newer=True))
    res = imagebuild("lock", "--dry-run", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert (project / "snapshots.lock").read_bytes() == locked  # --dry-run writes nothing
    diff = json.loads(res.stdout)["compute-amd64.bom"]

    # apt, once per state, same role and base
    oracle = AptOracle(tmp_path / "apt")
    old = oracle.simulate(debian_repos(debian_http, ["bookworm"]), "amd64", MINBASE_STATUS, False, ROLE)
    new = oracle.simulate(debian_repos(debian_http, ["bookworm", "bookworm-updates", "bookworm-security"]),
                          "amd64", MINBASE_STATUS, False, ROLE)
    assert not old.failed and not new.failed and old.packages is not None and new.packages is not None
    before = {(n, a): v for n, v, a in old.packages}
    after = {(n, a): v for n, v, a in new.packages}
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    got_up = {(c["name"], c["arch"]): (c["old"], c["new"]) for c in diff["upgraded"]}
    assert got_up == {k: (before[k], after[k]) for k in changed}
    assert {(e["name"], e["arch"]) for e in diff["added"]} == after.keys() - before.keys()
    assert {(e["name"], e["arch"]) for e in diff["removed"]} == before.keys() - after.keys()
    assert diff["downgraded"] == []
    assert got_up, "the newer state must bring security/point updates for this role"

    # every upgrade is a package apt installs from the security or updates suite
    origin = {m["name"]: m["rel"] for ln in new.stdout.splitlines() if (m := _INST.match(ln))}
    for name, _arch in got_up:
        if name in origin:
            assert "Security" in origin[name] or "updates" in origin[name], (name, origin[name])
    print(f"{len(got_up)} upgraded, {len(diff['added'])} added, {len(diff['removed'])} removed:",
          ", ".join(sorted(n for n, _ in got_up)))
