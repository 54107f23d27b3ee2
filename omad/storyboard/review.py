"""The journaled "waiting for review" state: where a video job stops, and the Render that sends it on.

A video job (route ``video`` or ``agent-video``) whose brief says
``review: true`` -- or, for a prompt brief that says nothing, ``llm.review``
in config -- stops before its ``render`` stage: its scenes are planned, its
pictures chosen and each scene spoken, nothing is rendered yet. The job's status is
``review`` (:attr:`~omad.journal.JobStatus.REVIEW`), which the scheduler never
starts, so it survives restarts as any journaled state does, and shows as
such on the status page, in the API and in ``omad status``.

Render records a stage called ``review`` in the journal whose artifact is the
reviewed storyboard (``scene_brief``), forgets the ``voice`` stage so it runs
again on that storyboard (its per-scene cache, :mod:`.voice_cache`, speaks only
the scenes whose words or voice changed), and puts the job back in the queue.
A job whose ``review`` stage is done is never stopped again. This module
decides and records; it never edits a storyboard (see :mod:`.board`).
"""

from __future__ import annotations

from typing import Any

from ..journal import Job, JobStatus, Journal

__all__ = ["REVIEW_STAGE", "STOPS_BEFORE", "REDONE", "REVIEWED_BRIEF", "wants_review", "waits_for_review", "park",
           "approve"]

#: The journal's name for the review, as a stage row: done once Render was pressed.
REVIEW_STAGE = "review"
#: The stage a reviewed job stops before: planning, pictures and each scene's voice are done (so the storyboard
#: knows every scene's length), nothing is rendered yet.
STOPS_BEFORE = "render"
#: Made again after the review, from the reviewed storyboard: its cache gives back every unchanged scene's voice.
REDONE = ("voice",)
#: The reviewed storyboard, in the job folder.
REVIEWED_BRIEF = "scenes.review.yaml"
_ROUTES = ("video", "agent-video")


def wants_review(job: Job, review_default: bool) -> bool:
    """Whether ``job`` stops for review: its brief's ``review``, else ``llm.review`` for a prompt video."""
    if job.route not in _ROUTES:
        return False
    said = job.options.get("review")
    if said is not None:
        return bool(said)
    return review_default and job.route == "agent-video"


def waits_for_review(job: Job, stage: str, done: dict[str, Any] | set[str], review_default: bool) -> bool:
    """Whether the runner must stop ``job`` before ``stage`` for a person to review it."""
    return stage == STOPS_BEFORE and REVIEW_STAGE not in done and wants_review(job, review_default)


def park(journal: Journal, job: Job, log: Any) -> None:
    """Stop ``job`` in the review state (the attempt that got it here is not charged: nothing failed)."""
    now = journal.get(job.id)
    attempts = max(0, (now.attempts if now is not None else 1) - 1)
    journal.update(job.id, status=JobStatus.REVIEW, stage=REVIEW_STAGE, attempts=attempts)
    journal.end_attempt(job.id, "review", REVIEW_STAGE, None)
    log.info("job_waiting_for_review", job=job.id, name=job.name,
             message="planning, pictures and voices are done; the job waits for a person to review its storyboard and "
                     f"press Render (page /jobs/{job.id}/storyboard, POST /api/jobs/{job.id}/render)")


def approve(journal: Journal, job: Job, brief: str, facts: dict[str, Any]) -> bool:
    """Record the review with its storyboard (``brief``, relative to the job folder) and queue the job again.

    False when the job is no longer waiting for review (rendered or cancelled meanwhile): nothing is recorded.
    """
    from ..stage import StageResult

    current = journal.get(job.id)
    if current is None or current.status is not JobStatus.REVIEW:
        return False
    # The review's row first: once the job is queued, the runner must already see it done.
    journal.stage_started(job.id, REVIEW_STAGE, "cpu", max(1, current.attempts))
    result = StageResult(artifacts={"scene_brief": brief}, publish={".scenes.yaml": "scene_brief"}, facts=facts)
    journal.stage_done(job.id, REVIEW_STAGE, result.to_dict())
    for name in REDONE:
        journal.forget_stage(job.id, name)
    return journal.leave_status(job.id, JobStatus.REVIEW, status=JobStatus.QUEUED, stage=None)
