"""The job folder's layout: one value that names every path in it, used by both executors and the worker.

``<jobs>/<job>/`` holds:

- ``inputs/`` — the claimed drops (written by the claim, read by every stage);
- ``runs/<stage>.<attempt>/`` — what one attempt of a stage wrote: its ``work``
  folder, wherever it ran (the daemon's own process or an ``omad worker``); a
  worker commits its signed ``result.json`` there, and holds
  ``runs/<stage>.<attempt>.lock`` beside it while it runs;
- ``attempts/<attempt>/<stage>/`` — the attempt's scratch, removed by the
  stage's cleanup;
- ``dispatch/`` — the celery executor's fences (``<stage>.json``) and the task
  messages as sent (``<task id>.json``); written by the daemon only.

Artifacts are journaled relative to the job folder, so a later stage, the
publish and a restarted daemon find them whichever executor ran the stage.
Nothing here touches the disk except :meth:`JobFolder.fresh_run`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JobFolder", "INPUTS", "RUNS", "ATTEMPTS", "DISPATCH", "RESULT"]

#: the claimed inputs
INPUTS = "inputs"
#: one folder per stage attempt
RUNS = "runs"
#: per-attempt scratch
ATTEMPTS = "attempts"
#: fences and sent messages (celery executor)
DISPATCH = "dispatch"
#: a worker's committed reply, inside the attempt's run folder
RESULT = "result.json"


@dataclass(frozen=True)
class JobFolder:
    """The paths of one job's folder (``root`` is ``<jobs>/<job id>`` on this machine)."""

    root: Path

    @property
    def inputs(self) -> Path:
        return self.root / INPUTS

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    @property
    def dispatch(self) -> Path:
        return self.root / DISPATCH

    def run(self, stage: str, attempt: int) -> Path:
        """Where attempt ``attempt`` of ``stage`` writes (its ``StageContext.work``)."""
        return self.runs / f"{stage}.{attempt}"

    def run_prefix(self, stage: str, attempt: int) -> str:
        """The run folder relative to the job folder: the prefix of every artifact the attempt names."""
        return f"{RUNS}/{stage}.{attempt}"

    def run_lock(self, stage: str, attempt: int) -> Path:
        """The lock the one live copy of a worker's task holds beside its run folder."""
        return self.runs / f"{stage}.{attempt}.lock"

    def result(self, stage: str, attempt: int) -> Path:
        return self.run(stage, attempt) / RESULT

    def scratch(self, attempt: int, stage: str) -> Path:
        """The attempt's temporary folder (never shared by attempts; removed after the stage)."""
        return self.root / ATTEMPTS / str(attempt) / stage

    def fence(self, stage: str) -> Path:
        """Which task of ``stage`` may commit (celery executor)."""
        return self.dispatch / f"{stage}.json"

    def sent(self, task_id: str) -> Path:
        """The task message as the daemon sent it (a re-send after a restart is the same message)."""
        return self.dispatch / f"{task_id}.json"

    def relative(self, path: Path) -> str:
        """``path`` (inside the job folder) as the POSIX name journals and messages carry."""
        return path.relative_to(self.root).as_posix()

    def fresh_run(self, stage: str, attempt: int) -> Path:
        """The attempt's run folder, emptied of what a killed copy of the same attempt left half-written."""
        out = self.run(stage, attempt)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return out
