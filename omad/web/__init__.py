"""The daemon's HTTP side: metrics, health, the status page, outbox files and posters.

One ``ThreadingHTTPServer`` in a background thread (``metrics.host:metrics.port``,
127.0.0.1:9464 by default) serves:

- ``/metrics``      Prometheus exposition of this daemon's registry (:mod:`omad.metrics`)
- ``/healthz``      200 while the main loop's heartbeat is fresh, else 503
- ``/readyz``       200 when the journal commits a write, ffmpeg and ffprobe are found and
                    the inbox is watched; 503 naming each failing check
- ``/``             the status page: server-rendered HTML that refreshes itself, no JavaScript
- ``/api/status``   the same view as JSON
- ``/outbox/<path>`` read-only files from the outbox (with byte ranges, for video)
- ``/poster/<job>`` a job's published ``.jpg``, else a frame of its video, cached in the state dir

Owns no job state: every view is read from the journal, the lanes and the outbox
at request time. Never writes anywhere but the poster cache, never serves a path
outside the outbox (``..``, absolute paths, dotfiles and symlinks that leave it
are refused), and never puts user-derived text (file names!) into HTML unescaped.
The file rules and posters live in :mod:`omad.web.files`, the page in
:mod:`omad.web.page`; this module speaks HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from .. import __version__
from ..errors import ConfigError
from ..ffmpeg import FFMPEG, FFPROBE
from ..log import get_logger
from ..metrics import Metrics
from .files import PathRefused, PosterCache, RangeNotSatisfiable, content_type, parse_range, resolve_outbox_path
from .page import DEFAULT_JOBS, render_status_page, status_view

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = [
    "StatusServer",
    "start_server",
    "readiness",
    "PathRefused",
    "resolve_outbox_path",
    "parse_range",
    "status_view",
    "render_status_page",
    "PosterCache",
]

_JOB_ID = re.compile(r"^[0-9a-f]{8,64}(?:-[0-9]{1,6})?$")

_CHUNK = 256 * 1024
# The page needs nothing but its own inline style and posters: no script, no frame, nothing remote.
_PAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'"


def readiness(daemon: Daemon) -> list[tuple[str, bool, str]]:
    """(check, ok, message) for /readyz: journal, ffmpeg, ffprobe, inbox."""
    checks: list[tuple[str, bool, str]] = []
    journal_ok = daemon.journal.writable()
    checks.append(("journal", journal_ok, f"{daemon.journal.path} commits writes" if journal_ok else
                   f"{daemon.journal.path} cannot commit a write (read-only or full file system, or an "
                   "immutable file); jobs cannot move until it can"))
    for name, tool in (("ffmpeg", FFMPEG), ("ffprobe", FFPROBE)):
        found = shutil.which(tool)
        checks.append((name, found is not None, found or f"{tool} not found on PATH: sudo apt-get install ffmpeg"))
    watched = bool(daemon.inbox_ok and daemon.watcher.watching)
    checks.append(("inbox", watched, f"{daemon.paths.inbox} is watched" if watched else
                   f"{daemon.paths.inbox} is not watched (missing, unreadable or an unmounted share?)"))
    return checks



# -- the server --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = f"omad/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds an idle keep-alive connection may hold a server thread
    app: StatusServer  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        self.app.log.debug("http", client=self.client_address[0], request=format % args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch(head=True)

    def _method_not_allowed(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: only GET and HEAD\n", "text/plain; charset=utf-8",
                   head=False, headers={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _text(self, status: int, text: str, *, head: bool) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", head=head,
                   headers={"Cache-Control": "no-store"})

    def _dispatch(self, head: bool) -> None:
        try:
            url = urlsplit(self.path)
            path = url.path
            query = parse_qs(url.query)
            if path == "/metrics":
                self._send(HTTPStatus.OK, self.app.metrics.render(), CONTENT_TYPE_LATEST, head=head,
                           headers={"Cache-Control": "no-store"})
            elif path == "/healthz":
                self._healthz(head)
            elif path == "/readyz":
                self._readyz(head)
            elif path in ("/", "/index.html"):
                self._page(query, head)
            elif path == "/api/status":
                body = json.dumps(self.app.view(_int(query, "limit", DEFAULT_JOBS)), indent=1, default=str).encode()
                self._send(HTTPStatus.OK, body, "application/json", head=head, headers={"Cache-Control": "no-store"})
            elif path.startswith("/outbox/"):
                self._outbox(path[len("/outbox/"):], head)
            elif path.startswith("/poster/"):
                self._poster(unquote(path[len("/poster/"):]), head)
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", head=True)
            else:
                self._text(HTTPStatus.NOT_FOUND, "not found: see / for the status page\n", head=head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a meta refresh mid-video): nothing to answer
        except Exception as e:  # a bug in a view must not kill the server thread
            self.app.log.error("http_error", path=self.path, error=repr(e))
            with contextlib.suppress(OSError):
                self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {e!r}\n", head=head)

    def _healthz(self, head: bool) -> None:
        age = time.monotonic() - self.app.daemon.heartbeat
        if self.app.daemon.healthy():
            self._text(HTTPStatus.OK, f"ok: the main loop ticked {age:.1f} s ago\n", head=head)
        else:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE,
                       f"unhealthy: the main loop last ticked {age:.0f} s ago (stuck or stopped)\n", head=head)

    def _readyz(self, head: bool) -> None:
        checks = readiness(self.app.daemon)
        failing = [name for name, ok, _ in checks if not ok]
        lines = [f"{name}: {'ok' if ok else 'FAIL'}: {message}" for name, ok, message in checks]
        if failing:
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {', '.join(failing)}\n" + "\n".join(lines) + "\n",
                       head=head)
        else:
            self._text(HTTPStatus.OK, "ready\n" + "\n".join(lines) + "\n", head=head)

    def _page(self, query: dict[str, list[str]], head: bool) -> None:
        refresh = max(0, min(_int(query, "refresh", 2), 3600))
        view = self.app.view(_int(query, "limit", DEFAULT_JOBS))
        self._send(HTTPStatus.OK, render_status_page(view, refresh).encode(), "text/html; charset=utf-8", head=head,
                   headers={"Cache-Control": "no-store",
                            "Content-Security-Policy": _PAGE_CSP})

    def _outbox(self, raw: str, head: bool) -> None:
        try:
            path = resolve_outbox_path(self.app.daemon.paths.outbox, raw)
        except PathRefused as e:
            self._text(HTTPStatus.FORBIDDEN, f"refused: {e}\n", head=head)
            return
        except (FileNotFoundError, OSError):
            self._text(HTTPStatus.NOT_FOUND, "no such file in the outbox\n", head=head)
            return
        self._file(path, head, cache="no-cache")

    def _poster(self, job_id: str, head: bool) -> None:
        if not _JOB_ID.fullmatch(job_id):
            self._text(HTTPStatus.NOT_FOUND, "no such job\n", head=head)
            return
        job = self.app.daemon.journal.get(job_id)
        poster = self.app.posters.poster_for(job) if job is not None else None
        if poster is None:
            self._text(HTTPStatus.NOT_FOUND, "this job has no picture to show\n", head=head)
            return
        self._file(poster, head, cache="max-age=300")

    def _file(self, path: Path, head: bool, cache: str) -> None:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError:
            self._text(HTTPStatus.NOT_FOUND, "no such file in the outbox\n", head=head)
            return
        try:
            size = os.fstat(f.fileno()).st_size
            try:
                span = parse_range(self.headers.get("Range"), size)
            except RangeNotSatisfiable:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = span if span is not None else (0, size - 1)
            length = max(0, end - start + 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span is not None else HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", self.date_time_string(int(os.fstat(f.fileno()).st_mtime)))
            self.send_header("Cache-Control", cache)
            self.send_header("X-Content-Type-Options", "nosniff")
            # Failed drops are served as they came: never let one run as a page of this origin.
            self.send_header("Content-Security-Policy", "sandbox")
            if span is not None:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head:
                return
            f.seek(start)
            left = length
            while left > 0:
                block = f.read(min(_CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
        finally:
            f.close()


def _int(query: dict[str, list[str]], key: str, default: int) -> int:
    try:
        return int(query.get(key, [str(default)])[0])
    except ValueError:
        return default


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class StatusServer:
    """The HTTP server of one daemon, running in a background thread."""

    def __init__(self, daemon: Daemon, host: str, port: int) -> None:
        self.daemon = daemon
        self.log = get_logger("omad.web")
        self.metrics = Metrics(daemon)
        self.posters = PosterCache(daemon.paths.state / "posters", daemon.paths.outbox)
        handler = type("OmadHandler", (_Handler,), {"app": self})
        server_cls = _Server6 if ":" in host else _Server
        try:
            self.httpd = server_cls((host, port), handler)
        except OSError as e:
            self.metrics.detach()
            raise ConfigError(
                f"cannot serve metrics and the status page on {host}:{port} ({e.strerror or e}). "
                "Set metrics.port to a free port (0 picks one), or metrics.enabled: false."
            ) from e
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="omad-http", daemon=True)

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def view(self, limit: int = DEFAULT_JOBS) -> dict[str, Any]:
        return status_view(self.daemon, self.metrics, self.posters, limit)

    def start(self) -> StatusServer:
        self._thread.start()
        self.log.info("http_serving", url=self.url, metrics=f"{self.url}/metrics")
        return self

    def shutdown(self) -> None:
        """Stop serving and release the port (safe to call twice)."""
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()
        self.metrics.detach()


def start_server(daemon: Daemon, host: str | None = None, port: int | None = None) -> StatusServer:
    """Serve ``daemon``'s metrics, health and status page on ``metrics.host:metrics.port`` (0 = a free port)."""
    cfg = daemon.config.metrics
    return StatusServer(daemon, cfg.host if host is None else host, cfg.port if port is None else port).start()
