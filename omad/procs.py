"""Child processes: every tool omad starts (ffmpeg, ffprobe, espeak-ng) starts here.

Three promises, because input is untrusted and tools can hang:

- a child runs in its own process group, so stopping it stops whatever it
  started too;
- a child dies with omad: it gets SIGKILL from the kernel when omad dies,
  even by SIGKILL (``setpriv --pdeathsig``, or ``prctl`` where setpriv is
  missing), so no ffmpeg is left rendering for nobody;
- a child that must stop (timeout, cancel, shutdown) gets SIGTERM, then
  SIGKILL after ``KILL_GRACE_SECONDS``: ffmpeg busy inside libass does not look
  at its signal flag until the frame is done, which can take minutes.

Callers map exit codes to omad's errors; this module only runs and stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KILL_GRACE_SECONDS", "Finished", "Supervised", "spawn", "stop", "run_tool", "stop_all", "children", "reap"]

KILL_GRACE_SECONDS = 3.0

_SETPRIV = shutil.which("setpriv")
_PR_SET_PDEATHSIG = 1

_lock = threading.Lock()
_children: set[subprocess.Popen[Any]] = set()
_stopped: set[int] = set()  # pids stopped by stop_all: their callers report "cancel", not a failure


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(cmd: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start ``cmd`` in its own process group, bound to die with omad; registered until it is reaped."""
    argv = [str(a) for a in cmd]
    kwargs: dict[str, Any] = {"start_new_session": True, **popen}
    if _SETPRIV is not None:
        argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    else:
        kwargs["preexec_fn"] = _die_with_parent
    proc: subprocess.Popen[Any] = subprocess.Popen(argv, **kwargs)
    with _lock:
        _children.add(proc)
    return proc


def _forget(proc: subprocess.Popen[Any]) -> bool:
    """Unregister a reaped child; True when it was stopped by :func:`stop_all`."""
    with _lock:
        _children.discard(proc)
        was_stopped = proc.pid in _stopped
        _stopped.discard(proc.pid)
    return was_stopped


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[Any], grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM to the child's group, SIGKILL after ``grace`` seconds if it is still there."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
    # Whatever the child left in its group goes too, even after the leader exited.
    _signal_group(proc, signal.SIGKILL)


def stop_all(grace: float = KILL_GRACE_SECONDS) -> int:
    """Stop every child still running (shutdown); returns how many there were."""
    with _lock:
        running = [p for p in _children if p.poll() is None]
        _stopped.update(p.pid for p in running)
    threads = [threading.Thread(target=stop, args=(p, grace), daemon=True) for p in running]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=grace + 2)
    return len(running)


def children() -> list[int]:
    """Pids of the children still running (for tests and `omad status`)."""
    with _lock:
        return [p.pid for p in _children if p.poll() is None]


@dataclass
class Finished:
    """How a tool run ended. ``stopped_for`` is ``"timeout"`` or ``"cancel"`` when omad stopped it."""

    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    stopped_for: str | None = None


class Supervised:
    """A watchdog on a running child: stopped (TERM, then KILL) when ``timeout`` passes or ``cancel`` is set.

    Used as a context manager around whatever reads the child's output; on exit the child is forgotten
    and :attr:`stopped_for` says why omad stopped it: ``"timeout"``, ``"cancel"`` (a cancel, or
    :func:`stop_all` at shutdown), or None when it ended by itself.
    """

    def __init__(self, proc: subprocess.Popen[Any], *, timeout: float, cancel: threading.Event | None = None,
                 started: float | None = None) -> None:
        self.proc = proc
        self.timeout = timeout
        self.cancel = cancel
        self.started = time.monotonic() if started is None else started
        self.stopped_for: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        # Wakes at once when the child's reader is done, so a short run is not held back by the polling period.
        while not self._done.wait(0.1) and self.proc.poll() is None:
            if time.monotonic() - self.started > self.timeout:
                self.stopped_for = "timeout"
            elif self.cancel is not None and self.cancel.is_set():
                self.stopped_for = "cancel"
            if self.stopped_for:
                stop(self.proc)
                return

    def __enter__(self) -> Supervised:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=KILL_GRACE_SECONDS + 2)
        if _forget(self.proc) and not self.stopped_for:
            self.stopped_for = "cancel"


def run_tool(
    cmd: Sequence[str],
    *,
    timeout: float,
    cancel: threading.Event | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> Finished:
    """Run a tool to completion, collecting its output; stopped (TERM, then KILL) on timeout or cancel.

    Raises ``OSError`` when the program cannot be started.
    """
    started = time.monotonic()
    proc = spawn(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    with Supervised(proc, timeout=timeout, cancel=cancel, started=started) as watch:
        out, err = proc.communicate(input=input)
    return Finished(proc.returncode, out or b"", err or b"", time.monotonic() - started, watch.stopped_for)


def reap(proc: subprocess.Popen[Any]) -> bool:
    """Forget a child started with :func:`spawn` once its caller has waited for it; True if stop_all stopped it."""
    return _forget(proc)
