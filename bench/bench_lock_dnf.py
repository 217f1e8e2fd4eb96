#!/usr/bin/env python3
"""Benchmark ``imagebuild lock`` against dnf 4 on the rpm fixtures grown to tens of thousands of packages
(see bench/README.md).

Repos: the five real fixture repos of ``tests/rpmrepos.py`` (baseos, appstream, epel, cuda with its
modules.yaml, doca; built by rpmbuild + createrepo_c) plus ``synth``, a generated repo whose metadata
(primary.xml.gz, filelists.xml.gz, repomd.xml with correct checksums and sizes) this script writes
directly: N package entries (default 40 000) in realistic families (C libraries with sonames and
-devel/-tools/-doc subpackages, multilib i686 builds, python3-*, perl-*, golang-*-devel, texlive-*,
applications with /usr/bin file provides), several versions each, epochs, Obsoletes renames, weak deps,
deep dependency trees between them and onto the fixture core (glibc sonames, python(abi), /bin/sh).

One run, N times each (median reported):

* imagebuild cold — ``imagebuild --config CFG lock`` with an empty ``IMAGEBUILD_CACHE``;
* imagebuild warm — the same with the cache the cold run left (fresh output dir: only the metadata
                    cache is warm, no existing ``snapshots.lock`` is reused);
* dnf cold        — ``dnf --installroot=ROOT ... install --assumeno PKGS`` with an empty cachedir (dnf
                    parses all metadata and writes its solv/solvx caches);
* dnf warm        — the same again with ``--cacheonly`` on the cache the cold run left.

Wall time is measured around each process; peak RSS is the child's ``ru_maxrss`` from ``os.wait4``.
``--assumeno`` makes dnf exit 1 after printing the transaction: that is expected.  The package set is
taken from dnf's Python API (``/usr/bin/python3``: base.install_specs + resolve, the same options) and
compared with imagebuild's BOM (name, evr, arch); that API run is timed too, for information.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from measure import TARGET_SCALE, Measured, lock_cold_warm, run_measured, scale_report, scale_runs  # noqa: E402  (bench/, beside this script)
from rpmrepos import REPO_IDS, SOURCE_DATE_EPOCH, build_rpm_repos, missing_tools  # noqa: E402

SYNTH_ID = "synth"
DEFAULT_SYNTH = 40_000
DEFAULT_SEED = 9
#: Bump when the generator's output changes (the --fixtures cache stamp includes it).
GENERATOR_VERSION = "1"
TOP_LEVEL = ("hpc-site-compute", "hpc-site-ml", "hpc-site-devel")
GPU_ROLE = ["cuda-12-6", "nvidia-driver", "slurm-slurmd", "doca-ofed", "hpc-site-compute", "hpc-site-ml"]
ARCH = "x86_64"
TARGET_COLD = 0.5
TARGET_WARM = 0.6
DNF_PYTHON = "/usr/bin/python3"

Triple = tuple[str, str, str]


# --------------------------------------------------------------------------------------------------------------
# Synthetic repository metadata
# --------------------------------------------------------------------------------------------------------------

_SYLLABLES = ("ar", "bel", "cor", "dex", "el", "fan", "gor", "hal", "ix", "jun", "kel", "lum", "mor", "nex", "ob",
              "pra", "quin", "ros", "sil", "tor", "ul", "ven", "wex", "xan", "yor", "zed", "an", "bri", "cal", "dor",
              "ev", "fil", "gal", "hex", "is", "kal", "lor", "mi", "nor", "ol", "pel", "ra", "sor", "ti", "us", "vo")
_WORDS = ("fast", "portable", "library", "for", "parsing", "and", "writing", "data", "files", "with", "support",
          "a", "the", "of", "high", "performance", "numerical", "routines", "command", "line", "tools", "bindings",
          "to", "compressed", "streams", "network", "protocol", "implementation", "utilities", "managing",
          "cluster", "nodes", "scientific", "computing", "graphics", "rendering", "font", "configuration", "XML",
          "JSON", "interface", "daemon", "monitoring", "GPU", "accelerated", "message", "passing", "thread", "safe")
_LICENSES = ("MIT", "BSD-3-Clause", "GPL-2.0-or-later", "LGPL-2.1-or-later", "Apache-2.0", "GPL-3.0-only",
             "ISC", "Zlib", "MPL-2.0", "Artistic-1.0-Perl OR GPL-1.0-or-later")
_ORGS = ("acme", "cloudfab", "gridworks", "hpcd", "kubelab", "nettools", "opsys", "quanta", "stackio", "zeta")
_KINDS = (("clib", 34), ("python", 20), ("perl", 11), ("app", 15), ("golang", 8), ("texlive", 7), ("rubygem", 5))
_BIN: tuple[str, ...] = ("x86_64", "aarch64")  # as every fixture repo; the resolvers see x86_64, i686, noarch
_ISA = {"x86_64": "(x86-64)", "aarch64": "(aarch-64)", "i686": "(x86-32)", "noarch": ""}
_LIBDIR = {"x86_64": "/usr/lib64", "aarch64": "/usr/lib64", "i686": "/usr/lib", "noarch": "/usr/lib"}

# (name, flags, epoch, version, release, pre)
Dep = tuple[str, str, str, str, str, bool]


def dep(name: str, flags: str = "", evr: str = "", pre: bool = False) -> Dep:
    epoch, _, vr = evr.rpartition(":")
    ver, _, rel = vr.partition("-")
    return (name, flags, (epoch or "0") if evr else "", ver, rel, pre)


@dataclass
class SynPkg:
    name: str
    epoch: int
    ver: str
    rel: str
    arch: str
    summary: str
    description: str
    license: str
    sourcerpm: str
    files: list[str]
    provides: list[Dep] = field(default_factory=list)
    requires: list[Dep] = field(default_factory=list)
    recommends: list[Dep] = field(default_factory=list)
    obsoletes: list[Dep] = field(default_factory=list)
    conflicts: list[Dep] = field(default_factory=list)

    @property
    def evr(self) -> str:
        return f"{self.epoch}:{self.ver}-{self.rel}" if self.epoch else f"{self.ver}-{self.rel}"


@dataclass
class Project:
    """One source package: a stem, a family, its versions; what others require to use it."""

    stem: str
    kind: str
    epoch: int
    versions: list[tuple[str, str]]  # (version, release), oldest first
    multilib: bool = False
    cext: bool = False  # python C extension / arch-specific
    soname: str = ""  # clib: libfoo.so.N
    provide: str = ""  # python3.9dist(x) / perl(X::Y) / golang(...) / tex(x.sty) / rubygem(x)
    binary: str = ""  # app/tools: /usr/bin/x
    datafile: str = ""  # app: a path only filelists.xml lists
    deps: list[Project] = field(default_factory=list)

    @property
    def oldest(self) -> str:
        return self.versions[0][0]


class Generator:
    def __init__(self, count: int, seed: int, taken: set[str]) -> None:
        self.rng = random.Random(seed)
        self.count = count
        self.taken = set(taken)
        self.by_kind: dict[str, list[Project]] = {k: [] for k, _ in _KINDS}
        self.projects: list[Project] = []
        self.packages: list[SynPkg] = []

    # names ----------------------------------------------------------------------------------------------------
    def _stem(self) -> str:
        rng = self.rng
        while True:
            stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 4))))
            if rng.random() < 0.15:
                stem += rng.choice(("2", "3", "5", "-ng", "-utils", "-core", "kit", "fs", "mm"))
            if stem not in self.taken and f"lib{stem}" not in self.taken:
                self.taken.update((stem, f"lib{stem}"))
                return stem

    def _text(self, n: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(n))

    # projects -------------------------------------------------------------------------------------------------
    def _versions(self) -> list[tuple[str, str]]:
        rng = self.rng
        n = rng.choices((1, 2, 3, 4, 6), (45, 30, 15, 7, 3))[0]
        major, minor, patch = rng.randint(0, 12), rng.randint(0, 30), rng.randint(0, 9)
        out = []
        for _ in range(n):
            rel = rng.choice(("1.el9", "2.el9", "3.el9", "4.el9_2", "1.el9_4.1", "11.el9"))
            out.append((f"{major}.{minor}.{patch}", rel))
            if rng.random() < 0.7:
                patch += rng.randint(1, 3)
            else:
                minor, patch = minor + 1, 0
        return out

    def _pick_deps(self, kinds: Sequence[str], lo: int, hi: int, multilib_only: bool = False) -> list[Project]:
        """Dependencies among earlier projects: half from the oldest (core, small closures), half from
        anywhere before (deep trees)."""
        rng = self.rng
        pool = [p for k in kinds for p in self.by_kind[k]]
        if multilib_only:
            pool = [p for p in pool if p.multilib]
        if not pool:
            return []
        want = rng.randint(lo, hi)
        core = pool[: max(1, len(pool) // 20)]
        chosen: dict[int, Project] = {}
        for _ in range(want * 2):
            if len(chosen) >= want:
                break
            p = rng.choice(core) if rng.random() < 0.55 else rng.choice(pool)
            chosen[id(p)] = p
        return list(chosen.values())

    def _project(self) -> Project:
        rng = self.rng
        kind = rng.choices([k for k, _ in _KINDS], [w for _, w in _KINDS])[0]
        stem = self._stem()
        epoch = rng.choice((1, 2)) if rng.random() < 0.05 else 0
        p = Project(stem, kind, epoch, self._versions())
        major = p.oldest.split(".")[0]
        if kind == "clib":
            p.soname = f"lib{stem}.so.{int(major) + 1}"
            p.deps = self._pick_deps(("clib",), 0, 4)
            p.multilib = rng.random() < 0.25 and all(d.multilib for d in p.deps)
            if rng.random() < 0.5:
                p.binary = f"/usr/bin/{stem}"
        elif kind == "python":
            p.cext = rng.random() < 0.2
            p.provide = f"python3.9dist({stem})"
            p.deps = self._pick_deps(("python",), 0, 5) + (self._pick_deps(("clib",), 1, 2) if p.cext else [])
        elif kind == "perl":
            mod = f"{re.sub('[^a-z0-9]', '', stem).capitalize()}::{self._stem_word().capitalize()}"
            p.provide = f"perl({mod})"
            p.deps = self._pick_deps(("perl",), 0, 4)
        elif kind == "app":
            p.binary = f"/usr/bin/{stem}"
            p.datafile = f"/usr/share/{stem}/data/{stem}.dat"
            p.deps = (self._pick_deps(("clib",), 1, 5) + self._pick_deps(("app",), 0, 2)
                      + self._pick_deps(("python", "perl"), 0, 2))
        elif kind == "golang":
            p.provide = f"golang(github.com/{rng.choice(_ORGS)}/{stem})"
            p.deps = self._pick_deps(("golang",), 0, 5)
        elif kind == "texlive":
            p.provide = f"tex({stem}.sty)"
            p.deps = self._pick_deps(("texlive",), 0, 3)
        else:
            p.provide = f"rubygem({stem})"
            p.deps = self._pick_deps(("rubygem",), 0, 3)
        self.by_kind[kind].append(p)
        self.projects.append(p)
        return p

    # packages -------------------------------------------------------------------------------------------------
    @staticmethod
    def _so(soname: str, arch: str, sym: str = "") -> str:
        b64 = arch in ("x86_64", "aarch64")
        base = f"{soname}({sym})" if sym else (f"{soname}()" if b64 else soname)
        return base + ("(64bit)" if b64 else "")

    def _use(self, d: Project, arch: str) -> list[Dep]:
        """How a package of `arch` requires project d."""
        if d.kind == "clib":
            if arch == "noarch":
                return [dep(f"lib{d.stem}")]
            return [dep(self._so(d.soname, arch))]
        if d.kind == "app":
            return [dep(d.binary)] if self.rng.random() < 0.5 else [dep(d.stem, "GE", d.oldest)]
        if d.kind == "python":
            return [dep(d.provide, "GE", d.oldest)]
        return [dep(d.provide)]

    def _pkg(self, p: Project, name: str, ver: str, rel: str, arch: str, files: list[str], summary: str) -> SynPkg:
        s = SynPkg(name, p.epoch, ver, rel, arch, summary, f"{summary}. {self._text(self.rng.randint(20, 60))}.",
                   self.rng.choice(_LICENSES), f"{p.stem}-{ver}-{rel}.src.rpm", files)
        s.provides.append(dep(name, "EQ", f"{p.epoch}:{ver}-{rel}"))
        if arch != "noarch":
            s.provides.append(dep(f"{name}{_ISA[arch]}", "EQ", f"{p.epoch}:{ver}-{rel}"))
        return s

    def _emit(self, p: Project) -> None:
        rng = self.rng
        for ver, rel in p.versions:
            evr = f"{p.epoch}:{ver}-{rel}"
            if p.kind == "clib":
                arches: tuple[str, ...] = (*_BIN, "i686") if p.multilib else _BIN
                lib, dev = f"lib{p.stem}", f"lib{p.stem}-devel"
                sym = p.stem.upper().replace("-", "_") + "_" + ".".join(ver.split(".")[:2])
                for a in arches:
                    ld = _LIBDIR[a]
                    files = [f"{ld}/{p.soname}", f"{ld}/{p.soname}.{ver}", f"/usr/share/licenses/{lib}/COPYING",
                             f"/usr/share/doc/{lib}/README", f"/usr/share/doc/{lib}/NEWS"]
                    s = self._pkg(p, lib, ver, rel, a, files, f"{p.stem} {self._text(4)}")
                    s.provides += [dep(self._so(p.soname, a)), dep(self._so(p.soname, a, sym))]
                    s.requires += [dep(self._so("libc.so.6", a)), dep(self._so("libc.so.6", a, "GLIBC_2.34"))]
                    s.requires += [r for d in p.deps for r in self._use(d, a)]
                    if rng.random() < 0.1:
                        s.obsoletes.append(dep(f"{p.stem}-libs", "LT", evr))
                        s.provides.append(dep(f"{p.stem}-libs", "EQ", evr))
                    self.packages.append(s)
                    hdrs = [f"/usr/include/{p.stem}/{self._stem_word()}.h" for _ in range(rng.randint(1, 25))]
                    files = sorted(set(hdrs)) + [f"{ld}/lib{p.stem}.so", f"{ld}/pkgconfig/{p.stem}.pc"]
                    s = self._pkg(p, dev, ver, rel, a, files, f"Development files for {lib}")
                    s.provides.append(dep(f"pkgconfig({p.stem})", "EQ", ver))
                    s.requires.append(dep(f"{lib}{_ISA[a]}", "EQ", evr))
                    s.requires += [dep(f"pkgconfig({d.stem})") for d in p.deps]
                    self.packages.append(s)
                    if p.binary and a != "i686":
                        s = self._pkg(p, f"{p.stem}-tools", ver, rel, a, [p.binary, f"/usr/bin/{p.stem}-config",
                                      f"/usr/share/man/man1/{p.stem}.1.gz"], f"Command line tools for {lib}")
                        s.requires += [dep(f"{lib}{_ISA[a]}", "EQ", evr), dep(self._so(p.soname, a))]
                        self.packages.append(s)
            elif p.kind == "python":
                arches = _BIN if p.cext else ("noarch",)
                for a in arches:
                    site = f"{_LIBDIR[a]}/python3.9/site-packages"
                    mods = sorted({self._stem_word() for _ in range(rng.randint(2, 30))})
                    files = [f"{site}/{p.stem}/{m}.py" for m in mods]
                    files += [f"{site}/{p.stem}/__pycache__/{m}.cpython-39.pyc" for m in mods]
                    files.append(f"{site}/{p.stem}-{ver}.dist-info/METADATA")
                    s = self._pkg(p, f"python3-{p.stem}", ver, rel, a, files, f"Python 3 {self._text(5)}")
                    s.provides += [dep(p.provide, "EQ", ver), dep(f"python3dist({p.stem})", "EQ", ver),
                                   dep(f"python-{p.stem}", "EQ", evr)]
                    s.requires.append(dep("python(abi)", "EQ", "3.9"))
                    if a != "noarch":
                        s.requires.append(dep(self._so("libpython3.9.so.1.0", a)))
                        s.requires.append(dep(self._so("libc.so.6", a)))
                    s.requires += [r for d in p.deps for r in self._use(d, a)]
                    if rng.random() < 0.2:
                        s.recommends.append(dep(f"python3-{p.stem}+tests"))
                    self.packages.append(s)
            elif p.kind == "perl":
                pm = p.provide[5:-1].replace("::", "/")
                files = [f"/usr/share/perl5/vendor_perl/{pm}.pm", f"/usr/share/man/man3/{p.provide[5:-1]}.3pm.gz"]
                s = self._pkg(p, "perl-" + p.provide[5:-1].replace("::", "-"), ver, rel, "noarch", files,
                              f"Perl module {self._text(4)}")
                s.provides.append(dep(p.provide, "EQ", ver))
                s.requires += [dep("perl(:VERSION)", "GE", "5.10.0"), dep("perl-interpreter")]
                s.requires += [r for d in p.deps for r in self._use(d, "noarch")]
                self.packages.append(s)
            elif p.kind == "app":
                common = f"{p.stem}-common"
                files = [f"/usr/share/{p.stem}/{self._stem_word()}.xml" for _ in range(rng.randint(1, 12))]
                s = self._pkg(p, common, ver, rel, "noarch", sorted(set(files)) + [p.datafile],
                              f"Common files for {p.stem}")
                self.packages.append(s)
                for a in _BIN:
                    files = [p.binary, f"/etc/{p.stem}/{p.stem}.conf", f"/usr/lib/systemd/system/{p.stem}.service",
                             f"/usr/share/man/man1/{p.stem}.1.gz", f"/usr/share/doc/{p.stem}/README"]
                    s = self._pkg(p, p.stem, ver, rel, a, files, f"{p.stem.capitalize()} {self._text(6)}")
                    s.requires += [dep("/bin/sh", pre=True), dep(common, "EQ", evr), dep(self._so("libc.so.6", a))]
                    s.requires += [r for d in p.deps for r in self._use(d, a)]
                    if p.deps and rng.random() < 0.2:
                        s.requires.append(dep(p.deps[0].datafile or "/usr/bin/python3"))  # filelists-only path
                    if rng.random() < 0.3:
                        s.recommends.append(dep(f"{p.stem}-doc"))
                    if rng.random() < 0.05:
                        s.conflicts.append(dep(f"{p.stem}-legacy"))
                    self.packages.append(s)
            elif p.kind == "golang":
                org = p.provide.split("/")[1]
                name = f"golang-github-{org}-{p.stem}-devel"
                src = f"/usr/share/gocode/src/github.com/{org}/{p.stem}"
                files = sorted({f"{src}/{self._stem_word()}.go" for _ in range(rng.randint(3, 60))})
                s = self._pkg(p, name, ver, rel, "noarch", files, f"Go library {self._text(4)}")
                s.provides += [dep(p.provide, "EQ", ver), dep(f"{p.provide[:-1]}/internal)", "EQ", ver)]
                s.requires += [r for d in p.deps for r in self._use(d, "noarch")]
                self.packages.append(s)
            elif p.kind == "texlive":
                files = sorted({f"/usr/share/texlive/texmf-dist/tex/latex/{p.stem}/{self._stem_word()}.sty"
                                for _ in range(rng.randint(1, 20))})
                s = self._pkg(p, f"texlive-{p.stem}", ver, rel, "noarch", files, f"LaTeX package {p.stem}")
                s.provides.append(dep(p.provide, "EQ", ver))
                s.requires += [r for d in p.deps for r in self._use(d, "noarch")]
                self.packages.append(s)
            else:
                gem = f"/usr/share/gems/gems/{p.stem}-{ver}"
                files = sorted({f"{gem}/lib/{self._stem_word()}.rb" for _ in range(rng.randint(1, 15))})
                s = self._pkg(p, f"rubygem-{p.stem}", ver, rel, "noarch", files, f"Ruby gem {self._text(4)}")
                s.provides.append(dep(p.provide, "EQ", ver))
                s.requires += [r for d in p.deps for r in self._use(d, "noarch")]
                self.packages.append(s)

    def _stem_word(self) -> str:
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(1, 3)))

    def _top_level(self) -> None:
        """The site metapackages a role requests: each pulls a deep tree out of the late projects."""
        late = self.projects[len(self.projects) // 2:-1]  # the last one may be cut short
        picks = {
            "hpc-site-compute": [p for p in late if p.kind in ("app", "clib")],
            "hpc-site-ml": [p for p in late if p.kind in ("python", "clib")],
            "hpc-site-devel": [p for p in late if p.kind in ("golang", "perl", "texlive", "rubygem")],
        }
        for name in TOP_LEVEL:
            cands = picks[name]
            chosen = self.rng.sample(cands, min(12, len(cands)))
            s = SynPkg(name, 0, "2024.11", "1.el9", "noarch", f"Site metapackage {name}",
                       f"Pulls in the {name.split('-')[-1]} software stack of the site.", "MIT",
                       "hpc-site-2024.11-1.el9.src.rpm", [f"/usr/share/doc/{name}/README"])
            s.provides.append(dep(name, "EQ", "0:2024.11-1.el9"))
            for p in chosen:
                if p.kind == "clib":
                    s.requires.append(dep(f"lib{p.stem}-devel" if name == "hpc-site-devel" else f"lib{p.stem}"))
                elif p.kind == "app":
                    s.requires.append(dep(p.stem, "GE", p.oldest))
                else:
                    s.requires += self._use(p, "noarch")
            self.packages.append(s)

    def generate(self) -> list[SynPkg]:
        while len(self.packages) < self.count - len(TOP_LEVEL):
            self._emit(self._project())
        del self.packages[self.count - len(TOP_LEVEL):]  # the last project may end half-emitted: its
        self._top_level()  # packages' deps all point to earlier, complete projects, so it stays consistent
        return self.packages


_FLAGS_OK = {"EQ", "LT", "LE", "GT", "GE"}


def _entries(tag: str, deps: Iterable[Dep]) -> str:
    rows = []
    for name, flags, epoch, ver, rel, pre in sorted(set(deps)):
        attrs = f"name={quoteattr(name)}"
        if flags:
            assert flags in _FLAGS_OK
            attrs += f' flags="{flags}" epoch="{epoch}" ver="{ver}"' + (f' rel="{rel}"' if rel else "")
        if pre:
            attrs += ' pre="1"'
        rows.append(f"      <rpm:entry {attrs}/>")
    return f"    <rpm:{tag}>\n" + "\n".join(rows) + f"\n    </rpm:{tag}>\n" if rows else ""


def _primary_file(path: str) -> bool:
    """createrepo_c's rule for the files listed in primary.xml."""
    return path.startswith("/etc/") or "bin/" in path or path == "/usr/lib/sendmail"


def _pkgid(p: SynPkg) -> str:
    return hashlib.sha256(f"{p.name}-{p.evr}.{p.arch}".encode()).hexdigest()


def write_synthetic_repo(root: Path, packages: Sequence[SynPkg]) -> dict[str, int]:
    """primary.xml.gz + filelists.xml.gz + repomd.xml (sha256 checksums, sizes, timestamps) under root/repodata."""
    repodata = root / "repodata"
    shutil.rmtree(repodata, ignore_errors=True)
    repodata.mkdir(parents=True)
    pkgs = sorted(packages, key=lambda p: (p.name, p.arch, p.epoch, p.ver, p.rel))
    n = len(pkgs)
    prim = ['<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
            f'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="{n}">\n']
    fl = ['<?xml version="1.0" encoding="UTF-8"?>\n<filelists xmlns="http://linux.duke.edu/metadata/filelists" '
          f'packages="{n}">\n']
    nfiles = 0
    for p in pkgs:
        pid = _pkgid(p)
        fn = f"{p.name}-{p.ver}-{p.rel}.{p.arch}.rpm"
        size = 4000 + int(pid[:5], 16) % 900_000
        ver = f'<version epoch="{p.epoch}" ver="{p.ver}" rel="{p.rel}"/>'
        prim.append(
            f'<package type="rpm">\n  <name>{p.name}</name>\n  <arch>{p.arch}</arch>\n  {ver}\n'
            f'  <checksum type="sha256" pkgid="YES">{pid}</checksum>\n'
            f"  <summary>{escape(p.summary)}</summary>\n  <description>{escape(p.description)}</description>\n"
            f"  <packager>Synthetic Build System</packager>\n"
            f"  <url>https://synth.invalid/{p.sourcerpm.rsplit('-', 2)[0]}</url>\n"
            f'  <time file="{SOURCE_DATE_EPOCH}" build="{SOURCE_DATE_EPOCH}"/>\n'
            f'  <size package="{size}" installed="{size * 3}" archive="{size * 3 + 512}"/>\n'
            f'  <location href="Packages/{p.name[0].lower()}/{fn}"/>\n  <format>\n'
            f"    <rpm:license>{escape(p.license)}</rpm:license>\n    <rpm:vendor>Synthetic Site</rpm:vendor>\n"
            f"    <rpm:group>Unspecified</rpm:group>\n    <rpm:buildhost>build.synth.invalid</rpm:buildhost>\n"
            f"    <rpm:sourcerpm>{p.sourcerpm}</rpm:sourcerpm>\n"
            f'    <rpm:header-range start="4504" end="{4504 + size // 40}"/>\n'
            + _entries("provides", p.provides) + _entries("requires", p.requires)
            + _entries("conflicts", p.conflicts) + _entries("obsoletes", p.obsoletes)
            + _entries("recommends", p.recommends)
            + "".join(f"    <file>{escape(f)}</file>\n" for f in sorted(p.files) if _primary_file(f))
            + "  </format>\n</package>\n")
        fl.append(f'<package pkgid="{pid}" name="{p.name}" arch="{p.arch}">\n  {ver}\n'
                  + "".join(f"  <file>{escape(f)}</file>\n" for f in sorted(p.files)) + "</package>\n")
        nfiles += len(p.files)
    prim.append("</metadata>\n")
    fl.append("</filelists>\n")
    records = []
    sizes = {"packages": n, "files": nfiles}
    for kind, parts in (("primary", prim), ("filelists", fl)):
        raw = "".join(parts).encode()
        gz = gzip.compress(raw, compresslevel=6, mtime=SOURCE_DATE_EPOCH)
        digest = hashlib.sha256(gz).hexdigest()
        href = f"repodata/{digest}-{kind}.xml.gz"
        (root / href).write_bytes(gz)
        sizes[f"{kind}_bytes"], sizes[f"{kind}_gz_bytes"] = len(raw), len(gz)
        records.append(
            f'  <data type="{kind}">\n    <checksum type="sha256">{digest}</checksum>\n'
            f'    <open-checksum type="sha256">{hashlib.sha256(raw).hexdigest()}</open-checksum>\n'
            f'    <location href="{href}"/>\n    <timestamp>{SOURCE_DATE_EPOCH}</timestamp>\n'
            f"    <size>{len(gz)}</size>\n    <open-size>{len(raw)}</open-size>\n  </data>\n")
    (repodata / "repomd.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo" '
        'xmlns:rpm="http://linux.duke.edu/metadata/rpm">\n'
        f"  <revision>{SOURCE_DATE_EPOCH}</revision>\n" + "".join(records) + "</repomd>\n")
    return sizes


def fixture_names(repos: dict[str, Path]) -> set[str]:
    names: set[str] = set()
    for root in repos.values():
        for f in (root / "repodata").glob("*-primary.xml*"):
            if f.name.endswith(".gz"):
                names.update(re.findall(r"<name>([^<]+)</name>", gzip.decompress(f.read_bytes()).decode()))
    return names


def prepare_repos(dest: Path, count: int, seed: int) -> tuple[dict[str, Path], dict[str, int]]:
    """The fixture repos plus the synthetic one, reused when dest already holds this exact recipe."""
    repos = build_rpm_repos(dest / "fixtures")
    synth = dest / SYNTH_ID
    stamp = dest / ".synth-stamp"
    recipe = f"{GENERATOR_VERSION} {count} {seed} {(dest / 'fixtures' / '.rpmrepos-digest').read_text().strip()}"
    if stamp.exists() and (synth / "repodata" / "repomd.xml").exists():
        saved = json.loads(stamp.read_text())
        if saved.get("recipe") == recipe:
            return {**repos, SYNTH_ID: synth}, saved["sizes"]
    stamp.unlink(missing_ok=True)
    # Generate in a child process: the generator's heap would otherwise stay in this process, and every
    # child forked from it would start with that RSS (ru_maxrss survives exec), spoiling the RSS column.
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--generate-into", str(synth), "--synthetic", str(count), "--seed", str(seed),
           "--fixtures", str(dest)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"generating the synthetic repo failed:\n{res.stderr[-4000:]}")
    sizes = json.loads(res.stdout)
    print(f"generated {SYNTH_ID}: {sizes['packages']} packages, {sizes['files']} files, primary "
          f"{sizes['primary_bytes'] / 2**20:.0f} MiB ({sizes['primary_gz_bytes'] / 2**20:.1f} MiB gz), filelists "
          f"{sizes['filelists_bytes'] / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    stamp.write_text(json.dumps({"recipe": recipe, "sizes": sizes}))
    return {**repos, SYNTH_ID: synth}, sizes


# --------------------------------------------------------------------------------------------------------------
# Running and measuring
# --------------------------------------------------------------------------------------------------------------


def write_config(d: Path, repos: dict[str, Path], pkgs: Sequence[str], *more: dict[str, Path]) -> Path:
    """A config locking `pkgs` as role compute on distro el9 from `repos`, and as compute-N on el9-N from each of
    `more` (another distro × arch target each, as a second arch's repos would be)."""
    q = json.dumps  # JSON strings are valid TOML basic strings for these values
    lines = []
    for n, target in enumerate((repos, *more), 1):
        distro, role = ("el9", "compute") if n == 1 else (f"el9-{n}", f"compute-{n}")
        lines += [f"[distros.{distro}]", 'family = "rpm"', f"arches = [{q(ARCH)}]", 'releasever = "9"',
                  'base = "none"', "recommends = false", ""]
        for rid, root in target.items():
            lines += [f"[[distros.{distro}.repos]]", f"name = {q(rid)}", f"url = {q(root.resolve().as_uri())}", ""]
        lines += [f"[roles.{role}]", f"distro = {q(distro)}", "packages = [" + ", ".join(q(p) for p in pkgs) + "]",
                  ""]
    cfg = d / "imagebuild.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def dnf_options(root: Path, repos: dict[str, Path]) -> list[str]:
    opts = [f"--installroot={root}", "--releasever=9", f"--forcearch={ARCH}", "--setopt=reposdir=/dev/null",
            f"--setopt=cachedir={root / 'cache'}", "--setopt=install_weak_deps=False", "--setopt=best=True",
            "--setopt=gpgcheck=False", "--setopt=module_platform_id=platform:el9", "--setopt=installonly_limit=3"]
    opts += [f"--repofrompath={rid},{p.resolve().as_uri()}" for rid, p in repos.items()]
    return opts + ["--disablerepo=*"] + [f"--enablerepo={rid}" for rid in repos]


_DNF_API = r"""
import json, sys, time
t0 = time.perf_counter()
import dnf
a = json.loads(sys.argv[1])
b = dnf.Base()
c = b.conf
c.installroot = a["root"]
c.cachedir = a["root"] + "/cache"
c.reposdir = []
c.install_weak_deps = False
c.best = True
c.gpgcheck = False
c.module_platform_id = "platform:el9"
c.installonly_limit = 3
c.cacheonly = a["cacheonly"]
c.arch = a["arch"]
c.basearch = a["arch"]
c.substitutions["releasever"] = "9"
c.substitutions["arch"] = c.substitutions["basearch"] = a["arch"]
for rid, url in a["repos"]:
    b.repos.add_new_repo(rid, c, baseurl=[url])
b.fill_sack(load_system_repo=True)
b.install_specs(a["packages"])
b.resolve()
rows = sorted([p.name, p.evr, p.arch] for p in b.transaction.install_set)
print(json.dumps({"install": rows, "seconds": time.perf_counter() - t0}))
"""


def dnf_api_set(root: Path, repos: dict[str, Path], pkgs: Sequence[str], env: dict[str, str],
                cacheonly: bool) -> tuple[Measured, frozenset[Triple]]:
    arg = json.dumps({"root": str(root), "arch": ARCH, "cacheonly": cacheonly, "packages": list(pkgs),
                      "repos": [[rid, p.resolve().as_uri()] for rid, p in repos.items()]})
    m = run_measured([DNF_PYTHON, "-c", _DNF_API, arg], env)
    if m.rc != 0:
        fail("dnf API resolve", m)
    data = json.loads(m.out.strip().splitlines()[-1])
    return m, frozenset((r[0], r[1], r[2]) for r in data["install"])


_TXN_SUMMARY = re.compile(r"^Install\s+(\d+) Packages?$", re.M)


def dnf_cli(root: Path, repos: dict[str, Path], pkgs: Sequence[str], env: dict[str, str], warm: bool) -> Measured:
    cmd = ["dnf", *dnf_options(root, repos), *(["--cacheonly"] if warm else []), "install", "--assumeno", *pkgs]
    m = run_measured(cmd, env)
    # --assumeno: exit 1 after printing the transaction ("Operation aborted."); anything else is a failure
    if m.rc not in (0, 1) or not _TXN_SUMMARY.search(m.out) or "Operation aborted" not in m.out:
        fail(f"dnf install --assumeno ({'warm' if warm else 'cold'})", m)
    return m


def read_bom(path: Path) -> frozenset[Triple]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return frozenset((r[0], r[1], r[2]) for r in rows if len(r) == 3)


def set_diff(ours: frozenset[Triple], theirs: frozenset[Triple]) -> str:
    a = {(n, ar): v for n, v, ar in ours}
    b = {(n, ar): v for n, v, ar in theirs}
    lines = []
    for key in sorted(a.keys() | b.keys()):
        if a.get(key) != b.get(key):
            lines.append(f"  {key[0]}.{key[1]}: imagebuild {a.get(key, '-')}  dnf {b.get(key, '-')}")
    return "\n".join(lines)


def fail(what: str, m: Measured) -> None:
    sys.exit(f"{what} failed (exit {m.rc}):\n{m.out[-4000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--repeat", type=int, default=3, help="runs per measurement (median; default 3)")
    ap.add_argument("--synthetic", type=int, default=DEFAULT_SYNTH, metavar="N",
                    help=f"package entries in the generated repo (default {DEFAULT_SYNTH})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    ap.add_argument("--packages", nargs="+", default=GPU_ROLE, help="role packages (default: GPU compute role)")
    ap.add_argument("--fixtures", type=Path, help="build/reuse the repos here (default: inside the work dir)")
    ap.add_argument("--imagebuild", default=None,
                    help="command prefix for imagebuild (default: this python -m imagebuild, from this checkout)")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--check-targets", action="store_true",
                    help="exit 1 when a ratio misses its target or the sets differ")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--scale", action="store_true",
                    help="imagebuild alone: two distro x arch targets (a second set of repos, seed + 1) against one")
    ap.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)  # internal: see prepare_repos
    a = ap.parse_args()
    if a.generate_into:
        fixtures = build_rpm_repos(a.fixtures / "fixtures")
        packages = Generator(a.synthetic, a.seed, fixture_names(fixtures) | set(TOP_LEVEL)).generate()
        print(json.dumps(write_synthetic_repo(a.generate_into, packages)))
        return 0

    missing = missing_tools() + [t for t in ("dnf", DNF_PYTHON) if not shutil.which(t)]
    if missing:
        sys.exit(f"needs {', '.join(missing)}: run scripts/setup.sh --test")
    work = Path(tempfile.mkdtemp(prefix="bench-lock-dnf-"))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(LC_ALL="C", LANG="C")
    env.pop("PYTHONPATH", None)
    ib_env = dict(env)
    if a.imagebuild is None:  # this checkout; a given command runs the imagebuild it has (another checkout)
        ib_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    ib_cmd = (a.imagebuild or f"{sys.executable} -m imagebuild").split()
    res: dict[str, list[Measured]] = {k: [] for k in ("ib_cold", "ib_warm", "dnf_cold", "dnf_warm", "api_warm")}
    ib_set: frozenset[Triple] | None = None
    dnf_set: frozenset[Triple] | None = None
    dnf_version = subprocess.run(["dnf", "--version"], capture_output=True, text=True, env=env).stdout.split()[0]
    try:
        dest = (a.fixtures or work / "repos").resolve()
        repos, sizes = prepare_repos(dest, a.synthetic, a.seed)
        if a.scale:
            second, _ = prepare_repos(dest / "second", a.synthetic, a.seed + 1)
            return scale(a, work, ib_cmd, ib_env, repos, second)
        for i in range(a.repeat):
            cold, warm, d = lock_cold_warm(ib_cmd, ib_env, work, str(i), lambda d: write_config(d, repos, a.packages))
            res["ib_cold"].append(cold)
            res["ib_warm"].append(warm)
            ib_set = read_bom(d / "boms" / f"compute-{ARCH}.bom")

            root = work / f"dnf-{i}"
            root.mkdir()
            res["dnf_cold"].append(dnf_cli(root, repos, a.packages, env, warm=False))
            res["dnf_warm"].append(dnf_cli(root, repos, a.packages, env, warm=True))
            api, dnf_set = dnf_api_set(root, repos, a.packages, env, cacheonly=True)
            res["api_warm"].append(api)
            n_txn = int(_TXN_SUMMARY.findall(res["dnf_warm"][-1].out)[-1])
            if n_txn != len(dnf_set):
                sys.exit(f"dnf CLI transaction has {n_txn} packages, the API's {len(dnf_set)}")
            print(f"run {i + 1}/{a.repeat}: imagebuild cold {res['ib_cold'][-1].wall:.2f}s "
                  f"warm {res['ib_warm'][-1].wall:.2f}s | dnf cold {res['dnf_cold'][-1].wall:.2f}s "
                  f"warm {res['dnf_warm'][-1].wall:.2f}s", file=sys.stderr)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept: {work}", file=sys.stderr)

    med = {k: (statistics.median(m.wall for m in v), statistics.median(m.rss_kb for m in v),
               statistics.median(m.cpu for m in v)) for k, v in res.items()}
    r_cold = med["ib_cold"][0] / med["dnf_cold"][0]
    r_warm = med["ib_warm"][0] / med["dnf_warm"][0]
    rss_cold = med["ib_cold"][1] / med["dnf_cold"][1]
    rss_warm = med["ib_warm"][1] / med["dnf_warm"][1]

    def row(label: str, key: str) -> str:
        w, rss, cpu = med[key]
        return f"{label:<36} {w:9.2f} s {rss / 1024:10.0f} MiB {cpu:9.2f} s"

    print(f"\nimagebuild lock vs dnf {dnf_version} — {ARCH}, base none, weak deps off, {len(REPO_IDS)} fixture "
          f"repos + {SYNTH_ID} ({sizes['packages']} packages, {sizes['files']} files), "
          f"{len(a.packages)} requested packages, median of {a.repeat}")
    print(f"{'':<36} {'wall':>11} {'peak RSS':>14} {'user+sys':>11}")
    print(row("imagebuild lock, cold cache", "ib_cold"))
    print(row("dnf install --assumeno, cold cache", "dnf_cold"))
    print(f"{'ratio cold imagebuild/dnf':<36} {r_cold:9.2f} x   target <= {TARGET_COLD}x  "
          f"{'OK' if r_cold <= TARGET_COLD else 'MISSED'}   RSS x{rss_cold:.2f}")
    print(row("imagebuild lock, warm cache", "ib_warm"))
    print(row("dnf install --assumeno -C (warm)", "dnf_warm"))
    print(f"{'ratio warm imagebuild/dnf':<36} {r_warm:9.2f} x   target <= {TARGET_WARM}x  "
          f"{'OK' if r_warm <= TARGET_WARM else 'MISSED'}   RSS x{rss_warm:.2f}")
    print(row("  (dnf Python API resolve, warm)", "api_warm"))
    print(f"{'cpu ratios imagebuild/dnf':<36} cold {med['ib_cold'][2] / med['dnf_cold'][2]:.2f} x, "
          f"warm {med['ib_warm'][2] / med['dnf_warm'][2]:.2f} x")
    same = ib_set == dnf_set
    verdict = "equals" if same else "DIFFERS from"
    print(f"result: imagebuild BOM {verdict} dnf's transaction ({len(dnf_set or ())} packages)")
    if not same and ib_set is not None and dnf_set is not None:
        print(set_diff(ib_set, dnf_set))

    if a.json:
        a.json.write_text(json.dumps({
            "arch": ARCH, "dnf_version": dnf_version, "packages": a.packages, "synthetic": sizes, "seed": a.seed,
            "repeat": a.repeat, "ratio_cold": r_cold, "ratio_warm": r_warm, "bom_equals_dnf": same,
            "runs": {k: [{"wall_s": m.wall, "peak_rss_kb": m.rss_kb, "cpu_s": m.cpu} for m in v]
                     for k, v in res.items()},
        }, indent=2) + "\n")
    if a.check_targets and (r_cold > TARGET_COLD or r_warm > TARGET_WARM or not same):
        return 1
    return 0


def scale(a: argparse.Namespace, work: Path, ib_cmd: list[str], env: dict[str, str], repos: dict[str, Path],
          second: dict[str, Path]) -> int:
    """Cold and warm locks of one target against two (the role on `repos`, and again on `second`): how a lock
    grows with its distro × arch targets."""
    def one(d: Path) -> Path:
        return write_config(d, repos, a.packages)

    def two(d: Path) -> Path:
        return write_config(d, repos, a.packages, second)

    res = scale_runs(a.repeat, {"1 target": one, "2 targets": two}, ib_cmd, env, work)
    return scale_report(res, f"imagebuild lock, 2 rpm distro x arch targets against 1 — {ARCH}, "
                        f"{len(a.packages)} requested packages each", "1 target", "2 targets", TARGET_SCALE, a.json,
                        a.check_targets)


if __name__ == "__main__":
    raise SystemExit(main())
