"""OpenPGP signature checks with gpgv, as apt and dnf make them: shared by both repository readers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from imagebuild.errors import RepositoryError


def _keyring_for_gpgv(keyring: Path, tmp: Path) -> Path:
    """gpgv reads binary keyrings; an ASCII-armored key (.asc) is dearmored first, like apt does."""
    import subprocess

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
    """Check `signed` (an InRelease; or a Release or repomd.xml with its detached signature) against
    `keyring`; return the signed content.

    For a clearsigned file the content returned is what the signature covers (gpgv's output),
    never the raw file, so text outside the signed part cannot sneak in.
    """
    # imported here: a warm `lock` finds its Release signatures verified in the cache and never runs gpgv
    import subprocess

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
