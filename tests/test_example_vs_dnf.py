"""The embedded example's Rocky 9 half against real dnf (examples/gpu-cluster/mirror/rocky9, dnf-oracle/).

* the committed BOM of every rpm role × arch is what real dnf installs into an empty root with the example's
  repos, module streams and weak-deps setting (tests/dnf_oracle.py; skipped without dnf/rpm or root);
* every request recorded in dnf-oracle/ by scripts/check-example-mirror.sh (the roles plus edge cases: the
  default stream, another stream, modular filtering, DOCA userspace) gives through `imagebuild lock` exactly
  dnf's set, or exit 3 where dnf gives up (needs only imagebuild); and real dnf still gives the recorded answer;
* the committed repos are what scripts/example-mirror/build_rpms.py builds (skipped without rpmbuild /
  createrepo_c, or when their versions differ from mirror/rocky9/BUILD-INFO), and each repomd.xml.asc
  verifies with the example key.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import dnf_oracle
import pytest
import rpmrepos

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gpu-cluster"
ORACLE = EXAMPLE / "dnf-oracle"
SCRIPTS = ROOT / "scripts" / "example-mirror"
HEADER = re.compile(r"^# dnf install (?P<reqs>.+?)  \(forcearch=(?P<arch>\w+), modules=(?P<mods>\S+), "
                    r"install_weak_deps=(?P<weak>True|False), empty root\)$")
CASES = sorted(p for p in ORACLE.glob("*") if p.suffix in (".txt", ".fail"))


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _set(text: str) -> set[str]:
    return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}


def _parse(case: Path) -> re.Match[str]:
    m = HEADER.match(case.read_text().splitlines()[0])
    assert m, f"{case.name}: unexpected header"
    return m


def _rpm_roles() -> list[tuple[str, str]]:
    check = _script("dnf_check")
    return [(role, arch) for role, distro, _ in check.rpm_roles(EXAMPLE / "imagebuild.toml")
            for arch in distro["arches"]]


def test_example_has_a_rocky_role_on_both_arches() -> None:
    assert ("rocky-compute", "x86_64") in _rpm_roles() and ("rocky-compute", "aarch64") in _rpm_roles()
    for role, arch in _rpm_roles():
        bom = EXAMPLE / "boms" / f"{role}-{arch}.bom"
        assert bom.is_file(), f"{bom} missing: run imagebuild --config {EXAMPLE / 'imagebuild.toml'} lock"
        recorded = ORACLE / f"{role}-{arch}.txt"
        assert recorded.is_file(), f"{recorded} missing: run scripts/check-example-mirror.sh"
        assert _set(bom.read_text()) == _set(recorded.read_text()), f"{bom.name} differs from {recorded}"


@pytest.mark.parametrize(("role", "arch"), _rpm_roles(), ids=[f"{r}-{a}" for r, a in _rpm_roles()])
def test_committed_bom_equals_real_dnf(role: str, arch: str, tmp_path: Path) -> None:
    why = dnf_oracle.missing()
    if why:
        pytest.skip(f"real dnf unavailable: {why}")
    check = _script("dnf_check")
    cfg = EXAMPLE / "imagebuild.toml"
    (distro, pkgs), = [(d, p) for r, d, p in check.rpm_roles(cfg) if r == role]
    oracle = dnf_oracle.DnfOracle(check.repos_of(distro, EXAMPLE), tmp_path / "dnf")
    res = check.run_dnf(oracle, arch, distro, list(distro.get("modules", [])), pkgs)
    assert res.ok, res.output[-3000:]
    mine, dnfs = _set((EXAMPLE / "boms" / f"{role}-{arch}.bom").read_text()), set(res.bom)
    assert mine == dnfs, f"only in the BOM: {sorted(mine - dnfs)}; only dnf: {sorted(dnfs - mine)}"


def _lock_case(tmp_path: Path, reqs: list[str], arch: str, modules: list[str], weak: str
               ) -> tuple[subprocess.CompletedProcess[str], Path]:
    proj = tmp_path / "proj"
    (proj / "mirror").mkdir(parents=True)
    shutil.copytree(EXAMPLE / "mirror" / "rocky9", proj / "mirror" / "rocky9")
    shutil.copytree(EXAMPLE / "keys", proj / "keys")
    text = (EXAMPLE / "imagebuild.toml").read_text()
    start = text.index("[distros.rocky9]")
    text = text[start: text.index("[roles.", start)]
    text = text.replace('arches = ["x86_64", "aarch64"]', f'arches = ["{arch}"]', 1)
    text = re.sub(r"^recommends = \w+$", f"recommends = {weak.lower()}", text, count=1, flags=re.M)
    text = re.sub(r"^modules = \[.*\]$", "modules = [" + ", ".join(f'"{m}"' for m in modules) + "]", text,
                  count=1, flags=re.M)
    text += '[roles.case]\ndistro = "rocky9"\npackages = [' + ", ".join(f'"{r}"' for r in reqs) + "]\n"
    (proj / "imagebuild.toml").write_text(text)
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(tmp_path / "cache")}
    res = subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(proj / "imagebuild.toml"), "lock"],
                         capture_output=True, text=True, env=env, timeout=300)
    return res, proj / "boms" / f"case-{arch}.bom"


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_recorded_dnf_case_equals_imagebuild(case: Path, tmp_path: Path) -> None:
    m = _parse(case)
    mods = [] if m["mods"] == "-" else m["mods"].split(",")
    res, bom = _lock_case(tmp_path, m["reqs"].split(), m["arch"], mods, m["weak"])
    if case.suffix == ".txt":
        assert res.returncode == 0, res.stderr
        mine, dnfs = _set(bom.read_text()), _set(case.read_text())
        assert mine == dnfs, f"only imagebuild: {sorted(mine - dnfs)}; only dnf: {sorted(dnfs - mine)}"
    else:
        assert res.returncode == 3, f"dnf gives up here; imagebuild: rc={res.returncode}\n{res.stderr}"
        assert "Traceback" not in res.stderr


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_recorded_dnf_case_is_still_what_dnf_does(case: Path, tmp_path: Path) -> None:
    why = dnf_oracle.missing()
    if why:
        pytest.skip(f"real dnf unavailable: {why}")
    check = _script("dnf_check")
    m = _parse(case)
    (distro,) = {id(d): d for _, d, _ in check.rpm_roles(EXAMPLE / "imagebuild.toml")}.values()
    oracle = dnf_oracle.DnfOracle(check.repos_of(distro, EXAMPLE), tmp_path / "dnf")
    mods = [] if m["mods"] == "-" else m["mods"].split(",")
    res = check.run_dnf(oracle, m["arch"], {**distro, "recommends": m["weak"] == "True"}, mods, m["reqs"].split())
    assert res.ok == (case.suffix == ".txt"), res.output[-3000:]
    if res.ok:
        assert set(res.bom) == _set(case.read_text())


def test_committed_rpm_repos_are_what_the_make_script_builds() -> None:
    missing = rpmrepos.missing_tools()
    if missing:
        pytest.skip(f"cannot rebuild the example rpm repos: {', '.join(missing)} missing "
                    "(scripts/setup.sh --test installs rpm and createrepo-c)")
    cmd = [sys.executable, str(SCRIPTS / "build_rpms.py"), "--compare", str(EXAMPLE / "mirror" / "rocky9")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode == 3:
        pytest.skip("the example rpm repos were built with other rpm/createrepo_c versions: " + res.stderr.strip())
    assert res.returncode == 0, res.stdout + res.stderr


def test_repomd_signatures_verify_with_the_example_key() -> None:
    if shutil.which("gpgv") is None:
        pytest.skip("gpgv is not installed")
    mds = sorted((EXAMPLE / "mirror" / "rocky9").glob("*/repodata/repomd.xml"))
    assert [p.parents[1].name for p in mds] == sorted(rpmrepos.REPO_IDS)
    for md in mds:
        res = subprocess.run(["gpgv", "--keyring", str(EXAMPLE / "keys" / "example-archive.gpg"),
                              f"{md}.asc", str(md)], capture_output=True, text=True)
        assert res.returncode == 0, f"{md}.asc: {res.stderr}"
