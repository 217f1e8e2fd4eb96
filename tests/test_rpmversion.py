"""rpm version ordering, checked against real rpm (`rpm.vercmp` in rpm's embedded Lua) on a few hundred pairs."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from imagebuild.rpmversion import Evr, compare_evr, parse_evr, vercmp

# Real-world EVRs: Rocky/EPEL/CUDA/DOCA (incident 9 of PRODUCT.md) and rpm's own corner cases.
REAL = [
    "575.57.08-1.el9", "3:575.57.08-1.el9", "3:565.57.01-1.el9", "565.57.01-1.el9", "2.21.5-1+cuda12.4",
    "2.23.4-1+cuda12.6", "2.21.5-1+cuda12.6", "1.0~rc1", "1.0~rc2", "1.0", "1.0^git1", "1.0^git1~pre",
    "1.0.1", "1.0a", "1.0.a", "1:1.0", "0:1.0", "5.14.0-427.13.1.el9_4", "5.14.0-427.42.1.el9_4",
    "5.14.0-503.11.1.el9_5", "2.34-100.el9_4.2", "2.34-100.el9", "2.34-125.el9_5.1", "48.0-1.el9",
    "2410mlnx54-1.2410068", "24.10-OFED.24.10.0.7.0.1", "3.0.10-1.el9", "3.1.8-1.el9", "2:1.34-6.el9_1",
    "4:5.32.1-481.el9", "1:8.6-12.el9", "23.11.10-1.el9", "0.3.3-1.el9", "12.6.77-1", "12.6.2-1",
    "2021.3.3.2-b99c4d6", "495.29.05-0ubuntu1", "1.2.3.fc", "1.2.3_fc", "1.2.3.FC", "20240101", "1_0",
    "1.0.0", "001", "1", "a", "b", "A", "1.0-1", "1.0-1.1", "1.0-1~beta", "1.0-1^post", "2:0.1~a^b-3",
]


def _random_version(rng: random.Random) -> str:
    pieces = ["0", "1", "2", "10", "007", "09", "a", "b", "rc", "Z", "el9", "git", "~", "^", ".", "_", "+", "-"]
    out = rng.choice(["1", "2", "10", "0"])
    for _ in range(rng.randint(0, 6)):
        out += rng.choice(pieces)
    if rng.random() < 0.25:
        out = f"{rng.choice(['0', '1', '3', '01'])}:{out}"
    return out.rstrip("-")


def _pairs() -> list[tuple[str, str]]:
    rng = random.Random(4)
    pairs = [(a, b) for a in REAL for b in REAL if rng.random() < 0.12]
    pairs += [(_random_version(rng), _random_version(rng)) for _ in range(500)]
    pairs += [(v, v + s) for v in REAL[:10] for s in ("~", "^", ".0", "a", "-0", "-~", "-.")]
    return [(a, b) for a, b in pairs if a and b]


def _lua_quote(s: str) -> str:
    assert "]==]" not in s
    return f"[==[{s}]==]"


def _rpm_vercmp_batch(pairs: list[tuple[str, str]], tmp_path: Path) -> list[int]:
    script = tmp_path / "pairs.lua"
    rows = ",\n".join(f"{{{_lua_quote(a)}, {_lua_quote(b)}}}" for a, b in pairs)
    script.write_text(f"local pairs_ = {{\n{rows}\n}}\n"
                      "for _, p in ipairs(pairs_) do print(rpm.vercmp(p[1], p[2])); print('\\n') end\n")
    res = subprocess.run(["rpm", "--eval", f'%{{lua: dofile("{script}")}}'], capture_output=True, text=True,
                         env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}, timeout=120, check=True)
    return [int(x) for x in res.stdout.split()]


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm is not installed (./scripts/setup.sh --test)")
def test_vercmp_matches_real_rpm(tmp_path: Path) -> None:
    pairs = _pairs()
    assert len(pairs) > 400
    expected = _rpm_vercmp_batch(pairs, tmp_path)
    assert len(expected) == len(pairs)
    wrong = [(a, b, e, compare_evr(a, b)) for (a, b), e in zip(pairs, expected, strict=True)
             if compare_evr(a, b) != e]
    assert not wrong, f"{len(wrong)} mismatches (a, b, rpm, ours): {wrong[:20]}"


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0^git1", "1.0", 1),
    ("1.0^git1", "1.0.1", -1),
    ("1.0^git1", "1.0~rc1", 1),
    ("3:565.57.01-1.el9", "575.57.08-1.el9", 1),
    ("0:1.0", "1.0", 0),
    ("2.21.5-1+cuda12.4", "2.21.5-1+cuda12.6", -1),
    ("1.0-1", "1.0", 1),  # with equal versions, having a release wins, as in rpm.vercmp
    ("1.0", "1.0-~", -1),
    ("10", "9", 1),
    ("010", "10", 0),
    ("1.a", "1.1", -1),
    ("1_0", "1.0", 0),
])
def test_known_orderings(a: str, b: str, expected: int) -> None:
    assert compare_evr(a, b) == expected
    assert compare_evr(b, a) == -expected


def test_parse_evr() -> None:
    assert parse_evr("3:575.57.08-1.el9") == Evr("3", "575.57.08", "1.el9")
    assert parse_evr("1.0") == Evr(None, "1.0", None)
    assert parse_evr(":1.0-2") == Evr("0", "1.0", "2")
    assert parse_evr("2.21.5-1+cuda12.4") == Evr(None, "2.21.5", "1+cuda12.4")
    assert str(parse_evr("3:1-2")) == "3:1-2"
    assert vercmp("abc", "abc") == 0
