#!/usr/bin/env python3
"""Benchmark ``imagebuild mirror``: wall time, throughput and peak RSS, small files and one big file
(see bench/README.md).

One run:

* generate a flat apt repo (``trusted = true``, ``flat = true``) holding one synthetic ``.deb`` of
  ``--big-mib`` MiB (a valid ar archive: debian-binary, control.tar.gz, an uncompressed data.tar with one
  file), written in 1 MiB chunks, never whole in memory;
* serve it and the real bookworm snapshot on loopback, and lock (``imagebuild --config CFG lock``, an
  empty ``IMAGEBUILD_CACHE``) two roles, base none: ``minbase`` (the minbase packages plus rdma-core &
  co., every file of which is in the data's pool/) and ``big`` (the synthetic package alone);
* link the locked files into an archive tree at the paths the lock names (the data keeps one copy of a
  file that is both in bookworm and in bookworm-security, under the security pool);
* N times each (median reported): ``imagebuild --config CFG mirror --role ROLE --out DIR`` into an empty
  DIR, with the metadata cache the lock left (``mirror`` loads the Priority of every package of the locked
  indices from it, whatever the role), and ``--role big`` once more with an empty cache (no such map: the
  floor of the download path).

Wall time is measured around the process, peak RSS is the child's ``ru_maxrss`` from ``os.wait4``.
Every run's mirrored files are checked against the lock (the big one by streaming its sha256). The
claim under test: the big file's mirror peaks at about the RSS of the small one, far below the file size.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from measure import Measured, run_measured  # noqa: E402  (bench/, beside this script)

sys.path.insert(0, str(REPO_ROOT))

from apt_oracle import parse_status  # noqa: E402

from imagebuild.lockfile import Lock, LockedRepo, read_lock  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "debian-20261122"
SNAPSHOT = "20261122T000000Z"  # when DEFAULT_DATA was captured: its Releases are valid then, not "now"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
EXTRA = ["rdma-core", "infiniband-diags", "ibverbs-providers", "munge"]  # as tests/test_mirror.py
DISTRO = "bookworm"
ARCH = "amd64"
BIG_NAME, BIG_VERSION = "bench-big", "1.0"
BIG_REPO = "big"
MTIME = 1763769600  # 2025-11-22T00:00:00Z, in every generated header
MIB = 1 << 20


# -- the synthetic package ------------------------------------------------------------------------------------


def ar_header(name: str, size: int) -> bytes:
    """One ar member header (60 bytes), as dpkg-deb writes them."""
    return f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{'100644':<8}{size:<10}`\n".encode("ascii")


def control_tar_gz(control: str) -> bytes:
    """control.tar.gz holding ./control (small: built in memory)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=MTIME) as gz, tarfile.open(fileobj=gz, mode="w",
                                                                                 format=tarfile.GNU_FORMAT) as tar:
        root = tarfile.TarInfo("./")
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, MTIME
        tar.addfile(root)
        data = control.encode()
        info = tarfile.TarInfo("./control")
        info.size, info.mode, info.mtime = len(data), 0o644, MTIME
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True)
class Generated:
    path: Path
    size: int
    sha256: str


def big_control(mib: int) -> dict[str, str]:
    """The synthetic package's control fields (its control file and its Packages stanza)."""
    return {"Package": BIG_NAME, "Version": BIG_VERSION, "Architecture": ARCH,
            "Maintainer": "imagebuild bench <bench@example.invalid>", "Installed-Size": str(mib * 1024),
            "Section": "misc", "Priority": "optional",
            "Description": f"{mib} MiB of filler for bench/bench_mirror.py\n"
                           " One file of pseudo-random bytes; it only exists to be mirrored."}


def write_big_deb(path: Path, mib: int, control: dict[str, str], seed: int = 1) -> Generated:
    """A .deb whose data.tar holds one file of `mib` MiB of pseudo-random bytes, streamed to `path` and
    hashed on the way (1 MiB at a time). The tar is written by hand (headers from tarfile.TarInfo) so its
    size is known before its ar header: no seeking back."""
    payload = mib * MIB
    headers = []
    for name in ("./", "./usr/", "./usr/share/", f"./usr/share/{BIG_NAME}/"):
        d = tarfile.TarInfo(name)
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, MTIME
        headers.append(d.tobuf(tarfile.GNU_FORMAT))
    blob = tarfile.TarInfo(f"./usr/share/{BIG_NAME}/blob")
    blob.size, blob.mode, blob.mtime = payload, 0o644, MTIME
    headers.append(blob.tobuf(tarfile.GNU_FORMAT))
    end = b"\0" * (2 * tarfile.BLOCKSIZE)  # payload is a multiple of 512: no padding before the end blocks
    data_tar_size = sum(map(len, headers)) + payload + len(end)

    block = bytearray(random.Random(seed).randbytes(MIB))
    digest = hashlib.sha256()
    with path.open("wb") as f:
        def out(b: bytes | bytearray) -> None:
            f.write(b)
            digest.update(b)

        out(b"!<arch>\n")
        for name, body in (("debian-binary", b"2.0\n"), ("control.tar.gz", control_tar_gz(deb822(control)))):
            out(ar_header(name, len(body)) + body + b"\n" * (len(body) & 1))
        out(ar_header("data.tar", data_tar_size))
        for h in headers:
            out(h)
        for i in range(mib):
            block[:8] = i.to_bytes(8, "little")  # every MiB differs
            out(block)
        out(end + b"\n" * (data_tar_size & 1))
    return Generated(path, path.stat().st_size, digest.hexdigest())


def deb822(fields: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def parse_deb822(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def check_with_dpkg_deb(deb: Path, control: dict[str, str]) -> bool:
    """dpkg-deb reads the generated package's control as written (False: dpkg-deb is not installed)."""
    if shutil.which("dpkg-deb") is None:
        return False
    res = subprocess.run(["dpkg-deb", "-I", str(deb), "control"], capture_output=True, text=True, check=False,
                         env={**os.environ, "LC_ALL": "C"})
    if res.returncode != 0 or parse_deb822(res.stdout) != control:
        sys.exit(f"dpkg-deb -I does not read the generated {deb} as written: {res.stderr.strip() or res.stdout}")
    return True


def write_flat_repo(root: Path, deb: Generated, control: dict[str, str]) -> None:
    """Packages and an unsigned Release (the repo is `trusted = true`) for the one package."""
    rel = deb.path.relative_to(root).as_posix()
    packages = (deb822(control) + f"Filename: {rel}\nSize: {deb.size}\nSHA256: {deb.sha256}\n").encode()
    (root / "Packages").write_bytes(packages)
    (root / "Release").write_text(
        "Origin: imagebuild-bench\nLabel: bench big\nSuite: bench\nCodename: bench\n"
        "Date: Sat, 21 Nov 2026 00:00:00 UTC\n"
        f"Architectures: {ARCH}\nSHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


# -- serving, running, measuring ------------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check(what: str, m: Measured) -> Measured:
    if m.rc != 0:
        sys.exit(f"{what} failed (exit {m.rc}):\n{m.out[-4000:]}")
    return m


def which_module(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    """The imagebuild package a `PYTHON -m imagebuild` command imports (to be sure which checkout is measured)."""
    if cmd[-2:] != ["-m", "imagebuild"]:
        return "?"
    res = subprocess.run([*cmd[:-2], "-c", "import imagebuild; print(imagebuild.__file__)"], env=env, cwd=cwd,
                         capture_output=True, text=True, check=False)
    return res.stdout.strip() or f"? ({res.stderr.strip()[-200:]})"


# -- the project ----------------------------------------------------------------------------------------------


def write_config(path: Path, url: str, minbase_role: list[str]) -> None:
    q = json.dumps  # JSON strings are valid TOML basic strings for these values
    path.write_text(f"""snapshot = {q(SNAPSHOT)}
[distros.{DISTRO}]
family = "deb"
arches = [{q(ARCH)}]
base = "none"
recommends = false

[[distros.{DISTRO}.repos]]
name = "debian"
url = {q(url + "/debian")}
suites = ["bookworm", "bookworm-updates"]
components = ["main"]
signed-by = {q(KEYRING)}

[[distros.{DISTRO}.repos]]
name = "security"
url = {q(url + "/debian-security")}
suites = ["bookworm-security"]
components = ["main"]
signed-by = {q(KEYRING)}

[[distros.{DISTRO}.repos]]
name = {q(BIG_REPO)}
url = {q(url + "/" + BIG_REPO)}
flat = true
trusted = true

[roles.minbase]
distro = {q(DISTRO)}
packages = [{", ".join(q(p) for p in minbase_role)}]

[roles.big]
distro = {q(DISTRO)}
packages = [{q(BIG_NAME)}]
""")


def url_path(r: LockedRepo) -> str:
    """`debian` of http://127.0.0.1:PORT/debian."""
    return r.url.split("/", 3)[3]


def link_locked_files(lock: Lock, data: Path, archive: Path) -> None:
    """Every locked file at the path its repo's URL and Filename name, linked from the data's pool/
    (found by file name, checked against the locked sha256). The synthetic package is already in place."""
    by_name = {p.name: p for p in data.glob("*/pool/**/*.deb")}
    repos = {(r.distro, r.arch, r.name, r.suite): r for r in lock.repos}
    for t in lock.targets:
        for p in t.packages:
            dest = archive / url_path(repos[(t.distro, t.arch, p.repo, p.suite)]) / p.filename
            if dest.exists():
                continue
            src = by_name.get(Path(p.filename).name)
            if src is None or sha256_of(src) != p.sha256:
                sys.exit(f"{p.filename} (sha256 {p.sha256}) is not in {data}/*/pool: the role is off the data")
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)
            except OSError:  # another file system
                dest.symlink_to(src)


def blob_files(out: Path) -> dict[str, int]:
    """sha256 -> size of every file `mirror` stored under out/blobs/sha256/."""
    return {p.name: p.stat().st_size for p in (out / "blobs" / "sha256").iterdir()}


# -- main -----------------------------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    role: str
    empty_cache: bool  # mirror with an empty IMAGEBUILD_CACHE: no Priority overrides to load
    expected: dict[str, int]  # sha256 -> size of the files the lock names for the role
    runs: list[Measured]

    @property
    def files(self) -> int:
        return len(self.expected)

    @property
    def size(self) -> int:
        return sum(self.expected.values())

    def median(self, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in self.runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--repeat", type=int, default=3, help="cold mirror runs per case (median; default 3)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"snapshot dir with pool/ (default {DEFAULT_DATA})")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the synthetic .deb's payload (default 1024)")
    ap.add_argument("--imagebuild", default=f"{sys.executable} -m imagebuild",
                    help="command prefix for imagebuild (default: this python -m imagebuild)")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    a = ap.parse_args()

    minbase_status = a.data.parent / "bases" / "bookworm-minbase.status"
    if not any(a.data.glob("*/pool")) or not minbase_status.is_file():
        sys.exit(f"snapshot data with pool/ or {minbase_status} not found (--data)")
    minbase_role = sorted({n for n, _, _ in parse_status(minbase_status)} | set(EXTRA))

    default_cmd = a.imagebuild == ap.get_default("imagebuild")
    cmd = a.imagebuild.split()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "PYTHONPATH"}
    env.update(LC_ALL="C", LANG="C")
    if default_cmd:  # this checkout; another command imports its own (PYTHONPATH would override its install)
        env["PYTHONPATH"] = str(REPO_ROOT)

    work = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    archive, project, cache = work / "archive", work / "project", work / "cache"
    for d in (archive, project, cache):
        d.mkdir()
    env["IMAGEBUILD_CACHE"] = str(cache)
    server, url = serve(archive)
    try:
        module = which_module(cmd, env, work)
        for repo in ("debian", "debian-security"):  # the lock reads dists/; the pool files come after it
            (archive / repo).mkdir()
            (archive / repo / "dists").symlink_to((a.data / repo / "dists").resolve())

        t0 = time.perf_counter()
        pool = archive / BIG_REPO / "pool"
        pool.mkdir(parents=True)
        control = big_control(a.big_mib)
        big = write_big_deb(pool / f"{BIG_NAME}_{BIG_VERSION}_{ARCH}.deb", a.big_mib, control)
        gen_s = time.perf_counter() - t0
        checked = check_with_dpkg_deb(big.path, control)
        write_flat_repo(archive / BIG_REPO, big, control)
        print(f"generated {big.path.name}: {big.size / MIB:.1f} MiB, sha256 {big.sha256} in {gen_s:.1f} s, "
              + ("dpkg-deb -I reads it" if checked else "not checked (no dpkg-deb)"), file=sys.stderr)

        cfg = project / "imagebuild.toml"
        write_config(cfg, url, minbase_role)
        lock_run = check("imagebuild lock", run_measured([*cmd, "--config", str(cfg), "lock"], env, project))
        lock = read_lock(project / "snapshots.lock")
        link_locked_files(lock, a.data, archive)

        files = {t.role: {p.sha256: p.size for p in t.packages} for t in lock.targets}
        if files["big"] != {big.sha256: big.size}:
            sys.exit(f"the lock of role big is not the generated package alone: {files['big']}")
        cases = [Case("minbase + rdma-core & co.", "minbase", False, files["minbase"], []),
                 Case(f"one {a.big_mib} MiB .deb", "big", False, files["big"], []),
                 Case("  the same, empty cache", "big", True, files["big"], [])]

        for i in range(a.repeat):
            for n, c in enumerate(cases):
                out = work / f"mirror-{n}-{i}"
                e = env
                if c.empty_cache:
                    e = {**env, "IMAGEBUILD_CACHE": str(work / f"empty-cache-{n}-{i}")}
                m = check(f"imagebuild mirror --role {c.role}", run_measured(
                    [*cmd, "--config", str(cfg), "mirror", "--role", c.role, "--out", str(out)], e, project))
                got = blob_files(out)
                if got != c.expected:
                    sys.exit(f"mirror --role {c.role}: {len(got)} files, the lock names {len(c.expected)} "
                             f"(missing {sorted(c.expected.keys() - got.keys())[:5]}, "
                             f"extra {sorted(got.keys() - c.expected.keys())[:5]})")
                if c.role == "big" and sha256_of(out / "blobs" / "sha256" / big.sha256) != big.sha256:
                    sys.exit("the mirrored big file's sha256 differs from the generated one")
                c.runs.append(m)
                shutil.rmtree(out)
                print(f"run {i + 1}/{a.repeat} {c.label.strip()}: {m.wall:.2f} s, peak RSS {m.rss_kb / 1024:.0f} MiB",
                      file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
        if a.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nimagebuild mirror, cold (empty --out), with the metadata cache the lock left unless said, "
          f"median of {a.repeat}")
    print(f"imagebuild: {a.imagebuild}  ({module})")
    print(f"{'case':<28} {'files':>6} {'MiB':>8} {'wall':>9} {'MB/s':>8} {'peak RSS':>10}")
    for c in cases:
        wall = c.median("wall")
        print(f"{c.label:<28} {c.files:>6} {c.size / MIB:>8.1f} {wall:>7.2f} s {c.size / wall / 1e6:>8.1f} "
              f"{c.median('rss_kb') / 1024:>6.0f} MiB")
    small, large = (c.median("rss_kb") / 1024 for c in cases[:2])
    print(f"peak RSS, big - small: {large - small:+.1f} MiB for a {big.size / MIB:.0f} MiB file "
          f"({(large - small) / (big.size / MIB):+.1%} of its size); mirrored sha256 verified")
    print(f"(lock, once: {lock_run.wall:.2f} s, {lock_run.rss_kb / 1024:.0f} MiB; this process's own peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")

    if a.json:
        a.json.write_text(json.dumps({
            "imagebuild": a.imagebuild, "module": module, "repeat": a.repeat, "big_mib": a.big_mib,
            "big_sha256": big.sha256, "lock": {"wall_s": lock_run.wall, "peak_rss_kb": lock_run.rss_kb},
            "cases": [{"label": c.label.strip(), "role": c.role, "empty_cache": c.empty_cache, "files": c.files,
                       "bytes": c.size, "runs": [{"wall_s": m.wall, "peak_rss_kb": m.rss_kb} for m in c.runs]}
                      for c in cases],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
