"""The web server's connections: deadlines for headers and bodies, and caps per client and in all.

uvicorn (0.55, h11) has no deadline for a request's headers: a client that
sends half a request line keeps its connection, and a file descriptor, for
ever. Its ``limit_concurrency`` cannot help, since it counts the very
connections that are stuck (a flood of them turns every request, ``/healthz``
included, into a 503). So omad serves with :func:`guarded_protocol`, uvicorn's
own h11 protocol with these rules added:

- a connection must finish a request's headers within
  ``web.header_timeout_seconds`` of opening (or of its next request's first
  byte); a body may pause for at most ``web.body_idle_seconds`` between
  bytes while omad is reading it;
- one client address may hold ``web.max_connections_per_client`` connections
  (a trusted proxy, ``web.trusted_proxies``, is not limited: every client
  comes through it);
- past ``web.max_connections`` in all, the oldest connection still waiting
  for its headers is closed to make room; when none is waiting, the new one
  is refused. A slow-header flood thus never stops a well-behaved client,
  ``/healthz`` included.

Each refusal or closed connection is counted in
``omad_web_connections_closed_total{reason}``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter as Tally
from typing import Any

import h11
from prometheus_client import CollectorRegistry, Counter
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import WebConfig

__all__ = ["ConnectionGuard", "GuardedH11", "InFlightLimit", "guarded_protocol", "REASONS", "trusted"]

#: why a connection was closed: the ``reason`` label of omad_web_connections_closed_total
REASONS = ("header_timeout", "body_timeout", "per_client", "evicted", "full")


def trusted(ip: str | None, proxies: list[str]) -> bool:
    """Whether ``ip`` is one of ``web.trusted_proxies`` (addresses or networks)."""
    if not ip or not proxies:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in proxies:
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


class ConnectionGuard:
    """What every connection of one server shares: who is connected, and who is still sending headers."""

    def __init__(self, web: WebConfig, registry: CollectorRegistry | None) -> None:
        self.web = web
        self.per_client: Tally[str] = Tally()
        self.open: set[GuardedH11] = set()
        #: connections waiting for their headers, oldest first (dicts keep insertion order)
        self.waiting: dict[GuardedH11, None] = {}
        self.closed = Counter("omad_web_connections_closed_total",
                              "Web connections closed or refused: header or body deadline, caps",
                              ["reason"], registry=registry)
        for reason in REASONS:
            self.closed.labels(reason)

    def admit(self, conn: GuardedH11) -> str | None:
        """Register ``conn``; the reason to refuse it, or None."""
        ip = conn.peer
        if ip is not None and not trusted(ip, self.web.trusted_proxies) \
                and self.per_client[ip] >= self.web.max_connections_per_client:
            return "per_client"
        if len(self.open) >= self.web.max_connections:
            oldest = next(iter(self.waiting), None)
            if oldest is None:
                return "full"
            oldest.drop("evicted")
        self.open.add(conn)
        if ip is not None:
            self.per_client[ip] += 1
        return None

    def release(self, conn: GuardedH11) -> None:
        if conn in self.open:
            self.open.discard(conn)
            if conn.peer is not None:
                self.per_client[conn.peer] -= 1
                if self.per_client[conn.peer] <= 0:
                    del self.per_client[conn.peer]
        self.waiting.pop(conn, None)


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and caps of :class:`ConnectionGuard` (see the module doc)."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peer: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.peer = self.client[0] if self.client else None
        refused = self.guard.admit(self)
        if refused is not None:
            self.guard.closed.labels(refused).inc()
            transport.close()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # part of a request line or headers: the deadline runs (from the first byte)
            if self._header_timer is None:
                self._await_headers()
            return
        self._headers_done()
        if state is h11.SEND_BODY:
            self._arm_body()
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # -- timers ------------------------------------------------------------------------------------------

    def _await_headers(self) -> None:
        self.guard.waiting[self] = None
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.guard.web.header_timeout_seconds, self._expired,
                                                      "header_timeout")

    def _headers_done(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _arm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.guard.web.body_idle_seconds, self._body_expired)

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.flow.read_paused:  # omad has not read what came yet: the client is not the slow one
            self._arm_body()
            return
        self._expired("body_timeout")

    def _expired(self, reason: str) -> None:
        if reason == "header_timeout":
            self._header_timer = None
        self.drop(reason)

    def _cancel(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def drop(self, reason: str) -> None:
        """Close this connection (a deadline passed, or it made room for another)."""
        self._cancel()
        self.guard.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.guard.closed.labels(reason).inc()
            self.transport.close()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11]:
    """A protocol class for ``uvicorn.Config(http=...)`` bound to ``guard``."""
    return type("OmadH11Protocol", (GuardedH11,), {"guard": guard})


class InFlightLimit:
    """At most ``web.max_requests`` requests handled at once; more get 503 with Retry-After (``/healthz`` always
    answers: it is how a supervisor tells a busy omad from a dead one)."""

    def __init__(self, app: Any, limit: int, registry: CollectorRegistry | None) -> None:
        self.app = app
        self.limit = limit
        self.running = 0
        self.refused = Counter("omad_web_busy_total", "Requests answered 503 because web.max_requests were running",
                               registry=registry)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") == "/healthz":
            await self.app(scope, receive, send)
            return
        if self.running >= self.limit:
            self.refused.inc()
            body = b"omad is busy (web.max_requests requests are running); try again in a moment.\n"
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        self.running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running -= 1
