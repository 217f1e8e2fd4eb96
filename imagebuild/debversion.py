"""Debian version ordering (deb-version(7)), as a sort key so comparisons are tuple comparisons.

The ordering is dpkg's (lib/dpkg/version.c `verrevcmp`, parsing as lib/dpkg/parsehelp.c `parseversion`), and
tests/test_version_oracle.py checks it pair by pair against `dpkg --compare-versions`:

* blanks (space, tab) around the version are ignored; the epoch is the number before the first `:` (read as C's
  `strtol` does, so `+1:` is epoch 1), the revision follows the last `-`; a missing revision is `0`;
* upstream and revision alternate non-digit and digit runs; digit runs compare as integers of any length, non-digit
  runs character by character with `~` before the end of the run, the end before letters, letters before the other
  characters (bytes: a non-ASCII byte as a signed C `char`, so between the letters and ASCII punctuation).
"""

from __future__ import annotations

import re
from functools import lru_cache

_NonDigit = tuple[int, ...]
Key = tuple[int, tuple[tuple[_NonDigit, int], ...], tuple[tuple[_NonDigit, int], ...]]

# A terminator pair that sorts after '~' and before any other continuation, so keys of different
# lengths compare as dpkg does without padding at comparison time. It is also what an empty part ("") and
# "0" are, so every part's key starts with a pair of its own: "0~" (that pair, then "~") sorts before "0".
_END: tuple[_NonDigit, int] = ((0,), 0)


def _byte_order(b: int) -> int:
    """dpkg's order() of one byte of a non-digit run (the run's end is 0)."""
    if 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A:
        return b
    if b == 0x7E:  # '~'
        return -1
    if b >= 0x80:  # a signed char: (b - 256) + 256
        return b
    return b + 256


_ORDER = tuple(_byte_order(b) for b in range(256))
_RUN = re.compile(rb"([^0-9]*)([0-9]*)")
_EPOCH = re.compile(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)")  # what strtol(3) reads of the text before the ':'
_BIG = 4000  # int() refuses strings of more than sys.get_int_max_str_digits() (4300) digits


def _number(digits: bytes) -> int:
    if len(digits) <= _BIG:
        return int(digits)
    value = 0
    for i in range(0, len(digits), _BIG):
        chunk = digits[i:i + _BIG]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def _part_key(s: bytes) -> tuple[tuple[_NonDigit, int], ...]:
    pairs: list[tuple[_NonDigit, int]] = []
    pos, n = 0, len(s)
    while pos < n:
        m = _RUN.match(s, pos)
        assert m is not None  # both groups may be empty, the pattern always matches
        nondigit, digits = m.groups()
        pairs.append((tuple(_ORDER[c] for c in nondigit) + (0,), _number(digits) if digits else 0))
        pos = m.end()
    if not pairs:  # "" is "0"
        pairs.append(_END)
    pairs.append(_END)
    return tuple(pairs)


@lru_cache(maxsize=1 << 17)
def version_key(version: str) -> Key:
    raw = version.encode("utf-8", "surrogateescape").strip(b" \t")
    epoch, rest = 0, raw
    colon = raw.find(b":")
    if colon >= 0:
        m = _EPOCH.fullmatch(raw, 0, colon)
        epoch = int(m[1]) if m else 0
        rest = raw[colon + 1:]
    upstream, dash, revision = rest.rpartition(b"-")
    if not dash:
        upstream, revision = rest, b""
    return (epoch, _part_key(upstream), _part_key(revision))


def compare(a: str, b: str) -> int:
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def satisfies(version: str, op: str, target: str) -> bool:
    """Does `version` satisfy the relation `op target` (ops as in Depends: << <= = >= >>)."""
    c = compare(version, target)
    if op == "=":
        return c == 0
    if op == ">=":
        return c >= 0
    if op == "<=":
        return c <= 0
    if op == ">>":
        return c > 0
    if op == "<<":
        return c < 0
    # obsolete single-character forms: '<' means <=, '>' means >=
    if op == "<":
        return c <= 0
    if op == ">":
        return c >= 0
    raise ValueError(f"unknown version relation {op!r}")


_INT_MAX = 2**31 - 1


def is_valid(version: str) -> bool:
    """Is `version` one dpkg accepts, written plainly: `[epoch:]upstream[-revision]`, no whitespace, a decimal epoch
    of at most 2**31-1, an upstream version that starts with a digit, and a revision, if there is a `-`, not empty.

    Characters outside Debian policy's (letters, digits, `.+~-:`; no `-` or `:` in the revision) pass, as dpkg
    accepts them with a warning: third-party archives have them.
    """
    if not version or any(c.isspace() for c in version):
        return False
    epoch, sep, rest = version.partition(":")
    if sep:
        if not (epoch.isascii() and epoch.isdigit()) or len(epoch.lstrip("0")) > 10 or int(epoch) > _INT_MAX:
            return False
    else:
        rest = version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream = rest
    elif not revision:
        return False
    return upstream[:1].isascii() and upstream[:1].isdigit()
