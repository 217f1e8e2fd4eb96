"""Release/InRelease files: the fields imagebuild relies on, and their validity."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from imagebuild.errors import RepositoryError

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIZE = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class IndexEntry:
    """One index a Release file lists: its sha256 and size."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """A parsed InRelease/Release: its fields, and the indices it lists by path."""

    fields: dict[str, str]
    files: dict[str, IndexEntry] = field(repr=False)

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    @property
    def date(self) -> datetime | None:
        return parse_date(self.fields.get("Date"))

    @property
    def valid_until(self) -> datetime | None:
        return parse_date(self.fields.get("Valid-Until"))

    @property
    def not_automatic(self) -> bool:
        return self.get("NotAutomatic").lower() == "yes"

    @property
    def but_automatic_upgrades(self) -> bool:
        return self.get("ButAutomaticUpgrades").lower() == "yes"

    @property
    def by_hash(self) -> bool:
        return self.get("Acquire-By-Hash").lower() == "yes"

    @property
    def architectures(self) -> list[str]:
        return self.get("Architectures").split()

    @property
    def components(self) -> list[str]:
        return self.get("Components").split()


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.replace("UTC", "+0000"))
    except (TypeError, ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_release(text: str, what: str = "Release") -> Release:
    fields: dict[str, str] = {}
    files: dict[str, IndexEntry] = {}
    key = ""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if key == "SHA256":
                parts = line.split()
                if len(parts) == 3:
                    digest, size, path = parts
                    if not (_HEX64.fullmatch(digest) and _SIZE.fullmatch(size)):
                        raise RepositoryError(f"{what}: line {n}: not a SHA256 entry (digest size path): "
                                              f"{line[:120]!r}", hint="the Release file is damaged")
                    files[path] = IndexEntry(digest.lower(), int(size))
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return Release(fields, files)


def check_validity(release: Release, what: str, at: datetime) -> None:
    """A Release must be valid at `at` (the snapshot time, or now): not from the future, not expired."""
    date, until = release.date, release.valid_until
    if until is not None and until < at:
        raise RepositoryError(
            f"{what}: expired (Valid-Until {until:%Y-%m-%d %H:%M} UTC is before {at:%Y-%m-%d %H:%M} UTC)",
            hint="set `snapshot` to a time at which this metadata was valid",
        )
    if date is not None and until is not None and date > until:
        raise RepositoryError(f"{what}: Date is after Valid-Until")
