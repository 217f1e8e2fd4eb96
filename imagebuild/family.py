"""What `bake` asks of a package family: one backend per package manager behind one small interface.

`bake` renders the family-neutral part of a bundle (the BOM, users, image.json, the keys, the Packer template)
and leaves everything that speaks a package manager's language to the family's backend: what the install
names, the repo files, the provisioning script's install/hold/query commands, the root filesystem build.
`apt/render.py` is the apt/mmdebstrap backend, `rpm/render.py` the dnf backend; `backend(family)` picks one,
so the application layer never branches on the family. The process helpers at the end are what the backends'
builds (and bake's Packer build) run their tools with.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imagebuild import log
from imagebuild.bom import BomEntry
from imagebuild.config import AptRepo, Distro, Family, RpmRepo, ShipRepos
from imagebuild.errors import ConfigError, RepositoryError
from imagebuild.lockfile import LockedTarget


@dataclass(frozen=True)
class BundleRepo:
    """A repo of the lock as the image sees it: credential-free URL(s) on the locked snapshot, its key."""

    name: str
    urls: tuple[tuple[str, str], ...]  # (suite, url) for apt; (("", url),) for dnf
    key: Path | None
    auth_var: str | None  # IMAGEBUILD_AUTH_<NAME> when the config's URL carries credentials
    config: AptRepo | RpmRepo
    snapshot: str | None = None  # the snapshot id it was locked at; None: a floating (vendor) repo


class FamilyBackend(Protocol):
    """The package-manager side of a bundle. Backends render text and run builds; bake writes the files.

    Contracts shared with bake and the script: every repo file is rendered with `@BUNDLE@` standing for the
    bundle's directory (the script substitutes it); `repos/auth` holds one `IMAGEBUILD_AUTH_<REPO> <target>`
    line per repo that needs credentials, `<target>` from `auth_target`; keys are `keys/<key_name(repo)>`.
    """

    script: str  # the provisioning script's template: provision.sh.j2 with this package manager's blocks

    def suites(self, repo: AptRepo | RpmRepo) -> tuple[str, ...]:
        """The suites the lock records this repo under (one lock entry and one URL each)."""
        ...

    def signing_key(self, repo: AptRepo | RpmRepo) -> Path | None:
        """The config's key file for the repo, or None for an unsigned/trusted one."""
        ...

    def key_name(self, repo: str) -> str:
        """The repo's key file name under the bundle's `keys/`, in the form its package manager reads."""
        ...

    def auth_target(self, repo: BundleRepo) -> str:
        """What the script's credentials for `repo` are filed under (apt: auth.conf's machine; dnf: the repo)."""
        ...

    def pins(self, target: LockedTarget) -> list[str]:
        """The `packages` file: every package the transaction adds or changes, in the install's syntax."""
        ...

    def repo_files(self, repos: list[BundleRepo], distro: Distro, ship: ShipRepos) -> dict[str, str]:
        """The build-time repo files (`repos/…`) and, unless `ship` is none, the ones the image keeps (`ship/…`)."""
        ...

    def script_values(self, distro: Distro, pins: list[str]) -> Mapping[str, object]:
        """The values `script` needs beyond the common ones (role, arch, family, lock_short, phases, hold,
        ship_repos)."""
        ...

    def build_rootfs(self, bundle: Path, target: LockedTarget, out: Path, env: dict[str, str]) -> None:
        """A root filesystem tarball `out` from the bundle; `out.parent` is a private scratch directory."""
        ...

    def build_base(self, bundle: Path, base: list[BomEntry], arch: str, out: Path, env: dict[str, str]) -> None:
        """A container's base root filesystem: exactly the packages `base` lists, from the bundle's repos."""
        ...


def backend(family: Family) -> FamilyBackend:
    # imported here: the backends import this module's BundleRepo and helpers
    if family is Family.DEB:
        from imagebuild.apt.render import AptBackend

        return AptBackend()
    from imagebuild.rpm.render import DnfBackend

    return DnfBackend()


# -- running a build's tools ---------------------------------------------------------------------------------


def find_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} is not installed", hint=f"apt-get install {package}")
    return path


def run_tool(cmd: list[str], what: str, env: dict[str, str], cwd: Path | None = None) -> None:
    log.info(f"{what}: {' '.join(shlex.quote(c) for c in cmd[:3])} …")
    res = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         check=False)
    if res.returncode != 0:
        # the tool's own errors and warnings first (apt's come long before its last lines), then its tail
        lines = res.stdout.splitlines()
        errors = [ln for ln in lines[:-25] if re.match(r"^(E|W|Err:\d+|Error|error):? ", ln)]
        tail = "\n".join([*errors[-15:], *lines[-25:]])
        raise RepositoryError(f"{what} failed (exit {res.returncode}):\n{tail}",
                              hint="the lines above are the build's own; -v shows the steps")
    log.debug(res.stdout)
