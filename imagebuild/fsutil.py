"""The one place that writes files: atomically, and only when the content changed."""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


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


class WriteError(OSError):
    """An output could not be written (the CLI reports it as exit 4, naming the file)."""


PROJECT_LOCK = ".imagebuild.lock"


@contextlib.contextmanager
def project_lock(root: Path, *, wait: bool = True) -> Iterator[None]:
    """One writing run per project at a time: an exclusive flock on `root/.imagebuild.lock`, released when the
    process ends however it ends. A second run waits (saying so) or, with `wait=False`, fails naming the holder."""
    import fcntl

    from imagebuild import log
    from imagebuild.errors import ConfigError

    path = root / PROJECT_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            if not wait:
                raise ConfigError(f"another imagebuild run (pid {holder}) is writing in {root}",
                                  hint="wait for it, or run without --no-wait to queue behind it") from None
            log.info(f"waiting for another imagebuild run (pid {holder}) in {root} to finish…")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes) -> bool:
    """Write `data` to `path` via a temp file + rename. Returns False when the file already held it. A failure is a
    WriteError naming `path`; the file is then as it was."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == raw:
            return False
    except OSError:
        pass
    with atomic_file(path) as f:
        f.write(raw)
    return True


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through: a temp file beside it, flushed to disk and renamed over `path` when the block
    ends, removed if it raises. A failure is a WriteError naming `path`; the file is then as it was."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise WriteError(e.errno, f"{path}: cannot write: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(e.errno, f"{path}: cannot write: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
