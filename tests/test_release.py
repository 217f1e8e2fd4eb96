"""Release handling on the real signed Debian metadata: verification and snapshot validity."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagebuild.apt.release import check_validity, parse_release
from imagebuild.errors import RepositoryError
from imagebuild.openpgp import verify_signature

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "debian-20261122"
SECURITY = DATA / "debian-security" / "dists" / "bookworm-security" / "InRelease"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

pytestmark = pytest.mark.skipif(not SECURITY.exists() or not KEYRING.exists(),
                                reason="needs ../shared/data and debian-archive-keyring")


def test_real_inrelease_verifies_and_is_valid_at_its_snapshot_not_after_expiry() -> None:
    content = verify_signature(SECURITY.read_bytes(), KEYRING, "bookworm-security")
    release = parse_release(content.decode())
    assert release.get("Codename") == "bookworm-security"
    assert "main/binary-amd64/Packages.xz" in release.files
    # valid at the snapshot time, even when the wall clock is past Valid-Until ...
    check_validity(release, "bookworm-security", datetime(2026, 11, 22, tzinfo=UTC))
    # ... but a snapshot taken after Valid-Until is refused
    with pytest.raises(RepositoryError, match="expired"):
        check_validity(release, "bookworm-security", datetime(2026, 12, 1, tzinfo=UTC))


def test_signature_outside_text_is_not_trusted() -> None:
    raw = SECURITY.read_bytes()
    forged = raw.replace(b"Codename: bookworm-security", b"Codename: bookworm-securitx", 1)
    with pytest.raises(RepositoryError, match="bad signature"):
        verify_signature(forged, KEYRING, "forged")
    # text appended after the signature block is not part of what we return
    content = verify_signature(raw + b"\nNotAutomatic: no\n", KEYRING, "appended")
    assert b"NotAutomatic: no" not in content
