"""dnf's side of a bundle (the `FamilyBackend` of family.py): a `.repo` file per repo, `dnf.conf.in`, the module
streams, `name-[epoch:]version-release.arch` pins, and the root filesystem through the bundle's own script
(`dnf --installroot` from this host)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from imagebuild.bom import BomEntry
from imagebuild.config import AptRepo, Distro, RpmRepo, ShipRepos
from imagebuild.errors import ConfigError
from imagebuild.family import BundleRepo, find_tool, run_tool
from imagebuild.lockfile import LockedTarget

BUILD_KEYS = "@BUNDLE@/keys/"
SHIP_KEYS = "/etc/pki/rpm-gpg/imagebuild-"  # where the script's ship phase copies keys/*


def key_name(repo: str) -> str:
    return f"{repo}.asc"  # gpgkey= takes the armored key


def dnf_repo(r: BundleRepo, keys: str, *, enabled: bool = True) -> str:
    """A `.repo` section for the repo on its locked snapshot, its key named `keys` + key_name."""
    assert isinstance(r.config, RpmRepo)
    c = r.config
    lines = [f"[{r.name}]", f"name={r.name} (imagebuild snapshot)", f"baseurl={r.urls[0][1]}",
             f"enabled={1 if enabled else 0}", f"gpgcheck={1 if c.gpgcheck else 0}",
             f"repo_gpgcheck={1 if c.repo_gpgcheck else 0}", f"priority={c.priority}", f"cost={c.cost}"]
    if r.key is not None:
        lines.append(f"gpgkey=file://{keys}{key_name(r.name)}")
    if c.module_hotfixes:
        lines.append("module_hotfixes=1")
    if c.exclude:
        lines.append("excludepkgs=" + " ".join(c.exclude))
    if c.includepkgs:
        lines.append("includepkgs=" + " ".join(c.includepkgs))
    return "\n".join(lines) + "\n"


def dnf_conf(distro: Distro) -> str:
    """The build's dnf.conf, `@BUILD@` standing for the script's build-only directory."""
    return "\n".join([
        "[main]", "reposdir=@BUILD@/repos.d", "cachedir=@BUILD@/cache", "keepcache=0", "gpgcheck=1", "best=True",
        "installonly_limit=3", f"install_weak_deps={distro.recommends}", "skip_if_unavailable=False",
        # an empty installroot has no os-release to read the platform from (RHEL-likes: platform:elN)
        f"module_platform_id=platform:el{distro.releasever.split('.')[0]}",
        "excludepkgs=" + " ".join(distro.exclude) if distro.exclude else "# no excludes", "",
    ])


class DnfBackend:
    script = "provision-rpm.sh.j2"

    def suites(self, repo: AptRepo | RpmRepo) -> tuple[str, ...]:
        return ("",)

    def signing_key(self, repo: AptRepo | RpmRepo) -> Path | None:
        assert isinstance(repo, RpmRepo)
        return repo.gpgkey

    def key_name(self, repo: str) -> str:
        return key_name(repo)

    def auth_target(self, repo: BundleRepo) -> str:
        return repo.name  # the script appends username=/password= to this repo's build-only .repo file

    def pins(self, target: LockedTarget) -> list[str]:
        """dnf install's arguments: the NEVRA of everything the transaction adds or changes."""
        return [f"{p.name}-{p.version}.{p.arch}" for p in sorted(target.packages, key=lambda p: (p.name, p.arch))
                if p.repo != "base"]

    def repo_files(self, repos: list[BundleRepo], distro: Distro, ship: ShipRepos) -> dict[str, str]:
        files = {f"repos/{r.name}.repo": dnf_repo(r, BUILD_KEYS) for r in repos}
        files["repos/dnf.conf.in"] = dnf_conf(distro)
        files["repos/modules"] = "".join(f"{m}\n" for m in distro.modules)
        if ship is not ShipRepos.NONE:
            files["ship/imagebuild.repo"] = "\n".join(
                dnf_repo(r, SHIP_KEYS, enabled=ship is ShipRepos.SNAPSHOT) for r in repos)
        return files

    def script_values(self, distro: Distro, pins: list[str]) -> Mapping[str, object]:
        # an empty root gets /etc/passwd from `setup`, at its locked version, before the [users] accounts
        return {"releasever": distro.releasever,
                "setup_pin": next((p for p in pins if p.startswith("setup-")), "setup")}

    def build_base(self, bundle: Path, base: list[BomEntry], arch: str, out: Path, env: dict[str, str]) -> None:
        raise ConfigError("building a container's base root filesystem is only supported for deb distros so far",
                          hint="give [roles.R.container] base = an image reference pinned by digest, with base-bom")

    def build_rootfs(self, bundle: Path, target: LockedTarget, out: Path, env: dict[str, str]) -> None:
        find_tool("dnf", "dnf")
        find_tool("rpm", "rpm")
        root = out.parent / "root"
        root.mkdir()
        run_tool(["sh", str(bundle / "provision.sh"), "--root", str(root)], "provision.sh --root", env)
        tar = find_tool("tar", "tar")
        run_tool([tar, "--sort=name", f"--mtime=@{env['SOURCE_DATE_EPOCH']}", "--clamp-mtime", "--numeric-owner",
             "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime", "-C", str(root), "-cf", str(out),
             "."], "tar", env)
