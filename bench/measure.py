"""Running one benchmarked command: its wall time, peak RSS and CPU time, as every bench script measures them."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
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
