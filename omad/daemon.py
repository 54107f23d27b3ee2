"""The daemon: the one loop that watches, settles, takes drops in, and dispatches their jobs.

The main loop (one thread) drains watcher events, rescans, settles, asks
intake what is ready, hands each decision to the claimer, and starts a thread
per runnable job (the runner). Each drop is looked at behind its own boundary
(see ``intake``); a fault that still escapes a tick is logged and the loop goes
on. This module owns the loop, dispatch and shutdown, nothing else:

    watcher -> settle -> intake -> claim -> journal -> lanes -> runner -> outbox
                                                              (records: sidecar, error.json)
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, tracing
from .claim import Claimer, retry_job
from .config import Config
from .controls import Controls, QueueState, write_queue_state
from .errors import Cancelled, InputError, OmadError, TransientError
from .events import Event, EventBus
from .executors import make_executor
from .intake import Intake, Waiting
from .journal import JobStatus, Journal
from .lanes import Lanes
from .log import get_logger
from .names import display
from .outbox import Outbox
from .paths import Paths
from .procs import stop_all
from .records import Records
from .routes import ROUTE_FOLDERS, load_route_modules
from .runner import JobRunner, next_lane
from .systemd import notify, watchdog_seconds
from .watcher import InboxWatcher, Settler, scan_inbox

__all__ = ["Daemon", "Paths", "EventBus", "retry_job"]


@dataclass
class _Running:
    thread: threading.Thread
    cancel: threading.Event = field(default_factory=threading.Event)


class Daemon:
    def __init__(self, config: Config, paths: Paths, *, once: bool = False) -> None:
        self.config = config
        self.paths = paths
        self.once = once
        load_route_modules(config.intake.route_modules)  # before anything reads the table
        self.log = get_logger("omad.daemon")
        self.events = EventBus()
        paths.state.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(paths.journal)
        self.outbox = Outbox(paths.outbox, config.outbox_options.on_conflict)
        self.lanes = Lanes(config.lanes.cpu_slots(), config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds,
                           cpu_lent=config.lanes.cpu_lent())
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.watcher = InboxWatcher(paths.inbox, config.watch.mode, config.watch.poll_interval_seconds, self.wake)
        # Route folders force a route; the folders of intake.priorities give their drops a priority.
        self.folders = tuple(dict.fromkeys([*ROUTE_FOLDERS, *config.intake.priorities]))
        self.settler = Settler(paths.inbox, config.watch.settle_seconds, config.watch.ignore,
                               config.watch.open_writer_max_seconds, folders=self.folders)
        self._specials_logged: set[Path] = set()
        self._watch_logged = ""
        # What waits in the inbox and why, rebuilt each tick for the status page (read from other threads).
        self.inbox_view: dict[str, list[dict[str, str]]] = {"waiting": [], "ignored": []}
        self.loop_errors = 0
        #: ticks of the main loop so far: "nothing happened in N ticks" is checked against this, never the clock
        self.ticks = 0
        #: full scans of the inbox so far (at start, every watch.rescan_seconds, and while the inbox is missing)
        self.scans = 0
        self.intake = Intake(config, paths.inbox, once=once)
        self.waiting: list[Waiting] = []
        self.running: dict[str, _Running] = {}
        self._running_lock = threading.Lock()
        self.inbox_ok = True
        self.heartbeat = time.monotonic()
        self._next_scan = 0.0
        self._cancelled: set[str] = set()  # running jobs a person cancelled (see cancel())
        self.records = Records(config, paths, self.journal, self.outbox, self.events, self.log)
        self.claimer = Claimer(config, paths, self.journal, self.records, self.events, self.log)
        self.executor = make_executor(config, paths, self.journal, self.lanes, self.stop_event, self.log)
        # Pause, priorities and windows (omad.controls); jobs stopped by `pause --now` until the runner asks.
        self.controls = Controls(config, self.journal)
        self._preempted: set[str] = set()
        self.queue_reasons: dict[str, str] = {}  # queued job -> why it does not start (for the pages)
        self.notes: dict[str, str] = {}  # lines for the status page from helpers (the GPU waker)
        self.executor.priority_of = self.controls.priority
        self.executor.preempted = self._is_preempted
        self.runner = JobRunner(config, paths, self.journal, self.lanes, self.outbox, self.records, self.claimer,
                                self.events, self.log, self.stop_event, self._take_cancelled, self.executor,
                                blocked=self.controls.blocked, preempted=self._take_preempted)
        self.runner.polling = lambda: self.watcher.mode == "polling"
        watchdog = watchdog_seconds()
        self._watchdog_every = watchdog / 2 if watchdog else None
        self._last_ping = 0.0

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self.outbox.ensure()
        self.paths.jobs.mkdir(parents=True, exist_ok=True)
        self.claimer.recover()
        tracing.setup()
        self.log.info("started", version=__version__, inbox=str(self.paths.inbox), outbox=str(self.paths.outbox),
                      mode=self.config.watch.mode, cpu_slots=self.lanes.cpu.capacity,
                      executor=self.config.executor.kind, tracing=tracing.enabled(),
                      paused=self.controls.paused)
        self.executor.controls_changed(self.controls.state)
        self.events.emit(Event.STARTED)

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
        if grace is None:
            # Stages on workers go on without the daemon (the next start takes their results): no grace needed.
            grace = 0.0 if self.config.executor.kind == "celery" else self.config.jobs.shutdown_grace_seconds
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
        self.executor.close()
        self.lanes.residency.close()
        tracing.flush()
        self.events.emit(Event.STOPPED)
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
                pending = [j for j in self.journal.jobs([JobStatus.QUEUED, JobStatus.RETRY_WAIT, JobStatus.RUNNING])
                           if j.id not in self.queue_reasons]  # paused, or outside a window: not waited for
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
        for job_id, why in sorted(self.queue_reasons.items()):
            print(f"queued: {job_id}: {why}; it runs when `omad run` is up and the lane may start it", file=sys.stderr)
        failed = [j for j in (self.journal.get(i) for i in self.claimer.created) if j and j.status == JobStatus.FAILED]
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
        if watched and self.watcher.mode_reason != self._watch_logged:
            self._watch_logged = self.watcher.mode_reason
            self.log.info("watch_mode", mode=self.watcher.mode, inbox=str(self.paths.inbox),
                          message=self.watcher.mode_reason)
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
        self._restore_late_videos()
        for d in decided:
            for e in d.claim:
                self.settler.forget(e.path)
            try:
                self.claimer.accept(d)
            except OmadError as err:
                # The journal or disk refused: the files stay in the inbox; look again soon.
                self.log.error("intake_failed", name=display(d.name), error=str(err))
                self._next_scan = min(self._next_scan, now + 10.0)
            except Exception as exc:  # a bug: quarantine this drop, never the daemon
                self.log.error("intake_failed", name=display(d.name), error=traceback.format_exc())
                if not self.claimer.quarantine(d, exc):  # even that failed: seen again at the next scan
                    for e in d.claim:
                        self.settler.forget(e.path)
                    self._next_scan = min(self._next_scan, now + 10.0)
        self._snapshot_inbox()
        self.events.emit(Event.TICK, waiting=self.settler.waiting() + len(self.waiting))
        self._apply_controls()
        if not self.stop_event.is_set():
            self._dispatch()
        self.lanes.residency.unload_idle()
        self.ticks += 1

    def _restore_late_videos(self) -> None:
        """Subtitles that came after their video went to transcription get the video back (see late_subtitles)."""
        from .late_subtitles import restore_videos

        try:
            for name in restore_videos(self.journal, self.paths, self.waiting, self.config.intake):
                self.log.info("late_subtitles", file=name,
                              message="subtitles arrived after the video was taken for transcription; the video is "
                                      "put back so they make a caption job")
        except OSError as e:
            self.log.warning("late_subtitles_failed", error=str(e))

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
        found = scan_inbox(self.paths.inbox, self.config.watch.ignore, self.settler.specials, self.folders)
        if found is None:
            if self.inbox_ok:
                self.log.warning("inbox_unavailable", inbox=str(self.paths.inbox),
                                 message="the inbox is missing or unreadable (an unmounted share?); waiting for it")
            self.inbox_ok = False
            self._next_scan = now + 5.0
            return
        if self.watcher.remounted():
            self.log.info("inbox_remounted", inbox=str(self.paths.inbox),
                          message="the inbox's mount changed; the watcher starts again for its file system")
            self.watcher.ensure()
        if not self.inbox_ok:
            self.log.info("inbox_available", inbox=str(self.paths.inbox))
        self.inbox_ok = True
        self.scans += 1
        for path, kind, route_folder in found:
            try:
                self._observe(path, kind, route_folder, now)
            except Exception:
                self.log.error("observe_failed", path=display(path), error=traceback.format_exc())

    # -- claiming ----------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.config.executor.kind == "celery":
            limit = self.config.executor.max_in_flight  # the workers' queues pace the stages
        else:
            limit = self.lanes.cpu.capacity + self.lanes.cpu.lent + self.lanes.gpu.capacity + 1
        reasons: dict[str, str] = {}
        with self._running_lock:
            for entry in self.controls.order(self.journal.runnable_keys(time.time())):
                if entry.id in self.running:
                    continue
                why = self._blocked(entry.id)
                if why:
                    reasons[entry.id] = why
                    continue
                if len(self.running) >= limit:
                    break
                r = _Running(threading.Thread(target=self._run_job, args=(entry.id,), name=f"job-{entry.id}",
                                              daemon=True))
                self.running[entry.id] = r
                r.thread.start()
        self.queue_reasons = reasons

    def _blocked(self, job_id: str) -> str:
        """Why a job may not start now (the queue is paused, its next stage's lane is outside its window)."""
        if self.controls.paused:
            return "paused"
        if not any(self.controls.windows.values()):
            return ""  # no lane has windows: nothing to look up
        job = self.journal.get(job_id)
        if job is None:
            return ""
        try:
            lane = next_lane(job, self.journal, self.config, self.lanes, self.paths.jobs / job.id)
        except OmadError:
            return ""  # the runner fails the job with the reason
        return self.controls.blocked(lane) if lane is not None else ""

    # -- the operator's controls ---------------------------------------------------------------------------

    def _apply_controls(self) -> None:
        """Read the pause state (the CLI writes it to the journal); act on a new `pause --now` once."""
        old, new = self.controls.refresh()
        if new.serial == old.serial:
            return
        self.log.info("queue_paused" if new.paused else "queue_resumed", now=new.now, by=new.by or None)
        self.executor.controls_changed(new)
        if new.paused and new.now:
            self._preempt_running()

    def _preempt_running(self) -> None:
        """`pause --now`: stop every running stage; its job goes back to the queue without spending an attempt."""
        with self._running_lock:
            running = dict(self.running)
            self._preempted.update(running)
        for r in running.values():
            r.cancel.set()
        if running and self.config.executor.kind != "celery":
            left = stop_all()  # the tools of stages that do not watch the cancel flag (as at shutdown)
            self.log.info("preempted", jobs=sorted(running), children_stopped=left)

    def pause(self, now: bool = False, by: str = "") -> QueueState:
        """Pause the queue (and with ``now`` stop running stages); the same as `omad pause`, applied at once."""
        state = write_queue_state(self.journal, paused=True, now=now, by=by)
        self._apply_controls()
        self.wake.set()
        return state

    def resume(self, by: str = "") -> QueueState:
        state = write_queue_state(self.journal, paused=False, by=by)
        self._apply_controls()
        self.wake.set()
        return state

    def _is_preempted(self, job_id: str) -> bool:
        with self._running_lock:
            return job_id in self._preempted

    def _take_preempted(self, job_id: str) -> bool:
        """Whether `pause --now` stopped ``job_id`` (asked once, by the runner, after the attempt failed)."""
        with self._running_lock:
            if job_id in self._preempted:
                self._preempted.discard(job_id)
                return True
            return False

    def _run_job(self, job_id: str) -> None:
        cancel = self.running[job_id].cancel if job_id in self.running else threading.Event()
        try:
            self.runner.run(job_id, cancel)
        finally:
            with self._running_lock:
                self.running.pop(job_id, None)
                self._cancelled.discard(job_id)
                self._preempted.discard(job_id)  # a stage that ignored the cancel may have finished the job
            self.wake.set()

    def healthy(self, max_age: float = 30.0) -> bool:
        return time.monotonic() - self.heartbeat < max_age

    def retry(self, job_id: str) -> str:
        return retry_job(self.journal, self.paths, job_id)

    def _take_cancelled(self, job_id: str) -> bool:
        """Whether a person cancelled ``job_id`` (asked once, by the runner, after the attempt failed)."""
        with self._running_lock:
            if job_id in self._cancelled:
                self._cancelled.discard(job_id)
                return True
            return False

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
            self.records.fail(job, Cancelled("cancelled before it ran. Retry the job to run it.", stage=job.stage),
                              [work / c["stored"] for c in job.inputs if c.get("claim")])
            return f"{job_id}: cancelled"


