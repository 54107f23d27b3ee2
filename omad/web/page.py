"""The status page and /api/status: one plain-data view of the daemon, and its HTML.

Reads the journal, the lanes, the GPU residency and the outbox at request time;
owns no state and writes nothing. Every user-derived string (file names, error
messages) is escaped on its way into HTML; pages load nothing from elsewhere
and work without JavaScript (the one vendored script only keeps them live).
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..journal import Job, JobStatus
from ..metrics import Metrics
from ..summary import job_summary
from .files import VISUAL_SUFFIXES, PosterCache
from .jobs import outbox_link
from .queue import queue_view, render_queue_section

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["status_view", "render_status_page", "render_login_page", "layout", "e", "duration", "money",
           "DEFAULT_JOBS", "MAX_JOBS"]

DEFAULT_JOBS = 50
MAX_JOBS = 500


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _job_view(daemon: Daemon, job: Job, posters: PosterCache, now: float) -> dict[str, Any]:
    outbox = daemon.paths.outbox
    result = job.result or {}
    outputs: list[dict[str, str]] = []
    raw_outputs = result.get("outputs")
    if isinstance(raw_outputs, dict):
        for value in raw_outputs.values():
            link = outbox_link(outbox, value)
            if link is not None:
                outputs.append(link)
    if job.status == JobStatus.FAILED and result.get("failed_dir"):
        link = outbox_link(outbox, Path(str(result["failed_dir"])) / "error.json")
        if link is not None:
            outputs.append(link)
    return {
        **job_summary(job, daemon.config.metrics, now),
        "dropped_at": _iso(job.dropped_at),
        "outputs": outputs,
        "poster": f"/poster/{job.id}" if posters.has_visual(job) else None,
    }


def status_view(daemon: Daemon, metrics: Metrics, posters: PosterCache, limit: int = DEFAULT_JOBS) -> dict[str, Any]:
    """Everything the status page shows, as plain data (also served as /api/status)."""
    now = time.time()
    jobs = daemon.journal.jobs(limit=max(1, min(limit, MAX_JOBS)))
    residency = daemon.lanes.residency
    peak = metrics.peak_vram_gb()
    return {
        "omad": __version__,
        "time": _iso(now),
        "healthy": daemon.healthy(),
        "counts": daemon.journal.counts(),
        "waiting_files": metrics.waiting_files,
        "inbox": daemon.inbox_view,
        "lanes": [
            {"name": lane.name, "capacity": lane.capacity, "busy": lane.busy, "waiting": lane.waiting,
             "holders": lane.holders()}
            for lane in daemon.lanes.all()
        ],
        "gpu": {
            "budget_gb": residency.budget_gb,
            "resident_gb": round(residency.used_gb(), 3),
            "peak_vram_gb": None if peak is None else round(peak, 3),
            "residents": residency.snapshot(),
            "loads": dict(residency.loads),
            "unloads": dict(residency.unloads),
        },
        "executor": daemon.executor.status(),
        "queue": queue_view(daemon),
        "notes": dict(daemon.notes),
        "currency": daemon.config.metrics.currency,
        "jobs": [_job_view(daemon, j, posters, now) for j in jobs],
    }


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#1b1f24;background:#f6f7f9}
h1{font-size:1.3em;margin:0 0 .4em}h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35em .5em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{font-weight:600;background:#eef0f3}
.meta{color:#57606a}.mono{font-family:ui-monospace,monospace;font-size:.92em}
progress{width:10em;height:1em;vertical-align:middle}
.status{font-weight:600}.s-done{color:#1a7f37}.s-failed{color:#cf222e}.s-running{color:#0969da}
.s-retry_wait{color:#9a6700}.s-queued,.s-claiming,.s-duplicate{color:#57606a}
tr.error td{color:#cf222e;background:#fff5f5;border-bottom:1px solid #f3c6c6}
img.poster{max-width:160px;max-height:120px;display:block;border-radius:3px;background:#000}
.outputs a{margin-right:.6em}
nav{margin:0 0 1em;display:flex;gap:1em;align-items:center}nav form.inline{display:inline;margin:0}
.error{color:#cf222e}label{display:block;margin:.4em 0}fieldset{border:1px solid #d0d7de;background:#fff}
#dropzone{border:2px dashed #8c959f;padding:1.5em;text-align:center;background:#fff}
#dropzone.over{border-color:#0969da;background:#ddf4ff}
.timeline{list-style:none;padding:0}.timeline li{margin:.3em 0}
.timeline .bar{display:inline-block;height:.8em;background:#0969da;vertical-align:middle;border-radius:2px}
pre.log{background:#fff;border:1px solid #e3e6ea;padding:.5em;overflow:auto;max-height:30em;font-size:.85em}
"""


def e(value: Any) -> str:
    """``value`` escaped for HTML text and attributes."""
    return html.escape("" if value is None else str(value), quote=True)


_e = e


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def money(amount: float) -> str:
    # A caption job costs fractions of a cent: show enough digits to compare routes.
    return f"{amount:.4f}" if amount >= 0.01 or amount == 0 else f"{amount:.6f}"


def _job_rows(view: dict[str, Any]) -> str:
    rows = []
    for j in view["jobs"]:
        pct = int(round(j["progress"] * 100))
        outputs = []
        if j["poster"]:
            target = next((o["url"] for o in j["outputs"] if o["name"].lower().endswith(VISUAL_SUFFIXES)),
                          j["poster"])
            outputs.append(f'<a href="{_e(target)}"><img class="poster" src="{_e(j["poster"])}" '
                           f'alt="poster of {_e(j["name"])}" loading="lazy"></a>')
        outputs.extend(f'<a class="output" href="{_e(o["url"])}">{_e(o["name"])}</a>' for o in j["outputs"])
        cost = j["cost"]
        attempts = "" if j["attempts"] <= 1 else f' (attempt {int(j["attempts"])})'
        rows.append(
            f'<tr class="job s-{_e(j["status"])}" id="job-{_e(j["id"])}" data-job-id="{_e(j["id"])}" '
            f'data-status="{_e(j["status"])}">'
            f'<td><a class="job-link" href="/jobs/{_e(j["id"])}">{_e(j["name"])}</a>'
            f'<div class="meta mono">{_e(j["id"])}</div></td>'
            f'<td>{_e(j["route"])}</td>'
            f'<td class="status s-{_e(j["status"])}">{_e(j["status"])}'
            f'{attempts}</td>'
            f'<td>{_e(j["stage"] or "-")}</td>'
            f'<td><progress class="job-progress" max="100" value="{pct}">{pct}%</progress> {pct}%</td>'
            f'<td>{_e(duration(j["seconds"]))}</td>'
            f'<td class="mono">{money(cost["estimated"])} {_e(cost["currency"])}'
            f'<div class="meta">cpu {cost["cpu_seconds"]:.1f} s, gpu {cost["gpu_seconds"]:.1f} s</div></td>'
            f'<td class="outputs">{"".join(outputs) or "-"}</td></tr>'
        )
        if j["message"]:
            rows.append(f'<tr class="error" data-job-id="{_e(j["id"])}"><td colspan="8" class="message">'
                        f'{_e(j["message"])}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="8" class="meta">No jobs yet. Drop files into the inbox.</td></tr>')
    return "".join(rows)


def _lane_rows(view: dict[str, Any]) -> str:
    rows = []
    for lane in view["lanes"]:
        rows.append(
            f'<tr class="lane" data-lane="{_e(lane["name"])}"><td>{_e(lane["name"])}</td>'
            f'<td><progress class="lane-busy" max="{lane["capacity"]}" value="{lane["busy"]}"></progress> '
            f'{lane["busy"]}/{lane["capacity"]} busy</td><td>{lane["waiting"]} waiting</td>'
            f'<td class="mono">{_e(", ".join(lane["holders"]) or "-")}</td></tr>'
        )
    return "".join(rows)


def _resident_state(resident: dict[str, Any]) -> str:
    if resident.get("in_use"):
        return "in use"
    return f'idle {float(resident.get("idle_seconds") or 0):.0f} s'


def _gpu_section(view: dict[str, Any]) -> str:
    gpu = view["gpu"]
    peak = "unknown" if gpu["peak_vram_gb"] is None else f'{gpu["peak_vram_gb"]:.2f} GB'
    head = (f'<p class="meta">VRAM budget {gpu["budget_gb"]:.1f} GB, resident {gpu["resident_gb"]:.2f} GB, '
            f'peak measured {peak}.</p>')
    if not gpu["residents"]:
        return head + '<p class="meta" id="gpu-empty">No model is resident on the GPU lane.</p>'
    rows = "".join(
        f'<tr class="resident"><td class="mono">{_e(r["model"])}</td><td>{float(r["vram_gb"]):.2f} GB</td>'
        f'<td>{_resident_state(r)}</td></tr>'
        for r in gpu["residents"]
    )
    return head + f"<table><tr><th>model</th><th>VRAM</th><th>state</th></tr>{rows}</table>"


def layout(title: str, body: str, nav: dict[str, Any] | None = None, refresh: int = 0) -> str:
    """A whole page: the shared style, the navigation, and live updates of its ``data-live`` parts.

    With JavaScript on, the vendored script re-fetches the page every ``refresh``
    seconds and swaps in the ``data-live`` elements; with it off, a ``<noscript>``
    meta refresh reloads the page instead. Nothing is loaded from elsewhere.
    """
    nav = nav or {}
    noscript = f'<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>' if refresh > 0 else ""
    user = ""
    if nav.get("user"):
        user = f'<span class="meta">signed in as {_e(nav["user"])}</span>'
        if nav.get("session"):
            user += ('<form method="post" action="/logout" class="inline">'
                     f'<input type="hidden" name="csrf" value="{_e(nav.get("csrf"))}">'
                     '<button type="submit" id="logout">log out</button></form>')
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{noscript}'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="csrf-token" content="{_e(nav.get("csrf", ""))}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        '<script src="/static/omad.js" defer></script></head>'
        f'<body data-refresh="{int(refresh)}"><nav><a href="/">Status</a> <a href="/create">Create</a> '
        f'<a href="/analytics">Analytics</a> <a href="/voices" id="nav-voices">Voices</a> '
        f'<a href="/api/openapi.json">API</a> {user}</nav>'
        f"{body}</body></html>\n"
    )


def render_status_page(view: dict[str, Any], refresh: int = 2, nav: dict[str, Any] | None = None) -> str:
    """The status page: plain HTML and CSS, kept live by the vendored script (or a refresh without it)."""
    counts = "  ".join(f"{_e(k)}: {int(v)}" for k, v in sorted(view["counts"].items())) or "no jobs"
    health = "healthy" if view["healthy"] else "main loop stalled"
    body = (
        f'<h1>omad {_e(view["omad"])}</h1>'
        f'<p class="meta" id="summary" data-live>{_e(view["time"])} · {health} · {counts} · '
        f'{int(view["waiting_files"])} inbox file(s) settling or waiting for a partner · '
        '<a href="/metrics">metrics</a> · <a href="/api/status">json</a></p>'
        f'<h2>Queue</h2><div id="queue" data-live>{render_queue_section(view, (nav or {}).get("csrf", ""))}</div>'
        '<h2>Jobs</h2><table id="jobs" data-live><tr><th>drop</th><th>route</th><th>status</th><th>stage</th>'
        "<th>progress</th><th>duration</th><th>cost</th><th>outputs</th></tr>"
        f"{_job_rows(view)}</table>"
        f'<h2>Lanes</h2><table id="lanes" data-live><tr><th>lane</th><th>slots</th><th>queue</th><th>holders</th>'
        f"</tr>{_lane_rows(view)}</table>"
        f'<h2>GPU lane</h2><div id="gpu" data-live>{_gpu_section(view)}</div>'
        + (f'<h2>Workers</h2><div id="workers" data-live>{_workers_section(view)}</div>'
           if view.get("executor", {}).get("kind") == "celery" else "") +
        f'<h2>Inbox</h2><div id="inbox" data-live>{_inbox_section(view)}</div>'
    )
    return layout("omad status", body, nav, refresh)


def _workers_section(view: dict[str, Any]) -> str:
    """The celery executor's workers (as they advertise themselves in Redis) and its queues."""
    ex = view["executor"]
    queues = ", ".join(f"{_e(q)}: {n if n >= 0 else '?'} waiting" for q, n in sorted(ex["queues"].items()))
    head = f'<p class="meta">broker {_e(ex["broker"])} · {queues}</p>'
    if not ex["workers"]:
        return head + ('<p class="error" id="no-workers">No worker is connected: stages wait in the queues. Start '
                       "<code>omad worker</code> on a machine that sees the shared folder.</p>")
    now = time.time()
    rows = "".join(
        f'<tr class="worker" data-worker="{_e(w.get("name"))}"><td class="mono">{_e(w.get("name"))}</td>'
        f'<td>{_e(", ".join(w.get("queues") or []))}</td><td>{int(w.get("concurrency") or 0)}</td>'
        f'<td class="mono">{_e(", ".join(w.get("running") or []) or "idle")}</td>'
        f'<td class="mono">{_e(", ".join(str(r.get("model")) for r in w.get("residents") or []) or "-")}</td>'
        f'<td>{now - float(w.get("seen_at") or now):.0f} s ago</td></tr>'
        for w in ex["workers"]
    )
    return head + ("<table><tr><th>worker</th><th>queues</th><th>slots</th><th>running</th><th>GPU models</th>"
                   f"<th>heard from</th></tr>{rows}</table>")


def _inbox_section(view: dict[str, Any]) -> str:
    """Files not taken yet and why; FIFOs, sockets and devices that omad never opens."""
    inbox = view.get("inbox") or {}
    rows = "".join(f'<tr><td class="mono">{_e(w["file"])}</td><td>{_e(w["reason"])}</td></tr>'
                   for w in inbox.get("waiting", []))
    ignored = "".join(f'<tr class="ignored"><td class="mono">{_e(i["file"])}</td><td>ignored: a {_e(i["kind"])}, '
                      "not a regular file; omad never opens these</td></tr>" for i in inbox.get("ignored", []))
    if not rows and not ignored:
        return '<p class="meta">nothing waiting</p>'
    return f"<table><tr><th>file</th><th>why it is not taken yet</th></tr>{rows}{ignored}</table>"


def render_login_page(next_path: str, error: str | None, required: bool) -> str:
    """The login form: a token pasted once, exchanged for an HttpOnly session cookie."""
    note = "" if required else ('<p class="meta">This server listens on loopback only and does not require a '
                                "token, except for the originals of failed drops.</p>")
    err = f'<p class="error" id="login-error">{_e(error)}</p>' if error else ""
    body = (
        "<h1>Log in to omad</h1>" + note + err +
        '<form method="post" action="/login" id="login-form">'
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        '<label>Token <input type="password" name="token" id="token" autocomplete="current-password" '
        'size="50" required></label> <button type="submit">log in</button></form>'
        '<p class="meta">Make a token on the server with <code>omad token add NAME</code>.</p>'
    )
    return layout("omad login", body)
