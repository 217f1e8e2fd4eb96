#!/usr/bin/env python3
"""Benchmark ``imagebuild bom diff`` of two large BOMs against ``sort`` + ``comm -3`` (see bench/README.md).

Writes two synthetic BOMs of N lines (default 100 000; deterministic, seeded), shaped like real ones: Debian
version strings (epochs, ``~`` pre-releases, ``+debNuM`` / ``+bN`` / ``+dfsg`` suffixes, ``-0ubuntu`` style
revisions), multiarch ``i386`` twins, installonly-style kernels (several versions of one name), the header
``imagebuild lock`` writes, and between the two some changes: upgrades (security-style ``+deb12uN`` bumps and
new upstream versions), downgrades, additions, removals and arch changes. Then, N times each (medians reported):

* floor       — ``sort old > a; sort new > b; comm -3 a b`` with ``LC_ALL=C`` (one ``sh -c``), the
                textual difference of the two sets of lines;
* in-process  — ``imagebuild.bomdiff.run_diff(old, new)``: reading both files, the diff with dpkg ordering
                (the version-key cache cleared before each run; imports excluded);
* render json — ``render_json`` of that diff (for information);
* CLI         — ``python -m imagebuild bom diff old new --format json``, the whole process (exit 1: changes).

and prints the ratios to the floor. Also checks that the diff names exactly the packages whose lines ``comm``
reports, and its counts against what was generated.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imagebuild import debversion, rpmversion  # noqa: E402
from imagebuild.bom import BomEntry, render_bom  # noqa: E402
from imagebuild.bomdiff import BomDiff, render_json, run_diff  # noqa: E402

TARGET_IN_PROCESS = 3.0
HEADER = ["imagebuild BOM: role compute, arch amd64, distro bookworm, family deb",
          "name version arch (as dpkg-query -W -f '${Package} ${Version} ${Architecture}' prints)"]
_STEMS = ["lib", "python3-", "golang-", "node-", "r-cran-", "fonts-", "texlive-", "ruby-", "perl-", "x11-", "gir1.2-",
          "libreoffice-", "openmpi-", "nvidia-", "cuda-", "firmware-", ""]
_SUFFIXES = ["", "", "", "-dev", "-common", "-doc", "-bin", "-data", "-utils", "6", "1", "2", "3t64", "-0", "-1.0-0"]


def _version(rng: random.Random) -> str:
    epoch = rng.choices(["", "1:", "2:", "3:"], [90, 7, 2, 1])[0]
    upstream = ".".join(str(rng.randint(0, 40)) for _ in range(rng.choice([1, 2, 2, 3, 3, 4])))
    upstream += rng.choices(["", "~rc1", "~beta2", "+dfsg", "+ds", "+git20240101.abc1234", "+really2.1"],
                            [70, 4, 2, 10, 5, 6, 3])[0]
    revision = rng.choices([f"-{rng.randint(1, 9)}", f"-{rng.randint(1, 9)}+deb12u{rng.randint(1, 9)}",
                            f"-{rng.randint(1, 5)}+b{rng.randint(1, 3)}", f"-0ubuntu{rng.randint(1, 4)}", ""],
                           [60, 15, 10, 5, 10])[0]
    return f"{epoch}{upstream}{revision}"


def _upgrade(rng: random.Random, v: str) -> str:
    if rng.random() < 0.6:  # a security-style bump of the revision
        return v + "+deb12u1" if "+deb12u" not in v else v[:-1] + str(int(v[-1]) + 1)
    epoch, sep, rest = v.partition(":")
    head = f"{epoch}:" if sep else ""
    rest = rest if sep else v
    return f"{head}{rest.split('-')[0].split('~')[0].split('+')[0]}.{rng.randint(1, 9)}-1"


def generate(n: int, seed: int) -> tuple[list[BomEntry], list[BomEntry], dict[str, int]]:
    rng = random.Random(seed)
    names: set[str] = set()
    old: list[BomEntry] = []
    while len(old) < n:
        name = f"{rng.choice(_STEMS)}{rng.choice('abcdefghijklmnopqrstuvwxyz')}{rng.randint(0, 99999)}" \
               f"{rng.choice(_SUFFIXES)}"
        if name in names:
            continue
        names.add(name)
        arch = rng.choices(["amd64", "all"], [75, 25])[0]
        v = _version(rng)
        old.append(BomEntry(name, arch, v))
        if arch == "amd64" and name.startswith("lib") and rng.random() < 0.05:
            old.append(BomEntry(name, "i386", v))  # multiarch twin
    for k in range(3):  # installonly-style kernels
        old += [BomEntry(f"linux-image-6.1.0-{k}-amd64", "amd64", f"6.1.{100 + j}-1") for j in range(3)]
    old = old[:n]
    counts = {"upgraded": 0, "downgraded": 0, "added": 0, "removed": 0, "arch-changed": 0}
    new: list[BomEntry] = []
    seen: dict[str, int] = {}
    for e in old:
        seen[e.name] = seen.get(e.name, 0) + 1
    multi = {name for name, c in seen.items() if c > 1}  # multiarch twins and kernels stay as they are
    for e in old:
        r = rng.random()
        if e.name in multi:
            new.append(e)
        elif r < 0.02:
            new.append(BomEntry(e.name, e.arch, _upgrade(rng, e.version)))
            counts["upgraded"] += 1
        elif r < 0.022 and "+deb12u" in e.version and e.version[-1] != "1":
            new.append(BomEntry(e.name, e.arch, e.version[:-1] + str(int(e.version[-1]) - 1)))
            counts["downgraded"] += 1
        elif r < 0.027:
            counts["removed"] += 1
        elif r < 0.028:
            new.append(BomEntry(e.name, "all" if e.arch == "amd64" else "amd64", e.version))
            counts["arch-changed"] += 1
        else:
            new.append(e)
    for i in range(n // 200):
        name = f"new-package{i}"
        if name not in seen:
            new.append(BomEntry(name, "amd64", _version(rng)))
            counts["added"] += 1
    return old, new, counts


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call: this process's CPU time plus that of the children it waited for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, t = time.process_time(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, time.process_time() - cpu + (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)


def _medians(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[float, float, float]]:
    """Median wall, median CPU and best wall of each, run interleaved (one of each per round) so that changes of
    the machine's load hit all of them alike."""
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            samples[k].append(_timed(fn))
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v), min(w for w, _ in v))
            for k, v in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=7, help="repetitions of each measurement (median)")
    ap.add_argument("--lines", type=int, default=100_000, help="packages per BOM")
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    ap.add_argument("--check-targets", action="store_true", help="exit 1 when the in-process target is missed")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-bomdiff-"))
    old, new, counts = generate(args.lines, args.seed)
    (work / "old.bom").write_text(render_bom(old, HEADER))
    (work / "new.bom").write_text(render_bom(new, HEADER))  # sorted, as `imagebuild lock` writes BOMs
    rng = random.Random(args.seed + 1)
    rng.shuffle(new)  # the same, unsorted (a captured dpkg-query / rpm -qa list): sorted on reading
    (work / "new-unsorted.bom").write_text("".join(f"# {h}\n" for h in HEADER) + "".join(f"{e.line()}\n" for e in new))
    size = (work / "old.bom").stat().st_size + (work / "new.bom").stat().st_size
    del old, new  # 200 000 objects the garbage collector would walk in every timed run below
    gc.collect()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    cli_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}

    def python_start() -> None:
        subprocess.run([sys.executable, "-c", "import imagebuild.cli"], env=cli_env, check=True)

    t_start = _medians({"startup": python_start}, args.runs)["startup"]
    print(f"load average before the runs: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print()
    raw: dict[str, object] = {"lines": args.lines, "runs": args.runs, "startup": t_start}
    ok = target_ok = True
    for scenario, new_name in (("both sorted", "new.bom"), ("NEW unsorted", "new-unsorted.bom")):
        floor_cmd = f"sort old.bom > a.sorted && sort {new_name} > b.sorted && comm -3 a.sorted b.sorted > comm.out"

        def floor(cmd: str = floor_cmd) -> None:
            subprocess.run(["sh", "-c", cmd], cwd=work, env=env, check=True)

        result: dict[str, BomDiff] = {}

        def in_process(name: str = new_name, out: dict[str, BomDiff] = result) -> None:
            for cached in (debversion.version_key, rpmversion.compare_evr):  # every run orders versions afresh
                clear = getattr(cached, "cache_clear", None)
                if clear is not None:
                    clear()
            d = run_diff(str(work / "old.bom"), str(work / name))
            assert isinstance(d, BomDiff)
            out["d"] = d

        def cli(name: str = new_name) -> None:
            p = subprocess.run([sys.executable, "-m", "imagebuild", "bom", "diff", "old.bom", name, "--format",
                                "json"], cwd=work, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               check=False)
            if p.returncode != 1:
                raise SystemExit(f"bom diff exited {p.returncode}: {p.stderr.decode()[-500:]}")

        floor()
        in_process()  # warm the page cache and the imports once, untimed
        d = result["d"]
        m = _medians({"floor": floor, "in": in_process, "json": functools.partial(render_json, d), "cli": cli},
                     args.runs)
        t_floor, t_in, t_json, t_cli = m["floor"], m["in"], m["json"], m["cli"]

        # the diff names exactly the packages on comm's lines, and the counts generated
        comm_names = {ln.split()[0] for ln in (work / "comm.out").read_text().splitlines()
                      if not ln.lstrip().startswith("#")}
        diff_names = {e.name for e in d.added + d.removed} | {c.name for c in d.upgraded + d.downgraded} | \
            {a.name for a in d.arch_changed}
        got = {"upgraded": len(d.upgraded), "downgraded": len(d.downgraded), "added": len(d.added),
               "removed": len(d.removed), "arch-changed": len(d.arch_changed)}
        agrees = comm_names == diff_names and got == counts
        ok &= agrees
        print(f"{scenario}: two BOMs of {args.lines} packages ({size / 2**20:.1f} MiB together), "
              f"{sum(got.values())} changes (" + ", ".join(f"{v} {k}" for k, v in got.items())
              + f"); median of {args.runs}")
        print()
        print("| measurement | wall | / floor | user+sys | / floor | best wall | / floor |")
        print("|---|---|---|---|---|---|---|")
        rows = [("sort + sort + comm -3 (floor)", t_floor), ("run_diff, in-process", t_in),
                ("render_json (information)", t_json), ("python -m imagebuild bom diff --format json", t_cli),
                ("python -c 'import imagebuild.cli' (startup, information)", t_start)]
        for label, (w, c, best) in rows:
            print(f"| {label} | {w * 1000:.0f} ms | {w / t_floor[0]:.2f}× | {c * 1000:.0f} ms | "
                  f"{c / t_floor[1]:.2f}× | {best * 1000:.0f} ms | {best / t_floor[2]:.2f}× |")
        ratio = t_in[0] / t_floor[0]
        met = ratio <= TARGET_IN_PROCESS
        target_ok &= met
        print()
        print(f"in-process / floor (wall): {ratio:.2f}× (target ≤ {TARGET_IN_PROCESS:.0f}×: "
              f"{'met' if met else 'MISSED'}); the diff agrees with comm and the generator: "
              f"{'yes' if agrees else 'NO'}")
        print()
        raw[scenario] = {"floor": t_floor, "in_process": t_in, "render_json": t_json, "cli": t_cli, "counts": got}
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1) + "\n")
    if args.keep:
        print(f"kept {work}")
    else:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()
    if not ok:
        return 1
    return 1 if args.check_targets and not target_ok else 0

if __name__ == "__main__":
    sys.exit(main())
