"""The job runner: one attempt of a job, stage by stage, each in its lane, then the publish.

Every finished stage is checkpointed, so an attempt starts at the first
unfinished stage. Each stage runs inside its lane's slot and the runner always
calls its ``cleanup`` (in ``finally``). The seconds the attempt held each lane
are billed to the job whether the stage succeeded or not. What happens after
an error is decided by :func:`decide`, a pure function of the error, the
attempt and the configuration. Before publishing, the claimed inputs are
checked once more: a result made from an input that changed after the claim
is never published.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import tracing
from .claim import Claimer, hash_path
from .config import Config
from .errors import Cancelled, InputError, OmadError, StageFailed, TransientError
from .events import Event, EventBus
from .executors import Executor, JobFolder, LocalExecutor
from .journal import InputRecord, Job, JobStatus, Journal, StageStatus
from .lanes import Lane, Lanes
from .outbox import Outbox
from .paths import Paths
from .records import Records
from .routes import stages_for
from .stage import Stage, StageContext, StageResult
from .storyboard.review import park as park_for_review
from .storyboard.review import waits_for_review
from .trust import check_suffix, inside

__all__ = ["JobRunner", "Next", "Decision", "decide", "next_lane"]

_REHASH_BYTES = 64 * 1024 * 1024


class Next(StrEnum):
    """What becomes of a job after a failed attempt."""

    #: back to the queue, the attempt not counted (omad was shutting down)
    REQUEUE = "requeue"
    #: wait ``delay`` seconds, then another attempt
    RETRY = "retry"
    #: polling mode: an unreadable input gets one more look (its copy may have been under way)
    LOOK_AGAIN = "look_again"
    #: to outbox/failed/ with the originals
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    next: Next
    delay: float = 0.0


def decide(err: OmadError, attempt: int, config: Config, *, shutting_down: bool,
           polling: bool | None = None) -> Decision:
    """The retry policy, as a pure function (unit-tested in tests/test_runner.py).

    ``polling``: whether the inbox is polled (``watch.mode: auto`` decides by its file system); None reads
    ``watch.mode`` alone.
    """
    if isinstance(err, TransientError) and shutting_down:
        return Decision(Next.REQUEUE)
    polled = config.watch.mode == "polling" if polling is None else polling
    if polled and attempt == 1 and type(err) is InputError and err.details.get("unreadable"):
        return Decision(Next.LOOK_AGAIN, max(5.0, 4 * config.watch.settle_seconds))
    if err.retryable and attempt < config.jobs.max_attempts:
        jobs = config.jobs
        return Decision(Next.RETRY, min(jobs.backoff_max_seconds, jobs.backoff_seconds * 2 ** (attempt - 1)))
    return Decision(Next.FAIL)


def next_lane(job: Job, journal: Journal, config: Config, lanes: Lanes, work: Path) -> Lane | None:
    """The lane of ``job``'s first unfinished stage (None when every stage is done: only the publish is left)."""
    done = {s["name"] for s in journal.stages(job.id) if s["status"] == StageStatus.DONE}
    for stage in stages_for(job.route):
        if stage.name not in done:
            ctx = StageContext(job_id=job.id, route=job.route, name=job.name, work=work, inputs={},
                               options=job.options, config=config, lanes=lanes, stage=stage.name)
            return stage.lane_checked(ctx)
    return None


class JobRunner:
    def __init__(self, config: Config, paths: Paths, journal: Journal, lanes: Lanes, outbox: Outbox,
                 records: Records, claimer: Claimer, events: EventBus, log: Any, stop_event: threading.Event,
                 cancelled: Callable[[str], bool], executor: Executor | None = None,
                 blocked: Callable[[Lane], str] | None = None,
                 preempted: Callable[[str], bool] | None = None) -> None:
        self.config = config
        self.paths = paths
        self.journal = journal
        self.lanes = lanes
        self.outbox = outbox
        self.records = records
        self.claimer = claimer
        self.events = events
        self.log = log
        self.stop_event = stop_event
        self.cancelled = cancelled  # whether a person cancelled this job (checked after a failure)
        self.executor: Executor = executor or LocalExecutor(lanes, journal)
        # Why a lane may start nothing now (paused, outside its window): the job goes back to the queue
        # before its next stage, its attempt not spent (see omad.controls).
        self.blocked: Callable[[Lane], str] = blocked or (lambda lane: "")
        # Whether a running job was stopped by `omad pause --now`: back to the queue, its attempt not spent.
        self.preempted: Callable[[str], bool] = preempted or (lambda job_id: False)
        # Whether the inbox is polled now (watch.mode auto on a network mount): set by the daemon.
        self.polling: Callable[[], bool] = lambda: config.watch.mode == "polling"

    def _inputs_of(self, job: Job) -> dict[str, Path]:
        work = self.paths.jobs / job.id
        return {c["role"]: work / c["stored"] for c in job.inputs if not c.get("claim")}

    def run(self, job_id: str, cancel: threading.Event) -> None:
        """One attempt of ``job_id``: its unfinished stages, then the publish; failures end in :meth:`failed`."""
        job = self.journal.get(job_id)
        if job is None:
            return
        trace = job.trace or tracing.new_job_trace()  # one trace per job, journaled: it outlives restarts
        if trace != job.trace:
            self.journal.update(job_id, trace=trace)
        with tracing.job_context(trace):
            self._attempt(job, cancel)

    def _attempt(self, job: Job, cancel: threading.Event) -> None:
        job_id = job.id
        attempt = self.journal.start_attempt(job_id)
        self.events.emit(Event.JOB_STARTED, job=job, attempt=attempt)
        log = self.log.bind(job=job_id, route=job.route)
        current: str | None = None
        try:
            self._check_restarts(job)
            stages = stages_for(job.route)
            done = {s["name"]: s for s in self.journal.stages(job_id) if s["status"] == StageStatus.DONE}
            artifacts: dict[str, str] = {}
            publish: dict[str, str] = {}
            for s in done.values():
                res = StageResult.from_dict(s["result"] or {})
                artifacts.update(res.artifacts)
                publish.update(res.publish)
            inputs = self._inputs_of(job)
            from .guardrails import guardrails_for  # its rule tables load with the first job, not at start

            guard = guardrails_for(self.config)  # read once per attempt: every stage checks the same rules
            folder = JobFolder(self.paths.jobs / job_id)
            for index, stage in enumerate(stages):
                if stage.name in done:
                    continue
                if waits_for_review(job, stage.name, done, self.config.llm.review):
                    park_for_review(self.journal, job, log)  # a person presses Render on its storyboard
                    return
                current = stage.name
                ctx = StageContext(
                    job_id=job_id, route=job.route, name=job.name, work=folder.run(stage.name, attempt),
                    base=folder.root, inputs=inputs,
                    options=job.options, config=self.config, lanes=self.lanes, artifacts=dict(artifacts),
                    stage=stage.name, attempt=attempt, guardrails=guard,
                    timeout=self.config.jobs.stage_timeouts.get(stage.name, self.config.jobs.stage_timeout_seconds),
                    progress=self._progress_fn(job_id, stage.name, index, len(stages)), cancel=cancel, log=log,
                )
                why = self.blocked(stage.lane_checked(ctx))
                if why:
                    self._park(job_id, stage.name, why, log)
                    return
                with tracing.span(f"stage {stage.name}", {"omad.job.id": job_id, "omad.route": job.route,
                                                          "omad.stage": stage.name, "omad.attempt": attempt}):
                    result = self._run_stage(job, stage, ctx, log)
                    tracing.annotate({"omad.outcome": "done"})
                artifacts.update(result.artifacts)
                publish.update(result.publish)
            current = None
            with tracing.span("publish", {"omad.job.id": job_id, "omad.route": job.route}):
                self._publish(job_id, artifacts, publish)
            self._end_trace(job_id)
        except OmadError as err:
            if err.stage is None:
                err.stage = current
            self.failed(job_id, err, attempt, current)
        except Exception as exc:  # a bug: fail the job with the traceback in the log, keep the inputs
            log.error("internal_error", stage=current, error=traceback.format_exc())
            bug = StageFailed(f"internal error in stage {current}: {exc!r}. This is a bug in omad; "
                              "the inputs are kept in outbox/failed/. Please report it with the log.", stage=current)
            self.failed(job_id, bug, attempt, current)

    def _park(self, job_id: str, stage: str, why: str, log: Any) -> None:
        """The next stage's lane starts nothing now: back to the queue, this attempt not counted."""
        job = self.journal.get(job_id)
        attempts = max(0, (job.attempts if job else 1) - 1)
        self.journal.update(job_id, status=JobStatus.QUEUED, attempts=attempts)
        self.journal.end_attempt(job_id, "parked", stage, None)
        log.info("job_parked", stage=stage, reason=why,
                 message="the lane of its next stage starts nothing now; the job waits in the queue")

    def _check_restarts(self, job: Job) -> None:
        """A crash loop stays bounded: attempts omad's own restarts interrupted are not charged (the journal's
        recovery gives them back), but more than ``jobs.max_restarts`` of them in a row fail the job."""
        restarts = self.journal.restarts(job.id)
        limit = self.config.jobs.max_restarts
        if restarts > limit:
            raise StageFailed(f"omad itself stopped {restarts} times in a row while this job ran (last during stage "
                              f"{job.stage or '-'}; jobs.max_restarts is {limit}): something in this job may crash "
                              "or kill omad. The inputs are kept; see the log around the restarts, then retry the "
                              "job.", stage=job.stage, details={"restarts": restarts})

    def _run_stage(self, job: Job, stage: Stage, ctx: StageContext, log: Any) -> StageResult:
        """One stage attempt through the executor, its lane seconds billed whatever happens."""
        lane = stage.lane_checked(ctx)
        tracing.annotate({"omad.lane": lane.value})
        attempt = self.executor.run(job, stage, lane, ctx, log)
        # Billed to the lanes that were held (an LLM call inside a CPU stage holds the GPU lane), failed
        # attempts included; a finished stage's bill is committed with its checkpoint.
        seconds = {k: v for k, v in attempt.lane_seconds.items() if v > 0}
        if attempt.result is None:
            for name, value in seconds.items():
                self.journal.add_seconds(job.id, name, value)
        else:
            attempt.result.lane_seconds = seconds
            self.journal.stage_done(job.id, stage.name, attempt.result.to_dict(), billed=seconds)
        self.events.emit(Event.BILLED, job=job, stage=stage.name, lane_seconds=seconds)
        result = attempt.unwrap()
        log.info("stage_done", stage=stage.name, seconds=round(sum(seconds.values()), 3), lanes=seconds)
        self.events.emit(Event.STAGE_DONE, job=job, stage=stage.name, lane=lane, result=result,
                         seconds=seconds.get(lane, 0.0))
        return result

    def _end_trace(self, job_id: str) -> None:
        """The job's root span, once it is published (a failed job's is emitted by ``Records.fail``)."""
        if not tracing.enabled():
            return
        job = self.journal.get(job_id)
        if job is not None and job.status is JobStatus.DONE:
            tracing.end_job(job.trace, started_at=job.created_at,
                            attributes={"omad.job.id": job_id, "omad.route": job.route, "omad.attempts": job.attempts,
                                        "omad.outcome": "done"})

    def _progress_fn(self, job_id: str, stage: str, index: int, total: int) -> Callable[[float], None]:
        last = [0.0, -1.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and fraction < 1.0 and fraction - last[1] < 0.1:
                return
            last[0], last[1] = now, fraction
            overall = (index + max(0.0, min(1.0, fraction))) / max(1, total)
            with contextlib.suppress(OmadError):
                self.journal.set_progress(job_id, stage, overall)

        return report

    def failed(self, job_id: str, err: OmadError, attempt: int, stage: str | None) -> None:
        """After a failed attempt: record it, then retry, look again, requeue or fail, as :func:`decide` says."""
        job = self.journal.get(job_id)
        assert job is not None
        record = err.to_dict()
        if stage:
            with contextlib.suppress(OmadError):
                self.journal.stage_failed(job_id, stage, record)
        self.journal.end_attempt(job_id, "error", stage, record)
        if self.preempted(job_id):
            # `omad pause --now`: not the job's fault; it resumes at this stage when the queue is resumed.
            self.journal.update(job_id, status=JobStatus.QUEUED, attempts=max(0, attempt - 1))
            self.log.info("job_preempted", job=job_id, stage=stage,
                          message="stopped by `omad pause --now`; back in the queue, the attempt not counted")
            return
        if self.cancelled(job_id):
            err = Cancelled(f"cancelled during stage {stage or '-'}. Retry the job to run it again.", stage=stage)
            self.records.fail(job, err, self._originals(job))
            return
        self.events.emit(Event.STAGE_ERROR, job=job, stage=stage or "intake", kind=err.kind)
        shutting_down = self.stop_event.is_set()
        if not (isinstance(err, TransientError) and shutting_down):
            changed = self._changed_inputs(job)
            if changed:  # the input was still being written: its failure says nothing about the finished file
                self._rerun_changed(job, changed)
                return
        decision = decide(err, attempt, self.config, shutting_down=shutting_down, polling=self.polling())
        if decision.next is Next.REQUEUE:
            # Interrupted by shutdown: not the job's fault, so the attempt does not count.
            self.journal.update(job_id, status=JobStatus.QUEUED, attempts=max(0, attempt - 1))
        elif decision.next in (Next.RETRY, Next.LOOK_AGAIN):
            self.journal.update(job_id, status=JobStatus.RETRY_WAIT, next_attempt_at=time.time() + decision.delay,
                                error=record)
            if decision.next is Next.LOOK_AGAIN:
                self.log.warning("input_unreadable_retry", job=job_id, stage=stage, delay=decision.delay,
                                 error=str(err),
                                 message="polling mode: the file may still be copying; one more look before failing")
            else:
                self.log.warning("retry_scheduled", job=job_id, stage=stage, attempt=attempt, delay=decision.delay,
                                 error=str(err))
                self.events.emit(Event.RETRY, job=job, stage=stage or "", kind=err.kind)
        else:
            self.records.fail(job, err, self._originals(job))

    def _originals(self, job: Job) -> list[Path]:
        work = self.paths.jobs / job.id
        return [work / c["stored"] for c in job.inputs if c.get("claim")]

    def _changed_inputs(self, job: Job) -> list[InputRecord]:
        """Claimed inputs whose content is no longer what was claimed (a writer went on after a stall).

        Size and mtime always; the content hash where it is cheap (up to 64 MB).
        Returns the claims updated to the new content; empty when nothing changed.
        """
        work = self.paths.jobs / job.id
        changed = False
        claims: list[InputRecord] = []
        for c in job.inputs:
            if not c.get("claim"):
                claims.append(c)
                continue
            path = work / c["stored"]
            try:
                st = path.lstat()
                if c["kind"] == "file":
                    same = st.st_size == c["size"] and st.st_mtime_ns == c["mtime_ns"]
                    if same and st.st_size <= _REHASH_BYTES:
                        same = hash_path(path)[0] == c["sha256"]
                    new = None if same else hash_path(path)
                else:
                    digest, size = hash_path(path)
                    new = None if (digest, size) == (c["sha256"], c.get("size")) else (digest, size)
            except OSError:
                continue  # gone: the stage that needs it says so
            if new is not None:
                changed = True
                c = {**c, "sha256": new[0], "size": new[1], "mtime_ns": st.st_mtime_ns}
            claims.append(c)
        return claims if changed else []

    def _rerun_changed(self, job: Job, claims: list[InputRecord]) -> None:
        """An input changed after it was claimed: never publish the old result; run again from the new content."""
        self.journal.reset_stages(job.id)
        delay = max(self.config.watch.settle_seconds, 1.0)
        self.journal.update(job.id, status=JobStatus.RETRY_WAIT, inputs=claims, next_attempt_at=time.time() + delay,
                            attempts=max(0, job.attempts - 1))
        self.journal.end_attempt(job.id, "inputs_changed", None, None)
        self.log.warning("inputs_changed", job=job.id, name=job.name,
                         message="an input changed after omad took it (a copy went on after a pause); "
                                 "the result is not published and the job runs again from the new content")

    def _publish(self, job_id: str, artifacts: dict[str, str], publish: dict[str, str]) -> None:
        job = self.journal.get(job_id)
        assert job is not None
        changed = self._changed_inputs(job)
        if changed:
            self._rerun_changed(job, changed)
            return
        work = self.paths.jobs / job_id
        # Every name is checked again here, whichever executor ran the stages: nothing outside the job folder is
        # ever published (trust.py).
        files = {check_suffix(suffix, "a publish suffix"): inside(work, artifacts[role], f"artifact {role}")
                 for suffix, role in publish.items() if role in artifacts}
        # The stem is chosen once and journaled: publishing again after a crash rewrites the same names.
        stem = (job.result or {}).get("publishing")
        if not stem:
            stem = self.outbox.choose_stem(job.name, list(files))
            self.journal.update(job_id, result={"publishing": stem})
        record = self.records.sidecar(job)
        published = self.outbox.publish(job.name, files, record, stem=stem)
        self.journal.published(job_id, published)
        self.claimer.dispose_inputs(job)
        size = sum(Path(p).stat().st_size for p in published.values() if Path(p).exists())
        self.log.info("published", job=job_id, name=job.name, outputs=sorted(Path(p).name for p in published.values()))
        self.events.emit(Event.JOB_FINISHED, job=self.journal.get(job_id), bytes=size)
