"""A loopback HTTP server in front of a directory that misbehaves on purpose, as flaky mirrors do.

`FaultPlan` maps a path pattern (fnmatch over the URL path) to the faults its successive requests get: a
request takes the next fault of the first pattern it matches (none left: it is served normally). `"*"` as the
count repeats a fault for every request. Faults:

    503        503 with Retry-After: 1          500       500 Internal Server Error
    429        429 with Retry-After: 1          404       404 (by-hash: apt falls back to the plain name)
    401        401 asking for Basic credentials (a wrong password)
    reset      headers, a third of the body, then a TCP reset
    cut        headers with the full Content-Length, a third of the body, then a clean close
    long       a Content-Length larger than the body, then a close
    short      a Content-Length smaller than the body (the client reads a truncated file), then a close
    stall      headers and a third of the body, then nothing for longer than the client's read timeout
    drip       the whole body in small pieces with pauses, each shorter than the read timeout (must succeed)
    loop       a redirect to itself                      gzip      the body gzip-compressed on the way, labelled
    gzip-label a .gz/.xz file labelled Content-Encoding: gzip (must be kept as it is)         Content-Encoding
"""

from __future__ import annotations

import fnmatch
import gzip
import http.server
import random
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STALL = 3.0  # seconds a "stall" waits; tests set IMAGEBUILD_HTTP_TIMEOUT below it


@dataclass
class FaultPlan:
    rules: list[tuple[str, list[str]]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)  # (path, fault or "ok") per request
    lock: threading.Lock = field(default_factory=threading.Lock)
    per_path: bool = False  # each path's first request only gets a rule's fault (a transient fault per file) ...
    max_paths: int = 6  # ... for this many paths at most (each fault may cost a Retry-After second)
    seen: set[str] = field(default_factory=set)
    chaos: tuple[float, tuple[str, ...]] | None = None  # (rate, faults): a random transient fault per request
    rng: random.Random = field(default_factory=lambda: random.Random(1))

    def add(self, pattern: str, *faults: str, every: bool = False) -> FaultPlan:
        self.rules.append((pattern, ["*" + f for f in faults] if every else list(faults)))
        return self

    def take(self, path: str) -> str | None:
        with self.lock:
            if self.chaos is not None:
                rate, faults = self.chaos
                fault = self.rng.choice(faults) if self.rng.random() < rate else None
                self.log.append((path, fault or "ok"))
                return fault
            for pattern, faults in self.rules:
                if faults and fnmatch.fnmatchcase(path, pattern):
                    fault = faults[0].lstrip("*")
                    if self.per_path:
                        if path in self.seen or len(self.seen) >= self.max_paths:
                            continue
                        self.seen.add(path)
                        self.log.append((path, fault))
                        return fault
                    fault = faults[0]
                    if fault.startswith("*"):
                        self.log.append((path, fault[1:]))
                        return fault[1:]
                    faults.pop(0)
                    self.log.append((path, fault))
                    return fault
            self.log.append((path, "ok"))
            return None


def _handler(root: Path, plan: FaultPlan) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            fault = plan.take(path)
            file = root / path.lstrip("/")
            if fault in ("503", "429", "500"):
                self.send_response(int(fault))
                if fault != "500":
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "401":
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "loop":
                self.send_response(302)
                self.send_header("Location", self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "404" or not file.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = file.read_bytes()
            encoding = None
            if fault == "gzip":
                body, encoding = gzip.compress(body, mtime=0), "gzip"
            elif fault == "gzip-label":
                encoding = "gzip"
            self.send_response(200)
            length = len(body) + (100 if fault == "long" else -min(100, len(body) // 2) if fault == "short" else 0)
            self.send_header("Content-Length", str(length))
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            third = max(1, len(body) // 3)
            if fault in ("reset", "cut", "stall"):
                self.wfile.write(body[:third])
                self.wfile.flush()
                if fault == "stall":
                    time.sleep(STALL)
                if fault == "reset":  # SO_LINGER 0: close sends RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            if fault == "drip":
                for i in range(0, len(body), max(1, len(body) // 8)):
                    self.wfile.write(body[i:i + max(1, len(body) // 8)])
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            self.wfile.write(body)
            if fault in ("long", "short"):
                self.close_connection = True

    return Handler


@contextmanager
def fault_server(root: Path, plan: FaultPlan) -> Iterator[str]:
    """Serve `root` on a free 127.0.0.1 port with `plan`'s faults; yields http://127.0.0.1:PORT."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, plan))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"


def example_project(proj: Path, url: str) -> Path:
    """The example project in `proj` (its keys/, bases/ and imagebuild.toml) with its repos at `url`, the fault
    server of its mirror/ directory; returns the config's path."""
    for d in ("keys", "bases"):
        shutil.copytree(EXAMPLE / d, proj / d)
    cfg = proj / "imagebuild.toml"
    cfg.write_text((EXAMPLE / "imagebuild.toml").read_text().replace("file:mirror", url))
    return cfg


__all__ = ["EXAMPLE", "STALL", "FaultPlan", "example_project", "fault_server"]
