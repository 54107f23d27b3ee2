"""The ASGI application: routes, the token gate, pages, outbox files and posters.

Endpoints that read the journal are plain functions (Starlette runs them in its
thread pool: the journal is blocking SQLite); only form and upload parsing is
async. Every response names what to do when it refuses something. The REST
API lives in :mod:`omad.web.api`, the Create, job and analytics pages in
:mod:`omad.web.pages`, shared answers in :mod:`omad.web.responses`; who may
do what is decided once, in the gate below, with :mod:`omad.web.auth`.
"""

from __future__ import annotations

import re
import shutil
import time
from importlib.resources import files as package_files
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import is_loopback
from ..media.ffmpeg import FFMPEG, FFPROBE
from .api import api_routes
from .auth import SESSION_COOKIE, Principal
from .files import PathRefused, resolve_outbox_path
from .pages import page_routes
from .queue import queue_routes
from .responses import client, file_response, nav_for, principal, query_int, text
from .scopes import required_scope
from .state import CSRF_STALE, AppState, csrf_refused
from .status import DEFAULT_JOBS
from .storyboard import storyboard_routes
from .voices import voice_routes

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["build_app", "readiness"]

_JOB_ID = re.compile(r"^[0-9a-f]{8,64}(?:-[0-9]{1,6})?$")
_PUBLIC = ("/healthz", "/login", "/static/omad.js", "/favicon.ico")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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
    # Paused is still ready: drops are taken in and journaled; the line says why nothing starts.
    state = daemon.controls.state
    checks.append(("queue", True, "running" if not state.paused else
                   f"PAUSED since {time.strftime('%Y-%m-%d %H:%M', time.localtime(state.since or 0))}"
                   + (f" by {state.by}" if state.by else "") + ": no stage starts until `omad resume`"))
    return checks


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")


def _needs_token_always(path: str) -> bool:
    # The originals of a failed drop may hold exactly what the guardrails blocked.
    return path.startswith("/outbox/failed/") and not path.endswith("/error.json")


def _loopback_host(request: Request) -> bool:
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name)


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and site in ("same-origin", "none")):
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


class _Gate(BaseHTTPMiddleware):
    """Decides who the request is from and whether they may have what they ask for."""

    def __init__(self, app: Any, state: AppState) -> None:
        super().__init__(app)
        self.state = state

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        auth = self.state.auth
        path = request.url.path
        who = client(request)
        header = request.headers.get("authorization")
        found: Principal | None = None
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                auth.failed("malformed", who, path)
                return self._refuse(request, 401, "the Authorization header must be 'Bearer TOKEN'.")
            state, name = auth.check_token(token.strip())
            if state == "revoked":
                auth.failed("revoked", who, path, name)
                return self._refuse(request, 403, f"the token '{name}' was revoked. Ask for a new one "
                                                  "(`omad token add NAME`).")
            if state != "ok":
                auth.failed("unknown", who, path)
                return self._refuse(request, 401, "this token is not known. Check it, or make one with "
                                                  "`omad token add NAME`.")
            found = Principal(name, "bearer", scopes=auth.scopes(name))
        elif SESSION_COOKIE in request.cookies:
            sid = request.cookies[SESSION_COOKIE]
            state, name = auth.session(sid)
            if state == "ok":
                found = Principal(name, "session", sid, scopes=auth.scopes(name))
            elif state == "revoked":
                auth.failed("revoked", who, path, name)
                return self._refuse(request, 403, f"the token '{name}' behind this login was revoked. Log in "
                                                  "with a new one.", clear_cookie=True)
        if not auth.required and path != "/healthz" and not _loopback_host(request):
            # An open server answers only to its loopback names: a web page whose domain an attacker
            # points at 127.0.0.1 (DNS rebinding) must not reach it.
            auth.failed("foreign_host", who, path)
            return self._refuse(request, 421, "this server listens on loopback without tokens and answers only "
                                              "to 127.0.0.1, ::1 or localhost. Use one of those, or set "
                                              "web.require_token: true.")
        public = path in _PUBLIC or (path == "/metrics" and auth.web.metrics_public)
        needs = (auth.required and not public) or _needs_token_always(path)
        if found is None and needs:
            auth.failed("missing", who, path)
            if _wants_html(request) and request.method in _SAFE_METHODS:
                return RedirectResponse("/login?next=" + quote(path + (f"?{request.url.query}"
                                                                       if request.url.query else "")), 303)
            what = "the originals of failed drops need" if _needs_token_always(path) else "this server needs"
            return self._refuse(request, 401, f"{what} a token: send 'Authorization: Bearer TOKEN' (make one "
                                              "with `omad token add NAME`), or log in at /login.")
        p = found or Principal(None, "open")
        if request.method not in _SAFE_METHODS and p.via != "bearer" and not _same_origin(request):
            auth.failed("cross_site", who, path)
            return self._refuse(request, 403, "cross-site requests are refused. Use the page itself, or the API "
                                              "with a Bearer token.")
        wanted = required_scope(request.method, path)
        if found is not None and wanted is not None and wanted not in p.scopes:
            auth.failed("scope", who, path, p.name)
            has = ", ".join(sorted(p.scopes)) or "nothing"
            return self._refuse(request, 403, f"the token '{p.name}' may not do this: it needs the '{wanted}' "
                                              f"scope and has {has}. Use a token made with "
                                              f"`omad token add NAME --scope {wanted}`.")
        request.state.principal = p
        return await call_next(request)

    def _refuse(self, request: Request, status: int, message: str, clear_cookie: bool = False) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="omad"'} if status == 401 else {}
        if request.url.path.startswith("/api/"):
            resp: Response = JSONResponse({"error": message, "status": status}, status_code=status,
                                          headers={"Cache-Control": "no-store", **headers})
        else:
            resp = text(status, message + "\n", headers)
        if clear_cookie:
            resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp


# -- health, metrics, status ---------------------------------------------------------------------


class _Service:
    """The service endpoints' handlers (metrics, health, files), over one application state."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def metrics(self, request: Request) -> Response:
        return Response(self.state.metrics.render(), media_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    def healthz(self, request: Request) -> Response:
        age = self.state.controls.heartbeat_age()
        if self.state.controls.healthy():
            return text(200, f"ok: the main loop ticked {age:.1f} s ago\n")
        return text(503, f"unhealthy: the main loop last ticked {age:.0f} s ago (stuck or stopped)\n")

    def readyz(self, request: Request) -> Response:
        checks = self.state.controls.readiness()
        failing = [name for name, ok, _ in checks if not ok]
        lines = "\n".join(f"{name}: {'ok' if ok else 'FAIL'}: {message}" for name, ok, message in checks)
        if failing:
            return text(503, f"not ready: {', '.join(failing)}\n{lines}\n")
        return text(200, f"ready\n{lines}\n")

    def status_page(self, request: Request) -> Response:
        refresh = max(0, min(query_int(request, "refresh", 2), 3600))
        view = self.state.controls.status(query_int(request, "limit", DEFAULT_JOBS))
        return self.state.pages.page(request, "status.html", view=view, refresh=refresh,
                                     nav=nav_for(self.state.auth, principal(request)))

    def api_status(self, request: Request) -> Response:
        return JSONResponse(self.state.controls.status(query_int(request, "limit", DEFAULT_JOBS)),
                            headers={"Cache-Control": "no-store"})

    def outbox(self, request: Request) -> Response:
        try:
            path = resolve_outbox_path(self.state.paths.outbox, request.scope["raw_path"].decode("latin-1")
                                       .split("?", 1)[0][len("/outbox/"):])
        except PathRefused as e:
            return text(403, f"refused: {e}\n")
        except OSError:
            return text(404, "no such file in the outbox\n")
        # The gate checks the URL; this checks where it really leads (a link inside the outbox, say).
        failed = (self.state.paths.outbox / "failed").resolve()
        if path.is_relative_to(failed) and path.name != "error.json" and principal(request).via == "open":
            self.state.auth.failed("missing", client(request), request.url.path)
            return text(401, "the originals of failed drops need a token: send 'Authorization: Bearer TOKEN' "
                             "or log in at /login.\n", {"WWW-Authenticate": 'Bearer realm="omad"'})
        return file_response(request, path, cache="no-cache")

    def poster(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if not _JOB_ID.fullmatch(job_id):
            return text(404, "no such job\n")
        job = self.state.journal.get(job_id)
        found = self.state.posters.poster_for(job) if job is not None else None
        if found is None:
            return text(404, "this job has no picture to show\n")
        return file_response(request, found, cache="max-age=300")

    def favicon(self, request: Request) -> Response:
        return Response(b"", status_code=204, media_type="image/x-icon")

    def script(self, request: Request) -> Response:
        body = package_files("omad.web").joinpath("static/omad.js").read_bytes()
        return Response(body, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "max-age=60"})

    def login_form(self, request: Request) -> Response:
        nxt = _local_next(request.query_params.get("next"))
        return self.state.pages.page(request, "login.html", next_path=nxt, error=None,
                                     required=self.state.auth.required)

    async def login(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        token = str(form.get("token") or "").strip()
        nxt = _local_next(str(form.get("next") or "/"))
        sid = self.state.auth.open_session(token) if token else None
        if sid is None:
            self.state.auth.failed("login", client(request), "/login")
            _ = self.state.pages.gettext(self.state.pages.language(request))
            return self.state.pages.page(request, "login.html", status=401, next_path=nxt,
                                         required=self.state.auth.required,
                                         error=_("That token is not valid (unknown or revoked). Check it, or make "
                                                 "one with `omad token add NAME`."))
        resp = RedirectResponse(nxt, 303)
        resp.set_cookie(SESSION_COOKIE, sid, max_age=int(self.state.auth.web.session_hours * 3600), path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https" or self.state.auth.web.public_url.startswith("https:"))
        return resp

    async def logout(self, request: Request) -> Response:
        p = principal(request)
        form = await request.form(max_files=0, max_fields=4)
        if csrf_refused(self.state, request, str(form.get("csrf") or "")):
            return text(403, CSRF_STALE + "\n")
        if p.session:
            self.state.auth.close_session(p.session)
        resp = RedirectResponse("/login", 303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp


def _routes(state: AppState) -> list[BaseRoute]:
    h = _Service(state)
    return [
        Route("/metrics", h.metrics),
        Route("/healthz", h.healthz),
        Route("/readyz", h.readyz),
        Route("/", h.status_page),
        Route("/index.html", h.status_page),
        Route("/api/status", h.api_status),
        Route("/outbox/{path:path}", h.outbox),
        Route("/poster/{job_id:path}", h.poster),
        Route("/favicon.ico", h.favicon),
        Route("/static/omad.js", h.script),
        Route("/login", h.login_form, methods=["GET"]),
        Route("/login", h.login, methods=["POST"]),
        Route("/logout", h.logout, methods=["POST"]),
        *api_routes(state),
        *queue_routes(state),
        *page_routes(state),
        *voice_routes(state),
        *storyboard_routes(state),
    ]


def _local_next(value: str | None) -> str:
    # Only a path on this server: never an open redirect to elsewhere.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def build_app(state: AppState) -> Starlette:
    async def not_found(request: Request, exc: Exception) -> Response:
        return text(404, "not found: see / for the status page\n")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        allow = "GET, HEAD" if not request.url.path.startswith("/api/") else "GET, HEAD, POST"
        return text(405, f"{request.method} is not allowed here (allowed: {allow})\n", {"Allow": allow})

    async def server_error(request: Request, exc: Exception) -> Response:
        state.log.error("http_error", path=request.url.path, error=repr(exc))
        return text(500, f"internal error: {exc!r}. This is a bug in omad; please report it with the log.\n")

    return Starlette(
        routes=_routes(state),
        middleware=[Middleware(_Gate, state=state)],
        exception_handlers={404: not_found, 405: not_allowed, 500: server_error},
    )
