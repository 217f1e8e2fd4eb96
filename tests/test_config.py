"""Config validation: each mistake gives a ConfigError naming the file, the key and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import PackageRequest, load_config
from imagebuild.errors import ConfigError

GOOD = """
snapshot = "20261122T000000Z"
[distros.bookworm]
family = "deb"
arches = ["amd64"]
[[distros.bookworm.repos]]
name = "debian"
url = "file:mirror"
suites = ["bookworm"]
components = ["main"]
trusted = true
[roles.compute]
distro = "bookworm"
packages = ["slurmd", "rdma-core=44.0-2", "linux-image-amd64/bookworm-backports", "munge:amd64"]
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "imagebuild.toml"
    p.write_text(text)
    return load_config(p)


def test_good_config(tmp_path: Path) -> None:
    cfg = load(tmp_path, GOOD)
    repo = cfg.distros["bookworm"].repos[0]
    assert repo.url == f"file://{tmp_path}/mirror"
    assert [str(p) for p in cfg.roles["compute"].packages] == [
        "slurmd", "rdma-core=44.0-2", "linux-image-amd64/bookworm-backports", "munge:amd64"]


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('arches = ["amd64"]', 'arches = ["amd64"]\nrecomends = true', "distros.bookworm.recomends: unknown key"),
    ('arches = ["amd64"]', 'arches = "amd64"', "distros.bookworm.arches: must be a list of strings"),
    ('arches = ["amd64"]', 'arches = ["x86_64"]', "unknown deb architecture 'x86_64'"),
    ('distro = "bookworm"', 'distro = "trixie"', "roles.compute.distro: unknown distro 'trixie'"),
    ('"slurmd"', '"slurmd>=1"', "bad package spec 'slurmd>=1'"),
    ('trusted = true', '', "signed-by: missing"),
    ('snapshot = "20261122T000000Z"', 'snapshot = "2026-11-22"', "is not a snapshot id"),
    ('family = "deb"', 'family = "apk"', "unknown family 'apk'"),
    ('url = "file:mirror"', 'url = "ftp://x"', "unsupported URL"),
    ('[[distros.bookworm.repos]]', '[distros.bookworm.repo]', "distros.bookworm.repo: unknown key"),
])
def test_config_errors_name_the_key(tmp_path: Path, old: str, new: str, needle: str) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert needle in str(err.value)
    assert str(tmp_path / "imagebuild.toml") in str(err.value) or "imagebuild.toml" in str(err.value)


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(tmp_path, "snapshot = ")


@pytest.mark.parametrize("spec", ["a", "a=1.0-1", "a=1:2.0~rc1-0ubuntu1", "a/bookworm-backports", "a:arm64", "g++-12"])
def test_request_specs_round_trip(spec: str) -> None:
    assert str(PackageRequest.parse(spec)) == spec
