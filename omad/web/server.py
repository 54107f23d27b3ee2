"""The web server's life: uvicorn in a background thread of the daemon's process.

The listening socket is bound here, before the thread starts, so a taken port
or a bad address is a :class:`~omad.errors.ConfigError` naming the option, raised
in the caller, not a log line in a thread nobody watches. uvicorn gets no
signal handlers (the daemon owns SIGTERM) and no logging configuration of its
own (omad's JSON log is the only log).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import uvicorn

from ..errors import ConfigError
from ..lanes import Lane
from ..log import get_logger
from ..metrics import Metrics
from .app import build_app, readiness
from .auth import Auth
from .files import PosterCache
from .guard import ConnectionGuard, InFlightLimit, guarded_protocol
from .queue import ControlsCollector, queue_view
from .state import AppState, Controls
from .status import DEFAULT_JOBS, status_view
from .submit import Submissions
from .templating import Pages

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["StatusServer", "start_server"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"cannot serve the web UI and metrics on {host}:{port} ({e.strerror or e}). "
            "Set web.port (formerly metrics.port) to a free port (0 picks one), or web.enabled: false."
        ) from e
    sock.set_inheritable(False)
    return sock


class StatusServer:
    """The HTTP side of one daemon: an ASGI app served by uvicorn in a background thread."""

    def __init__(self, daemon: Daemon, host: str, port: int) -> None:
        self.daemon = daemon
        self.log = get_logger("omad.web")
        self.sock = _bind(host, port)
        self.metrics = Metrics(daemon)
        self.metrics.registry.register(ControlsCollector(daemon))
        self.posters = PosterCache(daemon.paths.state / "posters", daemon.paths.outbox)
        self.auth = Auth(daemon.config.web, daemon.paths.state, self.metrics.registry, host)
        self.submissions = Submissions(daemon)
        self.state = AppState(
            journal=daemon.journal, paths=daemon.paths, config=daemon.config, auth=self.auth,
            submissions=self.submissions, posters=self.posters, metrics=self.metrics,
            pages=Pages(daemon.config.web.language), log=self.log,
            controls=Controls(wake=daemon.wake.set, cancel=daemon.cancel, healthy=daemon.healthy,
                              heartbeat_age=lambda: time.monotonic() - daemon.heartbeat,
                              readiness=lambda: readiness(daemon), status=self.view, pause=daemon.pause,
                              resume=daemon.resume, queue=lambda: queue_view(daemon),
                              queue_reasons=lambda: daemon.queue_reasons,
                              cpu_slot=lambda holder: daemon.lanes.lane(Lane.CPU).slot(holder)),
        )
        self.app = build_app(self.state)
        web = daemon.config.web
        # Slow clients and floods: see guard.py. X-Forwarded-* only from web.trusted_proxies (uvicorn's default
        # believes any local client).
        self.guard = ConnectionGuard(web, self.metrics.registry)
        app = InFlightLimit(self.app, web.max_requests, self.metrics.registry)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", http=guarded_protocol(self.guard),
            loop="asyncio", ws="none", timeout_keep_alive=30, timeout_graceful_shutdown=3, server_header=False,
            date_header=True, proxy_headers=bool(web.trusted_proxies),
            forwarded_allow_ips=list(web.trusted_proxies) or None, h11_max_incomplete_event_size=16 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.sock]},
                                        name="omad-http", daemon=True)

    @property
    def host(self) -> str:
        return str(self.sock.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def view(self, limit: int = DEFAULT_JOBS) -> dict[str, Any]:
        return status_view(self.daemon, self.metrics, self.posters, limit)

    def start(self) -> StatusServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.shutdown()
                raise ConfigError(f"the web server on {self.url} did not start; see the log above.")
            time.sleep(0.01)
        self.log.info("http_serving", url=self.url, metrics=f"{self.url}/metrics",
                      tokens_required=self.auth.required)
        return self

    def shutdown(self) -> None:
        """Stop serving and release the port (safe to call twice)."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self.sock.close()
        self.metrics.detach()


def start_server(daemon: Daemon, host: str | None = None, port: int | None = None) -> StatusServer:
    """Serve ``daemon``'s web side on ``web.host:web.port`` (0 = a free port)."""
    cfg = daemon.config.web
    return StatusServer(daemon, cfg.host if host is None else host, cfg.port if port is None else port).start()
