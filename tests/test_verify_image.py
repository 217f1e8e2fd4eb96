"""imagebuild.verify.installed_from_image: the installed set of a container image archive.

Hand-built OCI layouts and docker-archives (index.json, manifests and blobs written here with hashlib and
tarfile) for the layering rules, whiteouts, digests and bad inputs; an rpm image whose rpmdb real `dnf
--installroot` wrote (the fixture of tests/test_verify.py); and archives that real `podman save` / `podman
push` wrote, of images that real `podman import` and `podman build` (COPY, RUN rm: real whiteouts) made.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_verify  # noqa: E402
from test_verify import C_ENV, RpmImage, compress, lines, needs_dnf  # noqa: E402

from imagebuild.bom import BomEntry  # noqa: E402
from imagebuild.config import Family  # noqa: E402
from imagebuild.errors import ConfigError  # noqa: E402
from imagebuild.verify import installed_from_image, installed_from_rootfs  # noqa: E402

rpm_image = test_verify.rpm_image  # the module fixture: a real rpmdb written by dnf --installroot

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
STATUS = "var/lib/dpkg/status"

Member = tuple[str, bytes] | tuple[str, str, str]  # (name, data) file; (name, "sym"|"hard"|"dir", target) other
Descriptor = dict[str, object]


# -- building archives ----------------------------------------------------------------------------------


def stanza(name: str, version: str, arch: str = "amd64", status: str = "install ok installed") -> bytes:
    return (f"Package: {name}\nStatus: {status}\nPriority: optional\nMaintainer: x <x@example.org>\n"
            f"Architecture: {arch}\nVersion: {version}\nDescription: {name}\n").encode()


def status(*stanzas: bytes) -> bytes:
    return b"\n".join(stanzas)


BASE = status(stanza("bash", "5.2.15-2+b7"), stanza("tar", "1.34+dfsg-1.2"), stanza("tzdata", "2024a-0+deb12u1", "all"))
BASE_LINES = ["bash 5.2.15-2+b7 amd64", "tar 1.34+dfsg-1.2 amd64", "tzdata 2024a-0+deb12u1 all"]


def tar_bytes(members: Sequence[Member]) -> bytes:
    """A layer tar of in-memory members, with the parent directories a layer has and an unrelated file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = sorted({"/".join(m[0].split("/")[:i]) for m in members for i in range(1, m[0].count("/") + 1)})
        for name, *rest in [*((d, "dir", "") for d in dirs), ("etc/hostname", b"node\n"), *members]:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if len(rest) == 1:
                assert isinstance(rest[0], bytes)
                ti.size = len(rest[0])
                tf.addfile(ti, io.BytesIO(rest[0]))
                continue
            kind, target = rest
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[str(kind)]
            ti.mode = 0o755
            ti.linkname = str(target)
            tf.addfile(ti)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


class Oci:
    """An OCI image layout being written: blobs by digest, then index.json over some of them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def blob(self, data: bytes, media_type: str, **extra: object) -> Descriptor:
        digest = sha256(data)
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def layer(self, members: Sequence[Member], compression: str = "gz") -> Descriptor:
        suffix = {"": "", "gz": "+gzip", "zst": "+zstd"}[compression]
        return self.blob(compress(tar_bytes(members), compression), OCI_LAYER + suffix)

    def image(self, layers: Sequence[Descriptor], platform: dict[str, str] | None = None) -> Descriptor:
        config = self.blob(json.dumps({"architecture": (platform or {}).get("architecture", "amd64"), "os": "linux",
                                       "rootfs": {"type": "layers", "diff_ids": []}}).encode(), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": list(layers)}
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST, **({"platform": platform} if platform else {}))

    def index(self, manifests: Sequence[Descriptor]) -> Descriptor:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(manifests)}
        return self.blob(json.dumps(doc).encode(), OCI_INDEX)

    def write(self, path: Path, manifests: Sequence[Descriptor], drop: Sequence[str] = ()) -> Path:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(manifests)}
        with tarfile.open(path, "w") as tf:
            put(tf, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            put(tf, "index.json", json.dumps(index).encode())
            for digest, data in self.blobs.items():
                if digest not in drop:
                    put(tf, "blobs/sha256/" + digest.removeprefix("sha256:"), data)
        return path


def oci(path: Path, *layers: Sequence[Member], compression: str = "gz") -> Path:
    """A single-image OCI archive of these layers (bottom first)."""
    o = Oci()
    return o.write(path, [o.image([o.layer(m, compression) for m in layers])])


def docker_archive(path: Path, *layers: Sequence[Member], damage: int | None = None) -> Path:
    """A docker-archive as podman writes it: HEX.tar layers (the last one also reached through a symlink
    `ID/layer.tar`, as podman adds), a HEX.json config with their diff_ids, manifest.json; `damage` flips a
    byte of that layer after its diff_id was taken."""
    tars = [tar_bytes(m) for m in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]}}).encode()
    config_name = sha256(config).removeprefix("sha256:") + ".json"
    names = [sha256(t).removeprefix("sha256:") + ".tar" for t in tars]
    if damage is not None:
        bad = bytearray(tars[damage])
        bad[tars[damage].index(b"Package:")] ^= 0x20  # `package:`: the tar still reads, the digest differs
        tars[damage] = bytes(bad)
    with tarfile.open(path, "w") as tf:
        for name, data in zip(names, tars, strict=True):
            put(tf, name, data)
        put(tf, config_name, config)
        link = tarfile.TarInfo("0123abcd/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../" + names[-1]
        tf.addfile(link)
        put(tf, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["localhost/x:1"],
                                               "Layers": [*names[:-1], "0123abcd/layer.tar"]}]).encode())
    return path


def deb(path: Path, arch: str | None = None) -> list[str]:
    return lines(installed_from_image(path, Family.DEB, arch))


# -- layers and whiteouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
def test_top_layer_changes_a_version(tmp_path: Path, compression: str) -> None:
    upgraded = status(stanza("bash", "5.2.15-2+b8"), stanza("tar", "1.34+dfsg-1.2"),
                      stanza("tzdata", "2024a-0+deb12u1", "all"), stanza("jq", "1.6-2.1", "amd64"))
    image = oci(tmp_path / "image.tar", [(STATUS, BASE), ("usr/bin/bash", b"\x7fELF" + b"\0" * 4000)],
                [(STATUS, upgraded)], compression=compression)
    assert deb(image) == ["bash 5.2.15-2+b8 amd64", "jq 1.6-2.1 amd64", *BASE_LINES[1:]]
    assert deb(oci(tmp_path / "base.tar", [(STATUS, BASE)], compression=compression)) == BASE_LINES


def test_zstd_of_several_frames(tmp_path: Path) -> None:
    """zstd:chunked layers (and pzstd) are many zstd frames, with skippable frames among them: all are read."""
    import zstandard

    data = tar_bytes([(STATUS, BASE)])
    cut = data.index(b"Package: tar")
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"meta"
    first, second = (zstandard.ZstdCompressor().compress(part) for part in (data[:cut], data[cut:]))
    o = Oci()
    blob = o.blob(first + skippable + second + skippable, OCI_LAYER + "+zstd")
    assert deb(o.write(tmp_path / "image.tar", [o.image([blob])])) == BASE_LINES
    rootfs = tmp_path / "rootfs.tar.zst"
    rootfs.write_bytes(first + second)
    assert lines(installed_from_rootfs(rootfs, Family.DEB)) == BASE_LINES


def test_whiteout_deletes_the_status_file(tmp_path: Path) -> None:
    image = oci(tmp_path / "image.tar", [(STATUS, BASE)], [("var/lib/dpkg/.wh.status", b"")])
    with pytest.raises(ConfigError, match=r"image.tar: no /var/lib/dpkg/status in the image") as e:
        installed_from_image(image, Family.DEB)
    assert e.value.exit_code == 2 and e.value.hint is not None and "Debian/Ubuntu" in e.value.hint
    # a whiteout of a directory deletes its tree; a later layer may bring it back
    gone = [("var/lib/.wh.dpkg", b"")]
    with pytest.raises(ConfigError, match="no /var/lib/dpkg/status"):
        installed_from_image(oci(tmp_path / "dir.tar", [(STATUS, BASE)], gone), Family.DEB)
    back = oci(tmp_path / "back.tar", [(STATUS, status(stanza("old", "1")))], gone, [(STATUS, BASE)])
    assert deb(back) == BASE_LINES


@pytest.mark.parametrize("whiteout_first", [True, False])
def test_whiteout_spares_its_own_layer(tmp_path: Path, whiteout_first: bool) -> None:
    """A whiteout hides the layers below only: the status the same layer has (before or after it) stays."""
    top: list[Member] = [("var/lib/dpkg/.wh.status", b""), (STATUS, BASE)]
    image = oci(tmp_path / "image.tar", [(STATUS, status(stanza("old", "1")))], top if whiteout_first else top[::-1])
    assert deb(image) == BASE_LINES


def test_opaque_directory(tmp_path: Path) -> None:
    """`.wh..wh..opq` empties its directory of what the lower layers had, not of what its own layer has."""
    journal = status(stanza("tar", "9.9-9"))  # an interrupted dpkg's journal would upgrade tar
    lower = [(STATUS, BASE), ("var/lib/dpkg/updates/0001", journal)]
    assert "tar 9.9-9 amd64" in deb(oci(tmp_path / "lower.tar", lower))
    cleared = oci(tmp_path / "cleared.tar", lower, [("var/lib/dpkg/updates/.wh..wh..opq", b"")])
    assert deb(cleared) == BASE_LINES
    # opaque var/lib/dpkg: the lower status and journal are gone, the status beside the marker is read
    mine = status(stanza("bash", "5.2.15-2+b8"))
    replaced = oci(tmp_path / "replaced.tar", lower, [(STATUS, mine), ("var/lib/dpkg/.wh..wh..opq", b"")])
    assert deb(replaced) == ["bash 5.2.15-2+b8 amd64"]


def test_symlinks_and_hard_links_across_layers(tmp_path: Path) -> None:
    """A lower layer's status file under a directory that an upper layer replaces with a symlink (the old tree
    goes), the status there a hard link within its layer; a link keeps its own layer's content."""
    newer = status(stanza("bash", "5.2.15-2+b8"))
    image = oci(tmp_path / "image.tar",
                [(STATUS, status(stanza("old", "1")))],
                [("var/lib/dpkg", "sym", "../../srv/dpkg"), ("srv/dpkg/status.real", BASE),
                 ("srv/dpkg/status", "hard", "srv/dpkg/status.real")],
                [("srv/dpkg/status.real", newer)])  # a new file at the link's target: the link still has BASE
    assert deb(image) == BASE_LINES
    # an absolute symlink, followed inside the image root; the upper layer writes through it
    absolute = oci(tmp_path / "absolute.tar", [("var/lib/dpkg", "sym", "/srv/dpkg")], [("srv/dpkg/status", newer)])
    assert deb(absolute) == ["bash 5.2.15-2+b8 amd64"]
    # a file where a lower layer had a directory: the directory's tree is gone
    flattened = oci(tmp_path / "flattened.tar", [("srv/dpkg/status", BASE), ("var/lib/dpkg", "sym", "/srv/dpkg")],
                    [("srv/dpkg", b"a file now")])
    with pytest.raises(ConfigError, match="flattened.tar: no /var/lib/dpkg/status in the image"):
        installed_from_image(flattened, Family.DEB)


@pytest.mark.skipif(shutil.which("rpm") is None, reason="needs the host's rpm (apt-get install rpm)")
def test_rpm_initdb_behind_a_symlink(tmp_path: Path) -> None:
    """An empty rpmdb that real `rpm --initdb` wrote, in /usr/lib/sysimage/rpm with /var/lib/rpm a symlink to it
    in another layer: read (no packages), not `no rpm database`."""
    db = tmp_path / "db"
    db.mkdir()
    subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True, env=C_ENV, capture_output=True)
    files: list[Member] = [(f"usr/lib/sysimage/rpm/{p.name}", p.read_bytes()) for p in db.iterdir() if p.is_file()]
    assert files
    image = oci(tmp_path / "image.tar", files, [("var/lib/rpm", "sym", "../../usr/lib/sysimage/rpm")])
    assert installed_from_image(image, Family.RPM) == []
    with pytest.raises(ConfigError, match="it has an rpm database: is this an rpm image"):
        installed_from_image(image, Family.DEB)
    gone = oci(tmp_path / "gone.tar", files, [("usr/lib/sysimage/.wh.rpm", b"")])
    with pytest.raises(ConfigError, match=r"gone.tar: no rpm database \(/var/lib/rpm or /usr/lib/sysimage/rpm\)"):
        installed_from_image(gone, Family.RPM)


def _tree_members(root: Path, rename: dict[str, str]) -> list[Member]:
    out: list[Member] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        for old, new in rename.items():
            if rel == old or rel.startswith(old + "/"):
                rel = new + rel[len(old):]
        if p.is_symlink():
            out.append((rel, "sym", str(p.readlink())))
        elif p.is_file():
            out.append((rel, p.read_bytes()))
    return out


@needs_dnf
def test_rpm_image_from_dnf(rpm_image: RpmImage, tmp_path: Path) -> None:
    """A Fedora-style image of two layers: the root dnf installed (rpmdb in /usr/lib/sysimage/rpm, /var/lib/rpm
    a symlink), then a layer whose rpmdb no longer has tar (`rpm -e --justdb`)."""
    want = [ln for ln in rpm_image.rpm_qa if not ln.startswith("gpg-pubkey ")]
    base = _tree_members(rpm_image.root, {"var/lib/rpm": "usr/lib/sysimage/rpm"})
    base.append(("var/lib/rpm", "sym", "../../usr/lib/sysimage/rpm"))
    o = Oci()
    bottom = o.layer(base, "zst")
    assert lines(installed_from_image(o.write(tmp_path / "one.tar", [o.image([bottom])]), Family.RPM)) == want

    root = tmp_path / "root"
    shutil.copytree(rpm_image.root, root, symlinks=True)
    subprocess.run(["rpm", "--dbpath", str(root / "var/lib/rpm"), "-e", "--justdb", "--nodeps", "tar"], check=True,
                   env=rpm_image.env, capture_output=True)
    top = o.layer([m for m in _tree_members(root, {"var/lib/rpm": "usr/lib/sysimage/rpm"})
                   if m[0].startswith("usr/lib/sysimage/rpm/")])
    got = lines(installed_from_image(o.write(tmp_path / "two.tar", [o.image([bottom, top])]), Family.RPM))
    assert got == [ln for ln in want if not ln.startswith("tar ")] and len(got) == len(want) - 1


# -- docker-archive, manifests, digests -----------------------------------------------------------------


def test_docker_archive(tmp_path: Path) -> None:
    upgraded = status(stanza("bash", "5.2.15-2+b8"))
    image = docker_archive(tmp_path / "docker.tar", [(STATUS, BASE)], [(STATUS, upgraded)])
    assert deb(image) == ["bash 5.2.15-2+b8 amd64"]
    assert deb(docker_archive(tmp_path / "one.tar", [(STATUS, BASE)])) == BASE_LINES
    with pytest.raises(ConfigError) as e:
        installed_from_image(docker_archive(tmp_path / "bad.tar", [(STATUS, BASE)], [(STATUS, upgraded)], damage=1),
                             Family.DEB)
    assert "bad.tar: blob 0123abcd/layer.tar is damaged: expected digest sha256:" in str(e.value)


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
def test_damaged_layer_blob(tmp_path: Path, compression: str) -> None:
    o = Oci()
    layer = o.layer([(STATUS, BASE)], compression)
    manifest = o.image([layer])
    digest = str(layer["digest"])
    good = o.blobs[digest]
    bad = bytearray(good)
    at = good.index(b"Package:") if not compression else len(good) // 2
    bad[at] ^= 0x20
    o.blobs[digest] = bytes(bad)
    with pytest.raises(ConfigError) as e:
        installed_from_image(o.write(tmp_path / "image.tar", [manifest]), Family.DEB)
    name = "blobs/sha256/" + digest.removeprefix("sha256:")
    assert f"image.tar: blob {name} is damaged: expected digest {digest}, got {sha256(bytes(bad))}" in str(e.value)
    # a damaged manifest too
    o.blobs[digest] = good
    o.blobs[str(manifest["digest"])] += b" "
    with pytest.raises(ConfigError, match=r"is damaged: expected digest"):
        installed_from_image(o.write(tmp_path / "manifest.tar", [manifest]), Family.DEB)


def _platform(arch: str, os: str = "linux", **more: str) -> dict[str, str]:
    return {"architecture": arch, "os": os, **more}


def test_multi_platform_index_by_arch(tmp_path: Path) -> None:
    """index.json -> a nested image index -> amd64, arm64 and an attestation (unknown/unknown) manifest."""
    o = Oci()
    amd = o.image([o.layer([(STATUS, status(stanza("bash", "1", "amd64")))])], _platform("amd64"))
    arm = o.image([o.layer([(STATUS, status(stanza("bash", "1", "arm64")))])], _platform("arm64", variant="v8"))
    attestation = o.blob(b"{}", OCI_MANIFEST, platform=_platform("unknown", "unknown"))
    index = o.index([amd, arm, attestation])
    image = o.write(tmp_path / "multi.tar", [{**index, "annotations": {"org.opencontainers.image.ref.name": "1"}}])
    for arch, want in (("amd64", "amd64"), ("x86_64", "amd64"), ("arm64", "arm64"), ("aarch64", "arm64")):
        assert deb(image, arch) == [f"bash 1 {want}"]
    with pytest.raises(ConfigError, match=r"multi.tar: index.json: 2 image manifests \(linux/amd64, linux/arm64/v8\) "
                                          r"and no architecture"):
        installed_from_image(image, Family.DEB)
    with pytest.raises(ConfigError, match=r"no image manifest for ppc64el among linux/amd64, linux/arm64/v8"):
        installed_from_image(image, Family.DEB, "ppc64el")
    # one manifest: taken whatever arch is asked for, unless its platform says another one
    plain = o.write(tmp_path / "plain.tar", [o.image([o.layer([(STATUS, BASE)])])])
    assert deb(plain, "aarch64") == BASE_LINES
    with pytest.raises(ConfigError, match=r"arm.tar: index.json: the image is for linux/arm64/v8, not x86_64"):
        installed_from_image(o.write(tmp_path / "arm.tar", [arm]), Family.DEB, "x86_64")
    # two images of one arch (another OS beside linux is passed over)
    win = o.image([o.layer([])], _platform("amd64", "windows"))
    assert deb(o.write(tmp_path / "win.tar", [amd, win]), "amd64") == ["bash 1 amd64"]
    with pytest.raises(ConfigError, match=r"2 image manifests for amd64 .*cannot tell which"):
        installed_from_image(o.write(tmp_path / "twice.tar", [amd, {**amd, "digest": win["digest"]}]), Family.DEB,
                             "amd64")


def test_layers_are_streamed(tmp_path: Path) -> None:
    """A 48 MiB file in a plain layer and in a gzip one: memory stays far below it (nothing held whole)."""
    big = ("usr/lib/big.so", bytes(48 << 20))
    image = oci(tmp_path / "plain.tar", [big, (STATUS, BASE)], compression="")
    image_gz = oci(tmp_path / "gz.tar", [big], [(STATUS, BASE)], compression="gz")
    del big
    for path in (image, image_gz):
        tracemalloc.start()
        try:
            assert deb(path) == BASE_LINES
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 12 << 20, f"{path.name}: peak {peak >> 20} MiB"


# -- bad inputs -----------------------------------------------------------------------------------------


def test_bad_archives(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n" * 100)
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(tar_bytes([(STATUS, BASE)]))
    assert lines(installed_from_rootfs(rootfs, Family.DEB)) == BASE_LINES  # fine as a rootfs, not as an image
    o = Oci()
    layer = o.layer([(STATUS, BASE)])
    good = o.image([layer])
    missing_layer = o.write(tmp_path / "missing-layer.tar", [good], drop=[str(layer["digest"])])
    absent = sha256(b"absent")
    missing_manifest = o.write(tmp_path / "missing-manifest.tar", [{**good, "digest": absent}])
    foreign = Oci()
    weird_layer = foreign.blob(b"...", "application/vnd.oci.image.layer.v1.tar+encrypted")
    foreign_image = foreign.write(tmp_path / "foreign.tar", [foreign.image([weird_layer])])
    helm = foreign.blob(b"{}", "application/vnd.cncf.helm.config.v1+json")
    artifact = foreign.write(tmp_path / "artifact.tar", [helm])
    bad_digest = foreign.write(tmp_path / "digest.tar", [{**good, "digest": "md5:abc"}])
    no_list = tmp_path / "no-list.tar"
    with tarfile.open(no_list, "w") as tf:
        put(tf, "index.json", b'{"schemaVersion": 2}')
    two = tmp_path / "two.tar"
    with tarfile.open(two, "w") as tf:
        put(tf, "manifest.json", json.dumps([{"RepoTags": ["a:1"]}, {"RepoTags": ["b:1"]}]).encode())
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(oci(tmp_path / "whole.tar", [(STATUS, BASE)]).read_bytes()[:3000])
    cases = {
        text: "not a container image archive (not a tar)",
        tmp_path / "missing.tar": "cannot read the container image archive: No such file",
        tmp_path: "is a directory, not a container image archive",
        rootfs: "it has neither index.json (OCI layout) nor manifest.json (docker-archive)",
        missing_layer: "layer 1 of 1 (sha256:",
        missing_manifest: f"image manifest {absent} is missing: the archive has no file blobs/sha256/{absent[7:]}",
        foreign_image: "layer 1 (sha256:",
        artifact: "index.json lists no image manifest (only application/vnd.cncf.helm.config.v1+json)",
        bad_digest: "bad digest 'md5:abc'",
        no_list: "index.json: 'manifests' is missing or not a list",
        two: "manifest.json: 2 images (a:1, b:1): cannot tell which one to read",
        truncated: "truncated.tar: ",
    }
    for path, msg in cases.items():
        with pytest.raises(ConfigError) as e:
            installed_from_image(path, Family.DEB)
        assert str(e.value).startswith(f"{path}: ") and msg in str(e.value), str(e.value)
        assert e.value.exit_code == 2 and (e.value.hint or "cannot read" in msg)
    with pytest.raises(ConfigError) as e:
        installed_from_image(rootfs, Family.DEB)
    assert e.value.hint is not None and "--rootfs" in e.value.hint
    with pytest.raises(ConfigError, match="is missing: the archive has no file blobs/sha256/"):
        installed_from_image(missing_layer, Family.DEB)
    with pytest.raises(ConfigError, match=r"unknown media type 'application/vnd.oci.image.layer.v1.tar\+encrypted'"):
        installed_from_image(foreign_image, Family.DEB)


# -- real podman ----------------------------------------------------------------------------------------

needs_podman = pytest.mark.skipif(shutil.which("podman") is None,
                                  reason="needs podman (scripts/setup.sh --test installs it)")


class Podman:
    """podman with its own storage (vfs) in a short temp dir: its runroot path must stay under ~50 characters."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.base = ["podman", "--root", str(top / "storage"), "--runroot", str(top / "run"), "--storage-driver", "vfs"]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, env=C_ENV, timeout=300,
                              check=False, stdin=subprocess.DEVNULL)

    def ok(self, *args: str) -> str:
        res = self(*args)
        assert res.returncode == 0, f"podman {' '.join(args)}: {res.stderr}"
        return res.stdout


@pytest.fixture()
def podman() -> Iterator[Podman]:
    top = Path(tempfile.mkdtemp(prefix="ib-pm-", dir="/tmp"))
    try:
        yield Podman(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def rootfs_tar(path: Path, members: Sequence[Member], shell: bool = False) -> Path:
    """A tiny root filesystem tarball; with `shell`, the host's dash as /bin/sh, its rm and their libraries,
    so that `podman build` can RUN in it."""
    files = list(members)
    if shell:
        libs: set[str] = set()
        for host, inside in (("/bin/dash", "bin/sh"), ("/bin/rm", "bin/rm")):
            files.append((inside, Path(host).read_bytes()))
            # without LD_PRELOAD: under .ci/run's fake clock, ldd would list libfaketime as `/usr/$LIB/…`
            env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
            out = subprocess.run(["ldd", host], capture_output=True, text=True, check=True, env=env).stdout
            libs |= {p for ln in out.splitlines() for p in ln.split() if p.startswith("/") and Path(p).is_file()}
        files += [(lib.lstrip("/"), Path(lib).read_bytes()) for lib in sorted(libs)]
    data = tar_bytes(files)
    if shell:  # the binaries must be executable
        with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(path, "w") as dst:
            for m in src:
                m.mode = 0o755
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        return path
    path.write_bytes(data)
    return path


@needs_podman
def test_podman_oci_and_docker_archives(podman: Podman, tmp_path: Path) -> None:
    journal = status(stanza("tar", "9.9-9"))
    podman.ok("import", str(rootfs_tar(tmp_path / "rootfs.tar", [(STATUS, BASE), ("var/lib/dpkg/updates/0001",
                                                                                 journal)])), "localhost/x:1")
    want = ["bash 5.2.15-2+b7 amd64", "tar 9.9-9 amd64", "tzdata 2024a-0+deb12u1 all"]
    for fmt in ("oci-archive", "docker-archive"):
        out = tmp_path / f"{fmt}.tar"
        podman.ok("save", "--format", fmt, "-o", str(out), "localhost/x:1")
        assert deb(out) == want, fmt
        assert deb(out, "x86_64") == want
    # a second layer (COPY needs no container runtime), saved as oci-archive, and pushed with zstd layers
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "status").write_bytes(status(stanza("bash", "5.2.15-2+b8")))
    (ctx / "Containerfile").write_text("FROM localhost/x:1\nCOPY status /var/lib/dpkg/status\n")
    podman.ok("build", "--network", "none", "-t", "localhost/x:2", str(ctx))
    want2 = ["bash 5.2.15-2+b8 amd64", "tar 9.9-9 amd64"]
    podman.ok("save", "--format", "oci-archive", "-o", str(tmp_path / "two.tar"), "localhost/x:2")
    assert deb(tmp_path / "two.tar") == want2
    for compression in ("zstd", "zstd:chunked"):  # zstd:chunked: many frames, a skippable one with its TOC
        out = tmp_path / f"{compression.replace(':', '-')}.tar"  # a colon would start a tag
        podman.ok("push", "--compression-format", compression, "localhost/x:2", f"oci-archive:{out}")
        with tarfile.open(out) as tf:
            index = json.load(tf.extractfile("index.json"))
            manifest = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
        assert {layer["mediaType"] for layer in manifest["layers"]} == {OCI_LAYER + "+zstd"}
        assert deb(out) == want2, compression
    podman.ok("save", "--format", "docker-archive", "-o", str(tmp_path / "two-docker.tar"), "localhost/x:2")
    assert deb(tmp_path / "two-docker.tar") == want2


@needs_podman
def test_podman_whiteouts(podman: Podman, tmp_path: Path) -> None:
    """`RUN rm` in a real build: podman writes the whiteouts (`.wh.0001`, `.wh.status`)."""
    podman.ok("import", str(rootfs_tar(tmp_path / "rootfs.tar", [(STATUS, BASE), ("var/lib/dpkg/updates/0001",
                                                                                 status(stanza("tar", "9.9-9")))],
                                       shell=True)), "localhost/x:1")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "journal").write_text("FROM localhost/x:1\nRUN rm /var/lib/dpkg/updates/0001\n")
    (ctx / "status").write_text("FROM localhost/x:1\nRUN rm /var/lib/dpkg/status\n")
    res = podman("build", "--network", "none", "-f", str(ctx / "journal"), "-t", "localhost/x:2", str(ctx))
    if res.returncode != 0:
        pytest.skip(f"podman cannot RUN a build step here: {res.stderr.strip().splitlines()[-1:]}")
    podman.ok("build", "--network", "none", "-f", str(ctx / "status"), "-t", "localhost/x:3", str(ctx))
    for tag, out in (("2", "journal.tar"), ("3", "status.tar")):
        podman.ok("save", "--format", "oci-archive", "-o", str(tmp_path / out), f"localhost/x:{tag}")
    with tarfile.open(tmp_path / "journal.tar") as tf:
        index = json.load(tf.extractfile("index.json"))
        manifest = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
        top = tf.extractfile("blobs/sha256/" + manifest["layers"][-1]["digest"][7:])
        assert top is not None
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(top.read()))) as layer:
            assert "var/lib/dpkg/updates/.wh.0001" in layer.getnames()
    assert deb(tmp_path / "journal.tar") == BASE_LINES
    with pytest.raises(ConfigError, match=r"status.tar: no /var/lib/dpkg/status in the image"):
        installed_from_image(tmp_path / "status.tar", Family.DEB)
    assert BomEntry("tar", "amd64", "9.9-9") not in installed_from_image(tmp_path / "journal.tar", Family.DEB)
