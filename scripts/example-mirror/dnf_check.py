#!/usr/bin/env python3
"""Real dnf on the example's rpm repos: what `dnf install` puts in an empty root for every rpm role.

Usage: dnf_check.py [--no-write]   (run by scripts/check-example-mirror.sh; needs dnf, rpm and root)

For every role of an rpm distro in examples/gpu-cluster/imagebuild.toml and every arch of its distro, and
for the extra cases below, it runs tests/dnf_oracle.py's DnfOracle: the real `dnf module enable` (the
distro's `modules`) and `dnf install` (--forcearch, install_weak_deps = the distro's `recommends`, repos
from the config with --repofrompath) into a temporary --installroot; the answer is that root's rpmdb
(`rpm -qa`), as `name evr arch` lines: the BOM format.  The sets are written to
examples/gpu-cluster/dnf-oracle/<case>-<arch>.txt (or `.fail` with dnf's error when dnf gives up); with
--no-write they are compared with the files there instead.  The first line of each file names the request,
so tests/test_example_vs_dnf.py can replay it through imagebuild.
"""

from __future__ import annotations

import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gpu-cluster"
ORACLE = EXAMPLE / "dnf-oracle"
sys.path.insert(0, str(ROOT / "tests"))

import dnf_oracle  # noqa: E402  (tests/dnf_oracle.py)


# Further requests on the rocky9 repos: (case, modules or None for the distro's, packages as a function of
# the role's, expected "ok"/"fail").
def _same(pkgs: list[str]) -> list[str]:
    return pkgs


def _driver_565(pkgs: list[str]) -> list[str]:
    return ["cuda-drivers-565.57.01" if p == "cuda-drivers" else p for p in pkgs]


EXTRAS: list[tuple[str, list[str] | None, Callable[[list[str]], list[str]], str]] = [
    # no module enabled: the default stream latest-dkms (575 with kmod-nvidia-latest-dkms)
    ("x-default-stream", [], _same, "ok"),
    # cuda-drivers is not in the module: best=True takes the newest (575), whose nvidia-* requirements the
    # 565-open stream hides -> dnf gives up ...
    ("x-565-open-unpinned", ["nvidia-driver:565-open"], _same, "fail"),
    # ... so with an older stream, pin cuda-drivers to the stream's branch
    ("x-565-open", ["nvidia-driver:565-open"], _driver_565, "ok"),
    # an artifact of an inactive stream is hidden
    ("x-filtered-driver", None, lambda _: ["nvidia-driver-3:565.57.01-1.el9"], "fail"),
    # containers: DOCA userspace only, no kernel, no kernel modules
    ("x-userspace", None, lambda _: ["doca-ofed-userspace"], "ok"),
]


def header(pkgs: list[str], arch: str, modules: list[str], weak: bool) -> str:
    return (f"# dnf install {' '.join(pkgs)}  (forcearch={arch}, modules={','.join(modules) or '-'}, "
            f"install_weak_deps={weak}, empty root)")


def rpm_roles(cfg_path: Path) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(role, distro table, packages) for every role on an rpm distro."""
    cfg = tomllib.loads(cfg_path.read_text())
    out = []
    for name, role in sorted(cfg.get("roles", {}).items()):
        distro = cfg["distros"][role["distro"]]
        if distro.get("family") == "rpm":
            out.append((name, distro, list(role["packages"])))
    return out


def repos_of(distro: dict[str, Any], base: Path) -> dict[str, Path]:
    repos = {}
    for r in distro["repos"]:
        url = r["url"]
        assert url.startswith("file:"), url
        path = url[len("file:"):]
        path = path[2:] if path.startswith("//") else path
        repos[r["name"]] = (base / path).resolve()
    return repos


def repo_opts(distro: dict[str, Any]) -> dict[str, dict[str, str]]:
    opts: dict[str, dict[str, str]] = {}
    for r in distro["repos"]:
        o = {k: str(int(r[k]) if isinstance(r[k], bool) else r[k]) for k in ("priority", "cost", "module_hotfixes")
             if k in r}
        for k in ("exclude", "includepkgs"):
            if r.get(k):
                o["excludepkgs" if k == "exclude" else k] = ",".join(r[k])
        if o:
            opts[r["name"]] = o
    return opts


def cases(cfg_path: Path) -> list[tuple[str, str, dict[str, Any], list[str], list[str]]]:
    """(file stem, arch, distro table, modules, packages) for every role and extra case."""
    out = []
    for role, distro, pkgs in rpm_roles(cfg_path):
        mods = list(distro.get("modules", []))
        for arch in distro["arches"]:
            out.append((f"{role}-{arch}", arch, distro, mods, pkgs))
            if role == "rocky-compute":
                for case, xmods, xpkgs, _ in EXTRAS:
                    out.append((f"{case}-{arch}", arch, distro, mods if xmods is None else xmods, xpkgs(pkgs)))
    return out


def run_dnf(oracle: dnf_oracle.DnfOracle, arch: str, distro: dict[str, Any], modules: list[str],
            pkgs: list[str]) -> dnf_oracle.DnfResult:
    return oracle.install(arch, pkgs, weak_deps=bool(distro.get("recommends", False)), modules=modules,
                          exclude=list(distro.get("exclude", [])), repo_opts=repo_opts(distro))


def render(res: dnf_oracle.DnfResult, head: str) -> tuple[str, str]:
    """(suffix, text) of the oracle file for one result."""
    if res.ok:
        return ".txt", head + "\n# generated by scripts/check-example-mirror.sh; name evr arch\n" + \
            "".join(ln + "\n" for ln in res.bom)
    errs = [ln for ln in res.output.splitlines() if ln.startswith(("Error:", " Problem", "  - "))]
    return ".fail", head + "\n# dnf gives up; its explanation:\n" + "".join(ln + "\n" for ln in errs)


def main(argv: list[str]) -> int:
    write = argv != ["--no-write"]
    why = dnf_oracle.missing()
    if why:
        print(f"dnf_check: skipped: {why}", file=sys.stderr)
        return 0
    cfg = EXAMPLE / "imagebuild.toml"
    expect = {f"{c}-{a}": e for c, _, _, e in EXTRAS for a in ("x86_64", "aarch64")}
    failed = False
    with tempfile.TemporaryDirectory(prefix="dnf-check.") as tmp:
        oracle = None
        results = {}
        for stem, arch, distro, mods, pkgs in cases(cfg):
            if oracle is None:
                oracle = dnf_oracle.DnfOracle(repos_of(distro, cfg.parent), Path(tmp))
            res = run_dnf(oracle, arch, distro, mods, pkgs)
            suffix, text = render(res, header(pkgs, arch, mods, bool(distro.get("recommends", False))))
            results[stem + suffix] = text
            want = expect.get(stem, "ok")
            got = "ok" if res.ok else "fail"
            print(f"{stem:34} {'dnf gives up' if not res.ok else len(res.bom)}", file=sys.stderr)
            if got != want:
                print(f"FAIL: {stem}: expected {want}, dnf: {got}\n{res.output[-3000:]}", file=sys.stderr)
                failed = True
    if write:
        if ORACLE.exists():
            for old in ORACLE.iterdir():
                old.unlink()
        ORACLE.mkdir(exist_ok=True)
        for name, text in results.items():
            (ORACLE / name).write_text(text)
    else:
        have = {p.name: p.read_text() for p in ORACLE.iterdir()} if ORACLE.is_dir() else {}
        for name in sorted(set(have) | set(results)):
            if have.get(name) != results.get(name):
                print(f"FAIL: dnf-oracle/{name} differs from real dnf", file=sys.stderr)
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
