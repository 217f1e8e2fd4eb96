"""Repo-file rewriting on real-shaped files (tests/data/repofiles/), parsed back, idempotent, credential-safe,
then accepted by the real tools: `apt-get update` against a loopback server laid out like snapshot.debian.org
serving the real signed Debian data, and `dnf makecache` against Pulp-laid-out fixture rpm repos.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import DEBIAN_DATA, REPO_ROOT  # noqa: E402
from test_snapshots import SECRET, Service, snapshot_service  # noqa: E402

from imagebuild.errors import ConfigError  # noqa: E402
from imagebuild.repofiles import (  # noqa: E402
    AptSource,
    DnfRepo,
    RepoFileKind,
    detect_kind,
    parse_text,
    rewrite,
    rewrite_text,
)
from imagebuild.snapshots import Provider  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "repofiles"
ID = "20261122T000000Z"
NEXT = "20261201T000000Z"
PLACEHOLDER = "127.0.0.1:8765"  # the host:port the data files use; tests put a live server there
ROCKY_BASEURLS = {"baseos": f"http://{PLACEHOLDER}/pulp/content/rocky/$releasever/BaseOS/$basearch/os/",
                  "appstream": f"http://{PLACEHOLDER}/pulp/content/rocky/$releasever/AppStream/$basearch/os/"}
EPEL_BASEURLS = {"epel": f"http://{PLACEHOLDER}/pulp/content/epel/$releasever/Everything/$basearch/"}

# (file, provider, options, the lines expected to change, in the rewritten text)
CASES: list[tuple[str, Provider, dict[str, object], list[str]]] = [
    ("debian.sources", Provider.DEBIAN, {},
     [f"URIs: https://snapshot.debian.org/archive/debian/{ID}/", "Check-Valid-Until: no",
      f"URIs: https://snapshot.debian.org/archive/debian-security/{ID}/", "Check-Valid-Until: no"]),
    ("debian.sources", Provider.APT_NATIVE, {}, [f"Snapshot: {ID}", f"Snapshot: {ID}"]),
    ("snapshot-debian.sources", Provider.DEBIAN, {},
     [f"URIs: https://snapshot.debian.org/archive/debian/{ID}/",
      f"URIs: https://snapshot.debian.org/archive/debian-security/{ID}/"]),
    ("vendor-embedded-key.sources", Provider.APT_NATIVE, {"disable_third_party": True},
     [f"Snapshot: {ID}", "Snapshot: disable"]),
    ("vendor-embedded-key.sources", Provider.DEBIAN, {},
     [f"URIs: https://snapshot.debian.org/archive/debian/{ID}/", f" https://snapshot.debian.org/archive/debian/{ID}/",
      "Check-Valid-Until: no"]),
    ("sources.list", Provider.DEBIAN, {"strip_credentials": True},
     [f"deb [check-valid-until=no] https://snapshot.debian.org/archive/debian/{ID}/ bookworm main non-free-firmware",
      f"deb-src [check-valid-until=no] https://snapshot.debian.org/archive/debian/{ID}/ bookworm main "
      "non-free-firmware",
      "deb [ arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg check-valid-until=no ] "
      f"https://snapshot.debian.org/archive/debian-security/{ID}/ bookworm-security main non-free-firmware  # security",
      "deb [arch=amd64 trusted=yes] http://127.0.0.1:8767/site/ ./"]),
    ("sources.list", Provider.UBUNTU, {},
     [f"deb [check-valid-until=no] https://snapshot.ubuntu.com/ubuntu-ports/{ID}/ jammy main"]),
    ("cuda-debian12-x86_64.list", Provider.APT_NATIVE, {"disable_third_party": True},
     ["deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg snapshot=disable] "
      "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /"]),
    ("cuda-debian12-x86_64.list", Provider.DEBIAN, {}, []),
    ("rocky.repo", Provider.PULP, {"baseurls": ROCKY_BASEURLS},
     [f"#mirrorlist=http://{PLACEHOLDER}/mirrorlist?arch=$basearch&repo=BaseOS-$releasever$rltype",
      f"baseurl=http://{PLACEHOLDER}/pulp/content/rocky/$releasever/BaseOS/$basearch/os/20261122T000000/",
      f"#mirrorlist=http://{PLACEHOLDER}/mirrorlist?arch=$basearch&repo=AppStream-$releasever$rltype",
      f"baseurl=http://{PLACEHOLDER}/pulp/content/rocky/$releasever/AppStream/$basearch/os/20261122T000000/"]),
    ("epel.repo", Provider.PULP, {"baseurls": EPEL_BASEURLS},
     [f"#metalink=http://{PLACEHOLDER}/metalink?repo=epel-$releasever&arch=$basearch&infra=$infra&content=$contentdir",
      f"baseurl=http://{PLACEHOLDER}/pulp/content/epel/$releasever/Everything/$basearch/20261122T000000/"]),
    ("epel.repo", Provider.TEMPLATE, {"baseurls": {"epel": f"http://{PLACEHOLDER}/snap/{{snapshot}}/epel/"}},
     [f"#metalink=http://{PLACEHOLDER}/metalink?repo=epel-$releasever&arch=$basearch&infra=$infra&content=$contentdir",
      f"baseurl=http://{PLACEHOLDER}/snap/{ID}/epel/"]),
    ("cuda-rhel9.repo", Provider.PULP, {}, []),
    ("ark.repo", Provider.PULP, {},
     [f"baseurl = http://{PLACEHOLDER}/pulp/content/rocky/9/BaseOS/$basearch/os/20261122T000000/",
      f"baseurl = http://ark-build:{SECRET}@{PLACEHOLDER}/pulp/content/epel/9/Everything/$basearch/20261122T000000/",
      f"          http://ark-build:{SECRET}@127.0.0.1:8768/pulp/content/epel/9/Everything/$basearch/20261122T000000/"]),
    ("ark.repo", Provider.PULP, {"strip_credentials": True},
     [f"baseurl = http://{PLACEHOLDER}/pulp/content/rocky/9/BaseOS/$basearch/os/20261122T000000/",
      f"baseurl = http://{PLACEHOLDER}/pulp/content/epel/9/Everything/$basearch/20261122T000000/",
      "          http://127.0.0.1:8768/pulp/content/epel/9/Everything/$basearch/20261122T000000/"]),
]


def _rewrite(name: str, provider: Provider, options: dict[str, object], snapshot: str = ID,
             text: str | None = None) -> str:
    path = DATA / name
    return rewrite_text(path.read_text() if text is None else text, detect_kind(path), snapshot, provider,
                        source=str(path), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "provider", "options", "changed"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{'-'.join(c[2]) or 'plain'}" for c in CASES])
def test_rewrite_changes_only_what_it_must(name: str, provider: Provider, options: dict[str, object],
                                           changed: list[str]) -> None:
    before = (DATA / name).read_text()
    after = _rewrite(name, provider, options)
    added = [ln[2:] for ln in difflib.ndiff(before.splitlines(), after.splitlines()) if ln.startswith("+ ")]
    assert added == changed
    # every line that was removed is a URL/credential line, never a comment or another field
    removed = [ln[2:] for ln in difflib.ndiff(before.splitlines(), after.splitlines()) if ln.startswith("- ")]
    assert all(any(k in ln for k in ("URIs", "deb", "baseurl", "mirrorlist", "metalink", "username",
                                     "password", "://")) for ln in removed), removed
    # idempotent, byte for byte; and a later bump moves only the id
    assert _rewrite(name, provider, options, text=after) == after
    if provider in (Provider.DEBIAN, Provider.PULP) and changed:
        bumped = _rewrite(name, provider, options, NEXT, text=after)
        assert bumped == after.replace(ID, NEXT).replace(ID[:-1], NEXT[:-1])
    # and the result still parses, as the same entries
    kind = detect_kind(DATA / name)
    assert len(parse_text(after, kind, source=name)) == len(parse_text(before, kind, source=name))


def test_parse_debian_sources() -> None:
    entries = parse_text((DATA / "debian.sources").read_text(), RepoFileKind.APT_SOURCES, source="debian.sources")
    assert all(isinstance(e, AptSource) for e in entries)
    main, security = entries
    assert isinstance(main, AptSource) and isinstance(security, AptSource)
    assert main.types == ("deb",) and main.uris == (f"http://{PLACEHOLDER}/debian",)
    assert main.suites == ("bookworm", "bookworm-updates", "bookworm-backports")
    assert main.components == ("main", "contrib", "non-free", "non-free-firmware")
    assert main.option("Signed-By") == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert (main.line, security.line, security.flat) == (3, 9, False)


def test_parse_multiline_and_flat() -> None:
    entries = parse_text((DATA / "vendor-embedded-key.sources").read_text(), RepoFileKind.APT_SOURCES, source="x")
    debian, doca = entries
    assert isinstance(debian, AptSource) and isinstance(doca, AptSource)
    assert debian.uris == (f"http://{PLACEHOLDER}/debian", "http://127.0.0.1:8766/debian")
    assert doca.flat and not doca.enabled and doca.components == ()
    key = doca.option("signed-by")
    assert key is not None and key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----\n.\n")
    (cuda,) = parse_text((DATA / "cuda-debian12-x86_64.list").read_text(), RepoFileKind.APT_LIST, source="x")
    assert isinstance(cuda, AptSource) and cuda.flat and cuda.suites == ("/",)
    assert cuda.option("signed-by") == "/usr/share/keyrings/cuda-archive-keyring.gpg"


def test_parse_dnf_repos() -> None:
    rocky = parse_text((DATA / "rocky.repo").read_text(), RepoFileKind.DNF_REPO, source="rocky.repo")
    assert [(r.id, r.enabled) for r in rocky if isinstance(r, DnfRepo)] == [
        ("baseos", True), ("baseos-debuginfo", False), ("appstream", True)]
    ark = parse_text((DATA / "ark.repo").read_text(), RepoFileKind.DNF_REPO, source="ark.repo")
    first, second = ark
    assert isinstance(first, DnfRepo) and isinstance(second, DnfRepo)
    assert first.username == "ark-build" and first.password == SECRET
    assert second.baseurls[1].startswith("http://ark-build:") and dict(second.options)["priority"] == "50"
    assert SECRET not in repr(first) + repr(second) + repr(ark)


def test_crlf_and_missing_final_newline_survive() -> None:
    text = (DATA / "debian.sources").read_text().replace("\n", "\r\n").rstrip("\r\n")
    out = rewrite_text(text, RepoFileKind.APT_SOURCES, ID, Provider.APT_NATIVE, source="x.sources")
    assert "Snapshot: 20261122T000000Z\r\nSuites" in out and not out.endswith("\n")
    one = "Types: deb\nSuites: bookworm\nComponents: main\nURIs: http://127.0.0.1/debian"
    assert rewrite_text(one, RepoFileKind.APT_SOURCES, ID, Provider.APT_NATIVE, source="x") == one + f"\nSnapshot: {ID}"
    repo = "[a]\nmirrorlist=http://127.0.0.1/m"
    out = rewrite_text(repo, RepoFileKind.DNF_REPO, ID, Provider.PULP, source="x", baseurls={"a": "http://127.0.0.1/p/"})
    assert out == "[a]\n#mirrorlist=http://127.0.0.1/m\nbaseurl=http://127.0.0.1/p/20261122T000000/"


@pytest.mark.parametrize(("kind", "text", "where"), [
    (RepoFileKind.APT_LIST, "# ok\ndeb http://127.0.0.1/debian\n", "f:2"),
    (RepoFileKind.APT_LIST, "deb [arch=amd64 http://127.0.0.1/debian bookworm main\n", "f:1"),
    (RepoFileKind.APT_LIST, "rpm http://127.0.0.1/debian bookworm main\n", "f:1"),
    (RepoFileKind.APT_LIST, "deb http://127.0.0.1/debian ./ main\n", "f:1"),
    (RepoFileKind.APT_LIST, "deb http://127.0.0.1/debian bookworm\n", "f:1"),
    (RepoFileKind.APT_SOURCES, "Types: deb\nURIs http://127.0.0.1/debian\n", "f:2"),
    (RepoFileKind.APT_SOURCES, " continued\n", "f:1"),
    (RepoFileKind.APT_SOURCES, "Types: deb\nURIs: http://127.0.0.1/debian\nComponents: main\n", "f:1"),
    (RepoFileKind.DNF_REPO, "baseurl=http://127.0.0.1/x\n", "f:1"),
    (RepoFileKind.DNF_REPO, "[a]\nbaseurl http://127.0.0.1/x\n", "f:2"),
    (RepoFileKind.DNF_REPO, "[a]\nmetalink=http://127.0.0.1/m\n", "f:1"),
])
def test_unknown_syntax_names_file_and_line(kind: RepoFileKind, text: str, where: str) -> None:
    provider = Provider.PULP if kind is RepoFileKind.DNF_REPO else Provider.DEBIAN
    with pytest.raises(ConfigError) as e:
        rewrite_text(text, kind, ID, provider, source="f")
    assert str(e.value).startswith(where + ":"), str(e.value)


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not apply to .repo"):
        rewrite_text("[a]\nbaseurl=http://127.0.0.1/x\n", RepoFileKind.DNF_REPO, ID, Provider.DEBIAN, source="f")
    with pytest.raises(ConfigError, match="no section 'b'"):
        rewrite_text("[a]\nbaseurl=http://127.0.0.1/x\n", RepoFileKind.DNF_REPO, ID, Provider.PULP, source="f",
                     baseurls={"b": "http://127.0.0.1/p/"})
    with pytest.raises(ConfigError, match="not a snapshot id"):
        rewrite_text("", RepoFileKind.APT_LIST, "2026-11-22", Provider.DEBIAN, source="f")
    with pytest.raises(ConfigError, match="apt reads"):
        detect_kind("/etc/yum.repos.d/rocky.repo.rpmnew")
    assert detect_kind("/etc/apt/sources.list") is RepoFileKind.APT_LIST


def test_notes_name_what_was_kept() -> None:
    r = rewrite((DATA / "cuda-rhel9.repo").read_text(), RepoFileKind.DNF_REPO, ID, Provider.PULP, source="cuda.repo")
    assert r.notes == ("cuda.repo:3: kept https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64 "
                       "(not a pulp snapshot URL — to pin it, pass its Pulp path with --baseurl ID=URL)",)
    r = rewrite((DATA / "rocky.repo").read_text(), RepoFileKind.DNF_REPO, ID, Provider.PULP, source="rocky.repo",
                baseurls=ROCKY_BASEURLS)
    assert r.notes == ("rocky.repo:21: kept disabled [baseos-debuginfo] on its mirrorlist",)


def test_no_secret_in_any_output() -> None:
    """The sentinel password appears in no rewritten-with-strip text, and in no note, error or repr ever."""
    seen: list[str] = []
    for path in sorted(DATA.iterdir()):
        kind = detect_kind(path)
        text = path.read_text()
        seen.append(repr(parse_text(text, kind, source=str(path))))
        for provider in Provider:
            for strip in (False, True):
                try:
                    r = rewrite(text, kind, ID, provider, source=str(path), strip_credentials=strip,
                                baseurls={**ROCKY_BASEURLS, "ark-epel": f"http://u:{SECRET}@127.0.0.1/pulp/x/"}
                                if kind is RepoFileKind.DNF_REPO and path.name == "rocky.repo" else None)
                except ConfigError as e:
                    seen.append(str(e))
                    continue
                seen.extend(r.notes)
                if strip:
                    assert SECRET not in r.text, (path.name, provider)
    assert len(seen) > 40
    leaks = [s for s in seen if SECRET in s or "ark-build:" in s]
    assert not leaks


# -- the real tools accept the results ----------------------------------------------------------------------


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    full.update(LC_ALL="C", LANG="C", LANGUAGE="C", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=600, check=False)


def _apt_root(root: Path) -> Path:
    """A private apt root configured only through APT_CONFIG (the host's /etc/apt is never read)."""
    for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial",
              "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").write_text("")
    conf = root / "apt.conf"
    conf.write_text("\n".join([
        f'Dir "{root}/";', f'Dir::State::status "{root}/status";', 'Dir::Etc::SourceList "/dev/null";',
        'Dir::Etc::Trusted "/dev/null";', 'Dir::Etc::TrustedParts "/dev/null";',
        'APT::Architecture "amd64";', 'APT::Architectures { "amd64"; };', 'Acquire::Languages "none";',
        'Acquire::Check-Valid-Until "false";', 'Acquire::PDiffs "false";', 'Acquire::Retries "0";',
        'Debug::NoLocking "1";', 'APT::Sandbox::User "root";', ""]))
    return conf


@pytest.fixture(scope="module")
def debian_snapshot_service() -> Iterator[str]:
    if not (DEBIAN_DATA / "debian" / "dists").is_dir():
        pytest.skip(f"Debian snapshot data not found at {DEBIAN_DATA} (set IMAGEBUILD_TEST_DEBIAN_DATA)")
    svc = Service(archives={"debian": DEBIAN_DATA / "debian", "debian-security": DEBIAN_DATA / "debian-security"},
                  static={"vendor": REPO_ROOT / "examples" / "gpu-cluster" / "mirror"})
    yield from snapshot_service(svc)


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed")
def test_apt_update_accepts_rewritten_sources(debian_snapshot_service: str, tmp_path: Path) -> None:
    base = debian_snapshot_service
    conf = _apt_root(tmp_path)
    parts = tmp_path / "etc/apt/sources.list.d"
    debian = _rewrite("debian.sources", Provider.DEBIAN, {"service": base})
    (parts / "debian.sources").write_text(debian)
    # the CUDA file as cuda-keyring ships it, pointed at the example's flat NVIDIA-shaped repo and key
    cuda = (DATA / "cuda-debian12-x86_64.list").read_text() \
        .replace("https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/", f"{base}/vendor/cuda/") \
        .replace("/usr/share/keyrings/cuda-archive-keyring.gpg",
                 str(REPO_ROOT / "examples/gpu-cluster/keys/example-archive.gpg"))
    (parts / "cuda-debian12-x86_64.list").write_text(
        _rewrite("cuda-debian12-x86_64.list", Provider.DEBIAN, {"disable_third_party": True}, text=cuda))
    r = _run(["apt-get", "update"], {"APT_CONFIG": str(conf)})
    bad = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith(("E:", "W:", "Err:"))]
    assert r.returncode == 0 and not bad, r.stdout + r.stderr
    lists = {p.name for p in (tmp_path / "var/lib/apt/lists").iterdir()}
    host = base.removeprefix("http://")
    for archive, suite in (("debian", "bookworm"), ("debian", "bookworm-backports"),
                           ("debian-security", "bookworm-security")):
        assert f"{host}_archive_{archive}_{ID}_dists_{suite}_InRelease" in lists
    assert f"{host}_vendor_cuda_InRelease" in lists
    policy = _run(["apt-cache", "policy", "rdma-core"], {"APT_CONFIG": str(conf)})
    assert f"{base}/archive/debian/{ID} bookworm/main amd64 Packages" in policy.stdout, policy.stdout


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed")
def test_apt_parses_native_snapshot_fields(tmp_path: Path) -> None:
    """apt-native output (`Snapshot:` / `[snapshot=…]`) is valid source syntax for apt (apt < 2.7 ignores it,
    so only the syntax is checked here: `apt-get indextargets` reads the sources without fetching)."""
    for name, expected in (("debian.sources", f"http://{PLACEHOLDER}/debian/dists/bookworm-backports/"),
                           ("vendor-embedded-key.sources", "http://127.0.0.1:8766/debian/dists/bookworm/main/"),
                           ("cuda-debian12-x86_64.list",
                            "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/Packages")):
        root = tmp_path / name
        conf = _apt_root(root)
        out = _rewrite(name, Provider.APT_NATIVE, {"disable_third_party": True})
        assert "napshot" in out
        (root / "etc/apt/sources.list.d" / name).write_text(out)
        r = _run(["apt-get", "indextargets", "--no-release-info", "--format", "$(URI)"], {"APT_CONFIG": str(conf)})
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
        assert any(u.startswith(expected) for u in r.stdout.split()), r.stdout


def _rpm_tools_missing() -> list[str]:
    from rpmrepos import missing_tools
    return missing_tools() + ([] if shutil.which("dnf") else ["dnf"])


@pytest.fixture(scope="module")
def rpm_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    missing = _rpm_tools_missing()
    if missing:
        pytest.skip(f"needs {' '.join(missing)} (scripts/setup.sh --test)")
    from rpmrepos import build_rpm_repos
    return build_rpm_repos(tmp_path_factory.mktemp("rpmrepos"))


def _makecache(repo_dir: Path, root: Path) -> subprocess.CompletedProcess[str]:
    return _run(["dnf", "-y", "--noplugins", f"--installroot={root}", "--releasever=9", "--forcearch=x86_64",
                 f"--setopt=reposdir={repo_dir}", f"--setopt=cachedir={root}/cache", "--setopt=skip_if_unavailable=0",
                 "makecache"])


def test_dnf_makecache_accepts_rewritten_repo_files(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    pulp = {"rocky/9/BaseOS/x86_64/os": {"20261122T000000": rpm_repos["baseos"]},
            "rocky/9/AppStream/x86_64/os": {"20261122T000000": rpm_repos["appstream"]},
            "epel/9/Everything/x86_64": {"20261122T000000": rpm_repos["epel"]}}
    svc = Service(pulp=pulp)
    for base in snapshot_service(svc):
        host = base.removeprefix("http://")
        repo_dir = tmp_path / "yum.repos.d"
        repo_dir.mkdir()
        for name, baseurls in (("rocky.repo", ROCKY_BASEURLS), ("epel.repo", EPEL_BASEURLS)):
            text = (DATA / name).read_text().replace(PLACEHOLDER, host)
            urls = {k: v.replace(PLACEHOLDER, host) for k, v in baseurls.items()}
            (repo_dir / name).write_text(_rewrite(name, Provider.PULP, {"baseurls": urls}, text=text))
        r = _makecache(repo_dir, tmp_path / "root")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Metadata cache created" in r.stdout + r.stderr
        fetched = {p for p in svc.requests if p.endswith("repomd.xml")}
        assert fetched == {f"/pulp/content/{p}/20261122T000000/repodata/repomd.xml" for p in pulp}
        assert not any("mirrorlist" in p or "metalink" in p for p in svc.requests)


def test_dnf_makecache_with_credentials_and_after_stripping(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    """The ark file works with its credentials; stripped (as shipped in an image) it has none left, so the
    authenticated service refuses it."""
    pulp = {"rocky/9/BaseOS/x86_64/os": {"20261122T000000": rpm_repos["baseos"]},
            "epel/9/Everything/x86_64": {"20261122T000000": rpm_repos["epel"]}}
    svc = Service(pulp=pulp, credentials=f"ark-build:{SECRET}")
    for base in snapshot_service(svc):
        text = (DATA / "ark.repo").read_text().replace(PLACEHOLDER, base.removeprefix("http://"))
        for strip, ok in ((False, True), (True, False)):
            repo_dir = tmp_path / f"repos-{strip}"
            repo_dir.mkdir()
            out = _rewrite("ark.repo", Provider.PULP, {"strip_credentials": strip}, text=text)
            (repo_dir / "ark.repo").write_text(out)
            assert (SECRET in out) is not strip
            r = _makecache(repo_dir, tmp_path / f"root-{strip}")
            assert (r.returncode == 0) is ok, r.stdout + r.stderr
            if strip:
                assert "401" in r.stdout + r.stderr


def test_apt_native_refuses_uris_already_on_a_snapshot() -> None:
    with pytest.raises(ConfigError) as e:
        _rewrite("snapshot-debian.sources", Provider.APT_NATIVE, {})
    assert "already a snapshot URL" in str(e.value) and e.value.hint and "--provider debian" in e.value.hint
