"""What runs in an ``omad worker``'s pool children: stage tasks, GPU residency, heartbeats, state files.

The Celery main process receives tasks and hands each to a pool child; the
child runs the stage (:func:`execute`). A child keeps the worker's own lanes
and GPU residency for its whole life, so on a GPU host (one worker,
concurrency 1, the GPU queue) the loaded model stays between tasks and is
unloaded after ``gpu.idle_unload_seconds`` of idleness. Each child writes what
it holds and what it did to a small state file, which the main process
(``service.py``) serves as ``/metrics`` and advertises in Redis.

A task in a child, :func:`execute`:

1. the fence must admit it, else it is a stale copy and does nothing;
2. a result already committed for the attempt is answered as it is;
3. a copy of the same task alive elsewhere (the run lock beside the attempt's
   folder, renewed by its heartbeat) means this one is a duplicate delivery:
   it comes back later;
4. the stage runs in the attempt's own run folder (``omad.executors.layout``)
   through the same attempt function as in the daemon
   (``omad.executors.attempt``), with a heartbeat thread that reports
   progress, renews the lock and stops the stage if the fence moves;
5. before committing, the fence is read again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import tracing
from ..controls import PAUSE_KEY
from ..errors import OmadError, Refused, StageFailed
from ..executors.attempt import Attempt, internal_error, run_attempt
from ..executors.layout import JobFolder
from ..lanes import Lanes
from ..log import get_logger
from ..trust import Purpose, sign, signing_key
from ..windows import Windows, local_now
from .task import (
    Fence,
    Reply,
    ReplyStatus,
    RunLock,
    StageTask,
    commit_reply,
    error_record,
    map_path,
    merged_config,
    read_fence,
    read_reply,
)
from .wire import accept_task, task_paths

if TYPE_CHECKING:
    from ..config import Config
    from ..stage import StageContext
    from .s3 import S3Files

__all__ = ["execute", "set_config", "WorkerState", "worker_config", "redis_client"]

_log = get_logger("omad.worker")

#: The worker's config (set in the main process before the pool forks; children inherit it).
_CONFIG: Config | None = None
_STATE: WorkerState | None = None
_STATE_LOCK = threading.Lock()


def set_config(config: Config) -> None:
    """The worker's config, set by the main process before the pool forks (children inherit it)."""
    global _CONFIG
    _CONFIG = config


def worker_config() -> Config:
    if _CONFIG is None:  # a task outside `omad worker` (a misconfigured deployment)
        raise StageFailed("this process is not an omad worker (no worker configuration); start it with "
                          "`omad worker --config FILE`.")
    return _CONFIG


def redis_client(config: Config) -> Any:
    import redis

    return redis.Redis.from_url(config.executor.broker(), socket_timeout=10, socket_connect_timeout=10,
                                health_check_interval=30)


class WorkerState:
    """One pool child's lasting state: its lanes and GPU residency, its counters, its state file."""

    def __init__(self, config: Config) -> None:
        from ..routes import load_route_modules

        load_route_modules(config.intake.route_modules)  # already imported in a forked child: a no-op
        self.config = config
        self.key = signing_key(config)
        self.lanes = Lanes(config.lanes.cpu_slots(), config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds,
                           cpu_lent=config.lanes.cpu_lent())
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.tasks: dict[str, int] = {}  # "stage:outcome" -> count
        self.s3: S3Files | None = None
        if config.executor.files == "s3":
            from .s3 import S3Files

            self.s3 = S3Files(config)
        self.running: str | None = None
        self._redis: Any = None
        self.last_done = time.time()
        self._configs: dict[str, Config] = {}
        self._lock = threading.Lock()
        folder = config.worker_dir() / "children"
        folder.mkdir(parents=True, exist_ok=True)
        self.state_file = folder / f"{self.pid}.json"
        self.lanes.residency.listeners.append(lambda *_: self.write_state())
        threading.Thread(target=self._sweep, name="omad-residency", daemon=True).start()
        self.write_state()

    def config_for(self, settings: dict[str, Any]) -> Config:
        """The worker's config with a task's settings over it (cached: a stream of jobs shares settings)."""
        key = json.dumps(settings, sort_keys=True, default=str)
        with self._lock:
            cfg = self._configs.get(key)
            if cfg is None:
                cfg = merged_config(self.config, settings)
                self._configs = {key: cfg}
        return cfg

    def _sweep(self) -> None:
        while True:
            time.sleep(1.0)
            with contextlib.suppress(Exception):  # residency bookkeeping must never kill the child
                if self.lanes.residency.unload_idle():
                    self.write_state()

    def fence(self, desc: StageTask, job_dir: Path) -> Fence | None:
        """The stage's fence as the daemon wrote it (in the shared job folder, or the object store)."""
        if self.s3 is not None:
            return self.s3.get_fence(desc.instance, desc.job, desc.stage)
        return read_fence(job_dir, desc.stage)

    def committed(self, desc: StageTask, out: Path) -> dict[str, Any] | None:
        return read_reply(out) if self.s3 is None else self.s3.result(desc.task_id)

    def commit(self, desc: StageTask, job_dir: Path, out: Path, reply: Reply) -> dict[str, Any]:
        """The attempt's one result: what it wrote uploaded first (object store), then the reply, exclusively."""
        if self.s3 is None:
            return commit_reply(out, self.sign(reply))
        if reply.status is ReplyStatus.DONE:
            reply.files = self.s3.put_files(job_dir, [p for p in sorted(out.rglob("*")) if p.is_file()])
        committed = self.s3.commit(desc.task_id, self.sign(reply))
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # in the store now; the next stage fetches what it needs by sha256
        self.s3.trim_cache()
        return committed

    def held(self, lane: str) -> str:
        """Why this worker starts no ``lane`` task now ("paused", "waiting for the window at 00:00"); "" if it may."""
        try:
            if self._redis is None:
                self._redis = redis_client(self.config)
            if self._redis.exists(PAUSE_KEY):
                return "paused"
        except Exception:
            pass  # Redis away: the task came from it, so it is back soon; windows still hold
        windows = Windows(self.config.lanes.gpu.windows if lane == "gpu" else self.config.lanes.cpu.windows)
        return windows.waiting_reason(local_now())

    def sign(self, reply: Reply) -> dict[str, Any]:
        """A reply this worker made, signed (a committed reply read back is answered as it is, never re-signed)."""
        return sign(reply.to_dict(), self.key, Purpose.REPLY)

    def count(self, stage: str, outcome: str) -> None:
        key = f"{stage}:{outcome}"
        self.tasks[key] = self.tasks.get(key, 0) + 1

    def write_state(self) -> None:
        r = self.lanes.residency
        state = {"pid": self.pid, "written_at": time.time(), "running": self.running, "last_done": self.last_done,
                 "tasks": self.tasks, "residents": r.snapshot(), "vram_used_gb": r.used_gb(),
                 "loads": r.loads, "unloads": r.unloads, "peak_vram_gb": r.peak_vram_gb}
        tmp = self.state_file.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.state_file)


def _state() -> WorkerState:
    global _STATE
    with _STATE_LOCK:
        if _STATE is None or _STATE.pid != os.getpid():  # a forked child builds its own
            _STATE = WorkerState(worker_config())
            tracing.setup(service_name="omad-worker")  # its exporter thread must be started after the fork
        return _STATE


class _Heartbeat:
    """While a stage runs: progress and a beat to the daemon, the lock renewed, the fence watched."""

    def __init__(self, task: Any, state: WorkerState, desc: StageTask, job_dir: Path, worker: str,
                 lock: RunLock) -> None:
        self.task = task
        self.lock = lock
        self.state = state
        self.desc = desc
        self.job_dir = job_dir
        self.worker = worker
        self.every = state.config.executor.heartbeat_seconds
        self.progress = 0.0
        self.beat = 0
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omad-heartbeat", daemon=True)

    def start(self) -> None:
        self.send()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def set_progress(self, fraction: float) -> None:
        self.progress = max(0.0, min(1.0, fraction))

    def send(self) -> None:
        self.beat += 1
        meta = {"beat": self.beat, "progress": round(self.progress, 4), "worker": self.worker,
                "attempt": self.desc.attempt, "pid": os.getpid()}
        with contextlib.suppress(Exception):  # Redis away for a moment: the lease covers it
            self.lock.renew()
            self.task.update_state(state="PROGRESS", meta=meta)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            fence = self.state.fence(self.desc, self.job_dir)
            if fence is not None and not fence.admits(self.desc.task_id):
                _log.warning("fenced_while_running", task=self.desc.task_id, fence=fence.task_id, state=fence.state,
                             message="the daemon moved on (lease expired, cancelled or a newer attempt): stopping")
                self.cancel.set()
                return
            self.send()


def _reply(desc: StageTask, worker: str, status: ReplyStatus, **extra: Any) -> Reply:
    return Reply(status=status, task_id=desc.task_id, attempt=desc.attempt, worker=worker, **extra)


def execute(task: Any, message: dict[str, Any]) -> dict[str, Any]:
    """Run one stage task in this pool child; answer the reply the daemon reads (see the module doc).

    A message that is not signed with the worker's key, names a path outside its job folder or arrives under
    another task's id is refused before anything of it is used: logged, counted, and answered unsigned.
    """
    state = _state()
    delivered = getattr(getattr(task, "request", None), "id", None)
    try:
        desc = accept_task(message, state.key, str(delivered) if delivered is not None else None)
    except Refused as err:
        _log.error("task_refused", task=str(delivered), reason=err.message,
                   message="a task message failed its checks: nothing of it is used")
        state.count("-", "refused")
        state.write_state()
        return Reply(ReplyStatus.REFUSED, str(delivered), reason=err.message).to_dict()
    try:
        return _execute(task, desc, state)
    except OmadError as err:  # the store or the folder failed around the stage: the daemon's policy decides
        _log.warning("task_failed", task=desc.task_id, error=str(err))
        return state.sign(_reply(desc, state.host, ReplyStatus.ERROR, error=error_record(err), lane_seconds={}))


def _fenced(desc: StageTask, ws: WorkerState, worker: str, log: Any, **why: Any) -> dict[str, Any]:
    """This copy may not run or commit (a stale or late delivery): it does nothing and says so."""
    log.info("fenced", **why)
    ws.count(desc.stage, "fenced")
    return ws.sign(_reply(desc, worker, ReplyStatus.FENCED))


def _job_dir(desc: StageTask, state: WorkerState, worker: str, log: Any) -> Path | dict[str, Any]:
    """The job folder on this machine (the object store's files fetched into a mirror of it), or the answer
    when there is none to run in (a fenced copy, a folder this worker cannot see)."""
    cfg = state.config
    if state.s3 is not None:
        # No share: a mirror of the job folder on this machine, filled from the object store by sha256.
        job_dir = cfg.worker_dir().absolute() / "mirror" / (desc.instance or "-") / desc.job
        fence = state.fence(desc, job_dir)
        if fence is None or not fence.admits(desc.task_id):
            return _fenced(desc, state, worker, log, fence=fence.task_id if fence else None,
                           state=fence.state if fence else None)
        state.s3.get_files(job_dir, desc.files)
        job_dir.mkdir(parents=True, exist_ok=True)
    else:
        job_dir = map_path(desc.work, cfg.executor.path_map)
    if not job_dir.is_dir() and job_dir.parent.is_dir():
        # The jobs folder is there but not this job's: it was published or failed and cleaned up. A late copy.
        return _fenced(desc, state, worker, log, why="the job is finished and its folder removed")
    if not job_dir.is_dir():
        # The shared folder is not mounted here, or the path map is wrong: no worker on this box can run it.
        log.error("job_folder_missing", folder=str(job_dir))
        return state.sign(_reply(desc, worker, ReplyStatus.ERROR, error=error_record(StageFailed(
            f"worker {worker} cannot see the job folder {job_dir} (the daemon's {desc.work}). Mount the shared "
            "folder there or fix executor.path_map in the worker's config; `omad doctor --worker` checks it.",
            stage=desc.stage)), lane_seconds={}))
    return job_dir


def _execute(task: Any, desc: StageTask, state: WorkerState) -> dict[str, Any]:
    cfg = state.config
    worker = str(getattr(task.request, "hostname", "") or state.host)
    log = _log.bind(job=desc.job, stage=desc.stage, attempt=desc.attempt, task=desc.task_id, worker=worker)
    job_dir = _job_dir(desc, state, worker, log)
    if not isinstance(job_dir, Path):
        return job_dir
    fence = state.fence(desc, job_dir)
    if fence is None or not fence.admits(desc.task_id):
        return _fenced(desc, state, worker, log, fence=fence.task_id if fence else None,
                       state=fence.state if fence else None)
    folder = JobFolder(job_dir)
    out = folder.run(desc.stage, desc.attempt)
    committed = state.committed(desc, out)
    if committed is not None:
        return committed
    why = state.held(desc.lane)
    if why:
        # Paused (the daemon's pause, through Redis) or outside this worker's window: not started here; the
        # task goes back to the queue and is looked at again, by this worker or another.
        log.info("task_held", reason=why)
        state.count(desc.stage, "held")
        raise task.retry(countdown=max(1.0, cfg.executor.heartbeat_seconds), max_retries=None)
    lock = RunLock(job_dir, desc.stage, desc.attempt, 3 * cfg.executor.heartbeat_seconds, state.host)
    if not lock.take():
        # Another live copy of this very task runs (a redelivery): look again later; it commits, we answer it.
        log.info("duplicate_delivery", message="another copy of this task is running; checking back later")
        raise task.retry(countdown=max(1.0, cfg.executor.heartbeat_seconds), max_retries=None)
    try:
        committed = state.committed(desc, out)  # again, under the lock: a copy that held it may have committed
        if committed is not None:
            return committed
        return _run(task, desc, state, folder, worker, log, lock)
    finally:
        lock.release()


def _context(desc: StageTask, state: WorkerState, folder: JobFolder, beat: _Heartbeat, log: Any) -> StageContext:
    """The stage's context on this worker: the task's settings over the worker's config, its own run folder."""
    from ..guardrails import Guardrails, GuardrailsFile
    from ..stage import StageContext

    cfg = state.config_for(desc.settings)
    guard = Guardrails(GuardrailsFile.model_validate(desc.guardrails)) if desc.guardrails else None
    inputs, _ = task_paths(desc, folder.root)  # Refused (a bug reply) when a name leaves the job folder
    return StageContext(
        job_id=desc.job, route=desc.route, name=desc.name, work=folder.fresh_run(desc.stage, desc.attempt),
        base=folder.root, inputs=inputs, options=desc.options, config=cfg,
        lanes=state.lanes, artifacts=dict(desc.artifacts), stage=desc.stage, timeout=desc.timeout,
        progress=beat.set_progress, cancel=beat.cancel, log=log, attempt=desc.attempt, guardrails=guard,
    )


def _attempt(desc: StageTask, state: WorkerState, folder: JobFolder, beat: _Heartbeat, worker: str,
             log: Any) -> Attempt:
    """The stage run through the one attempt function (omad.executors.attempt), traced, with heartbeats."""
    from ..routes import stage_named

    try:
        ctx = _context(desc, state, folder, beat, log)
    except OmadError as err:
        return Attempt.failed(err)
    except Exception as exc:  # a bug: the daemon fails the job with this message; the traceback stays here
        log.error("internal_error", error=traceback.format_exc())
        return Attempt.failed(internal_error(desc.stage, exc, f"on worker {worker}"))
    beat.start()  # before the lane's slot: a task waiting for one is alive, not lost
    try:
        with _traced(desc, worker):
            return run_attempt(stage_named(desc.stage), ctx, holder=desc.job, where=f"on worker {worker}")
    finally:
        beat.stop()


def _run(task: Any, desc: StageTask, state: WorkerState, folder: JobFolder, worker: str,
         log: Any, lock: RunLock) -> dict[str, Any]:
    import shutil

    out = folder.run(desc.stage, desc.attempt)
    beat = _Heartbeat(task, state, desc, folder.root, worker, lock)
    state.running = desc.task_id
    state.write_state()
    started = time.time()
    log.info("stage_started", lane=desc.lane)
    try:
        attempt = _attempt(desc, state, folder, beat, worker, log)
    finally:
        state.running = None
        state.last_done = time.time()
    if attempt.result is not None:
        attempt.result.worker = worker
        reply = _reply(desc, worker, ReplyStatus.DONE, result=attempt.result.to_dict(),
                       lane_seconds=attempt.lane_seconds)
    else:
        assert attempt.error is not None
        reply = _reply(desc, worker, ReplyStatus.ERROR, error=error_record(attempt.error),
                       lane_seconds=attempt.lane_seconds)
    reply.seconds = round(time.time() - started, 3)
    fence = state.fence(desc, folder.root)
    if fence is None or not fence.admits(desc.task_id):
        log.warning("fenced_at_commit", fence=fence.task_id if fence else None,
                    message="the daemon moved on while this copy ran; its result is dropped")
        shutil.rmtree(out, ignore_errors=True)
        state.count(desc.stage, "fenced")
        state.write_state()
        return state.sign(_reply(desc, worker, ReplyStatus.FENCED))
    committed = state.commit(desc, folder.root, out, reply)
    tracing.flush(timeout=2.0)  # a pool child may be killed any time: send this attempt's spans now
    state.count(desc.stage, reply.status.value)
    state.write_state()
    log.info("stage_finished", outcome=reply.status.value, seconds=committed.get("seconds"))
    return committed


@contextlib.contextmanager
def _traced(desc: StageTask, worker: str) -> Iterator[None]:
    """The daemon's trace context made current here, and this attempt's span in it (no-ops when tracing is off)."""
    with tracing.attached(desc.trace), tracing.span(f"worker stage {desc.stage}", {
            "omad.job.id": desc.job, "omad.route": desc.route, "omad.stage": desc.stage,
            "omad.attempt": desc.attempt, "omad.lane": desc.lane, "omad.worker": worker}):
        yield
