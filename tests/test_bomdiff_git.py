"""`bom diff` sides read from git (imagebuild.bomsource): bare revisions, REV:path to a project, its boms/, a BOM file
or a lock, paths relative to cwd, an existing path winning over a revision, the errors; and the diff of two real
locked states of the Debian data — a role on bookworm alone (the point release) and on bookworm +
bookworm-updates + bookworm-security — from BOM files, boms/ directories, locks, project directories and two git
commits, in all three formats, with the Markdown as GitHub's cmark-gfm renders it and the CI gate over it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import MINBASE_STATUS, REPO_ROOT, bookworm_config  # noqa: E402

from imagebuild import bomsource  # noqa: E402
from imagebuild.bom import BomEntry, render_bom  # noqa: E402
from imagebuild.bomdiff import (  # noqa: E402
    BomDiff,
    FileStatus,
    IntegrityChange,
    TreeDiff,
    gate,
    parse_allow,
    parse_classes,
    render,
    render_json,
    run_diff,
)
from imagebuild.config import Family  # noqa: E402
from imagebuild.errors import ConfigError  # noqa: E402
from imagebuild.lockfile import Lock, LockedPackage, LockedTarget, read_lock, render_lock  # noqa: E402
from imagebuild.purl import OsRelease  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

HEADER = ["imagebuild BOM: role compute, arch amd64, distro bookworm, family deb",
          "name version arch (as dpkg-query -W -f '${Package} ${Version} ${Architecture}' prints)"]
TODAY = date(2026, 11, 22)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "LC_ALL": "C", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(repo)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def init_repo(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "commit.gpgsign", "false")


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def write_project(root: Path, targets: dict[str, list[tuple[str, str, str, str]]]) -> None:
    """A project as `imagebuild lock` leaves it: imagebuild.toml, snapshots.lock and boms/<key>.bom."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagebuild.toml").write_text('[distros.bookworm]\nfamily = "deb"\nos = "debian-12"\n')
    ts = []
    for key, pkgs in targets.items():
        role, arch = key.rsplit("-", 1)
        ts.append(LockedTarget(role, arch, "bookworm", (), tuple(
            LockedPackage(n, v, a, "debian", "bookworm", f"pool/{n}_{v}_{a}.deb", 1, sha, None, "requested", n)
            for n, v, a, sha in pkgs), ()))
    (root / "snapshots.lock").write_text(render_lock(Lock("0" * 64, (), tuple(ts))))
    shutil.rmtree(root / "boms", ignore_errors=True)
    (root / "boms").mkdir()
    for key, pkgs in targets.items():
        (root / "boms" / f"{key}.bom").write_text(render_bom([BomEntry(n, a, v) for n, v, a, _ in pkgs], HEADER))


V1 = {
    "compute-amd64": [("libc6", "2.36-9+deb12u9", "amd64", "11" * 32), ("nvidia-driver", "550.54.15-1", "amd64",
                      "22" * 32), ("foo", "1.0", "amd64", "33" * 32), ("gone", "1", "amd64", "44" * 32)],
    "login-amd64": [("bash", "5.2.15-2", "amd64", "55" * 32)],
}
V2 = {
    "compute-amd64": [("libc6", "2.36-9+deb12u10", "amd64", "12" * 32), ("nvidia-driver", "535.216.01-1", "amd64",
                      "23" * 32), ("foo", "1.0", "all", "33" * 32), ("fresh", "2", "amd64", "66" * 32)],
    "login-amd64": [("bash", "5.2.15-2", "amd64", "5f" * 32)],  # rebuilt: same version, other sha256
}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """repo/cluster committed twice (V1, then V2), tagged v1 and v2; the work tree holds V2."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    r = tmp_path / "repo"
    init_repo(r)
    (r / "README").write_text("a site repo\n")
    write_project(r / "cluster", V1)
    commit_all(r, "v1")
    git(r, "tag", "v1")
    write_project(r / "cluster", V2)
    commit_all(r, "v2")
    git(r, "tag", "v2")
    return r


def _essence(d: BomDiff) -> tuple[Any, ...]:
    return d.added, d.removed, d.upgraded, d.downgraded, d.arch_changed, d.integrity


def test_revision_forms(repo: Path) -> None:
    cluster = repo / "cluster"
    expected = run_diff(str(cluster / "snapshots.lock"), str(cluster / "snapshots.lock"))
    assert isinstance(expected, TreeDiff) and not expected.has_changes
    # a bare revision is the directory cwd is in, at that revision: here the project, so its lock
    for old, new, cwd in (("HEAD~1", "HEAD", cluster), ("v1", "v2", cluster), ("main~1", "main", cluster),
                          ("HEAD~1:cluster", "HEAD:cluster", repo), ("v1:cluster/snapshots.lock", "cluster", repo),
                          ("HEAD~1:./", "HEAD:.", cluster), ("v1:../cluster", "v2:cluster", cluster),
                          ("v1", ".", repo / "cluster" / "boms" / "..")):
        tree = run_diff(old, new, cwd=cwd)
        assert isinstance(tree, TreeDiff), (old, new)
        assert [(f.name, f.status) for f in tree.files] == [("compute-amd64.bom", FileStatus.BOTH),
                                                           ("login-amd64.bom", FileStatus.BOTH)]
        compute, login = tree.files[0].diff, tree.files[1].diff
        assert compute.integrity_checked and compute.os == OsRelease("debian", "12")
        assert [c.name for c in compute.upgraded] == ["libc6"] and [c.name for c in compute.downgraded] == \
            ["nvidia-driver"]
        assert [(a.name, a.old_arch, a.new_arch) for a in compute.arch_changed] == [("foo", "amd64", "all")]
        assert [e.name for e in compute.added] == ["fresh"] and [e.name for e in compute.removed] == ["gone"]
        assert login.integrity == (IntegrityChange("bash", "amd64", "5.2.15-2", "55" * 32, "5f" * 32),)
    # boms/ at a revision, against boms/ on disk: BOM files carry no sha256, so no integrity check
    tree = run_diff("HEAD~1:cluster/boms", "cluster/boms", cwd=repo)
    assert isinstance(tree, TreeDiff) and not tree.files[1].diff.has_changes
    assert not tree.files[0].diff.integrity_checked and tree.files[0].diff.os == OsRelease("debian", "12")
    # one BOM file at a revision
    one = run_diff("v1:cluster/boms/compute-amd64.bom", "HEAD:cluster/boms/compute-amd64.bom", cwd=repo)
    assert isinstance(one, BomDiff) and one.name == "compute-amd64" and one.family is Family.DEB
    by_lock = run_diff("v1", "v2", cwd=cluster)
    assert isinstance(by_lock, TreeDiff)
    assert _essence(one)[:5] == _essence(by_lock.files[0].diff)[:5]
    assert one.os == OsRelease("debian", "12")  # the header's distro, with the project's `os` key
    # the JSON of a git diff is the JSON of the same files on disk
    (repo.parent / "old").mkdir()
    git(repo, "archive", "-o", str(repo.parent / "v1.tar"), "v1")
    subprocess.run(["tar", "-xf", str(repo.parent / "v1.tar"), "-C", str(repo.parent / "old")], check=True)
    assert render_json(run_diff(str(repo.parent / "old/cluster"), "cluster", cwd=repo)) == \
        render_json(run_diff("v1:cluster", "HEAD:cluster", cwd=repo))


def test_an_existing_path_wins_over_a_revision(repo: Path) -> None:
    # a directory named like the tag v1 at the repository top, holding the V2 BOMs
    shutil.copytree(repo / "cluster" / "boms", repo / "v1")
    tree = run_diff("v1", "v2:cluster/boms", cwd=repo)
    assert isinstance(tree, TreeDiff) and not tree.has_changes  # the directory, not the tag
    tree = run_diff("v1:cluster/boms", "v1", cwd=repo)  # REV:path is never a path
    assert isinstance(tree, TreeDiff) and tree.has_changes


def test_many_boms_are_read_by_one_cat_file_batch(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = {f"role{i:02}-amd64": [("p", f"{i}.0", "amd64", f"{i:02}" * 32)] for i in range(40)}
    write_project(repo / "big", many)
    (repo / "big" / "snapshots.lock").unlink()  # BOMs only
    commit_all(repo, "big")
    calls: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.run

    def spy(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append((cmd, kwargs.get("env") or {}))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(bomsource.subprocess, "run", spy)
    side = bomsource.read_side("HEAD:big", repo)
    assert side.kind is bomsource.SideKind.TREE and side.what == "project" and len(side.boms) == 40
    assert [b.text for b in side.boms][7] == render_bom([BomEntry("p", "amd64", "7.0")], HEADER)
    verbs = [c[0][2] for c in calls]
    assert verbs.count("cat-file") <= 3 and len(calls) <= 6, verbs  # not one process per file
    assert all(env.get("LC_ALL") == "C" for _, env in calls)
    assert ["cat-file", "--batch"] in [c[0][2:4] for c in calls]


def test_errors_name_the_spec(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = repo / "cluster"
    with pytest.raises(ConfigError, match="'nosuch': no such file or directory, and 'nosuch' is not a revision"):
        run_diff("nosuch", "HEAD", cwd=cluster)
    with pytest.raises(ConfigError, match="HEAD has no cluster/nothing"):
        run_diff("HEAD:cluster/nothing", "HEAD", cwd=cluster)
    with pytest.raises(ConfigError, match="a bare revision means HEAD:"):
        run_diff("HEAD", "HEAD~1", cwd=repo)  # the top holds no project
    with pytest.raises(ConfigError, match="has no \\*.bom files"):
        run_diff("HEAD:", "HEAD:cluster", cwd=repo)
    with pytest.raises(ConfigError, match="leaves the repository"):
        run_diff("HEAD:../../x", "HEAD", cwd=cluster)
    with pytest.raises(ConfigError, match="no revision before ':'"):
        run_diff(":cluster", "HEAD", cwd=cluster)
    with pytest.raises(ConfigError, match="is a single BOM"):
        run_diff("HEAD:cluster/boms/login-amd64.bom", "HEAD:cluster", cwd=repo)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ConfigError, match="'main' is not a file or directory, and .* is not in a git repository"):
        run_diff("main", "HEAD", cwd=outside)
    monkeypatch.setattr(bomsource.shutil, "which", lambda _: None)
    with pytest.raises(ConfigError, match="git is not installed"):
        run_diff("HEAD~1", "HEAD", cwd=cluster)
    # paths never need git
    assert isinstance(run_diff("boms", "snapshots.lock", cwd=cluster), TreeDiff)


# -- two real states of bookworm ---------------------------------------------------------------------------

ROLE = ["slurmd", "rdma-core", "openssh-server", "linux-image-amd64", "nvidia-driver"]
LOGIN = ["openssh-server", "sudo", "curl"]


def _real_config(path: Path, debian_http: str, updates: bool) -> Path:
    """The point release alone, or with bookworm-updates and bookworm-security."""
    return bookworm_config(path, debian_http, f"""[roles.compute]
distro = "bookworm"
packages = {json.dumps(ROLE)}

[roles.login]
distro = "bookworm"
packages = {json.dumps(LOGIN)}
""", suites=("bookworm", "bookworm-updates") if updates else ("bookworm",), security=updates)


@pytest.fixture
def real_states(tmp_path: Path, debian_http: str, run_imagebuild: Callable[..., Any],
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/point and tmp/updates locked for real, and tmp/repo with them committed as cluster/ (point, then
    updates)."""
    if not MINBASE_STATUS.is_file():
        pytest.skip(f"base status not found at {MINBASE_STATUS}")
    for name, updates in (("point", False), ("updates", True)):
        (tmp_path / name).mkdir()
        cfg = tmp_path / name / "imagebuild.toml"
        _real_config(cfg, debian_http, updates)
        res = run_imagebuild(cfg, "lock")
        assert res.returncode == 0, res.stderr
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    r = tmp_path / "repo"
    init_repo(r)
    shutil.copytree(tmp_path / "point", r / "cluster")
    commit_all(r, "bookworm point release")
    shutil.rmtree(r / "cluster")
    shutil.copytree(tmp_path / "updates", r / "cluster")
    commit_all(r, "bookworm + updates + security")
    return tmp_path


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_real_point_release_vs_updates_from_every_source(real_states: Path) -> None:
    t = real_states
    point, updates = read_lock(t / "point/snapshots.lock"), read_lock(t / "updates/snapshots.lock")
    a, b = point.target("compute", "amd64"), updates.target("compute", "amd64")
    assert a is not None and b is not None and len(a.packages) > 200 and len(b.packages) > 200
    ref = run_diff(str(t / "point/snapshots.lock"), str(t / "updates/snapshots.lock"))
    assert isinstance(ref, TreeDiff) and [f.name for f in ref.files] == ["compute-amd64.bom", "login-amd64.bom"]
    compute = ref.files[0].diff
    # what the two locks say, computed naively from the lock data
    old = {(p.name, p.arch): p.version for p in a.packages}
    new = {(p.name, p.arch): p.version for p in b.packages}
    assert {k for k in old.keys() & new.keys() if old[k] != new[k]} == \
        {(c.name, c.arch) for c in compute.upgraded + compute.downgraded}
    assert {(e.name, e.arch) for e in compute.added} == new.keys() - old.keys()
    assert {(e.name, e.arch) for e in compute.removed} == old.keys() - new.keys()
    for c in compute.upgraded:  # dpkg agrees with every classification
        assert subprocess.run(["dpkg", "--compare-versions", c.old, "lt", c.new], check=False).returncode == 0, c
    assert not compute.downgraded and not compute.arch_changed
    assert compute.integrity_checked and not compute.integrity  # the same .deb in both suites where unchanged
    names = {c.name for c in compute.upgraded}
    assert {"nvidia-driver", "linux-image-amd64"} <= names
    # the kernel ABI moves: its image package changes name, a removal and an addition
    assert [e.name for e in compute.added if e.name.startswith("linux-image-6")] and \
        [e.name for e in compute.removed if e.name.startswith("linux-image-6")]
    assert compute.os == OsRelease("debian", "12")

    repo = t / "repo"
    sources = {
        "locks": (str(t / "point/snapshots.lock"), str(t / "updates/snapshots.lock"), t),
        "project dirs": ("point", "updates", t),
        "boms dirs": ("point/boms", "updates/boms", t),
        "git bare revisions": ("HEAD~1", "HEAD", repo / "cluster"),
        "git REV:project": ("HEAD~1:cluster", "HEAD:cluster", repo),
        "git REV:boms": ("HEAD~1:cluster/boms", "HEAD:cluster/boms", repo),
        "git lock vs disk": ("HEAD~1:cluster/snapshots.lock", str(t / "updates"), repo),
    }
    for what, (a, b, cwd) in sources.items():
        tree = run_diff(a, b, cwd=cwd)
        assert isinstance(tree, TreeDiff), what
        assert [_essence(f.diff) for f in tree.files] == [_essence(f.diff) for f in ref.files], what
        assert render_json(tree) == render_json(ref), what
        assert tree.files[0].diff.integrity_checked is ("boms" not in what), what
    for a, b, cwd in (("point/boms/compute-amd64.bom", "updates/boms/compute-amd64.bom", t),
                      ("HEAD~1:cluster/boms/compute-amd64.bom", "HEAD:cluster/boms/compute-amd64.bom", repo)):
        single = run_diff(a, b, cwd=cwd)
        assert isinstance(single, BomDiff) and single.name == "compute-amd64"
        assert _essence(single) == _essence(compute)

    # the three formats
    text = render(ref, "text")
    assert text.startswith(f"compute-amd64.bom: {compute.summary()}\n")
    nv = next(c for c in compute.upgraded if c.name == "nvidia-driver")
    assert f"  ^ nvidia-driver amd64 {nv.old} -> {nv.new}\n" in text
    assert "\x1b[" not in text and "\x1b[36m" in render(ref, "text", color=True)
    doc = json.loads(render(ref, "json"))
    assert set(doc) == {"compute-amd64.bom", "login-amd64.bom"}
    assert set(doc["compute-amd64.bom"]) == {"added", "removed", "upgraded", "downgraded"}
    assert {"name": "nvidia-driver", "arch": "amd64", "old": nv.old, "new": nv.new} in doc["compute-amd64.bom"][
        "upgraded"]
    md = render(ref, "markdown", "BOM diff HEAD~1 -> HEAD")
    assert f"- **compute-amd64**: {compute.counts()}\n" in md
    cmarkgfm = pytest.importorskip("cmarkgfm")
    from cmarkgfm.cmark import Options

    page = cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)
    rows = compute.changes()
    assert rows > 10 and page.count("<table>") == sum(f.diff.has_changes for f in ref.files)
    assert f"<summary><b>compute-amd64</b>: {rows} changes ({compute.counts()})</summary>" in page
    assert f"<td>nvidia-driver</td>\n<td>amd64</td>\n<td>{nv.old}</td>\n<td>{nv.new}</td>\n<td>upgraded</td>" in page
    assert "<del>" not in page  # the `~` of versions such as 3.0.20-1~deb12u2 stayed text
    tilde = [c for c in compute.upgraded if "~" in c.old + c.new]
    if tilde:
        assert f"<td>{tilde[0].old}</td>" in page

    # the CLI entry as it stands today (two boms/ directories): exit 1, the same text
    env = {**os.environ, "LC_ALL": "C", "PYTHONPATH": str(REPO_ROOT)}
    res = subprocess.run([sys.executable, "-m", "imagebuild", "bom", "diff", "point/boms", "updates/boms"], cwd=t,
                         env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 1 and res.stdout == text, res.stderr


@pytest.mark.slow
def test_real_gate_and_integrity(real_states: Path) -> None:
    t = real_states
    tree = run_diff("HEAD~1", "HEAD", cwd=t / "repo" / "cluster")
    assert isinstance(tree, TreeDiff)
    compute = tree.files[0].diff
    kernel_old = next(e for e in compute.removed if e.name.startswith("linux-image-6"))
    # fail on removals: the old kernel ABI package trips it, named
    g = gate(tree, parse_classes("removed,downgraded,integrity"), [], TODAY)
    assert g.failed
    assert f"gate: {len(g.tripped)} removed (compute-amd64: {kernel_old.name} {kernel_old.version} amd64" in \
        g.report()[0]
    # allowed by a purl rule until a fixed date, then no longer
    rule = parse_allow("pkg:deb/debian/linux-image-6.1.0-*?arch=amd64&distro=debian-12;reason=kernel ABI bump;"
                       "expires=2026-12-31")
    removed_ok = gate(tree, {"removed"}, [rule], TODAY)
    assert not removed_ok.failed and all(f.name.startswith("linux-image-6") for f, _ in removed_ok.allowed)
    assert gate(tree, {"removed"}, [rule], date(2027, 1, 1)).failed
    md = render(tree, "markdown", gate=removed_ok)
    assert "**Gate** (fail on removed): ✅ passed" in md

    # a tampered lock: one package's sha256 differs at the same name, version and arch
    lock_text = (t / "updates/snapshots.lock").read_text()
    nv = next(p for p in read_lock(t / "updates/snapshots.lock").targets[0].packages if p.name == "nvidia-driver")
    (t / "tampered").mkdir()
    (t / "tampered/snapshots.lock").write_text(lock_text.replace(nv.sha256, "0" * 64))
    drift = run_diff("updates", "tampered", cwd=t)
    assert isinstance(drift, TreeDiff)
    assert drift.files[0].diff.integrity == (IntegrityChange("nvidia-driver", "amd64", nv.version, nv.sha256,
                                                             "0" * 64),)
    assert not drift.files[1].diff.has_changes
    g = gate(drift, {"integrity"}, [], TODAY)
    assert g.failed and g.report()[0] == (f"gate: 1 integrity (compute-amd64: nvidia-driver {nv.version} amd64 "
                                          f"sha256 {nv.sha256[:12]} -> 000000000000)")
    assert json.loads(render_json(drift))["compute-amd64.bom"]["integrity"] == [
        {"name": "nvidia-driver", "arch": "amd64", "version": nv.version, "old_sha256": nv.sha256,
         "new_sha256": "0" * 64}]
    # BOM files cannot show it: they carry no sha256
    assert not run_diff("updates/boms", "updates/boms", cwd=t).has_changes
