"""The REST API: submit, list, follow, retry and cancel jobs; its OpenAPI schema.

``POST /api/jobs`` takes multipart files and/or a brief (JSON) and answers
``202`` with the job to follow once intake has journaled it (within
``web.submit_wait_seconds``), else with the submission to follow. A bad request
gets a 4xx whose JSON names the field and says what to do; never a 500.
Submissions are limited per token (``web.submit_per_minute``).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..daemon import retry_job
from ..errors import InputError, OmadError, TransientError
from ..journal import JobStatus
from ..routes import ROUTES
from .jobs import job_detail
from .openapi import openapi_schema
from .responses import client, principal, query_int
from .state import csrf_refused
from .submit import Submission, UploadRefused, brief_from_fields, form_fields, validate_brief

if TYPE_CHECKING:
    from .state import AppState

__all__ = ["api_routes", "SubmitResult", "submit", "parse_json_brief"]


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message, "status": status}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def _since(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise UploadRefused(f"'since' must be an ISO 8601 time (2026-01-31T12:00:00Z) or Unix seconds, not "
                            f"'{value}'.", field="since") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


async def _limited_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` (by its Content-Length,
    before a byte of it is read, or while it streams in)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadRefused(f"the brief is {int(declared)} bytes, more than intake.max_brief_bytes ({limit}). "
                            "Send a smaller brief; files go in a multipart upload.", field="brief", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadRefused(f"the brief is more than intake.max_brief_bytes ({limit}) bytes. Send a smaller "
                                "brief; files go in a multipart upload.", field="brief", status=413)
    return bytes(body)


def _depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests lists and objects, counting no further than ``limit + 1`` (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_json_brief(raw: bytes, max_depth: int) -> Any:
    """A JSON brief, or a 400 naming the field: not JSON, or nested deeper than intake.max_brief_depth."""
    try:
        data = json.loads(raw)
    except RecursionError as e:
        raise UploadRefused(f"the brief nests deeper than intake.max_brief_depth ({max_depth}).",
                            field="brief") from e
    except json.JSONDecodeError as e:
        raise UploadRefused(f"the brief is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.",
                            field="brief") from e
    except ValueError as e:  # not UTF-8
        raise UploadRefused("the brief is not valid JSON text (it must be UTF-8).", field="brief") from e
    if _depth(data, max_depth) > max_depth:
        raise UploadRefused(f"the brief nests deeper than intake.max_brief_depth ({max_depth}).", field="brief")
    return data


class SubmitResult:
    """What a submission became: its id, its job once journaled, and whether it was new."""

    def __init__(self, sub: Submission, job: dict[str, Any] | None, new: bool) -> None:
        self.sub, self.job, self.new = sub, job, new

    def body(self) -> dict[str, Any]:
        job_id = self.job["id"] if self.job else None
        return {
            "submission": self.sub.id,
            "id": job_id,
            "status": self.job["status"] if self.job else "submitted",
            "duplicate": not self.new,
            "placed": self.sub.sources,
            "url": f"/api/jobs/{job_id}" if job_id else f"/api/submissions/{self.sub.id}",
            "page": f"/jobs/{job_id}" if job_id else f"/submissions/{self.sub.id}",
        }


async def _read_and_place(state: AppState, request: Request,
                          forms: list[FormData]) -> tuple[Submission, bool]:
    # Every form parsed is put in ``forms`` for the caller to close: its files are spooled to disk.
    web = state.config.web
    csrf = request.headers.get("x-csrf-token")
    ctype = request.headers.get("content-type", "")
    brief: Any = None
    fields: dict[str, str] = {}
    uploads: list[UploadFile] = []
    intake = state.config.intake
    if ctype.startswith("application/json"):
        brief = parse_json_brief(await _limited_body(request, intake.max_brief_bytes), intake.max_brief_depth)
    elif ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form(max_files=web.max_files, max_fields=64)
            forms.append(form)
        except Exception as e:  # python-multipart's errors: too many files, a malformed body (text not echoed)
            raise UploadRefused(f"the form could not be read ({type(e).__name__}): a malformed multipart body, or "
                                f"more than web.max_files ({web.max_files}) files.", field="files") from e
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key not in ("files", "file"):
                    raise UploadRefused(f"files go in the 'files' field, not '{key}'.", field=key)
                if value.filename:
                    uploads.append(value)
            elif key == "brief" and str(value).strip():
                raw = str(value).encode("utf-8", "surrogateescape")
                if len(raw) > intake.max_brief_bytes:
                    raise UploadRefused(f"the brief is {len(raw)} bytes, more than intake.max_brief_bytes "
                                        f"({intake.max_brief_bytes}).", field="brief", status=413)
                brief = parse_json_brief(raw, intake.max_brief_depth)
            elif key == "csrf":
                csrf = csrf or str(value)
            elif key in form_fields():
                fields[key] = str(value)
            else:
                raise UploadRefused(f"unknown field '{key}'. Send 'files', 'brief' (JSON) or the Create form's "
                                    f"fields ({', '.join(form_fields())}).", field=key)
    else:
        raise UploadRefused("send multipart/form-data (files and an optional 'brief' JSON field) or "
                            "application/json (a brief).", field="content-type", status=415)
    if csrf_refused(state, request, csrf):
        raise UploadRefused("the form is stale or came from elsewhere (CSRF check failed). Reload the page.",
                            field="csrf", status=403)
    if brief is None and fields.get("kind"):
        brief = brief_from_fields(fields, [u.filename or "" for u in uploads])
    if len(uploads) > web.max_files:
        raise UploadRefused(f"{len(uploads)} files are more than web.max_files ({web.max_files}).", field="files")

    def place() -> tuple[Submission, bool]:
        with state.submissions.staging() as staging:
            for up in uploads:
                staging.add(up.filename or "", up.file)
            checked = validate_brief(brief, staging.files) if brief is not None else None
            return state.submissions.place(staging, checked)

    return await run_in_threadpool(place)


async def submit(state: AppState, request: Request) -> SubmitResult:
    """Read a submission from ``request`` (multipart or JSON), place it in the inbox, wait for its job.

    The brief comes as JSON (the body, or a multipart ``brief`` field) or as the
    Create page's form fields (``kind``, ``text``, ``prompt``...). With a session
    cookie the CSRF token must come in ``X-CSRF-Token`` or the ``csrf`` field.
    Raises :class:`UploadRefused` for anything wrong with the request (its
    ``status`` is the answer).
    """
    p = principal(request)
    web = state.config.web
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        # A chunked body would be spooled whole before its size is known: ask for the length up front.
        raise UploadRefused("send a Content-Length header (curl, httpx and browsers do).", field="content-length",
                            status=411)
    # The allowance above the limit is for the multipart framing and the brief.
    if int(declared) > web.max_upload_mb * 2**20 + 2**20:
        raise UploadRefused(f"the upload ({int(declared) / 2**20:.0f} MB) is larger than web.max_upload_mb "
                            f"({web.max_upload_mb:.0f} MB). Send fewer or smaller files.", field="files", status=413)
    forms: list[FormData] = []
    try:
        sub, new = await _read_and_place(state, request, forms)
    finally:
        for form in forms:
            await form.close()
    state.controls.wake()
    state.log.info("web_submitted", submission=sub.id, placed=sub.sources, new=new, token=p.name,
                    client=client(request))
    deadline = asyncio.get_running_loop().time() + web.submit_wait_seconds
    while True:
        job = await run_in_threadpool(state.submissions.job_for, sub)
        if job is not None or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.1)
    detail = await run_in_threadpool(job_detail, state, job) if job is not None else None
    return SubmitResult(sub, detail, new)


class _Api:
    """The REST API's handlers, over one application state."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def list_jobs(self, request: Request) -> Response:
        q = request.query_params
        statuses: list[JobStatus] | None = None
        if q.get("status"):
            try:
                statuses = [JobStatus(s) for s in q["status"].split(",")]
            except ValueError:
                return _error(400, f"'status' must be one or more of {', '.join(s.value for s in JobStatus)} "
                                   f"(comma-separated), not '{q['status']}'.", "status")
        route = q.get("route")
        if route and route not in ROUTES and route not in ("unknown",):
            return _error(400, f"'route' must be one of {', '.join(sorted(ROUTES))}, not '{route}'.", "route")
        try:
            since = _since(q.get("since"))
        except UploadRefused as e:
            return _error(400, e.message, e.field)
        limit = max(1, min(query_int(request, "limit", 100), 1000))
        jobs = self.state.journal.jobs(statuses, limit=None if (route or since) else limit)
        rows = [j for j in jobs if (not route or j.route == route) and (since is None or j.created_at >= since)]
        return JSONResponse({"jobs": [job_detail(self.state, j) for j in rows[:limit]]},
                            headers={"Cache-Control": "no-store"})

    async def create_job(self, request: Request) -> Response:
        p = principal(request)
        wait = self.state.auth.allow_submit(p.key if p.name else f"client:{client(request)}")
        if wait is not None:
            limit = self.state.config.web.submit_per_minute
            return _error(429, f"too many submissions: web.submit_per_minute is {limit}. "
                               f"Try again in {wait:.0f} s.", None, {"Retry-After": str(int(wait) + 1)})
        try:
            result = await submit(self.state, request)
        except UploadRefused as e:
            return _error(e.status, e.message, e.field)
        except InputError as e:
            return _error(400, str(e), "files")
        return JSONResponse(result.body(), status_code=202, headers={"Location": result.body()["url"]})

    def get_job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = self.state.journal.get(job_id)
        if job is None:
            matches = self.state.journal.find(job_id) if len(job_id) >= 6 else []
            if len(matches) != 1:
                return _error(404, f"no job '{job_id}'. See GET /api/jobs.", "id")
            job = matches[0]
        return JSONResponse(job_detail(self.state, job), headers={"Cache-Control": "no-store"})

    def get_submission(self, request: Request) -> Response:
        sub = self.state.submissions.get(request.path_params["sid"])
        if sub is None:
            return _error(404, "no such submission in this daemon's memory (it restarted?). See GET /api/jobs.",
                          "id")
        job = self.state.submissions.job_for(sub)
        body = SubmitResult(sub, job_detail(self.state, job) if job else None, True).body()
        body.pop("duplicate")
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def job_action(self, request: Request, event: str, act: Callable[[str], str]) -> Response:
        """POST /api/jobs/{id}/retry or /cancel: CSRF, the job must exist, then ``act``; 202 with its message."""
        p = principal(request)
        if csrf_refused(self.state, request, request.headers.get("x-csrf-token")):
            return _error(403, "the X-CSRF-Token header is missing or stale. Reload the page.", "X-CSRF-Token")
        job_id = request.path_params["job_id"]
        if self.state.journal.get(job_id) is None:
            return _error(404, f"no job '{job_id}'. See GET /api/jobs.", "id")
        try:
            message = act(job_id)
        except TransientError as e:
            return _error(409, str(e), "id", {"Retry-After": "1"})
        except OmadError as e:
            return _error(409, str(e), "id")
        self.state.controls.wake()
        self.state.log.info(event, job=job_id, token=p.name, client=client(request))
        return JSONResponse({"id": job_id, "message": message, "url": f"/api/jobs/{job_id}"}, status_code=202)

    def retry(self, request: Request) -> Response:
        journal, paths = self.state.journal, self.state.paths
        return self.job_action(request, "web_retry", lambda job_id: retry_job(journal, paths, job_id))

    def cancel(self, request: Request) -> Response:
        return self.job_action(request, "web_cancel", self.state.controls.cancel)

    def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_schema())


def api_routes(state: AppState) -> list[BaseRoute]:
    h = _Api(state)
    return [
        Route("/api/jobs", h.list_jobs, methods=["GET"]),
        Route("/api/jobs", h.create_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", h.get_job, methods=["GET"]),
        Route("/api/jobs/{job_id}/retry", h.retry, methods=["POST"]),
        Route("/api/jobs/{job_id}/cancel", h.cancel, methods=["POST"]),
        Route("/api/submissions/{sid}", h.get_submission, methods=["GET"]),
        Route("/api/openapi.json", h.openapi, methods=["GET"]),
    ]


