"""The integrity chain on the real signed bookworm metadata: signature -> InRelease -> index, each checked.

A mirror caught between two syncs serves an InRelease that names other indices than the ones it serves (a
Release replaced between fetching it and its indices: mix-and-match). Without by-hash that is exit 4 naming the
index, the digest the InRelease gives and the one served, with the lock and cache left as they were; with by-hash
(the archive's answer to exactly this) the lock reads the indices its InRelease names and is right. A by-hash 404
falls back to the plain name (the real data has Acquire-By-Hash but no by-hash directories); a Content-Length
shorter than the file is a checksum mismatch, never a lock."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import DEBIAN_DATA, bookworm_config  # noqa: E402
from faultserver import FaultPlan, fault_server  # noqa: E402

SUITE = Path("debian/dists/bookworm")
INDEX = SUITE / "main/binary-amd64/Packages.xz"
ROLE = """[roles.login]
distro = "bookworm"
packages = ["bash", "coreutils"]
"""
pytestmark = pytest.mark.skipif(not (DEBIAN_DATA / INDEX).is_file(), reason=f"no Debian data at {DEBIAN_DATA}")


def _archive(tmp: Path) -> Path:
    """bookworm's InRelease and main amd64 index, linked from the data (files are replaced, never written to)."""
    root = tmp / "archive"
    for rel in (SUITE / "InRelease", INDEX):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.link(DEBIAN_DATA / rel, root / rel)
    return root


def _config(proj: Path, url: str) -> Path:
    proj.mkdir(exist_ok=True)
    return bookworm_config(proj / "imagebuild.toml", url, ROLE, suites=("bookworm",), security=False, base=None,
                           components=("main",))


def _locked(proj: Path) -> object:
    """What the lock says of the packages (its inputs digest and repo URLs name the server's port)."""
    return json.loads((proj / "snapshots.lock").read_text())["targets"]


def _lock(cfg: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(cache), "IMAGEBUILD_HTTP_TIMEOUT": "5"}
    return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock"], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def _newer_index(original: bytes) -> bytes:
    """The index as a later sync could have it: its first half of packages gone (smaller than the InRelease says,
    so it is read to the end: a larger one is cut off at the size the InRelease gives)."""
    text = lzma.decompress(original)
    half = text.index(b"\n\n", len(text) // 2) + 2
    return lzma.compress(text[half:])


def _replace(path: Path, data: bytes) -> None:
    path.unlink()  # the archive links the shared data: never write through the link
    path.write_bytes(data)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> object:
    tmp = tmp_path_factory.mktemp("ref")
    plan = FaultPlan()
    with fault_server(_archive(tmp), plan) as url:
        cfg = _config(tmp / "proj", url)
        res = _lock(cfg, tmp / "cache")
        assert res.returncode == 0, res.stderr
        requests = [p for p, _ in plan.log]
    # the by-hash 404 then the plain name: what every lock of this data does
    sha = hashlib.sha256((DEBIAN_DATA / INDEX).read_bytes()).hexdigest()
    by_hash = f"/{INDEX.parent}/by-hash/SHA256/{sha}"
    assert by_hash in requests and f"/{INDEX}" in requests
    assert requests.index(by_hash) < requests.index(f"/{INDEX}")
    return _locked(tmp / "proj")


def test_an_index_of_another_sync_is_exit_4_naming_both_digests(tmp_path: Path, reference: object) -> None:
    root = _archive(tmp_path)
    original = (root / INDEX).read_bytes()
    newer = _newer_index(original)
    _replace(root / INDEX, newer)
    with fault_server(root, FaultPlan()) as url:
        cfg = _config(tmp_path / "proj", url)
        previous = b"{}"  # whatever the project had: it stays as it is
        (tmp_path / "proj" / "snapshots.lock").write_bytes(previous)
        res = _lock(cfg, tmp_path / "cache")
        assert res.returncode == 4, res.stderr
        first = res.stderr.splitlines()[0]
        assert "Packages.xz" in first and "checksum mismatch" in first
        assert hashlib.sha256(original).hexdigest() in first and hashlib.sha256(newer).hexdigest() in first
        assert "Traceback" not in res.stderr
        assert (tmp_path / "proj" / "snapshots.lock").read_bytes() == previous
        assert not (tmp_path / "proj" / "boms").exists()
        # nothing of the wrong index was cached: the mirror finishing its sync heals the next run
        _replace(root / INDEX, original)
        healed = _lock(cfg, tmp_path / "cache")
        assert healed.returncode == 0, healed.stderr
        assert _locked(tmp_path / "proj") == reference


def test_by_hash_keeps_a_mirror_between_syncs_consistent(tmp_path: Path, reference: object) -> None:
    root = _archive(tmp_path)
    original = (root / INDEX).read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    by_hash = root / INDEX.parent / "by-hash" / "SHA256" / sha
    by_hash.parent.mkdir(parents=True)
    os.link(DEBIAN_DATA / INDEX, by_hash)
    _replace(root / INDEX, _newer_index(original))  # the plain name already has the next sync's index
    plan = FaultPlan()
    with fault_server(root, plan) as url:
        res = _lock(_config(tmp_path / "proj", url), tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    assert _locked(tmp_path / "proj") == reference
    assert f"/{INDEX}" not in [p for p, _ in plan.log]  # the plain name was never needed


@pytest.mark.parametrize("fault", ["short", "long"])
def test_a_wrong_content_length(tmp_path: Path, reference: object, fault: str) -> None:
    """Shorter: the client cannot tell a cut file, the digest can (exit 4, then healed). Longer: the connection
    ends before the promised bytes, which is retried."""
    plan = FaultPlan()
    with fault_server(_archive(tmp_path), plan) as url:
        cfg = _config(tmp_path / "proj", url)
        plan.add(f"/{INDEX}", fault)
        res = _lock(cfg, tmp_path / "cache")
        if fault == "short":
            assert res.returncode == 4 and "checksum mismatch" in res.stderr.splitlines()[0], res.stderr
            assert not (tmp_path / "proj" / "snapshots.lock").exists()
            res = _lock(cfg, tmp_path / "cache")
        assert res.returncode == 0, res.stderr
    assert _locked(tmp_path / "proj") == reference


def test_a_release_replaced_by_an_unsigned_one_is_refused(tmp_path: Path) -> None:
    root = _archive(tmp_path)
    signed = (root / SUITE / "InRelease").read_bytes()
    body = signed.split(b"\n\n", 1)[1].split(b"\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    _replace(root / SUITE / "InRelease", body.replace(b"Packages.xz", b"Packages.xy", 1))
    with fault_server(root, FaultPlan()) as url:
        res = _lock(_config(tmp_path / "proj", url), tmp_path / "cache")
    assert res.returncode == 4 and "InRelease" in res.stderr.splitlines()[0], res.stderr
    assert not (tmp_path / "proj" / "snapshots.lock").exists()
    assert shutil.which("gpgv") is not None
