"""Real dnf 4 as the oracle for rpm resolution.

``DnfOracle(repos, workdir)`` runs the real ``dnf`` CLI against the fixture repos (``--repofrompath``,
``--setopt=reposdir=/dev/null``, a private ``--config``) with dnf configured the way RHEL/Rocky ship it
(``best=True``, ``installonly_limit=3``, ``install_weak_deps`` as asked), and really installs into an
``--installroot``: the answer is the rpmdb afterwards (``rpm --root DIR -qa --qf '%{NAME} %{EVR} %{ARCH}\\n'``),
which is exactly what a BOM must equal — installed, kept and obsoleted packages included.  Nothing of dnf's
human output is parsed.

A base image is made the same way: ``base(specs)`` installs ``specs`` into a root once; each request then
starts from a copy of it (with its rpmdb and dnf's module state), and the BOM of that root is what
imagebuild gets as ``base =``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DNF_CONF = """\
[main]
gpgcheck=False
installonly_limit=3
best=True
skip_if_unavailable=False
module_platform_id=platform:el9
keepcache=False
"""


@dataclass(frozen=True)
class DnfResult:
    ok: bool
    bom: tuple[str, ...]  # sorted `name evr arch` lines of the rpmdb after the transaction
    output: str  # dnf's stdout+stderr, for failure messages


def missing() -> str | None:
    """Why the oracle cannot run here (None: it can)."""
    for tool in ("dnf", "rpm"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (scripts/setup.sh --test installs it)"
    if os.geteuid() != 0:
        return "dnf --installroot installs need root"
    return None


def rpm_qa(root: Path) -> tuple[str, ...]:
    out = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME} %{EVR} %{ARCH}\\n"],
                         capture_output=True, text=True, check=True, env=_env()).stdout
    return tuple(sorted((ln for ln in out.splitlines() if ln.strip()), key=lambda ln: (ln.split()[0], ln.split()[2],
                                                                                        ln)))


def _env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "LANG": "C"}


class DnfOracle:
    def __init__(self, repos: Mapping[str, Path], workdir: Path) -> None:
        self.repos = dict(repos)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "dnf.conf"
        self.conf.write_text(DNF_CONF)
        self._n = 0

    def _dnf(self, root: Path, arch: str, args: Sequence[str], *, weak_deps: bool = False,
             exclude: Sequence[str] = (), repo_opts: Mapping[str, Mapping[str, str]] | None = None,
             ) -> subprocess.CompletedProcess[str]:
        cmd = ["dnf", f"--config={self.conf}", f"--installroot={root}", "--releasever=9", f"--forcearch={arch}",
               "--setopt=reposdir=/dev/null", f"--setopt=cachedir={self.workdir / 'cache' / arch}",
               f"--setopt=install_weak_deps={weak_deps}", "--disableplugin=*", "--nodocs"]
        for rid, path in self.repos.items():
            cmd.append(f"--repofrompath={rid},file://{path}")
        for rid, opts in (repo_opts or {}).items():
            cmd += [f"--setopt={rid}.{k}={v}" for k, v in opts.items()]
        if exclude:
            cmd.append(f"--setopt=excludepkgs={','.join(exclude)}")
        cmd += ["-y", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300, check=False)

    def base(self, name: str, arch: str, specs: Sequence[str]) -> Path:
        """A root with ``specs`` really installed by dnf (weak deps off); reused by every request on it."""
        root = self.workdir / "bases" / f"{name}-{arch}"
        if not (root / ".done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            res = self._dnf(root, arch, ["install", *specs])
            if res.returncode != 0:
                raise RuntimeError(f"dnf could not build base {name}: {res.stdout}{res.stderr}")
            (root / ".done").write_text("")
        return root

    def install(self, arch: str, specs: Sequence[str], *, base: Path | None = None, weak_deps: bool = False,
                modules: Sequence[str] = (), exclude: Sequence[str] = (),
                repo_opts: Mapping[str, Mapping[str, str]] | None = None) -> DnfResult:
        self._n += 1
        root = self.workdir / "roots" / f"{self._n}"
        shutil.rmtree(root, ignore_errors=True)
        if base is not None:
            shutil.copytree(base, root, symlinks=True)
        else:
            root.mkdir(parents=True)
        output = ""
        try:
            disable = [m[1:] for m in modules if m.startswith("!")]
            enable = [m for m in modules if not m.startswith("!")]
            for verb, names in (("disable", disable), ("enable", enable)):
                if not names:
                    continue
                res = self._dnf(root, arch, ["module", verb, *names], exclude=exclude, repo_opts=repo_opts)
                output += res.stdout + res.stderr
                if res.returncode != 0:
                    return DnfResult(False, (), output)
            res = self._dnf(root, arch, ["install", *specs], weak_deps=weak_deps, exclude=exclude,
                            repo_opts=repo_opts)
            output += res.stdout + res.stderr
            return DnfResult(res.returncode == 0, rpm_qa(root) if res.returncode == 0 else (), output)
        finally:
            shutil.rmtree(root, ignore_errors=True)
