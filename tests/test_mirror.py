"""`imagebuild.mirror` on real packages, checked by the real package managers.

* deb: a real lock of the real Debian data (the closure whose .deb files are in ../shared/data/…/pool),
  mirrored from a loopback HTTP server; real apt resolves from the flat mirror alone to the locked set,
  downloads from it with hash checks, and (slow, with mmdebstrap) a real image is built from it alone
  whose dpkg status equals the BOM.
* rpm: a real lock of the fixture repos (rpmbuild + createrepo_c, tests/rpmrepos.py), mirrored; real dnf
  installs the role into an installroot from the mirror alone, and the rpmdb equals the BOM.
* integrity: a file served with other bytes is refused (exit 4) naming the package and both digests,
  with nothing left behind; credentials in the download URL never reach an error message.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apt_oracle import AptOracle, AptRepo, parse_status  # noqa: E402
from conftest import loopback_server  # noqa: E402
from rpmrepos import build_rpm_repos, missing_tools  # noqa: E402

from imagebuild.bom import read_bom  # noqa: E402
from imagebuild.config import Family  # noqa: E402
from imagebuild.errors import ConfigError, RepositoryError  # noqa: E402
from imagebuild.lockfile import Lock, LockedRepo, read_lock  # noqa: E402
from imagebuild.mirror import blob_path, deb_control, mirror, plan  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEBIAN_DATA = Path(
    os.environ.get("IMAGEBUILD_TEST_DEBIAN_DATA", REPO_ROOT.parent / "shared" / "data" / "debian-20261122"))
MINBASE_STATUS = DEBIAN_DATA.parent / "bases" / "bookworm-minbase.status"
EXTRA = ["rdma-core", "infiniband-diags", "ibverbs-providers", "munge"]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SECRET = "s3ntinel-Pa55word"

needs_debian = pytest.mark.skipif(not any(DEBIAN_DATA.glob("*/pool")),
                                  reason=f"Debian data with pool/ not found at {DEBIAN_DATA}")
needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed")
needs_rpm_tools = pytest.mark.skipif(bool(missing_tools()) or shutil.which("dnf") is None,
                                     reason=f"needs {' '.join(missing_tools() or ['dnf'])} (./scripts/setup.sh --test)")


# -- helpers ---------------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    tamper: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.tamper.get(self.path.split("?")[0])
        if body is None:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@contextlib.contextmanager
def serve(directory: Path, tamper: dict[str, bytes] | None = None) -> Iterator[str]:
    """Serve `directory` on loopback; `tamper` maps URL paths to the (wrong) bytes to send instead."""
    handler_cls = type("H", (_Handler,), {"tamper": dict(tamper or {})})
    with loopback_server(functools.partial(handler_cls, directory=str(directory))) as url:
        yield url


def run_lock(cfg: Path) -> None:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    res = subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock"],
                         capture_output=True, text=True, env=env, timeout=900, check=False)
    assert res.returncode == 0, res.stderr


def toml_list(xs: list[str]) -> str:
    return "[" + ", ".join(f'"{x}"' for x in xs) + "]"


def bom_set(path: Path) -> frozenset[tuple[str, str, str]]:
    return frozenset((e.name, e.version, e.arch) for e in read_bom(path))


def no_staging_left(out: Path) -> bool:
    return not list(out.parent.glob(f".{out.name}.staging-*"))


# -- deb -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deb_lock(debian_http: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Lock]:
    """A real lock (base none) of the minbase packages + rdma-core & co., whose files are all in pool/."""
    if not MINBASE_STATUS.exists():
        pytest.skip(f"{MINBASE_STATUS} not found")
    minbase = sorted({n for n, _, _ in parse_status(MINBASE_STATUS)})
    root = tmp_path_factory.mktemp("deb-lock")
    cfg = root / "imagebuild.toml"
    cfg.write_text(f"""snapshot = "20261122T000000Z"
[distros.bookworm]
family = "deb"
arches = ["amd64"]
base = "none"
[[distros.bookworm.repos]]
name = "debian"
url = "{debian_http}/debian"
suites = ["bookworm", "bookworm-updates"]
components = ["main"]
signed-by = "{KEYRING}"
[[distros.bookworm.repos]]
name = "security"
url = "{debian_http}/debian-security"
suites = ["bookworm-security"]
components = ["main"]
signed-by = "{KEYRING}"
[roles.compute]
distro = "bookworm"
packages = {toml_list(minbase + EXTRA)}
[roles.login]
distro = "bookworm"
packages = ["infiniband-diags"]
""")
    run_lock(cfg)
    return root, read_lock(root / "snapshots.lock")


@pytest.fixture(scope="module")
def deb_archive(deb_lock: tuple[Path, Lock], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The locked files at the paths the lock names, linked from the data's pool/.

    The data keeps one copy of a file that Debian has both in bookworm (point release) and in
    bookworm-security, under the security pool; the lock may name the other path. Same bytes either way:
    each is found by file name and checked against the locked sha256.
    """
    _, lock = deb_lock
    by_name = {p.name: p for p in DEBIAN_DATA.glob("*/pool/**/*.deb")}
    root = tmp_path_factory.mktemp("deb-archive")
    for t in lock.targets:
        repos = {(r.name, r.suite): r for r in lock.repos if r.distro == t.distro and r.arch == t.arch}
        for p in t.packages:
            src = by_name.get(Path(p.filename).name)
            assert src is not None, f"{p.filename} is not in the data's pool/ (the test's lock is off the closure)"
            assert hashlib.sha256(src.read_bytes()).hexdigest() == p.sha256, p.filename
            dest = root / url_path(repos[(p.repo, p.suite)]) / p.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                os.link(src, dest)
    return root


def url_path(r: LockedRepo) -> str:
    """`debian` of http://127.0.0.1:PORT/debian."""
    return r.url.split("/", 3)[3]


@needs_debian
@needs_apt
def test_deb_mirror_is_a_repo_apt_installs_from(deb_lock: tuple[Path, Lock], deb_archive: Path,
                                                tmp_path: Path) -> None:
    root, lock = deb_lock
    out = tmp_path / "mirror"
    with serve(deb_archive) as archive:
        result = mirror(lock, lock.targets, out, repo_url=lambda r: f"{archive}/{url_path(r)}")
    compute = lock.target("compute", "amd64")
    assert compute is not None
    files = {p.sha256 for t in lock.targets for p in t.packages}
    assert result.fetched == len(files) > 100 and result.reused == 0
    assert [(r.distro, r.family, r.path) for r in result.repos] == [("bookworm", Family.DEB, out / "repos/bookworm")]
    for sha in files:
        assert hashlib.sha256(blob_path(out, sha).read_bytes()).hexdigest() == sha
    repo = out / "repos/bookworm"
    release = (repo / "Release").read_text()
    assert hashlib.sha256((repo / "Packages").read_bytes()).hexdigest() in release
    assert (repo / "Packages").read_text().count("\nFilename: pool/") == len(files)
    assert no_staging_left(out)

    # apt, with the mirror as its only source, resolves the role to exactly the locked set
    oracle = AptOracle(tmp_path / "apt")
    sources = [AptRepo(f"file:{repo}", flat=True, trusted=True)]
    res = oracle.simulate(sources, "amd64", None, False, [str(r) for r in compute.requests])
    assert not res.failed, res.describe()
    assert res.packages == bom_set(root / "boms/compute-amd64.bom")

    # and really downloads the files from it (over HTTP, checking each against Packages' SHA256)
    with serve(repo) as url:
        apt_root, conf = oracle.prepare([AptRepo(url, flat=True, trusted=True)], "amd64", None, False)
        env = {**os.environ, "APT_CONFIG": str(conf), "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        for args in (["update"], ["install", "-y", "--download-only", *compute.requests]):
            r = subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=300, check=False)
            assert r.returncode == 0 and "W:" not in r.stdout + r.stderr, r.stdout + r.stderr
    archives = apt_root / "var/cache/apt/archives"
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in archives.glob("*.deb")} == {
        p.sha256 for p in compute.packages}


@needs_debian
def test_deb_mirror_is_deterministic_and_reuses_blobs(deb_lock: tuple[Path, Lock], deb_archive: Path,
                                                      tmp_path: Path) -> None:
    _, lock = deb_lock
    login = lock.target("login", "amd64")
    assert login is not None
    a, b = tmp_path / "a", tmp_path / "b"
    with serve(deb_archive) as archive:
        first = mirror(lock, [login], a, repo_url=lambda r: f"{archive}/{url_path(r)}")
        mirror(lock, [login], b, repo_url=lambda r: f"{archive}/{url_path(r)}")
    for name in ("Packages", "Packages.gz", "Release"):
        assert (a / "repos/bookworm" / name).read_bytes() == (b / "repos/bookworm" / name).read_bytes()
    again = mirror(lock, [login], a, download=lambda url, *_: pytest.fail(f"fetched {url} again"))
    assert (again.fetched, again.reused) == (0, first.fetched)
    # only the packages of the named repos
    only_security = plan(lock, lock.targets, repos={"security"})
    assert only_security and all(i.package.repo == "security" for i in only_security)
    with pytest.raises(ConfigError, match="nothing to mirror"):
        mirror(lock, [login], tmp_path / "c", repos={"no-such-repo"})


@needs_debian
@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_deb_control_matches_dpkg_deb() -> None:
    debs = sorted(DEBIAN_DATA.glob("*/pool/**/*.deb"))
    assert len(debs) >= 100
    for deb in debs:
        want = subprocess.run(["dpkg-deb", "-I", str(deb), "control"], capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"}, check=True).stdout
        assert deb_control(deb.read_bytes(), deb.name) == want, deb.name
    with pytest.raises(RepositoryError, match="not a .deb"):
        deb_control(b"garbage", "x")


@needs_debian
def test_tampered_file_is_refused_and_nothing_is_left(deb_lock: tuple[Path, Lock], deb_archive: Path,
                                                      tmp_path: Path) -> None:
    _, lock = deb_lock
    login = lock.target("login", "amd64")
    assert login is not None
    victim = next(p for p in login.packages if p.name == "infiniband-diags")
    repo = next(r for r in lock.repos if r.name == victim.repo and r.suite == victim.suite)
    path = f"/{url_path(repo)}/{victim.filename}"
    good = (deb_archive / path.lstrip("/")).read_bytes()
    evil = good[:-1] + bytes([good[-1] ^ 1])
    out = tmp_path / "mirror"
    with serve(deb_archive, tamper={path: evil}) as url:
        def with_credentials(r: LockedRepo) -> str:  # the real URL, with credentials, on the tampering server
            return url.replace("http://", f"http://ark:{SECRET}@") + "/" + url_path(r)

        with pytest.raises(RepositoryError) as info:
            mirror(lock, [login], out, repo_url=with_credentials)
    err = info.value
    assert err.exit_code == 4
    msg = str(err)
    assert "infiniband-diags" in msg and victim.sha256 in msg and hashlib.sha256(evil).hexdigest() in msg
    assert SECRET not in msg and "ark:" not in msg
    assert not out.exists() and no_staging_left(out)


# -- rpm -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rpm_lock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Lock]]:
    repos = build_rpm_repos(tmp_path_factory.mktemp("rpmrepos"))
    parent = next(iter(repos.values())).parent
    root = tmp_path_factory.mktemp("rpm-lock")
    with serve(parent) as url:
        lines = ['[distros.el9]', 'family = "rpm"', 'arches = ["x86_64"]', 'releasever = "9"']
        for name, path in sorted(repos.items()):
            lines += ["[[distros.el9.repos]]", f'name = "{name}"', f'url = "{url}/{path.relative_to(parent)}"']
        lines += ["[roles.gpu]", 'distro = "el9"', 'packages = ["nvidia-driver", "slurm-slurmd", "kernel"]']
        cfg = root / "imagebuild.toml"
        cfg.write_text("\n".join(lines) + "\n")
        run_lock(cfg)
        yield root, read_lock(root / "snapshots.lock")  # the server stays up for the tests


@needs_rpm_tools
def test_rpm_mirror_is_a_repo_dnf_installs_from(rpm_lock: tuple[Path, Lock], tmp_path: Path) -> None:
    root, lock = rpm_lock
    out = tmp_path / "mirror"
    result = mirror(lock, lock.targets, out)
    (repo,) = result.repos
    assert repo.family is Family.RPM and (repo.path / "repodata/repomd.xml").is_file()
    first = (repo.path / "repodata/repomd.xml").read_bytes()
    mirror(lock, lock.targets, tmp_path / "again")
    assert (tmp_path / "again/repos/el9/repodata/repomd.xml").read_bytes() == first  # deterministic

    target = lock.targets[0]
    installroot = tmp_path / "root"
    cmd = ["dnf", f"--installroot={installroot}", "--releasever=9", "--forcearch=x86_64",
           "--setopt=reposdir=/dev/null", f"--setopt=cachedir={tmp_path / 'dnf-cache'}",
           "--setopt=install_weak_deps=False", "--setopt=gpgcheck=False", "--setopt=module_platform_id=platform:el9",
           f"--repofrompath=m,file://{repo.path}", "--disablerepo=*", "--enablerepo=m", "-y", "-q",
           "install", *target.requests]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, timeout=600,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    qa = subprocess.run(["rpm", "--root", str(installroot), "-qa", "--qf", "%{NAME} %{EVR} %{ARCH}\\n"],
                        capture_output=True, text=True, check=True).stdout
    installed = frozenset(tuple(ln.split()[i] for i in (0, 1, 2)) for ln in qa.splitlines()
                          if ln and not ln.startswith("gpg-pubkey "))
    assert installed == bom_set(root / f"boms/{target.key}.bom")


@needs_rpm_tools
def test_rpm_mirror_without_createrepo_c_fails_clearly(rpm_lock: tuple[Path, Lock], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, lock = rpm_lock
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "mirror"
    with pytest.raises(RepositoryError, match="createrepo_c is not installed") as info:
        mirror(lock, lock.targets, out)
    assert info.value.exit_code == 4 and not out.exists() and no_staging_left(out)


# -- mmdebstrap (slow) -----------------------------------------------------------------------------------


@needs_debian
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap not installed (apt-get install mmdebstrap)")
def test_mmdebstrap_builds_the_image_from_the_mirror_alone(deb_lock: tuple[Path, Lock], deb_archive: Path,
                                                           tmp_path: Path) -> None:
    root, lock = deb_lock
    out = tmp_path / "mirror"
    from imagebuild.app import archive_priorities
    from imagebuild.fetch import Cache

    # the archive's Priority overrides (from the indices the lock names, in the metadata cache the lock
    # filled): --variant=minbase selects Priority: required packages by them
    priorities = archive_priorities(lock, Cache())
    assert priorities
    with serve(deb_archive) as archive:
        mirror(lock, lock.targets, out, repo_url=lambda r: f"{archive}/{url_path(r)}", priorities=priorities)
    with serve(out / "repos/bookworm") as url:
        sources = tmp_path / "sources.list"
        sources.write_text(f"deb [trusted=yes] {url} ./\n")
        tar = tmp_path / "image.tar"
        env = {**os.environ, "LC_ALL": "C", "SOURCE_DATE_EPOCH": "1763769600"}
        compute = lock.target("compute", "amd64")
        assert compute is not None
        res = subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "--architectures=amd64",
                              "--include=" + ",".join(EXTRA),  # the rest is minbase's choice
                              "--aptopt=Acquire::Check-Valid-Until \"false\"",
                              "bookworm", str(tar), str(sources)],
                             capture_output=True, text=True, env=env, timeout=900, check=False)
        assert res.returncode == 0, res.stderr[-3000:]
    with tarfile.open(tar) as t:
        member = t.extractfile("./var/lib/dpkg/status")
        assert member is not None
        (tmp_path / "status").write_bytes(member.read())
    assert parse_status(tmp_path / "status") == bom_set(root / "boms/compute-amd64.bom")
