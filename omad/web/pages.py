"""The Create page, the job page, a submission's waiting page and the analytics page.

Plain HTML forms that work with JavaScript off (a form POST, then a redirect);
with it on, the vendored script adds drag and drop, an upload progress bar and
live updates. Every user-derived string is escaped. Submissions go through
:func:`omad.web.api.submit`, the same path as ``POST /api/jobs``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..brief import MOTIONS
from ..daemon import retry_job
from ..errors import OmadError
from .analytics import analytics_view, render_analytics_page
from .api import submit
from .jobs import job_detail, job_log
from .page import duration, e, layout, money
from .queue import priority_form
from .responses import client, html_page, nav_for, principal, query_int, text
from .submit import UploadRefused
from .voices import voice_options

if TYPE_CHECKING:
    from .server import StatusServer

__all__ = ["page_routes", "render_create_page", "render_job_page"]

_KINDS = (("", "let omad decide from the files"), ("caption", "caption: burn subtitles (srt, vtt, ass) into a video"),
          ("narrate", "narrate: text to speech"), ("img2vid", "img2vid: Ken Burns clip of an image"),
          ("addaudio", "addaudio: new soundtrack for a video"), ("video", "video: agents write it from a prompt"),
          ("transcribe", "transcribe: captions from the speech of a video or recording"))


def _options(values: Any, selected: str = "") -> str:
    out = []
    for v in values:
        value, label = v if isinstance(v, tuple) else (v, v or "default")
        sel = " selected" if value == selected else ""
        out.append(f'<option value="{e(value)}"{sel}>{e(label)}</option>')
    return "".join(out)


def render_create_page(nav: dict[str, Any], error: str | None = None, limits: str = "",
                       voices: str = '<option value="">default (tts.engine)</option>') -> str:
    """The Create form; ``voices`` are the ``<option>``s of the installed voices (``omad.web.voices``)."""
    err = f'<p class="error" id="create-error">{e(error)}</p>' if error else ""
    body = (
        "<h1>Create</h1>" + err +
        '<form method="post" action="/create" enctype="multipart/form-data" id="create-form">'
        f'<input type="hidden" name="csrf" value="{e(nav.get("csrf"))}">'
        "<fieldset><legend>Files</legend>"
        '<div id="dropzone"><p>Drop files here (a video and its subtitles, an image and its audio, a .txt...) or '
        '<label class="inline">choose them <input type="file" name="files" id="files" multiple></label></p>'
        f'<p class="meta chosen">no files chosen</p><p class="meta">{e(limits)}</p></div>'
        '<progress id="upload-progress" max="100" value="0" hidden></progress> '
        '<span id="upload-status" class="meta"></span></fieldset>'
        "<fieldset><legend>Brief (optional: without one, omad decides from the files)</legend>"
        f'<label>Kind <select name="kind" id="kind">{_options(_KINDS)}</select></label>'
        '<label>Name <input name="name" id="name" placeholder="output name (optional)"></label>'
        '<label>Text (narrate) <textarea name="text" id="text" rows="4" cols="70"></textarea></label>'
        '<label>Prompt (video) <textarea name="prompt" id="prompt" rows="3" cols="70"></textarea></label>'
        f'<label>Voice <select name="voice" id="voice">{voices}</select> <a href="/voices">listen</a></label>'
        f'<label>Format <select name="format" id="format">{_options(["", "landscape", "vertical"])}</select>'
        "</label>"
        f'<label>Motion (img2vid) <select name="motion" id="motion">{_options(["", *MOTIONS])}</select></label>'
        '<p class="meta">Music (video): upload an audio file with the brief; it is ducked under the voice.</p>'
        '<label><input type="checkbox" name="captions" id="captions" checked> captions (video)</label>'
        "</fieldset>"
        '<p><button type="submit" id="submit">Submit</button></p></form>'
    )
    return layout("omad create", body, nav)


def _player(output: dict[str, str]) -> str:
    name = output["name"].lower()
    url = e(output["url"])
    if name.endswith((".mp4", ".webm", ".mov", ".m4v")):
        return f'<video class="player" controls preload="metadata" src="{url}" width="480"></video>'
    if name.endswith((".wav", ".mp3", ".m4a", ".ogg", ".flac")):
        return f'<audio class="player" controls preload="metadata" src="{url}"></audio>'
    return ""


def _timeline(detail: dict[str, Any]) -> str:
    stages = detail["stages"]
    if not stages:
        return '<p class="meta">No stage has started yet.</p>'
    longest = max((s["seconds"] or 0.0) for s in stages) or 1.0
    items = []
    for s in stages:
        width = 4 + int(200 * (s["seconds"] or 0.0) / longest)
        items.append(
            f'<li class="stage s-{e(s["status"])}" data-stage="{e(s["name"])}"><b>{e(s["name"])}</b> '
            f'<span class="status s-{e(s["status"])}">{e(s["status"])}</span> on {e(s["lane"] or "-")} · '
            f'<span class="bar" style="width:{width}px"></span> <span class="seconds">{e(duration(s["seconds"]))}'
            f'</span> <span class="meta">{e(s["started_at"] or "")} (attempt {e(s["attempt"])})</span>'
            + (f'<div class="error">{e(s["error"])}</div>' if s.get("error") else "") + "</li>")
    return f'<ol class="timeline">{"".join(items)}</ol>'


def _retried_note(detail: dict[str, Any]) -> str:
    if not detail["retried"]:
        return ""
    new = detail["retried_as"]
    where = (f'<a href="/jobs/{e(new)}" id="retried-as">job {e(new)}</a>' if new
             else "a new drop, waiting for intake")
    return f'<p id="retried">Retried: its inputs went back to the inbox as {where}.</p>'


def render_job_page(detail: dict[str, Any], log: list[dict[str, Any]], nav: dict[str, Any]) -> str:
    # A retried job stays live until the job its inputs became appears.
    final = detail["status"] in ("done", "failed", "duplicate") and not (detail["retried"]
                                                                         and not detail["retried_as"])
    pct = int(round(detail["progress"] * 100))
    head = (
        f'<div id="job-head" data-live data-status="{e(detail["status"])}">'
        f'<p><span class="status s-{e(detail["status"])}" id="job-status">{e(detail["status"])}</span> · '
        f'{e(detail["route"])} · stage {e(detail["stage"] or "-")} · '
        f'<progress class="job-progress" max="100" value="{pct}">{pct}%</progress> {pct}% · '
        f'{e(duration(detail["seconds"]))} · {money(detail["cost"]["estimated"])} {e(detail["cost"]["currency"])}'
        f' (cpu {detail["cost"]["cpu_seconds"]:.1f} s, gpu {detail["cost"]["gpu_seconds"]:.1f} s)</p>'
        f'<p class="meta">inputs: {e(", ".join(detail["inputs"]) or "-")} · dropped {e(detail["dropped_at"])}'
        f' · id <span class="mono">{e(detail["id"])}</span></p>'
        + _retried_note(detail)
        + priority_form(detail, str(nav.get("csrf") or ""))
        + (f'<p id="waiting-for" class="meta">{e(detail["waiting_for"])}</p>' if detail.get("waiting_for") else "")
        + (f'<form method="post" action="/jobs/{e(detail["id"])}/cancel">'
           f'<input type="hidden" name="csrf" value="{e(nav.get("csrf"))}">'
           '<button type="submit" id="cancel">Cancel</button></form>' if detail["cancellable"] else "")
        + "</div>"
    )
    # Every live part is on the page from the start (empty if need be): the script only swaps existing ones.
    error = '<div id="job-error" data-live></div>'
    if detail["error"]:
        err = detail["error"]
        retry = ""
        if detail["retryable"]:
            retry = (f'<form method="post" action="/jobs/{e(detail["id"])}/retry">'
                     f'<input type="hidden" name="csrf" value="{e(nav.get("csrf"))}">'
                     '<button type="submit" id="retry">Retry</button></form>')
        error = (f'<div id="job-error" data-live><h2>Error</h2><p class="error message">{e(err["message"])}</p>'
                 f'<p class="what-to-do"><b>What to do:</b> {e(err["what_to_do"])}</p>{retry}</div>')
    players = "".join(_player(o) for o in detail["outputs"])
    links = "".join(f'<li><a class="output" href="{e(o["url"])}">{e(o["name"])}</a></li>' for o in detail["outputs"])
    links += "".join(f'<li><a class="original" href="{e(o["url"])}">{e(o["name"])}</a> (original, needs a token)'
                     "</li>" for o in detail["originals"])
    outputs = (f'<div id="job-outputs" data-live><h2>Outputs</h2><div class="players">{players}</div>'
               f'<ul>{links or "<li class=meta>none yet</li>"}</ul></div>')
    facts = '<div id="job-facts" data-live></div>'
    if detail["facts"]:
        rows = "".join(f'<tr><th>{e(k)}</th><td class="mono">{e(_fact(v))}</td></tr>'
                       for k, v in detail["facts"].items())
        facts = f'<div id="job-facts" data-live><h2>Facts</h2><table class="facts">{rows}</table></div>'
    transcript = ""
    if detail.get("transcript") is not None:
        rows = "".join(f'<tr><td class="mono">{seg["start"]:.2f}</td><td class="mono">{seg["end"]:.2f}</td>'
                       f'<td>{e(seg["text"])}</td></tr>' for seg in detail["transcript"])
        transcript = (f'<h2>Transcript</h2><table class="transcript" id="job-transcript"><tr><th>from (s)</th>'
                      f'<th>to (s)</th><th>said</th></tr>{rows or "<tr><td colspan=3>no speech</td></tr>"}</table>')
    log_text = "\n".join(_log_line(r) for r in log) or "no log lines yet"
    body = (
        f'<h1>{e(detail["name"])}</h1>{head}{error}'
        f'<h2>Stages</h2><div id="job-stages" data-live>{_timeline(detail)}</div>'
        f"{outputs}{facts}{transcript}"
        f'<h2>Log</h2><pre class="log" id="job-log" data-live>{e(log_text)}</pre>'
    )
    return layout(f"omad job {detail['name']}", body, nav, refresh=0 if final else 2)


def _fact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _log_line(record: dict[str, Any]) -> str:
    skip = {"timestamp", "level", "event", "job", "logger"}
    rest = " ".join(f"{k}={_fact(v)}" for k, v in record.items() if k not in skip)
    return f'{record.get("timestamp", "")} {record.get("level", "")} {record.get("event", "")} {rest}'


def page_routes(server: StatusServer) -> list[BaseRoute]:
    daemon = server.daemon
    web = daemon.config.web
    limits = (f"At most {web.max_files} files and {web.max_upload_mb:.0f} MB per submission; they go through the "
              "inbox like any drop.")

    def create_page(request: Request) -> Response:
        return html_page(render_create_page(nav_for(server, principal(request)), limits=limits,
                                            voices=voice_options(daemon.config)))

    async def create(request: Request) -> Response:
        p = principal(request)
        wants_json = "application/json" in request.headers.get("accept", "")
        wait = server.auth.allow_submit(p.key if p.name else f"client:{client(request)}")
        try:
            if wait is not None:
                raise UploadRefused(f"too many submissions: web.submit_per_minute is {web.submit_per_minute}. "
                                    f"Try again in {wait:.0f} s.", field="files", status=429)
            result = await submit(server, request)
        except UploadRefused as err:
            if wants_json:
                return JSONResponse({"error": err.message, "field": err.field, "status": err.status},
                                    status_code=err.status)
            return html_page(render_create_page(nav_for(server, p), err.message, limits,
                                                voice_options(daemon.config)), status=err.status)
        body = result.body()
        if wants_json:
            return JSONResponse(body, status_code=202)
        return RedirectResponse(body["page"], 303)

    def job_page(request: Request) -> Response:
        job = daemon.journal.get(request.path_params["job_id"])
        if job is None:
            return text(404, "no such job: see / for the status page\n")
        detail = job_detail(daemon, job)
        return html_page(render_job_page(detail, job_log(daemon, job), nav_for(server, principal(request))))

    async def retry_form(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        p = principal(request)
        if not server.auth.csrf_ok(p, str(form.get("csrf") or "")):
            server.auth.failed("csrf", client(request), request.url.path, p.name)
            return text(403, "the form is stale (CSRF check failed). Reload the page and try again.\n")
        return await run_in_threadpool(_retry, request)

    async def cancel_form(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        p = principal(request)
        if not server.auth.csrf_ok(p, str(form.get("csrf") or "")):
            server.auth.failed("csrf", client(request), request.url.path, p.name)
            return text(403, "the form is stale (CSRF check failed). Reload the page and try again.\n")
        job_id = request.path_params["job_id"]
        try:
            await run_in_threadpool(daemon.cancel, job_id)
        except OmadError as err:
            return text(409, f"{err}\n")
        return RedirectResponse(f"/jobs/{job_id}", 303)

    def _retry(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if daemon.journal.get(job_id) is None:
            return text(404, "no such job\n")
        try:
            retry_job(daemon.journal, daemon.paths, job_id)
        except OmadError as err:
            return text(409, f"{err}\n")
        daemon.wake.set()
        return RedirectResponse(f"/jobs/{job_id}", 303)

    def submission_page(request: Request) -> Response:
        sub = server.submissions.get(request.path_params["sid"])
        if sub is None:
            return text(404, "no such submission (the daemon restarted?): see / for the status page\n")
        job = server.submissions.job_for(sub)
        if job is not None:
            return RedirectResponse(f"/jobs/{job.id}", 303)
        body = (f'<h1>Submitted</h1><p id="waiting" data-live>{e(", ".join(sub.sources))} is in the inbox, '
                "waiting for intake (it settles, then finds its partner files). This page moves to the job "
                "as soon as it is journaled.</p>")
        return html_page(layout("omad submitted", body, nav_for(server, principal(request)), refresh=2))

    def analytics_page(request: Request) -> Response:
        view = analytics_view(daemon, max(1, min(query_int(request, "days", 30), 366)))
        return html_page(render_analytics_page(view, nav_for(server, principal(request))))

    def analytics_json(request: Request) -> Response:
        return JSONResponse(analytics_view(daemon, max(1, min(query_int(request, "days", 30), 366))),
                            headers={"Cache-Control": "no-store"})

    return [
        Route("/analytics", analytics_page, methods=["GET"]),
        Route("/api/analytics", analytics_json, methods=["GET"]),
        Route("/create", create_page, methods=["GET"]),
        Route("/create", create, methods=["POST"]),
        Route("/jobs/{job_id}", job_page, methods=["GET"]),
        Route("/jobs/{job_id}/retry", retry_form, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", cancel_form, methods=["POST"]),
        Route("/submissions/{sid}", submission_page, methods=["GET"]),
    ]
