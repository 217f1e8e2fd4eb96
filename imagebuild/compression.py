"""Decompressing repository metadata (Packages.xz, primary.xml.gz, modules.yaml.zst, …) by its file name, bounded.

A few kilobytes of xz, bzip2 or zstd can expand to gigabytes; the metadata is read into memory, so a file that
expands beyond what any real index does (`limit`) is refused instead of exhausting the machine.
"""

from __future__ import annotations

import bz2
import contextlib
import fcntl
import lzma
import os
import zlib
from collections.abc import Callable, Iterator

from imagebuild.errors import RepositoryError

#: Always allowed (Debian's main Packages is ~50 MiB) ...
MIN_LIMIT = 256 << 20
#: ... beyond that, a file may expand this many times (real metadata: 5-30x; a big filelists.xml ~700 MiB) ...
MAX_RATIO = 100
#: ... and never to more than this.
MAX_LIMIT = 4 << 30
_CHUNK = 1 << 24
_FEED = 1 << 16
_ZSTD_STEP = 1 << 10
_FORKED_PIPE = 1 << 20


def limit(compressed_size: int) -> int:
    """How many bytes a file of `compressed_size` bytes may decompress to."""
    return min(MAX_LIMIT, max(MIN_LIMIT, MAX_RATIO * compressed_size))


def _chunks(name: str, data: bytes, step: int) -> Iterator[bytes] | None:
    """The decompressed bytes in pieces of at most `step` bytes, for zstd a little more (None: not a compressed
    name). A `step` beyond the limit gives most files in one piece: one call into the library, nothing joined."""
    if name.endswith((".xz", ".lzma")):
        return _streams(lzma.LZMADecompressor, data, step)
    if name.endswith(".bz2"):
        return _streams(bz2.BZ2Decompressor, data, step)
    if name.endswith(".gz"):
        return _gzip_chunks(data, step)
    if name.endswith((".zst", ".zstd")):
        return _zstd_chunks(name, data)
    return None


def _streams(make: Callable[[], lzma.LZMADecompressor | bz2.BZ2Decompressor], data: bytes,
             step: int) -> Iterator[bytes]:
    """Every stream of an xz or bzip2 file, as lzma.decompress and bz2.decompress read them (trailing garbage and
    a truncated stream are errors), with bounded output."""
    rest = data
    while rest:
        obj = make()
        yield obj.decompress(rest, step)
        while not obj.eof:
            if obj.needs_input:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            yield obj.decompress(b"", step)
        rest = obj.unused_data


def _gzip_chunks(data: bytes, step: int) -> Iterator[bytes]:
    """Every member of a gzip file (zero padding after the last is allowed, as gzip does; other trailing bytes are
    an error), with bounded output. Input is fed in pieces: zlib copies what it has not consumed on every call."""
    view, pos = memoryview(data), 0
    while pos < len(data):
        obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not obj.eof:
            if obj.unconsumed_tail:
                yield obj.decompress(obj.unconsumed_tail, step)
            elif pos < len(data):
                piece = view[pos:pos + (_FEED if step <= _CHUNK else len(data))]
                pos += len(piece)
                yield obj.decompress(piece, step)
            elif out := obj.decompress(b"", step):
                yield out
            else:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        pos -= len(obj.unused_data)  # the next member starts there
        if data[pos:pos + 2] != b"\x1f\x8b":
            if any(view[pos:]):
                raise OSError("Not a gzipped file (trailing garbage)")
            return


def _zstd_chunks(name: str, data: bytes) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise RepositoryError(f"{name}: zstd-compressed metadata needs the zstandard module",
                              hint="pip install zstandard") from None
    # zstandard's readers take a truncated frame for the end of the data: a decompressobj says whether the
    # frame ended. It has no output bound, so it is fed little at a time (a zstd block expands 32768x at most).
    view, pos, pending = memoryview(data), 0, b""
    while pos < len(data) or pending:
        obj = zstandard.ZstdDecompressor().decompressobj()
        while not obj.eof:
            if pending:
                yield obj.decompress(pending)
                pending = b""
            elif pos < len(data):
                yield obj.decompress(view[pos:pos + _ZSTD_STEP])
                pos += _ZSTD_STEP
            else:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        pending = obj.unused_data  # the start of the next frame


def _errors() -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


def decompress(name: str, data: bytes) -> bytes:
    """`data` decompressed as its name says (.xz/.lzma, .gz, .bz2, .zst/.zstd; anything else is returned as it is).
    Every stream or member of a file is read (as xz, gzip and zstd tools do)."""
    chunks: list[bytes] = []

    def keep(chunk: bytes) -> None:
        if chunk:
            chunks.append(chunk)

    if not _read(name, data, keep, limit(len(data)) + 1):
        return data
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decompress_chunks(name: str, data: bytes, step: int = 1 << 20) -> Iterator[bytes]:
    """What `decompress` gives (and refuses), in pieces of about `step` bytes, decompressed by a thread ahead of
    the reader: the libraries release the GIL, so a reader that parses each piece runs on another core meanwhile
    (the floor of a cold lock is the decompression)."""
    import queue
    import threading

    pieces: queue.SimpleQueue[bytes | BaseException | None] = queue.SimpleQueue()

    def work() -> None:
        try:
            if not _read(name, data, pieces.put, step):
                pieces.put(data)
            pieces.put(None)
        except BaseException as e:  # noqa: BLE001  (handed to the reader, raised there)
            pieces.put(e)

    threading.Thread(target=work, name=f"decompress {name}", daemon=True).start()
    while (piece := pieces.get()) is not None:
        if isinstance(piece, BaseException):
            raise piece
        if piece:
            yield piece


def feed(name: str, data: bytes, out: Callable[[bytes], object]) -> None:
    """What `decompress` gives (and refuses), handed to `out` piece by piece (of at most 16 MiB) as it is
    decompressed: for a writer that keeps only a file of it (libsolv's input)."""
    if not _read(name, data, out, _CHUNK):
        out(data)


def feed_forked(name: str, data: bytes, out: Callable[[bytes], object]) -> bool:
    """What `feed` gives, decompressed by a forked child into a pipe while `out` takes it here, on another core
    (threads would not overlap: a reader that holds the GIL, as a regex does, stalls the decompressing thread at
    every piece). True when the child decompressed it all and `out` had all of it; False when the child failed
    (damaged or hostile data, or no child could be started): `out` may have had part of it, and `feed` says
    what was wrong."""
    try:
        r, w = os.pipe()
    except OSError:
        return False
    with contextlib.suppress(OSError):  # a larger pipe: fewer, larger pieces (a Linux limit; else 64 KiB)
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _FORKED_PIPE)
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return False
    if pid == 0:
        code = 1
        try:
            os.close(r)
            with open(w, "wb", buffering=0) as pipe:
                feed(name, data, pipe.write)
            code = 0
        finally:
            os._exit(code)  # nothing of the parent's runs here: no atexit, no buffered output
    os.close(w)
    try:
        with open(r, "rb", buffering=0) as pipe:
            while piece := pipe.read(_FORKED_PIPE):
                out(piece)
    finally:
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _read(name: str, data: bytes, out: Callable[[bytes], object], step: int) -> bool:
    pieces = _chunks(name, data, step)
    if pieces is None:
        return False
    most = limit(len(data))
    total = 0
    try:
        for chunk in pieces:
            total += len(chunk)
            if total > most:
                raise RepositoryError(
                    f"{name}: decompresses to more than {most >> 20} MiB from {len(data)} bytes",
                    hint="no real repository index is that large: the file is damaged or hostile")
            out(chunk)
    except _errors() as e:
        raise RepositoryError(f"{name}: corrupt compressed data: {e}") from None
    return True
