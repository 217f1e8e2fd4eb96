"""rpm lock end-to-end on the fixture repos (built by rpmbuild/createrepo_c in tests/rpmrepos.py).

Agreement with real dnf is measured in tests/test_differential_dnf.py; this file checks the lock
contract on the rpm side: BOM format and determinism, modules, and bad input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rpmrepos import build_rpm_repos, missing_tools  # noqa: E402

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {' '.join(missing_tools())} to build RPMs")


@pytest.fixture(scope="session")
def rpm_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_rpm_repos(tmp_path_factory.mktemp("rpmrepos"))


def write_config(root: Path, repos: dict[str, Path], packages: list[str], *, arch: str = "x86_64",
                 modules: list[str] | None = None, extra: str = "") -> Path:
    lines = ["[distros.el9]", 'family = "rpm"', f'arches = ["{arch}"]', 'releasever = "9"']
    if modules:
        lines.append("modules = [" + ", ".join(f'"{m}"' for m in modules) + "]")
    lines.append(extra)
    for name in [n for n in ("baseos", "appstream", "epel", "cuda", "doca") if n in repos]:
        lines += ["[[distros.el9.repos]]", f'name = "{name}"', f'url = "file://{repos[name]}"']
    lines += ["[roles.r]", 'distro = "el9"', "packages = [" + ", ".join(f'"{p}"' for p in packages) + "]"]
    cfg = root / "imagebuild.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def lock(cfg: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "IMAGEBUILD_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock"],
                          capture_output=True, text=True, env=env, timeout=300)


def bom(cfg: Path, arch: str = "x86_64") -> list[str]:
    text = (cfg.parent / "boms" / f"r-{arch}.bom").read_text()
    return [ln for ln in text.splitlines() if not ln.startswith("#")]


def test_bom_is_rpm_qa_shaped_and_deterministic(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["nvidia-driver", "slurm-slurmd"])
    assert lock(cfg, tmp_path / "c").returncode == 0
    lines = bom(cfg)
    first = (tmp_path / "snapshots.lock").read_bytes()
    assert lock(cfg, tmp_path / "c2").returncode == 0
    assert (tmp_path / "snapshots.lock").read_bytes() == first
    entries = {ln.split()[0]: ln.split()[1] for ln in lines}
    # epoch shown only when set, as %{EVR} prints it
    assert entries["nvidia-driver"] == "3:575.57.08-1.el9"
    assert ":" not in entries["slurm-slurmd"]
    assert lines == sorted(lines, key=lambda ln: (ln.split()[0], ln.split()[2]))


def test_module_stream_selects_the_branch(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["cuda-12-6"], modules=["nvidia-driver:565-open"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 0, res.stderr
    drivers = [ln for ln in bom(cfg) if ln.startswith("nvidia-driver ")]
    assert drivers == ["nvidia-driver 3:565.57.01-1.el9 x86_64"]


def test_unknown_stream_is_a_clear_error(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["cuda-12-6"], modules=["nvidia-driver:999-open"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 2
    assert "module stream 'nvidia-driver:999-open' does not exist" in res.stderr
    assert "575-open" in res.stderr  # the hint lists what exists


def test_stale_epel_is_unsatisfiable_with_the_reason(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["nvidia-open"], modules=["nvidia-driver:575-open"],
                       extra='exclude = ["dkms-3.1.8*"]')
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 3, res.stderr
    assert "dkms >= 3.1.8" in res.stderr
    assert "Traceback" not in res.stderr


def test_tampered_primary_is_refused(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    repos = dict(rpm_repos)
    epel = tmp_path / "epel"
    shutil.copytree(rpm_repos["epel"], epel)
    repos["epel"] = epel
    primary = next((epel / "repodata").glob("*-primary.xml.*"))
    data = bytearray(primary.read_bytes())
    data[len(data) // 2] ^= 0x01
    primary.write_bytes(bytes(data))
    cfg = write_config(tmp_path, repos, ["slurm-slurmd"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 4, res.stderr
    assert "checksum mismatch" in res.stderr
    assert not (tmp_path / "snapshots.lock").exists()


def test_repofile_with_credentials_works_and_leaks_nothing(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    import base64
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    secret = "s3ntinel-Pa55word"
    token = "Basic " + base64.b64encode(f"ark:{secret}".encode()).decode()

    class AuthHandler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != token:
                self.send_response(401)
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(AuthHandler, directory=str(rpm_repos["epel"].parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        (tmp_path / "epel.repo").write_text(
            f"[epel]\nname=EPEL\nbaseurl=http://127.0.0.1:{port}/{rpm_repos['epel'].name}/\n"
            f"username=ark\npassword={secret}\nenabled=1\ngpgcheck=0\n\n"
            "[epel-debug]\nname=off\nmetalink=https://mirrors.example.invalid/metalink\nenabled=0\n")
        cfg = write_config(tmp_path, rpm_repos, ["slurm-slurmd"])
        text = cfg.read_text().replace(f'name = "epel"\nurl = "file://{rpm_repos["epel"]}"', 'repofile = "epel.repo"')
        cfg.write_text(text)
        res = lock(cfg, tmp_path / "c")
        assert res.returncode == 0, res.stderr
        assert any(ln.startswith("slurm-slurmd ") for ln in bom(cfg))
        # every file written (lock, BOMs, the metadata cache) is free of the password
        for p in tmp_path.rglob("*"):
            if p.is_file() and p.name != "epel.repo":
                assert secret.encode() not in p.read_bytes(), p
        assert secret not in res.stdout + res.stderr
        # a wrong password is a clear error without the password in it
        (tmp_path / "epel.repo").write_text((tmp_path / "epel.repo").read_text().replace(secret, "wrong-" + secret))
        bad = lock(cfg, tmp_path / "c3")
        assert bad.returncode == 4 and secret not in bad.stderr and "Traceback" not in bad.stderr
    finally:
        server.shutdown()


def test_mirrorlist_only_repo_is_refused(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "x.repo").write_text("[x]\nname=x\nmirrorlist=https://mirrors.example.invalid/?repo=x\n")
    cfg = write_config(tmp_path, rpm_repos, ["slurm-slurmd"])
    cfg.write_text(cfg.read_text().replace(f'name = "epel"\nurl = "file://{rpm_repos["epel"]}"', 'repofile = "x.repo"'))
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 2 and "mirrorlist is not supported" in res.stderr


def _copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _with_repo_options(cfg: Path, name: str, url: Path, options: str) -> None:
    text = cfg.read_text()
    anchor = f'name = "{name}"\nurl = "file://{url}"'
    assert anchor in text
    cfg.write_text(text.replace(anchor, f"{anchor}\n{options}"))


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway OpenPGP key made by real gpg: (GNUPGHOME, exported public key)."""
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg to sign repomd.xml")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Fixture Repo <repo@127.0.0.1>",
                    "rsa2048", "sign", "never"], check=True, capture_output=True, env=env)
    pub = home / "RPM-GPG-KEY-fixture"
    pub.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export"], check=True, capture_output=True,
                                   env=env).stdout)
    return home, pub


def _sign(repo: Path, home: Path) -> None:
    env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}
    md = repo / "repodata" / "repomd.xml"
    subprocess.run(["gpg", "--batch", "--yes", "--armor", "--detach-sign", "-o", f"{md}.asc", str(md)],
                   check=True, capture_output=True, env=env)


def test_signed_repomd_is_verified(rpm_repos: dict[str, Path], signing_key: tuple[Path, Path],
                                   tmp_path: Path) -> None:
    home, pub = signing_key
    repos = dict(rpm_repos)
    repos["epel"] = epel = _copy_repo(rpm_repos["epel"], tmp_path / "epel")
    _sign(epel, home)
    cfg = write_config(tmp_path, repos, ["slurm-slurmd"])
    _with_repo_options(cfg, "epel", epel, f'gpgkey = "{pub}"\nrepo_gpgcheck = true')
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 0, res.stderr
    good = (tmp_path / "snapshots.lock").read_bytes()

    # the signed file changes after signing (a mirror edits or replays it): refused, the lock untouched
    md = epel / "repodata" / "repomd.xml"
    md.write_bytes(md.read_bytes().replace(b"<revision>", b"<revision>1"))
    bad = lock(cfg, tmp_path / "c2")
    assert bad.returncode == 4, bad.stderr
    assert "repomd.xml: bad signature" in bad.stderr and "Traceback" not in bad.stderr
    assert (tmp_path / "snapshots.lock").read_bytes() == good

    # no signature at all while repo_gpgcheck is on
    (epel / "repodata" / "repomd.xml.asc").unlink()
    missing = lock(cfg, tmp_path / "c3")
    assert missing.returncode == 4 and "repomd.xml.asc is missing" in missing.stderr


def test_signature_by_another_key_is_refused(rpm_repos: dict[str, Path], signing_key: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    home, _ = signing_key
    repos = dict(rpm_repos)
    repos["epel"] = epel = _copy_repo(rpm_repos["epel"], tmp_path / "epel")
    _sign(epel, home)
    cfg = write_config(tmp_path, repos, ["slurm-slurmd"])
    other = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster" / "keys" / "example-archive.gpg"
    _with_repo_options(cfg, "epel", epel, f'gpgkey = "{other}"\nrepo_gpgcheck = true')
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 4 and "no signature by a key in the keyring" in res.stderr, res.stderr


def test_zstd_primary_is_read(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    """Fedora/EPEL ship zstd metadata; the solv wheel cannot read it, so imagebuild decompresses it itself."""
    import hashlib
    import re

    zstandard = pytest.importorskip("zstandard")
    repos = dict(rpm_repos)
    repos["epel"] = epel = _copy_repo(rpm_repos["epel"], tmp_path / "epel")
    md = epel / "repodata" / "repomd.xml"
    text = md.read_text()
    for old in sorted((epel / "repodata").glob("*-primary.xml.xz")):
        raw = __import__("lzma").decompress(old.read_bytes())
        packed = zstandard.ZstdCompressor(level=3).compress(raw)
        digest = hashlib.sha256(packed).hexdigest()
        new = old.with_name(f"{digest}-primary.xml.zst")
        new.write_bytes(packed)
        old.unlink()
        block = re.search(r'<data type="primary">.*?</data>', text, re.S)
        assert block is not None
        fixed = re.sub(r"<checksum type=\"sha256\">[0-9a-f]+</checksum>",
                       f'<checksum type="sha256">{digest}</checksum>', block.group(0), count=1)
        fixed = re.sub(r'href="[^"]+"', f'href="repodata/{new.name}"', fixed)
        fixed = re.sub(r"<size>\d+</size>", f"<size>{len(packed)}</size>", fixed, count=1)
        text = text.replace(block.group(0), fixed)
    md.write_text(text)
    cfg = write_config(tmp_path, repos, ["slurm-slurmd"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 0, res.stderr
    assert any(ln.startswith("slurm-slurmd 22.05.9-1.el9 ") for ln in bom(cfg))
    locked = (tmp_path / "snapshots.lock").read_text()
    assert digest in locked  # the lock records the zstd file it was resolved against


def test_unknown_package_names_close_matches(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["nvidia-drivr"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 3
    assert "no match for argument: nvidia-drivr" in res.stderr and "did you mean nvidia-driver" in res.stderr


def test_filtered_package_is_explained_like_dnf(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["nvidia-open-3:565.57.01-1.el9"], modules=["nvidia-driver:575-open"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 3
    assert "nvidia-open-3:565.57.01-1.el9.noarch is filtered out by modular filtering" in res.stderr


def test_mixed_deb_and_rpm_distros_lock_into_one_file(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"
    rpm_cfg = write_config(tmp_path, rpm_repos, ["slurm-slurmd"]).read_text()
    deb_cfg = (example / "imagebuild.toml").read_text().replace("file:mirror", f"file://{example}/mirror")
    deb_cfg = deb_cfg.replace('"keys/', f'"{example}/keys/').replace('"bases/', f'"{example}/bases/')
    cfg = tmp_path / "imagebuild.toml"
    cfg.write_text(deb_cfg + "\n" + rpm_cfg)
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 0, res.stderr
    import json

    doc = json.loads((tmp_path / "snapshots.lock").read_text())
    assert "r-x86_64.bom" in {p.name for p in (tmp_path / "boms").iterdir()}
    assert "compute-amd64.bom" in {p.name for p in (tmp_path / "boms").iterdir()}
    text = json.dumps(doc)
    assert '"el9"' in text and '"bookworm"' in text
    check = subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), "lock", "--check"],
                           capture_output=True, text=True, env={**os.environ, "IMAGEBUILD_CACHE": str(tmp_path / "c")})
    assert check.returncode == 0, check.stderr


def test_damaged_solv_cache_is_rebuilt_with_the_same_answer(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    """The parsed-repo cache (.solv with a sha256 trailer) may be truncated or bit-flipped on disk: the next
    lock notices, parses the XML again, and resolves exactly as before."""
    cfg = write_config(tmp_path, rpm_repos, ["cuda-12-6", "doca-ofed", "slurm-slurmd"])
    cache = tmp_path / "c"
    assert lock(cfg, cache).returncode == 0
    first = (tmp_path / "snapshots.lock").read_bytes()
    solvs = sorted((cache / "rpmsolv").rglob("*.solv"))
    assert len(solvs) == 5
    data = bytearray(solvs[0].read_bytes())
    data[len(data) // 3] ^= 0x10
    solvs[0].write_bytes(bytes(data))  # a flipped bit libsolv itself would not notice
    solvs[1].write_bytes(solvs[1].read_bytes()[: len(data) // 2])  # truncated
    solvs[2].write_bytes(b"")
    (tmp_path / "snapshots.lock").unlink()
    res = lock(cfg, cache)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "snapshots.lock").read_bytes() == first
    assert all(p.stat().st_size > 64 for p in solvs)  # rebuilt


def test_solv_cache_holds_the_file_provides_and_resolves_as_a_cold_run(rpm_repos: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """Each cached .solv holds the file provides libsolv adds for its pool's repos (listed as added, so a warm
    pool does not search the file lists again), the same provides a pool parsed from the XML gets; and what ran
    before with the cache (a lock of fewer repos) changes nothing in what a lock of the full set writes."""
    import solv

    pkgs = ["cuda-12-6", "doca-ofed", "slurm-slurmd"]
    cold = tmp_path / "cold"
    cold.mkdir()
    cfg = write_config(cold, rpm_repos, pkgs)
    assert lock(cfg, cold / "c").returncode == 0
    solvs = sorted((cold / "c" / "rpmsolv").rglob("*.solv"))
    assert len(solvs) == 5
    cached = solv.Pool()
    for path in solvs:
        f = solv.xfopen(str(path))
        assert cached.add_repo(path.name).add_solv(f, 0)
        f.close()
    listed = {cached.id2str(i) for r in cached.repos for i in r.meta.lookup_idarray(solv.REPOSITORY_ADDEDFILEPROVIDES)}
    assert "/bin/sh" in listed
    assert {cached.id2str(i) for i in cached.addfileprovides_queue()} <= listed
    from imagebuild.compression import decompress

    parsed = solv.Pool()
    for name, root in rpm_repos.items():
        repo = parsed.add_repo(name)
        for kind, flags in (("primary", 0), ("filelists", solv.Repo.REPO_EXTEND_SOLVABLES)):
            packed = next((root / "repodata").glob(f"*{kind}.xml*"))
            plain = tmp_path / f"{name}-{kind}.xml"
            plain.write_bytes(decompress(packed.name, packed.read_bytes()))
            f = solv.xfopen(str(plain))
            assert repo.add_rpmmd(f, "FL" if flags else "", flags)
            f.close()
    parsed.addfileprovides()

    def provides(pool: solv.Pool) -> set[tuple[str, frozenset[str]]]:
        return {(s.str(), frozenset(str(d) for d in s.lookup_deparray(solv.SOLVABLE_PROVIDES)))
                for s in pool.solvables_iter()}

    assert provides(cached) == provides(parsed)
    # warm, and after a lock of a subset of the repos with the same cache: the cold run's lock, byte for byte
    expected = (cold / "snapshots.lock").read_bytes()
    (cold / "snapshots.lock").unlink()
    assert lock(cfg, cold / "c").returncode == 0
    assert (cold / "snapshots.lock").read_bytes() == expected
    history = tmp_path / "history"
    history.mkdir()
    subset = write_config(history, {k: v for k, v in rpm_repos.items() if k != "doca"}, ["cuda-12-6"])
    assert lock(subset, history / "c").returncode == 0
    shutil.rmtree(history / "boms")
    (history / "snapshots.lock").unlink()
    cfg = write_config(history, rpm_repos, pkgs)
    assert lock(cfg, history / "c").returncode == 0
    assert (history / "snapshots.lock").read_bytes() == expected


def test_solv_cache_leaves_out_only_what_nothing_reads(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    """The cached .solv holds every package as libsolv parses it from the full XML, minus the texts primary.xml's
    lean reading drops (summary, description, packager, url, group, buildhost, source rpm): the same
    dependencies, vendors, build times, checksums, locations and sizes; and the lean reading gives the same
    bytes whatever pieces the decompressed file arrives in."""
    import random

    import solv

    from imagebuild.compression import decompress
    from imagebuild.rpm.repository import _Lean

    cfg = write_config(tmp_path, rpm_repos, ["cuda-12-6"])
    assert lock(cfg, tmp_path / "c").returncode == 0
    cached = solv.Pool()
    for path in sorted((tmp_path / "c" / "rpmsolv").rglob("*.solv")):
        f = solv.xfopen(str(path))
        assert cached.add_repo(path.name).add_solv(f, 0)
        f.close()
    parsed = solv.Pool()
    for name, root in rpm_repos.items():
        packed = next((root / "repodata").glob("*primary.xml*"))
        xml = decompress(packed.name, packed.read_bytes())
        whole: list[bytes] = []
        lean = _Lean(whole.append)
        lean(xml)
        lean.close()
        for seed in range(5):
            pieces: list[bytes] = []
            lean = _Lean(pieces.append)
            rng, at = random.Random(seed), 0
            while at < len(xml):
                n = rng.choice((1, 9, 100, 4096, 1 << 16))
                lean(xml[at:at + n])
                at += n
            lean.close()
            assert b"".join(pieces) == b"".join(whole), (name, seed)
        assert b"<description>" in xml and b"<description>" not in b"".join(whole)
        plain = tmp_path / f"{name}-primary.xml"
        plain.write_bytes(xml)
        f = solv.xfopen(str(plain))
        assert parsed.add_repo(name).add_rpmmd(f, "", 0)
        f.close()

    keys = (solv.SOLVABLE_PROVIDES, solv.SOLVABLE_REQUIRES, solv.SOLVABLE_CONFLICTS, solv.SOLVABLE_OBSOLETES,
            solv.SOLVABLE_RECOMMENDS, solv.SOLVABLE_SUGGESTS, solv.SOLVABLE_SUPPLEMENTS, solv.SOLVABLE_ENHANCES)

    def described(pool: solv.Pool) -> dict[tuple[str, str], tuple[object, ...]]:
        out = {}
        for s in pool.solvables_iter():
            chk = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
            out[(s.str(), s.lookup_location()[0])] = (
                s.vendor, s.lookup_num(solv.SOLVABLE_BUILDTIME), chk.hex() if chk else None,
                s.lookup_num(solv.SOLVABLE_DOWNLOADSIZE), s.lookup_num(solv.SOLVABLE_INSTALLSIZE),
                s.lookup_str(solv.SOLVABLE_LICENSE),
                # (the cache's provides also hold the file provides its pool needs)
                *(frozenset(str(d) for d in s.lookup_deparray(k) if k != solv.SOLVABLE_PROVIDES
                            or not str(d).startswith("/")) for k in keys))
        return out

    full, kept = described(parsed), described(cached)
    assert kept == full and len(kept) > 100
    assert any(s.lookup_str(solv.SOLVABLE_SUMMARY) for s in parsed.solvables_iter())
    assert not any(s.lookup_str(solv.SOLVABLE_SUMMARY) or s.lookup_str(solv.SOLVABLE_DESCRIPTION)
                   for s in cached.solvables_iter())


def test_older_repomd_than_the_locked_one_is_refused_as_rollback(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    """A mirror that serves an older repomd.xml (revision) at the URL and snapshot the lock already records
    is replaying stale metadata: refused (exit 4), the lock untouched."""
    repos = dict(rpm_repos)
    repos["epel"] = epel = _copy_repo(rpm_repos["epel"], tmp_path / "epel")
    cfg = write_config(tmp_path, repos, ["slurm-slurmd"])
    assert lock(cfg, tmp_path / "c").returncode == 0
    locked = (tmp_path / "snapshots.lock").read_bytes()
    md = epel / "repodata" / "repomd.xml"
    text = md.read_text()
    older = text.replace("<revision>1732233600</revision>", "<revision>1700000000</revision>")
    assert older != text
    md.write_text(older)
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 4, res.stderr
    assert "repomd.xml dated 2023-11-14 22:13:20 UTC is older than the 2024-11-22 00:00:00 UTC" in res.stderr
    assert (tmp_path / "snapshots.lock").read_bytes() == locked


def test_disabling_an_unknown_module_is_a_clear_error(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["slurm-slurmd"], modules=["!nvidia-drivers"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 2 and "module 'nvidia-drivers' (to disable) does not exist" in res.stderr
    assert "nvidia-driver" in res.stderr  # the hint lists the modules there are


def test_module_profile_requests_name_what_is_wrong(rpm_repos: dict[str, Path], tmp_path: Path) -> None:
    cfg = write_config(tmp_path, rpm_repos, ["@nvidia-driver:575-open/fm"])  # the default stream is latest-dkms
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 2, res.stderr
    assert "stream '575-open' of module 'nvidia-driver' is not enabled" in res.stderr
    assert 'distros.el9.modules = ["nvidia-driver:575-open"]' in res.stderr
    cfg = write_config(tmp_path, rpm_repos, ["@nvidia-driver/nosuch"])
    res = lock(cfg, tmp_path / "c")
    assert res.returncode == 3 and "has no profile 'nosuch'" in res.stderr and "fm, ks" in res.stderr
