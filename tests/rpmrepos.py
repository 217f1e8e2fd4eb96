"""Fixture RPM repositories built by the real tools, shaped like the real distro and vendor repos.

``build_rpm_repos(dest)`` writes five yum/dnf repositories under ``dest`` and returns ``{repo id: root}``
(the root is the directory holding ``repodata/``):

* ``baseos``    Rocky 9 BaseOS-like: glibc (x86_64 + i686 multilib, aarch64, two releases), bash, coreutils
                (+ the conflicting coreutils-single), two installonly kernels, kmod, dracut, systemd, rdma-core,
                openssh, python3 (satisfies the file dependency ``/usr/bin/python3`` of tuned), epochs
                (tar 2:, bash-completion 1:, tcl 1:, findutils 1:), rich, weak, file deps, Obsoletes.
* ``appstream`` Rocky 9 AppStream-like: python3-devel/pip/numpy, gcc/cpp (two releases), make, perl (epoch 4),
                glibc-devel/headers, kernel-devel/-headers/-devel-matched for both kernels, elfutils-libelf-devel,
                environment-modules, langpacks-core-en.
* ``epel``      EPEL 9-like: dkms 3.0.10 and 3.1.8, slurm (+ slurmd, slurmctld, libs), munge, munge-libs, pmix.
                The one repo whose metadata is xz-compressed (Fedora infra ships zstd, which createrepo_c 0.17
                on Debian 12 cannot write), plus sqlite databases.
* ``cuda``      NVIDIA CUDA rhel9-like (flat): drivers 3:565.57.01 and 3:575.57.08 (both branches present),
                cuda-drivers, cuda 12.6 toolkit metapackages, libnccl 2.21.5-1+cuda12.4 and 2.23.4-1+cuda12.6, and a
                ``modules.yaml`` (module ``nvidia-driver``, several streams, default stream ``latest-dkms``).
* ``doca``      DOCA 2.9 / OFED 24.10-like (flat): doca-ofed, doca-roce, doca-ofed-userspace, mlnx-ofa_kernel,
                two kmod-mlnx-ofa_kernel builds each tied to one kernel (``kernel-core = V``), ucx, DOCA's own
                rdma-core ``2410mlnx54`` that outranks the distro's ``48.0``.

Every repo holds x86_64, aarch64 and noarch packages (and i686 multilib where the real repos have it), so
one repo root serves ``--forcearch=x86_64`` and ``--forcearch=aarch64`` alike.

RPMs are built by ``rpmbuild`` from generated spec files (one spec per target arch and "slot", each package a
``%package -n`` subpackage; no scriptlets, ``AutoReqProv: no``, gzip payload, SOURCE_DATE_EPOCH-clamped), the
metadata by ``createrepo_c`` and ``modifyrepo_c``.  The build is deterministic (byte-identical output for the
same tool versions) and cached: ``dest/.rpmrepos-digest`` holds the digest of the recipe (all spec texts,
createrepo arguments, modules.yaml and tool versions); a matching digest reuses what is there.
Run ``python tests/rpmrepos.py DEST`` to build and print timings.  See ``tests/data/rpm/README.md``.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["REPO_IDS", "SOURCE_DATE_EPOCH", "build_rpm_repos", "missing_tools", "modules_yaml"]

REPO_IDS = ("baseos", "appstream", "epel", "cuda", "doca")

#: Build time of every package and timestamp of every repomd (2024-11-22T00:00:00Z).
SOURCE_DATE_EPOCH = 1732233600

#: Bump to force a rebuild when the builder changes in a way the recipe digest would not see.
_BUILDER_VERSION = "1"

_DIGEST_FILE = ".rpmrepos-digest"
_LOCK_FILE = ".rpmrepos.lock"
_TOOLS = ("rpmbuild", "createrepo_c", "modifyrepo_c")

X86, I686, ARM, NOARCH = "x86_64", "i686", "aarch64", "noarch"
EL = (X86, ARM)  # the arches every Rocky/EPEL/CUDA/DOCA repo carries
ML = (X86, I686, ARM)  # plus 32-bit multilib on x86_64
NA = (NOARCH,)


# --------------------------------------------------------------------------------------------------------------
# Recipe model
# --------------------------------------------------------------------------------------------------------------

DepMap = Mapping[str, Sequence[str]]
_DEP_KINDS = ("requires", "provides", "recommends", "suggests", "supplements", "enhances", "obsoletes", "conflicts")


@dataclass(frozen=True)
class Pkg:
    """One package (all its arches).  Dependency strings may use the per-arch tokens ``{isa}`` (``(x86-64)``),
    ``{arch}``, ``{libdir}`` and ``SO(libfoo.so.1)`` / ``SO(libfoo.so.1,SYMVER)`` (soname deps, ``()(64bit)``
    suffixed on 64-bit arches)."""

    name: str
    evr: str  # "[E:]V-R"
    arches: tuple[str, ...]
    deps: DepMap = field(default_factory=dict)
    arch_deps: Mapping[str, DepMap] = field(default_factory=dict)  # arch -> extra deps
    files: tuple[str, ...] = ()  # payload paths (default: /usr/share/doc/NAME/README)
    summary: str = ""
    vendor: str = ""
    license: str = "MIT"

    @property
    def epoch(self) -> str:
        return self.evr.split(":", 1)[0] if ":" in self.evr else ""

    @property
    def version(self) -> str:
        return self.evr.split(":", 1)[-1].rsplit("-", 1)[0]

    @property
    def release(self) -> str:
        return self.evr.rsplit("-", 1)[1]

    def nevra(self, arch: str) -> str:
        """Module artifact form: ``name-E:V-R.arch`` (epoch always written)."""
        return f"{self.name}-{self.epoch or '0'}:{self.version}-{self.release}.{arch}"

    def filename(self, arch: str) -> str:
        return f"{self.name}-{self.version}-{self.release}.{arch}.rpm"


@dataclass(frozen=True)
class Repo:
    id: str
    vendor: str
    packages: tuple[Pkg, ...]
    layout: str  # "packages" (Packages/<letter>/) or "flat"
    compress: str  # createrepo_c --general-compress-type
    database: bool  # sqlite databases too
    distro: str = ""


_ISA = {X86: "(x86-64)", I686: "(x86-32)", ARM: "(aarch-64)", NOARCH: ""}
_LIBDIR = {X86: "/usr/lib64", I686: "/usr/lib", ARM: "/usr/lib64", NOARCH: "/usr/lib"}
_SO_RE = re.compile(r"SO\(([^,()]+)(?:,([^()]+))?\)")


def _expand(text: str, arch: str) -> str:
    bits64 = arch in (X86, ARM)

    def so(m: re.Match[str]) -> str:
        lib, sym = m.group(1), m.group(2)
        dep = f"{lib}({sym})" if sym else (f"{lib}()" if bits64 else lib)
        return dep + ("(64bit)" if bits64 else "")

    text = _SO_RE.sub(so, text)
    return text.replace("{isa}", _ISA[arch]).replace("{arch}", arch).replace("{libdir}", _LIBDIR[arch])


def P(name: str, evr: str, arches: tuple[str, ...] = EL, *, files: Iterable[str] = (), summary: str = "",
      arch_deps: Mapping[str, DepMap] | None = None, **deps: Sequence[str] | str) -> Pkg:
    """Shorthand: ``P("bash", "5.1.8-9.el9", requires=["SO(libc.so.6)"], provides="/bin/sh")``."""
    norm: dict[str, tuple[str, ...]] = {}
    for kind, value in deps.items():
        if kind not in _DEP_KINDS:
            raise TypeError(f"unknown dependency kind {kind!r} for {name}")
        norm[kind] = (value,) if isinstance(value, str) else tuple(value)
    return Pkg(name, evr, arches, norm, arch_deps or {}, tuple(files), summary)


# --------------------------------------------------------------------------------------------------------------
# The repos
# --------------------------------------------------------------------------------------------------------------

GLIBC = ("2.34-100.el9", "2.34-100.el9_4.2")
KERNELS = ("5.14.0-427.13.1.el9_4", "5.14.0-427.42.1.el9_4")
DRIVERS = ("565.57.01", "575.57.08")
CUDA_MIN_DRIVER = "560.35.05"  # cuda-runtime-12-6 needs at least this driver


def _baseos() -> list[Pkg]:
    out: list[Pkg] = []
    libc = "SO(libc.so.6)"
    for vr in GLIBC:
        out += [
            P("glibc", vr, ML, files=["{libdir}/libc.so.6", "{libdir}/libm.so.6"],
              requires=[f"glibc-common = {vr}",
                        f"(glibc-minimal-langpack = {vr} or glibc-langpack-en = {vr})",
                        "basesystem"],
              provides=["SO(libc.so.6)", "SO(libc.so.6,GLIBC_2.34)", "SO(libm.so.6)", "SO(libdl.so.2)"],
              arch_deps={X86: {"provides": ["SO(ld-linux-x86-64.so.2)"]}, I686: {"provides": ["SO(ld-linux.so.2)"]},
                         ARM: {"provides": ["SO(ld-linux-aarch64.so.1)"]}},
              summary="The GNU libc libraries"),
            P("glibc-common", vr, files=["/usr/bin/ldd", "/usr/sbin/ldconfig"],
              requires=[f"glibc = {vr}", "bash", "tzdata >= 2003a"],
              summary="Common binaries and locale data for glibc"),
            P("glibc-minimal-langpack", vr, requires=[f"glibc-common = {vr}"], provides="glibc-langpack"),
            P("glibc-langpack-en", vr, requires=[f"glibc-common = {vr}"], provides="glibc-langpack",
              supplements=f"(glibc = {vr} and (langpacks-core-en or langpacks-en))"),
        ]
    out += [
        P("tzdata", "2024b-2.el9", NA, files=["/usr/share/zoneinfo/UTC"]),
        P("basesystem", "11-13.el9", NA, requires=["setup", "filesystem"]),
        P("setup", "2.13.7-10.el9", NA, files=["/etc/passwd", "/etc/group"]),
        P("filesystem", "3.16-2.el9", (X86, ARM), requires="setup"),
        P("libgcc", "11.4.1-3.el9", ML, files=["{libdir}/libgcc_s.so.1"],
          provides=["SO(libgcc_s.so.1)", "SO(libgcc_s.so.1,GCC_3.0)"]),
        P("bash", "5.1.8-9.el9", files=["/usr/bin/bash", "/usr/bin/sh"], requires=[libc, "filesystem >= 3"],
          provides=["/bin/sh", "/bin/bash"]),
        P("bash-completion", "1:2.11-5.el9", NA, requires="bash >= 4.1"),
        P("coreutils", "8.32-35.el9", files=["/usr/bin/ls", "/usr/bin/cat"],
          requires=["coreutils-common = 8.32-35.el9", libc], conflicts="coreutils-single"),
        P("coreutils-common", "8.32-35.el9", files=["/usr/share/locale/en/LC_MESSAGES/coreutils.mo"]),
        P("coreutils-single", "8.32-35.el9", files=["/usr/bin/coreutils"], requires=libc,
          provides=["coreutils = 8.32-35.el9", "coreutils{isa} = 8.32-35.el9"],
          conflicts=["coreutils < 8.32-35.el9", "coreutils > 8.32-35.el9"], suggests="coreutils-common"),
        P("kmod", "28-9.el9", files=["/usr/bin/kmod", "/usr/sbin/modprobe"], requires=libc,
          provides=["module-init-tools = 4.0-1", "/sbin/modprobe"]),
        P("dracut", "057-53.git20240104.el9", files=["/usr/bin/dracut"],
          requires=["bash >= 4", "coreutils", "kmod >= 23", "systemd >= 219", "tar", "gzip",
                    "/usr/lib/systemd/systemd-udevd"],  # a file dep only filelists.xml can satisfy
          provides=["dracut-fips = 057-53.git20240104.el9"], obsoletes="dracut-fips <= 047"),
        P("systemd", "252-32.el9_4", files=["/usr/bin/systemctl", "/usr/lib/systemd/systemd"],
          requires=["systemd-libs{isa} = 252-32.el9_4", "bash", libc],
          recommends="(systemd-udev = 252-32.el9_4 if kernel-core)",
          provides=["/sbin/init", "SO(libsystemd-shared-252.so)"]),
        P("systemd-libs", "252-32.el9_4", files=["{libdir}/libsystemd.so.0"], requires=libc,
          provides=["SO(libsystemd.so.0)", "SO(libsystemd.so.0,LIBSYSTEMD_209)"]),
        P("systemd-udev", "252-32.el9_4",
          files=["/usr/bin/udevadm", "/usr/bin/kernel-install", "/usr/lib/systemd/systemd-udevd"],
          requires=["systemd{isa} = 252-32.el9_4", "kmod"]),
        P("linux-firmware", "20240716-143.2.el9_4", NA, requires="linux-firmware-whence",
          files=["/usr/lib/firmware/README"]),
        P("linux-firmware-whence", "20240716-143.2.el9_4", NA),
        P("rdma-core", "48.0-1.el9", files=["/etc/rdma/rdma.conf", "/usr/sbin/rdma-ndd"],
          requires=["dracut", "kmod", "systemd", libc]),
        P("libibverbs", "48.0-1.el9", files=["{libdir}/libibverbs.so.1", "{libdir}/libmlx5.so.1"],
          requires=["rdma-core{isa} = 48.0-1.el9", libc],
          provides=["SO(libibverbs.so.1)", "SO(libibverbs.so.1,IBVERBS_1.1)", "SO(libmlx5.so.1)",
                    "libmlx5 = 48.0-1.el9", "libmlx4 = 48.0-1.el9"],
          obsoletes=["libmlx5 < 48.0-1.el9", "libmlx4 < 48.0-1.el9"]),
        P("librdmacm", "48.0-1.el9", files=["{libdir}/librdmacm.so.1"],
          requires=["rdma-core{isa} = 48.0-1.el9", "SO(libibverbs.so.1)", libc], provides="SO(librdmacm.so.1)"),
        # legacy userspace provider library that libibverbs obsoletes (a base image may still carry it)
        P("libmlx5", "1.2.1-1.el9", files=["{libdir}/libmlx5-rdmav2.so"], requires=libc),
        P("openssh", "8.7p1-38.el9_4.4", files=["/usr/bin/ssh-keygen"], requires=[libc, "SO(libcrypto.so.3)"]),
        P("openssh-server", "8.7p1-38.el9_4.4", files=["/usr/sbin/sshd", "/etc/ssh/sshd_config"],
          requires=["openssh = 8.7p1-38.el9_4.4", "(systemd or initscripts)", libc]),
        P("openssh-clients", "8.7p1-38.el9_4.4", files=["/usr/bin/ssh", "/etc/ssh/ssh_config"],
          requires=["openssh = 8.7p1-38.el9_4.4", libc], suggests="openssh-askpass"),
        P("openssl-libs", "1:3.0.7-27.el9", files=["{libdir}/libcrypto.so.3", "{libdir}/libssl.so.3"],
          requires=libc, provides=["SO(libcrypto.so.3)", "SO(libssl.so.3)", "SO(libcrypto.so.3,OPENSSL_3.0.0)"]),
        P("python3", "3.9.18-3.el9_4.6", files=["/usr/bin/python3", "/usr/bin/python3.9"],
          requires=["python3-libs{isa} = 3.9.18-3.el9_4.6", "python-unversioned-command"],
          provides=["python(abi) = 3.9", "python3.9 = 3.9.18-3.el9_4.6"]),
        P("python3-libs", "3.9.18-3.el9_4.6", files=["{libdir}/libpython3.9.so.1.0"],
          requires=[libc, "python3-setuptools-wheel"], provides="SO(libpython3.9.so.1.0)"),
        P("python-unversioned-command", "3.9.18-3.el9_4.6", NA, files=["/usr/bin/python"],
          requires="python3 = 3.9.18-3.el9_4.6"),
        P("python3-setuptools-wheel", "53.0.0-12.el9_4.1", NA),
        P("python3-setuptools", "53.0.0-12.el9_4.1", NA, requires="python(abi) = 3.9"),
        # file dependency: /usr/bin/python3 is only in python3's payload (no explicit Provides)
        P("tuned", "2.24.0-1.el9", NA, files=["/usr/sbin/tuned"],
          requires=["/usr/bin/python3", "python3-setuptools", "(systemd or systemd-standalone-sysusers)"],
          recommends=["(tuned-profiles-cpu-partitioning if kernel-rt)", "kmod"],
          suggests="tuned-utils"),
        P("elfutils-libelf", "0.190-2.el9", files=["{libdir}/libelf.so.1"], requires=libc,
          provides="SO(libelf.so.1)"),
        P("tcl", "1:8.6.10-7.el9", files=["/usr/bin/tclsh"], requires=libc, provides="tcl(abi) = 8.6"),
        P("binutils", "2.35.2-43.el9", files=["/usr/bin/ld", "/usr/bin/as"], requires=libc),
        P("tar", "2:1.34-6.el9_4.1", files=["/usr/bin/tar"], requires=libc, provides="/bin/tar"),
        P("gzip", "1.12-1.el9", files=["/usr/bin/gzip"], requires=libc, provides="/bin/gzip"),
        P("findutils", "1:4.8.0-6.el9", files=["/usr/bin/find"], requires=libc),
        P("procps-ng", "3.3.17-14.el9", files=["/usr/bin/ps", "/usr/bin/free"], requires=libc),
        P("gawk", "5.1.0-6.el9", files=["/usr/bin/gawk"], requires=libc, provides="/bin/awk"),
    ]
    for kv in KERNELS:
        for arch in EL:
            uname = f"{kv}.{arch}"
            out += [
                P("kernel", kv, (arch,),
                  requires=[f"kernel-core-uname-r = {uname}", f"kernel-modules-uname-r = {uname}",
                            f"kernel-modules-core-uname-r = {uname}"],
                  provides="installonlypkg(kernel)", summary="The Linux kernel (meta package)"),
                P("kernel-core", kv, (arch,),
                  files=[f"/lib/modules/{uname}/vmlinuz", f"/lib/modules/{uname}/System.map"],
                  requires=["/bin/sh", "coreutils", "dracut >= 027", "systemd >= 203-2", "/usr/bin/kernel-install",
                            "kmod", "linux-firmware >= 20150904-56.git6ebf5d57",
                            f"kernel-modules-core-uname-r = {uname}"],
                  provides=[f"kernel = {kv}", f"kernel-uname-r = {uname}", f"kernel-core-uname-r = {uname}",
                            "installonlypkg(kernel)", f"kernel-{arch} = {kv}"]),
                P("kernel-modules-core", kv, (arch,), files=[f"/lib/modules/{uname}/modules.order"],
                  requires=[f"kernel-uname-r = {uname}"],
                  provides=[f"kernel-modules-core-uname-r = {uname}", "installonlypkg(kernel-module)",
                            f"kernel-modules-core-{arch} = {kv}"]),
                P("kernel-modules", kv, (arch,), files=[f"/lib/modules/{uname}/kernel/drivers/README"],
                  requires=[f"kernel-uname-r = {uname}", f"kernel-modules-core-uname-r = {uname}"],
                  provides=[f"kernel-modules-uname-r = {uname}", "installonlypkg(kernel-module)",
                            f"kernel-modules-{arch} = {kv}"]),
            ]
    return out


def _appstream() -> list[Pkg]:
    libc = "SO(libc.so.6)"
    out = [
        P("python3-devel", "3.9.18-3.el9_4.6", files=["/usr/include/python3.9/Python.h"],
          requires=["python3 = 3.9.18-3.el9_4.6", "python3-libs{isa} = 3.9.18-3.el9_4.6",
                    "(python-rpm-macros if rpm-build)"]),
        P("python3-pip", "21.2.3-7.el9", NA, files=["/usr/bin/pip3"],
          requires=["python(abi) = 3.9", "python3-setuptools"], recommends="python3-pip-wheel"),
        P("python3-pip", "21.2.3-8.el9", NA, files=["/usr/bin/pip3"],
          requires=["python(abi) = 3.9", "python3-setuptools"], recommends="python3-pip-wheel"),
        P("python3-numpy", "1:1.20.1-5.el9", requires=["python(abi) = 3.9", libc, "SO(libpython3.9.so.1.0)"]),
        P("make", "1:4.3-8.el9", files=["/usr/bin/make"], requires=libc, provides="/usr/bin/gmake"),
        P("perl", "4:5.32.1-481.el9", requires=["perl-interpreter = 4:5.32.1-481.el9", "perl-libs = 4:5.32.1-481.el9"]),
        P("perl-interpreter", "4:5.32.1-481.el9", files=["/usr/bin/perl"],
          requires=["perl-libs{isa} = 4:5.32.1-481.el9", libc], provides="perl(:VERSION) = 5.32.1"),
        P("perl-libs", "4:5.32.1-481.el9", files=["{libdir}/perl5/CORE/libperl.so"], requires=libc,
          provides="SO(libperl.so.5.32)"),
        P("elfutils-libelf-devel", "0.190-2.el9", files=["/usr/include/libelf.h"],
          requires=["elfutils-libelf{isa} = 0.190-2.el9"]),
        P("environment-modules", "5.3.0-1.el9", files=["/usr/share/Modules/libexec/modulecmd.tcl"],
          requires=["tcl >= 8.5", "procps-ng", "/usr/bin/ps"]),  # tcl is 1:8.6.10: epoch-less ">= 8.5" still holds
        P("langpacks-core-en", "3.0-16.el9", NA),
    ]
    for vr in ("11.4.1-2.1.el9", "11.4.1-3.el9"):
        out += [
            P("gcc", vr, files=["/usr/bin/gcc"],
              requires=[f"cpp = {vr}", "binutils >= 2.31", "glibc-devel >= 2.2.90-12", f"libgcc >= {vr}", libc]),
            P("cpp", vr, files=["/usr/bin/cpp"], requires=libc),
        ]
    for vr in GLIBC:
        out += [
            P("glibc-devel", vr, files=["/usr/include/gnu/stubs-64.h"], requires=[f"glibc{{isa}} = {vr}"],
              arch_deps={X86: {"requires": [f"glibc-headers{{isa}} = {vr}"]}}),
            P("glibc-headers", vr, (X86,), files=["/usr/include/stdio.h"],
              requires=[f"glibc = {vr}", "kernel-headers >= 3.2"]),
        ]
    for kv in KERNELS:
        for arch in EL:
            uname = f"{kv}.{arch}"
            out += [
                P("kernel-devel", kv, (arch,), files=[f"/usr/src/kernels/{uname}/Makefile"],
                  requires=["findutils", "gawk", "tar", "gcc", "make", "perl-interpreter", "elfutils-libelf-devel"],
                  provides=[f"kernel-devel-uname-r = {uname}", "installonlypkg(kernel)",
                            f"kernel-devel-{arch} = {kv}"]),
                P("kernel-devel-matched", kv, (arch,), requires=[f"kernel-core = {kv}", f"kernel-devel = {kv}"]),
                P("kernel-headers", kv, (arch,), files=["/usr/include/linux/version.h"]),
            ]
    return out


def _epel() -> list[Pkg]:
    libc = "SO(libc.so.6)"
    dkms_req = ["coreutils", "findutils", "gawk", "gcc", "gzip", "kmod", "make", "tar",
                "(kernel-devel-matched if kernel-core)", "bash > 4.1"]
    sv = "22.05.9-1.el9"
    return [
        P("dkms", "3.0.10-1.el9", NA, files=["/usr/sbin/dkms"], requires=dkms_req, recommends="openssl"),
        P("dkms", "3.1.8-1.el9", NA, files=["/usr/sbin/dkms"], requires=dkms_req, recommends="openssl"),
        P("munge", "0.5.13-13.el9", files=["/usr/sbin/munged"],
          requires=["munge-libs{isa} = 0.5.13-13.el9", "systemd", libc]),
        P("munge-libs", "0.5.13-13.el9", files=["{libdir}/libmunge.so.2"], requires=libc,
          provides="SO(libmunge.so.2)"),
        P("pmix", "3.2.3-5.el9", files=["{libdir}/libpmix.so.2"], requires=libc, provides="SO(libpmix.so.2)"),
        P("slurm", sv, files=["/usr/bin/sinfo", "/usr/bin/srun"],
          requires=[f"slurm-libs{{isa}} = {sv}", "munge", "SO(libmunge.so.2)", "pmix", libc]),
        P("slurm-libs", sv, files=["{libdir}/libslurmfull.so"], requires=libc, provides="SO(libslurmfull.so)"),
        P("slurm-slurmd", sv, files=["/usr/sbin/slurmd"],
          requires=[f"slurm{{isa}} = {sv}", "SO(libslurmfull.so)", "systemd"], recommends="hwloc-libs"),
        P("slurm-slurmctld", sv, files=["/usr/sbin/slurmctld"],
          requires=[f"slurm{{isa}} = {sv}", "SO(libslurmfull.so)", "systemd"]),
    ]


def _cuda() -> tuple[list[Pkg], list[dict[str, object]]]:
    libc = "SO(libc.so.6)"
    out: list[Pkg] = []
    branches: dict[str, dict[str, Pkg]] = {}
    for v in DRIVERS:
        e = f"3:{v}"
        vr = f"{e}-1.el9"
        pk = {
            "nvidia-driver": P("nvidia-driver", vr, files=["/usr/lib/nvidia/nvidia_drv.so"],
                               requires=[f"nvidia-driver-libs{{isa}} = {vr}", f"nvidia-kmod-common = {e}",
                                         f"nvidia-modprobe = {e}"],
                               provides=f"nvidia-drivers = {vr}", conflicts="xorg-x11-drv-nvidia",
                               arch_deps={X86: {"recommends": [f"nvidia-driver-libs(x86-32) = {vr}"]}}),
            "nvidia-driver-cuda": P("nvidia-driver-cuda", vr, files=["/usr/bin/nvidia-smi"],
                                    requires=[f"nvidia-driver-cuda-libs{{isa}} = {vr}", f"nvidia-persistenced = {e}",
                                              libc]),
            "nvidia-driver-cuda-libs": P("nvidia-driver-cuda-libs", vr, ML, files=["{libdir}/libcuda.so.1"],
                                         requires=libc, provides=["SO(libcuda.so.1)", "SO(libnvidia-ml.so.1)"]),
            "nvidia-driver-libs": P("nvidia-driver-libs", vr, ML, files=["{libdir}/libGLX_nvidia.so.0"],
                                    requires=[libc, "SO(libgcc_s.so.1)"], provides="SO(libGLX_nvidia.so.0)"),
            "nvidia-kmod-common": P("nvidia-kmod-common", vr, NA,
                                    files=["/usr/lib/modprobe.d/nvidia.conf"], requires=f"nvidia-kmod = {e}"),
            "nvidia-modprobe": P("nvidia-modprobe", vr, files=["/usr/bin/nvidia-modprobe"], requires=libc),
            "nvidia-persistenced": P("nvidia-persistenced", vr, files=["/usr/bin/nvidia-persistenced"],
                                     requires=[libc, "SO(libnvidia-ml.so.1)"]),
            "nvidia-settings": P("nvidia-settings", vr, files=["/usr/bin/nvidia-settings"],
                                 requires=[f"nvidia-driver-libs{{isa}} = {vr}", libc]),
            "nvidia-xconfig": P("nvidia-xconfig", vr, files=["/usr/bin/nvidia-xconfig"], requires=libc),
            "kmod-nvidia-latest-dkms": P("kmod-nvidia-latest-dkms", vr, files=[f"/usr/src/nvidia-{v}/dkms.conf"],
                                         requires=["dkms", f"nvidia-kmod-common = {e}"],
                                         provides=f"nvidia-kmod = {vr}", conflicts="kmod-nvidia-open-dkms"),
            "kmod-nvidia-open-dkms": P("kmod-nvidia-open-dkms", vr, NA, files=[f"/usr/src/nvidia-open-{v}/dkms.conf"],
                                       requires=["dkms >= 3.1.8", f"nvidia-kmod-common = {e}"],
                                       provides=f"nvidia-kmod = {vr}", conflicts="kmod-nvidia-latest-dkms"),
            "nvidia-open": P("nvidia-open", vr, NA,
                             requires=[f"kmod-nvidia-open-dkms = {e}", f"nvidia-driver = {e}",
                                       f"nvidia-driver-cuda = {e}", f"nvidia-settings = {e}"]),
            "nvidia-fabricmanager": P("nvidia-fabricmanager", f"{v}-1", files=["/usr/bin/nv-fabricmanager"],
                                      requires=[f"nvidia-driver = {e}", libc]),
        }
        branches[v] = pk
        out += pk.values()
        out.append(P("cuda-drivers", f"{v}-1",
                     requires=[f"nvidia-driver >= {e}", f"nvidia-driver-cuda >= {e}", f"nvidia-driver-libs >= {e}",
                               f"nvidia-kmod-common >= {e}", f"nvidia-modprobe >= {e}", f"nvidia-persistenced >= {e}",
                               f"nvidia-settings >= {e}", f"nvidia-xconfig >= {e}",
                               f"(kmod-nvidia-latest-dkms >= {e} or kmod-nvidia-open-dkms >= {e})"]))
    t = "12-6"
    out += [
        P("cuda", "12.6.3-1", requires=f"cuda-{t} >= 12.6.3"),
        P(f"cuda-{t}", "12.6.3-1", requires=[f"cuda-runtime-{t} >= 12.6.3", f"cuda-toolkit-{t} >= 12.6.3",
                                             f"cuda-demo-suite-{t} >= 12.6.77"]),
        P(f"cuda-runtime-{t}", "12.6.3-1", requires=[f"cuda-libraries-{t} >= 12.6.3",
                                                     f"cuda-drivers >= {CUDA_MIN_DRIVER}"]),
        P(f"cuda-toolkit-{t}", "12.6.3-1",
          requires=[f"cuda-nvcc-{t} >= 12.6.85", f"cuda-libraries-{t} >= 12.6.3", f"cuda-cudart-devel-{t} >= 12.6.77",
                    f"cuda-toolkit-{t}-config-common", "cuda-toolkit-12-config-common", "cuda-toolkit-config-common"]),
        P(f"cuda-libraries-{t}", "12.6.3-1", requires=[f"cuda-cudart-{t} >= 12.6.77", f"libcublas-{t} >= 12.6.4.1"]),
        P(f"cuda-cudart-{t}", "12.6.68-1", files=["/usr/local/cuda-12.6/targets/{arch}-linux/lib/libcudart.so.12"],
          requires=f"cuda-toolkit-{t}-config-common"),
        P(f"cuda-cudart-{t}", "12.6.77-1", files=["/usr/local/cuda-12.6/targets/{arch}-linux/lib/libcudart.so.12"],
          requires=f"cuda-toolkit-{t}-config-common"),
        P(f"cuda-cudart-devel-{t}", "12.6.77-1", files=["/usr/local/cuda-12.6/targets/{arch}-linux/include/cuda.h"],
          requires=f"cuda-cudart-{t} >= 12.6.77"),
        P(f"cuda-nvcc-{t}", "12.6.85-1", files=["/usr/local/cuda-12.6/bin/nvcc"],
          requires=[f"cuda-cudart-devel-{t}", "gcc"]),
        P(f"libcublas-{t}", "12.6.3.3-1", files=["/usr/local/cuda-12.6/targets/{arch}-linux/lib/libcublas.so.12"]),
        P(f"libcublas-{t}", "12.6.4.1-1", files=["/usr/local/cuda-12.6/targets/{arch}-linux/lib/libcublas.so.12"]),
        P(f"cuda-demo-suite-{t}", "12.6.77-1", files=["/usr/local/cuda-12.6/extras/demo_suite/deviceQuery"],
          requires=f"cuda-cudart-{t}"),
        P(f"cuda-toolkit-{t}-config-common", "12.6.77-1", NA, files=["/etc/ld.so.conf.d/cuda-12-6.conf"]),
        P("cuda-toolkit-12-config-common", "12.8.57-1", NA, files=["/etc/profile.d/cuda-12.sh"]),
        P("cuda-toolkit-config-common", "12.8.57-1", NA, files=["/etc/alternatives-cuda.conf"]),
        P("libnccl", "2.21.5-1+cuda12.4", files=["{libdir}/libnccl.so.2"], requires=libc, provides="SO(libnccl.so.2)"),
        P("libnccl", "2.23.4-1+cuda12.6", files=["{libdir}/libnccl.so.2"], requires=libc, provides="SO(libnccl.so.2)"),
    ]
    return out, _nvidia_modules(branches)


# Module streams of nvidia-driver: stream -> (driver branches it carries, kmod flavour)
_STREAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "latest-dkms": (DRIVERS, "latest"),
    "open-dkms": (DRIVERS, "open"),
    "565-dkms": (("565.57.01",), "latest"),
    "565-open": (("565.57.01",), "open"),
    "575-dkms": (("575.57.08",), "latest"),
    "575-open": (("575.57.08",), "open"),
}
_MODULE_VERSION = {"565.57.01": 9040020241022000000, "575.57.08": 9050020250529000000}


def _nvidia_modules(branches: Mapping[str, Mapping[str, Pkg]]) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    for stream, (drivers, flavour) in _STREAMS.items():
        kmod = f"kmod-nvidia-{flavour}-dkms"
        names = ["nvidia-driver", "nvidia-driver-cuda", "nvidia-driver-cuda-libs", "nvidia-driver-libs",
                 "nvidia-kmod-common", "nvidia-modprobe", "nvidia-persistenced", "nvidia-settings", "nvidia-xconfig",
                 kmod, "nvidia-fabricmanager"] + (["nvidia-open"] if flavour == "open" else [])
        ks = ["nvidia-driver", "nvidia-driver-cuda", "nvidia-driver-libs", "nvidia-kmod-common", "nvidia-modprobe",
              "nvidia-persistenced", kmod]
        profiles = {
            "default": {"description": "Default installation",
                        "rpms": sorted(ks + ["nvidia-settings", "nvidia-xconfig"])},
            "ks": {"description": "Installation via kickstart", "rpms": sorted(ks)},
            "fm": {"description": "FabricManager installation", "rpms": sorted(ks + ["nvidia-fabricmanager"])},
            "src": {"description": "Source files for compilation", "rpms": [kmod]},
        }
        for march, arches in ((X86, (X86, I686, NOARCH)), (ARM, (ARM, NOARCH))):
            artifacts = sorted(
                branches[v][n].nevra(a) for v in drivers for n in names for a in branches[v][n].arches if a in arches
            )
            context = hashlib.sha256(f"nvidia-driver:{stream}:el9".encode()).hexdigest()[:8]
            docs.append({
                "document": "modulemd", "version": 2,
                "data": {
                    "name": "nvidia-driver", "stream": stream, "version": max(_MODULE_VERSION[v] for v in drivers),
                    "context": context, "arch": march,
                    "summary": "Nvidia driver for " + stream + " branch",
                    "description": "This module provides the NVIDIA driver packages for the " + stream + " stream.",
                    "license": {"module": ["MIT"]},
                    "dependencies": [{"buildrequires": {"platform": ["el9"]}, "requires": {"platform": ["el9"]}}],
                    "profiles": profiles,
                    "api": {"rpms": sorted(set(names))},
                    "artifacts": {"rpms": artifacts},
                },
            })
    docs.append({
        "document": "modulemd-defaults", "version": 1,
        "data": {"module": "nvidia-driver", "stream": "latest-dkms",
                 "profiles": {s: ["default"] for s in _STREAMS}},
    })
    return docs


def _doca() -> list[Pkg]:
    libc = "SO(libc.so.6)"
    ofed = "24.10-OFED.24.10.1.1.4.1"
    rv = "2410mlnx54-1.2410068"
    out = [
        P("doca-ofed", "2.9.1-1.el9",
          requires=["mlnx-ofa_kernel", "kmod-mlnx-ofa_kernel", "rdma-core", "libibverbs", "librdmacm", "ucx",
                    "ucx-ib", "mlnx-tools"], summary="DOCA-OFED metapackage"),
        P("doca-roce", "2.9.1-1.el9",
          requires=["mlnx-ofa_kernel", "kmod-mlnx-ofa_kernel", "rdma-core", "libibverbs", "librdmacm"]),
        P("doca-ofed-userspace", "2.9.1-1.el9",
          requires=["rdma-core", "libibverbs", "librdmacm", "ucx", "ucx-ib", "mlnx-tools"],
          summary="DOCA-OFED userspace only (containers)"),
        P("mlnx-ofa_kernel", f"{ofed}.rhel9u4", files=["/etc/infiniband/openib.conf"],
          requires=["mlnx-tools >= 24.10", "coreutils", "kmod"]),
        P("mlnx-tools", "24.10-0.2410068", NA, files=["/usr/sbin/ibdev2netdev"], requires="/usr/bin/python3"),
        P("ucx", "1.18.0-1.2410068", files=["{libdir}/libucp.so.0"], requires=libc, provides="SO(libucp.so.0)"),
        P("ucx-ib", "1.18.0-1.2410068", files=["{libdir}/ucx/libuct_ib.so.0"],
          requires=["ucx{isa} = 1.18.0-1.2410068", "SO(libibverbs.so.1)", "SO(librdmacm.so.1)"]),
        # DOCA ships its own rdma-core, newer than the distro's by rpmvercmp (2410 > 48)
        P("rdma-core", rv, files=["/etc/rdma/rdma.conf", "/usr/sbin/rdma-ndd"], requires=["dracut", "kmod", libc]),
        P("libibverbs", rv, files=["{libdir}/libibverbs.so.1", "{libdir}/libmlx5.so.1"],
          requires=[f"rdma-core{{isa}} = {rv}", libc],
          provides=["SO(libibverbs.so.1)", "SO(libibverbs.so.1,IBVERBS_1.1)", "SO(libmlx5.so.1)", f"libmlx5 = {rv}"],
          obsoletes=f"libmlx5 < {rv}"),
        P("librdmacm", rv, files=["{libdir}/librdmacm.so.1"],
          requires=[f"rdma-core{{isa}} = {rv}", "SO(libibverbs.so.1)", libc], provides="SO(librdmacm.so.1)"),
    ]
    # One kmod build per kernel: the GA kernel's from the DOCA repo, the other as doca-kernel-support builds it.
    for kv in KERNELS:
        for arch in EL:
            rel = f"{ofed}.rhel9u4" if kv == KERNELS[0] else f"{ofed}.1.kver.{kv.replace('-', '_')}.{arch}"
            out.append(P("kmod-mlnx-ofa_kernel", rel, (arch,),
                         files=[f"/lib/modules/{kv}.{arch}/extra/mlnx-ofa_kernel/compat/mlx_compat.ko"],
                         requires=[f"kernel-core = {kv}", "mlnx-ofa_kernel = 24.10"],
                         provides="mlnx-ofa_kernel-kmod = 24.10"))
    return out


def _repos() -> tuple[list[Repo], list[dict[str, object]]]:
    cuda, modules = _cuda()
    rocky = "cpe:/o:rocky:rocky:9,Rocky Linux 9"
    repos = [
        Repo("baseos", "Rocky Enterprise Software Foundation", tuple(_baseos()), "packages", "gz", False, rocky),
        Repo("appstream", "Rocky Enterprise Software Foundation", tuple(_appstream()), "packages", "gz", False, rocky),
        Repo("epel", "Fedora Project", tuple(_epel()), "packages", "xz", True),
        Repo("cuda", "NVIDIA Corporation", tuple(cuda), "flat", "gz", True),
        Repo("doca", "Mellanox Technologies", tuple(_doca()), "flat", "gz", False),
    ]
    return repos, modules


# --------------------------------------------------------------------------------------------------------------
# modules.yaml (tiny YAML emitter: the documents only use str, int, list and dict)
# --------------------------------------------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+/ -]*$")


def _scalar(v: object) -> str:
    if isinstance(v, int):
        return str(v)
    s = str(v)
    special = s.lower() in ("yes", "no", "true", "false", "null", "on", "off", "~") or re.fullmatch(r"[0-9._:+-]+", s)
    if _PLAIN.match(s) and not s.endswith(" ") and ": " not in s and not special:
        return s
    return json.dumps(s)


def _yaml(v: object, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(v, dict):
        for k, val in v.items():
            if isinstance(val, dict | list) and val:
                lines.append(f"{pad}{_scalar(k)}:")
                lines += _yaml(val, indent + 2)
            else:
                lines.append(f"{pad}{_scalar(k)}: {_scalar(val) if not isinstance(val, dict | list) else '[]'}")
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, dict):
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(v))
    return lines


def modules_yaml() -> str:
    """The ``modules.yaml`` of the ``cuda`` repo (modulemd v2 documents + one modulemd-defaults v1)."""
    _, docs = _repos()
    return "".join("---\n" + "\n".join(_yaml(d, 0)) + "\n...\n" for d in docs)


# --------------------------------------------------------------------------------------------------------------
# Spec generation
# --------------------------------------------------------------------------------------------------------------

_SPEC_HEADER = """\
%define _binary_payload w9.gzdio
%define _source_payload w9.gzdio
%define use_source_date_epoch_as_buildtime 1
%define clamp_mtime_to_source_date_epoch 1
%define _buildhost imagebuild-fixtures
%define debug_package %{nil}
%define __os_install_post %{nil}
%define __arch_install_post %{nil}
%define __spec_install_post %{nil}
%define _build_id_links none
%define _binary_filedigest_algorithm 8
Name: imagebuild-fixture-batch
Version: 1
Release: 1
Summary: imagebuild fixture batch (never built: it has no %files)
License: MIT
AutoReqProv: no
%description
Batch of fixture packages.
"""


@dataclass(frozen=True)
class _Unit:
    repo: Repo
    pkg: Pkg
    arch: str


def _deps_for(pkg: Pkg, arch: str) -> dict[str, list[str]]:
    deps = {k: [_expand(d, arch) for d in v] for k, v in pkg.deps.items()}
    for k, v in pkg.arch_deps.get(arch, {}).items():
        deps.setdefault(k, []).extend(_expand(d, arch) for d in v)
    return deps


def _files_for(pkg: Pkg, arch: str) -> list[str]:
    return [_expand(f, arch) for f in pkg.files] or [f"/usr/share/doc/{pkg.name}/README"]


def _spec(units: Sequence[_Unit]) -> str:
    parts = [_SPEC_HEADER]
    install = ["%install"]
    files: list[str] = []
    for u in units:
        p = u.pkg
        summary = p.summary or f"{p.name} ({u.repo.id} fixture)"
        parts.append(f"\n%package -n {p.name}")
        if p.epoch:
            parts.append(f"Epoch: {p.epoch}")
        parts += [f"Version: {p.version}", f"Release: {p.release}", f"Summary: {summary}",
                  f"License: {p.license}", f"Vendor: {p.vendor or u.repo.vendor}",
                  f"URL: https://fixtures.invalid/{u.repo.id}/{p.name}"]
        if u.arch == NOARCH:
            parts.append("BuildArch: noarch")
        for kind, values in sorted(_deps_for(p, u.arch).items()):
            parts += [f"{kind.capitalize()}: {d}" for d in values]
        parts.append(f"%description -n {p.name}\n{summary}. Fixture package built for imagebuild's tests.")
        files.append(f"\n%files -n {p.name}\n%defattr(-,root,root,-)")
        for path in _files_for(p, u.arch):
            mode = "0755" if "/bin/" in path or "/sbin/" in path else "0644"
            body = f"#!/bin/sh\\necho {p.name}\\n" if mode == "0755" else f"{p.name}\\n"
            install.append(f"mkdir -p '%{{buildroot}}{os.path.dirname(path)}'")
            install.append(f"printf '{body}' > '%{{buildroot}}{path}'")
            install.append(f"chmod {mode} '%{{buildroot}}{path}'")
            files.append(path)
    return "\n".join(parts) + "\n\n" + "\n".join(install) + "\n" + "\n".join(files) + "\n"


def _plan(repos: Sequence[Repo]) -> dict[str, str]:
    """Group every (package, arch) into spec files: one per target arch and slot (names unique per spec)."""
    groups: dict[tuple[str, int], list[_Unit]] = {}
    seen_files: set[str] = set()
    for repo in repos:
        for pkg in repo.packages:
            for arch in pkg.arches:
                fn = pkg.filename(arch)
                if fn in seen_files:
                    raise ValueError(f"duplicate package file {fn}")
                seen_files.add(fn)
                slot = 0
                while any(u.pkg.name == pkg.name for u in groups.get((arch, slot), [])):
                    slot += 1
                groups.setdefault((arch, slot), []).append(_Unit(repo, pkg, arch))
    return {f"{arch}-{slot}": _spec(units) for (arch, slot), units in sorted(groups.items())}


def _createrepo_args(repo: Repo) -> list[str]:
    args = ["createrepo_c", "--quiet", "--general-compress-type", repo.compress, "--checksum", "sha256",
            "--revision", str(SOURCE_DATE_EPOCH), "--set-timestamp-to-revision", "--workers", "1",
            "--database" if repo.database else "--no-database"]
    if repo.distro:
        args += ["--distro", repo.distro]
    return args


def _tool_versions() -> str:
    out = []
    for cmd in (["rpmbuild", "--version"], ["createrepo_c", "--version"], ["modifyrepo_c", "--version"]):
        out.append(subprocess.run(cmd, capture_output=True, text=True, env=_env(None), check=True).stdout.strip())
    return "\n".join(out)


def _env(home: pathlib.Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "TMPDIR")}
    env.update(LC_ALL="C", TZ="UTC", SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), HOME=str(home or "/nonexistent"))
    return env


def missing_tools() -> list[str]:
    """The external tools the build needs that are not on PATH (install: scripts/setup.sh --test)."""
    return [t for t in _TOOLS if shutil.which(t) is None]


def _recipe() -> tuple[list[Repo], dict[str, str], str, str]:
    repos, _ = _repos()
    specs = _plan(repos)
    myaml = modules_yaml()
    h = hashlib.sha256()
    h.update(f"builder {_BUILDER_VERSION} epoch {SOURCE_DATE_EPOCH}\n".encode())
    h.update(_tool_versions().encode())
    for name, text in specs.items():
        h.update(f"\0spec {name}\n{text}".encode())
    for repo in repos:
        h.update(f"\0repo {repo.id} {repo.layout} {_createrepo_args(repo)}\n".encode())
        h.update("".join(sorted(p.filename(a) for p in repo.packages for a in p.arches)).encode())
    h.update(b"\0modules\n" + myaml.encode())
    return repos, specs, myaml, h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------------------


def _run(cmd: Sequence[str], cwd: pathlib.Path, home: pathlib.Path) -> None:
    res = subprocess.run(list(cmd), cwd=cwd, env=_env(home), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


def _rpmbuild(name: str, spec: str, work: pathlib.Path) -> pathlib.Path:
    top = work / f"top-{name}"
    (top / "tmp").mkdir(parents=True)
    spec_path = top / f"{name}.spec"
    spec_path.write_text(spec)
    target = name.rsplit("-", 1)[0]
    _run(["rpmbuild", "-bb", "--nodeps", "--quiet", "--target", target,
          "--define", f"_topdir {top}", "--define", f"_tmppath {top / 'tmp'}", str(spec_path)], top, work)
    return top / "RPMS"


def _timed(timings: dict[str, float], key: str, start: float) -> None:
    timings[key] = round(time.monotonic() - start, 3)


def _build(dest: pathlib.Path, repos: Sequence[Repo], specs: Mapping[str, str], myaml: str,
           timings: dict[str, float]) -> None:
    work = dest / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "home").mkdir()
    t0 = time.monotonic()
    jobs = max(1, min(len(specs), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        rpmdirs = list(pool.map(lambda kv: _rpmbuild(kv[0], kv[1], work), specs.items()))
    _timed(timings, "rpmbuild", t0)
    built = {p.name: p for d in rpmdirs for p in d.glob("*/*.rpm")}

    t1 = time.monotonic()
    staging = work / "repos"
    for repo in repos:
        root = staging / repo.id
        for pkg in repo.packages:
            for arch in pkg.arches:
                fn = pkg.filename(arch)
                if fn not in built:
                    raise RuntimeError(f"rpmbuild did not produce {fn}")
                sub = root / "Packages" / fn[0].lower() if repo.layout == "packages" else root
                sub.mkdir(parents=True, exist_ok=True)
                shutil.move(built.pop(fn), sub / fn)
                os.utime(sub / fn, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))

    def createrepo(repo: Repo) -> None:
        root = staging / repo.id
        _run([*_createrepo_args(repo), str(root)], root, work / "home")
        if repo.id == "cuda":
            src = work / "modules.yaml"
            src.write_text(myaml)
            os.utime(src, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
            _run(["modifyrepo_c", "--mdtype=modules", "--compress-type=gz", str(src), str(root / "repodata")],
                 root, work / "home")
            # modifyrepo_c 0.17 stamps the new record with the current time (ignores SOURCE_DATE_EPOCH)
            repomd = root / "repodata" / "repomd.xml"
            repomd.write_text(re.sub(r"<timestamp>\d+</timestamp>", f"<timestamp>{SOURCE_DATE_EPOCH}</timestamp>",
                                     repomd.read_text()))
        for p in (root / "repodata").iterdir():
            os.utime(p, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))

    with concurrent.futures.ThreadPoolExecutor(len(repos)) as pool:
        list(pool.map(createrepo, repos))
    _timed(timings, "createrepo", t1)

    for repo in repos:
        final = dest / repo.id
        old = dest / f".old-{repo.id}"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        (staging / repo.id).rename(final)
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


def build_rpm_repos(dest: pathlib.Path) -> dict[str, pathlib.Path]:
    """Build (or reuse, if dest already has them and the recipe digest matches) every fixture repo under dest.
    Returns repo id -> repo root directory (the directory holding repodata/)."""
    return _build_rpm_repos(pathlib.Path(dest), {})


def _build_rpm_repos(dest: pathlib.Path, timings: dict[str, float]) -> dict[str, pathlib.Path]:
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"fixture RPM repos need {', '.join(missing)}: run scripts/setup.sh --test "
                           "(apt-get install rpm createrepo-c)")
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    repos, specs, myaml, digest = _recipe()
    _timed(timings, "recipe", t0)
    result = {r.id: dest / r.id for r in repos}
    stamp = dest / _DIGEST_FILE
    with open(dest / _LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = stamp.read_text().strip() if stamp.exists() else ""
            if current == digest and all((p / "repodata" / "repomd.xml").is_file() for p in result.values()):
                timings["reused"] = 1
                return result
            stamp.unlink(missing_ok=True)
            _build(dest, repos, specs, myaml, timings)
            tmp = stamp.with_suffix(".tmp")
            tmp.write_text(digest + "\n")
            os.replace(tmp, stamp)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _timed(timings, "total", t0)
    return result


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/rpmrepos.py DEST", file=sys.stderr)
        return 2
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    paths = _build_rpm_repos(pathlib.Path(argv[0]), timings)
    timings["wall"] = round(time.monotonic() - t0, 3)
    for rid, root in paths.items():
        n = sum(1 for _ in root.rglob("*.rpm"))
        print(f"{rid:10} {n:4d} rpms  {root}")
    print(json.dumps(timings, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
