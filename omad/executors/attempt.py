"""One stage attempt, the same wherever it runs: the daemon's local executor and an ``omad worker`` call it.

:func:`run_attempt` is the attempt's whole life:

1. the stage's lane (``Stage.lane_checked``) and a slot of it, held for the job;
2. ``started(lane)`` — the caller's word that it runs (the local executor
   journals it; a worker starts its heartbeat);
3. ``stage.run(ctx)``, and ``stage.cleanup(ctx)`` in ``finally``, always;
4. the bill: the seconds the job held each lane meanwhile (an LLM call inside
   a CPU stage holds the GPU lane too), failed attempts included;
5. the outcome as one :class:`Attempt`: the result, its artifacts named
   relative to the job folder, or the error. An ``OmadError`` comes back as it
   is (as transient when the attempt was stopped); anything else is a bug,
   logged with its traceback here and answered as ``StageFailed`` with a
   message a person can act on.

It never raises an ``OmadError``; it journals nothing and sends nothing.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Cancelled, OmadError, StageFailed, TransientError
from ..lanes import Lane

if TYPE_CHECKING:
    from ..stage import Stage, StageContext, StageResult

__all__ = ["Attempt", "run_attempt", "internal_error"]


@dataclass(frozen=True)
class Attempt:
    """What one stage attempt came to: its result or its error, and the seconds it held each lane."""

    result: StageResult | None = None
    error: OmadError | None = None
    #: lane name -> seconds held (only lanes held at all); billed to the job whatever the outcome
    lane_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("an attempt has either a result or an error")

    @classmethod
    def failed(cls, error: OmadError, lane_seconds: dict[str, float] | None = None) -> Attempt:
        return cls(error=error, lane_seconds=dict(lane_seconds or {}))

    def unwrap(self) -> StageResult:
        """The result; the error raised when the attempt failed."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def internal_error(stage: str, exc: BaseException, where: str = "") -> StageFailed:
    """A bug (not an ``OmadError``) in ``stage`` as the error the job fails with; the traceback is logged apart."""
    place = f" {where}" if where else ""
    return StageFailed(f"internal error in stage {stage}{place}: {exc!r}. This is a bug in omad; the inputs are "
                       "kept in outbox/failed/. Please report it with the log.", stage=stage)


def run_attempt(stage: Stage, ctx: StageContext, *, holder: str, priority: float = 0.0,
                started: Callable[[Lane], None] = lambda lane: None, where: str = "") -> Attempt:
    """Run one attempt of ``stage`` in ``ctx`` (see the module doc); ``holder`` is the job the lanes bill.

    ``where`` names the machine for the message of an internal error ("on worker gpu-1").
    """
    seconds: dict[str, float] = {}
    try:
        try:
            lane = stage.lane_checked(ctx)
            light = lane is Lane.CPU and stage.light(ctx)
            with ctx.lanes.lane(lane).slot(holder, priority, light=light):
                if ctx.cancel.is_set():
                    raise TransientError("omad is shutting down.", stage=stage.name)
                started(lane)
                try:
                    result = stage.run(ctx)
                finally:
                    stage.cleanup(ctx)
        finally:
            seconds = {str(k): v for k, v in ctx.lanes.take_seconds(holder).items() if v > 0}
    except OmadError as err:
        if ctx.cancel.is_set() and not isinstance(err, TransientError | Cancelled):
            # Stopped from outside (shutdown, `omad pause --now`, a fence that moved): what failed says nothing
            # about the drop, so the attempt is not charged as the drop's fault.
            err = TransientError(f"stopped: {err.message}", file=err.file, stage=stage.name, details=err.details)
        return Attempt.failed(err, seconds)
    except Exception as exc:  # a bug: the job fails with this message; the traceback stays in this log
        log: Any = ctx.log
        log.error("internal_error", stage=stage.name, error=traceback.format_exc())
        return Attempt.failed(internal_error(stage.name, exc, where), seconds)
    result.warnings.extend(ctx.warnings)
    if ctx.base is not None and ctx.work != ctx.base:
        prefix = ctx.work.relative_to(ctx.base).as_posix()
        result.artifacts = {role: f"{prefix}/{rel}" for role, rel in result.artifacts.items()}
    return Attempt(result=result, lane_seconds=seconds)
