"""Executors: where a stage attempt runs, and the one way an attempt runs.

    base.py     the executor contract (``run`` answers one ``Attempt``)
    attempt.py  one stage attempt: slot, run, cleanup, the bill, the errors (both executors and the worker)
    layout.py   the job folder's paths (inputs, runs, attempts, dispatch), one value for every executor
    local.py    ``executor.kind: local``: stages in the daemon's process (the embedded default)
    celery.py   ``executor.kind: celery``: stages as Celery tasks run by ``omad worker`` (``omad.cluster``)

Celery is imported only when ``executor.kind`` names it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .attempt import Attempt, run_attempt
from .base import Executor
from .layout import JobFolder
from .local import LocalExecutor

if TYPE_CHECKING:
    from ..config import Config
    from ..journal import Journal
    from ..lanes import Lanes
    from ..paths import Paths

__all__ = ["Attempt", "Executor", "JobFolder", "LocalExecutor", "make_executor", "run_attempt"]


def make_executor(config: Config, paths: Paths, journal: Journal, lanes: Lanes, stop_event: threading.Event,
                  log: Any) -> Executor:
    """The executor ``executor.kind`` names (Celery is imported only when it is the one)."""
    if config.executor.kind == "celery":
        from .celery import CeleryExecutor

        return CeleryExecutor(config, paths, journal, stop_event, log)
    return LocalExecutor(lanes, journal)
