"""Progress output on stderr: nested, timed steps (`-v`), a progress bar for long transfers (on a terminal only),
warnings, and the final error line. `--quiet` keeps only warnings and errors."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

_verbosity = 0
_depth = 0
_quiet = False
_warned: set[str] = set()


def set_verbosity(level: int, quiet: bool = False) -> None:
    global _verbosity, _quiet
    _verbosity, _quiet = level, quiet
    _warned.clear()  # a new run (the CLI sets this first)


def info(message: str) -> None:
    if not _quiet:
        print(message, file=sys.stderr)


def debug(message: str) -> None:
    if _verbosity > 0:
        print("  " * _depth + message, file=sys.stderr)


def warn(message: str) -> None:
    """Print a warning, once per run: the same one again (from another target, or relayed from a child process
    that worked ahead) is not repeated."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def error(message: str) -> None:
    """A finding that fails the command (its summary error follows)."""
    print(f"error: {message}", file=sys.stderr)


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    global _depth
    start = time.monotonic()
    debug(f"{message}…")
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        debug(f"{message}: {time.monotonic() - start:.2f}s")


class Meter:
    """What a long transfer reports: bytes as they arrive (negative: taken back by a retry) and files done."""

    def __init__(self, label: str, files: int, total: int) -> None:
        self.label, self.files, self.total = label, files, total
        self.done_files = self.done_bytes = 0
        self.start = time.monotonic()
        self.bar: Any = None

    def advance(self, nbytes: int) -> None:
        self.done_bytes += nbytes
        if self.bar is not None:
            self.bar.update(max(0, min(self.done_bytes, self.total)) - self.bar.pos)

    def file_done(self) -> None:
        self.done_files += 1
        if self.bar is not None:
            self.bar.label = self._label()
            self.bar.render_progress()

    def _label(self) -> str:
        return f"{self.label}: {self.done_files}/{self.files} files"

    def status(self) -> str:
        rate = self.done_bytes / max(time.monotonic() - self.start, 1e-3)
        return f"{_mib(self.done_bytes)}/{_mib(self.total)} MiB, {_mib(rate)} MiB/s"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


@contextlib.contextmanager
def progress(label: str, files: int, total: int) -> Iterator[Meter]:
    """A progress bar on stderr (files, bytes, rate) while the block runs, when stderr is a terminal and not
    --quiet; otherwise the meter only counts."""
    meter = Meter(label, files, total)
    if _quiet or files == 0 or not sys.stderr.isatty():
        yield meter
        return
    import click

    bar: Any
    with click.progressbar(length=max(total, 1), label=meter._label(), file=sys.stderr, show_eta=True,
                           item_show_func=lambda _: meter.status()) as bar:
        meter.bar = bar
        yield meter
