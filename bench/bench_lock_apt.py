#!/usr/bin/env python3
"""Benchmark ``imagebuild lock`` against apt on the real bookworm snapshot (see bench/README.md).

One run: serve the snapshot on loopback, then N times each (median reported):

* imagebuild cold  — ``imagebuild --config CFG lock`` with an empty ``IMAGEBUILD_CACHE``;
* imagebuild warm  — the same again with the cache the cold run left (fresh output dir, so no
                     existing ``snapshots.lock`` is reused: only the metadata cache is warm);
* apt cold         — ``apt-get update`` into an empty private root + ``apt-get -s install PKGS``;
* apt warm         — ``apt-get -s install PKGS`` again in that root (lists and pkgcache ready).

Wall time is measured around each process; peak RSS is the child's ``ru_maxrss`` from
``os.wait4`` (covers the process and the helpers it waited for: apt's http/gpgv methods,
anything imagebuild spawns).  A cold apt run's RSS is the max of its two processes, its time
the sum.  Also checks that imagebuild's BOM equals apt's result.

``--scale`` measures how imagebuild grows instead (no apt): the compute role on one arch against three
roles (compute, login, control) on two (amd64, arm64), cold and warm, N times each; the ratios are
3x2 over 1x1.  With ``--base``, the base is used for both arches (its amd64 packages marked arm64).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from apt_oracle import (  # noqa: E402
    DEBIAN_COMPONENTS,
    DEBIAN_KEYRING,
    AptOracle,
    apply_simulation,
    debian_repos,
    parse_status,
    set_diff,
)
from measure import TARGET_SCALE, Measured, lock_cold_warm, run_measured, scale_report, scale_runs  # noqa: E402  (bench/, beside this script)

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "debian-20261122"
SNAPSHOT = "20261122T000000Z"  # when DEFAULT_DATA was captured: its Releases are valid then, not "now"
COMPUTE = ["nvidia-driver", "nvidia-cuda-toolkit", "nvidia-smi", "rdma-core", "infiniband-diags",
           "ibverbs-providers", "slurmd", "munge", "openmpi-bin"]
ROLES = {"compute": COMPUTE, "login": ["slurm-client", "gcc", "infiniband-diags", "openmpi-bin"],
         "control": ["slurmctld", "slurm-client", "postfix", "munge"]}
TARGET_COLD = 0.35
TARGET_WARM = 0.06


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(directory)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def write_config(d: Path, url: str, arch: str | list[str], base: str | None, recommends: bool,
                 pkgs: list[str] | dict[str, list[str]]) -> Path:
    q = json.dumps  # JSON strings are valid TOML basic strings for these values
    comps = "[" + ", ".join(q(c) for c in DEBIAN_COMPONENTS) + "]"
    arches = [arch] if isinstance(arch, str) else arch
    roles = {"compute": pkgs} if isinstance(pkgs, list) else pkgs
    cfg = d / "imagebuild.toml"
    cfg.write_text(f"""snapshot = {q(SNAPSHOT)}
[distros.bookworm]
family = "deb"
arches = [{", ".join(q(a) for a in arches)}]
base = {q(base or "none")}
recommends = {"true" if recommends else "false"}

[[distros.bookworm.repos]]
name = "debian"
url = {q(url + "/debian")}
suites = ["bookworm", "bookworm-updates", "bookworm-backports"]
components = {comps}
signed-by = {q(DEBIAN_KEYRING)}

[[distros.bookworm.repos]]
name = "security"
url = {q(url + "/debian-security")}
suites = ["bookworm-security"]
components = {comps}
signed-by = {q(DEBIAN_KEYRING)}
""" + "".join(f"""
[roles.{name}]
distro = "bookworm"
packages = [{", ".join(q(p) for p in packages)}]
""" for name, packages in roles.items()))
    return cfg


def read_bom(path: Path) -> frozenset[tuple[str, str, str]]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return frozenset((r[0], r[1], r[2]) for r in rows if len(r) == 3)


def fail(what: str, m: Measured) -> None:
    sys.exit(f"{what} failed (exit {m.rc}):\n{m.out[-4000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--repeat", type=int, default=3, help="runs per measurement (median; default 3)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"snapshot dir (default {DEFAULT_DATA})")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--base", default=None, help="dpkg status file of the base image (default: none)")
    ap.add_argument("--recommends", action="store_true")
    ap.add_argument("--packages", nargs="+", default=COMPUTE, help="role packages (default: compute role)")
    ap.add_argument("--imagebuild", default=None,
                    help="command prefix for imagebuild (default: this python -m imagebuild, from this checkout)")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--check-targets", action="store_true", help="exit 1 when a ratio misses its target")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--scale", action="store_true",
                    help="3 roles x 2 arches against 1 role x 1 arch, imagebuild only (see above)")
    a = ap.parse_args()

    if not (a.data / "debian" / "dists").is_dir():
        sys.exit(f"snapshot data not found: {a.data}")
    base = str(Path(a.base).resolve()) if a.base else None
    work = Path(tempfile.mkdtemp(prefix="bench-lock-apt-"))
    server, url = serve(a.data)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(LC_ALL="C", LANG="C")
    if a.imagebuild is None:  # this checkout; a given command runs the imagebuild it has (another checkout)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    ib_cmd = (a.imagebuild or f"{sys.executable} -m imagebuild").split()
    res: dict[str, list[Measured]] = {k: [] for k in ("ib_cold", "ib_warm", "apt_update", "apt_sim_cold",
                                                       "apt_cold", "apt_warm")}
    ib_set = apt_set = None
    try:
        if a.scale:
            return scale(a, work, url, env, ib_cmd, base)
        for i in range(a.repeat):
            cold, warm, d = lock_cold_warm(ib_cmd, env, work, str(i), functools.partial(
                write_config, url=url, arch=a.arch, base=base, recommends=a.recommends, pkgs=a.packages))
            res["ib_cold"].append(cold)
            res["ib_warm"].append(warm)
            ib_set = read_bom(d / "boms" / f"compute-{a.arch}.bom")

            # apt: empty root -> update + simulate (cold); simulate again (warm)
            oracle = AptOracle(work / f"apt-{i}")
            _, conf = oracle.prepare(debian_repos(url), a.arch, base, a.recommends)
            ae = {**env, "APT_CONFIG": str(conf), "DEBIAN_FRONTEND": "noninteractive"}
            up = run_measured(["apt-get", "update"], ae)
            if up.rc != 0 or "\nE:" in "\n" + up.out:
                fail("apt-get update", up)
            sims = []
            for _ in ("cold", "warm"):
                m = run_measured(["apt-get", "-s", "-q", "install", *a.packages], ae)
                if m.rc != 0:
                    fail("apt-get -s install", m)
                sims.append(m)
            res["apt_update"].append(up)
            res["apt_sim_cold"].append(sims[0])
            res["apt_cold"].append(Measured(up.wall + sims[0].wall, max(up.rss_kb, sims[0].rss_kb), 0, "",
                                            up.cpu + sims[0].cpu))
            res["apt_warm"].append(sims[1])
            apt_set, _, _ = apply_simulation(parse_status(base), sims[1].out, a.arch)
            print(f"run {i + 1}/{a.repeat}: imagebuild cold {res['ib_cold'][-1].wall:.2f}s "
                  f"warm {res['ib_warm'][-1].wall:.2f}s | apt update+sim {res['apt_cold'][-1].wall:.2f}s "
                  f"sim {sims[1].wall:.2f}s", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept: {work}", file=sys.stderr)

    med = {k: (statistics.median(m.wall for m in v), statistics.median(m.rss_kb for m in v))
           for k, v in res.items()}
    r_cold = med["ib_cold"][0] / med["apt_cold"][0]
    r_warm = med["ib_warm"][0] / med["apt_warm"][0]
    rss_cold = med["ib_cold"][1] / med["apt_cold"][1]
    rss_warm = med["ib_warm"][1] / med["apt_warm"][1]

    def row(label: str, key: str) -> str:
        w, rss = med[key]
        return f"{label:<34} {w:9.2f} s {rss / 1024:10.0f} MiB"

    print(f"\nimagebuild lock vs apt — {a.arch}, {'base ' + base if base else 'base none'}, "
          f"recommends {'on' if a.recommends else 'off'}, {len(a.packages)} requested packages, "
          f"median of {a.repeat}")
    print(f"{'':<34} {'wall':>11} {'peak RSS':>14}")
    print(row("imagebuild lock, cold cache", "ib_cold"))
    print(row("apt-get update + -s install", "apt_cold"))
    print(row("  (apt-get update alone)", "apt_update"))
    print(row("  (first apt-get -s install)", "apt_sim_cold"))
    print(f"{'ratio cold imagebuild/apt':<34} {r_cold:9.2f} x   target <= {TARGET_COLD}x  "
          f"{'OK' if r_cold <= TARGET_COLD else 'MISSED'}   RSS x{rss_cold:.2f}")
    print(row("imagebuild lock, warm cache", "ib_warm"))
    print(row("apt-get -s install (warm)", "apt_warm"))
    print(f"{'ratio warm imagebuild/apt':<34} {r_warm:9.2f} x   target <= {TARGET_WARM}x  "
          f"{'OK' if r_warm <= TARGET_WARM else 'MISSED'}   RSS x{rss_warm:.2f}")
    same = ib_set == apt_set
    verdict = "equals" if same else "DIFFERS from"
    print(f"result: imagebuild BOM {verdict} apt's set ({len(apt_set or ())} packages)")
    if not same and ib_set is not None and apt_set is not None:
        print(set_diff(ib_set, apt_set))

    if a.json:
        a.json.write_text(json.dumps({
            "arch": a.arch, "base": base, "recommends": a.recommends, "packages": a.packages,
            "repeat": a.repeat, "ratio_cold": r_cold, "ratio_warm": r_warm, "bom_equals_apt": same,
            "runs": {k: [{"wall_s": m.wall, "peak_rss_kb": m.rss_kb} for m in v] for k, v in res.items()},
        }, indent=2) + "\n")
    if a.check_targets and (r_cold > TARGET_COLD or r_warm > TARGET_WARM or not same):
        return 1
    return 0


def scale(a: argparse.Namespace, work: Path, url: str, env: dict[str, str], ib_cmd: list[str],
          base: str | None) -> int:
    if base is not None:  # one file per arch: the base's amd64 packages as arm64 ones too
        text = Path(base).read_text()
        for arch in ("amd64", "arm64"):
            (work / f"base-{arch}.status").write_text(text.replace("Architecture: amd64", f"Architecture: {arch}"))
        base = str(work / "base-{arch}.status")
    shapes = {shape: functools.partial(write_config, url=url, arch=arches, base=base, recommends=a.recommends,
                                       pkgs=roles)
              for shape, arches, roles in (("1x1", "amd64", {"compute": COMPUTE}), ("3x2", ["amd64", "arm64"], ROLES))}
    res = scale_runs(a.repeat, shapes, ib_cmd, env, work)
    return scale_report(res, "imagebuild lock, 3 roles x 2 arches against 1 role x 1 arch — base "
                        f"{'given' if base else 'none'}", "1x1", "3x2", TARGET_SCALE, a.json, a.check_targets)


if __name__ == "__main__":
    raise SystemExit(main())
