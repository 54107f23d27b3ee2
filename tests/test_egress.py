"""Picture requests reach public addresses only, and follow redirects only within the same site."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from omad.assets.base import SourceUnavailable
from omad.assets.egress import check_url, guard, site_of
from omad.assets.stock import DownloadCache, make_site
from omad.config import Config


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a redirect to ``target`` (set per server), or JSON when there is none."""

    target = ""
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"photos": [], "videos": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[tuple[type[_Redirector], str]]:
    handler = type("H", (_Redirector,), {"target": "", "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]/", "http://10.1.2.3/", "http://192.168.0.10/", "http://0.0.0.0/",
                                 "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://localhost/"])
def test_loopback_link_local_and_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(SourceUnavailable, match="loopback, link-local or private"):
        check_url(httpx.URL(url), [], "stock")


def test_an_allowed_host_may_be_private_and_a_public_one_passes() -> None:
    check_url(httpx.URL("http://127.0.0.1:9/x"), ["127.0.0.1"], "stock")
    check_url(httpx.URL("http://93.184.215.14/"), [], "stock")  # a public address: no lookup needed
    assert site_of("images.pexels.com") == site_of("api.pexels.com") == "pexels.com"


def test_the_stock_client_refuses_a_private_site_unless_allowed(redirector: tuple[type[_Redirector], str],
                                                                tmp_path: Any) -> None:
    """GIVEN a stock site on loopback WHEN its host is not allowed THEN nothing is sent to it."""
    handler, url = redirector
    cfg = Config.model_validate({"assets": {"stock": {"pexels_url": url, "pexels_key": "k", "timeout_seconds": 5}}})
    site = make_site("pexels", cfg.assets, DownloadCache(tmp_path / "c", 10**9))
    with pytest.raises(SourceUnavailable, match="assets.allow_hosts"):
        site._get_json(f"{url}/v1/search", {}, {})
    assert handler.hits == []


def test_a_redirect_to_another_site_is_not_followed(redirector: tuple[type[_Redirector], str],
                                                    tmp_path: Any) -> None:
    """GIVEN an allowed stock site that redirects to the metadata address or another host
    THEN the redirect is refused before anything is sent there; within the same host it is followed."""
    handler, url = redirector
    cfg = Config.model_validate({"assets": {"allow_hosts": ["127.0.0.1"],
                                            "stock": {"pexels_url": url, "pexels_key": "k", "timeout_seconds": 5}}})
    site = make_site("pexels", cfg.assets, DownloadCache(tmp_path / "c", 10**9))
    for target in ("http://169.254.169.254/latest/meta-data/", "http://localhost:1/", "http://example.org/"):
        handler.target = target
        with pytest.raises(SourceUnavailable, match="another site"):
            site._get_json(f"{url}/v1/search", {}, {})
    handler.target = f"{url}/elsewhere"
    client = httpx.Client(event_hooks=guard(["127.0.0.1"], "stock"), follow_redirects=True, max_redirects=3)
    with client, pytest.raises(httpx.TooManyRedirects):
        client.get(f"{url}/loop")  # same site: followed (here into a loop that httpx ends)
