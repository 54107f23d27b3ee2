"""One job as plain data for people: what `omad status`, the status page and /api/status show.

Also owns the cost estimate (CPU and GPU seconds at the configured hourly
prices), so the sidecar, the CLI, the page and the metrics agree on it.
"""

from __future__ import annotations

import time
from typing import Any

from .config import MetricsConfig
from .journal import Job, JobStatus

__all__ = ["job_cost", "job_summary"]


def job_cost(job: Job, prices: MetricsConfig) -> dict[str, Any]:
    estimate = job.cpu_seconds / 3600 * prices.cpu_hour_price + job.gpu_seconds / 3600 * prices.gpu_hour_price
    return {"cpu_seconds": round(job.cpu_seconds, 3), "gpu_seconds": round(job.gpu_seconds, 3),
            "estimated": round(estimate, 6), "currency": prices.currency,
            "prices": {"cpu_hour": prices.cpu_hour_price, "gpu_hour": prices.gpu_hour_price}}


def job_summary(job: Job, prices: MetricsConfig, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    seconds = round((job.finished_at or now) - job.started_at, 1) if job.started_at is not None else None
    message = None
    if job.status in (JobStatus.FAILED, JobStatus.RETRY_WAIT) and job.error:
        message = str(job.error.get("message") or "")
    return {
        "id": job.id,
        "name": job.name,
        "route": job.route,
        "status": job.status.value,
        "stage": job.stage,
        "progress": round(max(0.0, min(1.0, job.progress)), 4),
        "attempts": job.attempts,
        "seconds": seconds,
        "message": message,
        "duplicate_of": job.duplicate_of,
        "cost": job_cost(job, prices),
    }
