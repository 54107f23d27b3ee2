"""The journal's commits: which wait for the disk, and which writes share one commit."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from omad.journal import JobStatus, Journal, StageStatus


def _statements(journal: Journal) -> list[str]:
    seen: list[str] = []
    journal._db.set_trace_callback(seen.append)
    return seen


def _synchronous(journal: Journal) -> int:
    return int(journal._db.execute("PRAGMA synchronous").fetchone()[0])


def test_progress_commits_without_an_fsync_and_everything_else_with_one(tmp_path: Path) -> None:
    """GIVEN a running job THEN its progress is committed with synchronous=NORMAL (no fsync: a power cut may take
    it back, harmlessly) and visible to another reader at once; every other write, and the connection after a
    progress write (also one that fails), stays synchronous=FULL."""
    journal = Journal(tmp_path / "omad.db")
    job = journal.create(cid="c1", route="caption", name="clip", inputs=[], options={}, dropped_at=time.time(),
                         status=JobStatus.QUEUED)
    assert _synchronous(journal) == 2  # FULL
    seen = _statements(journal)
    journal.set_progress(job.id, "burn", 0.25)
    assert seen[0] == "PRAGMA synchronous=NORMAL" and seen[-1] == "PRAGMA synchronous=FULL"
    assert seen.index("BEGIN IMMEDIATE") < seen.index("COMMIT")
    other = sqlite3.connect(tmp_path / "omad.db")
    assert other.execute("SELECT progress, stage FROM jobs WHERE id=?", (job.id,)).fetchone() == (0.25, "burn")
    assert _synchronous(journal) == 2

    seen.clear()
    journal.start_attempt(job.id)
    assert not any("synchronous" in s for s in seen)

    with pytest.raises(ZeroDivisionError), journal._tx(durable=False):
        1 / 0  # noqa: B018
    assert _synchronous(journal) == 2 and not journal._db.in_transaction


def test_a_finished_stage_is_billed_and_a_published_job_ends_its_attempt_in_one_commit(tmp_path: Path) -> None:
    """GIVEN a stage that finished holding two lanes THEN its checkpoint and the bill are one transaction; GIVEN the
    job published THEN its DONE status, outputs and the attempt's end are one transaction."""
    journal = Journal(tmp_path / "omad.db")
    job = journal.create(cid="c1", route="caption", name="clip", inputs=[], options={}, dropped_at=time.time(),
                         status=JobStatus.QUEUED)
    attempt = journal.start_attempt(job.id)
    journal.stage_started(job.id, "burn", "cpu", attempt)
    journal.add_seconds(job.id, "cpu", 0.5)  # an earlier failed attempt's bill
    seen = _statements(journal)
    journal.stage_done(job.id, "burn", {"artifacts": {}}, billed={"cpu": 1.25, "gpu": 0.75})
    assert seen.count("COMMIT") == 1
    row = journal.get(job.id)
    assert row is not None and (row.cpu_seconds, row.gpu_seconds) == (1.75, 0.75)
    assert [s["status"] for s in journal.stages(job.id)] == [StageStatus.DONE]

    seen.clear()
    journal.published(job.id, {".mp4": "/outbox/clip.mp4"})
    assert seen.count("COMMIT") == 1
    row = journal.get(job.id)
    assert row is not None and row.status is JobStatus.DONE and row.progress == 1.0
    assert row.result == {"outputs": {".mp4": "/outbox/clip.mp4"}} and row.finished_at is not None
    assert [(a["attempt"], a["outcome"]) for a in journal.attempts(job.id)] == [(1, "done")]
    assert journal.attempts(job.id)[0]["finished_at"] is not None
