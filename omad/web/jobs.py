"""One job in full, as plain data: what ``GET /api/jobs/{id}`` answers and the job page shows.

Read from the journal, the job's sidecar or ``error.json`` in the outbox, and
the day logs; writes nothing. Output links go through ``/outbox/`` so they get
its path rules and the token gate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..journal import Job, JobStatus
from ..messages import WHAT_TO_DO_FAILED, WHAT_TO_DO_RETRYING
from ..records import read_record
from ..summary import job_summary

if TYPE_CHECKING:
    from .state import JournalReader

__all__ = ["job_detail", "job_log", "outbox_link"]

_LOG_SCAN_BYTES = 8 * 2**20  # the newest part of each day log read for a job page


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def outbox_link(outbox: Path, value: Any) -> dict[str, str] | None:
    try:
        p = Path(str(value)).resolve()
        rel = p.relative_to(outbox.resolve())
    except (OSError, RuntimeError, ValueError):
        return None
    if not p.is_file() or any(part.startswith(".") for part in rel.parts):
        return None
    return {"name": rel.as_posix(), "url": "/outbox/" + quote(rel.as_posix())}


def job_detail(daemon: JournalReader, job: Job) -> dict[str, Any]:
    outbox = daemon.paths.outbox
    result = job.result or {}
    outputs: list[dict[str, str]] = []
    sidecar: dict[str, Any] | None = None
    raw = result.get("outputs")
    if isinstance(raw, dict):
        for key, value in raw.items():
            link = outbox_link(outbox, value)
            if link is not None:
                outputs.append({**link, "kind": str(key)})
                if link["name"].endswith(".json") and sidecar is None:
                    sidecar = read_record(Path(str(value)))
    error_record: dict[str, Any] | None = None
    originals: list[dict[str, str]] = []
    if job.status == JobStatus.FAILED and result.get("failed_dir"):
        folder = Path(str(result["failed_dir"]))
        error_record = read_record(folder / "error.json")
        link = outbox_link(outbox, folder / "error.json")
        if link is not None:
            outputs.append({**link, "kind": "error"})
        for c in (c for c in job.inputs if c.get("claim")):
            link = outbox_link(outbox, folder / str(c.get("name")))
            if link is not None:
                originals.append(link)
    stages = []
    for s in daemon.journal.stages(job.id):
        started, finished = s.get("started_at"), s.get("finished_at")
        stages.append({
            "name": s["name"], "status": s["status"], "lane": s.get("lane"), "attempt": s.get("attempt"),
            "started_at": _iso(started), "finished_at": _iso(finished),
            "seconds": round(finished - started, 3) if started is not None and finished is not None else None,
            "error": (s.get("error") or {}).get("message") if s.get("error") else None,
        })
    error = None
    if job.error and job.status in (JobStatus.FAILED, JobStatus.RETRY_WAIT):
        error = {
            "kind": job.error.get("kind"),
            "message": job.error.get("message"),
            "stage": job.error.get("stage"),
            "what_to_do": (error_record or {}).get("what_to_do") or (
                WHAT_TO_DO_RETRYING if job.status == JobStatus.RETRY_WAIT else WHAT_TO_DO_FAILED % {"job": job.id}),
        }
    retried_as = None
    if result.get("retried"):
        # A retry puts the inputs back in the inbox under their names; intake makes a new job of them
        # (of other content, if the user fixed a file first): the first later job claiming those names.
        sources = {c.get("source") for c in job.inputs if c.get("claim")}
        since = job.finished_at or job.created_at
        later = [j for j in daemon.journal.jobs_since(since) if j.id != job.id
                 and {c.get("source") for c in j.inputs if c.get("claim")} == sources]
        retried_as = later[0].id if later else None
    facts: dict[str, Any] | None = None
    if sidecar is not None:
        facts = {k: sidecar.get(k) for k in ("route", "inputs", "options", "tools", "warnings",
                                              "guardrail_findings", "cost", "dropped_at", "started_at",
                                              "finished_at", "attempts") if k in sidecar}
        facts["stages"] = {str(st.get("name")): st.get("facts") or {} for st in sidecar.get("stages") or []
                           if isinstance(st, dict)}
    transcript = _transcript(sidecar)
    return {
        **job_summary(job, daemon.config.metrics),
        "dropped_at": _iso(job.dropped_at),
        "priority": job.priority,
        "waiting_for": daemon.queue_reasons.get(job.id),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "inputs": [str(c.get("name")) for c in job.inputs if c.get("claim")],
        "stages": stages,
        "outputs": outputs,
        "originals": originals,
        "error": error,
        "facts": facts,
        "transcript": transcript,
        "retryable": job.status == JobStatus.RETRY_WAIT or (job.status == JobStatus.FAILED
                                                            and not result.get("retried")),
        "cancellable": not job.status.final and job.status != JobStatus.CLAIMING,
        "retried": bool(result.get("retried")),
        "retried_as": retried_as,
        "links": {"self": f"/api/jobs/{job.id}", "page": f"/jobs/{job.id}",
                  "retry": f"/api/jobs/{job.id}/retry", "cancel": f"/api/jobs/{job.id}/cancel",
                  **({"storyboard": f"/api/jobs/{job.id}/storyboard"} if job.route in ("video", "agent-video")
                     else {})},
    }


def _transcript(sidecar: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """A transcribe job's segments (start, end, text) from its sidecar; None for other jobs."""
    for stage in (sidecar or {}).get("stages") or []:
        if isinstance(stage, dict) and stage.get("name") == "transcribe":
            segments = (stage.get("facts") or {}).get("transcript")
            return list(segments) if isinstance(segments, list) else None
    return None


def _log_lines(path: Path) -> Iterator[str]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - _LOG_SCAN_BYTES))
            data = f.read()
    except OSError:
        return
    yield from data.decode("utf-8", "replace").splitlines()


def job_log(daemon: JournalReader, job: Job, limit: int = 200) -> list[dict[str, Any]]:
    """The job's own lines from the JSON logs of the days it ran (newest ``limit``)."""
    logs = daemon.paths.outbox / "logs"
    days = sorted({time.strftime("%Y-%m-%d", time.localtime(t))
                   for t in (job.created_at, job.finished_at or time.time()) if t})
    needle = f'"job": "{job.id}"'
    found: list[dict[str, Any]] = []
    for day in days:
        for line in _log_lines(logs / f"omad-{day}.jsonl"):
            if needle not in line and f'"job":"{job.id}"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("job") == job.id:
                found.append(record)
    return found[-limit:]
