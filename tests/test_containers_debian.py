"""A container built from the lock, offline, on the real Debian data: base = "rootfs" (the distro's minbase built by
mmdebstrap from the snapshot and imported with podman), the Dockerfile built by `buildah bud --isolation chroot`
on vfs storage, the OCI archive checked by `imagebuild verify --container --image`.

The archive is served behind HTTP basic auth with a sentinel password, passed to the build as a build secret: it
must be in no layer, label, history entry or rendered file.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import SENTINEL  # noqa: E402
from test_bake_debian import _config, run  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("mmdebstrap", "podman", "buildah")),
    reason="needs mmdebstrap, podman and buildah (apt-get install mmdebstrap podman buildah runc)")]

def _layers(oci: Path) -> Iterator[bytes]:
    """Every blob of an OCI archive, decompressed when it is gzip."""
    with tarfile.open(oci) as t:
        for m in t.getmembers():
            if m.isfile() and m.name.startswith("blobs/"):
                data = t.extractfile(m).read()  # type: ignore[union-attr]
                yield gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_container_from_the_lock_verifies_and_keeps_no_secret(debian_http_auth: str, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    cfg = _config(tmp_path, debian_http_auth, '\n[roles.compute.container]\nbase = "rootfs"\n')
    locked = run(cfg, "lock")
    assert locked.returncode == 0, locked.stderr
    podman_root = tempfile.mkdtemp(prefix="ibc-", dir="/tmp")  # podman wants a runroot under 50 characters
    request.addfinalizer(lambda: shutil.rmtree(podman_root, ignore_errors=True))
    env = {"IMAGEBUILD_PODMAN_ROOT": podman_root, "SOURCE_DATE_EPOCH": "1763769600",
           "IMAGEBUILD_AUTH_DEBIAN": f"ark:{SENTINEL}", "IMAGEBUILD_AUTH_SECURITY": f"ark:{SENTINEL}"}
    built = run(cfg, "bake", "--role", "compute", "--target", "docker", "--build", env=env)
    assert built.returncode == 0, built.stderr[-4000:]
    oci = tmp_path / "images/compute-container-amd64.oci.tar"
    assert "built images/compute-container-amd64.oci.tar" in built.stdout

    # what the image holds, read from the archive's layers, is the container BOM
    ok = run(cfg, "verify", "--role", "compute", "--arch", "amd64", "--container", "--image", str(oci))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    base = run(cfg, "verify", "--role", "compute", "--arch", "amd64", "--container", "--image",
               str(tmp_path / "images/compute-container-base-amd64.oci.tar"))
    assert base.returncode == 1 and "rdma-core" in base.stdout  # the base alone is not the container

    # the build secret is in no layer, no config (labels, env, history) and no output
    blobs = list(_layers(oci))
    assert len(blobs) >= 4 and all(SENTINEL.encode() not in b for b in blobs)
    podman = ["podman", "--root", f"{podman_root}/storage", "--runroot", f"{podman_root}/run", "--storage-driver",
              "vfs"]
    inspect = subprocess.run([*podman, "image", "inspect", "localhost/imagebuild/compute-container:amd64"],
                             capture_output=True, text=True, check=True).stdout
    history = subprocess.run([*podman, "history", "--no-trunc", "localhost/imagebuild/compute-container:amd64"],
                             capture_output=True, text=True, check=True).stdout
    assert SENTINEL not in inspect and SENTINEL not in history and "IMAGEBUILD_AUTH" not in inspect
    config = json.loads(inspect)[0]
    labels = config["Config"]["Labels"] if "Config" in config else config["Labels"]
    digest = __import__("hashlib").sha256((tmp_path / "snapshots.lock").read_bytes()).hexdigest()
    assert labels["org.opencontainers.image.revision"] == digest and labels["org.imagebuild.role"] == "compute"
    assert labels["org.opencontainers.image.created"] == "2025-11-22T00:00:00Z"  # SOURCE_DATE_EPOCH
    for res in (locked, built, ok):
        assert SENTINEL not in res.stdout + res.stderr
    for p in tmp_path.rglob("*"):
        if p.is_file() and p.suffix != ".tar" and p.name != "imagebuild.toml":
            assert SENTINEL not in p.read_text(errors="replace"), p
    # the fixed account exists in the container with the node's ids
    with tarfile.open(tmp_path / "images/compute-container-base-amd64.tar") as t:
        assert "./etc/passwd" in t.getnames()
    assert any(b"munge:x:64031:64031:" in b for b in blobs)
