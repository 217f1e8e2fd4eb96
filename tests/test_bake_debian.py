"""End to end on the real Debian data, offline: lock → bake --target rootfs --build → verify.

The debian_http_auth (../shared/data, whose pool holds the minbase closure plus rdma-core, infiniband-diags,
ibverbs-providers and munge) is served on loopback behind HTTP basic auth with a sentinel password, so the
same run also proves that the credential reaches no rendered file, lock, BOM, log or the image itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import DEBIAN_SNAPSHOT, MINBASE_STATUS, SENTINEL  # noqa: E402

pytestmark = pytest.mark.slow

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ROLE = ["rdma-core", "infiniband-diags", "ibverbs-providers", "munge"]


def _config(root: Path, url: str, extra: str = "") -> Path:
    cred = url.replace("http://", f"http://ark:{SENTINEL}@")
    cfg = root / "imagebuild.toml"
    repos = "".join(f"""
[[distros.bookworm.repos]]
name = "{name}"
url = "{cred}/{path}"
suites = {suites}
components = ["main"]
signed-by = "{KEYRING}"
""" for name, path, suites in (("debian", "debian", '["bookworm", "bookworm-updates"]'),
                               ("security", "debian-security", '["bookworm-security"]')))
    cfg.write_text(f"""snapshot = "{DEBIAN_SNAPSHOT}"
[users]
munge = {{ uid = 64031, gid = 64031 }}
slurm = {{ uid = 64030, gid = 64030 }}

[distros.bookworm]
family = "deb"
arches = ["amd64"]
base = "{MINBASE_STATUS}"
{repos}
[roles.compute]
distro = "bookworm"
packages = {ROLE!r}

[roles.compute.image]
builder = "docker"
source = "localhost/imagebuild-minbase:latest"
""".replace("'", '"') + extra)
    return cfg


def run(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LC_ALL": "C", **(env or {})}
    return subprocess.run([sys.executable, "-m", "imagebuild", "-v", "--config", str(cfg), *args],
                          capture_output=True, text=True, env=full, timeout=1200, check=False)


@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap not installed (apt-get install mmdebstrap)")
def test_rootfs_from_the_lock_equals_the_bom_and_rebuilds_identically(debian_http_auth: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, debian_http_auth)
    locked = run(cfg, "lock")
    assert locked.returncode == 0, locked.stderr
    auth = {"IMAGEBUILD_AUTH_DEBIAN": f"ark:{SENTINEL}", "IMAGEBUILD_AUTH_SECURITY": f"ark:{SENTINEL}"}
    without = run(cfg, "bake", "--target", "rootfs", "--build")
    assert without.returncode == 2 and "IMAGEBUILD_AUTH_DEBIAN=user:password" in without.stderr, without.stderr
    built = run(cfg, "bake", "--target", "rootfs", "--build", env=auth)
    assert built.returncode == 0, built.stderr[-4000:]
    tar = tmp_path / "images/compute-amd64.tar"
    first = tar.read_bytes()

    # what is installed, read from the image itself, equals the BOM
    ok = run(cfg, "verify", "--role", "compute", "--arch", "amd64", "--rootfs", str(tar))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with tarfile.open(tar) as t:
        passwd = t.extractfile("./etc/passwd").read().decode()  # type: ignore[union-attr]
        munge_dir = t.getmember("./etc/munge")
        names = set(t.getnames())
        sources = t.extractfile("./etc/apt/sources.list.d/imagebuild.sources").read().decode()  # type: ignore
    assert re.search(r"^munge:x:64031:64031:", passwd, re.M) and re.search(r"^slurm:x:64030:64030:", passwd, re.M)
    assert (munge_dir.uid, munge_dir.gid) == (64031, 64031)  # files of a package owned by the fixed account
    assert "./etc/munge/munge.key" not in names  # a per-host secret: provisioned by the site, not baked
    assert "./etc/apt/sources.list.d/0000sources.list" not in names and "./etc/apt/apt.conf.d/99mmdebstrap" not in names
    assert "./etc/imagebuild/image.json" in names and "Signed-By: /etc/apt/keyrings/imagebuild-debian.gpg" in sources
    assert {"./etc/imagebuild/sbom.cdx.json", "./etc/imagebuild/sbom.spdx.json"} <= names  # the SBOMs ship
    assert SENTINEL.encode() not in first

    # a second build is byte-identical
    again = run(cfg, "bake", "--target", "rootfs", "--build", env=auth)
    assert again.returncode == 0, again.stderr[-3000:]
    assert tar.read_bytes() == first

    # the sentinel is in no rendered file, lock, BOM or log
    for p in tmp_path.rglob("*"):
        if p.is_file() and p.suffix != ".tar" and p.name != "imagebuild.toml":
            assert SENTINEL not in p.read_text(errors="replace"), p
    for res in (locked, without, built, again, ok):
        assert SENTINEL not in res.stdout + res.stderr

    # drift: a list with one version changed and one package missing is exit 1, naming both
    bom = [ln for ln in (tmp_path / "boms/compute-amd64.bom").read_text().splitlines() if ln[:1] != "#"]
    drifted = []
    for ln in bom:
        name, version, arch = ln.split()
        if name != "infiniband-diags":
            drifted.append(f"{name} {version}+local1 {arch}" if name == "munge" else ln)
    (tmp_path / "installed").write_text("\n".join(drifted) + "\n")
    drift = run(cfg, "verify", "--role", "compute", "--arch", "amd64", "--installed", str(tmp_path / "installed"))
    assert drift.returncode == 1 and "infiniband-diags" in drift.stdout and "munge" in drift.stdout, drift.stdout


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("mmdebstrap", "packer", "podman")),
                    reason="needs mmdebstrap, packer and podman (apt-get install mmdebstrap packer podman runc)")
def test_packer_docker_builder_on_podman_installs_exactly_the_bom(debian_http_auth: str, tmp_path: Path,
                                                                  request: pytest.FixtureRequest) -> None:
    """The same lock through real Packer: its docker builder (podman behind imagebuild's `docker` shim) runs
    the bundle in a container made from a real minbase rootfs of the same debian_http_auth (`podman import`); the
    exported container's dpkg status equals the BOM, and the sensitive repo password reaches neither the
    image nor Packer's output."""
    from importlib.resources import files

    cfg = _config(tmp_path, debian_http_auth)
    assert run(cfg, "lock").returncode == 0
    podman_root = tempfile.mkdtemp(prefix="ibp-", dir="/tmp")  # podman wants a runroot under 50 characters
    request.addfinalizer(lambda: shutil.rmtree(podman_root, ignore_errors=True))
    env = {"IMAGEBUILD_PODMAN_ROOT": podman_root, "SOURCE_DATE_EPOCH": "1763769600"}
    # the base image: mmdebstrap --variant=minbase from the same debian_http_auth (credentials through a netrc part)
    netrc = tmp_path / "netrc"
    netrc.mkdir(mode=0o755)
    (netrc / "a.conf").write_text(f"machine {debian_http_auth}/ login ark password {SENTINEL}\n")
    sources = tmp_path / "minbase.list"
    sources.write_text("".join(f"deb [signed-by={KEYRING}] {debian_http_auth}/{path} {suite} main\n"
                               for path, suite in (("debian", "bookworm"), ("debian", "bookworm-updates"),
                                                   ("debian-security", "bookworm-security"))))
    base = tmp_path / "minbase.tar"
    mm = subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "--format=tar", "--quiet",
                         "--aptopt=Acquire::Check-Valid-Until \"false\"", f"--aptopt=Dir::Etc::netrcparts \"{netrc}\"",
                         "--customize-hook=rm -f \"$1/etc/apt/apt.conf.d/99mmdebstrap\"",
                         "bookworm", str(base), str(sources)], capture_output=True, text=True,
                        env={**os.environ, **env}, timeout=900, check=False)
    assert mm.returncode == 0, mm.stderr[-3000:]
    shim = tmp_path / "docker"
    shim.write_bytes(files("imagebuild").joinpath("templates/docker-podman-shim").read_bytes())
    imp = subprocess.run(["sh", str(shim), "import", str(base), "localhost/imagebuild-minbase:latest"],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=600, check=False)
    assert imp.returncode == 0, imp.stderr
    cfg.write_text(cfg.read_text() + "pull = false\n")
    built = run(cfg, "bake", "--target", "packer", "--build",
                env={**env, "PKR_VAR_repo_auth_debian": f"ark:{SENTINEL}",
                     "PKR_VAR_repo_auth_security": f"ark:{SENTINEL}"})
    assert built.returncode == 0, built.stderr[-4000:]
    assert SENTINEL not in built.stdout + built.stderr
    template = (tmp_path / "packer/compute.pkr.hcl").read_text()
    for var in ("repo_auth_debian", "repo_auth_security"):  # secrets: sensitive variables, empty by default
        block = re.search(rf'variable "{var}" {{(.*?)\n}}', template, re.S)
        assert block and "sensitive = true" in block[1] and 'default = ""' in block[1], template
    assert '"IMAGEBUILD_AUTH_DEBIAN=${var.repo_auth_debian}"' in template
    exported = tmp_path / "images/compute-amd64.packer.tar"
    ok = run(cfg, "verify", "--role", "compute", "--arch", "amd64", "--rootfs", str(exported))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert SENTINEL.encode() not in exported.read_bytes()
    manifest = (tmp_path / "packer/manifest-compute.json").read_text()
    digest = __import__("hashlib").sha256((tmp_path / "snapshots.lock").read_bytes()).hexdigest()
    assert f'"lock_digest": "{digest}"' in manifest
    with tarfile.open(exported) as t:
        passwd = t.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
    assert re.search(r"^munge:x:64031:64031:", passwd, re.M)
