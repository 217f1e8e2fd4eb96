"""Differential test of imagebuild's version orderings against the real tools.

* deb: `imagebuild.debversion` against `dpkg --compare-versions A lt|eq|gt B`, every pair through dpkg. Each pair is
  asked once, with the relation imagebuild predicts (the three relations are exclusive, so one "yes" proves the sign
  and the equality); a "no" is a disagreement, asked again to report dpkg's own answer. The calls run in one
  `sh` loop per core. `is_valid` is checked against dpkg's own syntax check (`V eq V`: error, warning or clean).
* rpm: `imagebuild.rpmversion` against rpm 4.18's own code, Debian 12's `python3-rpm` under /usr/bin/python3 (one
  subprocess for all pairs): `rpm.labelCompare` of the (E, V, R) that `rpm.ver` parses, `rpm.labelCompare` with
  only a version (that is bare `rpmvercmp`), `rpm.ver`'s parse itself, and the (E, V, R) of the example repos'
  primary metadata straight into `rpm.labelCompare`.

The pairs: hand-picked edge cases, the vendor versions of ../shared/data/vendor-repo-shapes.md, real versions from
the Debian Packages files in ../shared/data/debian-20261122 (every version of each package that has several, and
a sample sorted by imagebuild then checked neighbour by neighbour: with the tool's ordering transitive, the sample's
whole order is proven) and from the example rpm repos, plus seeded random versions. Nothing depends on the date or
on randomness between runs. Run with `-s` to see the counts.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import lzma
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from imagebuild import debversion, rpmversion

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEBIAN_DATA = Path(os.environ.get("IMAGEBUILD_TEST_DEBIAN_DATA", SHARED_DATA / "debian-20261122"))
VENDOR_SHAPES = SHARED_DATA / "vendor-repo-shapes.md"
RPM_REPOS = REPO_ROOT / "examples" / "gpu-cluster" / "mirror" / "rocky9"
SYSTEM_PYTHON = "/usr/bin/python3"
ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
SEED = 20261122
# Of each Packages file only its first 16 MiB (a third of bookworm/main: its packages are sorted by name, `0ad` to
# `h…`; the smaller suites whole): a second less of decompressing, and still tens of thousands of versions.
PACKAGES_PREFIX = 16 << 20

# The vendor strings of vendor-repo-shapes.md, also kept here so the test has them without ../shared.
VENDOR = [
    "495.29.05-0ubuntu1", "495.29.05-1", "2021.3.3.2-b99c4d6", "2.21.5-1+cuda12.4", "2.21.5-1+cuda12.6",
    "2.23.4-1+cuda12.6", "3:575.57.08-1.el9", "3:575.57.08", "3:565.57.01-1.el9", "3:610.57.04", "610.57.04-1",
    "24.10.OFED.24.10.1.1.4.1", "24.10-OFED.24.10.1.1.4.1", "2410mlnx54-1.2410068", "5.14.0-427.42.1.el9_4",
    "5.14.0-427.13.1.el9_4", "5.14.0-503.11.1.el9_5", "12.4.1-1", "12.4.127-1", "12.4.5.8-1", "12.2.5.30-1",
    "12.3.1.170", "550.54.15-0ubuntu1", "550.54.15-1", "550.54.15", "520.61.05", "580.65.06", "560.35.05",
    "12.6.3-1", "12.6.3", "3.1.8", "3.1.8-1.el9", "1.1-1",
]

LONG = ["18446744073709551615", "18446744073709551616", "18446744073709551617", "9223372036854775808",
        "99999999999999999999999999999999999999", "0000000000000000000000000000018446744073709551616"]
# past Python's 4300-digit limit of int(str); compared with each other and a few others only (each is slow)
HUGE = ["1" * 5000, "1" * 4999 + "2", "1" * 4999, "1" * 5000 + "~", "0" * 5000 + "1", f"1.{'9' * 4500}-1"]

DEB_EDGE = [
    # epochs
    "1.0", "0:1.0", "1:1.0", "01:1.0", "2:0", "1:0.9", "1:1.0-1", "2147483647:1", "+1:1.0", "1:2:3", "1:2-3:4",
    "0:0", "10:1", "9:1",
    # tildes, plus, dots, end of string
    "1.0~rc1", "1.0~rc2", "1.0~rc1-1", "1.0~", "1.0~~", "1.0~~a", "1.0~a", "1.0~~~", "1~", "1~~", "~", "~~",
    "1.0+", "1.0.", "1.0+a", "1.0+dfsg-1", "1.0+dfsg1-1", "1.0+b1", "1.0.0", "1.0.1", "1.00", "1.0..", "1..0",
    "1.0.~", "1.0+~", "1.0~+", "1.0~.",
    # letters vs digits
    "1.0a", "1.0.a", "1.0A", "1.0Z", "1.0z", "1.a", "1.1", "1a", "1A", "1.0b1", "1.0beta1", "1.0rc1", "1.0a1",
    "1.0aa", "1.0ab", "1.0b", "1a1", "1aa", "1Za", "1za",
    # leading zeros
    "1.01", "1.001", "1.010", "1.10", "001.0", "01", "00", "0", "1.0-01", "1.0-001",
    # revisions: empty, zero, tilde-zero, '-' in upstream
    "1.0-1", "1.0-0", "1.0-00", "1.0-0~", "1.0-0~bpo1", "1.0-~", "1.0-0.1", "1.0-1.1", "1.0-1+b1", "1.0-1~bpo12+1",
    "1.0-1+deb12u1", "1.0-1~deb12u1", "1.0-1ubuntu1", "1.0-2-3", "1.0-2-3-4", "1-2", "1-2-3", "0-0", "0~-0",
    "2:1.0~git20240101.abc-1", "1.0-a", "1.0-A", "1.0-+", "1.0-.", "1.0-1.",
    # dpkg warns about these but still orders them
    "a1.0", "rc1", "1.0_1", "1.0=1", "1,0", "1.0@", "1.0$x", "1.0é", "1.0ü", "1.0~é", "1.0-é", "1.0é1",
    "1.0^git1", "1.0^", "1.0!", "1.0#", "1.0*", "1.0/1", "1.0\\", "1.0'", '1.0"', "1.0`", "1.0;",
    # surrounding blanks are trimmed by dpkg
    " 1.0", "1.0 ", "\t1:1.0", "1:1.0\t",
    # syntax errors (dpkg refuses to compare them; is_valid must reject them)
    "1.0-", "1:", "99999999999:1", "a:1.0", "1:-1", "1.0 1",
    # long numeric segments
    *LONG, *(f"1.{n}" for n in LONG[:4]), *(f"1.0-{n}" for n in LONG[:3]),
]


def _huge_pairs() -> list[tuple[str, str]]:
    return [*itertools.combinations(HUGE, 2), *((h, v) for h in HUGE for v in ("1", "2", "1.0", LONG[-1]))]


def _deb_safe(v: str) -> bool:
    """dpkg's command line reads a leading '-' as an option, "" and "<unknown>" as no version; no newlines here."""
    return bool(v) and not v.startswith("-") and v != "<unknown>" and "\n" not in v


# ---------------------------------------------------------------------------------------------------- inputs


@functools.lru_cache(maxsize=1)
def _vendor_versions() -> tuple[str, ...]:
    found: list[str] = list(VENDOR)
    if VENDOR_SHAPES.is_file():
        text = VENDOR_SHAPES.read_text(encoding="utf-8")
        found += re.findall(r"(?<![\w.+~:-])(?:\d+:)?\d+(?:[.][0-9A-Za-z~+^_]+)+(?:-[0-9A-Za-z.~+^_]+)?", text)
    return tuple(dict.fromkeys(found))


@functools.lru_cache(maxsize=1)
def _debian_versions() -> dict[str, tuple[str, ...]]:
    """Package -> its distinct versions across the snapshot's suites (amd64 Packages files)."""
    versions: dict[str, set[str]] = {}
    for packages in sorted(DEBIAN_DATA.glob("*/dists/*/*/binary-amd64/Packages.xz")):
        with lzma.open(packages) as f:
            data = f.read(PACKAGES_PREFIX)
        data = data[:data.rfind(b"\n\n") + 1] if len(data) == PACKAGES_PREFIX else data
        name = ""
        for field, value in re.findall(rb"^(Package|Version): (\S+)", data, re.M):
            if field == b"Package":
                name = value.decode()
            else:
                versions.setdefault(name, set()).add(value.decode())
    return {name: tuple(sorted(vs)) for name, vs in sorted(versions.items())}


def _open_metadata(path: Path) -> bytes:
    if path.name.endswith(".zst"):
        import zstandard

        with path.open("rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if path.name.endswith(".xz"):
        return lzma.decompress(path.read_bytes())
    return path.read_bytes()


@functools.lru_cache(maxsize=1)
def _rpm_repo_evrs() -> tuple[tuple[str | None, str, str | None], ...]:
    """Every (epoch, version, release) of the example repos' primary metadata: packages and their dependencies."""
    evrs: set[tuple[str | None, str, str | None]] = set()
    for primary in sorted(RPM_REPOS.glob("*/repodata/*primary.xml*")):
        text = _open_metadata(primary).decode("utf-8")
        for tag in re.findall(r"<(?:version|rpm:entry) [^>]*>", text):
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', tag))
            if "ver" in attrs:
                evrs.add((attrs.get("epoch"), attrs["ver"], attrs.get("rel")))
    return tuple(sorted(evrs, key=repr))


def _random_deb(rng: random.Random) -> str:
    digits = ["0", "1", "2", "9", "10", "01", "007", "99", "18446744073709551616"]
    others = ["a", "b", "z", "A", "rc", "dfsg", "git", "~", "~~", "+", ".", "-", ":", "+b", "~bpo", "ubuntu"]
    out = rng.choice(digits)
    for _ in range(rng.randint(0, 7)):
        out += rng.choice(digits if rng.random() < 0.45 else others)
    if rng.random() < 0.2:
        out = f"{rng.choice(['0', '1', '2', '01'])}:{out}"
    if rng.random() < 0.4:
        out += "-" + rng.choice(digits) + "".join(rng.choice(others + digits).replace("-", "").replace(":", "")
                                                  for _ in range(rng.randint(0, 3)))
    return out.rstrip("-:")


def _random_rpm(rng: random.Random) -> str:
    pieces = ["0", "1", "2", "10", "007", "09", "18446744073709551616", "a", "b", "rc", "Z", "el", "el9", "git",
              "~", "^", ".", "_", "+", "-", "..", "%"]
    out = rng.choice(["1", "2", "10", "0", "a"])
    for _ in range(rng.randint(0, 7)):
        out += rng.choice(pieces)
    if rng.random() < 0.2:
        out = f"{rng.choice(['0', '1', '3', '01', ''])}:{out}"
    return out


def _mutations(v: str, rng: random.Random, rpm: bool) -> list[str]:
    """Close neighbours of `v`: where orderings disagree, it is between nearly equal strings."""
    tails = ["~", "~~", "+", ".", ".0", "0", "a", "A", "-0", "-1", "~rc1", "+b1", ".1", "-0~"]
    if rpm:
        tails += ["^", "^git1", "_", "-~", "-^", "~^", "^~"]
    out = [v + rng.choice(tails) for _ in range(3)]
    digits = [i for i, c in enumerate(v) if c.isdigit()]
    if digits:
        i = rng.choice(digits)
        out.append(v[:i] + str((int(v[i]) + 1) % 10) + v[i + 1:])
        out.append(v[:i] + "0" + v[i:])
    if "." in v:
        out.append(v.replace(".", rng.choice(["_", "+", "~", "", ".."] if rpm else ["+", "~", "", ".."]), 1))
    return out


def _sample(rng: random.Random, items: Sequence[str], k: int) -> list[str]:
    return rng.sample(list(items), min(k, len(items)))


def _neighbours(versions: Iterable[str], cmp: Callable[[str, str], int]) -> list[tuple[str, str]]:
    ordered = sorted(dict.fromkeys(versions), key=functools.cmp_to_key(cmp))
    return list(itertools.pairwise(ordered))


def _unique(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs once each; of the pairs of a string with itself, a few keep `eq` of identical strings tested."""
    return list(dict.fromkeys((a, b) for a, b in pairs if a != b or len(a) % 7 == 0))


def _deb_pairs() -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(SEED)
    edge = [v for v in DEB_EDGE if _deb_safe(v)]
    groups: dict[str, list[tuple[str, str]]] = {}
    groups["edge x edge"] = _sample_pairs(rng, list(itertools.combinations(edge, 2)), 600)
    groups["edge neighbours"] = _neighbours(edge, debversion.compare)
    groups["huge numbers"] = _huge_pairs()
    vendor = list(_vendor_versions())
    groups["vendor x vendor"] = _sample_pairs(rng, list(itertools.combinations(vendor, 2)), 250)
    real = _debian_versions()
    multi = list(dict.fromkeys(vs for vs in real.values() if len(vs) > 1))  # binaries of one source: once
    chosen = multi[:: max(1, len(multi) // 300)]  # every version of about 300 packages that have several
    groups["real: versions of one package"] = [p for vs in chosen for p in itertools.combinations(vs, 2)]
    distinct = sorted({v for vs in real.values() for v in vs})
    sample = [v for vs in chosen for v in vs] + _sample(rng, distinct, 150)
    groups["real: sorted, neighbours"] = _neighbours(sample, debversion.compare)
    groups["real x vendor/edge"] = [(a, rng.choice(vendor + edge)) for a in _sample(rng, distinct, 100)]
    randoms = [_random_deb(rng) for _ in range(300)]
    groups["random x random"] = list(zip(randoms[::2], randoms[1::2], strict=True))
    groups["random neighbours"] = _neighbours(randoms[:200], debversion.compare)
    seeds = randoms[:40] + _sample(rng, distinct, 30) + vendor[:10] + edge[::8]
    groups["mutations"] = [(v, m) for v in seeds for m in _mutations(v, rng, rpm=False)]
    return {name: [(a, b) for a, b in _unique(pairs) if _deb_safe(a) and _deb_safe(b)]
            for name, pairs in groups.items()}


def _sample_pairs(rng: random.Random, pairs: list[tuple[str, str]], k: int) -> list[tuple[str, str]]:
    return [pairs[i] for i in sorted(rng.sample(range(len(pairs)), min(k, len(pairs))))]


def _rpm_pairs() -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(SEED + 1)
    edge = [v for v in RPM_EDGE if v]
    groups: dict[str, list[tuple[str, str]]] = {}
    groups["edge x edge"] = list(itertools.combinations(edge, 2))
    groups["edge neighbours"] = _neighbours(edge, rpmversion.compare_evr)
    groups["huge numbers"] = _huge_pairs()
    vendor = list(_vendor_versions())
    groups["vendor x vendor"] = list(itertools.combinations(vendor, 2))
    repo = [_evr_string(t) for t in _rpm_repo_evrs()]
    groups["repo EVR strings neighbours"] = _neighbours(repo, rpmversion.compare_evr)
    real = _debian_versions()
    distinct = sorted({v for vs in real.values() for v in vs})
    groups["Debian versions as rpm: neighbours"] = _neighbours(_sample(rng, distinct, 1500), rpmversion.compare_evr)
    randoms = [_random_rpm(rng) for _ in range(2000)]
    groups["random x random"] = list(zip(randoms[::2], randoms[1::2], strict=True))
    groups["random neighbours"] = _neighbours(randoms, rpmversion.compare_evr)
    seeds = randoms[:400] + repo + vendor
    groups["mutations"] = [(v, m) for v in seeds for m in _mutations(v, rng, rpm=True)]
    return {name: [(a, b) for a, b in _unique(pairs) if a and b] for name, pairs in groups.items()}


RPM_EDGE = [
    # epochs: missing, 0, leading zeros, empty, non-numeric (then it is part of the version), several colons
    "1.0", "0:1.0", "1:1.0", "01:1.0", ":1.0", "a:1.0", "1:2:3", "2:0.1~a^b-3", "3:1-2", "10:1", "9:1",
    # tilde and caret
    "1.0~rc1", "1.0~rc2", "1.0~", "1.0~~", "1.0^", "1.0^^", "1.0^~", "1.0~^", "1.0^git1", "1.0^git1~pre",
    "1.0^git2", "1.0^1", "1.0.^1", "1.0^.1", "1.0.1", "1.0.0", "1.0~.", "1.0.~", "~", "^", "~1", "^1",
    # separators: anything not alphanumeric, ~ or ^ only separates
    "1_0", "1+0", "1..0", "1.0.", "1.0_", "1.0+", "1%0", "1,0", "1.0é", "1.0é1", "1é0", "1.-0", "1._0",
    # alphanumeric segments
    "1.0a", "1.0.a", "1.0A", "1.0b", "1a2b", "1.a.2", "1.a", "1.1", "a", "A", "Z", "z", "aa", "ab", "a1", "1a",
    "el9", "el9_4", "el9_10", "el10", "fc40", "1.el9", "1.el9_4", "1.el9_4.2", "1.el9.1",
    # leading zeros
    "001", "01.1", "1.01", "1.001", "1.010", "1.10", "0", "00",
    # releases
    "1.0-1", "1.0-", "1.0-0", "1.0-~", "1.0-^", "1.0-1-2", "1.0-1.1", "1.0-1~beta", "1.0-1^post", "1.0--1",
    "0:1.0-1", "1.0-1+cuda12.4", "1.0-a",
    # long numeric segments
    *LONG, *(f"1.{n}" for n in LONG[:4]), *(f"1.0-{n}" for n in LONG[:3]),
]


def _evr_string(evr: tuple[str | None, str, str | None]) -> str:
    e, v, r = evr
    out = f"{e}:{v}" if e is not None else v
    return f"{out}-{r}" if r is not None else out


# ---------------------------------------------------------------------------------------------------- oracles


def _run_parallel(script: str, chunks: list[list[str]]) -> list[list[str]]:
    procs = [subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=ENV, text=True) for _ in chunks]
    outs = []
    for proc, lines in zip(procs, chunks, strict=True):
        assert proc.stdin is not None
        proc.stdin.write("".join(line + "\n" for line in lines))
        proc.stdin.close()
    for proc in procs:
        assert proc.stdout is not None
        outs.append(proc.stdout.read().split("\n")[:-1])
        assert proc.wait(timeout=300) == 0
    return outs


def _jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


_DPKG_LOOP = ('while IFS= read -r a && IFS= read -r op && IFS= read -r b; do '
              'dpkg --compare-versions "$a" "$op" "$b" 2>/dev/null; echo $?; done')


def dpkg_relations(triples: Sequence[tuple[str, str, str]]) -> list[int]:
    """dpkg's exit status for each (a, op, b): 0 true, 1 false, 2 a syntax error."""
    n = _jobs()
    chunks = [[x for t in triples[k::n] for x in t] for k in range(n)]
    outs = _run_parallel(_DPKG_LOOP, chunks)
    result: list[int] = [0] * len(triples)
    for k, out in enumerate(outs):
        assert len(out) == len(triples[k::n])
        for i, rc in enumerate(out):
            result[k + i * n] = int(rc)
    return result


_DPKG_SYNTAX = ('while IFS= read -r v; do err=$(dpkg --compare-versions "$v" eq "$v" 2>&1); rc=$?; '
                'case "$err" in *error*) echo error;; *warning*) echo warning;; *) echo "ok $rc";; esac; done')


def dpkg_syntax(versions: Sequence[str]) -> dict[str, str]:
    n = _jobs()
    outs = _run_parallel(_DPKG_SYNTAX, [list(versions[k::n]) for k in range(n)])
    return {v: out for k in range(n) for v, out in zip(versions[k::n], outs[k], strict=True)}


_RPM_ORACLE = r"""
import json, sys
import rpm
req = json.load(sys.stdin)
def ver(s):
    v = rpm.ver(s)
    return (v.e, v.v, v.r)
def sign(x):
    return (x > 0) - (x < 0)
out = {
    "parse": {s: ver(s) for s in req["strings"]},
    "evr": [sign(rpm.labelCompare(ver(a), ver(b))) for a, b in req["pairs"]],
    "ver_objects": [(rpm.ver(a) > rpm.ver(b)) - (rpm.ver(a) < rpm.ver(b)) for a, b in req["pairs"]],
    "vercmp": [sign(rpm.labelCompare(("0", a, None), ("0", b, None))) for a, b in req["pairs"]],
    "tuples": [sign(rpm.labelCompare(tuple(a), tuple(b))) for a, b in req["tuples"]],
}
json.dump(out, sys.stdout)
"""


def _has_rpm_module() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import rpm"], capture_output=True, env=ENV).returncode == 0


def rpm_oracle(pairs: Sequence[tuple[str, str]], tuples: Sequence[tuple[object, object]]) -> dict[str, Any]:
    req = {"strings": sorted({s for p in pairs for s in p}), "pairs": pairs, "tuples": tuples}
    res = subprocess.run([SYSTEM_PYTHON, "-c", _RPM_ORACLE], input=json.dumps(req), capture_output=True,
                         text=True, env=ENV, timeout=300, check=True)
    out: dict[str, Any] = json.loads(res.stdout)
    return out


# ---------------------------------------------------------------------------------------------------- tests

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg") is None,
                                reason="dpkg is not installed (the oracle; scripts/setup.sh --test installs it)")

_OP = {-1: "lt", 0: "eq", 1: "gt"}


def _report(title: str, groups: dict[str, list[tuple[str, str]]], seconds: float, implied: int = 0) -> None:
    total = sum(len(p) for p in groups.values())
    detail = ", ".join(f"{name} {len(p)}" for name, p in groups.items())
    extra = f"; with transitivity the neighbour chains order {implied} pairs" if implied else ""
    print(f"\n{title}: {total} pairs in {seconds:.2f}s ({detail}){extra}")


@needs_dpkg
def test_debversion_agrees_with_dpkg() -> None:
    start = time.monotonic()
    groups = _deb_pairs()
    pairs = [p for ps in groups.values() for p in ps]
    assert len(pairs) > 1000
    ours = [debversion.compare(a, b) for a, b in pairs]
    rcs = dpkg_relations([(a, _OP[c], b) for (a, b), c in zip(pairs, ours, strict=True)])
    refused = [(a, b) for (a, b), rc in zip(pairs, rcs, strict=True) if rc == 2]
    disagree = [(a, b, c) for (a, b), c, rc in zip(pairs, ours, rcs, strict=True) if rc == 1]
    wrong = []
    if disagree:  # ask dpkg what it thinks instead, for the message
        again = dpkg_relations([(a, op, b) for a, b, _ in disagree for op in ("lt", "eq")])
        for (a, b, c), lt, eq in zip(disagree, again[::2], again[1::2], strict=True):
            wrong.append((a, b, {"ours": c, "dpkg": -1 if lt == 0 else 0 if eq == 0 else 1}))
    # dpkg refuses to compare a pair only when one side is a syntax error, which is_valid must see too
    assert not [(a, b) for a, b in refused if debversion.is_valid(a) and debversion.is_valid(b)]
    implied = sum(len(p) * (len(p) + 1) // 2 for name, p in groups.items() if "neighbours" in name)
    _report("deb", groups, time.monotonic() - start, implied)
    print(f"deb: dpkg refused {len(refused)} pairs with a syntax error")
    assert not wrong, f"{len(wrong)} of {len(pairs)} pairs disagree with dpkg: {wrong[:30]}"


@needs_dpkg
def test_debversion_is_valid_agrees_with_dpkg() -> None:
    """is_valid(v): dpkg parses v (no syntax error), and a v that dpkg parses without a complaint is valid unless it
    has blanks around it or a sign before its epoch (dpkg's leniencies). dpkg's warnings (a first character that is
    not a digit, characters outside policy's) are is_valid's own choice: the first rejected, the others not."""
    rng = random.Random(SEED + 2)
    real = sorted({v for vs in _debian_versions().values() for v in vs})
    versions = [v for v in dict.fromkeys([*DEB_EDGE, *_vendor_versions(), *_sample(rng, real, 300),
                                          *(_random_deb(rng) for _ in range(300))]) if _deb_safe(v)]
    syntax = dpkg_syntax(versions)
    assert sum(s == "error" for s in syntax.values()) >= 5 and sum(s == "warning" for s in syntax.values()) >= 20
    valid_but_refused = [v for v in versions if debversion.is_valid(v) and syntax[v] == "error"]
    clean_but_invalid = [v for v in versions if syntax[v] == "ok 0" and not debversion.is_valid(v)
                         and not re.search(r"\s", v) and not re.match(r"[+-]", v)]
    assert not valid_but_refused
    assert not clean_but_invalid
    assert all(syntax[v] == "warning" and not debversion.is_valid(v) for v in ("a1.0", "rc1"))


def test_rpmversion_agrees_with_rpm() -> None:
    if not _has_rpm_module():
        pytest.skip("no `rpm` module for /usr/bin/python3 (the oracle): apt-get install python3-rpm, "
                    "or scripts/setup.sh --test")
    start = time.monotonic()
    groups = _rpm_pairs()
    pairs = [p for ps in groups.values() for p in ps]
    repo = list(_rpm_repo_evrs())
    assert len(repo) > 50
    tuples = [(a, b) for a, b in itertools.combinations(repo, 2)]
    assert len(pairs) > 1000
    oracle = rpm_oracle(pairs, tuples)

    def ours_parsed(s: str) -> tuple[str | None, str, str | None]:
        evr = rpmversion.parse_evr(s)
        return (evr.epoch, evr.version, evr.release)

    parse = oracle["parse"]
    wrong_parse = [(s, tuple(p), ours_parsed(s)) for s, p in parse.items() if tuple(p) != ours_parsed(s)]
    wrong_evr = [(a, b, rc, rpmversion.compare_evr(a, b))
                 for (a, b), rc in zip(pairs, oracle["evr"], strict=True) if rpmversion.compare_evr(a, b) != rc]
    wrong_vercmp = [(a, b, rc, rpmversion.vercmp(a, b))
                    for (a, b), rc in zip(pairs, oracle["vercmp"], strict=True) if rpmversion.vercmp(a, b) != rc]
    wrong_tuples = [(a, b, rc) for (a, b), rc in zip(tuples, oracle["tuples"], strict=True)
                    if rpmversion.compare_evr(_evr_string(a), _evr_string(b)) != rc]
    # rpm's two EVR comparisons (labelCompare and rpm.ver's, i.e. rpmverCmp) agree with each other too
    ver_objects = [(a, b) for (a, b), x, y in zip(pairs, oracle["evr"], oracle["ver_objects"], strict=True) if x != y]
    implied = sum(len(p) * (len(p) + 1) // 2 for name, p in groups.items() if "neighbours" in name)
    _report("rpm", groups, time.monotonic() - start, implied)
    print(f"rpm: also {len(tuples)} (E, V, R) pairs of the repos' metadata, {len(parse)} strings parsed, "
          f"each pair also as bare rpmvercmp")
    assert not wrong_parse, wrong_parse[:30]
    assert not wrong_vercmp, f"{len(wrong_vercmp)} rpmvercmp disagreements (a, b, rpm, ours): {wrong_vercmp[:30]}"
    assert not wrong_evr, f"{len(wrong_evr)} EVR disagreements (a, b, rpm, ours): {wrong_evr[:30]}"
    assert not wrong_tuples, f"{len(wrong_tuples)} repo (E, V, R) disagreements: {wrong_tuples[:30]}"
    assert not ver_objects, ver_objects[:30]
