"""Debian version ordering, checked pairwise against dpkg itself when it is installed."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest

from imagebuild.debversion import compare, satisfies

VERSIONS = [
    "0", "0-0", "1", "1.0", "1.00", "1.0-0", "1.0-1", "1.0-1+b1", "1.0-1~bpo12+1", "1.0~rc1", "1.0~rc1-1",
    "1.0a", "1.0+dfsg-1", "1:0.9", "2:0", "1.2.3", "1.2.10", "1~~", "1~~a", "1~", "10", "9.9.9",
    "2021.3.3.2-b99c4d6", "2.21.5-1+cuda12.4", "495.29.05-0ubuntu1", "550.54.15-1", "22.05.8-4+deb12u3",
    "4.12.1~bpo12+1", "4.12.1~deb12u1", "1.a", "1.+", "3:575.57.08-1.el9",
]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed (the oracle)")
def test_ordering_equals_dpkg() -> None:
    mismatches = []
    for a, b in itertools.combinations(VERSIONS, 2):
        for op, dpkg_op in (("<<", "lt"), ("=", "eq")):
            expected = subprocess.run(["dpkg", "--compare-versions", a, dpkg_op, b]).returncode == 0
            if satisfies(a, op, b) != expected:
                mismatches.append((a, op, b, expected))
    assert mismatches == []


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1.0", "1.0~rc1", 1), ("1.0-0", "1.0", 0), ("1:1.0", "2.0", 1), ("4.12.1~bpo12+1", "4.12.1~deb12u1", -1),
])
def test_known_pairs(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
