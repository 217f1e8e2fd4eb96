"""The CLI under the user's language: Spanish and German locales give byte-identical outputs, files and messages
to the C locale (a deployment tool once broke on a Spanish system because it grepped translated tool output:
every subprocess imagebuild runs gets LC_ALL=C and machine formats)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"
LOCALES = ("es_ES.UTF-8", "de_DE.UTF-8")


def _available(name: str) -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout.lower()
    return name.lower().replace("utf-8", "utf8") in out.split()


def _session(root: Path, lang: str | None) -> dict[str, object]:
    """A fixed sequence of commands on a fresh copy of the example; what each printed, and the files written."""
    proj = root / f"proj-{lang or 'C'}"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("apt-oracle", "dnf-oracle", "containers", "packer",
                                                                 "images", "snapshots.lock", "boms"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k not in ("LANG", "LANGUAGE")}
    env |= {"LANG": lang, "LANGUAGE": lang.split("_")[0]} if lang else {"LC_ALL": "C"}
    env["IMAGEBUILD_CACHE"] = str(root / f"cache-{lang or 'C'}")
    cfg = str(proj / "imagebuild.toml")
    (proj / "installed").write_text("libc6 2.36-9+deb12u9 amd64\n")
    runs = [["lock"], ["lock", "--check"], ["check", "--strict"],
            ["why", "libcublas-12-4", "--role", "compute", "--arch", "amd64"],
            ["why", "--reverse", "slurmd", "--role", "compute", "--arch", "amd64"],
            ["bom", "diff", str(proj / "boms/compute-amd64.bom"), str(proj / "boms/login-amd64.bom")],
            ["bom", "diff", "--format", "markdown", str(proj / "boms/compute-amd64.bom"),
             str(proj / "boms/login-amd64.bom")],
            ["verify", "--role", "compute", "--arch", "amd64", "--installed", str(proj / "installed")],
            ["sbom", "--role", "rocky-compute", "--arch", "x86_64", "--format", "spdx"],
            ["bake", "--role", "compute", "--target", "docker"],
            ["why", "no-such-package", "--role", "compute"]]
    out: dict[str, object] = {}
    for args in runs:
        res = subprocess.run([sys.executable, "-m", "imagebuild", "--config", cfg, *args], capture_output=True,
                             env=env, timeout=600, check=False)
        here = str(proj).encode()
        out[" ".join(args).replace(str(proj), "PROJ")] = (res.returncode, res.stdout.replace(here, b"PROJ"),
                                                          res.stderr.replace(here, b"PROJ"))
    for p in sorted(proj.rglob("*")):
        if p.is_file() and p.name not in ("installed", ".imagebuild.lock"):  # the lock file holds a pid
            out[str(p.relative_to(proj))] = p.read_bytes().replace(str(proj).encode(), b"PROJ")
    return out


@pytest.mark.parametrize("lang", LOCALES)
def test_outputs_do_not_depend_on_the_locale(tmp_path: Path, lang: str) -> None:
    if not _available(lang):
        pytest.skip(f"locale {lang} not generated (scripts/setup.sh --test generates it)")
    c, translated = _session(tmp_path, None), _session(tmp_path, lang)
    assert c.keys() == translated.keys()
    for key in c:
        assert translated[key] == c[key], key
    assert c["lock"][0] == 0 and c["why no-such-package --role compute"][0] == 1  # type: ignore[index]
