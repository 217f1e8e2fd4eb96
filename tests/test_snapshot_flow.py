"""The dated-snapshot workflow end to end, through the CLI, as a site would run it.

A loopback server laid out like StackHPC's Pulp "ark" (``<content>/<path>/<YYYYMMDDTHHMMSS>/``, HTML index
listings, HTTP Basic auth) serves two snapshots of the fixture Rocky BaseOS and EPEL repos built by real
rpmbuild/createrepo_c: an older one (glibc 2.34-100.el9, one kernel, dkms 3.0.10) and a newer one (the
el9_4.2 glibc, a second kernel, dkms 3.1.8). The CUDA repo is a floating vendor repo next to them.

Every command's stdout/stderr and every file written (lock, BOMs, rewritten repo files, the mirror, the
metadata cache) is searched for the password: it must not appear anywhere.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import loopback_server  # noqa: E402
from rpmrepos import GLIBC, KERNELS, build_rpm_repos, missing_tools  # noqa: E402

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {' '.join(missing_tools())} to build RPMs")

SECRET = "s3ntinel-ark-Pa55"
OLD, NEW = "20261101T000000Z", "20261122T000000Z"
PATHS = {"baseos": "rocky/9/BaseOS/x86_64/os", "appstream": "rocky/9/AppStream/x86_64/os",
         "epel": "epel/9/Everything/x86_64"}
# what the older snapshot did not have yet
NEWER_ONLY = (f"-{GLIBC[1]}.", f"-{KERNELS[1]}.", "dkms-3.1.8")


def _createrepo(root: Path) -> None:
    env = {**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": "1732233600"}
    subprocess.run(["createrepo_c", "--quiet", "--no-database", "--revision", "1732233600",
                    "--set-timestamp-to-revision", str(root)], check=True, capture_output=True, env=env)


@pytest.fixture(scope="module")
def ark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (without credentials) of the Pulp-like content server."""
    repos = build_rpm_repos(tmp_path_factory.getbasetemp() / "rpmrepos")
    content = tmp_path_factory.mktemp("ark") / "pulp" / "content"
    for rid, path in PATHS.items():
        for snap in (OLD, NEW):
            dest = content / path / snap[:-1]
            dest.mkdir(parents=True)
            for rpm in repos[rid].rglob("*.rpm"):
                if snap == OLD and any(marker in rpm.name for marker in NEWER_ONLY):
                    continue
                os.link(rpm, dest / rpm.name)
            _createrepo(dest)
    token = "Basic " + base64.b64encode(f"ark:{SECRET}".encode()).decode()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != token:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="ark"')
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    with loopback_server(functools.partial(Handler, directory=str(content.parent.parent))) as url:
        yield f"{url}/pulp/content"


@pytest.fixture(scope="module")
def cuda_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_rpm_repos(tmp_path_factory.getbasetemp() / "rpmrepos")["cuda"]


def _config(project: Path, ark: str, cuda: Path) -> Path:
    cred = ark.replace("http://", f"http://ark:{SECRET}@")
    text = f"""\
snapshot = "{OLD}"   # bumped by `imagebuild bump`

[distros.rocky9]
family = "rpm"
arches = ["x86_64"]
releasever = "9"

[[distros.rocky9.repos]]
name = "baseos"
url = "{cred}/rocky/$releasever/BaseOS/$basearch/os/"
snapshot-provider = "pulp"

[[distros.rocky9.repos]]
name = "appstream"
url = "{cred}/rocky/$releasever/AppStream/$basearch/os/"
snapshot-provider = "pulp"

[[distros.rocky9.repos]]
name = "epel"
url = "{cred}/epel/$releasever/Everything/$basearch/"
snapshot-provider = "pulp"

[[distros.rocky9.repos]]
name = "cuda"
url = "file://{cuda}"

[roles.compute]
distro = "rocky9"
packages = ["nvidia-driver", "slurm-slurmd", "kernel", "glibc-devel"]
"""
    cfg = project / "imagebuild.toml"
    cfg.write_text(text)
    return cfg


class Session:
    """Runs imagebuild commands in one project and keeps every output for the leak check."""

    def __init__(self, project: Path, cache: Path) -> None:
        self.project, self.cache = project, cache
        self.outputs: list[str] = []

    def __call__(self, *args: str, ok: int | None = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(self.cache)}
        res = subprocess.run([sys.executable, "-m", "imagebuild", *args], cwd=self.project, capture_output=True,
                             text=True, env=env, timeout=300)
        self.outputs += [res.stdout, res.stderr]
        if ok is not None:
            assert res.returncode == ok, f"imagebuild {' '.join(args)} -> {res.returncode}\n{res.stdout}{res.stderr}"
        return res


def _bom(project: Path) -> dict[str, str]:
    lines = (project / "boms" / "compute-x86_64.bom").read_text().splitlines()
    out: dict[str, str] = {}
    for ln in lines:
        if not ln.startswith("#"):
            name, evr, _arch = ln.split()
            out[name] = f"{out[name]} {evr}" if name in out else evr
    return out


def test_lock_latest_bump_rewrite_mirror_without_leaking(ark: str, cuda_repo: Path, tmp_path: Path) -> None:
    project = tmp_path / "site"
    project.mkdir()
    cfg = _config(project, ark, cuda_repo)
    run = Session(project, tmp_path / "cache")

    # 1. lock at the older snapshot
    run("lock")
    before = _bom(project)
    assert before["glibc"] == GLIBC[0] and before["dkms"] == "3.0.10-1.el9"
    locked = json.loads((project / "snapshots.lock").read_text())
    repos = {r["name"]: r for r in locked["repos"]}
    assert repos["baseos"]["snapshot"] == OLD and repos["epel"]["snapshot"] == OLD
    assert repos["baseos"]["url"].endswith("/rocky/9/BaseOS/x86_64/os/20261101T000000")
    assert repos["cuda"]["snapshot"] is None  # floating vendor repo: pinned by version and metadata digest
    assert len(repos["baseos"]["release_sha256"]) == 64

    # 2. what is the newest snapshot? (Pulp's HTML index listing)
    latest = run("snapshot", "latest").stdout.split()
    assert latest == ["rocky9", "baseos", NEW, "rocky9", "appstream", NEW, "rocky9", "epel", NEW]
    assert run("snapshot", "latest", "--repo", "epel", "--at", "2026-11-10").stdout.split() == ["rocky9", "epel", OLD]
    bad = run("snapshot", "latest", "--repo", "cuda", ok=2)
    assert "no snapshot-provider" in bad.stderr

    # 3. bump --dry-run: the diff, nothing written
    lock_bytes, cfg_bytes = (project / "snapshots.lock").read_bytes(), cfg.read_bytes()
    dry = run("bump", "--to", NEW, "--dry-run", "--format", "json")
    diff = json.loads(dry.stdout)["compute-x86_64.bom"]
    upgraded = {c["name"]: (c["old"], c["new"]) for c in diff["upgraded"]}
    assert upgraded["glibc"] == (GLIBC[0], GLIBC[1])
    assert upgraded["dkms"] == ("3.0.10-1.el9", "3.1.8-1.el9")
    # a fresh image (base none) has one kernel either way: it moves to the newer build
    assert upgraded["kernel-core"] == (KERNELS[0], KERNELS[1])
    assert diff["added"] == diff["removed"] == diff["downgraded"] == []
    assert (project / "snapshots.lock").read_bytes() == lock_bytes and cfg.read_bytes() == cfg_bytes

    # 4. bump for real: config and lock move together, --check is happy
    old_boms = tmp_path / "boms-old"
    shutil.copytree(project / "boms", old_boms)
    text = run("bump", "--to", NEW[:-1]).stdout  # the id as ark's index lists it (no Z): the same UTC instant
    assert f"glibc x86_64 {GLIBC[0]} -> {GLIBC[1]}" in text
    assert f'snapshot = "{NEW}"   # bumped by `imagebuild bump`' in cfg.read_text()  # recorded canonically
    run("lock", "--check")
    assert _bom(project)["glibc"] == GLIBC[1]

    # 5. bom diff between the two boms/ trees: exit 1 (a difference), the same facts
    res = run("bom", "diff", str(old_boms), "boms", "--format", "json", ok=1)
    assert json.loads(res.stdout)["compute-x86_64.bom"] == diff
    md = run("bom", "diff", str(old_boms / "compute-x86_64.bom"), "boms/compute-x86_64.bom", "--format", "markdown",
             ok=1).stdout
    assert "| glibc | x86_64 |" in md
    run("bom", "diff", "boms", "boms")  # identical: exit 0

    # 6. re-locking at the same snapshot is a no-op; going back is allowed on purpose, with the diff
    assert "lock unchanged" in run("-v", "lock").stderr
    assert "kernel-core" in run("why", "kernel-core", "--role", "compute").stdout
    back = run("lock", "--snapshot", OLD, "--dry-run").stdout
    assert f"glibc x86_64 {GLIBC[1]} -> {GLIBC[0]} (downgrade)" in back

    # 7. the .repo files of the image, rewritten to the snapshot, credentials stripped
    repo_file = project / "rocky.repo"
    repo_file.write_text(
        "[baseos]\nname=Rocky Linux $releasever - BaseOS\n"
        f"baseurl={ark.replace('http://', f'http://ark:{SECRET}@')}/rocky/$releasever/BaseOS/$basearch/os/"
        f"{OLD[:-1]}/\ngpgcheck=1\nenabled=1\n\n"
        "[epel]\nname=EPEL $releasever\n#baseurl=unused\n"
        f"metalink=https://mirrors.example.invalid/metalink?repo=epel-$releasever&arch=$basearch\n"
        f"username=ark\npassword={SECRET}\nenabled=1\n")
    run("repo", "rewrite", "rocky.repo", "--snapshot", NEW[:-1], "--provider", "pulp", "--strip-credentials",
        "--baseurl", f"epel={ark}/epel/$releasever/Everything/$basearch/", "--in-place")
    rewritten = repo_file.read_text()
    assert f"/rocky/$releasever/BaseOS/$basearch/os/{NEW[:-1]}/" in rewritten
    assert f"/epel/$releasever/Everything/$basearch/{NEW[:-1]}/" in rewritten
    assert "#metalink=" in rewritten or "# metalink=" in rewritten
    again = run("repo", "rewrite", "rocky.repo", "--snapshot", NEW, "--provider", "pulp", "--strip-credentials",
                "--baseurl", f"epel={ark}/epel/$releasever/Everything/$basearch/", "--stdout").stdout
    assert again == rewritten  # idempotent

    # 8. vendor files kept: the mirror fetches with the configured credentials, verified against the lock
    out = run("mirror", "--repo", "epel", "--repo", "cuda").stdout
    assert "rocky9:" in out and (project / "imagebuild-mirror" / "repos" / "rocky9" / "repodata").is_dir()

    # 9. errors name the problem and still leak nothing
    wrong = cfg.read_text().replace(SECRET, "wrong-" + SECRET)
    cfg.write_text(wrong)
    fail = run("lock", ok=4)
    assert "HTTP 401" in fail.stderr and "Traceback" not in fail.stderr
    run("--debug", "-v", "lock", "--snapshot", OLD, ok=4)  # tracebacks and steps: still no secret
    cfg.write_text(wrong.replace("wrong-" + SECRET, SECRET))

    # the leak check: every command's output, every file in the project (but the config) and the cache
    for text in run.outputs:
        assert SECRET not in text
    for root in (project, tmp_path / "cache"):
        for p in root.rglob("*"):
            if p.is_file() and p != cfg:
                assert SECRET.encode() not in p.read_bytes(), p


def test_skew_between_repos_is_warned(ark: str, cuda_repo: Path, tmp_path: Path) -> None:
    project = tmp_path / "site"
    project.mkdir()
    cfg = _config(project, ark, cuda_repo)
    cfg.write_text(cfg.read_text().replace('name = "epel"\n', f'name = "epel"\nsnapshot = "{NEW}"\n'))
    res = Session(project, tmp_path / "cache")("lock", "--dry-run")
    assert "repo 'baseos' is at snapshot 20261101T000000Z and 'epel' at 20261122T000000Z, 21 days apart" in res.stderr
    assert not (project / "snapshots.lock").exists()
    assert SECRET not in res.stdout + res.stderr


def test_bad_snapshot_settings_are_clear(tmp_path: Path) -> None:
    cfg = tmp_path / "imagebuild.toml"
    base = ('[distros.d]\nfamily = "deb"\narches = ["amd64"]\n[[distros.d.repos]]\nname = "debian"\n'
            'url = "http://127.0.0.1:9/debian"\nsuites = ["bookworm"]\ncomponents = ["main"]\ntrusted = true\n{extra}\n'
            '[roles.r]\ndistro = "d"\npackages = ["bash"]\n')
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(tmp_path / "c")}
    for extra, expected in [
        ('snapshot-provider = "snapshot.debian.org"', "unknown snapshot provider 'snapshot.debian.org'"),
        ('snapshot = "2026-11-01"', "'2026-11-01' is not a snapshot id"),
        ('snapshot = "20261341T000000Z"', "is not a valid date and time"),
        ('snapshot-provider = "template"', "needs {snapshot} in the URL"),
        ('snapshot-provider = "debian"', "no snapshot id is set"),
    ]:
        cfg.write_text(base.format(extra=extra))
        res = subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock"], capture_output=True,
                             text=True, env=env, timeout=60)
        assert res.returncode == 2, (extra, res.stderr)
        assert expected in res.stderr and "Traceback" not in res.stderr, (extra, res.stderr)


def test_debian_provider_locks_real_signed_data_through_the_snapshot_service(tmp_path: Path) -> None:
    """`snapshot-provider = "debian"` against a loopback snapshot.debian.org (`snapshot-service`) serving the
    real signed bookworm data under /archive/<archive>/<id>/: `snapshot latest` and `lock` follow the
    service's redirect, and the lock fetches from the snapshot URL (the archive URL is never contacted)."""
    from conftest import DEBIAN_DATA
    from test_snapshots import Service, snapshot_service

    if not (DEBIAN_DATA / "debian" / "dists").is_dir():
        pytest.skip(f"Debian snapshot data not found at {DEBIAN_DATA}")
    svc = Service(debian_ids=["20261122T000000Z"],
                  archives={"debian": DEBIAN_DATA / "debian", "debian-security": DEBIAN_DATA / "debian-security"})
    for url in snapshot_service(svc):
        project = tmp_path / "site"
        project.mkdir()
        (project / "imagebuild.toml").write_text(f"""\
snapshot = "20261125T120000Z"
[distros.bookworm]
family = "deb"
arches = ["amd64"]
[[distros.bookworm.repos]]
name = "debian"
url = "http://127.0.0.1:9/debian"
suites = ["bookworm"]
components = ["main"]
signed-by = "/usr/share/keyrings/debian-archive-keyring.gpg"
snapshot-provider = "debian"
snapshot-service = "{url}"
[[distros.bookworm.repos]]
name = "security"
url = "http://127.0.0.1:9/debian-security"
suites = ["bookworm-security"]
components = ["main"]
signed-by = "/usr/share/keyrings/debian-archive-keyring.gpg"
snapshot-provider = "debian"
snapshot-service = "{url}"
[roles.login]
distro = "bookworm"
packages = ["openssh-client"]
""")
        run = Session(project, tmp_path / "cache")
        assert run("snapshot", "latest", "--at", "20261125T120000Z").stdout.split() == [
            "bookworm", "debian", "20261122T000000Z", "bookworm", "security", "20261122T000000Z"]
        # the configured instant lies after the service's last snapshot: the lock records the snapshot it
        # falls in, as the service says (its redirect), not the instant
        assert "debian: snapshot 20261125T120000Z is 20261122T000000Z on the service" in run("lock").stderr
        repos = {r["name"]: r for r in json.loads((project / "snapshots.lock").read_text())["repos"]}
        assert repos["debian"]["url"] == f"{url}/archive/debian/20261122T000000Z"
        assert repos["security"]["url"] == f"{url}/archive/debian-security/20261122T000000Z"
        assert repos["debian"]["snapshot"] == "20261122T000000Z"
        assert all(p.startswith(("/archive/debian/20261122T000000Z/", "/archive/debian-security/20261122T000000Z/"))
                   for p in svc.requests if "/dists/" in p)
        assert any(ln.startswith("openssh-client ") for ln in (project / "boms" / "login-amd64.bom").read_text()
                   .splitlines())


def test_review_regressions(tmp_path: Path) -> None:
    """Small CLI contracts: a password with '@' is still redacted, single-quoted snapshots are bumped in
    place, printed repo files carry no credentials, bad URLs are config errors, a missing lock is stale."""
    from imagebuild.fetch import redact

    assert redact("http://ark:S3C@RET@127.0.0.1:8080/pulp/a@b") == "http://127.0.0.1:8080/pulp/a@b"
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(tmp_path / "c")}

    def run(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "imagebuild", *args], cwd=cwd, capture_output=True, text=True,
                              env=env, timeout=120)

    repo = tmp_path / "ark.repo"
    repo.write_text(f"[baseos]\nbaseurl=http://ark:{SECRET}@127.0.0.1:9/pulp/content/rocky/9/BaseOS/x86_64/os/"
                    f"20261101T000000/\nusername=ark\npassword={SECRET}\n")
    out = run("repo", "rewrite", "ark.repo", "--snapshot", NEW)
    assert out.returncode == 0 and SECRET not in out.stdout + out.stderr and "20261122T000000/" in out.stdout
    keep = run("repo", "rewrite", "ark.repo", "--snapshot", NEW, "--keep-credentials")
    assert keep.returncode == 2 and "--in-place" in keep.stderr and SECRET not in keep.stderr

    cfg = tmp_path / "imagebuild.toml"
    base = ("[distros.d]\nfamily = \"deb\"\narches = [\"amd64\"]\n[[distros.d.repos]]\nname = \"x\"\n"
            "url = \"{url}\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\"]\ntrusted = true\n{extra}\n"
            "[roles.r]\ndistro = \"d\"\npackages = [\"bash\"]\n")
    for url, extra, expected in [
        (f"http://ark:{SECRET}@127.0.0.1:99999/debian", "", "invalid URL 'http://127.0.0.1:99999/debian'"),
        ("http:///debian", "", "names no host"),
        ("http://127.0.0.1:9/debian", 'snapshot-provider = "debian"\nsnapshot-service = "snapshot.example"',
         "unsupported URL 'snapshot.example'"),
    ]:
        cfg.write_text(f'snapshot = "{OLD}"\n' + base.format(url=url, extra=extra))
        res = run("lock")
        assert res.returncode == 2 and expected in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and SECRET not in res.stderr

    cfg.write_text(base.format(url="http://127.0.0.1:9/debian", extra=""))
    check = run("lock", "--check")  # a valid config, but no lock yet
    assert check.returncode == 1 and "no snapshots.lock" in check.stderr, check.stderr

    import tomllib

    from imagebuild.app import set_config_snapshot

    for first in (f"snapshot = '{OLD}'  # single quotes\n", f'snapshot="{OLD}"\n', ""):
        cfg.write_text(first + base.format(url="http://127.0.0.1:9/debian", extra=""))
        set_config_snapshot(cfg, NEW)
        text = cfg.read_text()
        assert tomllib.loads(text)["snapshot"] == NEW and text.count("snapshot") == 1, text
        assert "# single quotes" in text or not first.endswith("quotes\n")
