"""apt's side of a bundle (the `FamilyBackend` of family.py): one-line sources for the build, the deb822 file
the image ships, `name[:arch]=version` pins with removals, and the root filesystem through mmdebstrap."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from imagebuild.bom import BomEntry
from imagebuild.config import AptRepo, Distro, RpmRepo, ShipRepos
from imagebuild.errors import ConfigError
from imagebuild.family import BundleRepo, find_tool, run_tool
from imagebuild.lockfile import STUB_REPO, LockedTarget

BUILD_KEYS = "@BUNDLE@/keys/"
SHIP_KEYS = "/etc/apt/keyrings/imagebuild-"  # where the script's ship phase copies keys/*


def auth_machine(url: str) -> str:
    """apt auth.conf's `machine` of a repo URL: with its scheme, which apt needs before it sends a password
    over plain http."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path.rstrip('/')}"


def key_name(repo: str) -> str:
    return f"{repo}.gpg"  # a binary keyring, as signed-by wants it


def sources_list(repos: list[BundleRepo], keys: str) -> str:
    """One-line sources, keys named `keys` + key_name: what the build's apt (or mmdebstrap) reads."""
    lines = []
    for r in repos:
        assert isinstance(r.config, AptRepo)
        opts = f"signed-by={keys}{key_name(r.name)}" if r.key is not None else "trusted=yes"
        comps = "" if r.config.flat else " " + " ".join(r.config.components)
        for suite, url in r.urls:
            lines.append(f"deb [{opts} check-valid-until=no] {url} {suite}{comps}")
    return "\n".join(lines) + "\n"


def sources_deb822(repos: list[BundleRepo], keys: str, *, enabled: bool) -> str:
    """The deb822 `.sources` file the image keeps: a stanza per repo, on the snapshot it was locked at."""
    stanzas = []
    for r in repos:
        assert isinstance(r.config, AptRepo)
        stanza = [f"# {r.name}: the snapshot it was locked at", "Types: deb", f"URIs: {r.urls[0][1]}",
                  f"Suites: {' '.join(s for s, _ in r.urls)}"]
        if not r.config.flat:
            stanza.append(f"Components: {' '.join(r.config.components)}")
        stanza.append(f"Signed-By: {keys}{key_name(r.name)}" if r.key is not None else "Trusted: yes")
        if r.snapshot is not None:  # a snapshot's Release expires a week after it was taken; a floating repo's
            stanza.append("Check-Valid-Until: no")  # is current, and its validity still means something
        if not enabled:
            stanza.append("Enabled: no")
        stanzas.append("\n".join(stanza) + "\n")
    return "\n".join(stanzas)


def _qualifier(arch: str, native: str) -> str:
    return f":{arch}" if arch not in ("all", native) else ""


class AptBackend:
    script = "provision-deb.sh.j2"

    def suites(self, repo: AptRepo | RpmRepo) -> tuple[str, ...]:
        assert isinstance(repo, AptRepo)
        return ("./",) if repo.flat else repo.suites

    def signing_key(self, repo: AptRepo | RpmRepo) -> Path | None:
        assert isinstance(repo, AptRepo)
        return repo.signed_by

    def key_name(self, repo: str) -> str:
        return key_name(repo)

    def auth_target(self, repo: BundleRepo) -> str:
        return auth_machine(repo.urls[0][1])

    def pins(self, target: LockedTarget) -> list[str]:
        """apt-get install's arguments: `name[:arch]=version` for what it adds or changes, `name-` to remove."""
        pins = [f"./{p.filename}" if p.repo == STUB_REPO else f"{p.name}{_qualifier(p.arch, target.arch)}={p.version}"
                for p in sorted(target.packages, key=lambda p: (p.name, p.arch)) if p.repo != "base"]
        return pins + [f"{name}-" for name in target.removed]

    def repo_files(self, repos: list[BundleRepo], distro: Distro, ship: ShipRepos) -> dict[str, str]:
        files = {"repos/sources.list.in": sources_list(repos, BUILD_KEYS)}
        if ship is not ShipRepos.NONE:
            files["ship/imagebuild.sources"] = sources_deb822(repos, SHIP_KEYS, enabled=ship is ShipRepos.SNAPSHOT)
        return files

    def script_values(self, distro: Distro, pins: list[str]) -> Mapping[str, object]:
        return {}

    def build_rootfs(self, bundle: Path, target: LockedTarget, out: Path, env: dict[str, str]) -> None:
        # every locked package pinned: the essential variant installs the Essential set first (the essential hook
        # then creates the fixed accounts), then these in one apt transaction; verify proves nothing else came in
        include = [f"{p.name}{_qualifier(p.arch, target.arch)}={p.version}"
                   for p in sorted(target.packages, key=lambda p: (p.name, p.arch))]
        script = shlex.quote(str(bundle / "provision.sh"))
        _mmdebstrap(bundle, target.arch, include, out, env, [
            f"--essential-hook=sh {script} --root \"$1\" users",
            f"--customize-hook=sh {script} --root \"$1\" pip hold verify ship clean"])

    def build_base(self, bundle: Path, base: list[BomEntry], arch: str, out: Path, env: dict[str, str]) -> None:
        _mmdebstrap(bundle, arch, [f"{e.name}{_qualifier(e.arch, arch)}={e.version}" for e in sorted(base)], out,
                    env, [])


def _mmdebstrap(bundle: Path, arch: str, include: list[str], out: Path, env: dict[str, str],
                hooks: list[str]) -> None:
    """mmdebstrap --variant=essential of `include` from the bundle's repos, keys and credentials."""
    mm = find_tool("mmdebstrap", "mmdebstrap")
    # apt verifies and downloads as its sandbox user (_apt): the keyrings go where it can read them, not into
    # a project that may sit in a private home or tmp directory
    with tempfile.TemporaryDirectory(prefix="imagebuild-keys-") as keys:
        os.chmod(keys, 0o755)
        for key in (bundle / "keys").glob("*"):
            shutil.copyfile(key, Path(keys) / key.name)
            os.chmod(Path(keys) / key.name, 0o644)
        sources = out.parent / "sources.list"
        sources.write_text((bundle / "repos/sources.list.in").read_text().replace("@BUNDLE@/keys", keys))
        _run_mmdebstrap(mm, bundle, arch, include, out, sources, env, hooks)


def _run_mmdebstrap(mm: str, bundle: Path, arch: str, include: list[str], out: Path, sources: Path,
                    env: dict[str, str], hooks: list[str]) -> None:
    auth = (bundle / "repos/auth").read_text().split()
    netrc = out.parent / "auth.conf.d"
    netrc.mkdir(mode=0o700)
    for var, machine in zip(auth[::2], auth[1::2], strict=True):
        value = env.get(var, "")
        if ":" not in value:
            raise ConfigError(f"{machine} needs credentials: set {var}=user:password in the environment")
        user, _, password = value.partition(":")
        fd = os.open(netrc / "imagebuild.conf", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"machine {machine} login {user} password {password}\n")
    suite = next((line.split()[4] for line in sources.read_text().splitlines() if line.startswith("deb ")), "stable")
    run_tool([mm, "--mode=root", "--variant=essential", f"--architectures={arch}", "--format=tar",
         "--include=" + ",".join(include),
         "--aptopt=Acquire::Check-Valid-Until \"false\"", "--aptopt=Acquire::Languages \"none\"",
         f"--aptopt=Dir::Etc::netrcparts \"{netrc}\"",
         "--customize-hook=rm -f \"$1/etc/apt/sources.list.d/0000sources.list\" "
         "\"$1/etc/apt/apt.conf.d/99mmdebstrap\"",
         *hooks, suite, str(out), str(sources)], f"mmdebstrap {out.name}", env)
