"""imagebuild.verify: the installed set of a built image (rootfs tarball or captured list) vs the lock's BOM.

Real parts only: the real dpkg status of a Debian minbase image in tarballs made with tarfile (checked
against the host's real `dpkg-query --admindir`), and a real rpmdb written by real `dnf --installroot` from
the fixture repos of tests/rpmrepos.py (checked against `rpm --root ROOT -qa`).
"""

from __future__ import annotations

import base64
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dnf_oracle  # noqa: E402
from conftest import MINBASE_STATUS  # noqa: E402
from rpmrepos import build_rpm_repos, missing_tools  # noqa: E402

from imagebuild.bom import BomEntry, parse_bom  # noqa: E402
from imagebuild.bomdiff import VersionChange  # noqa: E402
from imagebuild.config import Family  # noqa: E402
from imagebuild.errors import ConfigError  # noqa: E402
from imagebuild.verify import compare, has_drift, installed_from_list, installed_from_rootfs  # noqa: E402

C_ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}


# -- helpers --------------------------------------------------------------------------------------------


Member = tuple[str, bytes] | tuple[str, str, str]  # (name, data) file; (name, "sym"|"hard", target) link


def add_member(tf: tarfile.TarFile, m: Member) -> None:
    ti = tarfile.TarInfo(m[0])
    if len(m) == 2:
        ti.size = len(m[1])
        tf.addfile(ti, io.BytesIO(m[1]))
    else:
        ti.type = tarfile.SYMTYPE if m[1] == "sym" else tarfile.LNKTYPE
        ti.linkname = m[2]
        tf.addfile(ti)


def make_tar(path: Path, members: list[Member], compression: str = "") -> Path:
    """A tarball of in-memory members, plus a few unrelated ones so the db is not the only thing in it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for d in ("./", "./etc/", "./usr/", "./usr/bin/"):
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tf.addfile(ti)
        extra: list[Member] = [("./etc/hostname", b"node\n"), ("./usr/bin/true", b"\x7fELF" + b"\0" * 64)]
        for m in [*extra, *members]:
            add_member(tf, m)
    raw = buf.getvalue()
    path.write_bytes(compress(raw, compression))
    return path


def compress(raw: bytes, compression: str) -> bytes:
    if compression == "gz":
        import gzip
        return gzip.compress(raw, mtime=0)
    if compression == "xz":
        import lzma
        return lzma.compress(raw)
    if compression == "bz2":
        import bz2
        return bz2.compress(raw)
    if compression == "zst":
        import zstandard
        return bytes(zstandard.ZstdCompressor().compress(raw))
    return raw


def tar_tree(root: Path, out: Path, rename: Callable[[str], str | None] = lambda p: p,
             extra: Sequence[Member] = ()) -> Path:
    """Tar a real directory (as `./rel/path` names) as .tar.gz; `rename` maps or drops (None) each path."""
    with tarfile.open(out, "w:gz") as tf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                arc = rename(rel)
                if arc is None:
                    continue
                ti = tf.gettarinfo(str(full), arcname="./" + arc)
                if ti.isreg():
                    with open(full, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
        for m in extra:
            add_member(tf, m)
    return out


def lines(entries: list[BomEntry]) -> list[str]:
    return sorted(e.line() for e in entries)


# -- deb ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stanza:
    name: str
    text: str


def stanzas(data: bytes) -> list[Stanza]:
    out = []
    for chunk in data.decode("utf-8").split("\n\n"):
        if chunk.strip():
            name = next(ln.split(":", 1)[1].strip() for ln in chunk.splitlines() if ln.startswith("Package:"))
            out.append(Stanza(name, chunk.strip("\n")))
    return out


def join(st: list[Stanza]) -> bytes:
    return ("\n\n".join(s.text for s in st) + "\n").encode("utf-8")


def set_field(s: Stanza, key: str, value: str) -> Stanza:
    lines_ = [f"{key}: {value}" if ln.startswith(f"{key}:") else ln for ln in s.text.splitlines()]
    return Stanza(s.name, "\n".join(lines_))


@pytest.fixture(scope="module")
def minbase() -> bytes:
    if not MINBASE_STATUS.is_file():
        pytest.skip(f"the dpkg status of a minbase image is not at {MINBASE_STATUS} (see tests/conftest.py)")
    return MINBASE_STATUS.read_bytes()


def dpkg_query(status: bytes, tmp: Path, updates: dict[str, bytes] | None = None) -> list[tuple[str, str]]:
    """Real dpkg-query on a status file: [(`name version arch`, db:Status-Abbrev)], sorted."""
    if shutil.which("dpkg-query") is None:
        pytest.skip("needs dpkg-query (a Debian host) as the oracle")
    adm = tmp / "admindir"
    shutil.rmtree(adm, ignore_errors=True)
    (adm / "updates").mkdir(parents=True)
    (adm / "status").write_bytes(status)
    for n, d in (updates or {}).items():
        (adm / "updates" / n).write_bytes(d)
    out = subprocess.run(["dpkg-query", f"--admindir={adm}", "-W", "-f",
                          "${Package} ${Version} ${Architecture}\t${db:Status-Abbrev}\n"],
                         capture_output=True, text=True, check=True, env=C_ENV).stdout
    return sorted((a, b.strip()) for a, b in (ln.split("\t") for ln in out.splitlines()))


def dpkg_installed(rows: list[tuple[str, str]]) -> list[str]:
    """The oracle rows whose package is installed: abbrev `?i` (installed) or `?W`/`?t` (triggers)."""
    return sorted(ln for ln, abbrev in rows if abbrev[1:2] in ("i", "W", "t") and abbrev[2:3] in ("", " "))


@pytest.mark.parametrize("compression", ["", "gz", "xz", "bz2", "zst"])
def test_deb_rootfs_equals_dpkg_query(minbase: bytes, tmp_path: Path, compression: str) -> None:
    tar = make_tar(tmp_path / f"rootfs.tar{'.' + compression if compression else ''}",
                   [("./var/lib/dpkg/status", minbase), ("./var/lib/dpkg/status-old", b"garbage")], compression)
    got = installed_from_rootfs(tar, Family.DEB)
    oracle = dpkg_query(minbase, tmp_path)
    assert len(oracle) == 96 and all(abbrev == "ii" for _, abbrev in oracle)
    assert lines(got) == [ln for ln, _ in oracle]
    bom = parse_bom("\n".join(ln for ln, _ in oracle), "oracle")
    diff = compare(bom, got, Family.DEB)
    assert not has_drift(diff), diff


@pytest.mark.parametrize("name", ["var/lib/dpkg/status", "/var/lib/dpkg/status", "./var//lib/./dpkg/status"])
def test_deb_member_name_spellings(minbase: bytes, tmp_path: Path, name: str) -> None:
    tar = make_tar(tmp_path / "rootfs.tar", [(name, minbase)])
    assert len(installed_from_rootfs(tar, Family.DEB)) == 96


def test_deb_status_through_symlinked_dir_and_hardlink(minbase: bytes, tmp_path: Path) -> None:
    """/var/lib/dpkg a symlink to a directory whose status is a hard link: found by later passes."""
    tar = make_tar(tmp_path / "rootfs.tar.gz", [
        ("./srv/dpkg-real/status.orig", minbase),
        ("./srv/dpkg-real/status", "hard", "./srv/dpkg-real/status.orig"),
        ("./var/lib", "sym", "../srv"),
        ("./srv/dpkg", "sym", "/srv/dpkg-real"),
        ("./srv/x", b""),
    ], "gz")
    # var/lib -> ../srv (relative), srv/dpkg -> /srv/dpkg-real (absolute, inside the image root)
    assert len(installed_from_rootfs(tar, Family.DEB)) == 96


def test_deb_drift_names_exactly_the_mutations(minbase: bytes, tmp_path: Path) -> None:
    expected = installed_from_rootfs(make_tar(tmp_path / "lock.tar", [("var/lib/dpkg/status", minbase)]),
                                     Family.DEB)
    st = stanzas(minbase)
    by = {s.name: s for s in st}
    assert {"gzip", "tar", "bash", "hostname"} <= by.keys()
    tar_old = next(e.version for e in expected if e.name == "tar")
    tar_new = tar_old + "+local1"
    mutated = [s for s in st if s.name != "gzip"]  # removed
    mutated = [set_field(s, "Version", tar_new) if s.name == "tar" else s for s in mutated]  # upgraded
    # held with the locked version: no drift
    mutated = [set_field(s, "Status", "hold ok installed") if s.name == "bash" else s for s in mutated]
    mutated += [
        # removed but not purged: config files only, not installed
        Stanza("oldpkg", "Package: oldpkg\nStatus: deinstall ok config-files\nPriority: optional\n"
                         "Maintainer: x <x@example.org>\nArchitecture: amd64\nVersion: 1.0-1\n"
                         "Conffiles:\n /etc/oldpkg.conf 0123456789abcdef0123456789abcdef\nDescription: gone"),
        # `apt-mark hold` of a package that is not in the lock: installed
        Stanza("heldpkg", "Package: heldpkg\nStatus: hold ok installed\nPriority: optional\n"
                          "Maintainer: x <x@example.org>\nArchitecture: all\nVersion: 2:0.9~rc1-3\n"
                          "Description: held\n a continuation line"),
    ]
    data = join(mutated)
    got = installed_from_rootfs(make_tar(tmp_path / "image.tar.xz", [("./var/lib/dpkg/status", data)], "xz"),
                                Family.DEB)
    diff = compare(expected, got, Family.DEB)
    assert has_drift(diff)
    gzip_e = next(e for e in expected if e.name == "gzip")
    assert diff.added == (BomEntry("heldpkg", "all", "2:0.9~rc1-3"),)
    assert diff.removed == (gzip_e,)
    assert diff.upgraded == (VersionChange("tar", "amd64", tar_old, tar_new),)
    assert diff.downgraded == ()

    # what real dpkg makes of the same file: it agrees on every installed package, and `dpkg-query -W`
    # does list the config-files package (abbrev `rc`), which is why it is filtered by state
    rows = dpkg_query(data, tmp_path)
    assert lines(got) == dpkg_installed(rows)
    assert ("oldpkg 1.0-1 amd64", "rc") in rows
    assert ("bash " + next(e.version for e in expected if e.name == "bash") + " amd64", "hi") in rows


def test_deb_states_that_do_not_count(minbase: bytes, tmp_path: Path) -> None:
    """Only unpacked-and-configured packages count; the dpkg journal (updates/) is applied like dpkg does."""
    st = stanzas(minbase)
    states = {"hostname": "install ok half-configured", "gzip": "install ok unpacked",
              "grep": "install reinstreq half-installed", "tar": "install ok triggers-pending",
              "dash": "deinstall ok installed", "diffutils": "purge ok not-installed"}
    changed = [set_field(s, "Status", states[s.name]) if s.name in states else s for s in st]
    # dpkg insists that a triggers-pending package names its pending triggers
    data = join([Stanza(s.name, s.text + "\nTriggers-Pending: ldconfig") if s.name == "tar" else s for s in changed])
    # the journal upgrades `sed` half-way and finishes `hostname`
    sed = next(s for s in st if s.name == "sed")
    host = next(s for s in st if s.name == "hostname")
    updates = {"0000": join([set_field(set_field(sed, "Version", "9.9-9"), "Status", "install ok half-configured")]),
               "0001": join([host]), "tmp.i": b"not a journal entry"}
    tar = make_tar(tmp_path / "rootfs.tar",
                   [("./var/lib/dpkg/status", data), *((f"./var/lib/dpkg/updates/{n}", d) for n, d in updates.items())])
    got = {e.name for e in installed_from_rootfs(tar, Family.DEB)}
    assert {"tar", "dash", "hostname"} <= got
    assert not {"gzip", "grep", "diffutils", "sed"} & got
    rows = dpkg_query(data, tmp_path, updates)  # dpkg itself ignores journal names that are not all digits
    assert lines(installed_from_rootfs(tar, Family.DEB)) == dpkg_installed(rows)


def test_installed_from_list(minbase: bytes, tmp_path: Path) -> None:
    oracle = [ln for ln, _ in dpkg_query(minbase, tmp_path)]
    shuffled = list(oracle)
    random.Random(7).shuffle(shuffled)
    captured = tmp_path / "installed.txt"
    captured.write_text("# dpkg-query -W -f '${Package} ${Version} ${Architecture}\\n'\n\n"
                        + "\n".join(shuffled[:40]) + "\n\n  \n" + "\n".join(shuffled[40:]) + "\n")
    assert lines(installed_from_list(captured)) == oracle
    status = tmp_path / "status"
    status.write_bytes(minbase)  # a copied dpkg status file is read as one
    assert lines(installed_from_list(status)) == oracle
    rpm_list = tmp_path / "rpm-qa.txt"
    rpm_list.write_text("bash 5.1.8-9.el9 x86_64\ngpg-pubkey 8783d481-63ceb953 (none)\ntar 2:1.34-6.el9_4.1 x86_64\n")
    assert lines(installed_from_list(rpm_list)) == ["bash 5.1.8-9.el9 x86_64", "tar 2:1.34-6.el9_4.1 x86_64"]


# -- bad inputs -----------------------------------------------------------------------------------------


def test_bad_rootfs_inputs(tmp_path: Path, minbase: bytes) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is not a tarball\n" * 50)
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    whole = make_tar(tmp_path / "whole.tar", [("./var/lib/dpkg/status", minbase)])
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(compress(whole.read_bytes(), "gz")[:5000])
    bad_zst = tmp_path / "bad.tar.zst"
    bad_zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\xff" * 100)
    cases = {text: "not a readable root filesystem tarball", empty: "not a readable root filesystem tarball",
             truncated: "not a readable root filesystem tarball", bad_zst: "not a readable root filesystem tarball",
             tmp_path / "missing.tar": "cannot read", tmp_path: "is a directory"}
    for path, msg in cases.items():
        with pytest.raises(ConfigError) as e:
            installed_from_rootfs(path, Family.DEB)
        assert str(path) in str(e.value) and msg in str(e.value), str(e.value)
        assert e.value.exit_code == 2


def test_tarball_without_package_db(tmp_path: Path, minbase: bytes) -> None:
    bare = make_tar(tmp_path / "bare.tar", [("./var/lib/apt/lists/lock", b""), ("./var/lib/rpm/README", b"x")])
    for family, what in ((Family.DEB, "no /var/lib/dpkg/status"), (Family.RPM, "no rpm database")):
        with pytest.raises(ConfigError, match=what) as e:
            installed_from_rootfs(bare, family)
        assert str(bare) in str(e.value)
    deb = make_tar(tmp_path / "deb.tar", [("./var/lib/dpkg/status", minbase)])
    with pytest.raises(ConfigError, match="it has a dpkg status file: is this a deb image"):
        installed_from_rootfs(deb, Family.RPM)
    rpm = make_tar(tmp_path / "rpm.tar", [("./var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0")])
    with pytest.raises(ConfigError, match="it has an rpm database: is this an rpm image"):
        installed_from_rootfs(rpm, Family.DEB)


def test_bad_dpkg_status(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "rootfs.tar", [("./var/lib/dpkg/status", b"Package: a\nStatus: installed\n")])
    with pytest.raises(ConfigError, match=r"rootfs.tar:/var/lib/dpkg/status: package a: bad Status"):
        installed_from_rootfs(tar, Family.DEB)
    tar = make_tar(tmp_path / "rootfs2.tar", [("./var/lib/dpkg/status", b"just some text\nmore\n")])
    with pytest.raises(ConfigError, match="rootfs2.tar:/var/lib/dpkg/status: not a dpkg status file"):
        installed_from_rootfs(tar, Family.DEB)


def test_bad_list_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.txt: cannot read"):
        installed_from_list(tmp_path / "missing.txt")
    binary = make_tar(tmp_path / "rootfs.tar", [])
    with pytest.raises(ConfigError, match=r"rootfs.tar: binary data.*--rootfs"):
        installed_from_list(binary)
    bad = tmp_path / "bad.txt"
    bad.write_text("bash 5.2.15-2+b2 amd64\nlibc6  amd64\n")  # dpkg-query's line for a package without version
    with pytest.raises(ConfigError, match=r"bad.txt:2: expected `name version arch`"):
        installed_from_list(bad)


def test_missing_rpm_binary_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = make_tar(tmp_path / "rootfs.tar", [("./var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0")])
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a host without rpm
    with pytest.raises(ConfigError, match=r"rootfs.tar: reading its rpm database needs `rpm`") as e:
        installed_from_rootfs(tar, Family.RPM)
    assert e.value.hint is not None and "apt-get install rpm" in e.value.hint


@pytest.mark.skipif(shutil.which("rpm") is None, reason="needs the host's rpm (apt-get install rpm)")
def test_corrupt_rpmdb(tmp_path: Path) -> None:
    for db in ("rpmdb.sqlite", "Packages"):
        tar = make_tar(tmp_path / f"{db}.tar", [(f"./var/lib/rpm/{db}", bytes(range(256)) * 20)])
        with pytest.raises(ConfigError, match=rf"{db}.tar:/var/lib/rpm: rpm cannot read this database"):
            installed_from_rootfs(tar, Family.RPM)


# -- rpm: a real rpmdb written by dnf -------------------------------------------------------------------

_rpm_why = (missing_tools() and f"needs {' '.join(missing_tools())} to build RPMs") or dnf_oracle.missing()
needs_dnf = pytest.mark.skipif(bool(_rpm_why), reason=str(_rpm_why))


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(key: bytes) -> str:
    """ASCII armor (RFC 4880 §6) of a binary OpenPGP public key: `rpm --import` takes armored keys only."""
    b64 = base64.b64encode(key).decode()
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    crc = base64.b64encode(_crc24(key).to_bytes(3, "big")).decode()
    return f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{body}\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----\n"


@dataclass(frozen=True)
class RpmImage:
    root: Path
    env: dict[str, str]  # HOME with an .rpmmacros putting the rpmdb at /var/lib/rpm, as on Rocky 9
    rpm_qa: list[str]  # `rpm --root ROOT -qa` of the live root, sorted, gpg-pubkey included
    key_imported: bool


@pytest.fixture(scope="module")
def rpm_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpmImage]:
    if _rpm_why:
        pytest.skip(str(_rpm_why))
    repos = build_rpm_repos(tmp_path_factory.getbasetemp() / "rpmrepos")
    work = tmp_path_factory.mktemp("verify-rpm")
    home = work / "home"
    home.mkdir()
    # Debian's rpm keeps its database in ~/.rpmdb (%_dbpath); an EL9 image has it in /var/lib/rpm
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
    env = {**C_ENV, "HOME": str(home)}
    conf = work / "dnf.conf"
    conf.write_text(dnf_oracle.DNF_CONF)
    root = work / "root"
    root.mkdir()
    cmd = ["dnf", f"--config={conf}", f"--installroot={root}", "--releasever=9", "--forcearch=x86_64",
           "--setopt=reposdir=/dev/null", f"--setopt=cachedir={work / 'cache'}", "--setopt=install_weak_deps=False",
           "--disableplugin=*", "--nodocs", "--nogpgcheck",
           *(f"--repofrompath={rid},file://{repos[rid]}" for rid in ("baseos", "appstream")),
           "-y", "install", "bash", "tar", "environment-modules"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (root / "var/lib/rpm/rpmdb.sqlite").is_file()
    keys = sorted(Path("/usr/share/keyrings").glob("debian-archive-*-stable.gpg"))
    if keys:
        key = work / "key.asc"
        key.write_text(armor(keys[0].read_bytes()))
        subprocess.run(["rpm", "--root", str(root), "--import", str(key)], check=True, env=env, capture_output=True)
    out = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME} %{EVR} %{ARCH}\\n"],
                         capture_output=True, text=True, check=True, env=env).stdout
    yield RpmImage(root, env, sorted(ln for ln in out.splitlines() if ln.strip()), bool(keys))


@needs_dnf
def test_rpm_rootfs_equals_rpm_qa(rpm_image: RpmImage, tmp_path: Path) -> None:
    tar = tar_tree(rpm_image.root, tmp_path / "rootfs.tar.gz")
    got = installed_from_rootfs(tar, Family.RPM)
    expected = [ln for ln in rpm_image.rpm_qa if not ln.startswith("gpg-pubkey ")]
    assert lines(got) == expected
    names = {e.name for e in got}
    assert {"bash", "tar", "environment-modules", "tcl", "glibc"} <= names
    assert any(e.version.startswith("2:") for e in got if e.name == "tar")  # EVR carries the epoch
    bom = parse_bom("\n".join(expected), "rpm -qa")
    assert not has_drift(compare(bom, got, Family.RPM))
    # the lock says an older tar and has a package the image lacks
    lock = [BomEntry(e.name, e.arch, "2:1.34-1.el9") if e.name == "tar" else e for e in bom]
    lock.append(BomEntry("kmod", "x86_64", "28-9.el9"))
    diff = compare(lock, got, Family.RPM)
    assert has_drift(diff)
    assert diff.removed == (BomEntry("kmod", "x86_64", "28-9.el9"),) and diff.added == () and diff.downgraded == ()
    assert [(c.name, c.old) for c in diff.upgraded] == [("tar", "2:1.34-1.el9")]


@needs_dnf
def test_rpm_gpg_pubkey_is_not_a_package(rpm_image: RpmImage, tmp_path: Path) -> None:
    if not rpm_image.key_imported:
        pytest.skip("no Debian archive key in /usr/share/keyrings to import")
    pubkeys = [ln for ln in rpm_image.rpm_qa if ln.startswith("gpg-pubkey ")]
    assert len(pubkeys) == 1
    name, evr, arch = pubkeys[0].split()
    assert arch == "(none)" and len(evr.split("-")) == 2  # `gpg-pubkey <keyid>-<created, hex> (none)`
    got = installed_from_rootfs(tar_tree(rpm_image.root, tmp_path / "rootfs.tar.gz"), Family.RPM)
    assert "gpg-pubkey" not in {e.name for e in got}


@needs_dnf
def test_rpm_usr_lib_sysimage_layout(rpm_image: RpmImage, tmp_path: Path) -> None:
    """Fedora >= 36 / EL10: the db in /usr/lib/sysimage/rpm, /var/lib/rpm a symlink to it."""

    def move(rel: str) -> str | None:
        if rel == "var/lib/rpm":
            return None
        if rel.startswith("var/lib/rpm/"):
            return "usr/lib/sysimage/rpm/" + rel[len("var/lib/rpm/"):]
        return rel

    tar = tar_tree(rpm_image.root, tmp_path / "rootfs.tar.gz", move,
                   extra=[("./var/lib/rpm", "sym", "../../usr/lib/sysimage/rpm")])
    want = [ln for ln in rpm_image.rpm_qa if not ln.startswith("gpg-pubkey ")]
    assert lines(installed_from_rootfs(tar, Family.RPM)) == want


@needs_dnf
def test_rpm_two_databases_follow_the_images_dbpath(rpm_image: RpmImage, tmp_path: Path) -> None:
    """A stale empty db in /var/lib/rpm and the real one in /usr/lib/sysimage/rpm: the image's macros decide."""
    stale = tmp_path / "stale"
    stale.mkdir()
    subprocess.run(["rpm", "--dbpath", str(stale), "--initdb"], check=True, env=rpm_image.env, capture_output=True)
    stale_members: list[Member] = [(f"./var/lib/rpm/{p.name}", p.read_bytes()) for p in stale.iterdir() if p.is_file()]

    def move(rel: str) -> str | None:
        if rel == "var/lib/rpm" or rel.startswith("var/lib/rpm/"):
            return "usr/lib/sysimage/rpm" + rel[len("var/lib/rpm"):]
        return rel

    macros: list[Member] = [("./usr/lib/rpm/macros", b"%_var\t/var\n%_dbpath\t\t%{_usr}/lib/sysimage/rpm\n")]
    want = [ln for ln in rpm_image.rpm_qa if not ln.startswith("gpg-pubkey ")]
    tar = tar_tree(rpm_image.root, tmp_path / "both.tar.gz", move, extra=[*stale_members, *macros])
    assert lines(installed_from_rootfs(tar, Family.RPM)) == want
    undecided = tar_tree(rpm_image.root, tmp_path / "undecided.tar.gz", move, extra=stale_members)
    with pytest.raises(ConfigError, match="undecided.tar.gz: rpm databases in both"):
        installed_from_rootfs(undecided, Family.RPM)


@needs_dnf
def test_rpm_uncheckpointed_wal_is_read(rpm_image: RpmImage, tmp_path: Path) -> None:
    """An image tarred while its rpmdb was open: the last transaction is still only in rpmdb.sqlite-wal."""
    import sqlite3

    root = tmp_path / "root"
    shutil.copytree(rpm_image.root, root, symlinks=True)
    db = root / "var/lib/rpm"
    reader = sqlite3.connect(db / "rpmdb.sqlite")  # an open read snapshot keeps rpm from checkpointing the WAL
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM Packages").fetchone()
        subprocess.run(["rpm", "--dbpath", str(db), "-e", "--justdb", "--nodeps", "tar"], check=True,
                       env=rpm_image.env, capture_output=True)
        assert (db / "rpmdb.sqlite-wal").stat().st_size > 0
        with_wal = tar_tree(root, tmp_path / "with-wal.tar.gz")
        without_wal = tar_tree(root, tmp_path / "without-wal.tar.gz",
                               lambda rel: None if rel.endswith(("-wal", "-shm")) else rel)
    finally:
        reader.close()
    assert "tar" not in {e.name for e in installed_from_rootfs(with_wal, Family.RPM)}
    assert "tar" in {e.name for e in installed_from_rootfs(without_wal, Family.RPM)}  # the WAL is what differs
