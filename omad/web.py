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
"""

from __future__ import annotations

import contextlib
import html
import json
import mimetypes
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
from urllib.parse import parse_qs, quote, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from . import __version__
from .errors import ConfigError, OmadError
from .ffmpeg import FFMPEG, FFPROBE, SAFE_INPUT_ARGS, run_ffmpeg
from .journal import Job, JobStatus
from .log import get_logger
from .metrics import Metrics

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = [
    "StatusServer",
    "start_server",
    "PathRefused",
    "resolve_outbox_path",
    "parse_range",
    "readiness",
    "status_view",
    "render_status_page",
    "PosterCache",
]

_JOB_ID = re.compile(r"^[0-9a-f]{8,64}(?:-[0-9]{1,6})?$")
_VISUAL_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".srt": "text/plain; charset=utf-8",
    ".ass": "text/plain; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}
_CHUNK = 256 * 1024
_DEFAULT_JOBS = 50
_MAX_JOBS = 500


# -- the outbox file server ------------------------------------------------------------------------


class PathRefused(Exception):
    """A requested outbox path that could leave the outbox or names a hidden file."""


def resolve_outbox_path(root: Path, raw: str) -> Path:
    """The real file for ``raw`` (the percent-encoded part of the URL after ``/outbox/``).

    Refuses (:class:`PathRefused`) empty, absolute, ``.``/``..`` and dot-named
    segments, backslashes and NUL, decoded or not, and any path whose real
    location (symlinks followed) is outside ``root`` or hidden. Raises
    ``FileNotFoundError`` when the path is acceptable but no such file exists.
    """
    try:
        text = unquote(raw, errors="strict")
    except UnicodeDecodeError as e:
        raise PathRefused("the path is not valid UTF-8") from e
    if not text or text.startswith("/") or "\\" in text or "\x00" in text:
        raise PathRefused("absolute, empty or malformed path")
    parts = text.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise PathRefused("dot segments and hidden files are not served")
    base = root.resolve()
    real = base.joinpath(*parts).resolve()
    if not real.is_relative_to(base):
        raise PathRefused("the path leaves the outbox")
    if any(p.startswith(".") for p in real.relative_to(base).parts):
        raise PathRefused("dot segments and hidden files are not served")
    if not real.is_file():
        raise FileNotFoundError(text)
    return real


class RangeNotSatisfiable(Exception):
    """A byte range that starts past the end of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks for, or None for the whole file.

    Only single ranges are honoured; several ranges or a malformed header get the
    whole file, which RFC 9110 allows. A range past the end raises
    :class:`RangeNotSatisfiable`.
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(header)
    if end < start:
        return None
    return start, end


def _content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


# -- posters ----------------------------------------------------------------------------------------


class PosterCache:
    """A job's poster: its published image, else one frame of its video, made once and cached."""

    def __init__(self, cache_dir: Path, outbox: Path) -> None:
        self.cache_dir = cache_dir
        self.outbox = outbox
        self._lock = threading.Lock()  # one ffmpeg at a time: page refreshes must not pile them up
        self._failed: set[tuple[str, int, int]] = set()
        self.log = get_logger("omad.web")

    def _published(self, job: Job) -> list[Path]:
        outputs = (job.result or {}).get("outputs")
        if not isinstance(outputs, dict):
            return []
        base = self.outbox.resolve()
        found = []
        for value in outputs.values():
            try:
                p = Path(str(value)).resolve()
            except (OSError, RuntimeError):
                continue
            if p.is_relative_to(base) and p.is_file():
                found.append(p)
        return found

    def has_visual(self, job: Job) -> bool:
        return any(p.suffix.lower() in _VISUAL_SUFFIXES + _IMAGE_SUFFIXES for p in self._published(job))

    def poster_for(self, job: Job) -> Path | None:
        files = self._published(job)
        image = next((p for p in files if p.suffix.lower() in _IMAGE_SUFFIXES), None)
        if image is not None:
            return image
        video = next((p for p in files if p.suffix.lower() in _VISUAL_SUFFIXES), None)
        if video is None:
            return None
        st = video.stat()
        key = (job.id, st.st_mtime_ns, st.st_size)
        dst = self.cache_dir / f"{job.id}.jpg"
        if key in self._failed:
            return None
        with self._lock:
            if dst.is_file() and dst.stat().st_mtime_ns >= st.st_mtime_ns:
                return dst
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{job.id}.{threading.get_ident()}.jpg"
            try:
                # thumbnail= picks a representative frame of the first 50, so a fade-in
                # or a short clip still gives a picture without seeking past the end.
                run_ffmpeg(
                    [*SAFE_INPUT_ARGS, "-i", str(video), "-an", "-sn",
                     "-vf", "thumbnail=n=50,scale=w='min(480,iw)':h=-2",
                     "-frames:v", "1", "-q:v", "5", str(tmp)],
                    timeout=60.0,
                    file_label=video.name,
                    stage="poster",
                )
                os.replace(tmp, dst)
            except OmadError as e:
                tmp.unlink(missing_ok=True)
                self._failed.add(key)
                self.log.warning("poster_failed", job=job.id, error=str(e))
                return None
            return dst


# -- views ------------------------------------------------------------------------------------------


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


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _outbox_url(outbox: Path, value: Any) -> dict[str, str] | None:
    try:
        p = Path(str(value)).resolve()
        rel = p.relative_to(outbox.resolve())
    except (OSError, RuntimeError, ValueError):
        return None
    if not p.is_file() or any(part.startswith(".") for part in rel.parts):
        return None
    return {"name": rel.as_posix(), "url": "/outbox/" + quote(rel.as_posix())}


def _job_view(daemon: Daemon, job: Job, posters: PosterCache, now: float) -> dict[str, Any]:
    outbox = daemon.paths.outbox
    result = job.result or {}
    outputs: list[dict[str, str]] = []
    raw_outputs = result.get("outputs")
    if isinstance(raw_outputs, dict):
        for value in raw_outputs.values():
            link = _outbox_url(outbox, value)
            if link is not None:
                outputs.append(link)
    if job.status == JobStatus.FAILED and result.get("failed_dir"):
        link = _outbox_url(outbox, Path(str(result["failed_dir"])) / "error.json")
        if link is not None:
            outputs.append(link)
    seconds = None
    if job.started_at is not None:
        seconds = round((job.finished_at or now) - job.started_at, 1)
    message = None
    if job.status in (JobStatus.FAILED, JobStatus.RETRY_WAIT) and job.error:
        message = str(job.error.get("message") or "")
    cost = daemon.cost(job)
    return {
        "id": job.id,
        "name": job.name,
        "route": job.route,
        "status": job.status.value,
        "stage": job.stage,
        "progress": round(max(0.0, min(1.0, job.progress)), 4),
        "attempts": job.attempts,
        "dropped_at": _iso(job.dropped_at),
        "seconds": seconds,
        "message": message,
        "duplicate_of": job.duplicate_of,
        "outputs": outputs,
        "poster": f"/poster/{job.id}" if posters.has_visual(job) else None,
        "cost": cost,
    }


def status_view(daemon: Daemon, metrics: Metrics, posters: PosterCache, limit: int = _DEFAULT_JOBS) -> dict[str, Any]:
    """Everything the status page shows, as plain data (also served as /api/status)."""
    now = time.time()
    jobs = daemon.journal.jobs(limit=max(1, min(limit, _MAX_JOBS)))
    residency = daemon.lanes.residency
    peak = metrics.peak_vram_gb()
    return {
        "omad": __version__,
        "time": _iso(now),
        "healthy": daemon.healthy(),
        "counts": daemon.journal.counts(),
        "waiting_files": metrics.waiting_files,
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
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _job_rows(view: dict[str, Any]) -> str:
    rows = []
    for j in view["jobs"]:
        pct = int(round(j["progress"] * 100))
        outputs = []
        if j["poster"]:
            target = next((o["url"] for o in j["outputs"] if o["name"].lower().endswith(_VISUAL_SUFFIXES)),
                          j["poster"])
            outputs.append(f'<a href="{_e(target)}"><img class="poster" src="{_e(j["poster"])}" '
                           f'alt="poster of {_e(j["name"])}" loading="lazy"></a>')
        outputs.extend(f'<a class="output" href="{_e(o["url"])}">{_e(o["name"])}</a>' for o in j["outputs"])
        cost = j["cost"]
        attempts = "" if j["attempts"] <= 1 else f' (attempt {int(j["attempts"])})'
        rows.append(
            f'<tr class="job s-{_e(j["status"])}" id="job-{_e(j["id"])}" data-job-id="{_e(j["id"])}" '
            f'data-status="{_e(j["status"])}">'
            f'<td>{_e(j["name"])}<div class="meta mono">{_e(j["id"])}</div></td>'
            f'<td>{_e(j["route"])}</td>'
            f'<td class="status s-{_e(j["status"])}">{_e(j["status"])}'
            f'{attempts}</td>'
            f'<td>{_e(j["stage"] or "-")}</td>'
            f'<td><progress class="job-progress" max="100" value="{pct}">{pct}%</progress> {pct}%</td>'
            f'<td>{_e(_duration(j["seconds"]))}</td>'
            f'<td class="mono">{cost["estimated"]:.4f} {_e(cost["currency"])}'
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


def render_status_page(view: dict[str, Any], refresh: int = 2) -> str:
    """The status page: plain HTML and CSS, refreshed by the browser (no script, nothing remote)."""
    counts = "  ".join(f"{_e(k)}: {int(v)}" for k, v in sorted(view["counts"].items())) or "no jobs"
    meta_refresh = f'<meta http-equiv="refresh" content="{refresh}">' if refresh > 0 else ""
    health = "healthy" if view["healthy"] else "main loop stalled"
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">{meta_refresh}'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>omad status</title><style>{_CSS}</style></head><body>"
        f'<h1>omad {_e(view["omad"])}</h1>'
        f'<p class="meta" id="summary">{_e(view["time"])} · {health} · {counts} · '
        f'{int(view["waiting_files"])} inbox file(s) settling or waiting for a partner · '
        '<a href="/metrics">metrics</a> · <a href="/api/status">json</a></p>'
        '<h2>Jobs</h2><table id="jobs"><tr><th>drop</th><th>route</th><th>status</th><th>stage</th>'
        "<th>progress</th><th>duration</th><th>cost</th><th>outputs</th></tr>"
        f"{_job_rows(view)}</table>"
        f'<h2>Lanes</h2><table id="lanes"><tr><th>lane</th><th>slots</th><th>queue</th><th>holders</th></tr>'
        f"{_lane_rows(view)}</table>"
        f'<h2>GPU lane</h2><div id="gpu">{_gpu_section(view)}</div>'
        "</body></html>\n"
    )


# -- the server --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = f"omad/{__version__}"
    protocol_version = "HTTP/1.1"
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
                body = json.dumps(self.app.view(_int(query, "limit", _DEFAULT_JOBS)), indent=1, default=str).encode()
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
        view = self.app.view(_int(query, "limit", _DEFAULT_JOBS))
        self._send(HTTPStatus.OK, render_status_page(view, refresh).encode(), "text/html; charset=utf-8", head=head,
                   headers={"Cache-Control": "no-store",
                            "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"})

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
            self.send_header("Content-Type", _content_type(path))
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

    def view(self, limit: int = _DEFAULT_JOBS) -> dict[str, Any]:
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
