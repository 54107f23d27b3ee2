"""A web side that a slow or greedy client cannot take down: real sockets against the real uvicorn server.

Each test starts the daemon's own server on loopback. Flooding clients bind
127.0.0.2 (Linux routes all of 127/8 to lo) so that they are another client
than the one checking ``/healthz``; every socket a test opens is closed by it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env, Running, wait_for
from prometheus_client import CollectorRegistry

from omad.config import WebConfig
from omad.web.auth import Auth, TokenStore

FLOOD = "127.0.0.2"


def _serve(make_env: Callable[..., Env], **web: Any) -> tuple[Env, Running]:
    env = make_env(web={"enabled": True, "port": 0, **web})
    return env, Running(env.daemon(), serve=True)


def _closed(run: Running, reason: str) -> float:
    value = run.server.metrics.registry.get_sample_value("omad_web_connections_closed_total", {"reason": reason})
    return float(value or 0.0)


class _Sockets:
    def __init__(self) -> None:
        self.all: list[socket.socket] = []

    def open(self, port: int, send: bytes, source: str = FLOOD) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.all.append(s)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        if send:
            s.sendall(send)
        return s

    def close(self) -> None:
        for s in self.all:
            s.close()


@pytest.fixture
def sockets() -> Iterator[_Sockets]:
    made = _Sockets()
    yield made
    made.close()


def _gone(s: socket.socket) -> bool:
    """True once the server has closed ``s`` (what it sends first, if anything, is read and dropped)."""
    s.settimeout(30)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_a_thousand_slow_header_connections_do_not_stop_healthz(make_env: Callable[..., Env],
                                                                sockets: _Sockets) -> None:
    """GIVEN a server capped at 300 connections WHEN one client opens 1,100 connections that never finish their
    headers THEN /healthz still answers at once: the oldest unfinished connections are dropped to make room."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4096  # 1,100 client sockets and up to 300 server ones live in this one process
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the open-files limit is {hard}; this test needs {need} (ulimit -n)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    env, running = _serve(make_env, header_timeout_seconds=120, max_connections=300,
                          max_connections_per_client=5000)
    with running as run:
        port = run.server.port
        for _ in range(1100):
            sockets.open(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        wait_for(lambda: _closed(run, "evicted") >= 700, timeout=60)
        r = httpx.get(f"{run.server.url}/healthz", timeout=10)
        assert r.status_code == 200 and r.text.startswith("ok")
        assert len(run.server.guard.open) <= 300


def test_one_client_gets_at_most_its_share_of_connections(make_env: Callable[..., Env], sockets: _Sockets) -> None:
    """GIVEN web.max_connections_per_client 8 WHEN one address opens 20 connections THEN 12 are refused at once,
    and another client is served."""
    env, running = _serve(make_env, max_connections_per_client=8, header_timeout_seconds=120)
    with running as run:
        extra = [sockets.open(run.server.port, b"") for _ in range(20)]
        wait_for(lambda: _closed(run, "per_client") >= 12, timeout=30)
        assert run.server.guard.per_client[FLOOD] == 8
        assert sum(_gone(s) for s in extra[8:]) == 12
        assert httpx.get(f"{run.server.url}/healthz", timeout=10).status_code == 200


def test_headers_and_bodies_have_deadlines(make_env: Callable[..., Env], sockets: _Sockets) -> None:
    """GIVEN a 0.5 s header deadline and a 0.5 s body pause WHEN a client stops in its headers, in the next request
    of a kept-alive connection, or in a body THEN the server closes each connection."""
    env, running = _serve(make_env, header_timeout_seconds=0.5, body_idle_seconds=0.5)
    with running as run:
        port = run.server.port
        silent = sockets.open(port, b"")
        partial = sockets.open(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _gone(silent) and _gone(partial)
        kept = sockets.open(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        kept.settimeout(30)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request, never finished
        assert _gone(kept)
        body = sockets.open(port, b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                                  b"\r\nContent-Length: 100\r\n\r\n{\"kind\":")
        assert _gone(body)
        assert _closed(run, "header_timeout") >= 3 and _closed(run, "body_timeout") >= 1


def _raw(port: int, request: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_an_oversized_brief_is_refused_before_its_body_is_read(make_env: Callable[..., Env]) -> None:
    """GIVEN intake.max_brief_bytes of 64 KB WHEN a JSON brief declares 10 MB and sends one byte of it
    THEN the answer is 413 naming the field, at once (the rest is never waited for)."""
    env = make_env(web={"enabled": True, "port": 0}, intake={"max_brief_bytes": 65536})
    with Running(env.daemon(), serve=True) as run:
        status, body = _raw(run.server.port, b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                                             b"application/json\r\nContent-Length: 10000000\r\n\r\n{")
        assert status == 413 and body["field"] == "brief" and "intake.max_brief_bytes" in body["error"]
        big = json.dumps({"kind": "narrate", "text": "x" * 70000})
        r = httpx.post(f"{run.server.url}/api/jobs", content=big, headers={"Content-Type": "application/json"},
                       timeout=30)
        assert r.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused before it is read (411), never spooled
            yield b'{"kind": "narrate", "text": "'
            for _ in range(20):
                yield b"x" * 8192
            yield b'"}'

        r = httpx.post(f"{run.server.url}/api/jobs", content=chunks(), headers={"Content-Type": "application/json"},
                       timeout=30)
        assert r.status_code == 411 and r.json()["field"] == "content-length"


@pytest.mark.parametrize("payload,field,fragment", [
    (b"[" * 100000 + b"]" * 100000, "brief", "max_brief_depth"),
    (json.dumps({"kind": "narrate", "text": "x", "o": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}).encode(), "brief",
     "max_brief_depth"),
    (json.dumps({"kind": "narrate", "text": "oi", "name": "a\x00b"}).encode(), "name", "control character"),
    (json.dumps({"kind": "narrate", "text": "oi", "name": "é" * 150}).encode(), "name", "200 bytes"),
    (json.dumps({"kind": "narrate", "text": "oi", "name": "../../etc/x"}).encode(), "name", "slash"),
    (b"{\"kind\": \xff}", "brief", "UTF-8"),
    (b"{\"kind\": ", "brief", "not valid JSON"),
])
def test_bad_briefs_get_a_4xx_with_a_field_never_a_500(make_env: Callable[..., Env], payload: bytes, field: str,
                                                       fragment: str) -> None:
    env = make_env(web={"enabled": True, "port": 0})
    with Running(env.daemon(), serve=True) as run:
        r = httpx.post(f"{run.server.url}/api/jobs", content=payload, headers={"Content-Type": "application/json"},
                       timeout=30)
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert body["field"] == field and fragment in body["error"]
    assert "Traceback" not in r.text and "Error:" not in r.text


def _login(url: str, token: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/login", data={"token": token, "next": "/"}, headers=headers, timeout=30,
                      follow_redirects=False)


@pytest.mark.parametrize("web,headers,client_seen,secure", [
    ({}, {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}, "127.0.0.1", False),
    ({"trusted_proxies": ["127.0.0.1"]}, {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}, "6.6.6.6",
     True),
    ({"public_url": "https://omad.example/"}, {}, "127.0.0.1", True),
])
def test_forwarded_headers_only_from_trusted_proxies_and_secure_cookies_behind_tls(
        make_env: Callable[..., Env], web: dict[str, Any], headers: dict[str, str], client_seen: str,
        secure: bool) -> None:
    """X-Forwarded-For/-Proto are believed only from web.trusted_proxies; the session cookie is Secure when the
    site is https (the proxy says so, or web.public_url)."""
    env = make_env(web={"enabled": True, "port": 0, "require_token": True, **web})
    token = TokenStore(env.state / "tokens.json").add("me")
    with Running(env.daemon(), serve=True) as run:
        httpx.get(f"{run.server.url}/api/jobs", headers={"Authorization": "Bearer omad_wrong", **headers},
                  timeout=30)
        r = _login(run.server.url, token, **headers)
    assert r.status_code == 303
    assert ("secure" in r.headers["set-cookie"].lower()) is secure
    logs = "".join(p.read_text() for p in (env.outbox / "logs").iterdir())
    failed = [json.loads(line) for line in logs.splitlines() if '"auth_failed"' in line]
    assert failed and failed[-1]["client"] == client_seen


def test_session_and_rate_tables_are_bounded(tmp_path: Path) -> None:
    web = WebConfig(max_sessions=3, require_token=True)
    auth = Auth(web, tmp_path, CollectorRegistry(), "127.0.0.1")
    token = auth.store.add("me")
    sids = [auth.open_session(token) for _ in range(5)]
    assert len(auth._sessions) == 3 and auth.session(str(sids[0]))[0] == "unknown"
    assert auth.session(str(sids[-1]))[0] == "ok"
    for i in range(10050):
        auth.allow_submit(f"client:{i}", now=1000.0 + i / 1000)
    assert len(auth._hits) <= 10001
