"""fetch.get over real loopback HTTP: credentials go in a header, and only to the host they were given for."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import loopback_server

from imagebuild.fetch import get


@contextmanager
def _server(answer: str | None, seen: list[tuple[str, str | None]], name: str) -> Iterator[int]:
    """A loopback server that records the Authorization header it gets and redirects to `answer` (or says ok)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            seen.append((name, self.headers.get("Authorization")))
            if answer is not None and self.path == "/start":
                self.send_response(302)
                self.send_header("Location", answer)
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    with loopback_server(Handler) as url:
        yield int(url.rsplit(":", 1)[1])


def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    seen: list[tuple[str, str | None]] = []
    with _server(None, seen, "mirror") as mirror, \
            _server(f"http://localhost:{mirror}/file", seen, "origin") as origin:
        final, body = get(f"http://user:s3cret@127.0.0.1:{origin}/start")
    assert body == b"ok" and final == f"http://localhost:{mirror}/file"
    assert seen[0][0] == "origin" and seen[0][1] is not None and seen[0][1].startswith("Basic ")
    assert seen[1] == ("mirror", None)


def test_credentials_follow_a_redirect_on_the_same_host() -> None:
    """snapshot.debian.org-style redirects stay on the host: the (Pulp/ark) credentials must go along."""
    seen: list[tuple[str, str | None]] = []
    with _server("/snapshot/20261122T000000Z/", seen, "svc") as port:
        _, body = get(f"http://user:s3cret@127.0.0.1:{port}/start")
    assert body == b"ok"
    assert [h is not None for _, h in seen] == [True, True]
