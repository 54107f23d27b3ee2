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
4. the stage runs in the attempt's own folder, with a heartbeat thread that
   reports progress, renews the lock and stops the stage if the fence moves;
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
from ..errors import OmadError, Refused, StageFailed, TransientError
from ..lanes import Lanes
from ..log import get_logger
from ..trust import Purpose, sign, signing_key
from ..windows import Windows, local_now
from .task import (
    Fence,
    RunLock,
    StageTask,
    commit_reply,
    error_record,
    map_path,
    merged_config,
    read_fence,
    read_reply,
    run_dir,
)
from .wire import accept_task, task_paths

if TYPE_CHECKING:
    from ..config import Config
    from ..stage import StageResult
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
        self.lanes = Lanes(config.lanes.cpu_slots(), config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds)
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

    def commit(self, desc: StageTask, job_dir: Path, out: Path, reply: dict[str, Any]) -> dict[str, Any]:
        """The attempt's one result: what it wrote uploaded first (object store), then the reply, exclusively."""
        if self.s3 is None:
            return commit_reply(out, self.sign(reply))
        if reply.get("status") == "done":
            reply["files"] = self.s3.put_files(job_dir, [p for p in sorted(out.rglob("*")) if p.is_file()])
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

    def sign(self, reply: dict[str, Any]) -> dict[str, Any]:
        """A reply this worker made, signed (a committed reply read back is answered as it is, never re-signed)."""
        return sign(reply, self.key, Purpose.REPLY)

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


def _reply(desc: StageTask, worker: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "task_id": desc.task_id, "attempt": desc.attempt, "worker": worker, **extra}


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
        return {"status": "refused", "task_id": str(delivered), "reason": err.message}
    try:
        return _execute(task, desc, state)
    except OmadError as err:  # the store or the folder failed around the stage: the daemon's policy decides
        _log.warning("task_failed", task=desc.task_id, error=str(err))
        return state.sign(_reply(desc, state.host, "error", error=error_record(err), lane_seconds={}))


def _execute(task: Any, desc: StageTask, state: WorkerState) -> dict[str, Any]:
    cfg = state.config
    worker = str(getattr(task.request, "hostname", "") or state.host)
    log = _log.bind(job=desc.job, stage=desc.stage, attempt=desc.attempt, task=desc.task_id, worker=worker)
    if state.s3 is not None:
        # No share: a mirror of the job folder on this machine, filled from the object store by sha256.
        job_dir = cfg.worker_dir().absolute() / "mirror" / (desc.instance or "-") / desc.job
        fence = state.fence(desc, job_dir)
        if fence is None or not fence.admits(desc.task_id):
            log.info("fenced", fence=fence.task_id if fence else None, state=fence.state if fence else None)
            state.count(desc.stage, "fenced")
            return state.sign(_reply(desc, worker, "fenced"))
        state.s3.get_files(job_dir, desc.files)
        job_dir.mkdir(parents=True, exist_ok=True)
    else:
        job_dir = map_path(desc.work, cfg.executor.path_map)
    if not job_dir.is_dir() and job_dir.parent.is_dir():
        # The jobs folder is there but not this job's: it was published or failed and cleaned up. A late copy.
        log.info("fenced", why="the job is finished and its folder removed")
        state.count(desc.stage, "fenced")
        return state.sign(_reply(desc, worker, "fenced"))
    if not job_dir.is_dir():
        # The shared folder is not mounted here, or the path map is wrong: no worker on this box can run it.
        log.error("job_folder_missing", folder=str(job_dir))
        return state.sign(_reply(desc, worker, "error", error=error_record(StageFailed(
            f"worker {worker} cannot see the job folder {job_dir} (the daemon's {desc.work}). Mount the shared "
            "folder there or fix executor.path_map in the worker's config; `omad doctor --worker` checks it.",
            stage=desc.stage)), lane_seconds={}))
    fence = state.fence(desc, job_dir)
    if fence is None or not fence.admits(desc.task_id):
        log.info("fenced", fence=fence.task_id if fence else None, state=fence.state if fence else None)
        state.count(desc.stage, "fenced")
        return state.sign(_reply(desc, worker, "fenced"))
    out = run_dir(job_dir, desc.stage, desc.attempt)
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
        return _run(task, desc, state, job_dir, out, worker, log, lock)
    finally:
        lock.release()


def _run(task: Any, desc: StageTask, state: WorkerState, job_dir: Path, out: Path, worker: str,
         log: Any, lock: RunLock) -> dict[str, Any]:
    import shutil

    from ..guardrails import Guardrails, GuardrailsFile
    from ..routes import stage_named
    from ..stage import StageContext

    shutil.rmtree(out, ignore_errors=True)  # what a killed copy of this attempt left half-written
    out.mkdir(parents=True)
    beat = _Heartbeat(task, state, desc, job_dir, worker, lock)
    state.running = desc.task_id
    state.write_state()
    started = time.time()
    lane_seconds: dict[str, float] = {}
    log.info("stage_started", lane=desc.lane)
    try:
        cfg = state.config_for(desc.settings)
        guard = Guardrails(GuardrailsFile.model_validate(desc.guardrails)) if desc.guardrails else None
        inputs, _ = task_paths(desc, job_dir)  # Refused (a bug reply) when a name leaves the job folder
        ctx = StageContext(
            job_id=desc.job, route=desc.route, name=desc.name, work=out, base=job_dir,
            inputs=inputs, options=desc.options, config=cfg,
            lanes=state.lanes, artifacts=dict(desc.artifacts), stage=desc.stage, timeout=desc.timeout,
            progress=beat.set_progress, cancel=beat.cancel, log=log, attempt=desc.attempt, guardrails=guard,
        )
        stage = stage_named(desc.stage)
        beat.start()
        try:
            with _traced(desc, worker):
                lane = stage.lane_checked(ctx)
                with state.lanes.lane(lane).slot(desc.job):
                    try:
                        result: StageResult = stage.run(ctx)
                    finally:
                        stage.cleanup(ctx)
        finally:
            beat.stop()
            lane_seconds = {str(k): v for k, v in state.lanes.take_seconds(desc.job).items() if v > 0}
        result.warnings.extend(ctx.warnings)
        result.worker = worker
        prefix = out.relative_to(job_dir).as_posix()
        result.artifacts = {role: f"{prefix}/{rel}" for role, rel in result.artifacts.items()}
        reply = _reply(desc, worker, "done", result=result.to_dict(), lane_seconds=lane_seconds)
        outcome = "done"
    except OmadError as err:
        if beat.cancel.is_set() and not isinstance(err, TransientError):
            err = TransientError(f"stopped: {err.message}", stage=desc.stage)
        reply = _reply(desc, worker, "error", error=error_record(err), lane_seconds=lane_seconds)
        outcome = "error"
    except Exception as exc:  # a bug: the daemon fails the job with this message; the traceback stays here
        log.error("internal_error", error=traceback.format_exc())
        bug = StageFailed(f"internal error in stage {desc.stage} on worker {worker}: {exc!r}. This is a bug in "
                          "omad; the inputs are kept. Please report it with the worker's log.", stage=desc.stage)
        reply = _reply(desc, worker, "error", error=error_record(bug), lane_seconds=lane_seconds)
        outcome = "error"
    finally:
        state.running = None
        state.last_done = time.time()
    reply["seconds"] = round(time.time() - started, 3)
    fence = state.fence(desc, job_dir)
    if fence is None or not fence.admits(desc.task_id):
        log.warning("fenced_at_commit", fence=fence.task_id if fence else None,
                    message="the daemon moved on while this copy ran; its result is dropped")
        shutil.rmtree(out, ignore_errors=True)
        state.count(desc.stage, "fenced")
        state.write_state()
        return state.sign(_reply(desc, worker, "fenced"))
    reply = state.commit(desc, job_dir, out, reply)
    tracing.flush(timeout=2.0)  # a pool child may be killed any time: send this attempt's spans now
    state.count(desc.stage, outcome)
    state.write_state()
    log.info("stage_finished", outcome=outcome, seconds=reply.get("seconds"))
    return reply


@contextlib.contextmanager
def _traced(desc: StageTask, worker: str) -> Iterator[None]:
    """The daemon's trace context made current here, and this attempt's span in it (no-ops when tracing is off)."""
    with tracing.attached(desc.trace), tracing.span(f"worker stage {desc.stage}", {
            "omad.job.id": desc.job, "omad.route": desc.route, "omad.stage": desc.stage,
            "omad.attempt": desc.attempt, "omad.lane": desc.lane, "omad.worker": worker}):
        yield
