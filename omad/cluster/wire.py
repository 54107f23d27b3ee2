"""What comes off the broker or the shared folder, checked before anything of it is used.

:func:`accept_task` is the worker's door: a task message is taken only when
its signature is the daemon's, when it is the task the broker says it is (no
replay under another task id) and when every name in it has its shape and
stays inside the job folder. :func:`accept_reply` is the daemon's door: a
stage's reply is taken only when a worker signed it, when it answers this
very task and attempt, and when every artifact it names lies inside the
attempt's own folder. Both raise :class:`~omad.errors.Refused` with the
reason; nothing a refused message names is read or written.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import Refused
from ..routes import ROUTE_STAGES
from ..trust import (
    JOB_ID,
    Purpose,
    check_digest,
    check_role,
    check_seconds,
    check_suffix,
    inside,
    relative_name,
    verify,
)
from .task import StageTask, task_id

__all__ = ["accept_task", "accept_reply", "check_task", "task_paths", "MAX_ATTEMPT", "REPLY_STATES"]

#: No job runs this many attempts (``jobs.max_attempts`` is a small number): a larger one is forged.
MAX_ATTEMPT = 10_000
#: What a committed reply may say.
REPLY_STATES = ("done", "error")
_LANES = ("cpu", "gpu")


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(f"{what} ({value!r:.40}) is not a whole number from {low} to {high}; refused.")
    return value


def _names(mapping: Any, what: str) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise Refused(f"{what} is not a mapping; refused.")
    return {check_role(k, f"a role in {what}"): relative_name(v, f"{what}[{k}]") for k, v in mapping.items()}


def check_task(desc: StageTask) -> None:
    """Every name in a task message has its shape (the worker then checks the paths against its folder)."""
    if not isinstance(desc.job, str) or not JOB_ID.fullmatch(desc.job):
        raise Refused(f"the task's job id ({desc.job!r:.40}) is not a job id; refused.")
    if not isinstance(desc.instance, str) or not desc.instance.isalnum() or len(desc.instance) > 64:
        raise Refused(f"the task's instance ({desc.instance!r:.40}) is not a journal id; refused.")
    stages = ROUTE_STAGES.get(desc.route) if isinstance(desc.route, str) else None
    if stages is None:
        raise Refused(f"the task names an unknown route ({desc.route!r:.40}); refused.")
    if desc.stage not in stages:
        raise Refused(f"the task names stage {desc.stage!r:.40}, which route {desc.route} does not have; refused.")
    _int(desc.attempt, "the task's attempt", 1, MAX_ATTEMPT)
    expected = task_id(desc.instance, desc.job, desc.stage, desc.attempt)
    # `omad pause --now` re-sends a stopped attempt as <id>.r<N> (workers remember the revoked id).
    if desc.task_id != expected and not re.fullmatch(re.escape(expected) + r"\.r[1-9][0-9]{0,3}", str(desc.task_id)):
        raise Refused(f"the task id {desc.task_id!r:.80} does not match its job, stage and attempt; refused.")
    if desc.lane not in _LANES:
        raise Refused(f"the task names lane {desc.lane!r:.20}; refused.")
    work = desc.work if isinstance(desc.work, str) else ""
    if "\x00" in work or not PurePosixPath(work).is_absolute() or PurePosixPath(work).name != desc.job \
            or ".." in PurePosixPath(work).parts:
        raise Refused(f"the task's job folder ({work!r:.120}) is not the folder of job {desc.job}; refused.")
    _names(desc.inputs, "the task's inputs")
    _names(desc.artifacts, "the task's artifacts")
    if not isinstance(desc.files, dict):
        raise Refused("the task's file list is not a mapping; refused.")
    for rel, digest in desc.files.items():
        relative_name(rel, "a file in the task's file list")
        check_digest(digest, f"the digest of {rel}")
    check_seconds(desc.timeout, "the task's timeout")
    for name in ("options", "settings", "guardrails", "trace"):
        if not isinstance(getattr(desc, name), dict):
            raise Refused(f"the task's {name} is not a mapping; refused.")


def accept_task(message: Any, key: bytes, delivered_as: str | None) -> StageTask:
    """The task in ``message`` if it is signed, is the task ``delivered_as`` names, and its names check out."""
    body = verify(message, key, Purpose.TASK, "a task message")
    desc = StageTask.from_dict(body)
    check_task(desc)
    if delivered_as is not None and delivered_as != desc.task_id:
        raise Refused(f"a message for task {desc.task_id} was delivered as task {delivered_as:.120} "
                      "(a replay under another id); refused.")
    return desc


def task_paths(desc: StageTask, job_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The task's inputs and artifacts as paths on this machine, each checked to stay inside ``job_dir``."""
    inputs = {role: inside(job_dir, rel, f"input {role}") for role, rel in desc.inputs.items()}
    artifacts = {role: inside(job_dir, rel, f"artifact {role}") for role, rel in desc.artifacts.items()}
    return inputs, artifacts


def accept_reply(reply: Any, key: bytes, desc: StageTask, job_dir: Path | None) -> dict[str, Any]:
    """A committed reply, if a worker signed it for this task and attempt and its names stay in their folders.

    ``job_dir`` is the job folder on this machine (None in object-store mode before the files are fetched:
    the names are then checked for shape only, and again as paths when they are placed).
    """
    body = verify(reply, key, Purpose.REPLY, f"the reply to task {desc.task_id}")
    if body.get("status") not in REPLY_STATES:
        raise Refused(f"the reply to task {desc.task_id} has status {body.get('status')!r:.40}; refused.")
    if body.get("task_id") != desc.task_id or body.get("attempt") != desc.attempt:
        raise Refused(f"the reply names task {body.get('task_id')!r:.80} attempt {body.get('attempt')!r:.10}, "
                      f"not the task it was read for ({desc.task_id}); refused.")
    seconds = body.get("lane_seconds") or {}
    if not isinstance(seconds, dict) or any(k not in _LANES for k in seconds):
        raise Refused("the reply's lane seconds name an unknown lane; refused.")
    for lane, value in seconds.items():
        check_seconds(value, f"the reply's {lane} seconds")
    files = body.get("files") or {}
    if not isinstance(files, dict):
        raise Refused("the reply's file list is not a mapping; refused.")
    prefix = f"runs/{desc.stage}.{desc.attempt}/"
    for rel, digest in files.items():
        if not relative_name(rel, "a file in the reply").startswith(prefix):
            raise Refused(f"the reply lists {rel:.120}, outside the attempt's folder {prefix}; refused.")
        check_digest(digest, f"the digest of {rel}")
    if body["status"] == "error":
        if not isinstance(body.get("error"), dict):
            raise Refused("an error reply carries no error record; refused.")
        return body
    result = body.get("result")
    if not isinstance(result, dict):
        raise Refused("a done reply carries no result; refused.")
    artifacts = _names(result.get("artifacts") or {}, "the reply's artifacts")
    for role, rel in artifacts.items():
        if not rel.startswith(prefix):
            raise Refused(f"the reply's artifact {role} ({rel:.120}) is outside the attempt's folder {prefix}; "
                          "refused.")
        if job_dir is not None:
            inside(job_dir, rel, f"the reply's artifact {role}")
    publish = result.get("publish") or {}
    if not isinstance(publish, dict):
        raise Refused("the reply's publish list is not a mapping; refused.")
    for suffix, role in publish.items():
        check_suffix(suffix, "a publish suffix in the reply")
        check_role(role, f"the role published as {suffix}")
    worker = result.get("worker", "")
    if not isinstance(worker, str) or len(worker) > 255 or any(ord(c) < 32 for c in worker):
        raise Refused("the reply's worker name is not a host name; refused.")
    return body
