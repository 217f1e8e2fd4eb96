"""rpm version ordering: `rpmvercmp` on version/release strings and the EVR comparison of `rpm.vercmp`.

The algorithm is rpm's (lib/rpmvercmp.c), re-stated here so imagebuild orders rpm versions without rpm:

* a string is a sequence of segments; anything that is not an ASCII letter, digit, `~` or `^` only
  separates segments;
* numeric segments compare as integers (leading zeros ignored), alphabetic ones with `strcmp`; a numeric
  segment is newer than an alphabetic one;
* `~` sorts before everything, even the end of the string (`1.0~rc1` < `1.0`);
* `^` sorts after the end of the string but before any other segment (`1.0` < `1.0^git1` < `1.0.1`);
* when one string runs out first, the longer one is newer.

An EVR is `[E:]V[-R]`: the epoch is the leading digits before a `:` (missing: 0), the release follows the
last `-`. As `rpm.vercmp` does (rpm 4.18, checked in tests/test_rpmversion.py), when epoch and version are
equal an EVR with a release is newer than one without (`1.0` < `1.0-~`). Dependency matching, where `>= 1.0`
ignores the release, is a different operation and not this.
"""

from __future__ import annotations

from dataclasses import dataclass


def _isalpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _skippable(c: str) -> bool:
    return not (_isalpha(c) or _isdigit(c) or c in "~^")


def vercmp(a: str, b: str) -> int:
    """Compare two version (or release) strings as rpm does: -1, 0 or 1."""
    if a == b:
        return 0
    i, j, na, nb = 0, 0, len(a), len(b)
    while i < na or j < nb:
        while i < na and _skippable(a[i]):
            i += 1
        while j < nb and _skippable(b[j]):
            j += 1
        ca = a[i] if i < na else ""
        cb = b[j] if j < nb else ""
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        numeric = _isdigit(ca)
        pred = _isdigit if numeric else _isalpha
        ei, ej = i, j
        while ei < na and pred(a[ei]):
            ei += 1
        while ej < nb and pred(b[ej]):
            ej += 1
        sa, sb = a[i:ei], b[j:ej]
        if not sb:  # segments of different kinds: the numeric one is newer
            return 1 if numeric else -1
        if numeric:
            sa, sb = sa.lstrip("0"), sb.lstrip("0")
            if len(sa) != len(sb):
                return 1 if len(sa) > len(sb) else -1
        if sa != sb:
            return 1 if sa > sb else -1
        i, j = ei, ej
    if i >= na and j >= nb:
        return 0
    return -1 if i >= na else 1


@dataclass(frozen=True)
class Evr:
    """An rpm `[E:]V[-R]`. `epoch` None means "not given" (compares as 0); `release` None: not given."""

    epoch: str | None
    version: str
    release: str | None

    def __str__(self) -> str:
        out = f"{self.epoch}:{self.version}" if self.epoch is not None else self.version
        return f"{out}-{self.release}" if self.release is not None else out


def parse_evr(evr: str) -> Evr:
    """Split an EVR the way rpm's parseEVR does (epoch: leading digits before `:`; release: after the last `-`)."""
    k = 0
    while k < len(evr) and _isdigit(evr[k]):
        k += 1
    epoch: str | None = None
    rest = evr
    if k < len(evr) and evr[k] == ":":
        epoch, rest = (evr[:k] or "0"), evr[k + 1:]
    version, dash, release = rest.rpartition("-")
    if not dash:
        return Evr(epoch, rest, None)
    return Evr(epoch, version, release)


def compare_evr(a: str, b: str) -> int:
    """Compare two `[E:]V[-R]` strings like `rpm.vercmp` (rpm >= 4.16): epoch, then version, then release."""
    ea, eb = parse_evr(a), parse_evr(b)
    rc = vercmp(ea.epoch or "0", eb.epoch or "0")
    if rc == 0:
        rc = vercmp(ea.version, eb.version)
        if rc == 0 and (ea.release is not None or eb.release is not None):
            if ea.release is None:
                return -1
            if eb.release is None:
                return 1
            rc = vercmp(ea.release, eb.release)
    return rc
