"""Fuzzing every parser of repository metadata, repo files, BOMs, the lock and the config with hypothesis.

Hostile input may only ever raise imagebuild's typed errors (ImagebuildError and its subclasses; the resolvers'
Unsatisfiable, which the application layer turns into a ResolutionError): never an IndexError, KeyError,
UnicodeDecodeError, RecursionError or a bare ValueError, and no hang or unbounded memory (decompression bombs,
entity expansion, YAML aliases and adversarial regex input are tried on purpose, with time limits). Input that
looks valid but is hostile (a `Filename: ../../x`, an rpm `location href` to another host, names and versions
no package manager accepts) must be refused before anything is written.

Inputs are built from structure (stanzas of random fields, XML of random elements and attributes, TOML of the
example config with hostile values) and by mutating the real files of examples/gpu-cluster, not only random bytes.
The run is deterministic (derandomize, no example database). The default is sized for ~1 minute in total;
IMAGEBUILD_FUZZ_EXAMPLES=5000 runs every test with that many examples.
"""

from __future__ import annotations

import atexit
import bz2
import contextlib
import dataclasses
import enum
import functools
import gzip
import io
import json
import lzma
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO_ROOT  # noqa: E402

from imagebuild import compression  # noqa: E402
from imagebuild.apt import repository as apt_repository  # noqa: E402
from imagebuild.apt.packages import (  # noqa: E402
    FIELDS,
    mention_order,
    parse_relations,
    parse_stanza_chunks,
    parse_stanzas,
)
from imagebuild.apt.release import check_validity, parse_release  # noqa: E402
from imagebuild.apt.repository import PackagesIndex, ReleaseInfo  # noqa: E402
from imagebuild.apt.resolver import Resolver  # noqa: E402
from imagebuild.apt.universe import Universe  # noqa: E402
from imagebuild.bom import parse_bom, render_bom  # noqa: E402
from imagebuild.config import Config, PackageRequest, RpmRepo, load_config  # noqa: E402
from imagebuild.errors import ImagebuildError  # noqa: E402
from imagebuild.lockfile import (  # noqa: E402
    Lock,
    LockedPackage,
    LockedRepo,
    LockedTarget,
    parse_lock,
    render_lock,
    repo_path,
)
from imagebuild.mirror import deb_control, download_url, plan  # noqa: E402
from imagebuild.repofiles import RepoFileKind, parse_text, rewrite  # noqa: E402
from imagebuild.resolution import Unsatisfiable  # noqa: E402
from imagebuild.rpm import repository as rpm_repository  # noqa: E402
from imagebuild.rpm.repository import RepoMetadata, module_documents, parse_repomd  # noqa: E402
from imagebuild.rpm.resolver import RpmResolver  # noqa: E402
from imagebuild.snapshots import Provider  # noqa: E402

EXAMPLE = REPO_ROOT / "examples" / "gpu-cluster"
REPOFILES = REPO_ROOT / "tests" / "data" / "repofiles"
EXAMPLES = int(os.environ.get("IMAGEBUILD_FUZZ_EXAMPLES", "0"))
T = TypeVar("T")


def fuzz(examples: int) -> Callable[[T], T]:
    """Deterministic settings: `examples` by default (sized for the ~1 minute budget), or IMAGEBUILD_FUZZ_EXAMPLES."""
    return settings(max_examples=EXAMPLES or examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)  # type: ignore[return-value]


def typed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """The result, or None when the input was refused with a typed error; any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except (ImagebuildError, Unsatisfiable) as e:
        assert e.message and isinstance(e.message, str)
        return None


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Fail (instead of hanging) when the block takes longer than `seconds`."""
    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"{what}: took more than {seconds} s (a hang or a blow-up)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- shared strategies ---------------------------------------------------------------------------------------

NASTY = [
    "", " ", "\t", "\n", "\r\n", "\x00", "\x1b[31m", "\x7f", "\x85", "\u2028", "\ufeff", "..", "../",
    "../../etc/passwd", "/", "/etc/passwd", "//evil.example/x", "http://evil.example/x.deb", "file:///etc/shadow",
    "%2e%2e/%2e%2e/x",
    "a\\..\\b", "C:\\x", "x?y#z", "$(id)", "`id`", "${HOME}", "%{x}", "'", '"', "\\", ";", "|", "&", "*", "[", "]",
    "{", "}", "<", ">", "(", ")", ":", "=", ",", "-", "~", "#", "!", "a" * 5000, "9" * 5000, "-1", "0", "1e999",
    "NaN", "inf", "true", "null", "ü", "\U0001f600", "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
]
nasty = st.sampled_from(NASTY)
text = st.text(max_size=30)
small_text = st.one_of(text, nasty, st.text(alphabet=" \t\n:,|()[]<>=!-+.~/a0", max_size=20))
word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+.-", min_size=1, max_size=12)
version = st.one_of(
    st.builds(lambda e, u, r: (f"{e}:" if e is not None else "") + u + (f"-{r}" if r is not None else ""),
              st.none() | st.integers(0, 2**40), st.from_regex(r"[0-9][A-Za-z0-9.+~]{0,8}", fullmatch=True),
              st.none() | st.from_regex(r"[A-Za-z0-9.+~]{0,6}", fullmatch=True)),
    small_text)


@st.composite
def mutated(draw: st.DrawFn, original: str, pieces: st.SearchStrategy[str] = small_text) -> str:
    """`original` with a few of its lines dropped, duplicated or swapped, or with text cut, replaced or inserted."""
    s = original
    for _ in range(draw(st.integers(1, 4))):
        lines = s.splitlines(keepends=True)
        op = draw(st.sampled_from(["drop", "dup", "swap", "cut", "replace", "insert", "truncate"]))
        if op in ("drop", "dup", "swap") and lines:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if op == "drop":
                del lines[i]
            elif op == "dup":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            s = "".join(lines)
        elif op == "truncate":
            s = s[:draw(st.integers(0, len(s)))]
        else:
            i = draw(st.integers(0, len(s)))
            j = min(len(s), i + draw(st.integers(0, 12))) if op != "insert" else i
            s = s[:i] + ("" if op == "cut" else draw(pieces)) + s[j:]
    return s


def flipped(data: bytes, positions: list[int]) -> bytes:
    b = bytearray(data)
    for p in positions:
        if b:
            b[p % len(b)] ^= 1 << (p % 8)
    return bytes(b)


# -- apt: Packages stanzas, relations, the universe and the resolver ----------------------------------------

FIELD_NAMES = [*FIELDS, "Description", "Tag", "package", "Package ", " Package", "X-Custom", ""]
RELATION_FIELDS = {"Pre-Depends", "Depends", "Conflicts", "Breaks", "Recommends", "Provides", "Suggests", "Replaces",
                   "Enhances"}


@st.composite
def relation(draw: st.DrawFn) -> str:
    alts = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.one_of(word, st.sampled_from(["a", "b", "c", "libc6", "x"]), small_text))
        archq = draw(st.sampled_from(["", ":any", ":native", ":amd64", ":", ":Bad!"]))
        op = draw(st.sampled_from(["", " (>= 1)", " (<< 2)", " (= 1.0-1)", " (>> 0)", " (<= 9)", "(>=1)",
                                   " ( >=  1 )", " (=> 1)", " (>=)", " (", " (>= 1", " (>= 1 2)"]))
        extra = draw(st.sampled_from(["", " [amd64]", " [!arm64 i386]", " <!nocheck>", " <a> <b>", " [", " <"]))
        alts.append(name + archq + op + extra + draw(st.sampled_from(["", " ", "\t", "   "])))
    return " | ".join(alts)


relations = st.lists(relation(), max_size=4).map(", ".join)


@st.composite
def stanza(draw: st.DrawFn) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"Package: {draw(st.one_of(st.sampled_from(['a', 'b', 'c', 'x']), word, small_text))}")
    for _ in range(draw(st.integers(0, 10))):
        name = draw(st.one_of(st.sampled_from(FIELD_NAMES), small_text))
        if name in RELATION_FIELDS:
            value = draw(st.one_of(relations, small_text))
        elif name == "Version":
            value = draw(version)
        elif name == "Architecture":
            value = draw(st.sampled_from(["amd64", "all", "arm64", "", "AMD64", "any"]))
        elif name == "Filename":
            value = draw(st.one_of(st.sampled_from(["pool/main/a/a_1_amd64.deb", "./a.deb", "a.deb"]), nasty,
                                   small_text))
        elif name == "Size":
            value = draw(st.one_of(st.integers(-5, 2**70).map(str), nasty, small_text))
        else:
            value = draw(small_text)
        sep = draw(st.sampled_from([": ", ":", " : ", ":\t", " ", ""]))
        lines.append(f"{name}{sep}{value}")
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from([" continued", "\tcontinued", " .", "#comment", " "])))
    return "\n".join(lines)


@st.composite
def packages_file(draw: st.DrawFn) -> bytes:
    seps = st.sampled_from(["\n\n", "\n\n\n", "\n \n", "\r\n\r\n", "\n"])
    stanzas = draw(st.lists(stanza(), max_size=6))
    text_ = ""
    for s in stanzas:
        text_ += s + draw(seps)
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "raw"]))
    data = text_.encode("utf-8", "surrogatepass") if encoding != "latin-1" else text_.encode("latin-1", "replace")
    if encoding == "raw":
        data = flipped(data, draw(st.lists(st.integers(0, 1 << 20), max_size=4)))
    return data


def _index(records: list[tuple[str, ...]], arch: str) -> PackagesIndex:
    info = ReleaseInfo(repo="fuzz", suite="bookworm", url="http://127.0.0.1/", sha256="0" * 64, date="", valid_until="",
                       origin="", label="", archive="", codename="", not_automatic=False, but_automatic_upgrades=False)
    return PackagesIndex(info, "main", "main/binary-amd64/Packages", "0" * 64, "http://127.0.0.1/", records,
                         mention_order(records, arch))


def _universe(records: list[tuple[str, ...]], base: list[tuple[str, ...]] | None = None) -> Universe | None:
    """A universe of `records` (and `base`, as a dpkg status), every package and version looked at; None if refused."""
    u = Universe("amd64")
    u.add(base or [], None, 100)
    u.add(records, _index(records, "amd64"), 500)

    def look() -> Universe:
        for name in list(u.names()):
            pkg = u.get(name)
            assert pkg is not None
            for v in pkg.versions:
                v.deps  # noqa: B018
                for virtual, _ in v.provides:
                    u.providers(virtual)
                for o in v.origins:  # what can reach the lock
                    assert o.filename == "" or repo_path(o.filename) is not None, o.filename
                    assert o.size >= 0
        return u

    return typed(look)


@fuzz(400)
@given(packages_file(), st.lists(st.integers(0, 1 << 16), max_size=8))
def test_packages_stanzas(data: bytes, cuts: list[int]) -> None:
    records = typed(parse_stanzas, data)
    # the same records (or the same refusal) from the file in pieces, as a decompressing thread hands it over
    at = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[i:j] for i, j in zip([0, *at], [*at, len(data)], strict=True)]
    assert typed(parse_stanza_chunks, pieces) == records
    if records is None:
        return
    assert all(len(r) == len(FIELDS) and all(isinstance(f, str) for f in r) for r in records)
    _universe(records)


@fuzz(250)
@given(packages_file(), st.lists(st.sampled_from(["a", "b", "c", "x", "a=1", "b/bookworm", "c:amd64"]),
                                 min_size=1, max_size=3), st.booleans())
def test_packages_resolve(data: bytes, requests: list[str], recommends: bool) -> None:
    """The apt resolver over whatever a hostile index holds: typed errors (or Unsatisfiable) only."""
    records = typed(parse_stanzas, data)
    base = typed(parse_stanzas, b"Package: a\nVersion: 1\nArchitecture: amd64\nStatus: install ok installed\n")
    if records is None or base is None:
        return
    u = _universe(records, base)
    if u is None:
        return
    with time_limit(20, "resolve"):
        res = typed(lambda: Resolver(u, recommends).install(tuple(PackageRequest.parse(r) for r in requests)))
    if res is not None:
        for v in res.installed.values():
            assert all(o.filename == "" or repo_path(o.filename) is not None for o in v.origins)


@fuzz(600)
@given(st.one_of(relations, small_text, st.text(max_size=200)))
def test_relations(field: str) -> None:
    groups = typed(parse_relations, field)
    for group in groups or ():
        assert group and all(rel.name and not any(c.isspace() for c in rel.name) for rel in group)


@pytest.mark.parametrize("field", [
    "a" + " " * 50_000 + "!", "a (" + " " * 50_000, "a [" + "x" * 50_000, "a " + "<" * 50_000,
    "a:" + "b" * 50_000 + "!", "a (>= 1)" + " \t" * 25_000 + "[", ", ".join(["a | b"] * 20_000) + ",!",
])
def test_relations_adversarial_input_is_linear(field: str) -> None:
    """A regex with adjacent `\\s*` runs backtracks over every split of a run of blanks: cubic time, a hang at 50 kB."""
    with time_limit(2, "parse_relations"):
        typed(parse_relations.__wrapped__, field)


def test_packages_hostile_but_valid_looking_records_are_refused() -> None:
    """What would reach the lock, a BOM or a provisioning script: path traversal, URLs, invalid names and versions."""
    good = "Package: a\nVersion: 1.0-1\nArchitecture: amd64\nFilename: pool/main/a/a_1.0-1_amd64.deb\nSize: 10\n"
    assert _universe(parse_stanzas(good.encode())) is not None
    assert _universe(parse_stanzas(good.replace("pool/main", "./pool/main").encode())) is not None
    bad = [("Filename: pool/main/a/a_1.0-1_amd64.deb", f"Filename: {f}") for f in (
        "../../../etc/passwd", "pool/../../x.deb", "/etc/passwd", "http://evil.example/a.deb", "//evil.example/a.deb",
        "pool/%2e%2e/%2e%2e/x.deb", "pool\\..\\x.deb", "pool/a.deb?x=1", "pool/a b.deb")]
    bad += [("Package: a", f"Package: {n}") for n in ("a b", "-a", "a:b", "$(id)", "a*", "ä")]
    bad += [("Version: 1.0-1", f"Version: {v}") for v in ("", "1.0 1", "1.0-", "x:1", ":1", "1:", "1*", "$(id)", "1;2",
                                                          "99999999999:1", "1.0\x00")]
    bad += [("Size: 10", "Size: ten"), ("Size: 10", "Size: -1"), ("Size: 10", "Size: " + "9" * 5000)]
    for old, new in bad:
        records = parse_stanzas(good.replace(old, new).encode())
        if not records or records[0][0] != records[0][0].strip():
            continue
        assert _universe(records) is None, new


# -- apt: Release / InRelease, clearsigned messages, compressed indices -------------------------------------

RELEASE = (EXAMPLE / "mirror/debian/dists/bookworm/Release").read_text()
INRELEASE = (EXAMPLE / "mirror/debian/dists/bookworm/InRelease").read_bytes()
release_pieces = st.one_of(small_text, st.sampled_from([
    "\nSHA256:\n", " " + "a" * 64 + " 12 main/binary-amd64/Packages", " zz 12 x", " " + "0" * 64 + " -1 x",
    " " + "0" * 64 + " " + "9" * 5000 + " x", "\nValid-Until: Sat, 28 Nov 99999 00:00:00 UTC",
    "\nDate: Sat, 21 Nov 2026 00:00:00 +99999", "\nDate: 31 Feb 2026 25:61:61 UTC", "\nValid-Until: yesterday",
    "\nDate: Sat, 21 Nov 99999999999999999999 00:00:00 UTC", "\nValid-Until: Sat, 28 Nov 2026 00:00:00 +" + "9" * 20,
    "\nNotAutomatic: yes", "\nArchitectures: ", "\n-----BEGIN PGP SIGNATURE-----\n", "\n\n",
]))


@fuzz(400)
@given(st.one_of(mutated(RELEASE, release_pieces), st.text(max_size=300)))
def test_release(text_: str) -> None:
    release = typed(parse_release, text_, "Release")
    if release is None:
        return
    assert all(len(e.sha256) == 64 and e.size >= 0 for e in release.files.values())
    release.date, release.valid_until, release.architectures, release.components, release.by_hash  # noqa: B018
    typed(check_validity, release, "Release", datetime(2026, 11, 22, tzinfo=UTC))


@fuzz(300)
@given(st.one_of(mutated(INRELEASE.decode(), release_pieces).map(str.encode),
                 st.binary(max_size=300).map(lambda b: b"-----BEGIN PGP SIGNED MESSAGE-----\n" + b)))
def test_clearsigned_release(data: bytes) -> None:
    """The pure-Python part of clearsigned InRelease handling (trusted repos without signed-by)."""
    content = apt_repository._strip_clearsign(data)
    assert isinstance(content, bytes)
    release = typed(parse_release, content.decode("utf-8", errors="replace"), "InRelease")
    if release is not None:
        typed(check_validity, release, "InRelease", datetime(2026, 11, 22, tzinfo=UTC))


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".xz": lzma.compress, ".lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
    ".gz": lambda b: gzip.compress(b, mtime=0), ".bz2": bz2.compress, ".zst": zstandard.ZstdCompressor().compress,
}


@fuzz(500)
@given(st.sampled_from(sorted(COMPRESSORS)), st.binary(max_size=2000), st.integers(1, 3),
       st.sampled_from(["none", "truncate", "flip", "garbage", "append", "prepend"]), st.data())
def test_decompress(ext: str, payload: bytes, members: int, damage: str, data: st.DataObject) -> None:
    member = COMPRESSORS[ext](payload)
    blob = member * members
    if damage == "truncate":
        blob = blob[:data.draw(st.integers(0, max(0, len(blob) - 1)))]
    elif damage == "flip":
        blob = flipped(blob, data.draw(st.lists(st.integers(0, 1 << 20), min_size=1, max_size=6)))
    elif damage == "garbage":
        blob = data.draw(st.binary(max_size=200))
    elif damage == "append":
        blob += data.draw(st.binary(min_size=1, max_size=20))
    elif damage == "prepend":
        blob = data.draw(st.binary(min_size=1, max_size=20)) + blob
    out = typed(compression.decompress, f"Packages{ext}", blob)
    step = data.draw(st.integers(1, 4096))
    assert typed(lambda: b"".join(compression.decompress_chunks(f"Packages{ext}", blob, step))) == out
    if damage == "none":
        assert out == payload * members
    if damage == "truncate" and len(blob) % len(member):  # a cut inside a member (stream, frame) is an error
        assert out is None, "a truncated file decompressed without an error"
    fed: list[bytes] = []
    assert typed(lambda: compression.feed(f"primary.xml{ext}", blob, fed.append) or b"".join(fed)) == out
    forked: list[bytes] = []  # decompressed by a child: all of it, or False where feed raises
    assert (b"".join(forked) if compression.feed_forked(f"primary.xml{ext}", blob, forked.append) else None) == out
    assert compression.decompress("Packages", blob) == blob


def _bomb(ext: str, size: int) -> bytes:
    """`size` zero bytes, compressed as many members/streams/frames of 1 MiB (cheap to build, and each format's
    reader goes on to the next one)."""
    return COMPRESSORS[ext](b"\0" * (1 << 20)) * (size >> 20)


@pytest.mark.parametrize("ext", [".xz", ".gz", ".bz2", ".zst"])
def test_decompression_bombs_are_bounded(ext: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression, "MIN_LIMIT", 8 << 20)
    bomb = _bomb(ext, 64 << 20)
    assert len(bomb) * compression.MAX_RATIO < 64 << 20
    with time_limit(10, "bomb"), pytest.raises(ImagebuildError, match="decompresses to more than 8 MiB"):
        compression.decompress(f"Packages{ext}", bomb)
    with pytest.raises(ImagebuildError, match="decompresses to more than"):
        compression.feed(f"primary.xml{ext}", bomb, lambda piece: None)
    with time_limit(10, "bomb"):
        assert compression.feed_forked(f"primary.xml{ext}", bomb, lambda piece: None) is False
    with time_limit(10, "bomb"), pytest.raises(ImagebuildError, match="decompresses to more than 8 MiB"):
        b"".join(compression.decompress_chunks(f"Packages{ext}", bomb))
    assert compression.limit(1) == 8 << 20 and compression.limit(1 << 40) == compression.MAX_LIMIT


def test_decompression_bomb_at_the_real_limit() -> None:
    """~1 KB of zstd that would be 4 GiB stops at the default limit (256 MiB, the most it holds)."""
    bomb = _bomb(".zst", 4 << 30)
    with time_limit(30, "bomb"), pytest.raises(ImagebuildError, match=f"more than {compression.MIN_LIMIT >> 20} MiB"):
        compression.feed("primary.xml.zst", bomb, lambda piece: None)


# -- rpm: repomd.xml, primary/filelists XML (libsolv), modules.yaml ------------------------------------------

REPOMD = (EXAMPLE / "mirror/rocky9/baseos/repodata/repomd.xml").read_text()
PRIMARY = gzip.decompress(next((EXAMPLE / "mirror/rocky9/baseos/repodata").glob("*-primary.xml.gz")).read_bytes())
FILELISTS = gzip.decompress(next((EXAMPLE / "mirror/rocky9/baseos/repodata").glob("*-filelists.xml.gz")).read_bytes())
MODULES = gzip.decompress(next((EXAMPLE / "mirror/rocky9/cuda/repodata").glob("*-modules.yaml.gz")).read_bytes())
LOL = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
       + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
       + "]>\n")
XXE = '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
xml_pieces = st.one_of(small_text, st.sampled_from([
    LOL, XXE, "&lol9;", "&x;", "<!DOCTYPE r>", '<location href="../../../etc/passwd"/>', '<location href="/etc/x"/>',
    '<location href="http://evil.example/x.xml.gz"/>', '<location xml:base="http://evil.example/" href="x"/>',
    '<data type="primary">', "</data>", '<checksum type="sha256">', "</checksum>", "<revision>", "</revision>",
    "<![CDATA[", "]]>", "<?pi?>", "&#0;", "&#x110000;", "<a" * 50, "\udcff",
]))


def _element(tag: str, attrs: dict[str, str], body: str | list[str]) -> str:
    inner = "".join(body) if isinstance(body, list) else body
    return f"<{tag}{''.join(f' {k}={chr(34)}{v}{chr(34)}' for k, v in attrs.items())}>{inner}</{tag}>"


def xml_tree(tags: list[str]) -> st.SearchStrategy[str]:
    """Random XML elements: tags of the format (or made up), its attributes with plausible and odd values."""
    tag = st.sampled_from(tags) | st.text(alphabet="abcxyz_:-.0", max_size=5).map(lambda t: "t" + t)
    attrs = st.dictionaries(
        st.sampled_from(["type", "href", "xml:base", "epoch", "ver", "rel", "name", "flags", "pkgid", "arch"]),
        st.one_of(st.sampled_from(["primary", "filelists", "modules", "sha256", "sha1", "md5", "repodata/x.xml",
                                   "../x", "EQ", "GE", "0", "1"]), st.text(alphabet="abc/.:-_ 0", max_size=10)),
        max_size=3)
    leaf = st.builds(_element, tag, attrs, st.text(alphabet="abc0123456789 ./-", max_size=20))
    return st.recursive(leaf, lambda kids: st.builds(_element, tag, attrs, st.lists(kids, max_size=3)), max_leaves=12)


REPOMD_TAGS = ["repomd", "data", "checksum", "open-checksum", "location", "revision", "timestamp", "size", "tags"]
REPOMD_NS = ('<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">',
             "</repomd>")


@fuzz(500)
@given(st.one_of(
    mutated(REPOMD, xml_pieces),
    st.lists(xml_tree(REPOMD_TAGS), max_size=4).map(lambda kids: REPOMD_NS[0] + "".join(kids) + REPOMD_NS[1]),
    st.sampled_from([LOL + "<repomd>&lol9;</repomd>", XXE + "<repomd>&x;</repomd>"]),
    st.text(max_size=200)), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_repomd(xml: str, encoding: str) -> None:
    raw = xml.encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")
    with time_limit(10, "repomd"):
        parsed = typed(parse_repomd, raw, "repo 'fuzz'")
    if parsed is not None:
        entries, revision = parsed
        assert "primary" in entries and isinstance(revision, str)
        assert all(repo_path(href) is not None for _, _, href in entries.values())


@pytest.mark.parametrize("href", ["../../../etc/shadow", "/etc/shadow", "http://evil.example/primary.xml.gz",
                                  "repodata/%2e%2e/%2e%2e/x.xml.gz", ""])
def test_repomd_locations_outside_the_repo_are_refused(href: str) -> None:
    raw = REPOMD.replace(next(line for line in REPOMD.splitlines() if "primary.xml.gz" in line),
                         f'    <location href="{href}"/>').encode()
    with pytest.raises(ImagebuildError, match="is not a path in the repository"):
        parse_repomd(raw, "repo 'x'")


def test_xml_entities_are_refused() -> None:
    for doc in (LOL + "<repomd>&lol9;</repomd>", XXE + "<repomd>&x;</repomd>", '<!DOCTYPE r SYSTEM "http://x/"><r/>'):
        with pytest.raises(ImagebuildError, match="DOCTYPE"):
            parse_repomd(doc.encode(), "repo 'x'")


PRIMARY_TAGS = ["package", "name", "arch", "version", "checksum", "location", "format", "rpm:provides", "rpm:requires",
                "rpm:entry", "file", "summary", "size"]
PRIMARY_NS = ('<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" '
              'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="3">', "</metadata>")


@st.composite
def rpm_package(draw: st.DrawFn) -> str:
    """A primary.xml <package> whose values may be hostile."""
    def value(good: list[str]) -> str:
        v = draw(st.one_of(st.sampled_from(good), nasty, small_text))
        return v.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")

    name, arch = value(["a", "b", "c"]), value(["x86_64", "noarch", "aarch64"])
    ver, rel, epoch = value(["1", "2.0", "1.0~rc1"]), value(["1.el9", "2"]), value(["0", "1", "3"])
    href = value(["Packages/a-1-1.x86_64.rpm", "a.rpm", "../a.rpm", "/a.rpm", "http://evil.example/a.rpm"])
    reqs = "".join(f'<rpm:entry name="{value(["a", "b", "c", "d"])}"/>' for _ in range(draw(st.integers(0, 3))))
    return (f'<package type="rpm"><name>{name}</name><arch>{arch}</arch><version epoch="{epoch}" ver="{ver}" '
            f'rel="{rel}"/><checksum type="sha256" pkgid="YES">{"0" * 64}</checksum><size package="10"/>'
            f'<location href="{href}"/><format><rpm:provides><rpm:entry name="{name}"/></rpm:provides>'
            f'<rpm:requires>{reqs}</rpm:requires></format></package>')


def _rpm_md(root: Path, primary: bytes, gz: bool, filelists: bytes | None = None) -> RepoMetadata:
    root.mkdir(parents=True, exist_ok=True)
    p = root / ("primary.xml.gz" if gz else "primary.xml")
    p.write_bytes(gzip.compress(primary, mtime=0) if gz else primary)
    fl = None
    if filelists is not None:
        fl = root / "filelists.xml"
        fl.write_bytes(filelists)
    repo = RpmRepo("fuzz", "file:///nonexistent", 99, 1000, False, None, False, (), ())
    return RepoMetadata(repo=repo, url="file:///nonexistent", repomd_sha256="0" * 64, revision="", primary=p,
                        filelists=fl, modules=None, files=())


_TMP = Path(tempfile.mkdtemp(prefix="imagebuild-fuzz-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)  # rmtree removes the symlinks below, not their targets


@fuzz(300)
@given(st.one_of(
    mutated(PRIMARY.decode(), xml_pieces),
    st.lists(st.one_of(rpm_package(), xml_tree(PRIMARY_TAGS)), max_size=4).map(
        lambda kids: PRIMARY_NS[0] + "".join(kids) + PRIMARY_NS[1]),
    st.sampled_from([LOL + PRIMARY_NS[0] + "<package><name>&lol9;</name></package>" + PRIMARY_NS[1],
                     XXE + PRIMARY_NS[0] + "<package><name>&x;</name></package>" + PRIMARY_NS[1]]),
    st.text(max_size=200)), st.booleans(), st.booleans(), st.sampled_from(["a", "b", "c", "a.x86_64", "b-1-1"]))
def test_rpm_primary_and_resolve(xml: str, gz: bool, with_filelists: bool, request_: str) -> None:
    """libsolv parses primary.xml (and filelists); the resolver must refuse packages no rpm could be, or whose
    location leaves the repository, before they reach the lock."""
    raw = xml.encode("utf-8", "surrogatepass")
    md = _rpm_md(_TMP / "rpm", raw, gz, FILELISTS if with_filelists else None)
    with time_limit(20, "libsolv"):
        resolver = typed(RpmResolver, "x86_64", [md], [], False, [], [])
        if resolver is None:
            return
        res = typed(resolver.install, [request_])
    for p in res.installed if res is not None else ():
        assert repo_path(p.location) is not None and " " not in p.name + p.evr + p.arch


def test_rpm_hostile_locations_and_names_are_refused() -> None:
    def one(name: str = "a", ver: str = "1", href: str = "Packages/a-1-1.x86_64.rpm") -> bytes:
        return (PRIMARY_NS[0] + f'<package type="rpm"><name>{name}</name><arch>x86_64</arch><version epoch="0" '
                f'ver="{ver}" rel="1"/><checksum type="sha256" pkgid="YES">{"0" * 64}</checksum>'
                f'<location href="{href}"/></package>' + PRIMARY_NS[1]).encode()

    assert RpmResolver("x86_64", [_rpm_md(_TMP / "ok", one(), False)], [], False, [], []).install(["a"]).installed
    for kwargs in ({"href": "../../../etc/passwd.rpm"}, {"href": "/etc/a.rpm"}, {"href": "http://evil.example/a.rpm"},
                   {"href": "Packages/%2e%2e/%2e%2e/a.rpm"}, {"name": "a$(id)"}, {"ver": "1 2"}, {"ver": "1*"}):
        md = _rpm_md(_TMP / "bad", one(**kwargs), False)
        with pytest.raises(ImagebuildError, match="outside its repository|not a valid package name|invalid version"):
            spec = kwargs.get("name", "a")
            RpmResolver("x86_64", [md], [], False, [], []).install([spec if "$" not in spec else "a*"])


@st.composite
def modules_yaml(draw: st.DrawFn) -> str:
    import yaml

    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), small_text,
                     st.sampled_from(["nvidia-driver", "575-open", "a-0:1-1.x86_64"]))
    anything = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(small_text, kids,
                                                                                             max_size=3), max_leaves=8)
    docs = []
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.fixed_dictionaries({}, optional={
            "name": anything, "stream": anything, "module": anything, "artifacts": st.one_of(
                anything, st.fixed_dictionaries({"rpms": anything})),
            "profiles": st.one_of(anything, st.dictionaries(small_text, st.one_of(
                anything, st.fixed_dictionaries({"rpms": anything})), max_size=3))}))
        doc = {"document": draw(st.sampled_from(["modulemd", "modulemd-defaults", "other", 3])), "version": 2,
               "data": draw(st.one_of(st.just(data), anything))}
        docs.append(yaml.safe_dump(doc))
    return "---\n" + "\n---\n".join(docs) + "\n...\n"


YAML_BOMB = ("---\ndocument: modulemd\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
             + "".join(f"  {c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                       for p, c in zip("abcdefgh", "bcdefghi", strict=True))
             + "  name: *i\n  artifacts: {rpms: *i}\n")


@fuzz(300)
@given(st.one_of(modules_yaml(), mutated(MODULES.decode(), st.one_of(small_text, st.sampled_from(
    ["*a", "&a", ": ", "- ", "[", "{", "!!python/object:os.system", "\t", "data: [1]", "rpms: {a: 1}"]))),
    st.just(YAML_BOMB), st.just("[" * 5000 + "]" * 5000), st.binary(max_size=100).map(
        lambda b: b.decode("latin-1"))), st.booleans())
def test_modules_yaml(source: str, raw_bytes: bool) -> None:
    path = _TMP / "modules.yaml"
    path.write_bytes(source.encode("latin-1", "replace") if raw_bytes else source.encode("utf-8", "surrogatepass"))
    for cached in _TMP.glob("modules.yaml.*.json"):
        cached.unlink()
    md = dataclasses.replace(_rpm_md(_TMP / "m", PRIMARY, False), modules=path)
    with time_limit(10, "modules.yaml"):
        docs = typed(module_documents, md)
    for doc in docs or ():
        data = doc["data"]
        assert isinstance(data, dict)
        assert all(isinstance(r, str) for r in data["artifacts"]["rpms"])
        assert all(isinstance(k, str) and all(isinstance(x, str) for x in v) for k, v in data["profiles"].items())


def test_rpm_gzip_bomb_is_refused_before_libsolv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """primary.xml.gz is kept as fetched and decompressed, bounded, when it is parsed: libsolv gets no more of it
    than the bound (its own gzip reader has none)."""
    monkeypatch.setattr(compression, "MIN_LIMIT", 4 << 20)
    bomb = _bomb(".gz", 16 << 20)
    digest = __import__("hashlib").sha256(bomb).hexdigest()
    monkeypatch.setattr(rpm_repository, "fetch", lambda url: bomb)
    from imagebuild.fetch import Cache

    kept = rpm_repository._fetch_file("file:///x", "sha256", digest, "repodata/x-primary.xml.gz", Cache(tmp_path),
                                      "repo 'x'", keep_gzip=True)
    assert kept.read_bytes() == bomb
    md = dataclasses.replace(_rpm_md(tmp_path / "r", PRIMARY, False), primary=kept)
    with time_limit(10, "bomb"), pytest.raises(ImagebuildError, match="decompresses to more than 4 MiB"):
        RpmResolver("x86_64", [md], [], False, [], [])


def test_rpm_gzip_parses_like_plain_also_from_a_read_only_cache(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """A .gz is decompressed into a temp file beside it; where that cannot be made, into the system's temp dir."""
    def one(name: str) -> bytes:
        return (PRIMARY_NS[0] + f'<package type="rpm"><name>{name}</name><arch>x86_64</arch><version epoch="0" '
                f'ver="1" rel="1"/><checksum type="sha256" pkgid="YES">{"0" * 64}</checksum>'
                f'<location href="Packages/{name}-1-1.x86_64.rpm"/></package>' + PRIMARY_NS[1]).encode()

    def installed(md: RepoMetadata) -> list[str]:
        return [p.name for p in RpmResolver("x86_64", [md], [], False, [], []).install(["a"]).installed]

    assert installed(_rpm_md(tmp_path / "gz", one("a"), True)) == installed(_rpm_md(tmp_path / "xml", one("a"), False))
    made = tempfile.TemporaryFile

    def beside_refused(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("dir") is not None:
            raise PermissionError(13, "Permission denied", str(kwargs["dir"]))
        return made(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", beside_refused)
    assert installed(_rpm_md(tmp_path / "ro", one("a"), True)) == ["a"]


# -- repo files: .list, .sources, .repo ------------------------------------------------------------------------

REPO_FILES = {kind: [p.read_text() for p in sorted(REPOFILES.glob(f"*.{kind.value}"))] for kind in RepoFileKind}
repofile_pieces = st.one_of(small_text, st.sampled_from([
    "deb ", "deb-src ", "[", "]", "[arch=amd64]", "[ x ]", "[=]", "signed-by=", " ./", " / ", "Types: deb\n",
    "URIs: ", "Suites: ", "Components: ", "Enabled: no\n", "Snapshot: ", " continued\n", "#", "\n\n", "[section]\n",
    "[]\n", "[ ]\n", "baseurl=", "mirrorlist=", "metalink=", "enabled=0\n", "username=u\n", "password=p\n",
    "gpgkey=file:///k\n", "priority=x\n", "http://user:pass@host/path/", "https://deb.debian.org/debian",
    "http://127.0.0.1:8765/pulp/content/rocky/9/BaseOS/x86_64/os/20261122T000000/", "{snapshot}", "$basearch",
]))


@st.composite
def repo_file(draw: st.DrawFn, kind: RepoFileKind) -> str:
    if draw(st.booleans()):
        return draw(mutated(draw(st.sampled_from(REPO_FILES[kind])), repofile_pieces))
    lines = draw(st.lists(st.lists(repofile_pieces, max_size=5).map("".join), max_size=8))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r", "\x0c", "\u2028", ""]))
    return ending.join(lines)


@fuzz(400)
@given(st.sampled_from(list(RepoFileKind)).flatmap(lambda k: st.tuples(st.just(k), repo_file(k))),
       st.sampled_from(list(Provider)), st.booleans(), st.booleans())
def test_repo_files(kind_text: tuple[RepoFileKind, str], provider: Provider, strip: bool, disable: bool) -> None:
    kind, text_ = kind_text
    with time_limit(10, "repo file"):
        typed(parse_text, text_, kind, source="fuzz")
        out = typed(rewrite, text_, kind, "20261122T000000Z", provider, source="fuzz", strip_credentials=strip,
                    disable_third_party=disable)
    if out is not None:
        assert isinstance(out.text, str) and all(isinstance(n, str) for n in out.notes)
        if strip:
            assert "user:pass@" not in out.text and "\npassword=" not in out.text


@fuzz(150)
@given(repo_file(RepoFileKind.DNF_REPO), st.booleans())
def test_dnf_repo_file_in_config(text_: str, raw: bool) -> None:
    """`[[repos]] repofile = …` of an rpm distro: the .repo parsed as the config reads it."""
    from imagebuild.config import parse_repofile

    path = _TMP / "fuzz.repo"
    path.write_bytes(text_.encode("latin-1", "replace") if raw else text_.encode("utf-8", "surrogatepass"))
    repos = typed(parse_repofile, path)
    for repo in repos or ():
        _assert_clean(repo, "repo file")  # what a [[repos]] table would be refused for is refused here too


@pytest.mark.parametrize("section", [
    "[a$(id)]\nbaseurl=http://127.0.0.1/x\n", "[a]\nbaseurl=http://127.0.0.1/x'`id`'\n",
    "[a]\nbaseurl=http://127.0.0.1/x\nexclude=kernel* $(id)\n", "[a]\nbaseurl=ftp://127.0.0.1/x\n",
])
def test_dnf_repo_file_gets_the_checks_of_a_repos_table(section: str) -> None:
    """A `[[repos]] repofile` section is held to what a `[[repos]]` table is: repo id, URL, globs."""
    from imagebuild.config import parse_repofile

    path = _TMP / "checked.repo"
    path.write_text(section)
    with pytest.raises(ImagebuildError, match="repo id|URL|package glob"):
        parse_repofile(path)


def test_rewrite_refuses_what_is_not_a_url() -> None:
    """urlsplit raises ValueError on an unclosed IPv6 bracket: a repo file holding one is refused, not a crash."""
    for kind, text_ in ((RepoFileKind.DNF_REPO, "[a]\nbaseurl=http://[evil/x/\n"),
                        (RepoFileKind.APT_LIST, "deb http://[evil/debian bookworm main\n"),
                        (RepoFileKind.APT_SOURCES, "Types: deb\nURIs: http://[evil/\nSuites: x\nComponents: main\n")):
        for provider in (Provider.PULP, Provider.DEBIAN) if kind is not RepoFileKind.DNF_REPO else (Provider.PULP,):
            with pytest.raises(ImagebuildError, match="is not a URL"):
                rewrite(text_, kind, "20261122T000000Z", provider, source="x")


@fuzz(300)
@given(st.lists(st.one_of(
    st.sampled_from(['<a href="20261101T000000/">', "<a href='20261102T000000'>", "<a href=20261103T000000/>",
                     '<a href="http://[::1/20261104T000000/">', '<a href="http://[bad/">', '<a href="//h/x/">',
                     '<a href="\u0662\u0660\u0662\u0666\u0661\u0661\u0660\u0661T000000/">', "href=", "<a"]),
    small_text), max_size=8).map("\n".join))
def test_pulp_index_listing(html: str) -> None:
    """`snapshot latest` for Pulp reads the snapshot ids from an HTML index listing the server sends."""
    from imagebuild.snapshots import _pulp_index_entries

    ids = typed(_pulp_index_entries, html)
    assert all(len(found) == 15 and found.replace("T", "", 1).isascii() for found in ids or ()), ids


# -- BOM files and the lock ----------------------------------------------------------------------------------

BOM = (EXAMPLE / "bases/debian-12-minbase-amd64.bom").read_text()


@fuzz(300)
@given(st.one_of(mutated(BOM), st.lists(st.lists(small_text, max_size=4).map(" ".join), max_size=10).map("\n".join),
                 st.text(max_size=200)))
def test_bom(text_: str) -> None:
    entries = typed(parse_bom, text_, "fuzz.bom")
    if entries is not None:
        assert typed(parse_bom, render_bom(entries), "again") == sorted(entries)


LOCK_TEXT = (EXAMPLE / "snapshots.lock").read_text()
LOCK_DOC = json.loads(LOCK_TEXT)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), small_text),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(small_text, kids, max_size=3), max_leaves=6)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):  # the first few of each list: the lock has thousands of packages
            yield from _paths(v, (*prefix, i))


LOCK_PATHS = list(_paths(LOCK_DOC))


@st.composite
def mutated_lock(draw: st.DrawFn) -> str:
    doc = json.loads(LOCK_TEXT)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(LOCK_PATHS[1:]))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            op = draw(st.sampled_from(["replace", "delete", "wrong-type", "nasty"]))
            if op == "delete":
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(json_value if op != "nasty" else nasty)
        except (KeyError, IndexError, TypeError):
            continue
    return json.dumps(doc, allow_nan=True)


@fuzz(250)
@given(st.one_of(mutated_lock(), mutated(LOCK_TEXT[:4000]), st.text(max_size=200),
                 st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
                 st.integers(1, 100_000).map(lambda n: '{"a":' * n + "1" + "}" * n)))
def test_lock(text_: str) -> None:
    with time_limit(10, "lock"):
        lock = typed(parse_lock, text_, Path("fuzz.lock"))
    if lock is None:
        return
    _assert_typed(lock)
    rendered = render_lock(lock)  # canonical: sorted, so compare what is written
    assert render_lock(parse_lock(rendered, Path("again"))) == rendered
    # the lock's own writer gives json.dumps's bytes (locks written before it stay byte-identical)
    assert rendered == json.dumps(json.loads(rendered), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_lock_target_keys_match_their_targets() -> None:
    doc = json.loads(LOCK_TEXT)
    doc["targets"]["login-amd64"] = doc["targets"].pop("compute-amd64")  # two targets of one key
    with pytest.raises(ImagebuildError, match="holds 'compute-amd64'"):
        parse_lock(json.dumps(doc), Path("x"))


def _assert_typed(value: Any) -> None:
    """Every field of a parsed lock has the type the dataclass declares: what mirror, bake and why rely on."""
    if dataclasses.is_dataclass(value):
        hints = __import__("typing").get_type_hints(type(value))
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            kind = hints[f.name]
            if kind is str:
                assert isinstance(v, str), (f.name, v)
            elif kind is int:
                assert isinstance(v, int) and not isinstance(v, bool), (f.name, v)
            elif kind is bool:
                assert isinstance(v, bool), (f.name, v)
            elif kind == str | None:
                assert v is None or isinstance(v, str), (f.name, v)
            elif kind == tuple[str, ...]:
                assert isinstance(v, tuple) and all(isinstance(x, str) for x in v), (f.name, v)
            elif kind == tuple[tuple[str, str], ...]:
                assert isinstance(v, tuple) and all(isinstance(x, tuple) and len(x) == 2
                                                    and all(isinstance(y, str) for y in x) for x in v), (f.name, v)
            else:
                assert isinstance(v, tuple), (f.name, v)
                for x in v:
                    _assert_typed(x)


# -- the config ----------------------------------------------------------------------------------------------

_CONFIG_DIR = _TMP / "config"
_CONFIG_DIR.mkdir()
for _sub in ("keys", "bases", "mirror"):
    (_CONFIG_DIR / _sub).symlink_to(EXAMPLE / _sub)
(_CONFIG_DIR / "site.repo").write_text((REPOFILES / "ark.repo").read_text())
CONFIG_DOC = tomllib.loads((EXAMPLE / "imagebuild.toml").read_text())
# what the example does not use, so hostile values reach those parts too
CONFIG_DOC["roles"]["compute"]["image"] = {
    "builder": "qemu", "source": "https://cloud.example/debian-12.qcow2", "source-checksum": "sha256:" + "0" * 64,
    "disk_size": "20G", "memory": 4096, "headless": True, "cd_files": ["seed/user-data"], "ship-repos": "disabled"}
CONFIG_DOC["roles"]["login"]["pip"] = ["clustershell==1.9.2"]
CONFIG_DOC["roles"]["login"]["pip-index"] = "https://pypi.example/pypi"
CONFIG_DOC["distros"]["bookworm"]["repos"][0].update({"snapshot-provider": "debian",
                                                      "snapshot-service": "http://127.0.0.1:8766"})
CONFIG_DOC["distros"]["rocky9"]["repos"].append({"repofile": "site.repo", "snapshot-provider": "pulp"})
CONFIG_DOC["distros"]["rocky9"]["exclude"] = ["kernel-debug*"]
CONFIG_DOC["users"] = {"slurm": {"uid": 64030, "gid": 64030, "home": "/var/lib/slurm", "groups": ["munge"]}}
CONFIG_DOC["checks"] = {"cuda-min-driver": "error"}
CONFIG_PATHS = list(_paths(CONFIG_DOC))


def _leaf(path: tuple[Any, ...]) -> Any:
    v: Any = CONFIG_DOC
    for k in path:
        v = v[k]
    return v


# strings (and lists of them): where one hostile value most often leaves the rest of the config valid
CONFIG_LEAVES = [p for p in CONFIG_PATHS[1:] if isinstance(_leaf(p), str)]
toml_value = st.recursive(
    st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), small_text,
              st.datetimes(timezones=st.none() | st.just(UTC)), st.dates()),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(small_text, kids, max_size=3), max_leaves=6)


def toml_str(s: str) -> str:
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out) + '"'


def to_toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(to_toml(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_str(str(k))} = {to_toml(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_str(k)} = {to_toml(v)}\n" for k, v in doc.items())


@st.composite
def hostile_config(draw: st.DrawFn) -> str:
    doc = json.loads(json.dumps(CONFIG_DOC))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        path = draw(st.sampled_from(CONFIG_LEAVES) if draw(st.integers(0, 3)) else st.sampled_from(CONFIG_PATHS[1:]))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            old = parent[path[-1]]
            op = draw(st.sampled_from(["nasty", "suffix", "suffix", "suffix", "prefix", "wrong-type", "delete",
                                       "add-key", "huge", "deep"]))
            if op == "delete":
                del parent[path[-1]]
            elif op == "add-key" and isinstance(old, dict):
                old[draw(st.one_of(small_text, st.sampled_from(["url", "name", "x"])))] = draw(toml_value)
            elif op in ("suffix", "prefix") and isinstance(old, str):
                parent[path[-1]] = old + draw(nasty) if op == "suffix" else draw(nasty) + old
            elif op == "suffix" and isinstance(old, list) and old and isinstance(old[0], str):
                parent[path[-1]] = [*old[:-1], old[-1] + draw(nasty)]
            elif op == "huge":
                parent[path[-1]] = (old[:20] if isinstance(old, str) and old else "x") * 20_000
            elif op == "deep":
                parent[path[-1]] = json.loads("[" * 200 + "]" * 200)
            else:
                parent[path[-1]] = draw(nasty if op == "nasty" else toml_value)
        except (KeyError, IndexError, TypeError):
            continue
    if draw(st.booleans()):  # a key or table name of its own (distro, role, user names)
        table = draw(st.sampled_from(["distros", "roles", "users"]))
        if isinstance(doc.get(table), dict) and doc[table]:
            old_name = draw(st.sampled_from(sorted(doc[table])))
            new_name = old_name + draw(nasty)
            doc[table][new_name] = doc[table].pop(old_name)
            for role in doc.get("roles", {}).values() if table == "distros" else ():
                if isinstance(role, dict) and role.get("distro") == old_name:
                    role["distro"] = new_name
    return toml_document(doc)


# Strings a config may hand on only in these fields (URLs carry $basearch; free text is refused elsewhere)
_URL_FIELDS = {"url", "service", "pip_index"}
_FORBIDDEN = set("\"'`\\") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}


def _assert_clean(value: Any, where: str = "config", field: str = "") -> None:
    """Nothing an accepted config holds (names, suites, requests, settings, …) carries quotes, backslashes, control
    characters or (outside URLs) `$`: they reach file names, repo files, HCL and shell data."""
    if isinstance(value, enum.Enum | Path):
        return
    if isinstance(value, str):
        bad = _FORBIDDEN if field in _URL_FIELDS else _FORBIDDEN | {"$"}
        assert not set(value) & bad, f"{where}: {value[:100]!r} was accepted"
        return
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            if f.name != "path":
                _assert_clean(getattr(value, f.name), f"{where}.{f.name}", f.name)
    elif isinstance(value, dict):
        for k, v in value.items():
            _assert_clean(k, f"{where}[{k!r}]", "key")
            _assert_clean(v, f"{where}[{k!r}]", field)
    elif isinstance(value, tuple | list):
        for i, v in enumerate(value):
            _assert_clean(v, f"{where}[{i}]", field)


def _load(text_: str | bytes) -> Config | None:
    path = _CONFIG_DIR / "imagebuild.toml"
    path.write_bytes(text_ if isinstance(text_, bytes) else text_.encode("utf-8", "surrogatepass"))
    with time_limit(10, "config"):
        return typed(load_config, path)


def test_config_baseline_is_accepted() -> None:
    config = _load(toml_document(CONFIG_DOC))
    assert config is not None and config.roles["compute"].image is not None
    _assert_clean(config)


@fuzz(300)
@given(hostile_config())
def test_config_hostile_values(text_: str) -> None:
    config = _load(text_)
    if config is not None:
        _assert_clean(config)


HOSTILE_CHARS = ["\n", "\x00", "$(id)", "`id`", "'", '"', "\\", "\t", "\x7f", "\x1b", "\u2028", " "]


def test_config_every_string_and_name_with_hostile_characters() -> None:
    """Exhaustively: each string of the config, and each distro, role and user name, with each hostile character
    before or after it. Whatever is accepted must be clean (the random tests rarely hit one field alone)."""
    accepted = []
    cases: list[tuple[tuple[Any, ...], str, str]] = [(p, c, w) for p in CONFIG_LEAVES for c in HOSTILE_CHARS
                                                     for w in ("prefix", "suffix")]
    cases += [((table, name), c, "key") for table in ("distros", "roles", "users") for name in CONFIG_DOC[table]
              for c in HOSTILE_CHARS]
    for path, c, where in cases:
        doc = json.loads(json.dumps(CONFIG_DOC))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if where == "key":
            parent[path[-1] + c] = parent.pop(path[-1])
            for role in doc["roles"].values() if path[0] == "distros" else ():
                role["distro"] = path[-1] + c if role["distro"] == path[-1] else role["distro"]
        else:
            parent[path[-1]] = c + parent[path[-1]] if where == "prefix" else parent[path[-1]] + c
        config = _load(toml_document(doc))
        if config is not None:
            try:
                _assert_clean(config)
            except AssertionError as e:
                accepted.append(str(e))
    assert not accepted, "\n".join(accepted)


@fuzz(250)
@given(st.one_of(mutated((EXAMPLE / "imagebuild.toml").read_text(), st.one_of(small_text, st.sampled_from(
    ["[", "]", "[[", "]]", "=", '"', "'''", '"""', "\\u0000", "{", "}", ".", "[distros.x]\n", "[roles.y]\n"]))),
    st.text(max_size=300), st.binary(max_size=200), st.integers(1, 100_000).map(lambda n: "a = " + "[" * n),
    st.integers(1, 50_000).map(lambda n: "a = " + "{b = " * n + "1" + "}" * n)))
def test_config_random_text(text_: str | bytes) -> None:
    config = _load(text_)
    if config is not None:
        _assert_clean(config)


# -- mirror: the file names it downloads and writes -----------------------------------------------------------

def _one_package_lock(filename: str, name: str = "a", sha256: str = "0" * 64) -> tuple[Lock, LockedTarget]:
    repo = LockedRepo("d", "amd64", "r", "s", "http://127.0.0.1/r", None, "0" * 64, "", "", ())
    pkg = LockedPackage(name, "1", "amd64", "r", "s", filename, 1, sha256, None, "requested", "")
    target = LockedTarget("role", "amd64", "d", ("a",), (pkg,), ())
    return Lock("0" * 64, (repo,), (target,)), target


@fuzz(500)
@given(st.one_of(nasty, small_text, st.lists(st.one_of(word, nasty, st.sampled_from(["..", ".", "pool", "%2e%2e"])),
                                              min_size=1, max_size=5).map("/".join).map(lambda p: p + ".deb")))
def test_mirror_file_names(filename: str) -> None:
    lock, target = _one_package_lock(filename)
    items = typed(plan, lock, [target])
    if items is None:
        return
    url = typed(download_url, items[0], lambda r: r.url)
    assert url is not None, "plan accepted what download_url refuses"
    rest = url.removeprefix("http://127.0.0.1/r/")
    assert rest != url and repo_path(rest) == rest and "/../" not in f"/{rest}/"
    assert "/" not in items[0].relpath.removeprefix("pool/r/") and ".." not in items[0].relpath.split("/")


@pytest.mark.parametrize("filename", [
    "../../../etc/passwd.deb", "pool/../../x.deb", "/etc/x.deb", "http://evil.example/x.deb", "//evil.example/x.deb",
    "pool/%2e%2e/%2e%2e/x.deb", "pool\\..\\x.deb", "pool/x.deb?y", "pool/x.deb#y", "file:///etc/x.deb",
    "./http://evil.example/x.deb",
])
def test_mirror_refuses_names_outside_the_repo(filename: str) -> None:
    lock, target = _one_package_lock(filename)
    with pytest.raises(ImagebuildError, match="outside its repo"):
        plan(lock, [target])


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body + b"\n" * (len(body) & 1)
    return out


def _control_tar(control: bytes, compress: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("./control")
        info.size = len(control)
        tar.addfile(info, io.BytesIO(control))
    raw = buf.getvalue()
    return {"": raw, ".gz": gzip.compress(raw, mtime=0), ".xz": lzma.compress(raw),
            ".zst": zstandard.ZstdCompressor().compress(raw)}[compress]


@fuzz(300)
@given(st.sampled_from(["", ".gz", ".xz", ".zst"]), st.binary(max_size=300), st.lists(st.integers(0, 1 << 16),
                                                                                       max_size=3), st.booleans())
def test_deb_control(ext: str, control: bytes, flips: list[int], header: bool) -> None:
    """The control file of a downloaded .deb (mirror writes the local repo's Packages from it)."""
    body = flipped(_control_tar(control, ext), flips)
    data = _ar([("debian-binary", b"2.0\n"), (f"control.tar{ext}", body)])
    if header:
        data = flipped(data, [8 + 48 + f % 10 for f in flips])
    out = typed(deb_control, data, "fuzz.deb")
    assert out is None or isinstance(out, str)


# -- hostile sizes: every text parser stays fast on large adversarial input ----------------------------------

def _parse_repo_text(s: str, kind: RepoFileKind) -> object:
    return parse_text(s, kind, source="x")


@pytest.mark.parametrize("name, call", [
    ("parse_stanzas", lambda s: parse_stanzas(s.encode())),
    ("parse_release", lambda s: parse_release(s)),
    ("parse_bom", lambda s: parse_bom(s, "x")),
    ("parse_lock", lambda s: parse_lock(s, Path("x"))),
    *((f"repo file .{k.value}", functools.partial(_parse_repo_text, kind=k)) for k in RepoFileKind),
])
@pytest.mark.parametrize("shape", ["blanks", "colons", "brackets", "lines", "deb822"])
def test_large_adversarial_input(name: str, call: Callable[[str], object], shape: str) -> None:
    s = {"blanks": "a" + " " * 200_000 + "!", "colons": ":" * 200_000, "brackets": "[" * 100_000 + "x",
         "lines": "Package: a\n" + " x\n" * 100_000, "deb822": "Types: deb\nURIs: " + " u" * 100_000 + "\n"}[shape]
    with time_limit(5, name):
        typed(call, s)
