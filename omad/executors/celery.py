"""The daemon's side of the celery executor: dispatch a stage attempt, wait for it, take its result once.

The attempt itself runs on an ``omad worker`` (``omad.cluster.worker``) through
the same attempt function as the local executor, in the same job-folder layout;
its typed reply (``omad.cluster.task.Reply``) comes back as one :class:`Attempt`.

``run`` either *adopts* the stage's task already in flight (after a daemon
restart the journal still names it and its fence still admits it: it is
waited for, or its committed result taken, and a task Redis lost is sent
again under the same id) or *dispatches* a new one: fence first, then the
journal, then the message. While it waits it follows the task's heartbeats;
when none has come for ``executor.lease_seconds`` the task is revoked, its
fence moved (so the copy, if it still runs somewhere, can never commit) and
the attempt fails as transient, so the runner's retry policy dispatches the
next one. When Redis restarts empty (its ``run_id`` changes), tasks still
waiting in the queue are sent again. A daemon shutting down leaves running
tasks alone: the next start adopts them.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .. import tracing
from ..cluster.app import make_app, queue_keys, queue_name, redact_url, redis_priority
from ..cluster.task import (
    Fence,
    Reply,
    ReplyStatus,
    StageTask,
    error_from,
    read_fence,
    read_reply,
    task_id,
    task_settings,
    write_fence,
)
from ..cluster.wire import accept_reply
from ..controls import PAUSE_KEY
from ..errors import Cancelled, ConfigError, OmadError, Refused, StageFailed, TransientError
from ..outbox import atomic_write_json
from ..stage import StageResult
from ..trust import Purpose, sign, signing_key, verify
from .attempt import Attempt
from .layout import RESULT, RUNS, JobFolder

if TYPE_CHECKING:
    from ..cluster.s3 import S3Files
    from ..config import Config
    from ..controls import QueueState
    from ..journal import Job, Journal
    from ..lanes import Lane
    from ..paths import Paths
    from ..stage import Stage, StageContext

__all__ = ["CeleryExecutor", "SHARED_MARKER", "read_workers"]

#: Written by the daemon into the shared jobs folder; a worker's ``omad doctor --worker`` looks for it.
SHARED_MARKER = ".omad-shared.json"

_POLL_SECONDS = 0.25


def _texts(value: Any, limit: int = 64) -> list[str]:
    return [str(v)[:200] for v in value[:limit]] if isinstance(value, list) else []


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _worker_record(data: Any) -> dict[str, Any] | None:
    """A worker's record as the pages use it, every field of its type (Redis is not trusted: anything else is
    dropped or replaced, never a 500 on the status page)."""
    if not isinstance(data, dict):
        return None
    residents = data.get("residents")
    return {"name": str(data.get("name") or "?")[:200], "host": str(data.get("host") or "")[:200],
            "pid": int(_number(data.get("pid"))), "queues": _texts(data.get("queues")),
            "concurrency": int(_number(data.get("concurrency"))), "started_at": _number(data.get("started_at")),
            "seen_at": _number(data.get("seen_at")), "running": _texts(data.get("running")),
            "residents": [{"model": str(r.get("model"))[:200], **{k: v for k, v in r.items()
                                                                  if isinstance(v, int | float | str)}}
                          for r in (residents[:64] if isinstance(residents, list) else []) if isinstance(r, dict)]}


def read_workers(client: Any) -> list[dict[str, Any]]:
    """The workers advertising themselves in Redis (``omad:worker:*``), by name."""
    out = []
    for key in client.scan_iter(match="omad:worker:*", count=100):
        raw = client.get(key)
        with contextlib.suppress(ValueError, TypeError, RecursionError):
            record = _worker_record(json.loads(raw)) if raw else None
            if record is not None:
                out.append(record)
    return sorted(out, key=lambda w: str(w["name"]))


def _job_files(job_dir: Path, message: StageTask) -> list[Path]:
    """What a stage may read: the claimed inputs (a bundle's every file), and every file of the finished stages'
    folders its artifacts are in."""
    folders = {job_dir / Path(rel).parts[0] / Path(rel).parts[1] for rel in message.artifacts.values()
               if len(Path(rel).parts) > 2 and Path(rel).parts[0] == RUNS}
    paths = [job_dir / rel for rel in message.inputs.values()]
    for folder in [JobFolder(job_dir).inputs, *sorted(folders)]:
        paths.extend(p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != RESULT)
    singles = [job_dir / rel for rel in message.artifacts.values() if len(Path(rel).parts) <= 2]
    return [p for p in dict.fromkeys([*paths, *singles]) if p.is_file()]


def _read_message(path: Path, key: bytes) -> StageTask | None:
    """The message as it was sent (signed by this daemon), or None when it is missing or not ours."""
    try:
        return StageTask.from_dict(verify(json.loads(path.read_text(encoding="utf-8")), key, Purpose.TASK,
                                          f"the sent message {path.name}"))
    except (OSError, ValueError, TypeError, StageFailed):
        return None


class CeleryExecutor:
    def __init__(self, config: Config, paths: Paths, journal: Journal, stop_event: threading.Event,
                 log: Any) -> None:
        import redis

        self.config = config
        self.paths = paths
        self.journal = journal
        self.stop_event = stop_event
        self.log = log
        self.key = signing_key(config)  # before anything else: no key, no celery executor
        self.app = make_app(config)
        self.redis = redis.Redis.from_url(config.executor.broker(), socket_timeout=5, socket_connect_timeout=5)
        self._lock = threading.Lock()
        self._run_id: str | None = None
        self._run_id_at = 0.0
        self._restarts = 0
        self._workers: tuple[float, list[dict[str, Any]]] = (0.0, [])
        self.priority_of: Callable[[Job], float] = lambda job: float(job.priority)
        self.preempted: Callable[[str], bool] = lambda job_id: False
        self._priorities: dict[str, int] = {}  # task id -> its Redis step (a re-send keeps it)
        self.s3: S3Files | None = None
        if config.executor.files == "s3":
            from ..cluster.s3 import S3Files

            self.s3 = S3Files(config)
        else:
            self._mark_shared()

    def _mark_shared(self) -> None:
        """The marker a worker looks for to know it sees the daemon's jobs folder."""
        jobs = self.paths.jobs
        try:
            jobs.mkdir(parents=True, exist_ok=True)
            atomic_write_json(jobs / SHARED_MARKER, {"daemon": socket.gethostname(), "path": str(jobs),
                                                    "written_at": time.time()})
        except OSError as e:
            raise ConfigError(f"cannot write to the shared jobs folder {jobs} ({e.strerror}). The celery executor "
                              "needs it writable (executor.shared_dir).") from e

    # -- the executor protocol ---------------------------------------------------------------------------

    def run(self, job: Job, stage: Stage, lane: Lane, ctx: StageContext, log: Any) -> Attempt:
        try:
            reply = self._dispatch_and_wait(job, stage, lane, ctx, log)
        except OmadError as err:  # the broker, the store or the lease failed around the stage: nothing billed
            return Attempt.failed(err)
        if reply.status is ReplyStatus.DONE:
            return Attempt(result=StageResult.from_dict(reply.result or {}), lane_seconds=reply.stage_seconds())
        if reply.status is ReplyStatus.ERROR:
            failure = error_from(reply.error or {})
            failure.stage = failure.stage or stage.name
            return Attempt.failed(failure, reply.stage_seconds())
        return Attempt.failed(TransientError(f"the worker answered {reply.status.value!r} for the stage's current "
                                             "task; it runs again.", stage=stage.name))

    def _adopt(self, job: Job, name: str, folder: JobFolder, log: Any) -> Fence | None:
        """The fence of this stage's task still in flight from before a restart, when there is one to wait for."""
        row = next((s for s in self.journal.stages(job.id) if s["name"] == name), None)
        fence = read_fence(folder.root, name)
        if row and row.get("task_id") and fence is not None and fence.admits(str(row["task_id"])):
            log.info("stage_adopted", stage=name, task=fence.task_id, attempt=fence.attempt,
                     message="this stage was sent before omad restarted; waiting for that task")
            return fence
        return None

    def _new_task_id(self, job: Job, name: str, ctx: StageContext) -> str:
        tid = task_id(self.journal.instance, job.id, name, ctx.attempt)
        row = next((s for s in self.journal.stages(job.id) if s["name"] == name), None)
        before = str(row.get("task_id") or "") if row else ""
        if before == tid or before.startswith(tid + ".r"):
            # This attempt was sent before and stopped by `omad pause --now` (its attempt not spent): the
            # old id is revoked on the workers, so the new copy gets one of its own.
            n = int(before.rsplit(".r", 1)[1]) + 1 if before != tid else 1
            tid = f"{tid}.r{n}"
        return tid

    def _dispatch_and_wait(self, job: Job, stage: Stage, lane: Lane, ctx: StageContext, log: Any) -> Reply:
        """Adopt the stage's task in flight or send a new one (fence, journal, message), then wait for its reply."""
        folder = ctx.job_folder
        job_dir = folder.root
        name = stage.name
        fence = self._adopt(job, name, folder, log)
        if fence is not None:
            tid, attempt = fence.task_id, fence.attempt
        else:
            if ctx.cancel.is_set():
                raise TransientError("omad is shutting down.", stage=name)
            tid, attempt = self._new_task_id(job, name, ctx), ctx.attempt
        with self._lock:
            self._priorities[tid] = redis_priority(self.priority_of(job))
        sent = folder.sent(tid)  # the message as sent: a re-send after a restart is the same
        message = (_read_message(sent, self.key) if fence is not None else None) \
            or self._message(job, name, lane, ctx, tid, attempt)
        if fence is None:
            if self.s3 is not None:  # the files the stage may read, into the object store (the ones it lacks)
                message.files = self.s3.put_files(job_dir, _job_files(job_dir, message))
            atomic_write_json(sent, sign(message.to_dict(), self.key, Purpose.TASK))
            self._fence(job_dir, message, Fence(tid, attempt))  # the fence before the message: a copy can check it
            self.journal.stage_started(job.id, name, lane, attempt, task_id=tid)
            log.info("stage_dispatched", stage=name, lane=lane, attempt=attempt, task=tid,
                     queue=queue_name(self.config, lane))
            self._send(message, lane)
        reply = self._wait(message, lane, job_dir, ctx, log, resend_unknown=fence is not None)
        if self.s3 is not None and reply.status is ReplyStatus.DONE:
            self.s3.get_files(job_dir, dict(reply.files or {}))  # what the stage wrote, checked
        self._fence(job_dir, message, Fence(tid, attempt, "finished"))
        return reply

    def _fence(self, job_dir: Path, message: StageTask, fence: Fence) -> None:
        write_fence(job_dir, message.stage, fence)
        if self.s3 is not None:
            self.s3.put_fence(message.instance, message.job, message.stage, fence)

    def controls_changed(self, state: QueueState) -> None:
        """Tell the workers (``omad worker`` reads :data:`PAUSE_KEY` before it starts a task)."""
        try:
            if state.paused:
                self.redis.set(PAUSE_KEY, json.dumps(state.to_dict()))
            else:
                self.redis.delete(PAUSE_KEY)
        except Exception as e:  # Redis away: the daemon dispatches nothing while paused anyway
            self.log.warning("pause_not_published", error=str(e),
                             message="could not tell the workers through Redis; tasks already queued may start")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.close()

    # -- sending and waiting -----------------------------------------------------------------------------

    def _message(self, job: Job, name: str, lane: Lane, ctx: StageContext, tid: str, attempt: int) -> StageTask:
        job_dir = ctx.job_folder.root
        trace = tracing.carrier()  # inside the runner's stage span: the worker's spans are its children
        return StageTask(
            task_id=tid, job=job.id, route=job.route, name=job.name, stage=name, attempt=attempt, lane=str(lane),
            work=str(job_dir), inputs={role: Path(p).relative_to(job_dir).as_posix() for role, p in ctx.inputs.items()},
            artifacts=dict(ctx.artifacts), options=ctx.options, timeout=ctx.timeout,
            settings=task_settings(self.config), guardrails=ctx.guard().rules.model_dump(mode="json"), trace=trace,
            instance=self.journal.instance,
        )

    def _send(self, message: StageTask, lane: Lane | str) -> None:
        from ..cluster.app import TASK_NAME

        with self._lock:
            priority = self._priorities.get(message.task_id, redis_priority(0))
        try:
            self.app.send_task(TASK_NAME, args=[sign(message.to_dict(), self.key, Purpose.TASK)],
                               task_id=message.task_id,
                               queue=queue_name(self.config, str(lane)), priority=priority)
        except Exception as e:  # kombu's OperationalError and friends: Redis is away
            raise TransientError(f"cannot reach the broker {redact_url(self.config.executor.broker())} ({e}); "
                                 "the stage is sent again when it is back.", stage=message.stage) from e

    def _broker_run_id(self) -> str | None:
        """Redis's run_id (looked up at most every 2 s): it changes when Redis restarts, and with it what it held."""
        now = time.monotonic()
        with self._lock:
            if now - self._run_id_at < 2.0:
                return self._run_id
            self._run_id_at = now
        try:
            run_id: str | None = str(self.redis.info("server").get("run_id"))
        except Exception:
            return None  # away: nothing known now
        with self._lock:
            if self._run_id is not None and run_id != self._run_id:
                self._restarts += 1
            self._run_id = run_id
        return run_id

    def _wait(self, message: StageTask, lane: Lane, job_dir: Path, ctx: StageContext, log: Any, *,
              resend_unknown: bool) -> Reply:
        from celery.result import AsyncResult

        ex = self.config.executor
        result = AsyncResult(message.task_id, app=self.app)
        folder = JobFolder(job_dir).run(message.stage, message.attempt)
        beat: Any = None
        last_beat: float | None = None
        sent = not resend_unknown
        seen_run = self._broker_run_id()
        warned: list[bool] = []
        unsigned_since: float | None = None
        while True:
            # The shared folder (or the object store) is the truth; Redis may have lost the state, or lie.
            reply = read_reply(folder) if self.s3 is None else self.s3.result(message.task_id)
            if reply is not None:
                return self._accept(reply, message, job_dir, log)
            state, info = self._state(result)
            if state != "SUCCESS":
                unsigned_since = None
            else:
                told = self._broker_said(info, message, log, warned)
                if told is not None:
                    return told
                # Finished by the broker's word, yet nothing committed: a worker with another key refused it, or
                # the result is forged. Bounded like a lost worker, so the job ends with a message, not a hang.
                unsigned_since = unsigned_since or time.monotonic()
                if time.monotonic() - unsigned_since > ex.lease_seconds:
                    raise TransientError(
                        f"the broker says task {message.task_id} finished, but no result signed with this daemon's "
                        f"key was committed within {ex.lease_seconds:g} s. Give the daemon and every worker the same "
                        "signing key (a worker logs task_refused when it is not); else someone else writes to the "
                        "broker.", stage=message.stage)
            if state == "FAILURE":
                raise StageFailed(f"the stage's task failed on a worker: {info}. This is a bug or a version "
                                  "mismatch between the daemon and the worker; see the worker's log.",
                                  stage=message.stage)
            now = time.monotonic()
            if state == "RETRY":
                # A worker is holding it back (paused, or outside its window) and will look again: not running,
                # so no lease runs on it.
                beat, last_beat = None, None
            if state in ("STARTED", "PROGRESS"):
                mark = info.get("beat") if isinstance(info, dict) else state
                if mark != beat or last_beat is None:
                    beat, last_beat = mark, now
                if isinstance(info, dict) and "progress" in info:
                    ctx.progress(float(info["progress"]))
            run = self._broker_run_id()
            restarted = run is not None and seen_run is not None and run != seen_run
            seen_run = run or seen_run
            # Only a task never seen running is sent again: one that ran has heartbeats or a lease to end it.
            if state == "PENDING" and last_beat is None and (not sent or restarted):
                if restarted:
                    log.warning("broker_restarted", task=message.task_id,
                                message="Redis restarted; the stage's task is sent again (same id)")
                self._send(message, lane)
                sent = True
            if last_beat is not None and now - last_beat > ex.lease_seconds:
                self._lost(message, job_dir, log)
            if ctx.cancel.is_set():
                self._stopped(message, job_dir)
            time.sleep(_POLL_SECONDS)

    def _broker_said(self, info: Any, message: StageTask, log: Any, warned: list[bool]) -> Reply | None:
        """What the broker's finished state may tell: only a worker-signed answer that the task was fenced or
        could not run (which fails nothing but this attempt); never that the stage is done."""
        try:
            told = verify(info, self.key, Purpose.REPLY, f"the broker's result for {message.task_id}")
        except Refused as e:
            if not warned:
                log.error("forged_result", stage=message.stage, task=message.task_id, reason=e.message,
                          message="the broker holds a result for this task that no worker signed; ignored")
                warned.append(True)
            return None
        if told.get("task_id") == message.task_id and told.get("status") == ReplyStatus.FENCED:
            return Reply.from_dict(told)
        if told.get("task_id") == message.task_id and told.get("status") == ReplyStatus.ERROR \
                and told.get("attempt") == message.attempt and isinstance(told.get("error"), dict):
            return Reply.from_dict({**told, "lane_seconds": {}})
        return None

    def _stopped(self, message: StageTask, job_dir: Path) -> NoReturn:
        """The runner's cancel is set while the task runs: pause --now, shutdown or a person's cancel."""
        if self.preempted(message.job) and not self.stop_event.is_set():
            # `omad pause --now`: fence it off and stop it; the runner puts the job back in the queue.
            self._fence(job_dir, message, Fence(message.task_id, message.attempt, "cancelled"))
            with contextlib.suppress(Exception):
                self.app.control.revoke(message.task_id)
            raise TransientError("stopped by `omad pause --now`; it runs again when the queue is resumed.",
                                 stage=message.stage)
        if self.stop_event.is_set():
            raise TransientError("omad is shutting down; the stage goes on on its worker and its result "
                                 "is taken at the next start.", stage=message.stage)
        self._fence(job_dir, message, Fence(message.task_id, message.attempt, "cancelled"))
        with contextlib.suppress(Exception):
            self.app.control.revoke(message.task_id)
        raise Cancelled("cancelled; the worker stops the stage at its next heartbeat.", stage=message.stage)

    def _accept(self, reply: dict[str, Any], message: StageTask, job_dir: Path, log: Any) -> Reply:
        """The committed reply, once checked (:func:`accept_reply`); a bad one fails the attempt as a bug."""
        try:
            return Reply.from_dict(accept_reply(reply, self.key, message, job_dir if self.s3 is None else None))
        except Refused as e:
            log.error("reply_refused", stage=message.stage, task=message.task_id, reason=e.message,
                      message="the stage's committed result failed its checks; the attempt fails as a bug")
            e.stage = message.stage
            raise

    def _state(self, result: Any) -> tuple[str, Any]:
        try:
            return str(result.state), result.info
        except Exception:  # Redis away: nothing known; the lease clock runs on
            return "UNKNOWN", None

    def _lost(self, message: StageTask, job_dir: Path, log: Any) -> None:
        """No heartbeat for the lease: the copy may still run somewhere, so fence it off, then fail transient."""
        self._fence(job_dir, message, Fence(message.task_id, message.attempt, "revoked"))
        with contextlib.suppress(Exception):
            self.app.control.revoke(message.task_id)
        lease = self.config.executor.lease_seconds
        log.warning("worker_lost", stage=message.stage, task=message.task_id, lease_seconds=lease,
                    message="no heartbeat from the worker running this stage; it is revoked and runs again")
        raise TransientError(f"the worker running this stage stopped answering (no heartbeat for {lease:g} s); "
                             "the stage runs again, on another worker if this one is gone.", stage=message.stage)

    # -- for the status page -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Workers and queue lengths (cached a few seconds: the page and the API ask often)."""
        now = time.monotonic()
        if now - self._workers[0] > 3.0:
            try:
                workers = read_workers(self.redis)
            except Exception:
                workers = []
            self._workers = (now, workers)
        queues = {}
        for lane in ("cpu", "gpu"):
            q = queue_name(self.config, lane)
            try:
                queues[q] = sum(int(self.redis.llen(k)) for k in queue_keys(self.config, lane))
            except Exception:
                queues[q] = -1
        return {"kind": "celery", "broker": redact_url(self.config.executor.broker()), "workers": self._workers[1],
                "queues": queues, "broker_restarts": self._restarts}
