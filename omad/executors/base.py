"""The executor contract: where a stage attempt runs once the runner has decided to run it.

The runner owns the journey of a job (which stage is next, retries, the
publish); an executor owns one stage attempt's execution and answers one
:class:`~omad.executors.attempt.Attempt`: the stage's result or its error,
and the seconds each lane was held (the bill), whatever the outcome. Either
way the journal is written by the daemon only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..controls import QueueState
    from ..journal import Job
    from ..lanes import Lane
    from ..stage import Stage, StageContext
    from .attempt import Attempt

__all__ = ["Executor"]


class Executor(Protocol):
    #: the priority a job's stage is taken by (the daemon sets it: omad.controls' effective priority)
    priority_of: Callable[[Job], float]
    #: whether `omad pause --now` stopped this job (its stage goes back to the queue; see omad.controls)
    preempted: Callable[[str], bool]

    def run(self, job: Job, stage: Stage, lane: Lane, ctx: StageContext, log: Any) -> Attempt:
        """Run one attempt of ``stage`` in ``ctx`` (its ``work`` is the attempt's run folder); journal its start.

        Never raises an ``OmadError``: a failure is the attempt's ``error``.
        """
        ...

    def status(self) -> dict[str, Any]:
        """What the status page shows of it (the workers and queues, for celery)."""
        ...

    def controls_changed(self, state: QueueState) -> None:
        """The queue was paused or resumed (the celery executor tells the workers through Redis)."""
        ...

    def close(self) -> None:
        ...
