"""Shared pytest fixtures.

* ``loopback_server(handler)``: context manager running an HTTP handler on a free loopback port.
* ``debian_http`` (session): serves the real Debian snapshot in ``../shared/data/debian-20261122``
  (``/debian`` and ``/debian-security``) on a free loopback port; yields ``http://127.0.0.1:PORT``.
  Skips when the data is absent.  Override the location with ``IMAGEBUILD_TEST_DEBIAN_DATA``.
* ``debian_http_auth`` (session): the same behind HTTP basic auth with the password ``SENTINEL``.
* ``_imagebuild_cache`` (session, autouse): points ``IMAGEBUILD_CACHE`` at one session tmp dir,
  so every test (and every imagebuild subprocess) shares a warm metadata cache.
* ``run_imagebuild``: runs ``python -m imagebuild --config CFG ARGS...`` with ``LC_ALL=C`` and
  returns the ``CompletedProcess`` (text mode, output captured, never raises on exit status).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEBIAN_DATA = Path(
    os.environ.get("IMAGEBUILD_TEST_DEBIAN_DATA", REPO_ROOT.parent / "shared" / "data" / "debian-20261122")
)
MINBASE_STATUS = DEBIAN_DATA.parent / "bases" / "bookworm-minbase.status"
# The instant DEBIAN_DATA was captured: every config that locks it says so, never "now" (its security,
# updates and backports Releases carry a Valid-Until of 2026-11-27).
DEBIAN_SNAPSHOT = "20261122T000000Z"


def bookworm_config(path: Path, url: str, roles: str, *, suites: tuple[str, ...] = ("bookworm", "bookworm-updates"),
                    security: bool = True, base: Path | None = MINBASE_STATUS, extra: str = "",
                    components: tuple[str, ...] = ("main", "contrib", "non-free", "non-free-firmware")) -> Path:
    """Write an imagebuild.toml at `path` for the real Debian data served at `url` (amd64, `components`, the
    security suite beside `suites`, `base`), with the TOML `roles` appended; returns the path."""
    if base is not None and not base.is_file():
        import pytest

        pytest.skip(f"base status not found at {base}")
    repos = "".join(f"""
[[distros.bookworm.repos]]
name = "{name}"
url = "{url}/{where}"
suites = [{", ".join(f'"{s}"' for s in names)}]
components = [{", ".join(f'"{c}"' for c in components)}]
signed-by = "/usr/share/keyrings/debian-archive-keyring.gpg"
""" for name, where, names in (("debian", "debian", suites), *([("security", "debian-security", ("bookworm-security",))]
                                                               if security else [])))
    path.write_text(f"""snapshot = "{DEBIAN_SNAPSHOT}"
{extra}
[distros.bookworm]
family = "deb"
arches = ["amd64"]
base = "{base if base is not None else 'none'}"
recommends = false
{repos}
{roles}""")
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@contextlib.contextmanager
def loopback_server(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run `handler` on a free 127.0.0.1 port in a thread; yields ``http://127.0.0.1:PORT``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="loopback-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def debian_http() -> Iterator[str]:
    """Base URL of a loopback HTTP server for the Debian snapshot data (``/debian``, ``/debian-security``)."""
    if not (DEBIAN_DATA / "debian" / "dists").is_dir():
        pytest.skip(f"Debian snapshot data not found at {DEBIAN_DATA} (set IMAGEBUILD_TEST_DEBIAN_DATA)")
    with loopback_server(functools.partial(_QuietHandler, directory=str(DEBIAN_DATA))) as url:
        yield url


SENTINEL = "S3ntinel-pw-7f3a"  # the repo password of `debian_http_auth`: it must show up nowhere


class _AuthHandler(_QuietHandler):
    expected = "Basic " + base64.b64encode(f"ark:{SENTINEL}".encode()).decode()

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="ark"')
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="session")
def debian_http_auth() -> Iterator[str]:
    """Like ``debian_http``, behind HTTP basic auth (user ``ark``, password SENTINEL), for the end-to-end builds
    (needs the data's ``pool/``)."""
    if not (DEBIAN_DATA / "debian" / "pool").is_dir() or not MINBASE_STATUS.exists():
        pytest.skip(f"Debian data with pool/ not found at {DEBIAN_DATA}")
    with loopback_server(functools.partial(_AuthHandler, directory=str(DEBIAN_DATA))) as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def _imagebuild_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ``IMAGEBUILD_CACHE`` for the whole session (inherited by imagebuild subprocesses)."""
    cache = tmp_path_factory.mktemp("imagebuild-cache")
    old = os.environ.get("IMAGEBUILD_CACHE")
    os.environ["IMAGEBUILD_CACHE"] = str(cache)
    try:
        yield cache
    finally:
        if old is None:
            os.environ.pop("IMAGEBUILD_CACHE", None)
        else:
            os.environ["IMAGEBUILD_CACHE"] = old


@pytest.fixture
def run_imagebuild() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_imagebuild(cfg, *args, timeout=900, env=None)`` -> CompletedProcess of the imagebuild CLI."""

    def run(cfg: str | os.PathLike[str], *args: str, timeout: float = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "imagebuild", "--config", str(cfg), *args],
            capture_output=True, text=True, env=full_env, timeout=timeout, check=False,
        )

    return run

