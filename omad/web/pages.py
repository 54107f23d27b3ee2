"""The Create page, the job page, a submission's waiting page and the analytics page.

Plain HTML forms that work with JavaScript off (a form POST, then a redirect);
with it on, the vendored script adds drag and drop, an upload progress bar and
live updates. The HTML is the templates' (:mod:`omad.web.templating`), in the
reader's language. Submissions go through :func:`omad.web.api.submit`, the
same path as ``POST /api/jobs``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..brief import MOTIONS, brief_models
from ..daemon import retry_job
from ..errors import OmadError
from ..i18n import N_
from ..messages import localised_error, what_to_do
from ..tts.voices import list_voices
from .analytics import analytics_charts, analytics_view
from .api import submit
from .jobs import job_detail, job_log
from .present import present_job
from .responses import client, nav_for, principal, query_int, text
from .state import CSRF_STALE, csrf_refused
from .submit import UploadRefused

if TYPE_CHECKING:
    from .state import AppState

__all__ = ["page_routes", "KINDS", "FORMATS", "form_kinds"]


def form_kinds() -> tuple[tuple[str, str], ...]:
    """The Create form's kinds (value, label): one per brief model, as it labels itself; translated when shown."""
    return (("", N_("let omad decide from the files")),
            *((kind, model.label or kind) for kind, model in brief_models().items()))


#: The Create form's kinds when omad started (the form itself asks :func:`form_kinds` each time).
KINDS = form_kinds()
#: The Create form's picture formats.
FORMATS = (("", N_("default")), ("landscape", N_("landscape")), ("vertical", N_("vertical")),
           ("square", N_("square")))


def _fact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _log_line(record: dict[str, Any]) -> str:
    skip = {"timestamp", "level", "event", "job", "logger"}
    rest = " ".join(f"{k}={_fact(v)}" for k, v in record.items() if k not in skip)
    return f'{record.get("timestamp", "")} {record.get("level", "")} {record.get("event", "")} {rest}'


class _Pages:
    """The pages' handlers (status, jobs, create, settings), over one application state."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def create_form(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        return self.state.pages.page(request, "create.html", status=status,
                                     nav=nav_for(self.state.auth, principal(request)), error=error,
                                     limits=self.state.config.web, kinds=form_kinds(), formats=FORMATS,
                                     motions=MOTIONS, voices=list_voices(self.state.config))

    def create_page(self, request: Request) -> Response:
        return self.create_form(request)

    async def create(self, request: Request) -> Response:
        p = principal(request)
        wants_json = "application/json" in request.headers.get("accept", "")
        wait = self.state.auth.allow_submit(p.key if p.name else f"client:{client(request)}")
        try:
            if wait is not None:
                limit = self.state.config.web.submit_per_minute
                raise UploadRefused(f"too many submissions: web.submit_per_minute is {limit}. "
                                    f"Try again in {wait:.0f} s.", field="files", status=429)
            result = await submit(self.state, request)
        except UploadRefused as err:
            if wants_json:
                return JSONResponse({"error": err.message, "field": err.field, "status": err.status},
                                    status_code=err.status)
            return self.create_form(request, err.message, err.status)
        body = result.body()
        if wants_json:
            return JSONResponse(body, status_code=202)
        return RedirectResponse(body["page"], 303)

    def job_page(self, request: Request) -> Response:
        job = self.state.journal.get(request.path_params["job_id"])
        if job is None:
            return text(404, "no such job: see / for the status page\n")
        detail = job_detail(self.state, job)
        lang = self.state.pages.language(request)
        if detail["error"]:
            detail["error"]["message_local"] = localised_error(detail["error"], lang)
            detail["error"]["what_to_do_local"] = what_to_do(job.id, lang, retrying=job.status == "retry_wait")
        # A retried job stays live until the job its inputs became appears.
        final = detail["status"] in ("done", "failed", "duplicate") and not (detail["retried"]
                                                                             and not detail["retried_as"])
        present = present_job(detail, job, self.state.pages.gettext(lang), self.state.posters.has_visual(job))
        log_text = "\n".join(_log_line(r) for r in job_log(self.state, job))
        return self.state.pages.page(request, "job.html", detail=detail, present=present, log_text=log_text,
                                     refresh=0 if final else 2, nav=nav_for(self.state.auth, principal(request)))

    async def retry_form(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        if csrf_refused(self.state, request, str(form.get("csrf") or "")):
            return text(403, CSRF_STALE + "\n")
        return await run_in_threadpool(self._retry, request)

    async def cancel_form(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        if csrf_refused(self.state, request, str(form.get("csrf") or "")):
            return text(403, CSRF_STALE + "\n")
        job_id = request.path_params["job_id"]
        try:
            await run_in_threadpool(self.state.controls.cancel, job_id)
        except OmadError as err:
            return text(409, f"{err}\n")
        return RedirectResponse(f"/jobs/{job_id}", 303)

    def _retry(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if self.state.journal.get(job_id) is None:
            return text(404, "no such job\n")
        try:
            retry_job(self.state.journal, self.state.paths, job_id)
        except OmadError as err:
            return text(409, f"{err}\n")
        self.state.controls.wake()
        return RedirectResponse(f"/jobs/{job_id}", 303)

    def submission_page(self, request: Request) -> Response:
        sub = self.state.submissions.get(request.path_params["sid"])
        if sub is None:
            return text(404, "no such submission (the daemon restarted?): see / for the status page\n")
        job = self.state.submissions.job_for(sub)
        if job is not None:
            return RedirectResponse(f"/jobs/{job.id}", 303)
        return self.state.pages.page(request, "submitted.html", sources=sub.sources, refresh=2,
                                     nav=nav_for(self.state.auth, principal(request)))

    def analytics_page(self, request: Request) -> Response:
        view = analytics_view(self.state, max(1, min(query_int(request, "days", 30), 366)))
        charts = analytics_charts(view, self.state.pages.gettext(self.state.pages.language(request)))
        return self.state.pages.page(request, "analytics.html", view=view, charts=charts,
                                     nav=nav_for(self.state.auth, principal(request)))

    def analytics_json(self, request: Request) -> Response:
        return JSONResponse(analytics_view(self.state, max(1, min(query_int(request, "days", 30), 366))),
                            headers={"Cache-Control": "no-store"})


def page_routes(state: AppState) -> list[BaseRoute]:
    h = _Pages(state)
    return [
        Route("/analytics", h.analytics_page, methods=["GET"]),
        Route("/api/analytics", h.analytics_json, methods=["GET"]),
        Route("/create", h.create_page, methods=["GET"]),
        Route("/create", h.create, methods=["POST"]),
        Route("/jobs/{job_id}", h.job_page, methods=["GET"]),
        Route("/jobs/{job_id}/retry", h.retry_form, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", h.cancel_form, methods=["POST"]),
        Route("/submissions/{sid}", h.submission_page, methods=["GET"]),
    ]


