"""Debian version ordering (deb-version(7)), as a sort key so comparisons are tuple comparisons."""

from __future__ import annotations

from functools import lru_cache

_NonDigit = tuple[int, ...]
Key = tuple[int, tuple[tuple[_NonDigit, int], ...], tuple[tuple[_NonDigit, int], ...]]

# A terminator pair that sorts after '~' and before any other continuation, so keys of different
# lengths compare as dpkg does without padding at comparison time.
_END: tuple[_NonDigit, int] = ((0,), 0)


def _order(c: str) -> int:
    if c.isalpha() and c.isascii():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _part_key(s: str) -> tuple[tuple[_NonDigit, int], ...]:
    pairs: list[tuple[_NonDigit, int]] = []
    i, n = 0, len(s)
    while i < n:
        j = i
        while j < n and not s[j].isdigit():
            j += 1
        nondigit = tuple(_order(c) for c in s[i:j]) + (0,)
        k = j
        while k < n and s[k].isdigit():
            k += 1
        pairs.append((nondigit, int(s[j:k]) if k > j else 0))
        i = k
    while pairs and pairs[-1] == _END:  # "0" and "" are the same revision
        pairs.pop()
    pairs.append(_END)
    return tuple(pairs)


@lru_cache(maxsize=1 << 17)
def version_key(version: str) -> Key:
    epoch_s, sep, rest = version.partition(":")
    if sep:
        epoch = int(epoch_s) if epoch_s.isdigit() else 0
    else:
        epoch, rest = 0, version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
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


def is_valid(version: str) -> bool:
    if not version or any(c.isspace() for c in version):
        return False
    epoch, sep, rest = version.partition(":")
    if sep and not epoch.isdigit():
        return False
    return bool(rest if sep else version) and (rest if sep else version)[0].isdigit()
