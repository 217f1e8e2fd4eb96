"""Existing apt and dnf repo files: read them, and point them at a snapshot while keeping everything else.

Three syntaxes: apt's one-line `.list`, apt's deb822 `.sources`, and dnf's `.repo`. Rewriting edits only
the bytes that must change (a URL token, a `Snapshot:` field, a mirrorlist line) so comments, field order,
spacing, multi-line fields and unknown keys survive byte for byte, and a rewritten file rewrites to itself.

Policy, as a careful admin would want it:

* A URL the provider cannot place on a snapshot (a CUDA repo next to Debian's, a dnf baseurl that is not
  on Pulp) is kept and reported in `Rewrite.notes`. With `disable_third_party`, apt entries like that get
  `Snapshot: disable` / `[snapshot=disable]` so `apt --snapshot` (apt >= 2.7) leaves them alone.
* dnf `mirrorlist=`/`metalink=` are commented out, not deleted: dnf then uses the snapshot `baseurl`,
  and the admin still sees where the repo came from and can revert. The new `baseurl` goes right after.
* `strip_credentials` removes `user:pass@` from URLs and the `username=`/`password=` (and proxy) keys:
  for repo files that ship inside images. No message ever contains a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from imagebuild.errors import ConfigError
from imagebuild.fetch import redact
from imagebuild.snapshots import Provider, applies_to, find_snapshot_segment, snapshot_url, validate_id


class RepoFileKind(StrEnum):
    APT_LIST = "list"
    APT_SOURCES = "sources"
    DNF_REPO = "repo"


_APT_PROVIDERS = (Provider.DEBIAN, Provider.UBUNTU, Provider.APT_NATIVE, Provider.PULP, Provider.TEMPLATE)
_DNF_PROVIDERS = (Provider.PULP, Provider.TEMPLATE)
_DNF_SECRET_KEYS = ("username", "password", "proxy_username", "proxy_password")
_DNF_URL_KEYS = ("baseurl", "mirrorlist", "metalink", "gpgkey", "proxy")


def detect_kind(path: str | Path) -> RepoFileKind:
    """The syntax of a repo file, from its extension (what apt and dnf themselves go by)."""
    suffix = Path(path).suffix
    for kind in RepoFileKind:
        if suffix == f".{kind.value}":
            return kind
    raise ConfigError(f"{path}: not a repo file apt or dnf would read",
                      hint="apt reads *.list and *.sources, dnf reads *.repo")


@dataclass(frozen=True, repr=False)
class AptSource:
    """One apt entry (a one-line `deb` line or a deb822 stanza). URIs keep any credentials: the lock needs
    them to fetch; repr redacts them."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    # one-line `[key=value]` options, or every other deb822 field (lower-cased name, value as written)
    options: tuple[tuple[str, str], ...]
    line: int
    enabled: bool = True

    @property
    def flat(self) -> bool:
        """`deb URL ./`-style repos (NVIDIA CUDA, DOCA): the suite is a path, there are no components."""
        return bool(self.suites) and all(s.endswith("/") for s in self.suites)

    def option(self, name: str) -> str | None:
        return next((v for k, v in self.options if k == name.lower()), None)

    def __repr__(self) -> str:
        uris = tuple(redact(u) for u in self.uris)
        return (f"AptSource(types={self.types!r}, uris={uris!r}, suites={self.suites!r}, "
                f"components={self.components!r}, options={self.options!r}, line={self.line}, "
                f"enabled={self.enabled})")


@dataclass(frozen=True, repr=False)
class DnfRepo:
    """One `[section]` of a dnf `.repo` file. Credentials are kept for fetching but never shown by repr."""

    id: str
    name: str | None
    baseurls: tuple[str, ...]
    mirrorlist: str | None
    metalink: str | None
    enabled: bool
    gpgkeys: tuple[str, ...]
    line: int
    username: str | None = None
    password: str | None = None
    # every key of the section as written (secrets excluded), for the lock code to interpret
    options: tuple[tuple[str, str], ...] = ()

    def flag(self, key: str, default: bool = False) -> bool:
        """A yes/no option of the section (`1`, `yes`, `true`, `on` are yes), as dnf reads it."""
        value = dict(self.options).get(key)
        return default if value is None else _truth(value)

    def __repr__(self) -> str:
        return (f"DnfRepo(id={self.id!r}, baseurls={tuple(redact(u) for u in self.baseurls)!r}, "
                f"mirrorlist={self.mirrorlist and redact(self.mirrorlist)!r}, "
                f"metalink={self.metalink and redact(self.metalink)!r}, enabled={self.enabled}, "
                f"line={self.line}, credentials={'yes' if self.username or self.password else 'no'})")


@dataclass(frozen=True)
class Rewrite:
    """A rewritten file and what the rewrite left alone or removed (one line each, naming file:line)."""

    text: str
    notes: tuple[str, ...]


# -- small text helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One physical line: its content and its own line ending (kept as found, so CRLF files stay CRLF)."""

    number: int
    content: str
    ending: str


def _lines(text: str) -> list[_Line]:
    out = []
    for i, raw in enumerate(text.splitlines(keepends=True), start=1):
        content = raw.rstrip("\r\n")
        out.append(_Line(i, content, raw[len(content):]))
    return out


def _join(lines: Sequence[_Line]) -> str:
    return "".join(ln.content + ln.ending for ln in lines)


def _assemble(lines: Sequence[_Line], drop: set[int], inserts: Sequence[tuple[int, str]]) -> str:
    """The file again, without the `drop` line indices and with each (index, content) of `inserts` placed
    after that line. A last line without a newline gains one so an inserted line starts its own line."""
    after: dict[int, list[str]] = {}
    for index, content in inserts:
        after.setdefault(index, []).append(content)
    out: list[str] = []
    for i, ln in enumerate(lines):
        if i not in drop:
            out.append(ln.content + (ln.ending or ("\n" if i in after else "")))
        extra = after.get(i, [])
        for j, content in enumerate(extra):
            out.append(content + (ln.ending if j == len(extra) - 1 else ln.ending or "\n"))
    return "".join(out)


_URL_TOKEN = re.compile(r"[^\s,]+")


def _sub_urls(value: str, fn: Callable[[str], str]) -> str:
    """Apply `fn` to every URL token of a value, keeping the separators (spaces, commas) as they were."""
    return _URL_TOKEN.sub(lambda m: fn(m.group()), value)


class _Rewriter:
    """What every syntax shares: the target, the URL policy and the notes."""

    def __init__(self, source: str, snapshot: str, provider: Provider, *, strip_credentials: bool,
                 service: str | None) -> None:
        self.source = source
        self.snapshot = validate_id(snapshot)
        self.provider = provider
        self.strip_credentials = strip_credentials
        self.service = service
        self.notes: list[str] = []

    def where(self, line: int) -> str:
        return f"{self.source}:{line}"

    def url(self, url: str, line: int) -> str:
        """The snapshot URL for one URL token, or the token unchanged (with a note) when not applicable."""
        self.check(url, line)
        if self.strip_credentials:
            url = self.strip(url, line)
        if self.provider is Provider.APT_NATIVE and applies_to(self.provider, url) and find_snapshot_segment(url):
            # a Snapshot: field next to a URI that already names another snapshot would contradict it
            raise ConfigError(f"{self.where(line)}: {redact(url)} is already a snapshot URL; apt-native needs the "
                              "archive's own URL", hint="move its id with --provider debian (or ubuntu) instead")
        if self.provider is Provider.APT_NATIVE or not applies_to(self.provider, url):
            if self.provider is not Provider.APT_NATIVE:
                more = (" — to pin it, pass its Pulp path with --baseurl ID=URL"
                        if self.provider is Provider.PULP else "")
                self.notes.append(f"{self.where(line)}: kept {redact(url)} (not a {self.provider} snapshot URL{more})")
            return url
        return snapshot_url(self.provider, url, self.snapshot, service=self.service)

    def check(self, url: str, line: int) -> None:
        try:
            urlsplit(url)
        except ValueError as e:  # an unclosed `[` of an IPv6 host
            raise ConfigError(f"{self.where(line)}: {redact(url)[:200]!r} is not a URL ({e})") from None

    def strip(self, url: str, line: int) -> str:
        bare = redact(url)
        if bare != url:
            self.notes.append(f"{self.where(line)}: removed credentials from {bare}")
        return bare


# -- apt one-line .list --------------------------------------------------------------------------------------

_ONE_LINE = re.compile(r"^(?P<lead>\s*)(?P<type>\S+)")


@dataclass(frozen=True)
class _OneLine:
    """Where the parts of a `deb [opts] URI SUITE COMPONENTS...` line are, as (start, end) spans."""

    entry: AptSource
    options_span: tuple[int, int] | None  # the text between `[` and `]`
    option_spans: tuple[tuple[str, int, int], ...]  # (key, start, end) of each key=value token
    uri_span: tuple[int, int]


def _parse_one_line(ln: _Line, source: str) -> _OneLine | None:
    code = ln.content.split("#", 1)[0]  # apt drops everything after `#`
    if not code.strip():
        return None
    where = f"{source}:{ln.number}"
    m = _ONE_LINE.match(code)
    assert m is not None
    if m["type"] not in ("deb", "deb-src"):
        raise ConfigError(f"{where}: unknown source type {m['type']!r}",
                          hint="one-line entries start with deb or deb-src; deb822 stanzas belong in a .sources file")
    pos = m.end()
    options: list[tuple[str, str]] = []
    option_spans: list[tuple[str, int, int]] = []
    options_span = None
    rest = code[pos:]
    if rest.lstrip().startswith("["):
        open_at = pos + rest.index("[")
        close_at = code.find("]", open_at)
        if close_at < 0:
            raise ConfigError(f"{where}: unterminated [options]", hint="close the option list with ]")
        options_span = (open_at + 1, close_at)
        for tok in re.finditer(r"\S+", code[open_at + 1:close_at]):
            key, eq, value = tok.group().partition("=")
            if not eq or not key:
                raise ConfigError(f"{where}: option {tok.group()!r} is not key=value")
            options.append((key.lower(), value))
            option_spans.append((key.lower(), open_at + 1 + tok.start(), open_at + 1 + tok.end()))
        pos = close_at + 1
    words = [(w.group(), pos + w.start(), pos + w.end()) for w in re.finditer(r"\S+", code[pos:])]
    if len(words) < 2:
        raise ConfigError(f"{where}: a {m['type']} entry needs a URI and a suite",
                          hint="deb URI SUITE COMPONENT… or, for flat repos, deb URI ./")
    (uri, u0, u1), suite = words[0], words[1][0]
    components = tuple(w for w, _, _ in words[2:])
    if suite.endswith("/") and components:
        raise ConfigError(f"{where}: a flat repo ({suite}) takes no components")
    if not suite.endswith("/") and not components:
        raise ConfigError(f"{where}: suite {suite} needs at least one component",
                          hint="e.g. main; flat repos end the suite with / (deb URI ./)")
    entry = AptSource((m["type"],), (uri,), (suite,), components, tuple(options), ln.number)
    return _OneLine(entry, options_span, tuple(option_spans), (u0, u1))


def parse_apt_list(text: str, *, source: str) -> tuple[AptSource, ...]:
    """The entries of a one-line `.list` file (comments and blank lines skipped)."""
    return tuple(p.entry for ln in _lines(text) if (p := _parse_one_line(ln, source)) is not None)


def _rewrite_apt_list(text: str, rw: _Rewriter, disable_third_party: bool) -> str:
    lines = _lines(text)
    for i, ln in enumerate(lines):
        parsed = _parse_one_line(ln, rw.source)
        if parsed is None:
            continue
        edits: list[tuple[int, int, str]] = []
        uri = parsed.entry.uris[0]
        edits.append((*parsed.uri_span, rw.url(uri, ln.number)))
        added: list[str] = []
        snapshot_value = _apt_snapshot_value(rw, uri, disable_third_party)
        if snapshot_value is not None:
            existing = [(s, e) for k, s, e in parsed.option_spans if k == "snapshot"]
            if existing:
                edits.append((*existing[0], f"snapshot={snapshot_value}"))
            else:
                added.append(f"snapshot={snapshot_value}")
        if _on_dated_snapshot(rw, uri) and "check-valid-until" not in dict(parsed.entry.options):
            added.append("check-valid-until=no")
        if added and parsed.options_span is not None:
            inner = ln.content[parsed.options_span[0]:parsed.options_span[1]]
            # `[ a=b ]` keeps its inner spaces: insert after the last option, not before the `]`
            at = parsed.options_span[0] + len(inner.rstrip())
            sep = " " if inner.strip() else ""
            edits.append((at, at, sep + " ".join(added)))
        elif added:
            edits.append((parsed.uri_span[0], parsed.uri_span[0], f"[{' '.join(added)}] "))
        content = ln.content
        for start, end, new in sorted(edits, reverse=True):
            content = content[:start] + new + content[end:]
        lines[i] = _Line(ln.number, content, ln.ending)
    return _join(lines)


def _on_dated_snapshot(rw: _Rewriter, uri: str) -> bool:
    """Whether the entry now points at snapshot.debian.org/ubuntu.com: its Release files carry a
    Valid-Until that has passed weeks later, which apt must be told to accept (as debuerreotype does)."""
    return rw.provider in (Provider.DEBIAN, Provider.UBUNTU) and applies_to(rw.provider, uri)


def _apt_snapshot_value(rw: _Rewriter, uri: str, disable_third_party: bool) -> str | None:
    """The `Snapshot:` value an apt entry should carry, or None to leave that field alone."""
    covered = applies_to(Provider.APT_NATIVE, uri)
    if rw.provider is Provider.APT_NATIVE and covered:
        return rw.snapshot
    if disable_third_party and not covered:
        return "disable"
    return None


# -- apt deb822 .sources -------------------------------------------------------------------------------------

_FIELD = re.compile(r"^(?P<name>[^\s:#-][^\s:]*):(?P<value>.*)$")


@dataclass(frozen=True)
class _Field:
    """One field of a deb822 stanza, by the lines it spans."""

    name: str
    first: int  # index into the file's lines
    last: int  # index of the last continuation line


@dataclass(frozen=True)
class _Stanza:
    """One deb822 stanza of a .sources file."""

    fields: tuple[_Field, ...]
    start: int

    def get(self, name: str) -> _Field | None:
        return next((f for f in self.fields if f.name.lower() == name.lower()), None)


def _stanzas(lines: Sequence[_Line], source: str) -> list[_Stanza]:
    """Stanzas are runs of non-blank lines; `#` lines inside them are comments and belong to no field."""
    out: list[_Stanza] = []
    fields: list[_Field] = []
    start = 0
    for i, ln in enumerate([*lines, _Line(len(lines) + 1, "", "")]):
        if not ln.content.strip():
            if fields:
                out.append(_Stanza(tuple(fields), start))
            fields = []
            continue
        if not fields:
            start = i
        if ln.content.startswith("#"):
            continue
        if ln.content[0] in " \t":
            if not fields:
                raise ConfigError(f"{source}:{ln.number}: continuation line outside a field",
                                  hint="continuation lines follow a `Field: value` line")
            fields[-1] = _Field(fields[-1].name, fields[-1].first, i)
            continue
        m = _FIELD.match(ln.content)
        if m is None:
            raise ConfigError(f"{source}:{ln.number}: not a deb822 field: {redact(ln.content)[:60]!r}",
                              hint="fields are `Name: value`; one-line `deb …` entries belong in a .list file")
        fields.append(_Field(m["name"], i, i))
    return out


def _field_value(lines: Sequence[_Line], f: _Field) -> str:
    """The value as apt reads it: the first line after the colon plus the continuation lines."""
    first = lines[f.first].content.split(":", 1)[1]
    rest = [ln.content for ln in lines[f.first + 1:f.last + 1] if not ln.content.startswith("#")]
    return "\n".join([first.strip(), *(r.strip() for r in rest)]).strip()


def parse_apt_sources(text: str, *, source: str) -> tuple[AptSource, ...]:
    """The stanzas of a deb822 `.sources` file."""
    lines = _lines(text)
    out = []
    for st in _stanzas(lines, source):
        values = {f.name.lower(): _field_value(lines, f) for f in st.fields}
        where = f"{source}:{lines[st.start].number}"
        for required in ("types", "uris", "suites"):
            if not values.get(required):
                raise ConfigError(f"{where}: stanza without {required.capitalize()}",
                                  hint="every stanza needs Types, URIs and Suites")
        suites = tuple(values["suites"].split())
        components = tuple(values.get("components", "").split())
        if not components and not all(s.endswith("/") for s in suites):
            raise ConfigError(f"{where}: stanza without Components",
                              hint="add Components (e.g. main), or end the suite with / for a flat repo")
        options = tuple((k, v) for k, v in values.items() if k not in ("types", "uris", "suites", "components"))
        enabled = values.get("enabled", "yes").lower() not in ("no", "false", "0")
        out.append(AptSource(tuple(values["types"].split()), tuple(values["uris"].split()), suites, components,
                             options, lines[st.start].number, enabled))
    return tuple(out)


def _rewrite_apt_sources(text: str, rw: _Rewriter, disable_third_party: bool) -> str:
    lines = _lines(text)
    parse_apt_sources(text, source=rw.source)  # syntax errors first, before anything is changed
    inserts: list[tuple[int, str]] = []  # (after line index, content)
    drop: set[int] = set()
    for st in _stanzas(lines, rw.source):
        uris = st.get("uris")
        assert uris is not None
        for i in range(uris.first, uris.last + 1):
            ln = lines[i]
            if i != uris.first and ln.content.startswith("#"):
                continue
            if i == uris.first:
                name, value = ln.content.split(":", 1)
                content = f"{name}:{_sub_urls(value, partial(rw.url, line=ln.number))}"
            else:
                content = _sub_urls(ln.content, partial(rw.url, line=ln.number))
            lines[i] = _Line(ln.number, content, ln.ending)
        values = _field_value(lines, uris).split()
        if any(_on_dated_snapshot(rw, u) for u in values) and st.get("check-valid-until") is None:
            inserts.append((uris.last, "Check-Valid-Until: no"))
        wanted = {_apt_snapshot_value(rw, u, disable_third_party) for u in values} - {None}
        if not wanted:
            continue
        # one stanza, one Snapshot field: when covered and uncovered URIs share a stanza the covered ones
        # decide, since `disable` would silently leave them floating
        value = rw.snapshot if rw.snapshot in wanted else "disable"
        existing = st.get("snapshot")
        if existing is not None:
            ln = lines[existing.first]
            lines[existing.first] = _Line(ln.number, f"{existing.name}: {value}", ln.ending)
            drop.update(range(existing.first + 1, existing.last + 1))
        else:
            inserts.append((uris.last, f"Snapshot: {value}"))
    return _assemble(lines, drop, inserts)


# -- dnf .repo -----------------------------------------------------------------------------------------------

_SECTION = re.compile(r"^\[(?P<id>[^\]]+)\]\s*$")
_KEY = re.compile(r"^(?P<key>[A-Za-z0-9_.-]+)\s*=(?P<value>.*)$")


@dataclass(frozen=True)
class _Key:
    """One key of a .repo section, by the lines it spans."""

    key: str
    first: int
    last: int


@dataclass(frozen=True)
class _Section:
    """One `[id]` section of a .repo file."""

    id: str
    header: int
    keys: tuple[_Key, ...]

    def get(self, key: str) -> _Key | None:
        return next((k for k in self.keys if k.key == key), None)


def _sections(lines: Sequence[_Line], source: str) -> list[_Section]:
    out: list[_Section] = []
    current: tuple[str, int] | None = None
    keys: list[_Key] = []
    for i, ln in enumerate(lines):
        text = ln.content
        if not text.strip() or text.lstrip().startswith(("#", ";")):
            continue
        where = f"{source}:{ln.number}"
        if text[0] in " \t":
            if not keys:
                raise ConfigError(f"{where}: continuation line outside a key", hint="indent only continued values")
            keys[-1] = _Key(keys[-1].key, keys[-1].first, i)
            continue
        if m := _SECTION.match(text):
            if current is not None:
                out.append(_Section(current[0], current[1], tuple(keys)))
            current, keys = (m["id"].strip(), i), []
            continue
        m = _KEY.match(text)
        if m is None:
            raise ConfigError(f"{where}: not a `key=value` line or a [section]",
                              hint="dnf .repo files hold [repo-id] sections of key=value lines")
        if current is None:
            raise ConfigError(f"{where}: key {m['key']!r} before the first [section]")
        keys.append(_Key(m["key"].lower(), i, i))
    if current is not None:
        out.append(_Section(current[0], current[1], tuple(keys)))
    return out


def _key_value(lines: Sequence[_Line], k: _Key) -> str:
    first = lines[k.first].content.split("=", 1)[1]
    rest = [ln.content for ln in lines[k.first + 1:k.last + 1] if not ln.content.lstrip().startswith(("#", ";"))]
    return " ".join(p.strip() for p in [first, *rest] if p.strip())


def _truth(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "on")


def _urls(value: str) -> tuple[str, ...]:
    return tuple(_URL_TOKEN.findall(value))


def parse_dnf_repo(text: str, *, source: str) -> tuple[DnfRepo, ...]:
    """The sections of a dnf `.repo` file."""
    lines = _lines(text)
    out = []
    for sec in _sections(lines, source):
        values = {k.key: _key_value(lines, k) for k in sec.keys}
        enabled = _truth(values.get("enabled", "1"))
        out.append(DnfRepo(
            sec.id, values.get("name"), _urls(values.get("baseurl", "")), values.get("mirrorlist") or None,
            values.get("metalink") or None, enabled, _urls(values.get("gpgkey", "")), lines[sec.header].number,
            values.get("username"), values.get("password"),
            tuple((k, v) for k, v in values.items() if k not in _DNF_SECRET_KEYS)))
    return tuple(out)


def _rewrite_dnf_repo(text: str, rw: _Rewriter, baseurls: Mapping[str, str]) -> str:
    lines = _lines(text)
    drop: set[int] = set()
    inserts: list[tuple[int, str]] = []
    unknown = set(baseurls) - {s.id for s in _sections(lines, rw.source)}
    if unknown:
        raise ConfigError(f"{rw.source}: no section {sorted(unknown)[0]!r} to give a base URL",
                          hint="name a [repo-id] of this file")
    for sec in _sections(lines, rw.source):
        header = lines[sec.header]
        enabled_key = sec.get("enabled")
        enabled = enabled_key is None or _truth(_key_value(lines, enabled_key))
        base = sec.get("baseurl")
        floating = [k for k in (sec.get("mirrorlist"), sec.get("metalink")) if k is not None]
        if sec.id in baseurls:
            rw.check(baseurls[sec.id], header.number)
            new = snapshot_url(rw.provider, baseurls[sec.id], rw.snapshot, service=rw.service)
            if rw.strip_credentials:
                new = rw.strip(new, header.number)
            if base is not None:
                ln = lines[base.first]
                key, _, value = ln.content.partition("=")
                space = value[:len(value) - len(value.lstrip())]  # `baseurl = …` keeps its style
                lines[base.first] = _Line(ln.number, f"{key}={space}{new}", ln.ending)
                drop.update(range(base.first + 1, base.last + 1))
            else:
                inserts.append(((floating[0].last if floating else sec.header), f"baseurl={new}"))
            pinned = True
        elif base is not None:
            # pinned when the provider can place this baseurl (decided on the URLs as found: a {snapshot}
            # template no longer shows its placeholder once filled in)
            found = _urls(_key_value(lines, base))
            for u in found:
                rw.check(u, lines[base.first].number)
            pinned = any(applies_to(rw.provider, u) for u in found)
            for i in range(base.first, base.last + 1):
                ln = lines[i]
                if ln.content.lstrip().startswith(("#", ";")):
                    continue
                key, eq, value = ln.content.partition("=") if i == base.first else ("", "", ln.content)
                lines[i] = _Line(ln.number, key + eq + _sub_urls(value, partial(rw.url, line=ln.number)),
                                 ln.ending)
        else:
            pinned = False
        if floating and not pinned:
            if enabled:
                raise ConfigError(f"{rw.where(header.number)}: [{sec.id}] follows a {floating[0].key} and has no "
                                  f"{rw.provider} snapshot baseurl",
                                  hint=f"give [{sec.id}] its snapshot base URL: --baseurl {sec.id}=URL "
                                       f"(the {rw.provider} repo path)")
            rw.notes.append(f"{rw.where(header.number)}: kept disabled [{sec.id}] on its {floating[0].key}")
        elif floating:
            # commented, not deleted: dnf ignores it, the admin still sees the origin (see the module doc)
            for k in floating:
                for i in range(k.first, k.last + 1):
                    ln = lines[i]
                    content = redact(ln.content) if rw.strip_credentials else ln.content
                    lines[i] = _Line(ln.number, "#" + content, ln.ending)
        for k in sec.keys:
            if k.key in _DNF_SECRET_KEYS and rw.strip_credentials:
                drop.update(range(k.first, k.last + 1))
                rw.notes.append(f"{rw.where(lines[k.first].number)}: removed {k.key}= from [{sec.id}]")
            elif k.key in _DNF_URL_KEYS and k.key != "baseurl" and rw.strip_credentials:
                for i in range(k.first, k.last + 1):
                    ln = lines[i]
                    lines[i] = _Line(ln.number, redact(ln.content), ln.ending)
    return _assemble(lines, drop, inserts)


# -- entry points --------------------------------------------------------------------------------------------


def parse_text(text: str, kind: RepoFileKind, *, source: str) -> tuple[AptSource, ...] | tuple[DnfRepo, ...]:
    """The entries of a repo file's text; `source` names the file in errors."""
    if kind is RepoFileKind.APT_LIST:
        return parse_apt_list(text, source=source)
    if kind is RepoFileKind.APT_SOURCES:
        return parse_apt_sources(text, source=source)
    return parse_dnf_repo(text, source=source)


def rewrite(text: str, kind: RepoFileKind, snapshot: str, provider: Provider, *, source: str,
            strip_credentials: bool = False, service: str | None = None, disable_third_party: bool = False,
            baseurls: Mapping[str, str] | None = None) -> Rewrite:
    """Point a repo file's text at `snapshot` under `provider` (see the module doc for the policy).

    `service`: a snapshot service other than the public one (debian/ubuntu). `disable_third_party` (apt):
    mark entries the provider does not cover `Snapshot: disable`. `baseurls` (dnf): repo id -> the URL to
    snapshot for that section, for sections on a mirrorlist/metalink or to move them; may hold dnf variables.
    """
    allowed = _DNF_PROVIDERS if kind is RepoFileKind.DNF_REPO else _APT_PROVIDERS
    if provider not in allowed:
        raise ConfigError(f"{source}: provider {provider} does not apply to .{kind.value} files",
                          hint="use one of " + ", ".join(p.value for p in allowed))
    if baseurls and kind is not RepoFileKind.DNF_REPO:
        raise ConfigError(f"{source}: base URLs per repo id apply to dnf .repo files only")
    rw = _Rewriter(source, snapshot, provider, strip_credentials=strip_credentials, service=service)
    if kind is RepoFileKind.APT_LIST:
        out = _rewrite_apt_list(text, rw, disable_third_party)
    elif kind is RepoFileKind.APT_SOURCES:
        out = _rewrite_apt_sources(text, rw, disable_third_party)
    else:
        out = _rewrite_dnf_repo(text, rw, baseurls or {})
    return Rewrite(out, tuple(rw.notes))


def rewrite_text(text: str, kind: RepoFileKind, snapshot: str, provider: Provider, *, source: str,
                 strip_credentials: bool = False, service: str | None = None, disable_third_party: bool = False,
                 baseurls: Mapping[str, str] | None = None) -> str:
    """`rewrite(...).text`: the rewritten file only."""
    return rewrite(text, kind, snapshot, provider, source=source, strip_credentials=strip_credentials,
                   service=service, disable_third_party=disable_third_party, baseurls=baseurls).text
