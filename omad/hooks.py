"""Hooks: a program of the operator's run when a job ends (``hooks.after_publish``, ``hooks.after_fail``).

The program gets the job's summary as JSON on standard input (the same body a
webhook receives) and a few environment variables: ``OMAD_EVENT``,
``OMAD_JOB_ID``, ``OMAD_JOB_NAME``, ``OMAD_ROUTE``, ``OMAD_STATUS``,
``OMAD_OUTPUTS`` (the published files' paths, one a line) and, for a failure,
``OMAD_ERROR``. It runs under the rules of every tool omad starts
(:mod:`omad.procs`): its own process group, killed with omad, stopped after
``hooks.timeout_seconds``. Its output and exit code are logged; its failure is
logged and never the job's, which is already published or failed when it runs.

Hooks run one at a time on a background thread so a slow one never holds up
the daemon's loop. Nothing here reads or writes job state.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import HooksConfig
from .journal import Job, JobStatus
from .log import get_logger
from .procs import run_tool
from .webhooks import EVENTS, job_payload

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["Hooks", "hook_env"]

_TAIL = 2000  # characters of a hook's output kept in the log


def hook_env(event: str, job: Job) -> dict[str, str]:
    """The environment variables a hook gets for ``job``."""
    raw = (job.result or {}).get("outputs")
    outputs = [str(p) for p in raw.values()] if isinstance(raw, dict) else []
    env = {"OMAD_EVENT": event, "OMAD_JOB_ID": job.id, "OMAD_JOB_NAME": job.name, "OMAD_ROUTE": job.route,
           "OMAD_STATUS": job.status.value, "OMAD_OUTPUTS": "\n".join(outputs)}
    if job.status == JobStatus.FAILED:
        env["OMAD_ERROR"] = str((job.error or {}).get("message") or "")
        env["OMAD_FAILED_DIR"] = str((job.result or {}).get("failed_dir") or "")
    return env


class Hooks:
    """Runs the configured hook for each job that ends, one at a time, from a background thread."""

    def __init__(self, config: HooksConfig) -> None:
        self.config = config
        self.log = get_logger("omad.hooks")
        self._queue: queue.Queue[tuple[list[str], str, Job] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def attach(self, daemon: Daemon) -> Hooks:
        daemon.events.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name="omad-hooks", daemon=True)
        self._thread.start()
        return self

    def on_event(self, event: str, data: Mapping[str, Any]) -> None:
        job = data.get("job") if event == "job_finished" else None
        if not isinstance(job, Job) or job.status not in EVENTS:
            return
        argv = self.config.after_publish if job.status == JobStatus.DONE else self.config.after_fail
        if argv:
            self._queue.put((list(argv), EVENTS[job.status], job))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.run(*item)

    def run(self, argv: list[str], event: str, job: Job) -> int | None:
        """Run one hook now; its exit code (None when it could not start or was stopped). Never raises."""
        body = json.dumps(job_payload(event, job), ensure_ascii=False, default=str).encode("utf-8", "replace")
        env = {**os.environ, **hook_env(event, job)}
        program = Path(argv[0]).name
        try:
            done = run_tool(argv, timeout=self.config.timeout_seconds, input=body, env=env)
        except OSError as e:
            self.log.error("hook_failed", hook_event=event, job=job.id, program=program, error=e.strerror or str(e),
                           message=f"could not start {argv[0]}; check hooks.* (the job itself is not affected)")
            return None
        out = done.stdout.decode("utf-8", "replace")[-_TAIL:]
        err = done.stderr.decode("utf-8", "replace")[-_TAIL:]
        if done.stopped_for is None and done.returncode == 0:
            self.log.info("hook_done", hook_event=event, job=job.id, program=program, seconds=round(done.seconds, 3),
                          stdout=out, stderr=err)
            return 0
        why = (f"stopped after hooks.timeout_seconds ({self.config.timeout_seconds:g} s)"
               if done.stopped_for == "timeout" else f"exited with {done.returncode}")
        self.log.warning("hook_failed", hook_event=event, job=job.id, program=program, returncode=done.returncode,
                         stopped_for=done.stopped_for, stdout=out, stderr=err,
                         message=f"the hook {why}; the job itself is not affected")
        return None if done.stopped_for else done.returncode

    def close(self, timeout: float = 30.0) -> None:
        """Run what is queued (up to ``timeout`` seconds), then stop."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
