"""BOM diff: added/removed/upgraded/downgraded with dpkg and rpm ordering, installonly sets, directories,
the JSON contract, the Markdown PR comment, and a diff between two real states of the Debian data
(bookworm vs bookworm-security) checked against `dpkg --compare-versions`."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from imagebuild.bom import BomEntry, render_bom
from imagebuild.bomdiff import (
    FileStatus,
    TreeDiff,
    VersionChange,
    detect_family,
    diff_boms,
    diff_dirs,
    diff_files,
    diff_paths,
    render_json,
    render_markdown,
)
from imagebuild.config import Family
from imagebuild.errors import ConfigError

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
    assert "**compute-amd64.bom**: 0 added, 0 removed, 1 upgraded, 0 downgraded" in md
    assert "**gpu-arm64.bom** (new BOM): 1 added" in md
    assert "**retired-amd64.bom** (BOM removed): 0 added, 1 removed" in md
    assert "**login-amd64.bom**: no changes" in md
    assert "| libc6 | amd64 | 2.36-9 | 2.36-9+deb12u1 | upgraded |" in md
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
    assert "**BOM**: 1 added, 0 removed, 1 upgraded, 0 downgraded" in md
    assert "| b\\|c | amd64 |  | 1 | added |" in md
    many = diff_boms([], [E(f"p{i:03} 1 amd64") for i in range(40)], Family.DEB)
    assert "<details><summary>40 changes</summary>" in render_markdown(many)
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
