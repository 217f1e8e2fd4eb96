"""Parsing deb822 package stanzas (Packages indices and dpkg status files) into compact records.

A record is a plain tuple (fast to build, to marshal into the cache and to load again); the
`R_*` constants name its slots. Dependency fields stay raw strings until the resolver asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from imagebuild.errors import RepositoryError

FIELDS = (
    "Package", "Version", "Architecture", "Multi-Arch", "Essential", "Priority", "Provides",
    "Pre-Depends", "Depends", "Conflicts", "Breaks", "Recommends", "Filename", "Size", "SHA256",
    "Important", "Status", "Suggests", "Replaces", "Enhances",
)
(R_NAME, R_VERSION, R_ARCH, R_MA, R_ESSENTIAL, R_PRIORITY, R_PROVIDES, R_PREDEPENDS, R_DEPENDS,
 R_CONFLICTS, R_BREAKS, R_RECOMMENDS, R_FILENAME, R_SIZE, R_SHA256, R_IMPORTANT, R_STATUS,
 R_SUGGESTS, R_REPLACES, R_ENHANCES) = range(len(FIELDS))
_SLOT = {name: i for i, name in enumerate(FIELDS)}
_EMPTY = ("",) * len(FIELDS)

Record = tuple[str, ...]


def parse_stanzas(data: bytes) -> list[Record]:
    """Every stanza that has a Package field, as a record. Bytes are decoded as UTF-8 per field."""
    return parse_stanza_chunks((data,))


def parse_stanza_chunks(chunks: Iterable[bytes]) -> list[Record]:
    """parse_stanzas of the concatenated `chunks`, each parsed up to its last complete stanza as it comes (a
    decompressing thread can run ahead meanwhile)."""
    records: list[Record] = []
    carry, seen = "", False
    for chunk in chunks:
        # latin-1 maps bytes 1:1 and is the fastest decode
        text = carry + chunk.decode("latin-1")
        seen = seen or bool(text.strip())
        cut = text.rfind("\n\n")
        if cut < 0:
            carry = text
            continue
        _parse(text[:cut], records)
        carry = text[cut + 2:]
    _parse(carry, records)
    if seen and not records:
        raise RepositoryError("no package stanzas found (is this a Packages file?)")
    return records


def _parse(text: str, records: list[Record]) -> None:
    slot = _SLOT
    for stanza in text.split("\n\n"):
        values = list(_EMPTY)
        found = False
        for line in stanza.split("\n"):
            if not line or line[0] in " \t#":
                continue
            key, sep, value = line.partition(":")
            i = slot.get(key)
            if i is not None and sep:
                values[i] = value.strip()
                found = found or i == R_NAME
        if found:
            records.append(tuple(values))


class Relation(NamedTuple):
    """One alternative of a dependency: `name[:archq] [(op version)]`."""

    name: str
    archq: str | None
    op: str | None
    version: str | None

    def __str__(self) -> str:
        s = self.name + (f":{self.archq}" if self.archq else "")
        return f"{s} ({self.op} {self.version})" if self.op else s


Group = tuple[Relation, ...]
# each optional part takes the blanks after it, so no two `\s*` meet: a long run of blanks in a hostile field
# cannot make the match backtrack over every way of splitting it (cubic time)
_REL_RE = re.compile(
    r"\s*([^\s:(\[<]+)(?::([a-z0-9-]+))?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\)\s*)?(?:\[[^\]]*\]\s*)?"
    r"(?:<[^>]*>\s*)*"
)


@lru_cache(maxsize=1 << 16)
def parse_relations(field: str) -> tuple[Group, ...]:
    """`a (>= 1) | b, c:any` -> ((a>=1, b), (c:any,)). Raises RepositoryError on garbage."""
    if not field:
        return ()
    groups: list[Group] = []
    for part in field.split(","):
        if not part.strip():
            continue
        alts = []
        for alt in part.split("|"):
            m = _REL_RE.fullmatch(alt)
            if not m:
                raise RepositoryError(f"{alt.strip()[:80]!r} is not a relation")
            alts.append(Relation(m[1], m[2], m[3], m[4]))
        groups.append(tuple(alts))
    return tuple(groups)


PRIORITIES = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}


def priority_rank(value: str) -> int:
    return PRIORITIES.get(value.lower(), 5)


# apt's cache creates a package the first time a name is mentioned: as a stanza's Package, then
# as a target of its relations in this order, then in Provides. Package IDs follow that order, and
# apt uses IDs to order the user's requests and to break ties between providers.
_MENTION_SLOTS = (R_PREDEPENDS, R_DEPENDS, R_CONFLICTS, R_BREAKS, R_RECOMMENDS, R_SUGGESTS, R_REPLACES,
                  R_ENHANCES, R_PROVIDES)
_NAME_RE = re.compile(r"(?:^|[,|])\s*([^\s,|(\[<:]+)(:any)?")


def mention_order(records: Iterable[Record], arch: str) -> list[str]:
    seen: dict[str, None] = {}
    findall = _NAME_RE.findall
    for rec in records:
        if rec[R_ARCH] != arch and rec[R_ARCH] != "all":
            continue
        seen[rec[R_NAME]] = None
        for slot in _MENTION_SLOTS:
            raw = rec[slot]
            if raw:
                for name, anyq in findall(raw):
                    seen[name + anyq] = None
    return list(seen)
