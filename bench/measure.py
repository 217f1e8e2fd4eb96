"""Running one benchmarked command: its wall time, peak RSS and CPU time, as every bench script measures them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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
