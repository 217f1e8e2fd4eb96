"""`pip = ["name==version"]` in a role: locked with its hashes through hashin, installed with --require-hashes.

A loopback index serves PyPI's JSON API (what hashin reads) and a simple index (what pip reads) for a real
wheel made here; real pip then installs the bundle's requirements into a venv, and refuses a tampered file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import loopback_server  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"
WHEEL = "hpcsite_tools-1.0.0-py3-none-any.whl"


def make_wheel(path: Path) -> None:
    """A minimal, real wheel (PEP 427): one module, METADATA, WHEEL and RECORD."""
    files = {
        "hpcsite_tools/__init__.py": b"VERSION = '1.0.0'\n",
        "hpcsite_tools-1.0.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hpcsite-tools\nVersion: 1.0.0\n",
        "hpcsite_tools-1.0.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                               b"Tag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("hpcsite_tools-1.0.0.dist-info/RECORD,,")
    files["hpcsite_tools-1.0.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, (2026, 11, 22, 0, 0, 0)), data)


class _Index(http.server.SimpleHTTPRequestHandler):
    """/pypi/<name>/json (PyPI's JSON API), /simple/<name>/ (PEP 503) and /files/<wheel>."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        root = Path(self.directory)
        digest = hashlib.sha256((root / "files" / WHEEL).read_bytes()).hexdigest()
        base = f"http://{self.headers['Host']}"
        if self.path == "/pypi/hpcsite-tools/json":
            body = json.dumps({"info": {"name": "hpcsite-tools", "version": "1.0.0"}, "releases": {"1.0.0": [
                {"url": f"{base}/files/{WHEEL}", "filename": WHEEL, "digests": {"sha256": digest},
                 "python_version": "py3", "packagetype": "bdist_wheel"}]}}).encode()
            ctype = "application/json"
        elif self.path == "/simple/hpcsite-tools/":
            body = f'<html><body><a href="{base}/files/{WHEEL}#sha256={digest}">{WHEEL}</a></body></html>'.encode()
            ctype = "text/html"
        elif self.path.startswith("/files/"):
            super().do_GET()
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def index(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "index"
    (root / "files").mkdir(parents=True)
    make_wheel(root / "files" / WHEEL)
    with loopback_server(functools.partial(_Index, directory=str(root))) as url:
        yield url, root


def run(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), *args], capture_output=True,
                          text=True, env={**os.environ, "LC_ALL": "C"}, timeout=300, check=False)


def project(tmp_path: Path, url: str, pip: str = '["hpcsite-tools==1.0.0"]') -> Path:
    dst = tmp_path / "site"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle", "packer", "images"))
    cfg = dst / "imagebuild.toml"
    text = cfg.read_text()
    head, sep, rest = text.partition("[roles.login]\n")
    cfg.write_text(head + sep + f'pip = {pip}\npip-index = "{url}"\n' + rest)
    return cfg


def test_pip_requirements_are_locked_with_hashes_and_install_with_require_hashes(
        index: tuple[str, Path], tmp_path: Path) -> None:
    url, root = index
    cfg = project(tmp_path, url)
    stale = run(cfg, "lock", "--check")
    assert stale.returncode == 1  # a pip entry is an input of the lock
    res = run(cfg, "lock")
    assert res.returncode == 0, res.stderr
    doc = json.loads((cfg.parent / "snapshots.lock").read_text())
    digest = hashlib.sha256((root / "files" / WHEEL).read_bytes()).hexdigest()
    for arch in ("amd64", "arm64"):
        assert doc["targets"][f"login-{arch}"]["pip"] == [
            {"name": "hpcsite-tools", "version": "1.0.0", "hashes": [digest]}]
    assert "pip" not in doc["targets"]["compute-amd64"]  # roles without pip keep their old shape
    assert run(cfg, "lock", "--check").returncode == 0

    # the bundle's requirements, installed by real pip the way the image does it
    assert run(cfg, "bake", "--role", "login", "--target", "rootfs").returncode == 0
    req = cfg.parent / "packer/login/amd64/pip/requirements.txt"
    assert f"hpcsite-tools==1.0.0 \\\n    --hash=sha256:{digest}" in req.read_text()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin/python")] if _pip_has_python_option() else None
    if pip is None:
        pytest.skip("this pip has no --python option")
    args = [*pip, "install", "--no-cache-dir", "--require-hashes", "--no-deps", "--index-url", f"{url}/simple/",
            "-r", str(req)]
    ok = subprocess.run(args, capture_output=True, text=True, check=False, env={**os.environ, "PIP_CONFIG_FILE":
                                                                                 os.devnull})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert subprocess.run([str(venv / "bin/python"), "-c", "import hpcsite_tools"], check=False).returncode == 0
    # the same requirement against a file with other bytes: pip refuses it
    make_wheel_tampered = root / "files" / WHEEL
    data = make_wheel_tampered.read_bytes()
    make_wheel_tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    bad = subprocess.run([*args, "--force-reinstall"], capture_output=True, text=True, check=False,
                         env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert bad.returncode != 0 and "HASH" in (bad.stdout + bad.stderr).upper()


def _pip_has_python_option() -> bool:
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    major = int(out.split()[1].split(".")[0])
    return major >= 22


@pytest.mark.parametrize(("pip", "code", "needle"), [
    ('["hpcsite-tools>=1.0"]', 2, "is not an exact pin"),
    ('["hpcsite-tools"]', 2, "is not an exact pin"),
    ('["hpcsite-tools==9.9.9"]', 3, "hpcsite-tools==9.9.9"),
    ('["nosuchpkg==1.0"]', 3, "the index has no package 'nosuchpkg'"),
])
def test_bad_pip_requirements_fail_clearly(index: tuple[str, Path], tmp_path: Path, pip: str, code: int,
                                           needle: str) -> None:
    cfg = project(tmp_path, index[0], pip)
    before = (cfg.parent / "snapshots.lock").read_bytes()
    res = run(cfg, "lock")
    assert res.returncode == code, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert (cfg.parent / "snapshots.lock").read_bytes() == before


def test_an_index_that_does_not_answer_is_exit_4(tmp_path: Path) -> None:
    cfg = project(tmp_path, "http://127.0.0.1:9")
    res = run(cfg, "lock")
    assert res.returncode == 4 and "the index did not answer" in res.stderr and "Traceback" not in res.stderr
