#!/usr/bin/env python3
"""Build the Rocky-9-shaped rpm repos of examples/gpu-cluster/mirror/rocky9/ with the real tools.

Usage:
  build_rpms.py OUT                 build baseos/ appstream/ epel/ cuda/ doca/ under OUT (replacing them)
  build_rpms.py --compare MIRROR    build into a temp dir and compare with MIRROR byte for byte
                                    (repomd.xml.asc, the signatures, are not compared); exit 1 on a difference
  build_rpms.py --tools             print the tool versions the output depends on

The packages are not defined here: they are a subset, by name, of the fixture repos of tests/rpmrepos.py
(the recipe the dnf differential tests use), built by that file's own builder (rpmbuild from generated spec
files, createrepo_c, modifyrepo_c for the nvidia-driver modules.yaml).  SUBSET below says which names of each
repo the example keeps (every version of a kept name).  Two deviations from the test fixtures, both only to
keep the committed repos small: no sqlite databases (dnf reads the XML), and no 4 kB of signature space
reserved in every rpm header (`%__gpg_reserved_space 0`; the rpms are unsigned, as the fixtures' are).

The output is byte-for-byte reproducible for the same tool versions (rpmbuild, createrepo_c, modifyrepo_c);
OUT/BUILD-INFO records them, and --compare refuses to judge when they differ.
"""

from __future__ import annotations

import dataclasses
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import rpmrepos  # noqa: E402  (tests/rpmrepos.py)

# repo id -> package names kept (None: the whole repo).  baseos and appstream keep what the example's
# rocky-compute role needs plus the alternatives that make the choice real: both glibc releases and both
# kernels (the newest wins; installonly), glibc-minimal-langpack vs glibc-langpack-en (a rich "or"),
# and Rocky's own rdma-core/libibverbs/librdmacm 48.0, which DOCA's 2410mlnx54 outranks.
SUBSET: dict[str, frozenset[str] | None] = {
    "baseos": frozenset({
        "basesystem", "bash", "binutils", "coreutils", "coreutils-common", "dracut", "elfutils-libelf",
        "filesystem", "findutils", "gawk", "glibc", "glibc-common", "glibc-langpack-en", "glibc-minimal-langpack",
        "gzip", "kernel", "kernel-core", "kernel-modules", "kernel-modules-core", "kmod", "libgcc",
        "libibverbs", "librdmacm", "linux-firmware", "linux-firmware-whence", "python-unversioned-command",
        "python3", "python3-libs", "python3-setuptools-wheel", "rdma-core", "setup", "systemd", "systemd-libs",
        "systemd-udev", "tar", "tzdata",
    }),
    "appstream": frozenset({
        "cpp", "elfutils-libelf-devel", "gcc", "glibc-devel", "glibc-headers", "kernel-devel",
        "kernel-devel-matched", "kernel-headers", "make", "perl-interpreter", "perl-libs",
    }),
    "epel": None,
    "cuda": None,  # the whole nvidia-driver module (both branches) must be there for modules.yaml to be true
    "doca": None,
}

SPEC_PREFIX = "%define __gpg_reserved_space 0\n"
SKIP = {"repomd.xml.asc"}  # written by make-example-mirror.sh (signatures are not reproducible)


def recipe() -> tuple[list[rpmrepos.Repo], dict[str, str], str]:
    repos, _ = rpmrepos._repos()
    out = []
    for repo in repos:
        keep = SUBSET[repo.id]
        pkgs = tuple(p for p in repo.packages if keep is None or p.name in keep)
        if keep is not None:
            missing = keep - {p.name for p in pkgs}
            if missing:
                raise SystemExit(f"build_rpms: tests/rpmrepos.py's {repo.id} has no {', '.join(sorted(missing))}")
        out.append(dataclasses.replace(repo, packages=pkgs, database=False))
    specs = {name: SPEC_PREFIX + text for name, text in rpmrepos._plan(out).items()}
    return out, specs, rpmrepos.modules_yaml()


def tools() -> str:
    return rpmrepos._tool_versions() + "\n"


def build(out: Path) -> None:
    missing = rpmrepos.missing_tools()
    if missing:
        raise SystemExit(f"build_rpms: needs {', '.join(missing)} (apt-get install rpm createrepo-c)")
    repos, specs, myaml = recipe()
    out.mkdir(parents=True, exist_ok=True)
    rpmrepos._build(out, repos, specs, myaml, {})
    info = out / "BUILD-INFO"
    info.write_text("# Built by scripts/example-mirror/build_rpms.py (from tests/rpmrepos.py); byte-identical\n"
                    "# output needs the same tool versions:\n" + tools())
    os.utime(info, (rpmrepos.SOURCE_DATE_EPOCH, rpmrepos.SOURCE_DATE_EPOCH))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in SKIP)


def compare(mirror: Path) -> list[str]:
    """Differences between `mirror` and a fresh build (empty: identical)."""
    with tempfile.TemporaryDirectory(prefix="example-rpms.") as tmp:
        fresh = Path(tmp) / "rocky9"
        build(fresh)
        a, b = files(mirror), files(fresh)
        diffs = [f"only in the committed repos: {f}" for f in sorted(set(a) - set(b))]
        diffs += [f"missing from the committed repos: {f}" for f in sorted(set(b) - set(a))]
        diffs += [f"differs: {f}" for f in sorted(set(a) & set(b))
                  if not filecmp.cmp(mirror / f, fresh / f, shallow=False)]
        return diffs


def main(argv: list[str]) -> int:
    if argv == ["--tools"]:
        sys.stdout.write(tools())
        return 0
    if len(argv) == 2 and argv[0] == "--compare":
        mirror = Path(argv[1])
        recorded = (mirror / "BUILD-INFO").read_text().split("\n", 2)[2] if (mirror / "BUILD-INFO").exists() else ""
        if recorded != tools():
            print(f"build_rpms: {mirror} was built with other tool versions; cannot compare:\n{recorded}",
                  file=sys.stderr)
            return 3
        diffs = compare(mirror)
        for d in diffs:
            print(d)
        print(f"build_rpms: {mirror}: " + ("DIFFERS from a fresh build" if diffs else "identical to a fresh build"),
              file=sys.stderr)
        return 1 if diffs else 0
    if len(argv) == 1 and not argv[0].startswith("-"):
        out = Path(argv[0])
        for rid in rpmrepos.REPO_IDS:
            shutil.rmtree(out / rid, ignore_errors=True)
        build(out)
        n = {rid: sum(1 for _ in (out / rid).rglob("*.rpm")) for rid in rpmrepos.REPO_IDS}
        print("build_rpms: " + ", ".join(f"{k} {v} rpms" for k, v in n.items()), file=sys.stderr)
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
