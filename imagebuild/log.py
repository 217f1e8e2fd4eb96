"""Progress output on stderr: nested, timed steps (`-v`), warnings, and the final error line."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

_verbosity = 0
_depth = 0


def set_verbosity(level: int) -> None:
    global _verbosity
    _verbosity = level


def info(message: str) -> None:
    print(message, file=sys.stderr)


def debug(message: str) -> None:
    if _verbosity > 0:
        print("  " * _depth + message, file=sys.stderr)


def warn(message: str) -> None:
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
