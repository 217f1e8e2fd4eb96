"""Dated snapshots: ids, the URL each provider gives a repo at a snapshot, and the "latest" lookup.

A snapshot id is a UTC instant written `YYYYMMDDTHHMMSSZ` (as snapshot.debian.org, snapshot.ubuntu.com
and apt >= 2.7 write it). The URL functions are pure; only `latest` does I/O, through an injectable
`get` function so callers (and tests) decide where requests go.

Providers:

* `debian`     snapshot.debian.org: `<service>/archive/<archive>/<id>/`, the archive (`debian`,
               `debian-security`, `debian-ports`, ...) taken from the original URL's path.
* `ubuntu`     snapshot.ubuntu.com: `<service>/<archive>/<id>/` (`ubuntu` or `ubuntu-ports`).
* `apt-native` the URL stays; apt >= 2.7 selects the snapshot itself (`Snapshot:` / `[snapshot=]`).
* `pulp`       Pulp distributions as StackHPC's "ark" publishes them: `<content>/<path>/<YYYYMMDDTHHMMSS>/`
               (Pulp's segment has no trailing `Z`).
* `template`   the URL carries `{snapshot}` where the id goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urljoin, urlsplit, urlunsplit

from imagebuild.errors import ConfigError, RepositoryError
from imagebuild.fetch import get, redact

SNAPSHOT_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z?\Z")
_ID_FORMAT = "%Y%m%dT%H%M%SZ"
# A path segment holding a snapshot id: with `Z` (Debian/Ubuntu services) or without (Pulp).
_ID_SEGMENT = re.compile(r"(?<=/)[0-9]{8}T[0-9]{6}Z?(?=/|$)")
_PULP_SEGMENT = re.compile(r"(?<=/)[0-9]{8}T[0-9]{6}(?=/|$)")

DEBIAN_SERVICE = "https://snapshot.debian.org"
UBUNTU_SERVICE = "https://snapshot.ubuntu.com"
_UBUNTU_ARCHIVES = ("ubuntu", "ubuntu-ports")


class Provider(StrEnum):
    DEBIAN = "debian"
    UBUNTU = "ubuntu"
    APT_NATIVE = "apt-native"
    PULP = "pulp"
    TEMPLATE = "template"


def parse_provider(value: str, *, where: str = "snapshot-provider") -> Provider:
    try:
        return Provider(value)
    except ValueError:
        raise ConfigError(f"{where}: unknown snapshot provider {value!r}",
                          hint="one of " + ", ".join(p.value for p in Provider)) from None


# -- ids -----------------------------------------------------------------------------------------------------


def validate_id(snapshot: str, *, where: str = "snapshot") -> str:
    """The canonical form (`…Z`) of a well-formed id of a real instant, else a ConfigError naming `where`.
    Pulp's bare form (`20250301T000000`, what ark's index lists) is the same UTC instant."""
    return format_id(parse_id(snapshot, where=where))


def parse_id(snapshot: str, *, where: str = "snapshot") -> datetime:
    """The UTC instant of a snapshot id, written with or without the trailing `Z`."""
    hint = "a UTC time written YYYYMMDDTHHMMSSZ (or Pulp's YYYYMMDDTHHMMSS), e.g. 20261122T000000Z"
    if not SNAPSHOT_RE.match(snapshot):
        raise ConfigError(f"{where}: {snapshot!r} is not a snapshot id", hint=hint)
    try:  # (not strptime: its first call builds a locale's regexes, a few ms of every lock)
        return datetime(int(snapshot[0:4]), int(snapshot[4:6]), int(snapshot[6:8]), int(snapshot[9:11]),
                        int(snapshot[11:13]), int(snapshot[13:15]), tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{where}: {snapshot!r} is not a valid date and time", hint=hint) from None


def format_id(at: datetime) -> str:
    """The snapshot id of an instant. Naive datetimes are refused: a wrong zone would shift the snapshot."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("snapshot times must be timezone-aware (use datetime.now(UTC) or .replace(tzinfo=UTC))")
    return at.astimezone(UTC).strftime(_ID_FORMAT)


def pulp_segment(snapshot: str) -> str:
    """The path segment Pulp/ark uses for a snapshot id: the same digits without the `Z`."""
    return validate_id(snapshot)[:-1]


# -- URLs ----------------------------------------------------------------------------------------------------


def find_snapshot_segment(url: str) -> str | None:
    """The snapshot id already in a URL's path (`…/20261122T000000Z/` or Pulp's `…/20261122T000000/`)."""
    matches = list(_ID_SEGMENT.finditer(urlsplit(url).path))
    if not matches:
        return None
    found = matches[-1].group()
    return found if found.endswith("Z") else found + "Z"


def replace_snapshot_segment(url: str, snapshot: str) -> str | None:
    """The URL with its (last) snapshot path segment moved to `snapshot`, keeping its style (`Z` or Pulp's
    bare form); None when the URL has no such segment."""
    snapshot = validate_id(snapshot)
    parts = urlsplit(url)
    matches = list(_ID_SEGMENT.finditer(parts.path))
    if not matches:
        return None
    m = matches[-1]
    new = snapshot if m.group().endswith("Z") else snapshot[:-1]
    return urlunsplit(parts._replace(path=parts.path[:m.start()] + new + parts.path[m.end():]))


def pulp_base(url: str) -> str:
    """`<content>/<path>/` of a Pulp URL, with or without a snapshot segment: the directory ark lists."""
    parts = urlsplit(url)
    matches = list(_PULP_SEGMENT.finditer(parts.path))
    path = parts.path[:matches[-1].start()] if matches else parts.path.rstrip("/") + "/"
    return urlunsplit(parts._replace(path=path))


def archive_of(provider: Provider, url: str) -> str | None:
    """The snapshot-service archive a repo URL belongs to (`debian`, `debian-security`, `ubuntu-ports`, …),
    or None when the URL is not one of that distribution's archives (a vendor repo, say)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if provider is Provider.DEBIAN:
        # snapshot URLs (…/archive/<archive>/<id>/) name their archive before the id
        if len(segments) >= 3 and segments[-3] == "archive" and SNAPSHOT_RE.match(segments[-1]):
            return segments[-2]
        if segments and re.fullmatch(r"debian(-[a-z0-9]+)*", segments[-1]):
            return segments[-1]
        return None
    if provider is Provider.UBUNTU:
        if len(segments) >= 2 and SNAPSHOT_RE.match(segments[-1]) and segments[-2] in _UBUNTU_ARCHIVES:
            return segments[-2]
        return segments[-1] if segments and segments[-1] in _UBUNTU_ARCHIVES else None
    raise ValueError(f"provider {provider} has no archives")


def applies_to(provider: Provider, url: str) -> bool:
    """Whether `provider` knows how to put `url` on a snapshot. Repo-file rewriting keeps other URLs as they
    are (a CUDA repo in the same file as Debian's is not on snapshot.debian.org)."""
    if provider in (Provider.DEBIAN, Provider.UBUNTU):
        return archive_of(provider, url) is not None
    if provider is Provider.APT_NATIVE:
        # apt only finds snapshots for repos whose Release names a snapshot server: Debian's and Ubuntu's
        return archive_of(Provider.DEBIAN, url) is not None or archive_of(Provider.UBUNTU, url) is not None
    if provider is Provider.PULP:
        return _PULP_SEGMENT.search(urlsplit(url).path) is not None
    return "{snapshot}" in url


def snapshot_url(provider: Provider, url: str, snapshot: str, *, service: str | None = None) -> str:
    """The URL of repo `url` at `snapshot` under `provider`.

    `service` replaces the public snapshot service (a site mirror of snapshot.debian.org, or a test server);
    a URL already on a snapshot keeps its host and only moves to the new id, so this is idempotent.
    Credentials in `url` are carried over (callers redact for display).
    """
    snapshot = validate_id(snapshot)
    if provider is Provider.APT_NATIVE:
        return url
    if provider is Provider.TEMPLATE:
        if "{snapshot}" not in url:
            raise ConfigError(f"{redact(url)}: the template provider needs {{snapshot}} in the URL",
                              hint="write where the id goes, e.g. https://mirror.example/debian/{snapshot}/")
        return url.replace("{snapshot}", snapshot)
    if provider is Provider.PULP:
        moved = replace_snapshot_segment(url, snapshot)
        return moved if moved is not None else pulp_base(url) + pulp_segment(snapshot) + "/"
    archive = archive_of(provider, url)
    if archive is None:
        example = "…/debian or …/debian-security" if provider is Provider.DEBIAN else "…/ubuntu or …/ubuntu-ports"
        raise ConfigError(f"{redact(url)}: not a {provider} archive URL, cannot map it onto the snapshot service",
                          hint=f"the URL path must end in the archive name ({example}); "
                               "use provider 'template' or 'pulp' for other repos")
    if find_snapshot_segment(url) is not None:
        moved = replace_snapshot_segment(url, snapshot)
        assert moved is not None
        return moved
    base = (service or (DEBIAN_SERVICE if provider is Provider.DEBIAN else UBUNTU_SERVICE)).rstrip("/")
    if provider is Provider.DEBIAN:
        return f"{base}/archive/{archive}/{snapshot}/"
    return f"{base}/{archive}/{snapshot}/"


# -- the "latest" lookup -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """What `latest` needs of an HTTP GET: the URL finally answered (after redirects) and the body."""

    url: str
    body: bytes


Get = Callable[[str], Response]


def http_get(url: str, timeout: float = 60.0) -> Response:
    """GET `url`, following redirects (fetch.get: credentials in a header, never in a message)."""
    try:
        final, body = get(url, timeout)
    except RepositoryError as e:
        raise RepositoryError(e.message, hint=e.hint or "is the snapshot time in the range the service offers?"
                              ) from None
    return Response(final, body)


def latest(provider: Provider, url: str, at: datetime, *, get: Get = http_get, service: str | None = None) -> str:
    """The id of the newest snapshot `provider` offers for repo `url` at or before `at`.

    debian/ubuntu: the services answer a request for any instant with the newest snapshot at or before it
    (snapshot.debian.org by redirecting to that snapshot's URL; a service that serves the instant as is
    answers without a redirect, and then the instant itself is the snapshot). pulp: ark publishes one
    directory per snapshot under `<content>/<path>/`; its HTML index is read and the newest entry not after
    `at` wins. `url` must have dnf/apt variables ($basearch, {arch}) already substituted.
    """
    wanted = format_id(at)
    if provider in (Provider.DEBIAN, Provider.UBUNTU):
        probe = snapshot_url(provider, _without_snapshot(provider, url, service), wanted, service=service)
        answer = get(probe)
        found = find_snapshot_segment(answer.url)
        if found is None:
            raise RepositoryError(f"{redact(probe)}: the service answered {redact(answer.url)}, which names no "
                                  "snapshot", hint="is `service` a snapshot service?")
        if found > wanted:
            raise RepositoryError(f"{redact(probe)}: the service answered with snapshot {found}, after {wanted}")
        return found
    if provider is Provider.PULP:
        index = pulp_base(url)
        answer = get(index)
        ids = {m + "Z" for m in _pulp_index_entries(answer.body.decode("utf-8", "replace"))}
        candidates = sorted(i for i in ids if i <= wanted)
        if not candidates:
            oldest = f"; the oldest is {min(ids)}" if ids else ""
            raise RepositoryError(f"{redact(index)}: no snapshot at or before {wanted}{oldest}",
                                  hint="pick a later time, or check the repo path")
        return candidates[-1]
    raise ConfigError(f"{redact(url)}: provider {provider} has no snapshot index to ask",
                      hint="apt-native repos use the Debian/Ubuntu services: look up with provider debian or "
                           "ubuntu; template URLs need an explicit snapshot id")


def _without_snapshot(provider: Provider, url: str, service: str | None) -> str:
    """An already-snapshotted URL would only ever move within its own host; rebuild the archive URL so the
    probe goes to `service` when one is given."""
    if service is None or find_snapshot_segment(url) is None:
        return url
    archive = archive_of(provider, url)
    return f"{service.rstrip('/')}/{archive}" if archive else url


_HREF = re.compile(r"""href\s*=\s*["']?([^"' >]+)""", re.IGNORECASE)


def _pulp_index_entries(html: str) -> set[str]:
    """`YYYYMMDDTHHMMSS` directory names linked from an index page (relative or absolute links)."""
    out = set()
    for href in _HREF.findall(html):
        try:
            segment = urlsplit(urljoin("http://x/", href)).path.rstrip("/").rsplit("/", 1)[-1]
        except ValueError:  # not a URL (an unclosed `[` of an IPv6 host): not a snapshot either
            continue
        if re.fullmatch(r"[0-9]{8}T[0-9]{6}", segment):
            out.add(segment)
    return out
