"""Claiming: a decided drop becomes a journaled job, and its files leave the inbox.

The order is what makes a crash harmless: the job row (status ``claiming``,
with every input's source, hash, size and mtime) is written first, and only
then are the files moved into the job's work folder. ``finish`` is idempotent,
so after a crash at any point each file is either still in the inbox or under
a journaled job, and the claim is completed at the next start. A rejected drop
is journaled the same way and its files go to ``outbox/failed/``. The reverse,
``retry_job``, puts a failed job's originals back in the inbox.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
import traceback
from pathlib import Path
from typing import Any

from .config import Config
from .errors import InputError
from .events import Event, EventBus
from .intake import JobSpec, Rejection
from .journal import InputRecord, Job, JobStatus, Journal, content_id
from .names import display
from .outbox import safe_move
from .paths import Paths
from .records import Records
from .watcher import open_for_reading

__all__ = ["Claimer", "hash_path", "retry_job"]


def hash_path(path: Path) -> tuple[str, int]:
    """sha256 of a file, or of a folder's sorted (relative name, content hash) list.

    Links are hashed as links and FIFOs, sockets and devices by their kind: nothing
    is read through a link, and nothing that could block is ever opened.
    """
    h = hashlib.sha256()
    total = 0
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):  # refused at intake; hash the link itself, never what it points at
        h.update(os.fsencode(os.readlink(path)))
        return h.hexdigest(), 0
    if stat.S_ISDIR(st.st_mode):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files + [d for d in dirs if (Path(root) / d).is_symlink()]):
                p = Path(root) / name
                sub, size = hash_path(p)
                total += size
                h.update(os.fsencode(p.relative_to(path)) + f"\0{sub}\n".encode())
        return h.hexdigest(), total
    if not stat.S_ISREG(st.st_mode):
        h.update(f"special:{stat.S_IFMT(st.st_mode)}".encode())
        return h.hexdigest(), 0
    with os.fdopen(open_for_reading(path), "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            h.update(block)
            total += len(block)
    return h.hexdigest(), total


class Claimer:
    """Turns intake's decisions into journaled jobs and moves their files."""

    def __init__(self, config: Config, paths: Paths, journal: Journal, records: Records, events: EventBus,
                 log: Any) -> None:
        self.config = config
        self.paths = paths
        self.journal = journal
        self.records = records
        self.events = events
        self.log = log
        self.created: list[str] = []  # job ids created by this process (for `omad once`)

    def claims(self, d: JobSpec | Rejection) -> list[InputRecord]:
        """The journal's record of each claimed entry: where it came from (exact name), where it goes, its hash.

        A rejected drop is recorded even when it cannot be read: it is quarantined all the same.
        """
        claims: list[InputRecord] = []
        for e in d.claim:
            try:
                digest, size = hash_path(e.path)
            except Exception:
                if not isinstance(d, Rejection):
                    raise
                digest, size = "unreadable", e.size
            claims.append({"claim": True, "kind": str(e.kind), "source": str(e.path.relative_to(self.paths.inbox)),
                           "stored": f"inputs/{e.path.name}", "name": e.path.name, "sha256": digest, "size": size,
                           "mtime_ns": e.mtime_ns})
        return claims

    def quarantine(self, d: JobSpec | Rejection, exc: BaseException) -> bool:
        """Take a drop that broke intake to outbox/failed/ with the error; False if even that failed."""
        error = d.error if isinstance(d, Rejection) else InputError(
            f"omad could not take this drop because of an internal error ({type(exc).__name__}: {exc}). "
            "The files are kept in outbox/failed/; please report the log (outbox/logs/).",
            file=display(d.name), details={"bug": True})
        try:
            self.accept(Rejection(d.route, d.name, d.claim, error))
        except Exception:
            self.log.error("quarantine_failed", name=display(d.name), error=traceback.format_exc())
            return False
        return True

    def accept(self, d: JobSpec | Rejection) -> None:
        """Journal the drop, then move its files: into the job (a spec) or to outbox/failed/ (a rejection)."""
        claims = self.claims(d)
        name = display(d.name)
        if isinstance(d, Rejection):
            cid = content_id("rejected", {display(c["source"]): c["sha256"] for c in claims})
            unfinished = self._claiming(cid)
            if unfinished is not None:  # an earlier attempt to take these files failed half-way
                self.records.fail(unfinished, d.error, [self.paths.inbox / c["source"] for c in claims])
                return
            job = self.journal.create(cid=cid, route=d.route, name=name, inputs=claims, options={},
                                      dropped_at=d.dropped_at)
            self.created.append(job.id)
            self.log.warning("rejected", job=job.id, name=name, error=str(d.error))
            self.records.fail(job, d.error, [self.paths.inbox / c["source"] for c in claims])
            return
        roles: list[InputRecord] = []
        by_claim = {e.path: c for e, c in zip(d.claim, claims, strict=True)}
        hashes: dict[str, str] = {}
        for role, path in d.inputs.items():
            owner = next((e for e in d.claim if e.path == path or e.path in path.parents), None)
            if owner is None:
                continue
            c = by_claim[owner.path]
            stored = Path(c["stored"]) / path.relative_to(owner.path) if owner.path != path else Path(c["stored"])
            digest = c["sha256"] if owner.path == path else hash_path(path)[0]
            hashes[role] = digest
            roles.append({"claim": False, "role": role, "stored": str(stored), "name": path.name, "sha256": digest})
        cid = content_id(d.route, hashes | {"options": hashlib.sha256(repr(sorted(d.options.items())).encode())
                                            .hexdigest()})
        unfinished = self._claiming(cid)
        if unfinished is not None:  # an earlier attempt to take these files failed half-way: finish it
            self.finish(unfinished)
            return
        earlier = [j for j in self.journal.by_content(cid) if j.status not in (JobStatus.FAILED, JobStatus.DUPLICATE)]
        duplicate_of = earlier[0].id if earlier and self.config.intake.on_duplicate == "skip" else None
        job = self.journal.create(cid=cid, route=d.route, name=name, inputs=claims + roles, options=d.options,
                                  dropped_at=d.dropped_at, duplicate_of=duplicate_of, priority=self._priority(d))
        self.created.append(job.id)
        self.log.info("accepted", job=job.id, route=d.route, name=name, duplicate_of=duplicate_of)
        self.events.emit(Event.JOB_CREATED, job=job)
        self.finish(job)

    def _priority(self, d: JobSpec) -> int:
        """A brief's ``priority:``, else its inbox folder's (``intake.priorities``), else normal (0)."""
        from .controls import parse_priority

        if d.options.get("priority") is not None:
            return parse_priority(d.options["priority"])
        folder = next((e.route_folder for e in d.claim if e.route_folder), None)
        value = self.config.intake.priorities.get(folder) if folder else None
        return parse_priority(value) if value is not None else 0

    def _claiming(self, cid: str) -> Job | None:
        return next((j for j in self.journal.by_content(cid) if j.status == JobStatus.CLAIMING), None)

    def finish(self, job: Job) -> None:
        """Move a claiming job's inputs out of the inbox (idempotent: safe to repeat after a crash)."""
        work = self.paths.jobs / job.id
        keep = self.config.intake.inputs_after == "keep"
        for c in (c for c in job.inputs if c.get("claim")):
            src = self.paths.inbox / c["source"]
            dst = work / c["stored"]
            if dst.exists() and (keep or not src.exists()):
                continue
            if not src.exists():
                self.records.fail(job, InputError(
                    "disappeared from the inbox before omad could take it. Drop it again.", file=c["source"]), [])
                return
            safe_move(src, dst, copy_only=keep)
            if keep:
                st = src.stat()
                self.journal.mark_seen(c["source"], st.st_size, st.st_mtime_ns, job.id)
        if job.duplicate_of:
            earlier = self.journal.get(job.duplicate_of)
            self.dispose_inputs(job)
            self.journal.update(job.id, status=JobStatus.DUPLICATE, finished_at=time.time(), progress=1.0,
                                result={"duplicate_of": job.duplicate_of,
                                        "outputs": (earlier.result or {}).get("outputs") if earlier else None})
            self.log.info("duplicate", job=job.id, duplicate_of=job.duplicate_of,
                          message="the same content was dropped before; skipped (intake.on_duplicate: skip)")
            self.events.emit(Event.JOB_FINISHED, job=self.journal.get(job.id))
            return
        self.journal.update(job.id, status=JobStatus.QUEUED)

    def dispose_inputs(self, job: Job) -> None:
        """A finished job's inputs: archived (or deleted, per ``intake.inputs_after``); its work folder removed."""
        work = self.paths.jobs / job.id
        if self.config.intake.inputs_after == "archive":
            dest = self.paths.archive / time.strftime("%Y-%m-%d") / job.id
            for c in (c for c in job.inputs if c.get("claim")):
                src = work / c["stored"]
                if src.exists():
                    safe_move(src, dest / c["name"])
        shutil.rmtree(work, ignore_errors=True)

    def recover(self) -> None:
        """At start: finish claims a crash interrupted, and dispose of jobs that finished just before one."""
        for job in self.journal.recover():
            self.finish(job)
        try:
            folders = list(self.paths.jobs.iterdir())
        except OSError:
            return
        for folder in folders:
            finished = self.journal.get(folder.name)
            if finished is not None and finished.status in (JobStatus.DONE, JobStatus.DUPLICATE):
                self.dispose_inputs(finished)


def retry_job(journal: Journal, paths: Paths, job_id: str) -> str:
    """Put a failed job's originals back in the inbox (or make a waiting retry due now)."""
    found = journal.get(job_id)
    if found is None:
        matches = journal.find(job_id)
        if len(matches) != 1:
            raise InputError(f"no single job matches '{job_id}' ({len(matches)} found). See `omad status`.")
        found = matches[0]
    job = found
    if job.status == JobStatus.RETRY_WAIT:
        journal.update(job.id, next_attempt_at=time.time())
        return f"{job.id}: will run again now"
    if job.status != JobStatus.FAILED:
        raise InputError(f"job {job.id} is {job.status.value}; only failed or waiting jobs can be retried.")
    folder = Path((job.result or {}).get("failed_dir", ""))
    if not folder.is_dir():
        raise InputError(f"the inputs of job {job.id} are no longer in {folder}. Drop the files again.")
    moved = []
    for c in (c for c in job.inputs if c.get("claim")):
        src = folder / c["name"]
        if src.exists():
            safe_move(src, paths.inbox / c["source"])
            moved.append(c["source"])
    if not moved:
        raise InputError(f"none of the inputs of job {job.id} are in {folder} any more. Drop the files again.")
    (folder / "error.json").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()
    journal.update(job.id, result={"failed_dir": str(folder), "retried": True})
    return f"{job.id}: put {', '.join(moved)} back in the inbox"
