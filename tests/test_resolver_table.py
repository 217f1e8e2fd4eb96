"""Table-driven resolver tests: tiny hand-written repositories, expectations recorded from real apt.

Each case is a TOML file in ``tests/data/resolver/`` (the test id is the file stem)::

    description = "what the case shows"
    arch = "amd64"
    recommends = false
    request = ["a", "b=1.0", "c/bookworm-backports", "d:amd64"]
    expect = ["a 1.0 amd64", "d 2 all", ...]   # the full final image: base - removed + installed
    # error = true                              # instead of expect: apt fails, imagebuild raises Unsatisfiable
    # xfail = "why"                             # imagebuild is known to disagree with apt (strict xfail)
    base = '''                                  # optional dpkg status (Status defaults to "install ok installed")
    Package: lib
    Version: 1.0
    Architecture: amd64
    '''

    [[index]]                                   # one flat repository each, in sources.list order
    suite = "bookworm"                          # the Release's Suite (and Codename unless `codename` is set)
    # codename = "..."
    not_automatic = false
    but_automatic_upgrades = false
    packages = '''
    Package: a
    Version: 1.0
    Architecture: amd64
    Depends: b | c
    '''

Stanzas need only Package/Version/Architecture (and relations); ``Filename``, ``Size`` and
``SHA256`` are filled in for apt.  Both tools see the same stanza text.

The test resolves every case with imagebuild's ``Resolver`` (pure, in memory) and compares with
``expect``.  When ``apt-get`` is on the PATH it also runs real apt on the same input (a private
apt root with one ``deb [trusted=yes] file:... ./`` source per index, the base as dpkg status,
``apt-get update`` then ``apt-get -s install``), so the table cannot drift from apt.  Set
``IMAGEBUILD_TABLE_NO_APT=1`` to skip the apt half.

To (re)record the expectation of a case from apt::

    python3 tests/test_resolver_table.py [CASE ...]      # prints apt's final set as TOML
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # also when run as a script
    sys.path.insert(0, str(REPO_ROOT))

from imagebuild.apt.packages import mention_order, parse_stanzas  # noqa: E402
from imagebuild.apt.repository import PackagesIndex, ReleaseInfo  # noqa: E402
from imagebuild.apt.resolver import Resolver  # noqa: E402
from imagebuild.apt.universe import Universe  # noqa: E402
from imagebuild.config import PackageRequest  # noqa: E402
from imagebuild.resolution import Unsatisfiable  # noqa: E402

CASES_DIR = Path(__file__).resolve().parent / "data" / "resolver"
APT_GET = None if os.environ.get("IMAGEBUILD_TABLE_NO_APT") == "1" else shutil.which("apt-get")

Case = dict[str, Any]


# -- reading a case ------------------------------------------------------------------------------

def _stanzas(text: str) -> list[str]:
    """The stanzas of a deb822 text, each stripped of surrounding blank lines."""
    return [s.strip("\n") for s in re.split(r"\n[ \t]*\n", text.strip("\n")) if s.strip()]


def _field(stanza: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}:[ \t]*(.*)$", stanza, re.M | re.I)
    return m.group(1).strip() if m else None


def _complete(stanza: str, status: bool) -> str:
    """Add what apt wants and the case leaves out: download fields, or the dpkg Status."""
    extra = []
    if status:
        if _field(stanza, "Status") is None:
            extra.append("Status: install ok installed")
    else:
        name, ver, arch = (_field(stanza, f) for f in ("Package", "Version", "Architecture"))
        if _field(stanza, "Filename") is None:
            extra.append(f"Filename: pool/{name}_{(ver or '').replace(':', '%3a')}_{arch}.deb")
        if _field(stanza, "Size") is None:
            extra.append("Size: 1")
        if _field(stanza, "SHA256") is None:
            extra.append("SHA256: " + hashlib.sha256(f"{name} {ver} {arch}".encode()).hexdigest())
    return "\n".join([stanza, *extra])


def load_case(path: Path) -> Case:
    with path.open("rb") as f:
        case = tomllib.load(f)
    allowed = {"description", "arch", "recommends", "request", "expect", "error", "xfail", "base", "index"}
    unknown = set(case) - allowed
    assert not unknown, f"{path.name}: unknown keys {sorted(unknown)}"
    assert case.get("index"), f"{path.name}: no [[index]]"
    assert ("expect" in case) != bool(case.get("error")), f"{path.name}: give exactly one of expect / error = true"
    case.setdefault("arch", "amd64")
    case.setdefault("recommends", False)
    for idx in case["index"]:
        unknown = set(idx) - {"suite", "codename", "not_automatic", "but_automatic_upgrades", "packages"}
        assert not unknown, f"{path.name}: unknown index keys {sorted(unknown)}"
        idx.setdefault("not_automatic", False)
        idx.setdefault("but_automatic_upgrades", False)
        idx.setdefault("codename", idx["suite"])
        idx["packages_text"] = "".join(_complete(s, False) + "\n\n" for s in _stanzas(idx["packages"]))
    case["base_text"] = "".join(_complete(s, True) + "\n\n" for s in _stanzas(case.get("base", "")))
    return case


def _case_arch_of(case: Case) -> dict[tuple[str, str], str]:
    """(name, version) -> Architecture field, from every stanza of the case (base included)."""
    out: dict[tuple[str, str], str] = {}
    for text in [case["base_text"], *(i["packages_text"] for i in case["index"])]:
        for s in _stanzas(text):
            out[(_field(s, "Package") or "", _field(s, "Version") or "")] = _field(s, "Architecture") or ""
    return out


# -- imagebuild ------------------------------------------------------------------------------------

def resolve_imagebuild(case: Case) -> list[str]:
    """imagebuild's final image as sorted "name version arch" lines (raises Unsatisfiable)."""
    arch = case["arch"]
    u = Universe(arch)
    for n, idx in enumerate(case["index"]):
        data = idx["packages_text"].encode()
        records = parse_stanzas(data)
        info = ReleaseInfo(
            repo=f"idx{n}", suite="./", url=f"file:/idx{n}", sha256="", date="", valid_until="",
            origin="test", label="test", archive=idx["suite"], codename=idx["codename"],
            not_automatic=idx["not_automatic"], but_automatic_upgrades=idx["but_automatic_upgrades"],
        )
        index = PackagesIndex(info, "", "Packages", hashlib.sha256(data).hexdigest(), f"file:/idx{n}",
                              records, mention_order(records, arch))
        u.add(records, index, info.pin_priority)
    if case["base_text"]:
        u.add(parse_stanzas(case["base_text"].encode()), None, 0)
    u.seal()
    requests = tuple(PackageRequest.parse(s) for s in case["request"])
    res = Resolver(u, recommends=case["recommends"]).install(requests)
    return sorted(f"{v.name} {v.version} {v.arch}" for v in res.installed.values())


# -- real apt --------------------------------------------------------------------------------------

# "Inst NAME[:ARCH] [OLDVER] (NEWVER RELEASE... [ARCH])" / "Remv NAME[:ARCH] [OLDVER]"
_INST_RE = re.compile(
    r"^Inst (?P<name>[^\s:]+)(?::\S+)?(?: \[(?P<old>[^\]]*)\])? \((?P<ver>\S+) .*?\[(?P<arch>[^\]]+)\]\)"
)
_REMV_RE = re.compile(r"^Remv (?P<name>[^\s:]+)(?::\S+)?(?: \[(?P<old>[^\]]*)\])?")


class AptRun:
    def __init__(self, failed: bool, packages: list[str] | None, output: str) -> None:
        self.failed, self.packages, self.output = failed, packages, output


def _release(idx: Case, packages: bytes) -> str:
    lines = [
        "Origin: imagebuild-test", "Label: imagebuild-test", f"Suite: {idx['suite']}", f"Codename: {idx['codename']}",
        "Date: Thu, 01 Jan 2026 00:00:00 UTC",
    ]
    if idx["not_automatic"]:
        lines.append("NotAutomatic: yes")
    if idx["but_automatic_upgrades"]:
        lines.append("ButAutomaticUpgrades: yes")
    lines += ["SHA256:", f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages"]
    return "\n".join(lines) + "\n"


def resolve_apt(case: Case, workdir: Path) -> AptRun:
    """``apt-get -s install REQUESTS`` in a private root; the final image as sorted lines."""
    assert APT_GET is not None
    arch = case["arch"]
    root = workdir / "root"
    for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "etc/apt/trusted.gpg.d",
              "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    sources = []
    for n, idx in enumerate(case["index"]):
        repo = workdir / f"idx{n}"
        repo.mkdir()
        data = idx["packages_text"].encode()
        (repo / "Packages").write_bytes(data)
        (repo / "Release").write_text(_release(idx, data))
        sources.append(f"deb [trusted=yes] file:{repo} ./\n")
    (root / "etc/apt/sources.list").write_text("".join(sources))
    status = root / "status"
    status.write_text(case["base_text"])
    rec = "true" if case["recommends"] else "false"
    # APT_CONFIG sets Dir first, so the host's /etc/apt (apt.conf.d, preferences, keys) is never read
    conf = workdir / "apt.conf"
    conf.write_text(
        f'Dir "{root}/";\nDir::State::status "{status}";\n'
        f'APT::Architecture "{arch}";\nAPT::Architectures {{ "{arch}"; }};\n'
        'Acquire::Languages "none";\nDir::Etc::Trusted "/dev/null";\nDir::Etc::TrustedParts "/dev/null";\n'
        'Acquire::Check-Valid-Until "false";\n'
        f'APT::Install-Recommends "{rec}";\nAPT::Install-Suggests "false";\nDebug::NoLocking "1";\n'
        'APT::Sandbox::User "root";\n'
    )
    opts = [
        "-o", f"Dir={root}/", "-o", f"Dir::State::status={status}", "-o", f"APT::Architecture={arch}",
        "-o", f"APT::Architectures={arch}", "-o", "Acquire::Languages=none", "-o", "Dir::Etc::TrustedParts=/dev/null",
        "-o", "Debug::NoLocking=1", "-o", f"APT::Install-Recommends={rec}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(APT_CONFIG=str(conf), LC_ALL="C", LANG="C", LANGUAGE="C", DEBIAN_FRONTEND="noninteractive")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([APT_GET, *opts, *args], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120, check=False)

    up = run("update")
    bad = [ln for ln in (up.stdout + up.stderr).splitlines() if ln.startswith(("E:", "W:", "Err:"))]
    if up.returncode != 0 or bad:
        raise RuntimeError(f"apt-get update failed ({up.returncode}):\n{up.stdout}{up.stderr}")
    r = run("-s", "install", *case["request"])
    output = r.stdout + r.stderr
    if r.returncode != 0 or any(ln.startswith("E:") for ln in output.splitlines()):
        return AptRun(True, None, output)
    arch_of = _case_arch_of(case)
    state: dict[str, str] = {}
    for s in _stanzas(case["base_text"]):
        if (_field(s, "Status") or "").split()[-1:] == ["installed"]:
            name, ver, arch_ = (_field(s, f) for f in ("Package", "Version", "Architecture"))
            state[name or ""] = f"{name} {ver} {arch_}"
    for line in r.stdout.splitlines():
        if m := _INST_RE.match(line):
            a = arch_of.get((m["name"], m["ver"]), m["arch"])
            state[m["name"]] = f"{m['name']} {m['ver']} {a}"
        elif m := _REMV_RE.match(line):
            state.pop(m["name"], None)
    return AptRun(False, sorted(state.values()), output)


# -- the test --------------------------------------------------------------------------------------

class ImagebuildDisagrees(AssertionError):
    """imagebuild's answer differs from the table (the only failure a case's `xfail` may excuse)."""


def _params() -> list[Any]:
    out = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        with path.open("rb") as f:
            reason = tomllib.load(f).get("xfail")
        marks = [pytest.mark.xfail(strict=True, raises=ImagebuildDisagrees, reason=reason)] if reason else []
        out.append(pytest.param(path, id=path.stem, marks=marks))
    return out


@pytest.mark.parametrize("path", _params())
def test_resolver_table(path: Path, tmp_path: Path) -> None:
    case = load_case(path)
    want_error = bool(case.get("error"))

    # 1. the table is apt's answer (when apt is here to ask)
    if APT_GET is not None:
        apt = resolve_apt(case, tmp_path)
        if want_error:
            assert apt.failed, f"apt succeeds where the table says error:\n{apt.packages}\n{apt.output}"
        else:
            assert not apt.failed, f"apt fails where the table expects a set:\n{apt.output}"
            assert apt.packages == sorted(case["expect"]), f"apt's set differs from the table\n{apt.output}"

    # 2. imagebuild's answer is the table's
    try:
        got = resolve_imagebuild(case)
    except Unsatisfiable as e:
        if want_error:
            return
        raise ImagebuildDisagrees(f"imagebuild fails ({e.message}; chain {e.chain}), apt installs "
                                  f"{sorted(case['expect'])}") from e
    if want_error:
        raise ImagebuildDisagrees(f"apt fails, imagebuild resolves to {got}")
    if got != sorted(case["expect"]):
        missing = sorted(set(case["expect"]) - set(got))
        extra = sorted(set(got) - set(case["expect"]))
        raise ImagebuildDisagrees(f"imagebuild differs from apt: missing {missing}, extra {extra}")


def test_cases_present() -> None:
    assert len(list(CASES_DIR.glob("*.toml"))) >= 20


# -- recording expectations ------------------------------------------------------------------------

def main(argv: list[str]) -> int:
    if APT_GET is None:
        print("apt-get not found", file=sys.stderr)
        return 2
    paths = [CASES_DIR / f"{a.removesuffix('.toml')}.toml" for a in argv] or sorted(CASES_DIR.glob("*.toml"))
    for path in paths:
        case = load_case(path)
        with tempfile.TemporaryDirectory() as tmp:
            apt = resolve_apt(case, Path(tmp))
        try:
            ib: Any = resolve_imagebuild(case)
        except Unsatisfiable as e:
            ib = f"Unsatisfiable: {e.message}"
        print(f"# {path.stem}")
        if apt.failed:
            print("error = true")
            print("\n".join("#   " + ln for ln in apt.output.strip().splitlines()[-6:]))
        else:
            print("expect = [\n" + "".join(f'    "{p}",\n' for p in apt.packages or []) + "]")
        apt_view: Any = "error" if apt.failed else apt.packages
        if ib != apt_view and not (apt.failed and isinstance(ib, str)):
            print(f"# imagebuild DIFFERS: {ib}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
