"""Release/InRelease files: OpenPGP verification with gpgv and the fields imagebuild relies on."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from imagebuild.errors import RepositoryError


@dataclass(frozen=True)
class IndexEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
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
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_release(text: str) -> Release:
    fields: dict[str, str] = {}
    files: dict[str, IndexEntry] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            if key == "SHA256":
                parts = line.split()
                if len(parts) == 3:
                    files[parts[2]] = IndexEntry(parts[0].lower(), int(parts[1]))
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return Release(fields, files)


def _keyring_for_gpgv(keyring: Path, tmp: Path) -> Path:
    """gpgv reads binary keyrings; an ASCII-armored key (.asc) is dearmored first, like apt does."""
    data = keyring.read_bytes()
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return keyring
    out = tmp / "keyring.gpg"
    proc = subprocess.run(["gpg", "--batch", "--dearmor", "--output", str(out), str(keyring)],
                          capture_output=True, env=_c_env())
    if proc.returncode != 0:
        raise RepositoryError(f"{keyring}: cannot read the armored keyring")
    return out


def _c_env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "LANG": "C"}


def verify_signature(signed: bytes, keyring: Path, what: str, detached_sig: bytes | None = None) -> bytes:
    """Check an InRelease (or Release + Release.gpg) against `keyring`; return the signed content.

    For a clearsigned file the content returned is what the signature covers (gpgv's output),
    never the raw file, so text outside the signed part cannot sneak in.
    """
    with tempfile.TemporaryDirectory(prefix="imagebuild-gpgv-") as d:
        tmp = Path(d)
        kr = _keyring_for_gpgv(keyring, tmp)
        cmd = ["gpgv", "--status-fd", "1", "--keyring", str(kr)]
        data_path = tmp / "data"
        data_path.write_bytes(signed)
        if detached_sig is not None:
            sig_path = tmp / "sig"
            sig_path.write_bytes(detached_sig)
            cmd += [str(sig_path), str(data_path)]
            out_path = None
        else:
            out_path = tmp / "out"
            cmd += ["--output", str(out_path), str(data_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, env=_c_env(), timeout=120)
        except FileNotFoundError:
            raise RepositoryError("gpgv is not installed", hint="apt-get install gpgv") from None
        status = proc.stdout.decode(errors="replace").splitlines()
        tokens = {line.split()[1] for line in status if line.startswith("[GNUPG:] ") and len(line.split()) > 1}
        if "BADSIG" in tokens or "VALIDSIG" not in tokens:
            reason = "bad signature" if "BADSIG" in tokens else (
                "no signature by a key in the keyring" if "NO_PUBKEY" in tokens or "ERRSIG" in tokens
                else "not a valid OpenPGP signature")
            raise RepositoryError(f"{what}: {reason} (keyring {keyring})",
                                  hint="check signed-by, or whether the repository was tampered with")
        if out_path is not None:
            return out_path.read_bytes()
        return signed


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
