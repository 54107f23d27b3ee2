"""Executors: where a stage attempt runs once the runner has decided to run it.

The runner owns the journey of a job (which stage is next, retries, the
publish); an executor owns one stage attempt's execution and answers its
:class:`StageResult` or raises an ``OmadError``. ``local`` (the embedded
default) runs the stage in the daemon's own process, in a slot of its lane;
``celery`` (``omad.cluster``) sends it to ``omad worker`` processes over
Redis and waits for the answer. Either way the journal is written here, by
the daemon only, and the seconds each lane was held are billed to the job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .errors import TransientError
from .lanes import Lane, Lanes

if TYPE_CHECKING:
    from .config import Config
    from .controls import QueueState
    from .journal import Job, Journal
    from .paths import Paths
    from .stage import Stage, StageContext, StageResult

__all__ = ["Executor", "LocalExecutor", "make_executor"]


class Executor(Protocol):
    #: the priority a job's stage is taken by (the daemon sets it: omad.controls' effective priority)
    priority_of: Callable[[Job], float]
    #: whether `omad pause --now` stopped this job (its stage goes back to the queue; see omad.controls)
    preempted: Callable[[str], bool]

    def run(self, job: Job, stage: Stage, lane: Lane, ctx: StageContext, log: Any) -> StageResult:
        """Run one attempt of ``stage``; journal its start; answer its result or raise an OmadError."""
        ...

    def take_seconds(self, job_id: str) -> dict[str, float]:
        """The seconds ``job_id`` held each lane since the last call (its attempt's bill), failed ones included."""
        ...

    def status(self) -> dict[str, Any]:
        """What the status page shows of it (the workers and queues, for celery)."""
        ...

    def controls_changed(self, state: QueueState) -> None:
        """The queue was paused or resumed (the celery executor tells the workers through Redis)."""
        ...

    def close(self) -> None:
        ...


class LocalExecutor:
    """Stages in the daemon's process: the attempt holds a slot of its lane while it runs; cleanup always."""

    def __init__(self, lanes: Lanes, journal: Journal) -> None:
        self.lanes = lanes
        self.journal = journal
        self.priority_of: Callable[[Job], float] = lambda job: float(job.priority)
        self.preempted: Callable[[str], bool] = lambda job_id: False

    def run(self, job: Job, stage: Stage, lane: Lane, ctx: StageContext, log: Any) -> StageResult:
        with self.lanes.lane(lane).slot(job.id, self.priority_of(job)):
            if ctx.cancel.is_set():
                raise TransientError("omad is shutting down.", stage=stage.name)
            self.journal.stage_started(job.id, stage.name, lane, ctx.attempt)
            log.info("stage_started", stage=stage.name, lane=lane, attempt=ctx.attempt)
            try:
                return stage.run(ctx)
            finally:
                stage.cleanup(ctx)

    def take_seconds(self, job_id: str) -> dict[str, float]:
        return {str(k): v for k, v in self.lanes.take_seconds(job_id).items()}

    def status(self) -> dict[str, Any]:
        return {"kind": "local"}

    def controls_changed(self, state: QueueState) -> None:
        pass  # the daemon's own lanes and dispatch read the controls

    def close(self) -> None:
        pass


def make_executor(config: Config, paths: Paths, journal: Journal, lanes: Lanes, stop_event: threading.Event,
                  log: Any) -> Executor:
    """The executor ``executor.kind`` names (Celery is imported only when it is the one)."""
    if config.executor.kind == "celery":
        from .cluster.executor import CeleryExecutor

        return CeleryExecutor(config, paths, journal, stop_event, log)
    return LocalExecutor(lanes, journal)
