"""`snapshots.lock`: the versioned, deterministic record of what was resolved against what.

Serialised as JSON with sorted keys and sorted lists so identical inputs give identical bytes.
"""

from __future__ import annotations

import json
import posixpath
import re
import types
from dataclasses import dataclass, fields, is_dataclass
from json.encoder import encode_basestring as _encode_str  # json's own (C) string escaping, ensure_ascii=False
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints
from urllib.parse import unquote

from imagebuild.bom import BomEntry
from imagebuild.errors import ConfigError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_NOT_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


def repo_path(filename: str) -> str | None:
    """A package's file name in its repository (a Packages `Filename`, an rpm `location href`), normalised; None when
    it is not a plain relative path to a file inside the repository: empty, absolute, a directory, a URL (of another
    host), with a `..` (also percent-encoded: servers decode it), a backslash, whitespace, control characters, `?` or
    `#`."""
    if (not filename or filename.startswith("/") or filename.endswith("/") or _SCHEME.match(filename)
            or re.search(r"[\s?#]", filename)):
        return None
    decoded = unquote(filename)
    if _NOT_IN_PATH.search(filename) or _NOT_IN_PATH.search(decoded) or ".." in decoded.split("/"):
        return None
    path = posixpath.normpath(filename)  # `./http://x` is `http:/x`: checked again as it will be used
    return None if path == "." or _SCHEME.match(path) else path


LOCK_NAME = "snapshots.lock"
LOCK_FORMAT = 1
STUB_REPO = "imagebuild-stub"  # the `repo` of a container's generated host-provided stub package


@dataclass(frozen=True)
class LockedRepo:
    """One repo (one suite) of a distro x arch, pinned to its snapshot and Release digest."""

    distro: str
    arch: str
    name: str
    suite: str
    url: str  # credential-free
    snapshot: str | None
    release_sha256: str
    date: str
    valid_until: str
    indices: tuple[tuple[str, str], ...]  # (path in the Release, sha256)


@dataclass(frozen=True)
class LockedPackage:
    """One package of a locked image, with where it comes from and why it is there."""

    name: str
    version: str
    arch: str
    repo: str  # "base" for packages the base image already had
    suite: str
    filename: str
    size: int
    sha256: str
    required_by: str | None  # None: requested by the role (or in the base)
    dep_type: str
    relation: str
    depends: tuple[str, ...] = ()  # the locked packages that meet its dependencies (and weak ones, if installed)


@dataclass(frozen=True)
class LockedPip:
    """A pip requirement of a role: the exact version and the sha256 of every file PyPI has for it."""

    name: str
    version: str
    hashes: tuple[str, ...]

    def requirement(self) -> str:
        return f"{self.name}=={self.version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in self.hashes)


@dataclass(frozen=True)
class LockedStub:
    """A container's generated package standing for what the host provides (the NVIDIA driver's libraries):
    it Provides each `name (= version)` the node image has, so dependencies on them are met without them."""

    name: str
    version: str
    arch: str
    provides: tuple[str, ...]


@dataclass(frozen=True)
class LockedTarget:
    """One locked image: a role's node image (or its container) for one arch."""

    role: str
    arch: str
    distro: str
    requests: tuple[str, ...]
    packages: tuple[LockedPackage, ...]  # everything the image holds, base included
    removed: tuple[str, ...]  # base packages the transaction removes
    family: str = "deb"  # "deb" or "rpm": which version ordering and BOM tool apply
    pip: tuple[LockedPip, ...] = ()  # installed into /opt/imagebuild/venv with --require-hashes
    container: bool = False  # the role's container (`<role>-container`), derived from its node image
    stubs: tuple[LockedStub, ...] = ()  # a container's host-provided stubs (also listed in packages)

    @property
    def name(self) -> str:
        """The lock target's name: the role, or `<role>-container`."""
        return f"{self.role}-container" if self.container else self.role

    @property
    def key(self) -> str:
        return f"{self.name}-{self.arch}"

    def bom(self) -> list[BomEntry]:
        return [BomEntry(p.name, p.arch, p.version) for p in self.packages]


@dataclass(frozen=True)
class Lock:
    """snapshots.lock: the repos and every image's packages."""

    inputs_digest: str
    repos: tuple[LockedRepo, ...]
    targets: tuple[LockedTarget, ...]

    def target(self, role: str, arch: str, container: bool = False) -> LockedTarget | None:
        return next((t for t in self.targets if t.role == role and t.arch == arch and t.container == container),
                    None)


def render_lock(lock: Lock) -> str:
    """The lock as JSON. The records' fields are plain values (str, int, tuples of them), so each record's
    `vars` is its JSON object as it is: dataclasses.asdict would copy every field of thousands of packages."""
    from imagebuild import __version__

    doc: dict[str, Any] = {
        "lock-format": LOCK_FORMAT,
        "generator": f"imagebuild {__version__}",
        "inputs-digest": lock.inputs_digest,
        "repos": [vars(r) for r in sorted(lock.repos, key=lambda r: (r.distro, r.arch, r.name, r.suite))],
        "targets": {
            t.key: {
                "role": t.role, "arch": t.arch, "distro": t.distro, "family": t.family, "requests": list(t.requests),
                "removed": list(t.removed),
                "packages": [vars(p) for p in sorted(t.packages, key=lambda p: (p.name, p.arch))],
                # only when there is some: locks without pip stay byte-identical to earlier ones
                **({"pip": [vars(p) for p in sorted(t.pip, key=lambda p: p.name.lower())]} if t.pip else {}),
                **({"container": True} if t.container else {}),
                **({"stubs": [vars(s) for s in sorted(t.stubs, key=lambda s: s.name)]} if t.stubs else {}),
            }
            for t in sorted(lock.targets, key=lambda t: t.key)
        },
    }
    out: list[str] = []
    _json(doc, "\n", out)
    return "".join(out) + "\n"


def _json(value: Any, newline: str, out: list[str]) -> None:
    """`json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)`, appended to `out` in pieces: with an
    indent, json falls back to its pure-Python encoder, several times slower on a lock's thousands of records.
    `newline` is the line break plus the indent of `value`'s own level."""
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is True or value is False or value is None:
        out.append("true" if value else "false" if value is False else "null")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + " "
        sep = "{" + inner
        for k in sorted(value):
            out.append(sep)
            out.append(_encode_str(k))
            out.append(": ")
            _json(value[k], inner, out)
            sep = "," + inner
        out.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + " "
        sep = "[" + inner
        for v in value:
            out.append(sep)
            _json(v, inner, out)
            sep = "," + inner
        out.append(newline + "]")
    else:
        raise TypeError(f"not in a lock: {value!r}")


def parse_lock(text: str | bytes, source: Path) -> Lock:
    """The lock of `text`, or of a lock file's bytes (UTF-8: anything else is not a lock `lock` wrote)."""
    try:
        doc = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
        if doc.get("lock-format") != LOCK_FORMAT:
            raise ConfigError(f"{source}: unsupported lock format {doc.get('lock-format')!r}",
                              hint=f"this imagebuild reads format {LOCK_FORMAT}; re-run `imagebuild lock`")
        repos = tuple(LockedRepo(**{**r, "indices": tuple(tuple(i) for i in r["indices"])}) for r in doc["repos"])
        targets = tuple(
            LockedTarget(t["role"], t["arch"], t["distro"], tuple(t["requests"]),
                         tuple(LockedPackage(**{**p, "depends": tuple(p.get("depends", ()))}) for p in t["packages"]),
                         tuple(t["removed"]),
                         t.get("family", "deb"),
                         tuple(LockedPip(p["name"], p["version"], tuple(p["hashes"])) for p in t.get("pip", ())),
                         bool(t.get("container", False)),
                         tuple(LockedStub(s["name"], s["version"], s["arch"], tuple(s["provides"]))
                               for s in t.get("stubs", ())))
            for t in doc["targets"].values()
        )
        lock = Lock(doc["inputs-digest"], repos, targets)
        _check_types(lock, "lock")
        for key, t in zip(doc["targets"], targets, strict=True):
            if t.family not in ("deb", "rpm"):
                raise ValueError(f"target {t.key}: unknown family {t.family!r}")
            if key != t.key:  # two targets of one key, or a hand edit: either is not what `lock` wrote
                raise ValueError(f"target {key[:80]!r} holds {t.key[:80]!r}")
        return lock
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise ConfigError(f"{source}: not a valid imagebuild lock ({e.__class__.__name__}: {str(e)[:200]})",
                          hint="re-run `imagebuild lock` to regenerate it") from None


_FIELD_TYPES: dict[type, tuple[tuple[str, Any], ...]] = {}


def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    found = _FIELD_TYPES.get(cls)
    if found is None:
        hints = get_type_hints(cls)
        found = _FIELD_TYPES[cls] = tuple((f.name, hints[f.name]) for f in fields(cls))
    return found


def _is(value: object, kind: Any) -> bool:
    origin, args = get_origin(kind), get_args(kind)
    if origin is types.UnionType:
        return any(_is(value, k) for k in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_is(v, args[0]) for v in value)
        return len(value) == len(args) and all(_is(v, k) for v, k in zip(value, args, strict=True))
    if kind is type(None):
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_types(value: object, where: str) -> None:
    """Every field of the parsed lock has the type its dataclass declares (JSON would let a `null` or a number
    through to the code that uses it)."""
    for name, kind in _field_types(type(value)):
        v = getattr(value, name)
        if not _is(v, kind):
            raise TypeError(f"{where}.{name}: {type(v).__name__} {str(v)[:40]!r} is not a {kind}")
        for item in v if isinstance(v, tuple) else ():
            if is_dataclass(item):
                _check_types(item, f"{where}.{name}")


def read_lock(path: Path) -> Lock:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no lock file", hint="run `imagebuild lock` first") from None
    return parse_lock(data, path)
