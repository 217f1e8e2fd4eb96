"""`imagebuild bake` on the embedded example: templates and bundles from the lock, checked by the real tools.

* every builder's template passes Debian's Packer (`fmt -check`, `validate`; `-syntax-only` where the builder
  would log in to a cloud) and parses as HCL2 with what the contract asks for in it;
* every rendered provisioning script is shellcheck clean;
* hostile config strings are refused at config time (exit 2), a stale or missing lock is exit 1;
* the rpm role really builds: the bundle's script drives host dnf into an --installroot, and the tarball's
  rpmdb equals the BOM (`verify --rootfs`);
* the arches this machine cannot execute are proven closed: real apt / real dnf, given exactly the bundle's
  pins against the lock's repos, install exactly the BOM.
The Debian end to end (mmdebstrap from the real data, byte-identical rebuild, credentials) is in
test_bake_debian.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apt_oracle import AptOracle, AptRepo, Pkg  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gpu-cluster"
ZERO = "0" * 64
IMAGES = {
    "qemu": f'builder = "qemu"\nsource = "http://127.0.0.1:8080/images/bookworm/20261122/'
            f'debian-12-genericcloud-{{arch}}.qcow2"\nsource-checksum = "sha256:{ZERO}"\ndisk_size = "20G"\n'
            'cd_files = ["seed/user-data", "seed/meta-data"]\ncd_label = "cidata"\n',
    "openstack": 'builder = "openstack"\nsource = "debian-12-genericcloud"\nflavor = "gpu.large"\n'
                 'networks = ["hpc-net"]\n',
    "amazon-ebs": 'builder = "amazon-ebs"\nsource = "debian-12-{arch}-*"\ninstance_type = "g5.xlarge"\n'
                  'region = "eu-west-1"\n',
    "docker": f'builder = "docker"\nsource = "localhost/minbase@sha256:{ZERO}"\n',
}
USERS = '[users]\nslurm = { uid = 64030, gid = 64030 }\nmunge = { uid = 64031, gid = 64031, home = "/var/lib/munge" }\n'


def run(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LC_ALL": "C", **(env or {})}
    return subprocess.run([sys.executable, "-m", "imagebuild", "--config", str(cfg), *args], capture_output=True,
                          text=True, env=full, timeout=600, check=False)


def project(tmp_path: Path, image: str | None = "qemu", extra: str = "") -> Path:
    """A copy of the example (its committed lock stays current: image settings and users do not decide it)."""
    dst = tmp_path / "site"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle", "packer", "images"))
    text = (dst / "imagebuild.toml").read_text() + "\n" + USERS + extra
    if image is not None:
        text += "\n[roles.compute.image]\n" + IMAGES[image]
        text += "\n[roles.rocky-compute.image]\n" + IMAGES[image].replace("debian-12", "rocky-9")
    (dst / "imagebuild.toml").write_text(text)
    (dst / "seed").mkdir()
    (dst / "seed/user-data").write_text("#cloud-config\n")  # a NoCloud seed for qemu's cd_files
    (dst / "seed/meta-data").write_text("")
    return dst / "imagebuild.toml"


def packer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_TMP_DIR": str(cwd / ".packer-tmp"), "LC_ALL": "C"}
    Path(env["PACKER_TMP_DIR"]).mkdir(exist_ok=True)
    return subprocess.run(["packer", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def unq(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def test_bake_renders_from_the_lock_only_and_deterministically(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    root = cfg.parent
    res = run(cfg, "bake")
    assert res.returncode == 0, res.stderr
    for rel in ("packer/compute.pkr.hcl", "packer/plugins.pkr.hcl", "packer/compute/amd64/provision.sh",
                "packer/compute/arm64/packages", "packer/rocky-compute/aarch64/repos/cuda.repo",
                "packer/login/amd64/bom"):
        assert (root / rel).is_file(), rel
    bundle = root / "packer/compute/amd64"
    assert (bundle / "bom").read_text() == (root / "boms/compute-amd64.bom").read_text()
    pins = (bundle / "packages").read_text().split()
    locked = [ln.split() for ln in (root / "boms/compute-amd64.bom").read_text().splitlines() if ln[:1] != "#"]
    assert sorted(p.split("=")[0].split(":")[0] for p in pins) == sorted(n for n, _, _ in locked)  # base none
    assert all("=" in p for p in pins)
    assert "munge 64031 64031 /var/lib/munge" in (bundle / "users").read_text()
    # the rpm bundle: exact NEVRAs, the locked module stream, weak deps as locked
    rpm = root / "packer/rocky-compute/x86_64"
    assert "kmod-nvidia-open-dkms-3:575.57.08-1.el9.noarch" in (rpm / "packages").read_text().split()
    assert (rpm / "repos/modules").read_text() == "nvidia-driver:575-open\n"
    assert "install_weak_deps=False" in (rpm / "repos/dnf.conf.in").read_text()
    again = run(cfg, "-v", "bake")
    assert again.returncode == 0 and "0 files written" in again.stderr, again.stderr
    assert run(cfg, "lock", "--check").returncode == 0


def test_stale_or_missing_lock_is_exit_1_with_a_hint(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    cfg.write_text(cfg.read_text().replace('"slurmd"', '"slurmd", "munge"', 1))
    res = run(cfg, "bake", "--role", "compute")
    assert res.returncode == 1 and "stale" in res.stderr and "imagebuild lock" in res.stderr, res.stderr
    (cfg.parent / "snapshots.lock").unlink()
    res = run(cfg, "bake")
    assert res.returncode == 1 and "imagebuild lock" in res.stderr and "Traceback" not in res.stderr
    assert not (cfg.parent / "packer").exists()


def test_a_lock_that_is_not_utf8_is_a_config_error_for_bake_and_replaced_by_lock(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    lock = cfg.parent / "snapshots.lock"
    good = lock.read_bytes()
    lock.write_bytes(b"\xff" + good)
    res = run(cfg, "bake", "--role", "compute")
    assert res.returncode == 2 and "not a valid imagebuild lock (UnicodeDecodeError" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and lock.read_bytes() == b"\xff" + good
    res = run(cfg, "lock")
    assert res.returncode == 0 and "it will be replaced" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert lock.read_bytes() == good


def test_unknown_role_and_packer_without_image_are_usage_errors(tmp_path: Path) -> None:
    cfg = project(tmp_path, image=None)
    res = run(cfg, "bake", "--role", "nope")
    assert res.returncode == 2 and "unknown role 'nope'" in res.stderr
    res = run(cfg, "bake", "--role", "login", "--target", "packer")
    assert res.returncode == 2 and "[roles.login.image]" in res.stderr


@pytest.mark.skipif(shutil.which("packer") is None, reason="packer not installed (apt-get install packer)")
@pytest.mark.parametrize("builder", sorted(IMAGES))
def test_every_builder_template_passes_packer(tmp_path: Path, builder: str) -> None:
    hcl2 = pytest.importorskip("hcl2")
    cfg = project(tmp_path, builder)
    assert run(cfg, "bake", "--target", "packer").returncode == 0
    pk = cfg.parent / "packer"
    for name in ("compute.pkr.hcl", "rocky-compute.pkr.hcl", "plugins.pkr.hcl"):
        fmt = packer("fmt", "-check", "-diff", name, cwd=pk)
        assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    for name in ("compute.pkr.hcl", "rocky-compute.pkr.hcl"):
        # openstack and amazon-ebs validate by logging in to their cloud: syntax only there
        args = ["validate", name] if builder in ("qemu", "docker") else ["validate", "-syntax-only", name]
        val = packer(*args, cwd=pk)
        assert val.returncode == 0, val.stdout + val.stderr
    with open(pk / "compute.pkr.hcl") as f:
        doc = hcl2.load(f)
    variables = {unq(k): v for block in doc["variable"] for k, v in block.items()}
    digest = hashlib.sha256((cfg.parent / "snapshots.lock").read_bytes()).hexdigest()
    assert unq(variables["lock_digest"]["default"]) == digest
    sources = {(unq(t), unq(n)) for block in doc["source"] for t, by_name in block.items() for n in by_name}
    assert sources == {(builder, "amd64"), (builder, "arm64")}
    build = doc["build"][0]
    provs = [(unq(t), body) for p in build["provisioner"] for t, body in p.items()]
    shells = [b for t, b in provs if t == "shell" and any("provision.sh" in s for s in b["inline"])]
    assert len(shells) == 2 and [t for t, _ in provs].count("file") == 2
    for body in shells:
        env = [unq(e) for e in body["environment_vars"]]
        assert "LC_ALL=C" in env and "DEBIAN_FRONTEND=noninteractive" in env
    post = [body for p in build["post-processor"] for t, body in p.items() if unq(t) == "manifest"]
    assert post and "lock_digest" in str(post[0]["custom_data"])
    plugins = (pk / "plugins.pkr.hcl").read_text()
    assert "required_plugins" in plugins and re.search(r'version = ">= \d+\.\d+\.\d+, < \d+\.0\.0"', plugins)
    assert "required_plugins" not in (pk / "compute.pkr.hcl").read_text()  # Packer 1.6 rejects it there
    if builder == "qemu":  # Packer's way in: the seed ISO from the project, a password only from the environment
        assert variables["ssh_password"]["sensitive"] is True and unq(variables["ssh_password"]["default"]) == ""
        text = (pk / "compute.pkr.hcl").read_text()
        assert 'cd_files         = [for f in var.cd_files : "${path.root}/../${f}"]' in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_rendered_scripts_are_shellcheck_clean(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    assert run(cfg, "bake", "--target", "rootfs").returncode == 0
    scripts = sorted((cfg.parent / "packer").glob("*/*/provision.sh"))
    assert len(scripts) == 8  # 4 roles x 2 arches, deb and rpm
    res = subprocess.run(["shellcheck", "--shell=sh", "--severity=style", *map(str, scripts)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout


# TOML values: quotes, command substitution, backticks, a real newline, HCL interpolation, a backslash
HOSTILE = ['"x\\"; rm -rf / #"', '"x$(id)"', '"x`id`"', '"x\\ny"', '"${var.lock_digest}"', '"a\'b"',
           "'x\\y'", '"%{ if true }x%{ endif }"']


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("key", ["source", "disk_size", "ssh_username"])
def test_hostile_image_settings_are_refused(tmp_path: Path, key: str, value: str) -> None:
    cfg = project(tmp_path, image=None)
    lines = [ln for ln in IMAGES["qemu"].splitlines() if not ln.startswith(f"{key} =")]
    cfg.write_text(cfg.read_text() + "\n[roles.compute.image]\n" + "\n".join(lines) + f"\n{key} = {value}\n")
    res = run(cfg, "bake")
    assert res.returncode == 2, res.stderr
    assert f"roles.compute.image.{key}" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (cfg.parent / "packer").exists()


@pytest.mark.parametrize(("users", "needle"), [
    ('[users]\n"x$(id)" = { uid = 1000, gid = 1000 }\n', "is not a valid account name"),
    ('[users]\nmunge = { uid = 1000, gid = 1000, home = "/var/`id`" }\n', "users.munge.home"),
    ('[users]\nmunge = { uid = 0, gid = 1000 }\n', "users.munge.uid: 0 is out of range"),
    ('[users]\nmunge = { uid = 1000, gid = 1000 }\nslurm = { uid = 1000, gid = 1001 }\n', "given to two users"),
    ('[users]\nmunge = { uid = 1000 }\n', "users.munge.gid: missing required key"),
    ('[users]\nmunge = { uid = 1000, gid = 1000, groups = ["a b"] }\n', "not a valid group name"),
])
def test_hostile_or_wrong_users_are_refused(tmp_path: Path, users: str, needle: str) -> None:
    dst = tmp_path / "site"
    shutil.copytree(EXAMPLE, dst, ignore=shutil.ignore_patterns("apt-oracle"))
    cfg = dst / "imagebuild.toml"
    cfg.write_text(cfg.read_text() + "\n" + users)
    res = run(cfg, "bake")
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_hcl_and_shell_quoting_render_values_inert() -> None:
    from imagebuild.bake import hcl_quote, sh_quote

    assert hcl_quote('a"${b}%{c}\\') == '"a\\"$${b}%%{c}\\\\"'
    assert sh_quote("x'$(id)") == "'x'\"'\"'$(id)'"
    from imagebuild.errors import ConfigError
    with pytest.raises(ConfigError):
        hcl_quote("a\nb")


# -- rpm: a real root filesystem through the bundle's script and host dnf -----------------------------------


def _rpm_tools() -> str | None:
    missing = [t for t in ("dnf", "rpm") if shutil.which(t) is None]
    return f"{', '.join(missing)} not installed (apt-get install dnf rpm)" if missing else None


@pytest.mark.skipif(_rpm_tools() is not None, reason=str(_rpm_tools()))
@pytest.mark.parametrize("weak_deps", [False, True], ids=["weak-deps-off", "weak-deps-on"])
def test_rpm_rootfs_through_the_bundle_equals_the_bom(tmp_path: Path, weak_deps: bool) -> None:
    """The example's rocky-compute role (module stream 575-open, kernel + the DOCA kmod built for it, dkms from
    EPEL; with weak deps on also dkms' Recommends and the driver's 32-bit libraries): provision.sh --root drives
    dnf --installroot; verify reads the tarball's rpmdb."""
    cfg = project(tmp_path)
    if weak_deps:
        text = cfg.read_text()
        head, sep, rest = text.partition("[distros.rocky9]")
        cfg.write_text(head + sep + rest.replace("recommends = false", "recommends = true", 1))
        assert run(cfg, "lock").returncode == 0
        bom = (cfg.parent / "boms/rocky-compute-x86_64.bom").read_text()
        assert " i686" in bom  # the weak dependency really is in the locked set
    res = run(cfg, "bake", "--role", "rocky-compute", "--arch", "x86_64", "--target", "rootfs", "--build")
    assert res.returncode == 0, res.stderr[-3000:]
    tar = cfg.parent / "images/rocky-compute-x86_64.tar"
    first = tar.read_bytes()
    ok = run(cfg, "verify", "--role", "rocky-compute", "--arch", "x86_64", "--rootfs", str(tar))
    assert ok.returncode == 0 and "equal to the lock" in ok.stdout, ok.stdout + ok.stderr
    import tarfile

    with tarfile.open(tar) as t:
        names = set(t.getnames())
        passwd = t.extractfile("./etc/passwd").read().decode()  # type: ignore[union-attr]
        dnf_conf = t.extractfile("./etc/dnf/dnf.conf").read().decode()  # type: ignore[union-attr]
    assert re.search(r"^munge:[^:]*:64031:64031:", passwd, re.M) and re.search(r"^slurm:[^:]*:64030:64030:",
                                                                              passwd, re.M)
    assert "./var/lib/rpm/rpmdb.sqlite" in names and "./etc/yum.repos.d/imagebuild.repo" in names
    assert not [n for n in names if "packer/rocky-compute" in n or n.startswith("./var/log/dnf")]  # no build state
    again = run(cfg, "bake", "--role", "rocky-compute", "--arch", "x86_64", "--target", "rootfs", "--build")
    assert again.returncode == 0 and tar.read_bytes() == first  # byte-identical on a rebuild
    assert "./etc/imagebuild/image.json" in names and "./etc/imagebuild/bom" in names
    assert "excludepkgs=" in dnf_conf and " kernel-core " in dnf_conf  # held
    # drift: a list with one package changed and one missing is exit 1, naming both
    bom = [ln for ln in (cfg.parent / "boms/rocky-compute-x86_64.bom").read_text().splitlines() if ln[:1] != "#"]
    changed = [ln.replace("22.05.9-1.el9", "22.05.9-2.el9") if ln.startswith("slurm-slurmd ") else ln
               for ln in bom if not ln.startswith("ucx-ib ")]
    (tmp_path / "installed.txt").write_text("\n".join(changed) + "\n")
    drift = run(cfg, "verify", "--role", "rocky-compute", "--arch", "x86_64", "--installed",
                str(tmp_path / "installed.txt"))
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert "slurm-slurmd" in drift.stdout and "ucx-ib" in drift.stdout


# -- arches this machine cannot execute: the pinned install is closed -------------------------------------


def _bom_set(path: Path) -> frozenset[Pkg]:
    return frozenset((n, v, a) for n, v, a in (ln.split() for ln in path.read_text().splitlines()
                                               if ln.strip() and ln[:1] != "#"))


@pytest.mark.parametrize("role", ["compute", "login", "control"])
def test_arm64_pins_are_closed_under_real_apt(tmp_path: Path, role: str) -> None:
    """Real apt, given exactly the bundle's pins against the lock's repos (arm64, base none as locked),
    installs exactly the BOM: nothing more, nothing less."""
    cfg = project(tmp_path, image=None)
    assert run(cfg, "bake", "--role", role, "--arch", "arm64", "--target", "rootfs").returncode == 0
    bundle = cfg.parent / "packer" / role / "arm64"
    repos = []
    for line in (bundle / "repos/sources.list.in").read_text().splitlines():
        m = re.match(r"^deb \[signed-by=@BUNDLE@/keys/(\S+) check-valid-until=no\] (\S+) (\S+)(.*)$", line)
        assert m, line
        flat = m[3] == "./"
        repos.append(AptRepo(m[2], () if flat else (m[3],), tuple(m[4].split()), str(bundle / "keys" / m[1]),
                             flat=flat))
    pins = (bundle / "packages").read_text().split()
    res = AptOracle(tmp_path / "apt").simulate(repos, "arm64", None, False, pins)
    assert not res.failed, res.describe()
    assert res.packages == _bom_set(bundle / "bom")


@pytest.mark.skipif(_rpm_tools() is not None, reason=str(_rpm_tools()))
def test_aarch64_pins_are_closed_under_real_dnf(tmp_path: Path) -> None:
    """Real dnf, given exactly the bundle's pins, module stream and weak-deps setting against the lock's
    repos, installs exactly the aarch64 BOM (into an installroot, --forcearch, no scriptlets)."""
    from dnf_oracle import DnfOracle

    cfg = project(tmp_path, image=None)
    assert run(cfg, "bake", "--role", "rocky-compute", "--arch", "aarch64", "--target", "rootfs").returncode == 0
    bundle = cfg.parent / "packer/rocky-compute/aarch64"
    repos = {}
    for f in sorted((bundle / "repos").glob("*.repo")):
        url = re.search(r"^baseurl=file://(\S+)$", f.read_text(), re.M)
        assert url, f
        repos[f.stem] = Path(url[1])
    oracle = DnfOracle(repos, tmp_path / "dnf")
    result = oracle.install("aarch64", (bundle / "packages").read_text().split(),
                            modules=(bundle / "repos/modules").read_text().split())
    assert result.ok, result.output[-3000:]
    expected = {ln for ln in (bundle / "bom").read_text().splitlines() if ln[:1] != "#"}
    assert set(result.bom) == expected


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('url = "file:mirror/debian"', 'url = "file:mirror/debian\\ndeb http://127.0.0.1:9/evil x main"',
     "holds whitespace, quotes"),
    ('url = "file:mirror/debian"', 'url = "file:mirror/deb`id`ian"', "holds whitespace, quotes"),
    ('suites = ["bookworm", "bookworm-backports"]', 'suites = ["bookworm main\\ndeb http://127.0.0.1:9/ x"]',
     "is not a suite or component name"),
    ('components = ["main", "non-free"]', 'components = ["main $(id)"]', "is not a suite or component name"),
    ('releasever = "9"', 'releasever = "9$(id)"', "is not a release version"),
    ('url = "file:mirror/rocky9/epel"', 'url = "file:mirror/rocky9/epel"\nexclude = ["x\\nbaseurl=http://127.0.0.1:9"]',
     "is not a package glob"),
])
def test_hostile_repo_strings_are_refused_at_config_time(tmp_path: Path, old: str, new: str, needle: str) -> None:
    """What reaches a bundle's repo files (URLs, suites, components, globs, releasever) cannot add a line."""
    cfg = project(tmp_path, image=None)
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    res = run(cfg, "bake")
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_rpm_hold_phase_excludes_or_versionlocks_the_locked_set(tmp_path: Path) -> None:
    """The script's hold phase, run for real against a scratch root: dnf.conf excludes the locked names (one
    `excludepkgs=` line under [main], no inline comment dnf would read as globs); with the versionlock plugin
    in the locked set, versionlock.list pins every locked name-[epoch:]version-release instead."""
    cfg = project(tmp_path, image=None)
    assert run(cfg, "bake", "--role", "rocky-compute", "--arch", "x86_64", "--target", "rootfs").returncode == 0
    bundle = cfg.parent / "packer/rocky-compute/x86_64"
    root = tmp_path / "root"
    (root / "etc/dnf").mkdir(parents=True)
    (root / "etc/dnf/dnf.conf").write_text("[main]\ngpgcheck=1\n")
    res = subprocess.run(["sh", str(bundle / "provision.sh"), "--root", str(root), "hold"], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    conf = (root / "etc/dnf/dnf.conf").read_text().splitlines()
    assert conf[0] == "[main]" and conf[1].startswith("#") and conf[-1] == "gpgcheck=1"
    excluded = conf[2].removeprefix("excludepkgs=").split()
    locked = sorted({ln.split()[0] for ln in (bundle / "bom").read_text().splitlines() if ln[:1] != "#"})
    assert excluded == locked and "kernel-core" in excluded
    # the versionlock plugin in the lock: its list instead
    bom = bundle / "bom"
    bom.write_text(bom.read_text() + "python3-dnf-plugin-versionlock 4.3.0-13.el9 noarch\n")
    shutil.rmtree(root)
    root.mkdir()
    res = subprocess.run(["sh", str(bundle / "provision.sh"), "--root", str(root), "hold"], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    entries = (root / "etc/dnf/plugins/versionlock.list").read_text().splitlines()
    assert "kmod-nvidia-open-dkms-3:575.57.08-1.el9.*" in entries
    assert "python3-dnf-plugin-versionlock-4.3.0-13.el9.*" in entries
    assert not (root / "etc/dnf/dnf.conf").exists()


def test_shipped_sources_skip_the_validity_check_only_for_snapshot_repos(tmp_path: Path) -> None:
    from imagebuild.apt.render import sources_deb822
    from imagebuild.config import AptRepo
    from imagebuild.family import BundleRepo

    cfg = AptRepo("debian", "http://127.0.0.1:9/debian", ("bookworm",), ("main",), None, True, False)
    on_snapshot = BundleRepo("debian", (("bookworm", "http://127.0.0.1:9/archive/debian/20261122T000000Z"),),
                             None, None, cfg, "20261122T000000Z")
    floating = BundleRepo("vendor", (("bookworm", "http://127.0.0.1:9/vendor"),), None, None, cfg, None)
    text = sources_deb822([on_snapshot, floating], "/etc/apt/keyrings/imagebuild-", enabled=True)
    first, second = text.split("\n\n")
    assert "Check-Valid-Until: no" in first and "Check-Valid-Until" not in second
