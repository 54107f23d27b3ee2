"""The operator's controls over the queue: pause and resume, priorities, processing windows.

What decides whether a waiting stage may start, and which one goes first:

- **pause** is a row of the journal's ``meta`` table (``queue.paused``), so it
  survives a restart and ``omad pause`` reaches a running daemon without any
  network: the CLI writes the row, the daemon reads it every tick. ``pause``
  lets running stages finish and starts no new one; ``pause --now`` also stops
  running stages and puts their jobs back in the queue without spending an
  attempt (as at shutdown). With the celery executor the daemon mirrors the
  state to Redis (:data:`PAUSE_KEY`), where ``omad worker`` reads it before it
  starts a task.
- **priority** is an integer on the job, higher first (:data:`PRIORITY_NAMES`
  for the names). A waiting job's *effective* priority rises by one every
  ``queue.aging_seconds`` it has waited since it was journaled, so a ``low``
  job (-10) overtakes a fresh ``high`` one (+10) after 20 x aging_seconds:
  nothing starves. Equal effective priorities go oldest first (FIFO).
- **windows** (``lanes.cpu.windows``, ``lanes.gpu.windows``) say when a lane
  may start stages; see :mod:`omad.windows`.

This module reads and writes only the journal's ``meta`` row; it starts and
stops nothing itself (the daemon does, from what :meth:`Controls.blocked` says).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .lanes import Lane
from .windows import Clock, Windows, local_now

if TYPE_CHECKING:
    from .config import Config
    from .journal import Job, Journal, QueueEntry

_Queued = TypeVar("_Queued", "Job", "QueueEntry")

__all__ = ["PRIORITY_NAMES", "parse_priority", "priority_label", "effective_priority", "QueueState",
           "read_queue_state", "write_queue_state", "Controls", "PAUSE_KEY", "META_KEY"]

#: Priority names and their values; any integer is allowed too (higher first).
PRIORITY_NAMES: dict[str, int] = {"low": -10, "normal": 0, "high": 10}

#: The journal's meta row holding the pause state.
META_KEY = "queue.paused"

#: The Redis key the daemon mirrors the pause state to, for ``omad worker`` (celery executor).
PAUSE_KEY = "omad:queue:paused"


def parse_priority(value: Any) -> int:
    """A priority from a name (low, normal, high) or an integer; ``ValueError`` says what is allowed."""
    if isinstance(value, bool):
        raise ValueError(f"a priority is low, normal, high or an integer, not {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in PRIORITY_NAMES:
        return PRIORITY_NAMES[text]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"a priority is low, normal, high or an integer (higher first), not {value!r}") from None


def priority_label(value: int) -> str:
    """``high`` for 10, ``normal`` for 0...; the number for anything else."""
    return next((name for name, v in PRIORITY_NAMES.items() if v == value), str(value))


def effective_priority(priority: int, waited_seconds: float, aging_seconds: float) -> float:
    """The priority a waiting job is taken by: its own plus one for every ``aging_seconds`` it waited."""
    return priority + max(0.0, waited_seconds) / aging_seconds if aging_seconds > 0 else float(priority)


@dataclass
class QueueState:
    """Whether the queue is paused, since when, by whom, and whether running stages were stopped too."""

    paused: bool = False
    #: ``pause --now``: running stages are stopped and go back to the queue
    now: bool = False
    since: float | None = None
    by: str = ""
    #: bumps with every change: the daemon acts on a ``--now`` once
    serial: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> QueueState:
        if not isinstance(data, dict):
            return cls()
        return cls(paused=bool(data.get("paused")), now=bool(data.get("now")),
                   since=float(data["since"]) if data.get("since") is not None else None,
                   by=str(data.get("by") or ""), serial=int(data.get("serial") or 0))


def read_queue_state(journal: Journal) -> QueueState:
    raw = journal.get_meta(META_KEY)
    try:
        return QueueState.from_dict(json.loads(raw)) if raw else QueueState()
    except ValueError:
        return QueueState()


def write_queue_state(journal: Journal, *, paused: bool, now: bool = False, by: str = "") -> QueueState:
    """Pause (``paused``) or resume the queue, in the journal; the running daemon acts on it at its next tick."""
    old = read_queue_state(journal)
    state = QueueState(paused=paused, now=paused and now, since=time.time() if paused else None, by=by,
                       serial=old.serial + 1)
    if paused and old.paused and not now:
        state.since = old.since  # pausing again keeps when it began
    journal.set_meta(META_KEY, json.dumps(state.to_dict()))
    return state


@dataclass
class LaneGate:
    """Why a lane starts nothing now ("" when it may), and the windows behind it."""

    lane: str
    windows: list[str] = field(default_factory=list)
    reason: str = ""


class Controls:
    """The daemon's view of the controls: the pause state (read from the journal each tick) and lane windows."""

    def __init__(self, config: Config, journal: Journal, clock: Clock | None = None) -> None:
        self.config = config
        self.journal = journal
        self.clock: Clock = clock or local_now
        self.windows = {Lane.CPU: Windows(config.lanes.cpu.windows), Lane.GPU: Windows(config.lanes.gpu.windows)}
        self._lock = threading.Lock()
        self.state = read_queue_state(journal)

    def refresh(self) -> tuple[QueueState, QueueState]:
        """Read the pause state again; (before, after)."""
        new = read_queue_state(self.journal)
        with self._lock:
            old, self.state = self.state, new
        return old, new

    @property
    def paused(self) -> bool:
        with self._lock:
            return self.state.paused

    def blocked(self, lane: Lane | str) -> str:
        """Why ``lane`` may start nothing now ("paused", "waiting for the window at 00:00"); "" when it may."""
        if self.paused:
            return "paused"
        return self.windows[Lane(lane)].waiting_reason(self.clock())

    def priority(self, job: Job | QueueEntry, now: float | None = None) -> float:
        """The effective priority ``job`` is taken by now (its priority and its age in the queue)."""
        now = time.time() if now is None else now
        return effective_priority(job.priority, now - job.created_at, self.config.queue.aging_seconds)

    def order(self, jobs: list[_Queued], now: float | None = None) -> list[_Queued]:
        """Highest effective priority first; FIFO within one."""
        now = time.time() if now is None else now
        return sorted(jobs, key=lambda j: (-self.priority(j, now), j.created_at))

    def lanes(self) -> list[LaneGate]:
        return [LaneGate(str(lane), [w.text for w in self.windows[lane].windows], self.blocked(lane))
                for lane in (Lane.CPU, Lane.GPU)]

    def view(self) -> dict[str, Any]:
        """What the status page and /api/status show of the controls."""
        with self._lock:
            state = self.state
        return {"paused": state.paused, "paused_now": state.now, "paused_since": state.since, "paused_by": state.by,
                "lanes": {g.lane: {"windows": g.windows, "open": not g.reason, "reason": g.reason}
                          for g in self.lanes()}}
