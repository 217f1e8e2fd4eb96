"""Package URLs (purl spec) of locked packages, and the operating system a distro is: one place for the SBOM,
the BOM diff's allow rules and anything else that names a package outside imagebuild.

    pkg:deb/debian/libc6@2.36-9+deb12u9?arch=amd64&distro=debian-12
    pkg:rpm/rocky/kernel-core@5.14.0-427.42.1.el9_4?arch=x86_64&distro=rocky-9
    pkg:rpm/rocky/nvidia-driver@575.57.08-1.el9?arch=x86_64&distro=rocky-9&epoch=3

The namespace is the distro's vendor, lowercase; `distro=` is always there (vulnerability scanners skip deb
packages without it); an rpm epoch is a qualifier, only when set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packageurl import PackageURL

from imagebuild.config import Distro, Family
from imagebuild.errors import ConfigError

# Debian and Ubuntu codenames -> (vendor, version): what os-release's ID and VERSION_ID say
_CODENAMES = {
    "buster": ("debian", "10"), "bullseye": ("debian", "11"), "bookworm": ("debian", "12"),
    "trixie": ("debian", "13"), "forky": ("debian", "14"),
    "focal": ("ubuntu", "20.04"), "jammy": ("ubuntu", "22.04"), "noble": ("ubuntu", "24.04"),
}


@dataclass(frozen=True)
class OsRelease:
    """The os-release identity of an image (the purl's namespace and distro qualifier)."""

    vendor: str  # os-release ID: debian, ubuntu, rocky, rhel, almalinux, …
    version: str  # VERSION_ID: 12, 24.04, 9

    @property
    def distro(self) -> str:
        """The purl `distro` qualifier: `debian-12`, `rocky-9`."""
        return f"{self.vendor}-{self.version}"


def os_release(distro: Distro) -> OsRelease:
    """What operating system `distro` is: its `os` key ("rocky-9"), else a known Debian/Ubuntu codename as its
    name, else a name like `rocky9` / `rocky-9` (with an rpm distro's releasever)."""
    if distro.os is not None:
        vendor, _, version = distro.os.partition("-")
        return OsRelease(vendor, version)
    if distro.name in _CODENAMES:
        return OsRelease(*_CODENAMES[distro.name])
    m = re.match(r"^([a-z]+)-?(\d+(?:\.\d+)?)$", distro.name)
    if m and (distro.family is Family.RPM or m[1] in ("debian", "ubuntu")):
        return OsRelease(m[1], m[2])
    raise ConfigError(f"distros.{distro.name}: which operating system is it?",
                      hint='set os = "debian-12" (or "ubuntu-24.04", "rocky-9", …): os-release ID-VERSION_ID')


def purl(family: Family, os: OsRelease, name: str, version: str, arch: str) -> str:
    """The package URL of one package of a BOM or lock."""
    qualifiers = {"arch": arch, "distro": os.distro}
    if family is Family.RPM:
        epoch, sep, rest = version.partition(":")
        if sep and epoch != "0":
            qualifiers["epoch"] = epoch
        version = rest if sep else version
    return PackageURL(type=family.value, namespace=os.vendor.lower(), name=name, version=version,
                      qualifiers=qualifiers).to_string()
