"""The journal: one SQLite database (WAL) that is the only source of truth for job state.

Every transition is one transaction. A job's ``content_id`` is derived from its
route and the content hashes of its inputs, so a re-drop of the same content is
recognised. A finished stage is checkpointed with its result, so after a crash
the job resumes at its first unfinished stage. This module never touches files
other than the database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Required, TypedDict, cast

from .errors import ConfigError, TransientError

__all__ = ["Journal", "Job", "JobStatus", "StageStatus", "StageRow", "InputRecord", "QueueEntry", "content_id",
           "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


class JobStatus(StrEnum):
    CLAIMING = "claiming"  # row written, inputs being moved out of the inbox
    QUEUED = "queued"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"  # a transient failure; waits for next_attempt_at
    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"
    #: stopped after planning and pictures until a person presses Render on its storyboard (omad.storyboard)
    REVIEW = "review"

    @property
    def final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.DUPLICATE)


class StageStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class InputRecord(TypedDict, total=False):
    """One entry of a job's ``inputs`` (journaled as JSON).

    A *claim* (``claim`` true) is an inbox entry omad took: where it came from (``source``, relative to the
    inbox), its ``kind`` (file or dir), ``size`` and ``mtime_ns`` at the claim. A *role* (``claim`` false) names
    what a stage reads under ``role`` (``video``, ``srt``, ``brief``...), inside a claim.
    """

    claim: Required[bool]
    #: where it is, relative to the job folder (``inputs/<name>``...)
    stored: Required[str]
    #: the name the user gave it
    name: Required[str]
    sha256: Required[str]
    kind: str
    source: str
    size: int
    mtime_ns: int
    role: str


class StageRow(TypedDict):
    """One row of a job's stages, as :meth:`Journal.stages` reads it."""

    job_id: str
    name: str
    #: a :class:`StageStatus` value
    status: str
    lane: str | None
    attempt: int
    started_at: float | None
    finished_at: float | None
    #: the stage's ``StageResult.to_dict()`` once done
    result: dict[str, Any] | None
    #: the error record (``OmadError.to_dict()``) once failed
    error: dict[str, Any] | None
    #: the celery task that runs or ran it
    task_id: str | None
    worker: str | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    content_id TEXT NOT NULL,
    route TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    dropped_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    inputs TEXT NOT NULL DEFAULT '[]',
    options TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    result TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',
    duplicate_of TEXT,
    cpu_seconds REAL NOT NULL DEFAULT 0,
    gpu_seconds REAL NOT NULL DEFAULT 0,
    trace TEXT
);
CREATE INDEX IF NOT EXISTS jobs_content ON jobs(content_id);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS stages (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    lane TEXT,
    attempt INTEGER NOT NULL,
    started_at REAL,
    finished_at REAL,
    result TEXT,
    error TEXT,
    task_id TEXT,
    worker TEXT,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    stage TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS seen (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    job_id TEXT NOT NULL
);
"""

# Nullable columns added after a schema version shipped: older journals get them on open. An older omad
# reads rows by column name and ignores them, so adding one needs no new SCHEMA_VERSION.
_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("jobs", "trace", "TEXT"),  # the W3C traceparent of the job's root span (tracing on), see omad.tracing
    ("stages", "task_id", "TEXT"),  # the Celery task of the stage's current dispatch (celery executor)
    ("stages", "worker", "TEXT"),  # the worker that ran it
    ("jobs", "priority", "INTEGER NOT NULL DEFAULT 0"),  # higher first; see omad.controls
)


def content_id(route: str, hashes: dict[str, str]) -> str:
    """Stable id of a drop: its route plus the content hash of each input role."""
    h = hashlib.sha256(route.encode())
    for role in sorted(hashes):
        h.update(f"\0{role}\0{hashes[role]}".encode())
    return h.hexdigest()[:16]


@dataclass
class Job:
    id: str
    content_id: str
    route: str
    name: str
    status: JobStatus
    stage: str | None
    progress: float
    attempts: int
    next_attempt_at: float | None
    dropped_at: float
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    inputs: list[InputRecord]
    options: dict[str, Any]
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    trace: str | None = None  # W3C traceparent of the job's root span; only while tracing is on
    priority: int = 0  # higher first (low -10, normal 0, high 10); see omad.controls

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            content_id=row["content_id"],
            route=row["route"],
            name=row["name"],
            status=JobStatus(row["status"]),
            stage=row["stage"],
            progress=row["progress"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            dropped_at=row["dropped_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            inputs=json.loads(row["inputs"]),
            options=json.loads(row["options"]),
            error=json.loads(row["error"]) if row["error"] else None,
            result=json.loads(row["result"]) if row["result"] else None,
            warnings=json.loads(row["warnings"]),
            duplicate_of=row["duplicate_of"],
            cpu_seconds=row["cpu_seconds"],
            gpu_seconds=row["gpu_seconds"],
            trace=row["trace"],
            priority=row["priority"],
        )

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["status"] = self.status.value
        return d


@dataclass(frozen=True)
class QueueEntry:
    """A runnable job as the queue orders it: its id, priority and when it was queued."""

    id: str
    priority: int
    created_at: float


class Journal:
    """Thread-safe access to the job database. One connection, one lock, one transaction a call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"cannot open the journal ({e}). Check that the state dir is writable.", file=path) from e
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            self._db.executescript(_SCHEMA)
            # This journal's own id: names its tasks on a broker other daemons (or an older journal) may share.
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('instance', ?)", (uuid.uuid4().hex[:10],))
            for table, column, decl in _ADDED_COLUMNS:
                have = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise ConfigError(
                    f"the journal was written by a newer omad (schema {row['value']}, this one knows "
                    f"{SCHEMA_VERSION}). Upgrade omad or use another --state-dir.",
                    file=self.path,
                )

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the lock; a failure to begin or commit is a ``TransientError``.

        ``durable=False`` commits without an fsync (``synchronous=NORMAL`` for that one commit), for what a power
        cut may take back without harm: a running stage's progress. SQLite's WAL keeps such a commit atomic and
        in order, and the next durable commit's fsync carries it to the disk with its own; a crash of omad alone
        (not of the machine) loses neither kind.
        """
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    raise TransientError(f"the journal is busy or read-only ({e}).", file=self.path) from e
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                else:
                    try:
                        self._db.execute("COMMIT")
                    except sqlite3.OperationalError as e:
                        # A failed COMMIT may already have rolled back.
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        raise TransientError(f"could not write the journal ({e}).", file=self.path) from e
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    @property
    def instance(self) -> str:
        """The journal's id, made when it was created (distinct for every state dir)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        return str(row["value"])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table (the queue's pause state lives there: see omad.controls)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    # --- reading -------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def find(self, prefix: str) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE id LIKE ? ORDER BY created_at", (prefix + "%",))
            return [Job.from_row(r) for r in rows.fetchall()]

    def jobs(self, statuses: list[JobStatus] | None = None, limit: int | None = None) -> list[Job]:
        sql = "SELECT * FROM jobs"
        args: list[Any] = []
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = [s.value for s in statuses]
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [Job.from_row(r) for r in self._db.execute(sql, args).fetchall()]

    def jobs_since(self, since: float) -> list[Job]:
        """Jobs created at or after ``since`` (Unix seconds), oldest first: the analytics' window."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE created_at>=? ORDER BY created_at, rowid",
                                    (since,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def by_content(self, cid: str) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE content_id=? ORDER BY created_at", (cid,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def runnable_keys(self, now: float) -> list[QueueEntry]:
        """Queued jobs, and waiting retries whose time has come, oldest first; each as only what orders the queue.

        The dispatcher asks every time a job ends, to start one or two of a queue that may hold hundreds: a
        whole ``Job`` each (~40 us of JSON) made that the daemon's largest cost after the stages themselves.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, priority, created_at FROM jobs WHERE status=? OR (status=? AND next_attempt_at<=?) "
                "ORDER BY created_at",
                (JobStatus.QUEUED.value, JobStatus.RETRY_WAIT.value, now),
            ).fetchall()
        return [QueueEntry(r["id"], r["priority"], r["created_at"]) for r in rows]

    def stages(self, job_id: str) -> list[StageRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM stages WHERE job_id=? ORDER BY COALESCE(started_at, 0)", (job_id,)
            ).fetchall()
        out: list[StageRow] = []
        for r in rows:
            d = dict(r)
            d["result"] = json.loads(d["result"]) if d["result"] else None
            d["error"] = json.loads(d["error"]) if d["error"] else None
            out.append(cast(StageRow, d))
        return out

    def restarts(self, job_id: str) -> int:
        """How many of the job's latest attempts in a row omad's own restart (a crash, kill -9) interrupted."""
        with self._lock:
            rows = self._db.execute("SELECT outcome FROM attempts WHERE job_id=? AND finished_at IS NOT NULL "
                                    "ORDER BY id DESC", (job_id,)).fetchall()
        count = 0
        for row in rows:
            if row[0] != "interrupted":
                break
            count += 1
        return count

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM attempts WHERE job_id=? ORDER BY id", (job_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["error"] = json.loads(d["error"]) if d["error"] else None
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    def seen(self, path: str, size: int, mtime_ns: int) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id FROM seen WHERE path=? AND size=? AND mtime_ns=?", (path, size, mtime_ns)
            ).fetchone()
        return row["job_id"] if row else None

    def writable(self) -> bool:
        """True when a write transaction can commit (for /readyz)."""
        try:
            with self._tx() as db:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('last_write_check', ?)", (str(time.time()),))
            return True
        except (TransientError, sqlite3.Error):
            return False

    def integrity(self) -> str:
        with self._lock:
            row = self._db.execute("PRAGMA quick_check").fetchone()
        return str(row[0])

    # --- transitions -----------------------------------------------------------

    def create(
        self,
        *,
        cid: str,
        route: str,
        name: str,
        inputs: list[InputRecord],
        options: dict[str, Any],
        dropped_at: float,
        status: JobStatus = JobStatus.CLAIMING,
        duplicate_of: str | None = None,
        priority: int = 0,
    ) -> Job:
        now = time.time()
        with self._tx() as db:
            n = db.execute("SELECT COUNT(*) FROM jobs WHERE content_id=?", (cid,)).fetchone()[0]
            job_id = cid if n == 0 else f"{cid}-{n + 1}"
            db.execute(
                "INSERT INTO jobs(id, content_id, route, name, status, dropped_at, created_at, updated_at,"
                " inputs, options, duplicate_of, finished_at, priority) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    cid,
                    route,
                    name,
                    status.value,
                    dropped_at,
                    now,
                    now,
                    json.dumps(inputs),
                    json.dumps(options),
                    duplicate_of,
                    now if status.final else None,
                    priority,
                ),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of one job in one transaction (JSON columns are encoded here)."""
        cols = []
        args: list[Any] = []
        for key, value in fields.items():
            if key in ("inputs", "options", "error", "result", "warnings"):
                value = json.dumps(value) if value is not None else None
            elif isinstance(value, Enum):
                value = value.value
            cols.append(f"{key}=?")
            args.append(value)
        cols.append("updated_at=?")
        args.append(time.time())
        args.append(job_id)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {', '.join(cols)} WHERE id=?", args)

    def set_progress(self, job_id: str, stage: str, progress: float) -> None:
        """A running stage's progress, committed without waiting for the disk (see ``_tx(durable=False)``)."""
        with self._tx(durable=False) as db:
            db.execute(
                "UPDATE jobs SET stage=?, progress=?, updated_at=? WHERE id=?",
                (stage, round(progress, 4), time.time(), job_id),
            )

    def start_attempt(self, job_id: str) -> int:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT attempts, started_at FROM jobs WHERE id=?", (job_id,)).fetchone()
            attempt = int(row["attempts"]) + 1
            db.execute(
                "UPDATE jobs SET status=?, attempts=?, started_at=COALESCE(started_at, ?), updated_at=?,"
                " next_attempt_at=NULL WHERE id=?",
                (JobStatus.RUNNING.value, attempt, now, now, job_id),
            )
            db.execute(
                "INSERT INTO attempts(job_id, attempt, started_at) VALUES(?,?,?)",
                (job_id, attempt, now),
            )
        return attempt

    def end_attempt(self, job_id: str, outcome: str, stage: str | None, error: dict[str, Any] | None) -> None:
        with self._tx() as db:
            self._end_attempt(db, job_id, outcome, stage, error)

    @staticmethod
    def _end_attempt(db: sqlite3.Connection, job_id: str, outcome: str, stage: str | None,
                     error: dict[str, Any] | None) -> None:
        db.execute(
            "UPDATE attempts SET finished_at=?, outcome=?, stage=?, error=? WHERE id=("
            "SELECT MAX(id) FROM attempts WHERE job_id=?)",
            (time.time(), outcome, stage, json.dumps(error) if error else None, job_id),
        )

    def published(self, job_id: str, outputs: dict[str, str]) -> None:
        """The job is done with ``outputs`` (suffix -> published path), and its attempt with it: one transaction."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE jobs SET status=?, finished_at=?, progress=1.0, result=?, error=NULL, updated_at=?"
                       " WHERE id=?", (JobStatus.DONE.value, now, json.dumps({"outputs": outputs}), now, job_id))
            self._end_attempt(db, job_id, "done", None, None)

    def stage_started(self, job_id: str, name: str, lane: str, attempt: int, task_id: str | None = None) -> None:
        """A stage attempt begins (``task_id``: the Celery task it was sent as, for reconciling after a restart)."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO stages(job_id, name, status, lane, attempt, started_at, task_id) VALUES(?,?,?,?,?,?,?)"
                " ON CONFLICT(job_id, name) DO UPDATE SET status=excluded.status, lane=excluded.lane,"
                " attempt=excluded.attempt, started_at=excluded.started_at, finished_at=NULL, error=NULL,"
                " task_id=excluded.task_id, worker=NULL",
                (job_id, name, StageStatus.RUNNING.value, lane, attempt, now, task_id),
            )
            db.execute("UPDATE jobs SET stage=?, progress=0, updated_at=? WHERE id=?", (name, now, job_id))

    def stage_done(self, job_id: str, name: str, result: dict[str, Any],
                   billed: dict[str, float] | None = None) -> None:
        """Checkpoint a finished stage, billing ``billed`` (lane -> seconds) to the job in the same transaction.

        A failed attempt's seconds are billed by ``add_seconds`` alone.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE stages SET status=?, finished_at=?, result=?, worker=? WHERE job_id=? AND name=?",
                (StageStatus.DONE.value, time.time(), json.dumps(result), result.get("worker") or None, job_id,
                 name),
            )
            for lane, seconds in (billed or {}).items():
                self._bill(db, job_id, lane, seconds)

    def stage_failed(self, job_id: str, name: str, error: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE stages SET status=?, finished_at=?, error=? WHERE job_id=? AND name=?",
                (StageStatus.FAILED.value, time.time(), json.dumps(error), job_id, name),
            )

    def leave_status(self, job_id: str, current: JobStatus, **fields: Any) -> bool:
        """Set columns of a job only while it is still in ``current`` (one transaction); whether it was."""
        cols = [f"{k}=?" for k in fields]
        args: list[Any] = [v.value if isinstance(v, Enum) else v for v in fields.values()]
        with self._tx() as db:
            cur = db.execute(f"UPDATE jobs SET {', '.join([*cols, 'updated_at=?'])} WHERE id=? AND status=?",
                             [*args, time.time(), job_id, current.value])
            return bool(cur.rowcount)

    def add_seconds(self, job_id: str, lane: str, seconds: float) -> None:
        """Bill ``seconds`` of ``lane`` to the job's cost counters."""
        with self._tx() as db:
            self._bill(db, job_id, lane, seconds)

    @staticmethod
    def _bill(db: sqlite3.Connection, job_id: str, lane: str, seconds: float) -> None:
        column = "gpu_seconds" if lane == "gpu" else "cpu_seconds"
        db.execute(f"UPDATE jobs SET {column}={column}+? WHERE id=?", (seconds, job_id))

    def forget_stage(self, job_id: str, name: str) -> None:
        """Drop one stage's checkpoint, so the job's next attempt runs it again."""
        with self._tx() as db:
            db.execute("DELETE FROM stages WHERE job_id=? AND name=?", (job_id, name))

    def reset_stages(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM stages WHERE job_id=?", (job_id,))

    def mark_seen(self, path: str, size: int, mtime_ns: int, job_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO seen(path, size, mtime_ns, job_id) VALUES(?,?,?,?)",
                (path, size, mtime_ns, job_id),
            )

    def recover(self) -> list[Job]:
        """After a crash: running jobs go back to the queue (their unfinished stage reruns).

        The attempt a crash interrupted is not charged to the job (omad's own restart is not the job's fault):
        it is recorded with the outcome ``interrupted`` and the job's attempt count goes back by one.
        :meth:`restarts` counts those, so the runner can stop a crash loop (``jobs.max_restarts``).
        """
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET attempts=MAX(0, attempts-1) WHERE status=? AND EXISTS (SELECT 1 FROM attempts a "
                "WHERE a.job_id=jobs.id AND a.finished_at IS NULL)",
                (JobStatus.RUNNING.value,),
            )
            db.execute(
                "UPDATE stages SET status=?, finished_at=NULL WHERE status=?",
                (StageStatus.FAILED.value, StageStatus.RUNNING.value),
            )
            db.execute(
                "UPDATE attempts SET finished_at=?, outcome='interrupted' WHERE finished_at IS NULL",
                (time.time(),),
            )
            db.execute(
                "UPDATE jobs SET status=?, updated_at=? WHERE status=?",
                (JobStatus.QUEUED.value, time.time(), JobStatus.RUNNING.value),
            )
        return self.jobs([JobStatus.CLAIMING])
