"""The one place that writes files: atomically, and only when the content changed."""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Building millions of small tuples is several times faster without the cyclic GC scanning them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # what was built is kept for the rest of the run: move it out of the collector's sight, or the
        # first collection after re-enabling scans all of it (~70 ms for a full Debian universe)
        gc.freeze()
        if enabled:
            gc.enable()


def write_atomic(path: Path, data: str | bytes) -> bool:
    """Write `data` to `path` via a temp file + rename. Returns False when the file already held it."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == raw:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
