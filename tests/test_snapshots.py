"""Snapshot ids, provider URLs and the "latest" lookup against loopback servers that behave like the services.

`snapshot_service` is also used by test_repofiles.py: it serves real data under the snapshot.debian.org
layout (`/archive/<archive>/<id>/…`), redirecting other instants to the newest snapshot at or before them,
and a Pulp/ark-like index (`/pulp/content/<path>/<YYYYMMDDTHHMMSS>/`) behind Basic auth.
"""

from __future__ import annotations

import base64
import http.server
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import loopback_server

from imagebuild.errors import ConfigError, RepositoryError
from imagebuild.snapshots import (
    Provider,
    Response,
    applies_to,
    find_snapshot_segment,
    format_id,
    latest,
    parse_id,
    parse_provider,
    pulp_base,
    pulp_segment,
    replace_snapshot_segment,
    snapshot_url,
    validate_id,
)

SECRET = "s3cr3t-SENTINEL"
ID = "20261122T000000Z"


# -- a loopback snapshot service ------------------------------------------------------------------------------


@dataclass
class Service:
    """What the fake service offers. `archives`: archive -> directory served for every snapshot id;
    `pulp`: repo path under /pulp/content/ -> {pulp id (no Z) -> directory}; `credentials`: user:password
    Pulp requires (None: no auth); `redirect`: False mimics a service that serves any instant as is;
    `static`: first path segment -> directory served as is (a vendor repo or plain mirror next to them)."""

    debian_ids: list[str] = field(default_factory=lambda: ["20261115T031205Z", ID])
    archives: dict[str, Path] = field(default_factory=dict)
    pulp: dict[str, dict[str, Path | None]] = field(default_factory=dict)
    credentials: str | None = None
    redirect: bool = True
    static: dict[str, Path] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


class _Handler(http.server.SimpleHTTPRequestHandler):
    service: Service

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def translate_path(self, path: str) -> str:
        return self._target or "/nonexistent"

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.service.requests.append(self.path)
        self._target: str | None = None
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) >= 4 and parts[1] == "archive" and parts[2] in self.service.archives:
            self._archive(parts[2], parts[3], "/".join(parts[4:]))
        elif len(parts) >= 3 and parts[1:3] == ["pulp", "content"]:
            self._pulp("/".join(parts[3:]))
        elif len(parts) >= 2 and parts[1] in self.service.static:
            self._target = str(self.service.static[parts[1]] / "/".join(parts[2:]))
            super().do_GET()
        else:
            self.send_error(404)

    def _archive(self, archive: str, snapshot: str, rest: str) -> None:
        earlier = [i for i in self.service.debian_ids if i <= snapshot]
        if snapshot in self.service.debian_ids or (earlier and not self.service.redirect):
            self._target = str(self.service.archives[archive] / rest)
            super().do_GET()
        elif earlier:
            # what snapshot.debian.org does for an instant between snapshots
            self.send_response(301)
            self.send_header("Location", f"/archive/{archive}/{max(earlier)}/{rest}")
            self.end_headers()
        else:
            self.send_error(404)

    def _pulp(self, rest: str) -> None:
        if self.service.credentials is not None:
            wanted = "Basic " + base64.b64encode(self.service.credentials.encode()).decode()
            if self.headers.get("Authorization") != wanted:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="pulp"')
                self.end_headers()
                return
        for path, snapshots in self.service.pulp.items():
            prefix = path.strip("/") + "/"
            if not rest.startswith(prefix):
                continue
            tail = rest[len(prefix):]
            if not tail:
                self._index(path, sorted(snapshots))
                return
            snap, _, inner = tail.partition("/")
            if snapshots.get(snap) is not None:
                self._target = str(Path(str(snapshots[snap])) / inner)
                super().do_GET()
                return
        self.send_error(404)

    def _index(self, path: str, ids: list[str]) -> None:
        # shaped like the listing Pulp's content app serves
        links = "\n".join(f'<a href="{i}/">{i}/</a>            22-Nov-2026 00:00               -' for i in ids)
        body = (f"<html>\n<head><title>Index of /pulp/content/{path}/</title></head>\n<body>\n"
                f"<h1>Index of /pulp/content/{path}/</h1>\n<hr><pre><a href=\"../\">../</a>\n{links}\n"
                "</pre><hr></body>\n</html>\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def snapshot_service(service: Service) -> Iterator[str]:
    """Run `service` on a free loopback port; yields its base URL."""
    handler = type("Handler", (_Handler,), {"service": service})
    with loopback_server(handler) as url:
        yield url


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Service]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    svc = Service(archives={"debian": empty, "debian-security": empty},
                  pulp={"rocky/9/BaseOS/x86_64/os": {"20240801T000000": None, "20240816T002610": None,
                                                      "20241001T120000": None}},
                  credentials=f"ark-build:{SECRET}")
    yield from ((url, svc) for url in snapshot_service(svc))


# -- ids -------------------------------------------------------------------------------------------------------


def test_ids_round_trip_and_validate() -> None:
    assert format_id(parse_id(ID)) == ID
    assert parse_id("20261122T093015Z") == datetime(2026, 11, 22, 9, 30, 15, tzinfo=UTC)
    assert format_id(datetime(2026, 11, 22, 10, 30, tzinfo=timezone(timedelta(hours=1)))) == "20261122T093000Z"
    assert pulp_segment(ID) == "20261122T000000"
    # Pulp/ark's bare form (what a user copies from the ark index) is the same UTC instant, canonicalised
    assert validate_id("20261122T000000") == ID and pulp_segment("20261122T000000") == "20261122T000000"
    assert parse_id("20261122T093015") == parse_id("20261122T093015Z")
    for bad in ("2026-11-22", "20261122T0000", "20261322T000000Z", "20261322T000000", "20261122t000000z", ""):
        with pytest.raises(ConfigError) as e:
            validate_id(bad, where="imagebuild.toml: snapshot")
        assert e.value.hint and "YYYYMMDDTHHMMSSZ" in e.value.hint
        assert "imagebuild.toml: snapshot" in str(e.value)
    with pytest.raises(ValueError, match="timezone-aware"):
        format_id(datetime(2026, 11, 22))


def test_parse_id_reads_ids_as_strptime_does() -> None:
    """parse_id reads the digits itself; on every well-formed id, valid or not (month 13, 30 February, second
    60), it agrees with datetime.strptime."""
    rng = random.Random(13)
    ids = ["20240229T235959Z", "20230229T000000Z", "20261232T000000", "20261122T240000Z", "20261122T000060Z",
           "00001122T000000Z", "99991231T235959Z", "20260000T000000Z"]
    for _ in range(3000):
        y, mo, d, h, mi, sec = (rng.randrange(n) for n in (10000, 15, 34, 26, 62, 62))
        ids.append(f"{y:04}{mo:02}{d:02}T{h:02}{mi:02}{sec:02}")
    valid = 0
    for i in ids:
        try:
            expected = datetime.strptime(i.removesuffix("Z"), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            with pytest.raises(ConfigError, match="not a valid date and time"):
                parse_id(i)
        else:
            assert parse_id(i) == expected, i
            valid += 1
    assert 500 < valid < len(ids) - 500


def test_parse_provider() -> None:
    assert parse_provider("apt-native") is Provider.APT_NATIVE
    with pytest.raises(ConfigError) as e:
        parse_provider("snapshot.debian.org", where="repos[0].snapshot-provider")
    assert "repos[0].snapshot-provider" in str(e.value) and "apt-native" in str(e.value.hint)


# -- URLs ------------------------------------------------------------------------------------------------------

URL_CASES = [
    (Provider.DEBIAN, "http://127.0.0.1:8765/debian", f"https://snapshot.debian.org/archive/debian/{ID}/"),
    (Provider.DEBIAN, "http://127.0.0.1:8765/debian-security/",
     f"https://snapshot.debian.org/archive/debian-security/{ID}/"),
    (Provider.DEBIAN, "http://127.0.0.1:8765/debian-ports", f"https://snapshot.debian.org/archive/debian-ports/{ID}/"),
    (Provider.DEBIAN, "https://snapshot.debian.org/archive/debian/20250101T000000Z/",
     f"https://snapshot.debian.org/archive/debian/{ID}/"),
    (Provider.UBUNTU, "http://127.0.0.1:8765/ubuntu/", f"https://snapshot.ubuntu.com/ubuntu/{ID}/"),
    (Provider.UBUNTU, "http://127.0.0.1:8765/ubuntu-ports", f"https://snapshot.ubuntu.com/ubuntu-ports/{ID}/"),
    (Provider.UBUNTU, "https://snapshot.ubuntu.com/ubuntu/20240301T030400Z", f"https://snapshot.ubuntu.com/ubuntu/{ID}"),
    (Provider.APT_NATIVE, "http://127.0.0.1:8765/debian", "http://127.0.0.1:8765/debian"),
    (Provider.PULP, "https://ark.stackhpc.com/pulp/content/rocky/9/BaseOS/$basearch/os/",
     "https://ark.stackhpc.com/pulp/content/rocky/9/BaseOS/$basearch/os/20261122T000000/"),
    (Provider.PULP, "https://ark.stackhpc.com/pulp/content/rocky/9/BaseOS/x86_64/os",
     "https://ark.stackhpc.com/pulp/content/rocky/9/BaseOS/x86_64/os/20261122T000000/"),
    (Provider.PULP, "https://ark.stackhpc.com/pulp/content/rocky/9/BaseOS/x86_64/os/20240816T002610/",
     "https://ark.stackhpc.com/pulp/content/rocky/9/BaseOS/x86_64/os/20261122T000000/"),
    (Provider.TEMPLATE, "http://127.0.0.1:8765/mirror/{snapshot}/debian", f"http://127.0.0.1:8765/mirror/{ID}/debian"),
]


@pytest.mark.parametrize(("provider", "url", "expected"), URL_CASES)
def test_snapshot_url(provider: Provider, url: str, expected: str) -> None:
    assert snapshot_url(provider, url, ID) == expected
    if provider is not Provider.TEMPLATE:
        assert snapshot_url(provider, expected, ID) == expected  # idempotent
        assert snapshot_url(provider, expected, "20270101T000000Z") == expected.replace(ID, "20270101T000000Z") \
            .replace(ID[:-1], "20270101T000000")


def test_service_override_and_credentials_kept_in_url_but_not_in_errors() -> None:
    url = f"http://mirror:{SECRET}@127.0.0.1:8765/debian"
    assert snapshot_url(Provider.DEBIAN, url, ID, service="http://127.0.0.1:9/") \
        == f"http://127.0.0.1:9/archive/debian/{ID}/"
    assert snapshot_url(Provider.PULP, f"http://u:{SECRET}@127.0.0.1/pulp/content/x/", ID) \
        == f"http://u:{SECRET}@127.0.0.1/pulp/content/x/20261122T000000/"
    for provider, bad in ((Provider.DEBIAN, f"http://u:{SECRET}@developer.download.nvidia.com/compute/cuda/repos/"),
                          (Provider.UBUNTU, f"http://u:{SECRET}@127.0.0.1/debian"),
                          (Provider.TEMPLATE, f"http://u:{SECRET}@127.0.0.1/debian")):
        with pytest.raises(ConfigError) as e:
            snapshot_url(provider, bad, ID)
        assert SECRET not in str(e.value) and e.value.hint


def test_segments() -> None:
    assert find_snapshot_segment("https://snapshot.debian.org/archive/debian/20261101T000000Z/") == "20261101T000000Z"
    assert find_snapshot_segment("http://h/pulp/content/rocky/9/20240816T002610/") == "20240816T002610Z"
    assert find_snapshot_segment("http://h/debian/") is None
    assert replace_snapshot_segment("http://h/p/20240816T002610/x", ID) == "http://h/p/20261122T000000/x"
    assert replace_snapshot_segment("http://h/p/", ID) is None
    assert pulp_base("http://h/pulp/content/rocky/9/20240816T002610/") == "http://h/pulp/content/rocky/9/"
    assert applies_to(Provider.PULP, "http://h/pulp/content/rocky/9/20240816T002610/")
    assert not applies_to(Provider.PULP, "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64")
    assert not applies_to(Provider.DEBIAN, "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/")
    assert applies_to(Provider.APT_NATIVE, "http://127.0.0.1/ubuntu")


# -- latest ----------------------------------------------------------------------------------------------------


def test_latest_debian_follows_the_redirect(service: tuple[str, Service]) -> None:
    base, svc = service
    url = "http://127.0.0.1:8765/debian"
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert latest(Provider.DEBIAN, url, at, service=base) == "20261115T031205Z"
    assert svc.requests[-2:] == ["/archive/debian/20261120T120000Z/", "/archive/debian/20261115T031205Z/"]
    assert latest(Provider.DEBIAN, url, parse_id(ID), service=base) == ID
    moved = f"{base}/archive/debian-security/20261115T031205Z/"
    assert latest(Provider.DEBIAN, moved, datetime(2027, 1, 1, tzinfo=UTC), service=base) == ID
    with pytest.raises(RepositoryError) as e:
        latest(Provider.DEBIAN, url, datetime(2020, 1, 1, tzinfo=UTC), service=base)
    assert "404" in str(e.value) and e.value.hint


def test_latest_without_redirect_is_the_instant_itself(service: tuple[str, Service]) -> None:
    base, svc = service
    svc.redirect = False
    svc.archives["ubuntu"] = svc.archives["debian"]
    # snapshot.ubuntu.com's layout has no /archive/ prefix: ask through an injected GET that maps it
    def get(url: str) -> Response:
        from imagebuild.snapshots import http_get
        return http_get(url.replace(base + "/ubuntu/", base + "/archive/ubuntu/"))
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert latest(Provider.UBUNTU, "http://127.0.0.1:8765/ubuntu", at, service=base, get=get) == "20261120T120000Z"


def test_latest_pulp_reads_the_index(service: tuple[str, Service]) -> None:
    base, svc = service
    repo = f"http://ark-build:{SECRET}@{base.removeprefix('http://')}/pulp/content/rocky/9/BaseOS/x86_64/os/"
    assert latest(Provider.PULP, repo, datetime(2024, 9, 1, tzinfo=UTC)) == "20240816T002610Z"
    assert latest(Provider.PULP, repo + "20240801T000000/", datetime(2024, 8, 16, 0, 26, 10, tzinfo=UTC)) \
        == "20240816T002610Z"
    assert latest(Provider.PULP, repo, datetime(2030, 1, 1, tzinfo=UTC)) == "20241001T120000Z"
    with pytest.raises(RepositoryError) as e:
        latest(Provider.PULP, repo, datetime(2024, 1, 1, tzinfo=UTC))
    assert "oldest is 20240801T000000Z" in str(e.value) and SECRET not in str(e.value)
    # wrong password: the service refuses, the message names the URL without credentials
    with pytest.raises(RepositoryError) as e:
        latest(Provider.PULP, repo.replace(SECRET, SECRET + "x"), datetime(2024, 9, 1, tzinfo=UTC))
    assert "401" in str(e.value) and SECRET not in str(e.value) and "ark-build" not in str(e.value)


def test_latest_network_error_is_a_repository_error() -> None:
    with pytest.raises(RepositoryError) as e:
        latest(Provider.PULP, f"http://u:{SECRET}@127.0.0.1:9/pulp/content/x/", datetime(2024, 9, 1, tzinfo=UTC))
    assert SECRET not in str(e.value) and e.value.hint


def test_latest_needs_an_index() -> None:
    for provider in (Provider.APT_NATIVE, Provider.TEMPLATE):
        with pytest.raises(ConfigError) as e:
            latest(provider, f"http://u:{SECRET}@127.0.0.1/x/{{snapshot}}/", datetime(2024, 9, 1, tzinfo=UTC),
                   get=lambda url: pytest.fail("no request expected"))
        assert SECRET not in str(e.value)


def test_latest_with_an_injected_get_needs_no_network() -> None:
    answers: Mapping[str, Response] = {
        f"https://snapshot.debian.org/archive/debian-security/{ID}/":
            Response("https://snapshot.debian.org/archive/debian-security/20261121T201512Z/", b""),
    }
    assert latest(Provider.DEBIAN, "http://127.0.0.1/debian-security", parse_id(ID), get=answers.__getitem__) \
        == "20261121T201512Z"
    with pytest.raises(RepositoryError, match="after"):
        latest(Provider.DEBIAN, "http://127.0.0.1/debian-security", parse_id("20261101T000000Z"),
               get=lambda url: Response("https://snapshot.debian.org/archive/debian-security/20261121T201512Z/", b""))
