"""Real apt as the oracle for deb resolution.

The product contract says: for apt, the lock is the set of (name, version, arch) that
``apt-get -s install PKGS`` would leave in the image, with the same sources, arch, base status
and Install-Recommends.  This module computes exactly that with the host's apt, in a private
apt root, without touching the host's apt state:

* a root per (sources.list, arch) under ``workdir`` — ``apt-get update`` runs once per root and
  the updated root is reused by later calls (also across processes: the marker file ``.updated``
  records success; an ``fcntl`` lock serialises apt runs on one root, so pytest-xdist is safe);
* every call gets its own copy of the base status (``empty`` for base none) and its own
  ``pkgcache`` file keyed by that status, so switching bases doesn't rebuild the cache each time;
* apt is configured only through an ``APT_CONFIG`` file written into the root (``Dir`` set first,
  so the host's ``/etc/apt`` — apt.conf.d, preferences, trusted keys — is never read), and every
  run uses ``LC_ALL=C``; only the machine-readable ``Inst``/``Remv`` simulation lines are parsed.

The result is in ``dpkg-query -W -f '${Package} ${Version} ${Architecture}'`` semantics: base
packages keep the Architecture of their status stanza, installed packages take the architecture
apt prints in brackets, which for ``Architecture: all`` packages is ``all`` — the same string
dpkg-query prints for them — and names are never arch-qualified.

Usable as a script for debugging::

    python tests/apt_oracle.py --url http://127.0.0.1:PORT --arch amd64 slurmd
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

Pkg = tuple[str, str, str]  # (name, version, arch) as dpkg-query prints them

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_COMPONENTS = ("main", "contrib", "non-free", "non-free-firmware")


@dataclasses.dataclass(frozen=True)
class AptRepo:
    """One apt source.  ``flat`` repos are written as ``deb [...] URL ./`` (suites ignored)."""

    url: str
    suites: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    signed_by: str | None = None
    flat: bool = False
    trusted: bool = False

    def sources_lines(self) -> list[str]:
        opts = []
        if self.signed_by:
            opts.append(f"signed-by={self.signed_by}")
        if self.trusted:
            opts.append("trusted=yes")
        opt = f"[{' '.join(opts)}] " if opts else ""
        url = self.url.rstrip("/")
        if self.flat:
            return [f"deb {opt}{url} ./"]
        return [f"deb {opt}{url} {suite} {' '.join(self.components)}" for suite in self.suites]


def debian_repos(base_url: str, suites: Sequence[str] | None = None) -> list[AptRepo]:
    """The repos of the bookworm data set served at ``base_url`` (``/debian``, ``/debian-security``)."""
    base_url = base_url.rstrip("/")
    suites = list(suites or ("bookworm", "bookworm-updates", "bookworm-backports", "bookworm-security"))
    main = tuple(s for s in suites if s != "bookworm-security")
    repos = []
    if main:
        repos.append(AptRepo(f"{base_url}/debian", main, DEBIAN_COMPONENTS, DEBIAN_KEYRING))
    if "bookworm-security" in suites:
        repos.append(AptRepo(f"{base_url}/debian-security", ("bookworm-security",), DEBIAN_COMPONENTS,
                             DEBIAN_KEYRING))
    return repos


@dataclasses.dataclass
class AptResult:
    """Outcome of one ``apt-get -s install``.

    ``packages`` is the final image content (base − removed − upgraded-old + installed) and is
    ``None`` when apt failed.  ``failed`` is True on a non-zero exit, an ``E:`` line or
    "Unable to correct problems".
    """

    failed: bool
    packages: frozenset[Pkg] | None
    installed: list[Pkg]
    removed: list[Pkg]
    returncode: int
    stdout: str
    stderr: str
    command: str  # a shell line that reproduces the run

    @property
    def errors(self) -> list[str]:
        return [ln for ln in (self.stdout + "\n" + self.stderr).splitlines() if ln.startswith("E:")]

    def describe(self) -> str:
        tail = "\n".join((self.stderr.strip() or self.stdout.strip()).splitlines()[-25:])
        return f"apt exit {self.returncode}; reproduce with:\n  {self.command}\n{tail}"


class AptError(RuntimeError):
    pass


# "Inst NAME[:ARCH] [OLDVER] (NEWVER RELEASE[, RELEASE...] [ARCH])" optionally followed by " []"
# (apt's marker for packages it must configure immediately).  Remv: "Remv NAME[:ARCH] [OLDVER]".
_INST_RE = re.compile(
    r"^Inst (?P<name>\S+)(?: \[(?P<old>[^\]]*)\])? \((?P<ver>\S+)(?: (?P<rel>.*?))? \[(?P<arch>[^\]]+)\]\)"
)
_REMV_RE = re.compile(r"^Remv (?P<name>\S+)(?: \[(?P<old>[^\]]*)\])?")


def parse_status(path: str | os.PathLike[str] | None) -> frozenset[Pkg]:
    """(name, version, arch) of every installed package of a dpkg status file, as dpkg-query shows it."""
    if path is None:
        return frozenset()
    out = set()
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "package" not in fields:
            continue
        status = fields.get("status", "").split()
        if len(status) != 3 or status[2] != "installed":
            continue
        out.add((fields["package"], fields.get("version", ""), fields.get("architecture", "")))
    return frozenset(out)


def _split_name(name: str, native: str) -> tuple[str, str | None]:
    if ":" in name:
        n, a = name.rsplit(":", 1)
        return n, a
    return name, None


def apply_simulation(base: Iterable[Pkg], stdout: str,
                     native_arch: str) -> tuple[frozenset[Pkg], list[Pkg], list[Pkg]]:
    """Apply the ``Inst``/``Remv`` lines of ``apt-get -s`` to the base set.

    Packages are keyed by (name, arch-slot) where the slot of native and ``all`` packages is the
    native arch (apt keeps them in one package group slot; an upgrade may change all<->native).
    """

    def slot(arch: str) -> str:
        return native_arch if arch in ("all", native_arch) else arch

    state: dict[tuple[str, str], Pkg] = {(n, slot(a)): (n, v, a) for n, v, a in base}
    installed: list[Pkg] = []
    removed: list[Pkg] = []
    for line in stdout.splitlines():
        m = _INST_RE.match(line)
        if m:
            name, qual = _split_name(m["name"], native_arch)
            arch = m["arch"]
            key = (name, slot(qual or arch))
            if key in state:
                removed.append(state.pop(key))
            pkg = (name, m["ver"], arch)
            state[key] = pkg
            installed.append(pkg)
            continue
        m = _REMV_RE.match(line)
        if m:
            name, qual = _split_name(m["name"], native_arch)
            key = (name, slot(qual or native_arch))
            if key in state:
                removed.append(state.pop(key))
    return frozenset(state.values()), installed, removed


class AptOracle:
    """Runs apt in private roots under ``workdir`` (reused across calls; see module doc)."""

    def __init__(self, workdir: str | os.PathLike[str], apt_get: str = "apt-get", timeout: float = 600):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.apt_get = apt_get
        self.timeout = timeout

    # -- roots ---------------------------------------------------------------------------------
    @staticmethod
    def sources_list(repos: Sequence[AptRepo]) -> str:
        return "".join(line + "\n" for r in repos for line in r.sources_lines())

    def _root(self, repos: Sequence[AptRepo], arch: str) -> Path:
        sources = self.sources_list(repos)
        key = hashlib.sha256(f"{arch}\n{sources}".encode()).hexdigest()[:16]
        root = self.workdir / f"root-{arch}-{key}"
        for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
                  "etc/apt/trusted.gpg.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial",
                  "var/lib/dpkg", "var/log/apt", "status"):
            (root / d).mkdir(parents=True, exist_ok=True)
        _write_if_changed(root / "etc/apt/sources.list", sources)  # mtime is part of apt's cache key
        return root

    def _config(self, root: Path, arch: str, status: Path, recommends: bool) -> Path:
        """Write the APT_CONFIG file for one run (per status/recommends) and return it."""
        tag = f"{status.stem}-{'rec' if recommends else 'norec'}"
        conf = root / f"apt-{tag}.conf"
        q = lambda s: '"' + str(s).replace('"', '\\"') + '"'  # noqa: E731
        lines = [
            f"Dir {q(str(root) + '/')};",
            f"Dir::State::status {q(status)};",
            f"Dir::Cache::pkgcache {q(root / 'var/cache/apt' / f'pkgcache-{status.stem}.bin')};",
            f"Dir::Cache::srcpkgcache {q(root / 'var/cache/apt/srcpkgcache.bin')};",
            f"APT::Architecture {q(arch)};",
            f"APT::Architectures {{ {q(arch)}; }};",
            'Acquire::Languages "none";',
            'Acquire::Check-Valid-Until "false";',
            'Acquire::By-Hash "no";',
            'Acquire::PDiffs "false";',
            'Acquire::http::Proxy "DIRECT";',
            'Acquire::Retries "0";',
            'Dir::Etc::Trusted "/dev/null";',
            'Dir::Etc::TrustedParts "/dev/null";',
            f"APT::Install-Recommends {q('true' if recommends else 'false')};",
            'APT::Install-Suggests "false";',
            'Debug::NoLocking "1";',
            'APT::Sandbox::User "root";',
            'Binary::apt-get::APT::Color "0";',
        ]
        _write_if_changed(conf, "\n".join(lines) + "\n")
        return conf

    def _status(self, root: Path, base: str | os.PathLike[str] | None) -> Path:
        data = Path(base).read_bytes() if base is not None else b""
        dest = root / "status" / (hashlib.sha256(data).hexdigest()[:16] + ".status")
        if not dest.exists():
            tmp = dest.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            # a fixed mtime keeps apt's pkgcache for this status valid across copies
            os.utime(tmp, (1_000_000_000, 1_000_000_000))
            tmp.replace(dest)
        return dest

    def _run(self, conf: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(APT_CONFIG=str(conf), LC_ALL="C", LANG="C", LANGUAGE="C", DEBIAN_FRONTEND="noninteractive")
        return subprocess.run([self.apt_get, *args], env=env, capture_output=True, text=True,
                              timeout=self.timeout, check=False)

    def _ensure_updated(self, root: Path, arch: str, status: Path) -> None:
        marker = root / ".updated"
        if marker.exists():
            return
        conf = self._config(root, arch, status, False)
        r = self._run(conf, ["update"])
        bad = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith(("E:", "W:", "Err:"))]
        if r.returncode != 0 or bad:
            raise AptError(f"apt-get update failed in {root} (exit {r.returncode}):\n"
                           + "\n".join(bad or (r.stderr or r.stdout).splitlines()[-20:]))
        marker.write_text("ok\n")

    def update(self, repos: Sequence[AptRepo], arch: str) -> Path:
        """Make sure the root for (repos, arch) is updated; returns the root directory."""
        root = self._root(repos, arch)
        with _locked(root):
            self._ensure_updated(root, arch, self._status(root, None))
        return root

    def prepare(self, repos: Sequence[AptRepo], arch: str, base: str | os.PathLike[str] | None,
                recommends: bool) -> tuple[Path, Path]:
        """Create (without updating) the root and return (root, APT_CONFIG file) — for benchmarks
        that run apt themselves: ``APT_CONFIG=conf LC_ALL=C apt-get update`` / ``-s install``."""
        root = self._root(repos, arch)
        return root, self._config(root, arch, self._status(root, base), recommends)

    # -- simulation ----------------------------------------------------------------------------
    def simulate(
        self,
        repos: Sequence[AptRepo],
        arch: str,
        base: str | os.PathLike[str] | None,
        recommends: bool,
        requests: Sequence[str],
        extra_args: Sequence[str] = (),
    ) -> AptResult:
        """``apt-get -s install REQUESTS`` with the given sources/arch/base/recommends."""
        root = self._root(repos, arch)
        with _locked(root):
            status = self._status(root, base)
            self._ensure_updated(root, arch, status)
            conf = self._config(root, arch, status, recommends)
            args = ["-s", "-q", *extra_args, "install", *requests]
            r = self._run(conf, args)
        out_err = r.stdout + "\n" + r.stderr
        failed = (r.returncode != 0 or "Unable to correct problems" in out_err
                  or any(ln.startswith("E:") for ln in out_err.splitlines()))
        base_set = parse_status(base)
        packages: frozenset[Pkg] | None
        if failed:
            packages, installed, removed = None, [], []
        else:
            packages, installed, removed = apply_simulation(base_set, r.stdout, arch)
        cmd = f"APT_CONFIG={conf} LC_ALL=C {self.apt_get} " + " ".join(_shq(a) for a in args)
        return AptResult(failed, packages, installed, removed, r.returncode, r.stdout, r.stderr, cmd)

    def check_explicit(
        self,
        repos: Sequence[AptRepo],
        arch: str,
        base: str | os.PathLike[str] | None,
        recommends: bool,
        packages: Iterable[Pkg],
    ) -> tuple[bool, str, AptResult]:
        """Does apt accept ``packages`` as a complete image when every one is given explicitly?

        Runs ``apt-get -s install name=version ...`` for each package that is not already in the
        base at that exact version, and accepts when apt succeeds *and* its resulting image is
        exactly ``packages`` (nothing missing, nothing extra pulled in, no base package left
        that the set dropped).  Returns (accepted, explanation, apt result).
        """
        want = frozenset(packages)
        base_set = parse_status(base)
        pins = sorted(_pin(n, v, a, arch) for n, v, a in want - base_set)
        result = self.simulate(repos, arch, base, recommends, pins)
        if result.failed:
            return False, "apt rejects the explicit set:\n" + result.describe(), result
        assert result.packages is not None
        if result.packages != want:
            return False, "apt's image for the explicit set differs:\n" + set_diff(
                want, result.packages, "only-in-given-set", "only-in-apt"), result
        return True, "ok", result


def _pin(name: str, version: str, arch: str, native: str) -> str:
    if arch in ("all", native, ""):
        return f"{name}={version}"
    return f"{name}:{arch}={version}"


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def _shq(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z0-9_@%+=:,./~-]+", s) else "'" + s.replace("'", "'\\''") + "'"


class _locked:
    """Exclusive fcntl lock on ``<root>.lock`` (apt itself runs with Debug::NoLocking)."""

    def __init__(self, root: Path):
        self.path = root.with_name(root.name + ".lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def set_diff(a: Iterable[Pkg], b: Iterable[Pkg], a_label: str = "only-in-imagebuild",
             b_label: str = "only-in-apt") -> str:
    """A readable diff of two package sets; same-name entries are shown side by side."""
    a, b = set(a), set(b)
    only_a, only_b = sorted(a - b), sorted(b - a)
    names_a = {n: (v, ar) for n, v, ar in only_a}
    names_b = {n: (v, ar) for n, v, ar in only_b}
    lines = [f"{len(only_a)} {a_label}, {len(only_b)} {b_label}"]
    for n in sorted(set(names_a) & set(names_b)):
        lines.append(f"  ~ {n}: {a_label} {' '.join(names_a[n])} | {b_label} {' '.join(names_b[n])}")
    for n, v, ar in only_a:
        if n not in names_b:
            lines.append(f"  + {n} {v} {ar}   ({a_label})")
    for n, v, ar in only_b:
        if n not in names_a:
            lines.append(f"  - {n} {v} {ar}   ({b_label})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="apt-get -s install in a private root; prints the final image")
    p.add_argument("--url", required=True, help="base URL serving /debian and /debian-security")
    p.add_argument("--arch", default="amd64")
    p.add_argument("--base", default=None, help="dpkg status file of the base image (default: none)")
    p.add_argument("--recommends", action="store_true")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "imagebuild-apt-oracle"))
    p.add_argument("requests", nargs="+")
    ns = p.parse_args(argv)
    oracle = AptOracle(ns.workdir)
    res = oracle.simulate(debian_repos(ns.url), ns.arch, ns.base, ns.recommends, ns.requests)
    if res.failed:
        print(res.describe())
        return 3
    assert res.packages is not None
    for n, v, a in sorted(res.packages):
        print(n, v, a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
