"""What travels with a stage task, and the two files that make its result exactly-once.

A :class:`StageTask` is the whole description of one stage attempt as JSON:
the job, the stage, the attempt, where the job folder is (the daemon's path:
a worker maps it through ``executor.path_map``), the inputs and earlier
artifacts relative to it, the brief's options, the timeout, the settings that
shape the output and the guardrail rules themselves (a worker without the
rules file must not skip the checks). Which options travel is marked on the
config model itself (:class:`omad.config.Reach`); options that belong to the
machine (the F5 checkpoint and device, the VRAM budget, the Ollama host, the
stock and Stability URLs and keys, fonts, paths) never travel, and a worker
ignores them in a message: it takes them from its own config. No secret travels.

The *fence* ``<job>/dispatch/<stage>.json`` names the task that may commit;
the daemon writes it, workers only read it. A copy commits by creating
``<job>/runs/<stage>.<attempt>/result.json``; :func:`commit_reply` lets only
the first copy do so. Nothing here imports Celery.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from .. import errors
from ..config import Reach, reach_of
from ..errors import OmadError, StageFailed, TransientError
from ..executors.layout import RESULT, JobFolder
from ..outbox import atomic_write_json

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["StageTask", "Fence", "Reply", "ReplyStatus", "task_id", "task_settings", "merged_config", "travelling",
           "write_fence", "read_fence",
           "run_dir", "commit_reply", "read_reply", "error_record", "error_from", "map_path", "PROTOCOL",
           "RunLock", "alive"]

#: The version of the task message; a worker refuses a message of another version.
PROTOCOL = 1

def task_id(instance: str, job: str, stage: str, attempt: int) -> str:
    """The deterministic id of a stage attempt's task: a restarted daemon finds what it sent by it.

    ``instance`` is the journal's own id, so two daemons on one Redis (or a state dir made anew, whose
    job ids repeat) never read each other's results.
    """
    return f"omad-{instance}-{job}-{stage}-{attempt}"


def _section(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def travelling(model: type[BaseModel], data: dict[str, Any], inherited: Reach | None = None) -> dict[str, Any]:
    """The part of ``data`` (a config, or a section of one, as JSON) whose options are marked to travel.

    Each option's mark comes from the config model (``json_schema_extra``, see :class:`omad.config.Reach`):
    its own, else its section's. Unmarked options and anything the model does not know are left out.
    """
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if info.exclude or key not in data:
            continue
        reach = reach_of(info, inherited)
        sub = _section(info.annotation)
        if sub is not None and isinstance(data[key], dict):
            inner = travelling(sub, data[key], reach)
            if inner:
                out[key] = inner
        elif reach is Reach.TRAVELS:
            out[key] = data[key]
    return out


def task_settings(config: Config) -> dict[str, Any]:
    """The output-shaping settings of ``config``, as JSON: only the options marked to travel."""
    from ..config import Config

    return travelling(Config, config.model_dump(mode="json", by_alias=True))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merged_config(worker: Config, settings: dict[str, Any]) -> Config:
    """The worker's own config with a task's travelling settings over it; anything else in them is ignored.

    Where to connect and what keys to send (URLs, hosts, keys, paths) are never taken from a task.
    """
    from ..config import Config

    data = worker.model_dump(mode="json", by_alias=True, exclude={"source"})
    cfg = Config.model_validate(_merge(data, travelling(Config, settings)))
    cfg.source = worker.source
    return cfg


def map_path(path: str, path_map: dict[str, str]) -> Path:
    """The daemon's ``path`` on this machine: the longest matching prefix of ``path_map`` replaced."""
    best = ""
    for prefix in path_map:
        root = prefix.rstrip("/")
        if (path == root or path.startswith(root + "/")) and len(root) > len(best):
            best = root
    if not best:
        return Path(path)
    target = next(v for k, v in path_map.items() if k.rstrip("/") == best)
    return Path(target.rstrip("/") + path[len(best):])


@dataclass
class StageTask:
    """One stage attempt, as the daemon sends it."""

    task_id: str
    job: str
    route: str
    name: str
    stage: str
    attempt: int
    lane: str
    #: the job folder, as the daemon sees it
    work: str
    #: role -> path relative to the job folder
    inputs: dict[str, str]
    artifacts: dict[str, str]
    options: dict[str, Any]
    timeout: float
    settings: dict[str, Any]
    guardrails: dict[str, Any]
    #: the trace context (W3C headers) when tracing is on
    trace: dict[str, str] = field(default_factory=dict)
    #: executor.files: s3: the job files the stage may read, relative path -> sha256
    files: dict[str, str] = field(default_factory=dict)
    #: the daemon's journal id (the object store's keys for fences are under it)
    instance: str = ""
    v: int = PROTOCOL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> StageTask:
        if not isinstance(data, dict) or data.get("v") != PROTOCOL:
            version = data.get("v") if isinstance(data, dict) else None
            raise StageFailed(f"a task message of protocol {version!r} reached a worker that speaks {PROTOCOL}. "
                              "Run the same omad version on the daemon and every worker.")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# -- the fence -----------------------------------------------------------------------------------------------

FenceState = Literal["dispatched", "revoked", "cancelled", "finished"]


@dataclass(frozen=True)
class Fence:
    """Which task of a stage may commit (``state`` dispatched), written by the daemon only."""

    task_id: str
    attempt: int
    state: FenceState = "dispatched"
    at: float = field(default_factory=time.time)

    def admits(self, tid: str) -> bool:
        return self.state == "dispatched" and self.task_id == tid


def _fence_path(job_dir: Path, stage: str) -> Path:
    return JobFolder(job_dir).fence(stage)


def write_fence(job_dir: Path, stage: str, fence: Fence) -> None:
    atomic_write_json(_fence_path(job_dir, stage), asdict(fence))


def read_fence(job_dir: Path, stage: str) -> Fence | None:
    try:
        data = json.loads(_fence_path(job_dir, stage).read_text(encoding="utf-8"))
        return Fence(str(data["task_id"]), int(data["attempt"]), data["state"], float(data["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the reply ------------------------------------------------------------------------------------------------

class ReplyStatus(StrEnum):
    """What a worker answers for a task."""

    #: the stage ran and returned a result (committed)
    DONE = "done"
    #: the stage ran and failed, or could not run on this worker (committed, or told through the broker)
    ERROR = "error"
    #: the fence did not admit this copy: it did nothing (told through the broker only)
    FENCED = "fenced"
    #: the message failed its checks: nothing of it was used (unsigned)
    REFUSED = "refused"


@dataclass
class Reply:
    """A worker's answer to one task, as it travels (JSON, signed by the worker except when refused).

    Only the fields set are written, so the wire format is the one the daemon and older workers speak:
    ``status`` and ``task_id`` always; ``attempt`` and ``worker`` from a worker that accepted the message;
    ``result`` (done) or ``error`` (an :func:`error_record`), ``lane_seconds`` and ``seconds`` once the stage
    ran; ``files`` (object store: what the attempt wrote, relative path -> sha256); ``reason`` (refused).
    """

    status: ReplyStatus
    task_id: str
    attempt: int | None = None
    worker: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    lane_seconds: dict[str, float] | None = None
    seconds: float | None = None
    files: dict[str, str] | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, ReplyStatus) else v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        """A reply read back (already checked by ``wire.accept_reply`` or the broker's signed word)."""
        try:
            status = ReplyStatus(str(data.get("status")))
        except ValueError as e:
            raise StageFailed(f"a worker's reply has status {data.get('status')!r:.40}, which omad does not "
                              "know. Run the same omad version on the daemon and every worker.") from e
        known = set(cls.__dataclass_fields__) - {"status"}
        return cls(status=status, **{k: v for k, v in data.items() if k in known})

    def stage_seconds(self) -> dict[str, float]:
        """The lane seconds the attempt held (its bill), as numbers."""
        return {str(k): float(v) for k, v in (self.lane_seconds or {}).items()}


# -- the committed reply -------------------------------------------------------------------------------------

def run_dir(job_dir: Path, stage: str, attempt: int) -> Path:
    """Where one attempt of a stage writes (``runs/<stage>.<attempt>``: :class:`~omad.executors.JobFolder`)."""
    return JobFolder(job_dir).run(stage, attempt)


def commit_reply(folder: Path, reply: dict[str, Any]) -> dict[str, Any]:
    """Make ``reply`` the attempt's one result; when another copy committed first, answer that one instead."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".r")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(reply, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, folder / RESULT)  # fails when it exists: only one copy commits
        except FileExistsError:
            return read_reply(folder) or reply
        return reply
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def read_reply(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- errors across the wire ----------------------------------------------------------------------------------

def error_record(err: OmadError) -> dict[str, Any]:
    """An OmadError as JSON that :func:`error_from` turns back into the same kind of error."""
    return {"type": type(err).__name__, "message": err.message, "file": err.file, "stage": err.stage,
            "details": err.details}


def error_from(record: dict[str, Any]) -> OmadError:
    cls = getattr(errors, str(record.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, OmadError)):
        cls = TransientError if record.get("retryable") else StageFailed
    return cls(str(record.get("message") or "the stage failed on a worker"), file=record.get("file"),
               stage=record.get("stage"), details=record.get("details") or {})


# -- the run lock: one live copy of a task ---------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``runs/<stage>.<attempt>.lock`` beside the attempt's folder: held by the one copy that runs the task.

    Kept on the shared folder, not in Redis, so it survives a broker that restarts empty. The holder
    renews it (its mtime) with each heartbeat; a lock older than ``ttl``, or one whose holder was a process
    of this machine that is gone (a kill -9), is broken — by one taker only, since only one rename of it
    can succeed.
    """

    def __init__(self, job_dir: Path, stage: str, attempt: int, ttl: float, host: str) -> None:
        self.path = JobFolder(job_dir).run_lock(stage, attempt)
        self.ttl = ttl
        self.me = {"host": host, "pid": os.getpid()}

    def _create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self.me, f)
        return True

    def take(self) -> bool:
        if self._create():
            return True
        try:
            owner = json.loads(self.path.read_text())
            age = time.time() - self.path.stat().st_mtime
        except (OSError, ValueError):
            owner, age = {}, self.ttl + 1  # half-written or vanished: stale
        here = owner.get("host") == self.me["host"]
        pid = int(owner.get("pid") or 0)
        if here and pid == self.me["pid"]:
            self.renew()
            return True
        if age <= self.ttl and not (here and not alive(pid)):
            return False
        broken = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}.{time.monotonic_ns()}")
        try:
            os.rename(self.path, broken)  # only one taker can move this very file
        except FileNotFoundError:
            pass
        else:
            with contextlib.suppress(OSError):
                os.unlink(broken)
        return self._create()

    def renew(self) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()) == self.me:
                self.path.unlink()
