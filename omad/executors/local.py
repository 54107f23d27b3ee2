"""The embedded executor: stage attempts in the daemon's own process, each in a slot of its lane."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .attempt import Attempt, run_attempt

if TYPE_CHECKING:
    from ..controls import QueueState
    from ..journal import Job, Journal
    from ..lanes import Lane, Lanes
    from ..stage import Stage, StageContext

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Stages in the daemon's process: the attempt holds a slot of its lane while it runs; cleanup always."""

    def __init__(self, lanes: Lanes, journal: Journal) -> None:
        self.lanes = lanes
        self.journal = journal
        self.priority_of: Callable[[Job], float] = lambda job: float(job.priority)
        self.preempted: Callable[[str], bool] = lambda job_id: False

    def run(self, job: Job, stage: Stage, lane: Lane, ctx: StageContext, log: Any) -> Attempt:
        folder = ctx.job_folder
        if ctx.work != folder.root:  # the attempt's run folder, emptied of what a crashed run of it left
            ctx.work = folder.fresh_run(stage.name, ctx.attempt)

        def started(held: Lane) -> None:
            self.journal.stage_started(job.id, stage.name, held, ctx.attempt)
            log.info("stage_started", stage=stage.name, lane=held, attempt=ctx.attempt)

        return run_attempt(stage, ctx, holder=job.id, priority=self.priority_of(job), started=started)

    def status(self) -> dict[str, Any]:
        return {"kind": "local"}

    def controls_changed(self, state: QueueState) -> None:
        pass  # the daemon's own lanes and dispatch read the controls

    def close(self) -> None:
        pass
