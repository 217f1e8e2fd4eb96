"""BOM files: one `name version arch` line per package of an image, sorted, `#` lines are comments.

Exactly what `dpkg-query -W -f '${Package} ${Version} ${Architecture}\\n'` prints in the image, sorted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imagebuild.errors import ConfigError


@dataclass(frozen=True, order=True)
class BomEntry:
    """One package of an image's BOM, as the BOM file lists it."""

    name: str
    arch: str
    version: str

    def line(self) -> str:
        return f"{self.name} {self.version} {self.arch}"


def render_bom(entries: Iterable[BomEntry], header: Iterable[str] = ()) -> str:
    lines = [f"# {h}" for h in header]
    lines += [e.line() for e in sorted(entries)]
    return "\n".join(lines) + "\n"


def parse_bom(text: str, source: str) -> list[BomEntry]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ConfigError(f"{source}:{n}: expected `name version arch`, got {raw!r}")
        out.append(BomEntry(parts[0], parts[2], parts[1]))
    return out


def read_bom(path: Path) -> list[BomEntry]:
    try:
        return parse_bom(path.read_text(encoding="utf-8"), str(path))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read BOM: {e.strerror}") from None
