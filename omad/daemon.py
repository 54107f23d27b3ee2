"""The daemon: one loop that watches, settles, takes drops in, and runs their jobs.

The main loop (one thread) drains watcher events, rescans, settles, asks intake
what is ready, claims drops into the journal and starts job threads. A job
thread runs its route's stages in order, each inside its lane's slot,
checkpointing every finished stage, then publishes to the outbox. Claiming
moves a drop out of the inbox only after its job row exists, so a crash at any
point leaves each file either in the inbox or under a journaled job.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .errors import Cancelled, GuardrailBlocked, InputError, OmadError, StageFailed, TransientError
from .ffmpeg import ffmpeg_version
from .guardrails import guardrails_for
from .intake import Intake, JobSpec, Rejection, Waiting
from .journal import Job, JobStatus, Journal, content_id
from .lanes import Lanes
from .log import get_logger
from .names import display
from .outbox import Outbox, safe_move
from .procs import stop_all
from .routes import stages_for
from .stage import StageContext, StageResult
from .summary import job_cost
from .systemd import notify, watchdog_seconds
from .watcher import InboxWatcher, Settler, open_for_reading, scan_inbox

__all__ = ["Daemon", "Paths", "EventBus"]


@dataclass
class Paths:
    inbox: Path
    outbox: Path
    state: Path

    @property
    def journal(self) -> Path:
        return self.state / "journal.sqlite"

    @property
    def jobs(self) -> Path:
        return self.state / "jobs"

    @property
    def archive(self) -> Path:
        return self.state / "archive"


class EventBus:
    """Synchronous fan-out of daemon events (metrics and the status page listen here)."""

    def __init__(self) -> None:
        self._subs: list[Callable[[str, dict[str, Any]], None]] = []

    def subscribe(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        self._subs.append(fn)

    def emit(self, event: str, **data: Any) -> None:
        for fn in list(self._subs):
            try:
                fn(event, data)
            except Exception:  # an observer must never break a job
                get_logger().warning("event_listener_failed", event=event, error=traceback.format_exc(limit=3))


def _hash_path(path: Path) -> tuple[str, int]:
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
                sub, size = _hash_path(p)
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


_REHASH_BYTES = 64 * 1024 * 1024


@dataclass
class _Running:
    thread: threading.Thread
    cancel: threading.Event = field(default_factory=threading.Event)


class Daemon:
    def __init__(self, config: Config, paths: Paths, *, once: bool = False) -> None:
        self.config = config
        self.paths = paths
        self.once = once
        self.log = get_logger("omad.daemon")
        self.events = EventBus()
        paths.state.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(paths.journal)
        self.outbox = Outbox(paths.outbox, config.outbox_options.on_conflict)
        self.lanes = Lanes(config.lanes.cpu_slots(), config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds)
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.watcher = InboxWatcher(paths.inbox, config.watch.mode, config.watch.poll_interval_seconds, self.wake)
        self.settler = Settler(paths.inbox, config.watch.settle_seconds, config.watch.ignore,
                               config.watch.open_writer_max_seconds)
        self._specials_logged: set[Path] = set()
        # What waits in the inbox and why, rebuilt each tick for the status page (read from other threads).
        self.inbox_view: dict[str, list[dict[str, str]]] = {"waiting": [], "ignored": []}
        self.loop_errors = 0
        self.intake = Intake(config, paths.inbox, once=once)
        self.waiting: list[Waiting] = []
        self.running: dict[str, _Running] = {}
        self._running_lock = threading.Lock()
        self.inbox_ok = True
        self.heartbeat = time.monotonic()
        self._next_scan = 0.0
        self.created: list[str] = []  # job ids created by this process (for `omad once`)
        self._cancelled: set[str] = set()  # running jobs a person cancelled (see cancel())
        watchdog = watchdog_seconds()
        self._watchdog_every = watchdog / 2 if watchdog else None
        self._last_ping = 0.0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self.outbox.ensure()
        self.paths.jobs.mkdir(parents=True, exist_ok=True)
        for job in self.journal.recover():
            self._finish_claim(job)
        self._dispose_leftovers()
        self.log.info("started", version=__version__, inbox=str(self.paths.inbox), outbox=str(self.paths.outbox),
                      mode=self.config.watch.mode, cpu_slots=self.lanes.cpu.capacity)
        self.events.emit("started")

    def _dispose_leftovers(self) -> None:
        """Work folders of jobs that finished just before a crash: archive their inputs now."""
        try:
            folders = list(self.paths.jobs.iterdir())
        except OSError:
            return
        for folder in folders:
            job = self.journal.get(folder.name)
            if job is not None and job.status in (JobStatus.DONE, JobStatus.DUPLICATE):
                self._dispose_inputs(job)

    def run(self, tick_seconds: float = 0.5) -> None:
        """Run until ``stop_event`` is set (SIGTERM/SIGINT in ``omad run``)."""
        self.start()
        notify("READY=1\nSTATUS=watching " + str(self.paths.inbox))
        try:
            while not self.stop_event.is_set():
                self._guarded_tick()
                self._ping_watchdog()
                self.wake.wait(timeout=self._sleep_for(tick_seconds))
                self.wake.clear()
        finally:
            self.shutdown()

    def _guarded_tick(self) -> None:
        """One tick; whatever escapes it is logged and the loop goes on (each drop has its own boundary too)."""
        try:
            self.tick()
        except Exception:
            self.loop_errors += 1
            self.log.error("loop_error", error=traceback.format_exc())
            self.stop_event.wait(0.5)  # never spin on a fault that repeats every tick

    def _sleep_for(self, tick_seconds: float) -> float:
        """Until the next tick, or sooner when a file's settle time runs out, so drops start without delay."""
        wait = min(tick_seconds, self._watchdog_every or tick_seconds)
        deadline = self.settler.next_deadline()
        if deadline is not None:
            wait = min(wait, max(0.01, deadline - time.monotonic() + 0.005))
        return wait

    def _ping_watchdog(self) -> None:
        if self._watchdog_every is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self._watchdog_every:
            notify("WATCHDOG=1")
            self._last_ping = now

    def shutdown(self, grace: float | None = None) -> None:
        """Stop taking work, give running stages ``jobs.shutdown_grace_seconds`` to finish, then stop them.

        A stage stopped here raises a transient error and its job goes back to the
        queue without counting an attempt; it resumes at that stage on the next start.
        """
        self.stop_event.set()
        notify("STOPPING=1")
        grace = self.config.jobs.shutdown_grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._running_lock:
                if not self.running:
                    break
            self._ping_watchdog()
            time.sleep(0.1)
        with self._running_lock:
            running = list(self.running.values())
        for r in running:
            r.cancel.set()
        if running:
            # Every tool still running, also those of stages that do not watch the cancel flag
            # (espeak-ng): SIGTERM, then SIGKILL; their stages end as "interrupted", not failed.
            left = stop_all()
            if left:
                self.log.warning("children_stopped", count=left)
        for r in running:
            r.thread.join(timeout=30)
        self.watcher.stop()
        self.lanes.residency.close()
        self.events.emit("stopped")
        self.log.info("stopped", interrupted=len(running))

    def run_once(self, max_wait: float | None = None) -> int:
        """Process every ready drop now and wait for the jobs; 1 if any failed."""
        self.start()
        deadline = time.monotonic() + (max_wait or (self.config.watch.settle_seconds * 4 + 120))
        try:
            while not self.stop_event.is_set():
                self._guarded_tick()
                with self._running_lock:
                    busy = bool(self.running)
                unsettled = any(e.ready_at is None for e in self.settler.entries.values())
                pending = self.journal.jobs([JobStatus.QUEUED, JobStatus.RETRY_WAIT, JobStatus.RUNNING])
                if not busy and not pending and (not unsettled or time.monotonic() > deadline):
                    break
                self.wake.wait(timeout=self._sleep_for(0.2))
                self.wake.clear()
        finally:
            self.shutdown()
        for w in self.waiting:
            print(f"waiting: {self._rel(w.entry.path)}: {w.reason}", file=sys.stderr)
        for e in self.settler.entries.values():
            if e.busy and e.busy_reason:
                print(f"waiting: {self._rel(e.path)}: {e.busy_reason}", file=sys.stderr)
        for name, kind in sorted(self.ignored.items()):
            print(f"ignored: {name}: a {kind}, not a regular file; omad never opens these", file=sys.stderr)
        failed = [j for j in (self.journal.get(i) for i in self.created) if j and j.status == JobStatus.FAILED]
        for j in failed:
            print(f"failed: {j.name} ({j.route}): {(j.error or {}).get('message', '')}", file=sys.stderr)
        return 1 if failed else 0

    # -- the loop ----------------------------------------------------------------

    def _rel(self, p: Path) -> str:
        """A path as shown to a person (always encodable: see ``names.display``)."""
        try:
            return display(p.relative_to(self.paths.inbox))
        except ValueError:
            return display(p)

    def tick(self) -> None:
        now = time.monotonic()
        self.heartbeat = now
        watched = self.watcher.ensure()
        for path, what in self.watcher.drain().items():
            if what == "written":
                self.settler.written(path, now)
            elif what == "closed":
                self.settler.closed(path)
            try:
                cand = self.settler.candidate_for(path)
                if cand is not None:
                    self._observe(*cand, now=now)
            except Exception:  # one odd path must not hide the others; the next scan looks again
                self.log.error("observe_failed", path=display(path), error=traceback.format_exc())
        if now >= self._next_scan or not watched:
            self._scan(now)
        self._note_specials()
        self.settler.refresh(now)
        decided, self.waiting = self.intake.decide(self.settler.entries, now)
        for d in decided:
            for e in d.claim:
                self.settler.forget(e.path)
            try:
                self._accept(d)
            except OmadError as err:
                # The journal or disk refused: the files stay in the inbox; look again soon.
                self.log.error("intake_failed", name=display(d.name), error=str(err))
                self._next_scan = min(self._next_scan, now + 10.0)
            except Exception as exc:  # a bug: quarantine this drop, never the daemon
                self.log.error("intake_failed", name=display(d.name), error=traceback.format_exc())
                self._quarantine(d, exc)
        self._snapshot_inbox()
        self.events.emit("tick", waiting=self.settler.waiting() + len(self.waiting))
        if not self.stop_event.is_set():
            self._dispatch()
        self.lanes.residency.unload_idle()

    def _note_specials(self) -> None:
        """FIFOs, sockets and devices in the inbox: logged once each, shown on the status page, never opened."""
        for path in list(self.settler.specials):
            if not path.exists() and not path.is_symlink():
                del self.settler.specials[path]
                self._specials_logged.discard(path)
            elif path not in self._specials_logged:
                self._specials_logged.add(path)
                self.log.warning("ignored", file=self._rel(path), kind=self.settler.specials[path],
                                 message="not a regular file (a FIFO, socket or device); omad never opens these")

    def _snapshot_inbox(self, limit: int = 200) -> None:
        waiting = [{"file": self._rel(w.entry.path), "reason": w.reason} for w in self.waiting]
        waiting += [{"file": self._rel(e.path), "reason": e.busy_reason or "settling"}
                    for e in self.settler.entries.values() if e.ready_at is None]
        self.inbox_view = {
            "waiting": sorted(waiting, key=lambda w: w["file"])[:limit],
            "ignored": [{"file": f, "kind": k} for f, k in sorted(self.ignored.items())][:limit],
        }

    @property
    def ignored(self) -> dict[str, str]:
        """What sits in the inbox and is never taken: name -> kind."""
        return {self._rel(p): k for p, k in self.settler.specials.items()}

    def _observe(self, path: Path, kind: str, route_folder: str | None, now: float) -> None:
        if self.config.intake.inputs_after == "keep" and path not in self.settler.entries:
            try:
                st = path.stat()
            except OSError:
                return
            if self.journal.seen(self._rel(path), st.st_size, st.st_mtime_ns):
                return
        self.settler.observe(path, kind, route_folder, now)

    def _scan(self, now: float) -> None:
        self._next_scan = now + self.config.watch.rescan_seconds
        found = scan_inbox(self.paths.inbox, self.config.watch.ignore, self.settler.specials)
        if found is None:
            if self.inbox_ok:
                self.log.warning("inbox_unavailable", inbox=str(self.paths.inbox),
                                 message="the inbox is missing or unreadable (an unmounted share?); waiting for it")
            self.inbox_ok = False
            self._next_scan = now + 5.0
            return
        if not self.inbox_ok:
            self.log.info("inbox_available", inbox=str(self.paths.inbox))
        self.inbox_ok = True
        for path, kind, route_folder in found:
            try:
                self._observe(path, kind, route_folder, now)
            except Exception:
                self.log.error("observe_failed", path=display(path), error=traceback.format_exc())

    # -- claiming ----------------------------------------------------------------

    def _claims(self, d: JobSpec | Rejection) -> list[dict[str, Any]]:
        """The journal's record of each claimed entry: where it came from (exact name), where it goes, its hash.

        A rejected drop is recorded even when it cannot be read: it is quarantined all the same.
        """
        claims: list[dict[str, Any]] = []
        for e in d.claim:
            try:
                digest, size = _hash_path(e.path)
            except Exception:
                if not isinstance(d, Rejection):
                    raise
                digest, size = "unreadable", e.size
            claims.append({"claim": True, "kind": e.kind, "source": str(e.path.relative_to(self.paths.inbox)),
                           "stored": f"inputs/{e.path.name}", "name": e.path.name, "sha256": digest, "size": size,
                           "mtime_ns": e.mtime_ns})
        return claims

    def _quarantine(self, d: JobSpec | Rejection, exc: BaseException) -> None:
        """Take a drop that broke intake to outbox/failed/ with the error; if even that fails, leave it waiting."""
        error = d.error if isinstance(d, Rejection) else InputError(
            f"omad could not take this drop because of an internal error ({type(exc).__name__}: {exc}). "
            "The files are kept in outbox/failed/; please report the log (outbox/logs/).",
            file=display(d.name), details={"bug": True})
        try:
            self._accept(Rejection(d.route, d.name, d.claim, error))
        except Exception:
            self.log.error("quarantine_failed", name=display(d.name), error=traceback.format_exc())
            for e in d.claim:  # seen again at the next scan, and tried again then
                self.settler.forget(e.path)
            self._next_scan = min(self._next_scan, time.monotonic() + 10.0)

    def _accept(self, d: JobSpec | Rejection) -> None:
        claims = self._claims(d)
        name = display(d.name)
        if isinstance(d, Rejection):
            cid = content_id("rejected", {display(c["source"]): c["sha256"] for c in claims})
            unfinished = self._claiming(cid)
            if unfinished is not None:  # an earlier attempt to take these files failed half-way
                self._fail(unfinished, d.error, [self.paths.inbox / c["source"] for c in claims])
                return
            job = self.journal.create(cid=cid, route=d.route, name=name, inputs=claims, options={},
                                      dropped_at=d.dropped_at)
            self.created.append(job.id)
            self.log.warning("rejected", job=job.id, name=name, error=str(d.error))
            originals = [self.paths.inbox / c["source"] for c in claims]
            self._fail(job, d.error, originals)
            return
        roles = []
        by_claim = {e.path: c for e, c in zip(d.claim, claims, strict=True)}
        hashes: dict[str, str] = {}
        for role, path in d.inputs.items():
            owner = next((e for e in d.claim if e.path == path or e.path in path.parents), None)
            if owner is None:
                continue
            c = by_claim[owner.path]
            stored = Path(c["stored"]) / path.relative_to(owner.path) if owner.path != path else Path(c["stored"])
            digest = c["sha256"] if owner.path == path else _hash_path(path)[0]
            hashes[role] = digest
            roles.append({"claim": False, "role": role, "stored": str(stored), "name": path.name, "sha256": digest})
        cid = content_id(d.route, hashes | {"options": hashlib.sha256(repr(sorted(d.options.items())).encode())
                                            .hexdigest()})
        unfinished = self._claiming(cid)
        if unfinished is not None:  # an earlier attempt to take these files failed half-way: finish it
            self._finish_claim(unfinished)
            return
        earlier = [j for j in self.journal.by_content(cid) if j.status not in (JobStatus.FAILED, JobStatus.DUPLICATE)]
        duplicate_of = earlier[0].id if earlier and self.config.intake.on_duplicate == "skip" else None
        job = self.journal.create(cid=cid, route=d.route, name=name, inputs=claims + roles, options=d.options,
                                  dropped_at=d.dropped_at, duplicate_of=duplicate_of)
        self.created.append(job.id)
        self.log.info("accepted", job=job.id, route=d.route, name=name, duplicate_of=duplicate_of)
        self.events.emit("job_created", job=job)
        self._finish_claim(job)

    def _claiming(self, cid: str) -> Job | None:
        return next((j for j in self.journal.by_content(cid) if j.status == JobStatus.CLAIMING), None)

    def _finish_claim(self, job: Job) -> None:
        """Move a claiming job's inputs out of the inbox (idempotent: safe to repeat after a crash)."""
        work = self.paths.jobs / job.id
        keep = self.config.intake.inputs_after == "keep"
        for c in (c for c in job.inputs if c.get("claim")):
            src = self.paths.inbox / c["source"]
            dst = work / c["stored"]
            if dst.exists() and (keep or not src.exists()):
                continue
            if not src.exists():
                self._fail(job, InputError(
                    "disappeared from the inbox before omad could take it. Drop it again.", file=c["source"]), [])
                return
            safe_move(src, dst, copy_only=keep)
            if keep:
                st = src.stat()
                self.journal.mark_seen(c["source"], st.st_size, st.st_mtime_ns, job.id)
        if job.duplicate_of:
            earlier = self.journal.get(job.duplicate_of)
            self._dispose_inputs(job)
            self.journal.update(job.id, status=JobStatus.DUPLICATE, finished_at=time.time(), progress=1.0,
                                result={"duplicate_of": job.duplicate_of,
                                        "outputs": (earlier.result or {}).get("outputs") if earlier else None})
            self.log.info("duplicate", job=job.id, duplicate_of=job.duplicate_of,
                          message="the same content was dropped before; skipped (intake.on_duplicate: skip)")
            self.events.emit("job_finished", job=self.journal.get(job.id))
            return
        self.journal.update(job.id, status=JobStatus.QUEUED)

    # -- running ----------------------------------------------------------------

    def _dispatch(self) -> None:
        limit = self.lanes.cpu.capacity + self.lanes.gpu.capacity + 1
        with self._running_lock:
            for job in self.journal.runnable(time.time()):
                if job.id in self.running:
                    continue
                if len(self.running) >= limit:
                    break
                r = _Running(threading.Thread(target=self._run_job, args=(job.id,), name=f"job-{job.id}",
                                              daemon=True))
                self.running[job.id] = r
                r.thread.start()

    def _run_job(self, job_id: str) -> None:
        try:
            self._run_job_inner(job_id)
        finally:
            with self._running_lock:
                self.running.pop(job_id, None)
                self._cancelled.discard(job_id)  # a stage that ignored the cancel may have finished the job
            self.wake.set()

    def _inputs_of(self, job: Job) -> dict[str, Path]:
        work = self.paths.jobs / job.id
        return {c["role"]: work / c["stored"] for c in job.inputs if not c.get("claim")}

    def _run_job_inner(self, job_id: str) -> None:
        job = self.journal.get(job_id)
        if job is None:
            return
        cancel = self.running[job_id].cancel if job_id in self.running else threading.Event()
        attempt = self.journal.start_attempt(job_id)
        self.events.emit("job_started", job=job, attempt=attempt)
        log = self.log.bind(job=job_id, route=job.route)
        work = self.paths.jobs / job_id
        current: str | None = None
        try:
            stages = stages_for(job.route)
            done = {s["name"]: s for s in self.journal.stages(job_id) if s["status"] == "done"}
            artifacts: dict[str, str] = {}
            publish: dict[str, str] = {}
            for s in done.values():
                res = StageResult.from_dict(s["result"] or {})
                artifacts.update(res.artifacts)
                publish.update(res.publish)
            inputs = self._inputs_of(job)
            for index, stage in enumerate(stages):
                if stage.name in done:
                    continue
                current = stage.name
                ctx = StageContext(
                    job_id=job_id, route=job.route, name=job.name, work=work, inputs=inputs, options=job.options,
                    config=self.config, lanes=self.lanes, artifacts=dict(artifacts), stage=stage.name,
                    timeout=self.config.jobs.stage_timeouts.get(stage.name, self.config.jobs.stage_timeout_seconds),
                    progress=self._progress_fn(job_id, stage.name, index, len(stages)), cancel=cancel, log=log,
                )
                lane = stage.lane_for(ctx)
                with self.lanes.lane(lane).slot(job_id):
                    if cancel.is_set():
                        raise TransientError("omad is shutting down.", stage=stage.name)
                    self.journal.stage_started(job_id, stage.name, lane, attempt)
                    log.info("stage_started", stage=stage.name, lane=lane, attempt=attempt)
                    t0 = time.monotonic()
                    try:
                        result = stage.run(ctx)
                    finally:
                        cleanup = getattr(stage, "cleanup", None)
                        if cleanup is not None:
                            cleanup(ctx)
                    seconds = time.monotonic() - t0
                if ctx.warnings:
                    result.facts.setdefault("warnings", []).extend(ctx.warnings)
                self.journal.stage_done(job_id, stage.name, result.to_dict(), lane, seconds)
                log.info("stage_done", stage=stage.name, seconds=round(seconds, 3))
                self.events.emit("stage_done", job=job, stage=stage.name, lane=lane, seconds=seconds,
                                 facts=result.facts)
                artifacts.update(result.artifacts)
                publish.update(result.publish)
            current = None
            self._publish(job_id, artifacts, publish)
        except OmadError as err:
            if err.stage is None:
                err.stage = current
            self._handle_error(job_id, err, attempt, current)
        except Exception as exc:  # a bug: fail the job with the traceback in the log, keep the inputs
            log.error("internal_error", stage=current, error=traceback.format_exc())
            bug = StageFailed(f"internal error in stage {current}: {exc!r}. This is a bug in omad; "
                              "the inputs are kept in outbox/failed/. Please report it with the log.", stage=current)
            self._handle_error(job_id, bug, attempt, current)

    def _progress_fn(self, job_id: str, stage: str, index: int, total: int) -> Callable[[float], None]:
        last = [0.0, -1.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and fraction < 1.0 and fraction - last[1] < 0.1:
                return
            last[0], last[1] = now, fraction
            overall = (index + max(0.0, min(1.0, fraction))) / max(1, total)
            with contextlib.suppress(OmadError):
                self.journal.set_progress(job_id, stage, overall)

        return report

    def _handle_error(self, job_id: str, err: OmadError, attempt: int, stage: str | None) -> None:
        job = self.journal.get(job_id)
        assert job is not None
        record = err.to_dict()
        if stage:
            with contextlib.suppress(OmadError):
                self.journal.stage_failed(job_id, stage, record)
        self.journal.end_attempt(job_id, "error", stage, record)
        if job_id in self._cancelled:
            self._cancelled.discard(job_id)
            err = Cancelled(f"cancelled during stage {stage or '-'}. Retry the job to run it again.", stage=stage)
            self._fail(job, err, [self.paths.jobs / job_id / c["stored"] for c in job.inputs if c.get("claim")])
            return
        self.events.emit("stage_error", job=job, stage=stage or "intake", kind=err.kind)
        if isinstance(err, TransientError) and self.stop_event.is_set():
            # Interrupted by shutdown: not the job's fault, so the attempt does not count.
            self.journal.update(job_id, status=JobStatus.QUEUED, attempts=max(0, attempt - 1))
            return
        changed = self._changed_inputs(job)
        if changed:  # the input was still being written: its failure says nothing about the finished file
            self._rerun_changed(job, changed)
            return
        if self._maybe_still_copying(err, attempt):
            delay = max(5.0, 4 * self.config.watch.settle_seconds)
            self.journal.update(job_id, status=JobStatus.RETRY_WAIT, next_attempt_at=time.time() + delay,
                                error=record)
            self.log.warning("input_unreadable_retry", job=job_id, stage=stage, delay=delay, error=str(err),
                             message="polling mode: the file may still be copying; one more look before failing")
            return
        if err.retryable and attempt < self.config.jobs.max_attempts:
            delay = min(self.config.jobs.backoff_max_seconds, self.config.jobs.backoff_seconds * 2 ** (attempt - 1))
            self.journal.update(job_id, status=JobStatus.RETRY_WAIT, next_attempt_at=time.time() + delay,
                                error=record)
            self.log.warning("retry_scheduled", job=job_id, stage=stage, attempt=attempt, delay=delay, error=str(err))
            self.events.emit("retry", job=job, stage=stage or "", kind=err.kind)
            return
        work = self.paths.jobs / job_id
        originals = [work / c["stored"] for c in job.inputs if c.get("claim")]
        self._fail(job, err, originals)

    def _maybe_still_copying(self, err: OmadError, attempt: int) -> bool:
        """An unreadable input on a polling-mode inbox (a network share, where no writer can be seen) gets
        one more look: if its copy was still under way, the change check then runs the job again."""
        return (self.config.watch.mode == "polling" and attempt == 1 and type(err) is InputError
                and bool(err.details.get("unreadable")))

    def _fail(self, job: Job, err: OmadError, originals: list[Path]) -> None:
        record = {
            "job_id": job.id,
            "route": job.route,
            "name": job.name,
            "error": err.to_dict(),
            "message": str(err),
            "what_to_do": "Fix the problem the message names, then drop the files again, or run "
                          f"`omad retry {job.id}` to put them back in the inbox.",
            "inputs": [{"name": c["name"], "source": c["source"], "sha256": c["sha256"]}
                       for c in job.inputs if c.get("claim")],
            "attempts": job.attempts,
            "omad": __version__,
        }
        folder = self.outbox.fail(job.name, originals, record)
        shutil.rmtree(self.paths.jobs / job.id, ignore_errors=True)
        self.journal.update(job.id, status=JobStatus.FAILED, error=err.to_dict(), finished_at=time.time(),
                            result={"failed_dir": str(folder)})
        self.log.error("failed", job=job.id, name=job.name, route=job.route, kind=err.kind, error=str(err),
                       failed_dir=str(folder))
        self.events.emit("job_finished", job=self.journal.get(job.id))

    def _dispose_inputs(self, job: Job) -> None:
        work = self.paths.jobs / job.id
        policy = self.config.intake.inputs_after
        if policy == "archive":
            dest = self.paths.archive / time.strftime("%Y-%m-%d") / job.id
            for c in (c for c in job.inputs if c.get("claim")):
                src = work / c["stored"]
                if src.exists():
                    safe_move(src, dest / c["name"])
        shutil.rmtree(work, ignore_errors=True)

    def _changed_inputs(self, job: Job) -> list[dict[str, Any]]:
        """Claimed inputs whose content is no longer what was claimed (a writer went on after a stall).

        Size and mtime always; the content hash where it is cheap (up to 64 MB).
        Returns the claims updated to the new content; empty when nothing changed.
        """
        work = self.paths.jobs / job.id
        changed = False
        claims = []
        for c in job.inputs:
            if not c.get("claim"):
                claims.append(c)
                continue
            path = work / c["stored"]
            try:
                st = path.lstat()
                if c["kind"] == "file":
                    same = st.st_size == c["size"] and st.st_mtime_ns == c["mtime_ns"]
                    if same and st.st_size <= _REHASH_BYTES:
                        same = _hash_path(path)[0] == c["sha256"]
                    new = {} if same else dict(zip(("sha256", "size"), _hash_path(path), strict=True))
                else:
                    digest, size = _hash_path(path)
                    new = {} if (digest, size) == (c["sha256"], c["size"]) else {"sha256": digest, "size": size}
            except OSError:
                continue  # gone: the stage that needs it says so
            if new:
                changed = True
                c = {**c, **new, "mtime_ns": st.st_mtime_ns}
            claims.append(c)
        return claims if changed else []

    def _rerun_changed(self, job: Job, claims: list[dict[str, Any]]) -> None:
        """An input changed after it was claimed: never publish the old result; run again from the new content."""
        self.journal.reset_stages(job.id)
        delay = max(self.config.watch.settle_seconds, 1.0)
        self.journal.update(job.id, status=JobStatus.RETRY_WAIT, inputs=claims, next_attempt_at=time.time() + delay,
                            attempts=max(0, job.attempts - 1))
        self.journal.end_attempt(job.id, "inputs_changed", None, None)
        self.log.warning("inputs_changed", job=job.id, name=job.name,
                         message="an input changed after omad took it (a copy went on after a pause); "
                                 "the result is not published and the job runs again from the new content")

    def _publish(self, job_id: str, artifacts: dict[str, str], publish: dict[str, str]) -> None:
        job = self.journal.get(job_id)
        assert job is not None
        changed = self._changed_inputs(job)
        if changed:
            self._rerun_changed(job, changed)
            return
        work = self.paths.jobs / job_id
        files = {suffix: work / artifacts[role] for suffix, role in publish.items() if role in artifacts}
        # The stem is chosen once and journaled: publishing again after a crash rewrites the same names.
        stem = (job.result or {}).get("publishing")
        if not stem:
            stem = self.outbox.choose_stem(job.name, list(files))
            self.journal.update(job_id, result={"publishing": stem})
        record = self.sidecar(job)
        published = self.outbox.publish(job.name, files, record, stem=stem)
        self.journal.update(job_id, status=JobStatus.DONE, finished_at=time.time(), progress=1.0,
                            result={"outputs": published}, error=None)
        self._dispose_inputs(job)
        self.journal.end_attempt(job_id, "done", None, None)
        size = sum(Path(p).stat().st_size for p in published.values() if Path(p).exists())
        self.log.info("published", job=job_id, name=job.name, outputs=sorted(Path(p).name for p in published.values()))
        self.events.emit("job_finished", job=self.journal.get(job_id), bytes=size)

    def cost(self, job: Job) -> dict[str, Any]:
        return job_cost(job, self.config.metrics)

    def sidecar(self, job: Job) -> dict[str, Any]:
        """The JSON record published beside a result."""
        stages = []
        findings: list[Any] = []
        warnings: list[str] = []
        tools: dict[str, Any] = {"ffmpeg": ffmpeg_version(), "python": sys.version.split()[0], "omad": __version__}
        for s in self.journal.stages(job.id):
            facts = (s["result"] or {}).get("facts", {})
            findings.extend(facts.pop("guardrail_findings", []) if isinstance(facts, dict) else [])
            warnings.extend(facts.get("warnings", []) if isinstance(facts, dict) else [])
            tools.update(facts.pop("tools", {}) if isinstance(facts, dict) else {})
            stages.append({
                "name": s["name"], "lane": s["lane"], "attempt": s["attempt"],
                "started_at": _iso(s["started_at"]), "finished_at": _iso(s["finished_at"]),
                "seconds": round((s["finished_at"] or 0) - (s["started_at"] or 0), 3), "facts": facts,
            })
        c = self.config
        return {
            "omad": __version__,
            "job_id": job.id,
            "route": job.route,
            "name": job.name,
            "status": "done",
            "inputs": [{"name": i["name"], "role": i["role"], "sha256": i["sha256"]}
                       for i in job.inputs if not i.get("claim")],
            "options": self._redacted(job.options),
            "dropped_at": _iso(job.dropped_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(time.time()),
            "attempts": job.attempts,
            "stages": stages,
            "tools": tools,
            "settings": {"video": c.video.model_dump(), "caption": c.caption.model_dump(),
                         "audio": c.audio.model_dump(), "tts_engine": c.tts.engine},
            "warnings": warnings,
            "guardrail_findings": findings,
            "cost": self.cost(self.journal.get(job.id) or job),
            "errors": [a["error"] for a in self.journal.attempts(job.id) if a.get("error")],
        }

    def _redacted(self, value: Any, where: str = "options") -> Any:
        """The brief's options for the sidecar, with personal data redacted as the guardrails say."""
        if isinstance(value, str):
            try:
                return guardrails_for(self.config).check(value, where).text
            except GuardrailBlocked:
                return "[removed by guardrails]"
        if isinstance(value, dict):
            return {k: self._redacted(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    # -- views -------------------------------------------------------------------

    def healthy(self, max_age: float = 30.0) -> bool:
        return time.monotonic() - self.heartbeat < max_age

    def retry(self, job_id: str) -> str:
        return retry_job(self.journal, self.paths, job_id)

    def cancel(self, job_id: str) -> str:
        """Stop a job for good: a queued or waiting one now, a running one at its stage's next check.

        Its inputs go to outbox/failed/ like any failure, so a retry runs it again.
        """
        with self._running_lock:
            job = self.journal.get(job_id)
            if job is None:
                raise InputError(f"no job '{job_id}'. See `omad status`.")
            if job.status.final:
                raise InputError(f"job {job_id} is already {job.status.value}; there is nothing to cancel.")
            if job.status == JobStatus.CLAIMING:
                raise TransientError(f"job {job_id} is still being taken from the inbox; try again in a moment.")
            running = self.running.get(job_id)
            if running is not None:
                self._cancelled.add(job_id)
                running.cancel.set()
                self.log.info("cancel_requested", job=job_id, stage=job.stage)
                return f"{job_id}: cancelling (its stage is being stopped)"
            # Not running and the lock is held: the dispatcher cannot start it under us.
            work = self.paths.jobs / job_id
            self._fail(job, Cancelled("cancelled before it ran. Retry the job to run it.", stage=job.stage),
                       [work / c["stored"] for c in job.inputs if c.get("claim")])
            return f"{job_id}: cancelled"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


def retry_job(journal: Journal, paths: Paths, job_id: str) -> str:
    """Put a failed job's originals back in the inbox (or make a waiting retry due now)."""
    job = journal.get(job_id)
    if job is None:
        matches = journal.find(job_id)
        if len(matches) != 1:
            raise InputError(f"no single job matches '{job_id}' ({len(matches)} found). See `omad status`.")
        job = matches[0]
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
