"""The daemon's events: one vocabulary, and a synchronous fan-out to whoever listens.

Metrics, the status page and webhooks subscribe; the daemon emits. A listener
that raises is logged and skipped: an observer must never break a job.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from .log import get_logger

__all__ = ["Event", "EventBus", "Listener"]


class Event(StrEnum):
    #: the daemon started (journal recovered, outbox ready)
    STARTED = "started"
    #: the daemon stopped
    STOPPED = "stopped"
    #: one pass of the main loop; ``waiting`` = inbox files not yet taken
    TICK = "tick"
    #: a drop became a job (``job``)
    JOB_CREATED = "job_created"
    #: an attempt of a job began (``job``, ``attempt``)
    JOB_STARTED = "job_started"
    #: a stage finished (``job``, ``stage``, ``lane``, ``seconds``, ``result``)
    STAGE_DONE = "stage_done"
    #: an attempt of a stage held the lanes this long, done or failed (``job``, ``stage``, ``lane_seconds``)
    BILLED = "billed"
    #: a stage, or intake, failed (``job``, ``stage``, ``kind``)
    STAGE_ERROR = "stage_error"
    #: a transient failure will be retried (``job``, ``stage``, ``kind``)
    RETRY = "retry"
    #: a job reached a final status (``job``, and ``bytes`` published when done)
    JOB_FINISHED = "job_finished"


Listener = Callable[[str, dict[str, Any]], None]


class EventBus:
    """Synchronous fan-out of daemon events."""

    def __init__(self) -> None:
        self._subs: list[Listener] = []

    def subscribe(self, fn: Listener) -> None:
        self._subs.append(fn)

    def emit(self, event: Event, **data: Any) -> None:
        for fn in list(self._subs):
            try:
                fn(event, data)
            except Exception:  # an observer must never break a job
                get_logger().warning("event_listener_failed", event=event, error=traceback.format_exc(limit=3))
