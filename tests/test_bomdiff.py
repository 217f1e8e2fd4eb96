"""BOM diff: added/removed/upgraded/downgraded with dpkg and rpm ordering, installonly sets, arch changes, integrity
drift between locks, directories, locks and project directories, the JSON contract, the Markdown PR comment (also
as GitHub's cmark-gfm renders it), the terminal colours, the CI gate and its allow rules, and a diff between two
real states of the Debian data (bookworm vs bookworm-security) checked against `dpkg --compare-versions`.

Git revisions and the diff of two real locked states (point release vs updates + security) are in
test_bomdiff_git.py."""

from __future__ import annotations

import json
import lzma
import random
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from imagebuild.bom import BomEntry, render_bom
from imagebuild.bomdiff import (
    CLASSES,
    Allow,
    ArchChange,
    BomDiff,
    FileStatus,
    IntegrityChange,
    TreeDiff,
    VersionChange,
    detect_family,
    diff_boms,
    diff_dirs,
    diff_files,
    diff_paths,
    gate,
    parse_allow,
    parse_classes,
    parse_text,
    read_allow_file,
    render,
    render_json,
    render_markdown,
    render_text,
    run_diff,
)
from imagebuild.config import Family
from imagebuild.errors import ConfigError
from imagebuild.lockfile import Lock, LockedPackage, LockedTarget, render_lock
from imagebuild.purl import OsRelease

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "debian-20261122"
DEB_HEADER = ["imagebuild BOM: role compute, arch amd64, distro bookworm",
              "name version arch (as dpkg-query -W -f '${Package} ${Version} ${Architecture}' prints)"]


def E(line: str) -> BomEntry:  # noqa: N802 - reads like the BOM line it builds
    name, version, arch = line.split()
    return BomEntry(name, arch, version)


def _write(path: Path, lines: list[str], header: list[str] = DEB_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_bom([E(ln) for ln in lines], header))
    return path


def test_deb_files_json_contract(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.bom", [
        "libc6 2.36-9+deb12u9 amd64", "tzdata 2024a-0+deb12u1 all", "gone 1.0 amd64",
        "epochy 1:1.0-1 amd64", "tilde 1.0 amd64", "same 0:2.0 amd64",
    ])
    new = _write(tmp_path / "new.bom", [
        "libc6 2.36-9+deb12u10 amd64",  # string order says older; dpkg says newer
        "tzdata 2024a-0+deb12u1 all", "fresh 3.0 all",
        "epochy 2.0-1 amd64",  # loses the epoch: a downgrade
        "tilde 1.0~rc1 amd64",  # ~ sorts before the release: a downgrade
        "same 2.0 amd64",  # equal under dpkg ordering: unchanged
    ])
    d = diff_files(old, new)
    assert d.family is Family.DEB and d.has_changes
    assert json.loads(render_json(d)) == {
        "added": [{"name": "fresh", "arch": "all", "version": "3.0"}],
        "removed": [{"name": "gone", "arch": "amd64", "version": "1.0"}],
        "upgraded": [{"name": "libc6", "arch": "amd64", "old": "2.36-9+deb12u9", "new": "2.36-9+deb12u10"}],
        "downgraded": [{"name": "epochy", "arch": "amd64", "old": "1:1.0-1", "new": "2.0-1"},
                       {"name": "tilde", "arch": "amd64", "old": "1.0", "new": "1.0~rc1"}],
    }
    # no changes: an identical file, and line order does not matter
    assert not diff_files(old, old).has_changes
    assert render_json(diff_files(old, new)) == render_json(d)


def test_rpm_ordering_and_installonly_kernels(tmp_path: Path) -> None:
    rpm_header = ["imagebuild BOM: role compute, arch x86_64, distro el9", "family: rpm"]
    old = _write(tmp_path / "old.bom", [
        "kernel-core 5.14.0-427.13.1.el9_4 x86_64", "kernel-core 5.14.0-427.42.1.el9_4 x86_64",
        "nvidia-driver 3:565.57.01-1.el9 x86_64", "libnccl 2.21.5-1+cuda12.4 x86_64",
        "glibc 2.34-100.el9_4.2 x86_64", "glibc 2.34-100.el9_4.2 i686", "foo 1.0^git2-1 noarch",
    ], rpm_header)
    new = _write(tmp_path / "new.bom", [
        "kernel-core 5.14.0-427.42.1.el9_4 x86_64", "kernel-core 5.14.0-503.11.1.el9_5 x86_64",
        "kernel-core 5.14.0-503.15.1.el9_5 x86_64",
        "nvidia-driver 575.57.08-1.el9 x86_64",  # epoch 0 < 3: a downgrade despite the larger version
        "libnccl 2.21.5-1+cuda12.6 x86_64", "glibc 2.34-125.el9_5.1 x86_64", "foo 1.0.1-1 noarch",
    ], rpm_header)
    d = diff_files(old, new)
    assert d.family is Family.RPM
    assert d.added == (E("kernel-core 5.14.0-503.11.1.el9_5 x86_64"), E("kernel-core 5.14.0-503.15.1.el9_5 x86_64"))
    assert d.removed == (E("glibc 2.34-100.el9_4.2 i686"), E("kernel-core 5.14.0-427.13.1.el9_4 x86_64"))
    assert d.upgraded == (VersionChange("foo", "noarch", "1.0^git2-1", "1.0.1-1"),
                          VersionChange("glibc", "x86_64", "2.34-100.el9_4.2", "2.34-125.el9_5.1"),
                          VersionChange("libnccl", "x86_64", "2.21.5-1+cuda12.4", "2.21.5-1+cuda12.6"))
    assert d.downgraded == (VersionChange("nvidia-driver", "x86_64", "3:565.57.01-1.el9", "575.57.08-1.el9"),)
    # the same BOMs read as deb would order differently: the family is what decides
    assert diff_files(old, new, Family.DEB).family is Family.DEB


def test_installonly_single_to_many_and_unchanged_sets() -> None:
    k1, k2 = "kernel 5.14.0-427.13.1.el9_4 x86_64", "kernel 5.14.0-503.11.1.el9_5 x86_64"
    d = diff_boms([E(k1)], [E(k1), E(k2)], Family.RPM)
    assert d.added == (E(k2),) and not d.removed and not d.upgraded
    assert not diff_boms([E(k2), E(k1)], [E(k1), E(k2)], Family.RPM).has_changes
    d = diff_boms([E(k1), E(k2)], [], Family.RPM)
    assert d.removed == (E(k1), E(k2))  # sorted by version order


def test_family_detection() -> None:
    assert detect_family([E("a 1 amd64")]) is Family.DEB
    assert detect_family([E("a 1 all")]) is Family.DEB
    assert detect_family([E("a 1-1 x86_64")]) is Family.RPM
    assert detect_family([E("a 1-1 noarch")]) is Family.RPM
    assert detect_family([E("a 1 amd64")], ["family: rpm"]) is Family.RPM  # an explicit header wins
    assert detect_family([E("a 1 s390x")], DEB_HEADER) is Family.DEB  # the header names dpkg-query
    assert detect_family([E("a 1 s390x")], ["rpm -qa --qf '%{NAME} %{EVR} %{ARCH}\\n'"]) is Family.RPM
    assert detect_family([E("a 1 s390x")]) is None
    with pytest.raises(ConfigError, match="mixes deb and rpm"):
        detect_family([E("a 1 amd64"), E("b 1 noarch")])
    with pytest.raises(ConfigError, match="deb or rpm"):
        diff_boms([E("a 1 s390x")], [E("a 2 s390x")], None)
    # without a version on both sides nothing needs ordering, so an unknown family is fine
    assert diff_boms([E("a 1 s390x")], [E("b 2 s390x")], None).has_changes


def test_family_mismatch_between_files(tmp_path: Path) -> None:
    old = _write(tmp_path / "a.bom", ["a 1 amd64"])
    new = _write(tmp_path / "b.bom", ["a 1-1 x86_64"], ["x"])
    with pytest.raises(ConfigError, match="the old BOM is deb, the new one rpm"):
        diff_files(old, new)


def test_directories(tmp_path: Path) -> None:
    _write(tmp_path / "old/compute-amd64.bom", ["libc6 2.36-9 amd64", "slurmd 22.05.8-4 amd64"])
    _write(tmp_path / "old/login-amd64.bom", ["bash 5.2.15-2 amd64"])
    _write(tmp_path / "old/retired-amd64.bom", ["x 1 amd64"])
    _write(tmp_path / "new/compute-amd64.bom", ["libc6 2.36-9+deb12u1 amd64", "slurmd 22.05.8-4 amd64"])
    _write(tmp_path / "new/login-amd64.bom", ["bash 5.2.15-2 amd64"])
    _write(tmp_path / "new/gpu-arm64.bom", ["y 2 arm64"])
    (tmp_path / "new/README").write_text("not a BOM\n")
    tree = diff_paths(tmp_path / "old", tmp_path / "new")
    assert isinstance(tree, TreeDiff) and tree.has_changes
    assert [(f.name, f.status) for f in tree.files] == [
        ("compute-amd64.bom", FileStatus.BOTH), ("gpu-arm64.bom", FileStatus.NEW),
        ("login-amd64.bom", FileStatus.BOTH), ("retired-amd64.bom", FileStatus.GONE)]
    doc = json.loads(render_json(tree))
    assert doc == {
        "compute-amd64.bom": {"added": [], "removed": [], "downgraded": [],
                              "upgraded": [{"name": "libc6", "arch": "amd64", "old": "2.36-9",
                                            "new": "2.36-9+deb12u1"}]},
        "gpu-arm64.bom": {"added": [{"name": "y", "arch": "arm64", "version": "2"}], "removed": [],
                          "upgraded": [], "downgraded": []},
        "login-amd64.bom": {"added": [], "removed": [], "upgraded": [], "downgraded": []},
        "retired-amd64.bom": {"added": [], "removed": [{"name": "x", "arch": "amd64", "version": "1"}],
                              "upgraded": [], "downgraded": []},
    }
    md = render_markdown(tree)
    assert "3 of 4 BOMs changed." in md
    assert "- **compute-amd64**: +0 −0 ↑1 ↓0\n" in md
    assert "- **gpu-arm64** (new BOM): +1 −0 ↑0 ↓0\n" in md
    assert "- **retired-amd64** (BOM removed): +0 −1 ↑0 ↓0\n" in md
    assert "- **login-amd64**: no changes\n" in md
    assert "| libc6 | amd64 | 2.36-9 | 2.36-9+deb12u1 | upgraded |" in md
    assert md.count("| package | arch | old | new | change |") == 3  # one table per changed BOM
    assert not diff_dirs(tmp_path / "old", tmp_path / "old").has_changes


def test_path_errors(tmp_path: Path) -> None:
    f = _write(tmp_path / "a.bom", ["a 1 amd64"])
    with pytest.raises(ConfigError, match="one is a directory"):
        diff_paths(f, tmp_path)
    with pytest.raises(ConfigError, match="no such BOM"):
        diff_paths(f, tmp_path / "missing.bom")
    (tmp_path / "e1").mkdir()
    (tmp_path / "e2").mkdir()
    with pytest.raises(ConfigError, match="no \\*.bom files"):
        diff_dirs(tmp_path / "e1", tmp_path / "e2")
    (tmp_path / "bad.bom").write_text("only two\n")
    with pytest.raises(ConfigError, match="bad.bom:1"):
        diff_files(f, tmp_path / "bad.bom")


def test_markdown_single_and_escaping() -> None:
    d = diff_boms([E("a 1 amd64")], [E("a 2 amd64"), E("b|c 1 amd64")], Family.DEB)
    md = render_markdown(d, title="compute-amd64")
    assert md.startswith("### compute-amd64\n")
    assert "- **BOM**: +1 −0 ↑1 ↓0\n" in md
    assert "| b\\|c | amd64 |  | 1 | added |" in md
    many = diff_boms([], [E(f"p{i:03} 1 amd64") for i in range(40)], Family.DEB)
    assert "<details><summary><b>BOM</b>: 40 changes (+40 −0 ↑0 ↓0)</summary>" in render_markdown(many)
    ten = diff_boms([], [E(f"p{i:03} 1 amd64") for i in range(10)], Family.DEB)
    assert "<details>" not in render_markdown(ten) and "**BOM**: 10 changes" in render_markdown(ten)
    eleven = diff_boms([], [E(f"p{i:03} 1 amd64") for i in range(11)], Family.DEB)
    assert "<details>" in render_markdown(eleven)
    assert "no changes" in render_markdown(diff_boms([E("a 1 amd64")], [E("a 1 amd64")], Family.DEB))


def _packages(path: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for stanza in lzma.decompress(path.read_bytes()).decode().split("\n\n"):
        fields = dict(ln.split(": ", 1) for ln in stanza.splitlines() if ln[:1] not in (" ", "") and ": " in ln)
        if "Package" in fields:
            out[fields["Package"]] = (fields["Version"], fields["Architecture"])
    return out


@pytest.mark.skipif(not (DATA / "debian-security").is_dir(), reason=f"Debian data not found at {DATA}")
@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_real_point_release_vs_security_updates(tmp_path: Path) -> None:
    """bookworm's versions of every package bookworm-security updates, against the security versions:
    the classification must agree with dpkg on every pair (the Packages files hold several versions
    of some names; the last stanza wins here, which is fine for an ordering check)."""
    base = _packages(DATA / "debian/dists/bookworm/main/binary-amd64/Packages.xz")
    sec = _packages(DATA / "debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz")
    common = sorted(n for n in sec if n in base and base[n][1] == sec[n][1])
    assert len(common) > 100
    old = [BomEntry(n, base[n][1], base[n][0]) for n in common]
    new = [BomEntry(n, sec[n][1], sec[n][0]) for n in common]
    d = diff_files(_write_entries(tmp_path / "old.bom", old), _write_entries(tmp_path / "new.bom", new))
    assert d.family is Family.DEB and not d.added and not d.removed
    got = {c.name: "up" for c in d.upgraded} | {c.name: "down" for c in d.downgraded}
    for n in common:
        o, nv = base[n][0], sec[n][0]
        if o == nv:
            assert n not in got
            continue
        lt = subprocess.run(["dpkg", "--compare-versions", o, "lt", nv], check=False).returncode == 0
        assert got.get(n) == ("up" if lt else "down"), (n, o, nv)
    assert len(d.upgraded) > 100  # a security suite is upgrades


def _write_entries(path: Path, entries: list[BomEntry]) -> Path:
    path.write_text(render_bom(entries, DEB_HEADER))
    return path


# -- arch changes -----------------------------------------------------------------------------------------


def test_arch_changed_is_one_change_not_removed_plus_added(tmp_path: Path) -> None:
    old = _write(tmp_path / "old.bom", [
        "foo 1.0 amd64",  # -> all, same version
        "bar 1.0-1 amd64",  # -> all, and a new version
        "libc6 2.36-9 amd64", "libc6 2.36-9 i386",  # multiarch: the foreign i386 instance goes
        "baz 1 amd64",  # -> two arches: not one change
        "kern 1 amd64", "kern 2 amd64",  # two versions -> another arch: not one change
    ])
    new = _write(tmp_path / "new.bom", [
        "foo 1.0 all", "bar 1.1-1 all", "libc6 2.36-9 amd64", "baz 1 arm64", "baz 1 all", "kern 2 arm64",
    ])
    d = diff_files(old, new)
    assert d.arch_changed == (ArchChange("bar", "amd64", "all", "1.0-1", "1.1-1"),
                              ArchChange("foo", "amd64", "all", "1.0", "1.0"))
    assert d.removed == (E("baz 1 amd64"), E("kern 1 amd64"), E("kern 2 amd64"), E("libc6 2.36-9 i386"))
    assert d.added == (E("baz 1 all"), E("baz 1 arm64"), E("kern 2 arm64"))
    assert not d.upgraded and not d.downgraded
    assert d.summary() == "3 added, 4 removed, 0 upgraded, 0 downgraded, 2 arch-changed"
    assert d.counts() == "+3 −4 ↑0 ↓0 ⇄2"
    doc = json.loads(render_json(d))
    assert doc["arch-changed"] == [
        {"name": "bar", "old_arch": "amd64", "new_arch": "all", "old": "1.0-1", "new": "1.1-1"},
        {"name": "foo", "old_arch": "amd64", "new_arch": "all", "old": "1.0", "new": "1.0"}]
    assert "integrity" not in doc
    text = render_text(d)
    assert "  ~ foo 1.0 amd64 -> 1.0 all (arch changed)\n" in text
    assert "| foo | amd64 → all | 1.0 | 1.0 | arch changed |" in render_markdown(d)


# -- integrity ---------------------------------------------------------------------------------------------


def test_integrity_from_sha256_maps() -> None:
    old = [E("a 1.0 amd64"), E("b 0:2.0 amd64"), E("k 1 amd64"), E("k 2 amd64"), E("base 1 all"), E("up 1 amd64")]
    new = [E("a 1.0 amd64"), E("b 2.0 amd64"), E("k 1 amd64"), E("k 2 amd64"), E("base 1 all"), E("up 2 amd64")]
    osha = {("a", "amd64", "1.0"): "aa" * 32, ("b", "amd64", "0:2.0"): "bb" * 32, ("k", "amd64", "1"): "11" * 32,
            ("k", "amd64", "2"): "22" * 32, ("base", "all", "1"): "", ("up", "amd64", "1"): "01" * 32}
    nsha = {("a", "amd64", "1.0"): "ab" * 32, ("b", "amd64", "2.0"): "bc" * 32, ("k", "amd64", "1"): "11" * 32,
            ("k", "amd64", "2"): "23" * 32, ("base", "all", "1"): "ff" * 32, ("up", "amd64", "2"): "02" * 32}
    d = diff_boms(old, new, Family.DEB, old_sha=osha, new_sha=nsha)
    assert d.integrity_checked
    assert d.integrity == (
        IntegrityChange("a", "amd64", "1.0", "aa" * 32, "ab" * 32),
        IntegrityChange("b", "amd64", "2.0", "bb" * 32, "bc" * 32),  # equal by dpkg ordering: the same package
        IntegrityChange("k", "amd64", "2", "22" * 32, "23" * 32),  # one of several installed versions
    )  # "base" has no sha256 on the old side (a base image package): not compared; "up" is an upgrade
    assert d.upgraded == (VersionChange("up", "amd64", "1", "2"),)
    assert d.counts() == "+0 −0 ↑1 ↓0 ≠3"
    assert json.loads(render_json(d))["integrity"][0] == {
        "name": "a", "arch": "amd64", "version": "1.0", "old_sha256": "aa" * 32, "new_sha256": "ab" * 32}
    assert f"  ! a amd64 1.0 sha256 {'aa' * 32} -> {'ab' * 32} (integrity)" in render_text(d)
    assert "| a | amd64 | 1.0 sha256:aaaaaaaaaaaa… | 1.0 sha256:abababababab… | **sha256 changed** |" in \
        render_markdown(d)
    # one side without sha256s: not compared at all
    assert not diff_boms(old, new, Family.DEB, old_sha=osha).integrity
    assert not diff_boms(old, new, Family.DEB, old_sha=osha).integrity_checked


def _lock(path: Path, targets: dict[str, list[tuple[str, str, str, str]]], family: str = "deb",
          distro: str = "bookworm") -> Path:
    """A lock file with one target per key (`role-arch`) holding (name, version, arch, sha256) packages."""
    ts = []
    for key, pkgs in targets.items():
        role, arch = key.rsplit("-", 1)
        ts.append(LockedTarget(role, arch, distro, (), tuple(
            LockedPackage(n, v, a, "debian", "bookworm", f"pool/{n}_{v}_{a}.deb", 1000, sha, None, "requested", n)
            for n, v, a, sha in pkgs), (), family))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_lock(Lock("0" * 64, (), tuple(ts))))
    return path


def test_locks_project_dirs_and_their_boms(tmp_path: Path) -> None:
    _lock(tmp_path / "a/snapshots.lock", {
        "compute-amd64": [("libc6", "2.36-9", "amd64", "11" * 32),
                          ("nvidia-driver", "550.54.15-1", "amd64", "22" * 32),
                          ("tzdata", "2024a-0+deb12u1", "all", "33" * 32)],
        "login-amd64": [("bash", "5.2.15-2", "amd64", "44" * 32)]})
    _lock(tmp_path / "b/snapshots.lock", {
        "compute-amd64": [("libc6", "2.36-9", "amd64", "1f" * 32),
                          ("nvidia-driver", "535.216.01-1", "amd64", "22" * 32),
                          ("tzdata", "2024a-0+deb12u1", "all", "33" * 32)],
        "gpu-arm64": [("cuda", "12.4.1-1", "arm64", "55" * 32)]})
    for spec_old, spec_new in (("a/snapshots.lock", "b/snapshots.lock"), ("a", "b")):
        tree = run_diff(spec_old, spec_new, cwd=tmp_path)
        assert isinstance(tree, TreeDiff)
        assert [(f.name, f.status) for f in tree.files] == [
            ("compute-amd64.bom", FileStatus.BOTH), ("gpu-arm64.bom", FileStatus.NEW),
            ("login-amd64.bom", FileStatus.GONE)]
        compute = tree.files[0].diff
        assert compute.integrity_checked and compute.name == "compute-amd64"
        assert compute.integrity == (IntegrityChange("libc6", "amd64", "2.36-9", "11" * 32, "1f" * 32),)
        assert compute.downgraded == (VersionChange("nvidia-driver", "amd64", "550.54.15-1", "535.216.01-1"),)
        assert compute.os == OsRelease("debian", "12")  # the lock's distro, a known codename
    # the boms/ the lock would write, on the old side: no sha256 there, so no integrity check
    boms = tmp_path / "c/boms"
    _write(boms / "compute-amd64.bom", ["libc6 2.36-9 amd64", "nvidia-driver 550.54.15-1 amd64",
                                        "tzdata 2024a-0+deb12u1 all"])
    _write(boms / "login-amd64.bom", ["bash 5.2.15-2 amd64"])
    for spec in ("c", "c/boms"):  # a project directory without a lock is its boms/
        tree = run_diff(spec, "b", cwd=tmp_path)
        assert isinstance(tree, TreeDiff)
        compute = tree.files[0].diff
        assert not compute.integrity_checked and not compute.integrity and compute.downgraded
    # a single BOM against a set of them
    with pytest.raises(ConfigError, match="is a single BOM"):
        run_diff("c/boms/compute-amd64.bom", "b", cwd=tmp_path)
    # the lock records its family: rpm version ordering although the arch names say nothing
    r1 = _lock(tmp_path / "r1.lock", {"el-s390x": [("k", "1.0-1.el9", "s390x", "")]}, "rpm", "rocky9")
    r2 = _lock(tmp_path / "r2.lock", {"el-s390x": [("k", "1.0-1.el9_1", "s390x", "")]}, "rpm", "rocky9")
    t = run_diff(str(r1), str(r2), cwd=tmp_path)
    assert isinstance(t, TreeDiff)
    assert t.files[0].diff.family is Family.RPM and t.files[0].diff.os == OsRelease("rocky", "9")
    assert t.files[0].diff.upgraded


def test_project_config_names_the_os(tmp_path: Path) -> None:
    """The `os` key of the distro in the project's imagebuild.toml decides the purl namespace of its BOMs."""
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "imagebuild.toml").write_text('[distros.site]\nfamily = "deb"\nos = "ubuntu-24.04"\n')
    _lock(tmp_path / "a/snapshots.lock", {"c-amd64": [("x", "1", "amd64", "")]}, distro="site")
    _lock(tmp_path / "b/snapshots.lock", {"c-amd64": [("x", "2", "amd64", "")]}, distro="site")
    t = run_diff("a", "b", cwd=tmp_path)
    assert isinstance(t, TreeDiff) and t.files[0].diff.os == OsRelease("ubuntu", "24.04")
    # BOM files: the header names the distro; a config next to boms/ is read too
    _write(tmp_path / "a/boms/c-amd64.bom", ["x 1 amd64"], ["imagebuild BOM: role c, arch amd64, distro site"])
    _write(tmp_path / "b/boms/c-amd64.bom", ["x 2 amd64"], ["imagebuild BOM: role c, arch amd64, distro site"])
    d = run_diff("a/boms/c-amd64.bom", "b/boms/c-amd64.bom", cwd=tmp_path)
    assert isinstance(d, BomDiff) and d.os == OsRelease("ubuntu", "24.04") and d.name == "c-amd64"
    d = run_diff("a/boms/c-amd64.bom", "b/boms/c-amd64.bom", cwd=tmp_path, os="debian-12")  # given: wins
    assert isinstance(d, BomDiff) and d.os == OsRelease("debian", "12")
    with pytest.raises(ConfigError, match="ID-VERSION_ID"):
        run_diff("a", "b", cwd=tmp_path, os="debian twelve")
    # an unknown distro with no `os`: no operating system, so purl rules cannot match (names still do)
    _write(tmp_path / "x.bom", ["x 1 amd64"], ["imagebuild BOM: role c, arch amd64, distro mysite"])
    _write(tmp_path / "y.bom", ["x 2 amd64"], ["imagebuild BOM: role c, arch amd64, distro mysite"])
    d = run_diff("x.bom", "y.bom", cwd=tmp_path)
    assert isinstance(d, BomDiff) and d.os is None and d.name == ""


# -- the canonical fast path ---------------------------------------------------------------------------


def _random_bom(rng: random.Random, names: list[str]) -> list[str]:
    arches = ["amd64", "all", "i386", "arm64"]
    lines = []
    for n in names:
        if rng.random() < 0.3:
            continue
        for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):  # installonly-like: several versions
            epoch = rng.choice(["", "", "", "1:", "0:"])
            v = f"{epoch}{rng.randint(1, 3)}.{rng.randint(0, 2)}{rng.choice(['', '~rc1', '+b1'])}-{rng.randint(1, 2)}"
            lines.append(f"{n} {v} {rng.choice(arches[:2]) if rng.random() < 0.8 else rng.choice(arches)}")
    return lines


def test_fast_path_agrees_with_the_general_one(tmp_path: Path) -> None:
    """Canonical files are diffed by set difference of sorted lines; the same content written otherwise (tabs,
    indentation, comments between lines) takes parse_bom's path: both must give the same diff, and the same as
    diff_boms over the entries."""
    rng = random.Random(20261122)
    names = [f"p{i}" for i in range(60)] + ["p1+x", "p1-x", "p", "p10"]  # names that prefix one another
    for _ in range(60):
        a, b = _random_bom(rng, names), _random_bom(rng, names)
        if rng.random() < 0.5:  # mostly equal sides, like real BOM pairs
            b = a[: len(a) // 2] + b[len(b) // 2:]
        ta = "# family: deb\n" + "".join(f"{ln}\n" for ln in sorted(a))
        tb = "# family: deb\n" + "".join(f"{ln}\n" for ln in b)  # unsorted: sorted on reading
        assert type(parse_text(ta, "a")).__name__ == "_LineSide"
        assert type(parse_text(tb, "b")).__name__ == "_LineSide"
        odd_a = "# family: deb\n" + "".join(f"  {ln.replace(' ', chr(9))}\n# between\n" for ln in a)
        assert type(parse_text(odd_a, "a")).__name__ == "_EntrySide"
        (tmp_path / "a.bom").write_text(ta)
        (tmp_path / "b.bom").write_text(tb)
        (tmp_path / "odd.bom").write_text(odd_a)
        fast = diff_files(tmp_path / "a.bom", tmp_path / "b.bom")
        slow = diff_files(tmp_path / "odd.bom", tmp_path / "b.bom")
        entries = diff_boms([E(ln) for ln in a], [E(ln) for ln in b], Family.DEB)
        assert fast == slow == entries


def test_canonical_detection_edge_cases(tmp_path: Path) -> None:
    # a comment after the first package line (with exactly three words) is a comment, not a package
    text = "# h\na 1 amd64\n# b 2 amd64\n"
    side = parse_text(text, "x")
    assert type(side).__name__ == "_EntrySide" and side.group("#") == {}
    assert side.group("a") == {"amd64": {"1"}}
    # no final newline; an empty file; only comments
    assert parse_text("a 1 amd64", "x").group("a") == {"amd64": {"1"}}
    assert not diff_boms([], [], None).has_changes
    (tmp_path / "e.bom").write_text("")
    (tmp_path / "c.bom").write_text("# only a comment\n")
    assert not diff_files(tmp_path / "e.bom", tmp_path / "c.bom").has_changes
    # a malformed line is still an error with its line number, on the fast path's side too
    (tmp_path / "ok.bom").write_text("a 1 amd64\n")
    (tmp_path / "bad.bom").write_text("a 1 amd64\nb 2\n")
    with pytest.raises(ConfigError, match="bad.bom:2"):
        diff_files(tmp_path / "ok.bom", tmp_path / "bad.bom")
    # non-ASCII and CRLF files take the general path and read the same
    (tmp_path / "crlf.bom").write_bytes(b"a 1 amd64\r\n")
    assert not diff_files(tmp_path / "ok.bom", tmp_path / "crlf.bom").has_changes


# -- renderers ----------------------------------------------------------------------------------------------


def _sample_tree() -> TreeDiff:
    from imagebuild.bomdiff import FileDiff

    big = diff_boms([E(f"lib{i:02} 1.0-1 amd64") for i in range(14)],
                    [E(f"lib{i:02} 1.0-2 amd64") for i in range(12)] + [E("new_pkg 1.0~rc1 all")], Family.DEB)
    small = diff_boms([E("a*b 1.0~rc1~x amd64"), E("nvidia-driver 550.54.15-1 amd64"), E("foo 1 amd64")],
                      [E("a*b 1.0 amd64"), E("nvidia-driver 535.216.01-1 amd64"), E("foo 1 all"),
                       E("<script> 1 all")], Family.DEB)
    same = diff_boms([E("x 1 amd64")], [E("x 1 amd64")], Family.DEB)
    os = OsRelease("debian", "12")
    return TreeDiff((
        FileDiff("compute-amd64.bom", FileStatus.BOTH, BomDiff(**{**big.__dict__, "name": "compute-amd64", "os": os})),
        FileDiff("login-amd64.bom", FileStatus.BOTH, BomDiff(**{**small.__dict__, "name": "login-amd64", "os": os})),
        FileDiff("control-amd64.bom", FileStatus.BOTH, BomDiff(**{**same.__dict__, "name": "control-amd64"})),
    ))


def test_markdown_as_github_renders_it() -> None:
    cmarkgfm = pytest.importorskip("cmarkgfm")
    from cmarkgfm.cmark import Options

    tree = _sample_tree()
    md = render_markdown(tree, "BOM diff main -> HEAD")
    assert "- **compute-amd64**: +1 −2 ↑12 ↓0\n" in md
    assert "- **login-amd64**: +1 −0 ↑1 ↓1 ⇄1\n" in md
    assert "- **control-amd64**: no changes\n" in md
    page = cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)
    assert page.count("<table>") == 2  # one per changed BOM
    assert page.count("<details>") == 1  # 15 rows fold, 4 do not
    assert "<summary><b>compute-amd64</b>: 15 changes (+1 −2 ↑12 ↓0)</summary>" in page
    assert "<th>package</th>\n<th>arch</th>\n<th>old</th>\n<th>new</th>\n<th>change</th>" in page
    # nothing in a cell became markup: no strikethrough from `~`, no emphasis from `*`/`_`, no raw HTML
    assert "<del>" not in page and "<em>" not in page and "<script>" not in page
    assert "<td>a*b</td>\n<td>amd64</td>\n<td>1.0~rc1~x</td>\n<td>1.0</td>\n<td>upgraded</td>" in page
    assert "<td>535.216.01-1</td>\n<td><strong>downgraded</strong></td>" in page
    assert "<td>&lt;script&gt;</td>" in page and "<td>new_pkg</td>" in page
    assert "<td>foo</td>\n<td>amd64 → all</td>" in page
    rows = re.findall(r"<tr>\n<td>([^<]*)</td>", page)
    assert len(rows) == 15 + 4


def test_text_colours_only_when_asked() -> None:
    tree = _sample_tree()
    plain = render_text(tree)
    assert "\x1b[" not in plain and render(tree, "text") == plain
    coloured = render(tree, "text", color=True)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert "\x1b[1;33m  v nvidia-driver amd64 550.54.15-1 -> 535.216.01-1 (downgrade)\x1b[0m" in coloured
    assert "\x1b[32m  + new_pkg 1.0~rc1 all\x1b[0m" in coloured
    assert render(tree, "json") == render_json(tree)
    with pytest.raises(ConfigError, match="unknown format"):
        render(tree, "yaml")


# -- the gate -------------------------------------------------------------------------------------------


TODAY = date(2026, 11, 22)  # fixed: nothing here depends on the real date


def test_gate_fail_on_and_messages() -> None:
    tree = _sample_tree()
    g = gate(tree, parse_classes("downgraded"), [], TODAY)
    assert g.failed and [f.name for f in g.tripped] == ["nvidia-driver"]
    assert g.report()[0] == "gate: 1 downgraded (login-amd64: nvidia-driver 550.54.15-1 -> 535.216.01-1)"
    assert g.report()[-1].startswith("gate: failed (fail on downgraded: 1 tripped, 0 allowed; 18 change(s)")
    assert gate(tree, parse_classes("integrity,arch-changed"), [], TODAY).failed  # foo amd64 -> all
    g = gate(tree, parse_classes("integrity"), [], TODAY)
    assert not g.failed and g.report() == ["gate: passed (fail on integrity: 0 tripped, 0 allowed; 19 change(s) "
                                           "in other classes not gated)"]
    # every class, no rules: the same as "anything changed"
    assert gate(tree, CLASSES, [], TODAY).failed == tree.has_changes
    same = diff_boms([E("x 1 amd64")], [E("x 1 amd64")], Family.DEB)
    assert not gate(same, CLASSES, [], TODAY).failed
    with pytest.raises(ConfigError, match="unknown change class"):
        gate(tree, {"sideways"}, [], TODAY)


def test_gate_allow_rules_globs_purls_classes_and_expiry() -> None:
    tree = _sample_tree()
    rule = parse_allow("nvidia-*;reason=driver rollback PR-123;expires=2027-01-31")
    assert rule == Allow("nvidia-*", "driver rollback PR-123", date(2027, 1, 31), frozenset(), "--allow")
    g = gate(tree, {"downgraded", "removed"}, [rule], TODAY)
    assert g.failed  # lib12, lib13 removed
    assert [f.name for f in g.tripped] == ["lib12", "lib13"] and [f.name for f, _ in g.allowed] == ["nvidia-driver"]
    assert "gate: allowed 1 by 'nvidia-*' (driver rollback PR-123, until 2027-01-31; --allow): downgraded " \
        "login-amd64: nvidia-driver 550.54.15-1 -> 535.216.01-1" in g.report()
    # through its expiry date, not after
    assert gate(tree, {"downgraded"}, [rule], date(2027, 1, 31)).allowed
    late = gate(tree, {"downgraded"}, [rule], date(2027, 2, 1))
    assert late.failed and late.expired == (rule,) and late.expired_hits == ((late.tripped[0], rule),)
    report = late.report()
    assert "gate: login-amd64: nvidia-driver 550.54.15-1 -> 535.216.01-1 (downgraded) would be allowed by " \
        "'nvidia-*', but that rule expired on 2027-01-31" in report
    assert any("expired on 2027-01-31: it no longer applies" in ln for ln in report)
    # a purl rule: matched against the package as NEW has it, encoded or not
    purl_rule = parse_allow("pkg:deb/debian/nvidia-driver@535.*?arch=amd64*;reason=pinned")
    assert gate(tree, {"downgraded"}, [purl_rule], TODAY).allowed
    assert gate(tree, {"upgraded"}, [parse_allow("pkg:deb/debian/lib*@1.0-2?*distro=debian-12*")], TODAY).allowed
    assert not gate(tree, {"downgraded"}, [parse_allow("pkg:deb/debian/nvidia-driver@550.*")], TODAY).allowed
    assert not gate(tree, {"downgraded"}, [parse_allow("pkg:rpm/*")], TODAY).allowed
    plus = diff_boms([E("libc6 2.36-9+deb12u9 amd64")], [E("libc6 2.36-9+deb12u10 amd64")], Family.DEB)
    plus = BomDiff(**{**plus.__dict__, "os": OsRelease("debian", "12")})
    for pattern in ("pkg:deb/debian/libc6@2.36-9+deb12u10*", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10*"):
        assert not gate(plus, {"upgraded"}, [parse_allow(pattern)], TODAY).failed
    # no operating system known: a purl rule cannot match, a name rule still does
    anon = diff_boms([E("libc6 1 amd64")], [], Family.DEB)
    assert gate(anon, {"removed"}, [parse_allow("pkg:deb/*")], TODAY).failed
    assert not gate(anon, {"removed"}, [parse_allow("libc*")], TODAY).failed
    # classes narrow a rule; unused rules are reported
    only_up = parse_allow("nvidia-*;classes=upgraded;reason=bumps only")
    g = gate(tree, {"downgraded"}, [only_up], TODAY)
    assert g.failed and g.unused == (only_up,)
    assert "gate: allow rule 'nvidia-*' (bumps only, only upgraded; --allow) matched nothing" in g.report()
    # the rpm purl carries the epoch as a qualifier
    rpm = diff_boms([E("nvidia-driver 3:565.57.01-1.el9 x86_64")], [E("nvidia-driver 575.57.08-1.el9 x86_64")],
                    Family.RPM)
    rpm = BomDiff(**{**rpm.__dict__, "os": OsRelease("rocky", "9")})
    assert not gate(rpm, {"downgraded"}, [parse_allow("pkg:rpm/rocky/nvidia-driver@575.*")], TODAY).failed


def test_allow_parsing_and_the_allow_file(tmp_path: Path) -> None:
    assert parse_allow("foo").reason == "allowed on the command line"
    assert parse_allow("foo;classes=upgraded,downgraded").classes == {"upgraded", "downgraded"}
    for bad, msg in (("", "needs a pattern"), ("foo;until=2027-01-01", "expected PATTERN"),
                     ("foo;expires=next year", "expires must be a date"), ("foo;classes=up", "unknown change class"),
                     ("foo;reason=", "needs a reason")):
        with pytest.raises(ConfigError, match=msg):
            parse_allow(bad)
    f = tmp_path / "allow.toml"
    f.write_text('''
[[allow]]
pattern = "nvidia-*"
reason = "driver bump PR-123"
expires = 2027-01-31

[[allow]]
pattern = "pkg:deb/debian/linux-image-*"
reason = "kernel ABI bump"
expires = "2026-12-31"
classes = ["added", "removed"]

[[allow]]
pattern = "tzdata"
reason = "always fine"
''')
    rules = read_allow_file(f)
    assert [(r.pattern, r.expires, sorted(r.classes)) for r in rules] == [
        ("nvidia-*", date(2027, 1, 31), []), ("pkg:deb/debian/linux-image-*", date(2026, 12, 31), ["added", "removed"]),
        ("tzdata", None, [])]
    assert rules[0].source == f"{f}: [[allow]] #1"
    for body, msg in (('[[allow]]\npattern = "x"\n', "needs a reason"),
                      ('[[allow]]\npattern = "x"\nreason = "y"\nwhy = 1\n', "unknown key"),
                      ('[[allow]]\npattern = "x"\nreason = "y"\nexpires = 2027-01-31T10:00:00\n', "must be a date"),
                      ('[[allow]]\npattern = "x"\nreason = "y"\nclasses = ["upgrade"]\n', "did you mean 'upgraded'"),
                      ("allow = 1\n", "array of tables"), ("[rules]\n", "unknown key"), ("[[allow]\n", "invalid TOML")):
        f.write_text(body)
        with pytest.raises(ConfigError, match=msg):
            read_allow_file(f)
    with pytest.raises(ConfigError, match="cannot read"):
        read_allow_file(tmp_path / "missing.toml")
    assert parse_classes("all") == frozenset(CLASSES)
    assert parse_classes(["added", "removed,integrity"]) == {"added", "removed", "integrity"}
    with pytest.raises(ConfigError, match="did you mean 'arch-changed'"):
        parse_classes("arch_changed")
    with pytest.raises(ConfigError, match="no change class"):
        parse_classes(" ")


def test_markdown_with_the_gate_verdict() -> None:
    tree = _sample_tree()
    g = gate(tree, {"downgraded", "removed"}, [parse_allow("lib1*;reason=split into lib1x PR-9")], TODAY)
    md = render(tree, "markdown", "BOM diff", gate=g)
    assert "**Gate** (fail on removed, downgraded): ❌ **failed**: 1 downgraded\n" in md
    assert "- login-amd64: nvidia-driver 550.54.15-1 -> 535.216.01-1 (downgraded)\n" in md
    assert "- allowed: compute-amd64: lib12 1.0-1 amd64 (removed) by 'lib1\\*' (split into lib1x PR-9; --allow)" in md
    assert md.index("**Gate**") < md.index("| package |")  # the verdict before the tables
    ok = gate(tree, {"integrity"}, [], TODAY)
    assert "**Gate** (fail on integrity): ✅ passed (0 allowed)" in render(tree, "markdown", gate=ok)


def test_the_deb_fast_comparison_is_debversions() -> None:
    """The diff orders deb versions by comparing what follows their common prefix (cut back to a digit run's start),
    and those tails' leading numbers directly: the same order as debversion.compare on every pair, including
    epochs, hyphens in upstream versions, tildes, leading zeros and whatever falls back to debversion."""
    from imagebuild import debversion
    from imagebuild.bomdiff import _deb_compare

    rng = random.Random(1122)
    alphabet = "0123456789" * 3 + "..++~~--abZ"

    def version() -> str:
        epoch = rng.choice(["", "", "1:", "0:", "12:", "01:"])
        upstream = rng.choice("0123456789") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        revision = rng.choice(["", "-" + "".join(rng.choice("00123456789.+~ab") for _ in range(rng.randint(0, 6)))])
        return epoch + upstream + revision

    for _ in range(30000):
        a = version()
        # mostly a shared prefix and a different tail, as the pairs of a BOM diff are; sometimes anything
        b = (a[:rng.randint(0, len(a))] + "".join(rng.choice(alphabet + ": ") for _ in range(rng.randint(0, 4)))
             if rng.random() < 0.8 else version())
        want = debversion.compare(a, b)
        assert _deb_compare(a, b) == (want > 0) - (want < 0), (a, b)
    for a, b in (("2.36-9+deb12u9", "2.36-9+deb12u10"), ("1:2.0", "2.0"), ("1.0~rc1", "1.0"), ("1.01", "1.1"),
                 ("29", "201"), ("1.0-1", "1.0"), ("1.0", "1.0-0"), ("535.261.03-1", "535.309.01-0+deb12u1")):
        want = debversion.compare(a, b)
        assert _deb_compare(a, b) == (want > 0) - (want < 0), (a, b)
