"""Running one benchmarked command: its wall time, peak RSS and CPU time, as every bench script measures them."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: `--scale`: how much longer several distro × arch targets may take than one (both lock benchmarks)
TARGET_SCALE = 1.3


@dataclass
class Measured:
    wall: float  # seconds
    rss_kb: int  # peak RSS, KiB: the child's ru_maxrss (it and the helpers it waited for)
    rc: int
    out: str  # stdout and stderr
    cpu: float  # user + system seconds


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Measured:
    """Run `cmd`; wall seconds, peak RSS and user+system CPU seconds of that child alone, via wait4."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        return Measured(wall, ru.ru_maxrss, os.waitstatus_to_exitcode(status), out.read(), ru.ru_utime + ru.ru_stime)


def lock_cold_warm(ib_cmd: list[str], env: dict[str, str], work: Path, tag: str,
                   write_config: Callable[[Path], Path]) -> tuple[Measured, Measured, Path]:
    """`imagebuild lock` with an empty IMAGEBUILD_CACHE (cold), then again with the cache it left and a fresh
    output dir, so only the metadata cache is warm: both runs, and the warm run's project dir. Each project is
    `work/ib-TAG-{cold,warm}`, written by `write_config(dir)` (which returns the config's path); the cache is
    `work/ib-cache-TAG`. A failed run ends the benchmark, with its output."""
    cache = work / f"ib-cache-{tag}"
    cache.mkdir()
    e = {**env, "IMAGEBUILD_CACHE": str(cache)}
    runs = []
    for kind in ("cold", "warm"):
        d = work / f"ib-{tag}-{kind}"
        d.mkdir()
        m = run_measured([*ib_cmd, "--config", str(write_config(d)), "lock"], e, cwd=d)
        if m.rc != 0:
            sys.exit(f"imagebuild lock ({kind}) failed (exit {m.rc}):\n{m.out[-4000:]}")
        runs.append(m)
    return runs[0], runs[1], d


def scale_runs(repeat: int, shapes: Mapping[str, Callable[[Path], Path]], ib_cmd: list[str], env: dict[str, str],
               work: Path) -> dict[str, list[Measured]]:
    """`--scale`: cold and warm locks (`lock_cold_warm`) of each shape's config (written by its function), `repeat`
    times, one of each shape a round; the runs by "SHAPE cold" / "SHAPE warm"."""
    res: dict[str, list[Measured]] = {f"{s} {k}": [] for s in shapes for k in ("cold", "warm")}
    for i in range(repeat):
        for n, (shape, config) in enumerate(shapes.items()):
            cold, warm, _ = lock_cold_warm(ib_cmd, env, work, f"scale{n}-{i}", config)
            res[f"{shape} cold"].append(cold)
            res[f"{shape} warm"].append(warm)
        print(f"run {i + 1}/{repeat}: " + "  ".join(f"{k} {v[-1].wall:.2f}s" for k, v in res.items()),
              file=sys.stderr)
    return res


def scale_report(res: dict[str, list[Measured]], title: str, small: str, big: str, target: float,
                 json_path: Path | None, check_targets: bool) -> int:
    """Print the medians of `scale_runs` and the ratios `big` / `small`, cold and warm, against `target`; write
    the raw numbers to `json_path`; the exit code (1 when `check_targets` and a ratio misses the target)."""
    med = {k: (statistics.median(m.wall for m in v), statistics.median(m.rss_kb for m in v)) for k, v in res.items()}
    print(f"\n{title}, median of {len(next(iter(res.values())))}")
    print(f"{'':<34} {'wall':>11} {'peak RSS':>14}")
    for k, (w, rss) in med.items():
        print(f"{k:<34} {w:9.2f} s {rss / 1024:10.0f} MiB")
    ratios = {kind: med[f"{big} {kind}"][0] / med[f"{small} {kind}"][0] for kind in ("cold", "warm")}
    for kind, r in ratios.items():
        verdict = "OK" if r <= target else "MISSED"
        print(f"{f'ratio {kind} {big}/{small}':<34} {r:9.2f} x   target <= {target}x  {verdict}")
    if json_path:
        json_path.write_text(json.dumps({
            "scale": True, "repeat": len(next(iter(res.values()))), "ratios": ratios,
            "runs": {k: [{"wall_s": m.wall, "peak_rss_kb": m.rss_kb} for m in v] for k, v in res.items()},
        }, indent=2) + "\n")
    return 1 if check_targets and max(ratios.values()) > target else 0
