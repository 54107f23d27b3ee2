"""The status page's data and /api/status: one plain-data view of the daemon.

Reads the journal, the lanes, the GPU residency and the outbox at request time;
owns no state and writes nothing. Its HTML is ``templates/status.html``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..journal import Job, JobStatus
from ..metrics import Metrics
from ..summary import job_summary
from .files import PosterCache
from .jobs import outbox_link
from .queue import queue_view

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["status_view", "DEFAULT_JOBS", "MAX_JOBS"]

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
            {"name": lane.name, "capacity": lane.capacity, "lent": lane.lent, "busy": lane.busy,
             "waiting": lane.waiting, "holders": lane.holders()}
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
