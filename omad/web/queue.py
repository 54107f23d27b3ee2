"""The queue's controls on the web: pause and resume, a job's priority; their API, forms and status section.

``POST /api/queue/pause`` (``{"now": true}`` to stop running stages too),
``POST /api/queue/resume``, ``GET /api/queue``, ``POST /api/jobs/{id}/priority``
(``{"priority": "high"}``); the status page's Pause/Resume buttons and the job
page's priority form (``templates/_queue.html``, ``job.html``) post to ``/queue/pause``, ``/queue/resume`` and
``/jobs/{id}/priority`` and come back to the page. A session needs its CSRF
token (the ``X-CSRF-Token`` header or the form's ``csrf`` field), as every
other form. All of it goes through the daemon's :meth:`~omad.daemon.Daemon.pause`,
which writes the journal, the same row ``omad pause`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..controls import parse_priority, priority_label
from .responses import client, principal, text
from .state import CSRF_STALE, csrf_refused

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .state import AppState

__all__ = ["queue_routes", "queue_view", "ControlsCollector"]


def queue_view(daemon: Daemon, limit: int = 50) -> dict[str, Any]:
    """The controls as plain data: paused or not, each lane's windows and state, why queued jobs wait."""
    reasons = dict(daemon.queue_reasons)
    return {**daemon.controls.view(), "waiting": [{"id": k, "reason": v} for k, v in sorted(reasons.items())][:limit],
            "watch": {"mode": daemon.watcher.mode, "requested": daemon.watcher.requested,
                      "reason": daemon.watcher.mode_reason},
            "notify": _targets(daemon)}


def _targets(daemon: Daemon) -> list[dict[str, Any]]:
    """The Apprise targets as a page may show them: scheme and host only (the URL holds the secrets)."""
    if not daemon.config.notify.apprise:
        return []
    from ..notify import mask_url

    return [{"target": mask_url(t.url), "events": list(t.events)} for t in daemon.config.notify.apprise]


class ControlsCollector:
    """``omad_queue_paused`` (1 while paused), ``omad_lane_open{lane}`` (0 outside its window or while paused) and
    ``omad_jobs_held{reason}`` (queued jobs that may not start now), read at scrape time."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        paused = GaugeMetricFamily("omad_queue_paused", "1 while the queue is paused (omad pause)")
        paused.add_metric([], 1.0 if self.daemon.controls.paused else 0.0)
        yield paused
        lanes = GaugeMetricFamily("omad_lane_open", "1 when the lane may start stages (inside its windows, not "
                                                    "paused)", labels=["lane"])
        for gate in self.daemon.controls.lanes():
            lanes.add_metric([gate.lane], 0.0 if gate.reason else 1.0)
        yield lanes
        held = GaugeMetricFamily("omad_jobs_held", "queued jobs that may not start now", labels=["reason"])
        counts = {"paused": 0, "window": 0}
        for why in list(self.daemon.queue_reasons.values()):
            counts["paused" if why == "paused" else "window"] += 1
        for reason, n in counts.items():
            held.add_metric([reason], float(n))
        yield held


def _error(status: int, message: str, field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": message, "status": status}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


class _Queue:
    """The queue page's and the controls' handlers (pause, priorities), over one application state."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def who(self, request: Request) -> str:
        return f"web:{principal(request).name or client(request)}"

    def get_queue(self, request: Request) -> Response:
        return JSONResponse(self.state.controls.queue(), headers={"Cache-Control": "no-store"})

    async def api_pause(self, request: Request) -> Response:
        if csrf_refused(self.state, request, request.headers.get("x-csrf-token")):
            return _error(403, "the X-CSRF-Token header is missing or stale. Reload the page.", "X-CSRF-Token")
        try:
            body = await _json_body(request)
        except ValueError as e:
            return _error(400, f"the body is not a JSON object ({e}). Send {{\"now\": true}} or nothing.", "now")
        now = body.get("now", request.query_params.get("now") in ("1", "true", "yes"))
        if not isinstance(now, bool):
            return _error(400, f"'now' must be true or false, not {now!r}.", "now")
        await run_in_threadpool(self.state.controls.pause, now, self.who(request))
        self.state.log.info("web_pause", now=now, token=principal(request).name, client=client(request))
        return JSONResponse(self.state.controls.queue(), status_code=202)

    async def api_resume(self, request: Request) -> Response:
        if csrf_refused(self.state, request, request.headers.get("x-csrf-token")):
            return _error(403, "the X-CSRF-Token header is missing or stale. Reload the page.", "X-CSRF-Token")
        await run_in_threadpool(self.state.controls.resume, self.who(request))
        self.state.log.info("web_resume", token=principal(request).name, client=client(request))
        return JSONResponse(self.state.controls.queue(), status_code=202)

    async def api_priority(self, request: Request) -> Response:
        if csrf_refused(self.state, request, request.headers.get("x-csrf-token")):
            return _error(403, "the X-CSRF-Token header is missing or stale. Reload the page.", "X-CSRF-Token")
        try:
            body = await _json_body(request)
            value = parse_priority(body.get("priority"))
        except ValueError as e:
            return _error(400, f"{e}. Send {{\"priority\": \"high\"}} (low, normal, high or an integer).",
                          "priority")
        return await run_in_threadpool(self._set_priority, request, value, True)

    def _set_priority(self, request: Request, value: int, as_json: bool) -> Response:
        job_id = request.path_params["job_id"]
        job = self.state.journal.get(job_id)
        if job is None:
            return _error(404, f"no job '{job_id}'. See GET /api/jobs.", "id") if as_json else \
                text(404, "no such job\n")
        self.state.journal.update(job_id, priority=value)
        self.state.controls.wake()
        self.state.log.info("web_priority", job=job_id, priority=value, token=principal(request).name,
                            client=client(request))
        if as_json:
            return JSONResponse({"id": job_id, "priority": value, "label": priority_label(value),
                                 "url": f"/api/jobs/{job_id}"}, status_code=202)
        return RedirectResponse(f"/jobs/{job_id}", 303)

    async def form_action(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        if csrf_refused(self.state, request, str(form.get("csrf") or "")):
            return text(403, CSRF_STALE + "\n")
        path = request.url.path
        if path == "/queue/pause":
            await run_in_threadpool(self.state.controls.pause, bool(form.get("now")), self.who(request))
        elif path == "/queue/resume":
            await run_in_threadpool(self.state.controls.resume, self.who(request))
        else:
            try:
                value = parse_priority(form.get("priority"))
            except ValueError as e:
                return text(400, f"{e}.\n")
            return await run_in_threadpool(self._set_priority, request, value, False)
        return RedirectResponse("/", 303)


def queue_routes(state: AppState) -> list[BaseRoute]:
    h = _Queue(state)
    return [
        Route("/api/queue", h.get_queue, methods=["GET"]),
        Route("/api/queue/pause", h.api_pause, methods=["POST"]),
        Route("/api/queue/resume", h.api_resume, methods=["POST"]),
        Route("/api/jobs/{job_id}/priority", h.api_priority, methods=["POST"]),
        Route("/queue/pause", h.form_action, methods=["POST"]),
        Route("/queue/resume", h.form_action, methods=["POST"]),
        Route("/jobs/{job_id}/priority", h.form_action, methods=["POST"]),
    ]


