"""Work done when a job ends, on one background thread: webhooks, Apprise notifications and hooks share it.

A :class:`JobEndQueue` listens to the daemon's ``job_finished`` events for jobs that are done or failed,
turns each into the items its subclass wants (:meth:`~JobEndQueue.items`) and handles them one at a time
(:meth:`~JobEndQueue.handle`) off the daemon's threads, so a slow receiver never holds up a job. It never
raises into the daemon: a subclass's ``handle`` logs its own failures. ``close`` works through what is
queued (up to a timeout), then stops any backoff wait.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .journal import Job, JobStatus

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["EVENTS", "JobEndQueue", "sample_job"]

#: The job states that end a job, as the event names hooks and notifications use.
EVENTS = {JobStatus.DONE: "job.done", JobStatus.FAILED: "job.failed"}

T = TypeVar("T")


class JobEndQueue(Generic[T]):
    """One background thread working through what each ended job asks of a subclass."""

    #: the thread's name (shown by py-spy and in thread dumps)
    thread_name = "omad-job-end"

    def __init__(self) -> None:
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def items(self, event: str, job: Job) -> list[T]:
        """What to do for ``job``, which just ended with ``event`` (``job.done`` or ``job.failed``)."""
        raise NotImplementedError

    def handle(self, item: T) -> None:
        """Do one item, on the background thread; never raises."""
        raise NotImplementedError

    def start(self, daemon: Daemon) -> None:
        """Listen to ``daemon``'s events and start the thread."""
        daemon.events.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def on_event(self, event: str, data: Mapping[str, Any]) -> None:
        job = data.get("job") if event == "job_finished" else None
        if not isinstance(job, Job) or job.status not in EVENTS:
            return
        for item in self.items(EVENTS[job.status], job):
            self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.handle(item)

    def close(self, timeout: float = 10.0) -> None:
        """Work through what is queued (up to ``timeout`` seconds), then stop waiting for retries."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
            self._stop.set()
            self._thread.join(5)


def sample_job(event: str) -> Job:
    """A made-up job that ended with ``event``, for ``omad notify test``."""
    now = time.time()
    return Job(id="0123456789abcdef", content_id="0123456789abcdef", route="caption", name="sample",
               status=JobStatus.DONE if event == "job.done" else JobStatus.FAILED, stage=None, progress=1.0,
               attempts=1, next_attempt_at=None, dropped_at=now - 5, created_at=now - 5, updated_at=now,
               started_at=now - 4, finished_at=now, inputs=[], options={},
               error={"message": "sample.srt: a sample error", "kind": "input"} if event == "job.failed"
               else None, result={"outputs": {}})
