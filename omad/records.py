"""The records a job leaves for people: the sidecar beside a result, error.json beside a failed drop.

Both are built from the journal alone. Options copied from a brief are
redacted by the guardrails before they are written, because a sidecar sits in a
shared folder. This module never decides a job's fate; it records it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__, tracing
from .config import Config
from .errors import GuardrailBlocked, OmadError
from .events import Event, EventBus
from .i18n import resolve
from .journal import Job, JobStatus, Journal
from .media.tool_version import ffmpeg_version_cached
from .messages import WHAT_TO_DO_FAILED, localised_error, what_to_do
from .outbox import Outbox
from .paths import Paths
from .stage import StageResult
from .summary import job_cost

__all__ = ["Records", "iso", "read_record"]


def iso(ts: float | None) -> str | None:
    """A UTC timestamp as ISO 8601 with milliseconds, as every record writes it."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


def read_record(path: Path) -> dict[str, Any] | None:
    """A sidecar or error.json as a dict, or None when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Records:
    def __init__(self, config: Config, paths: Paths, journal: Journal, outbox: Outbox, events: EventBus,
                 log: Any) -> None:
        self.config = config
        self.paths = paths
        self.journal = journal
        self.outbox = outbox
        self.events = events
        self.log = log

    def fail(self, job: Job, err: OmadError, originals: list[Path]) -> None:
        """Move the originals to outbox/failed/<name>/ with error.json, and mark the job failed."""
        record = {
            "job_id": job.id,
            "route": job.route,
            "name": job.name,
            "error": err.to_dict(),
            "message": str(err),
            "what_to_do": WHAT_TO_DO_FAILED % {"job": job.id},
            # The message in the configured language beside the English one (`auto`: the daemon's $LANG).
            "language": (lang := resolve(self.config.web.language, terminal=True)).value,
            "message_local": localised_error(err.to_dict(), lang),
            "what_to_do_local": what_to_do(job.id, lang),
            "inputs": [{"name": c["name"], "source": c["source"], "sha256": c["sha256"]}
                       for c in job.inputs if c.get("claim")],
            "attempts": job.attempts,
            "omad": __version__,
        }
        folder = self.outbox.fail(job.name, originals, record)
        shutil.rmtree(self.paths.jobs / job.id, ignore_errors=True)
        self.journal.update(job.id, status=JobStatus.FAILED, error=err.to_dict(), finished_at=time.time(),
                            result={"failed_dir": str(folder)})
        self.log.error("failed", job=job.id, name=job.name, route=job.route, kind=err.kind, error=str(err),
                       failed_dir=str(folder))
        tracing.end_job(job.trace, started_at=job.created_at,
                        attributes={"omad.job.id": job.id, "omad.route": job.route, "omad.attempts": job.attempts,
                                    "omad.outcome": "failed", "omad.error.kind": err.kind})
        self.events.emit(Event.JOB_FINISHED, job=self.journal.get(job.id))

    def cost(self, job: Job) -> dict[str, Any]:
        return job_cost(job, self.config.metrics)

    def sidecar(self, job: Job) -> dict[str, Any]:
        """The JSON record published beside a result."""
        stages = []
        findings: list[Any] = []
        warnings: list[str] = []
        ffmpeg = ffmpeg_version_cached(self.paths.state / "cache")  # asked once per ffmpeg binary, not per process
        tools: dict[str, Any] = {"ffmpeg": ffmpeg, "python": sys.version.split()[0], "omad": __version__}
        for s in self.journal.stages(job.id):
            result = StageResult.from_dict(s["result"] or {})
            findings.extend(result.guardrail_findings)
            warnings.extend(result.warnings)
            tools.update(result.tools)
            stages.append({
                "name": s["name"], "lane": s["lane"], "attempt": s["attempt"],
                "started_at": iso(s["started_at"]), "finished_at": iso(s["finished_at"]),
                "seconds": round((s["finished_at"] or 0) - (s["started_at"] or 0), 3), "facts": result.sidecar_facts(),
            })
        c = self.config
        record: dict[str, Any] = {
            "omad": __version__,
            "job_id": job.id,
            "route": job.route,
            "name": job.name,
            "status": "done",
            "inputs": [{"name": i["name"], "role": i["role"], "sha256": i["sha256"]}
                       for i in job.inputs if not i.get("claim")],
            "options": self.redacted(job.options),
            "dropped_at": iso(job.dropped_at),
            "started_at": iso(job.started_at),
            "finished_at": iso(time.time()),
            "attempts": job.attempts,
            "stages": stages,
            "tools": tools,
            "settings": {"video": c.video.model_dump(), "caption": c.caption.model_dump(),
                         "audio": c.audio.model_dump(), "tts_engine": c.tts.engine},
            "warnings": warnings,
            "guardrail_findings": findings,
            "cost": self.cost(self.journal.get(job.id) or job),
            "errors": [a["error"] for a in self.journal.attempts(job.id) if a.get("error")],
        }
        trace = tracing.trace_id(job.trace)  # None unless tracing is on
        if trace:
            record["trace_id"] = trace
        return record

    def redacted(self, value: Any, where: str = "options") -> Any:
        """The brief's options for the sidecar, with personal data redacted as the guardrails say."""
        if isinstance(value, str):
            from .guardrails import guardrails_for  # its patterns load with the first brief's options

            try:
                return guardrails_for(self.config).check(value, where).text
            except GuardrailBlocked:
                return "[removed by guardrails]"
        if isinstance(value, dict):
            return {k: self.redacted(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.redacted(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value
