"""Waking a sleeping GPU worker when GPU-lane work waits (celery executor).

The on-demand GPU box runs ``omad worker --queues gpu --exit-when-idle 300``
and powers off when idle; this is the other half. When stages wait on the GPU
queue and no live worker serves it (none advertises the queue in Redis), the
daemon wakes one: a Wake-on-LAN magic packet to ``executor.wake_mac`` at
``executor.wake_address:wake_port``, and/or ``executor.wake_command`` (a cloud
CLI, an ssh call; run under :mod:`omad.procs`' rules, its output logged). The
first try is at once; while no worker comes the tries are at most once per
``executor.wake_seconds``, the wait doubling after each one that brought none
(up to 8 x), and back to the first once a worker serves the queue. The status
page says "waking the GPU worker" with the time of the last try.

The command must start the worker and return (``systemctl start``, a cloud
CLI); a command still running after ``executor.wake_timeout_seconds`` is
stopped. Nothing here touches jobs.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter

from .log import get_logger
from .procs import run_tool

if TYPE_CHECKING:
    from .config import ExecutorConfig
    from .daemon import Daemon

__all__ = ["GpuWaker", "magic_packet", "send_magic_packet", "NOTE_KEY"]

#: The daemon's status note this module writes (shown on the status page).
NOTE_KEY = "gpu-wake"
_MAX_BACKOFF = 8


def magic_packet(mac: str) -> bytes:
    """The Wake-on-LAN packet for ``mac`` (``aa:bb:cc:dd:ee:ff``, ``-`` or no separators): 6 x FF, 16 x the MAC."""
    digits = mac.replace(":", "").replace("-", "")
    raw = bytes.fromhex(digits)
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address (six bytes, like aa:bb:cc:dd:ee:ff)")
    return b"\xff" * 6 + raw * 16


def send_magic_packet(mac: str, address: str, port: int) -> None:
    """One magic packet over UDP (broadcast allowed); raises ``OSError`` when it cannot be sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.sendto(magic_packet(mac), (address, port))


class GpuWaker:
    """Watches the GPU queue and the workers serving it; wakes one, with backoff, when work waits for none."""

    def __init__(self, config: ExecutorConfig, registry: CollectorRegistry | None = None,
                 every: float = 1.0) -> None:
        self.config = config
        self.every = every
        self.log = get_logger("omad.wake")
        self.tries = Counter("omad_gpu_wake_total", "Tries to wake a GPU worker, by how they went (sent, failed)",
                             ["outcome"], registry=registry or CollectorRegistry())
        for outcome in ("sent", "failed"):
            self.tries.labels(outcome)
        self.last_try: float | None = None
        self.failures_in_a_row = 0  # tries that brought no worker: the wait doubles
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._daemon: Daemon | None = None

    def attach(self, daemon: Daemon) -> GpuWaker:
        self._daemon = daemon
        self._thread = threading.Thread(target=self._run, name="omad-wake", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.check()
            except Exception as e:  # Redis away, a bug: never the daemon's problem; try again next time
                self.log.warning("wake_check_failed", error=f"{type(e).__name__}: {e}")

    def _need(self) -> tuple[int, int]:
        """(GPU stages waiting in Redis, live workers serving the GPU queue)."""
        from .cluster.app import queue_keys, queue_name
        from .executors.celery import read_workers

        assert self._daemon is not None
        ex = self._daemon.executor
        client: Any = getattr(ex, "redis", None)
        if client is None:
            return 0, 0
        cfg = self._daemon.config
        waiting = sum(int(client.llen(k)) for k in queue_keys(cfg, "gpu"))
        gpu = queue_name(cfg, "gpu")
        serving = sum(1 for w in read_workers(client) if gpu in (w.get("queues") or []))
        return waiting, serving

    def due(self, now: float) -> bool:
        """Whether a try may be made now (the first at once, then wake_seconds doubled per fruitless try)."""
        if self.last_try is None:
            return True
        factor: int = min(_MAX_BACKOFF, 2 ** max(0, self.failures_in_a_row - 1))
        return bool(now - self.last_try >= self.config.wake_seconds * factor)

    def check(self, now: float | None = None) -> bool:
        """One look: wake a worker if GPU work waits for none and a try is due; True when a try was made."""
        assert self._daemon is not None
        now = time.time() if now is None else now
        waiting, serving = self._need()
        if serving or not waiting:
            if serving and self.last_try is not None:
                self.log.info("gpu_worker_up", workers=serving, message="a worker serves the GPU queue again")
                self.last_try, self.failures_in_a_row = None, 0
            self._daemon.notes.pop(NOTE_KEY, None)
            return False
        if not self.due(now):
            return False
        self.wake(waiting)
        self.last_try = now
        self.failures_in_a_row += 1
        at = time.strftime("%H:%M:%S", time.localtime(now))
        self._daemon.notes[NOTE_KEY] = (f"waking the GPU worker: {waiting} GPU stage(s) wait and no worker serves "
                                        f"the GPU queue; last try at {at}")
        return True

    def wake(self, waiting: int) -> None:
        """Send the magic packet and/or run the command, logging and counting each."""
        cfg = self.config
        if cfg.wake_mac:
            try:
                send_magic_packet(cfg.wake_mac, cfg.wake_address, cfg.wake_port)
            except (OSError, ValueError) as e:
                self.tries.labels("failed").inc()
                self.log.warning("gpu_wake", how="wake-on-lan", outcome="failed", error=str(e),
                                 message=f"could not send the Wake-on-LAN packet to {cfg.wake_address}:{cfg.wake_port}")
            else:
                self.tries.labels("sent").inc()
                self.log.info("gpu_wake", how="wake-on-lan", outcome="sent", mac=cfg.wake_mac,
                              address=f"{cfg.wake_address}:{cfg.wake_port}", waiting=waiting)
        if cfg.wake_command:
            try:
                done = run_tool(cfg.wake_command, timeout=cfg.wake_timeout_seconds)
            except OSError as e:
                self.tries.labels("failed").inc()
                self.log.warning("gpu_wake", how="command", outcome="failed", error=e.strerror or str(e),
                                 message=f"could not start {cfg.wake_command[0]} (executor.wake_command)")
                return
            ok = done.returncode == 0 and done.stopped_for is None
            self.tries.labels("sent" if ok else "failed").inc()
            (self.log.info if ok else self.log.warning)(
                "gpu_wake", how="command", outcome="sent" if ok else "failed", returncode=done.returncode,
                stopped_for=done.stopped_for, waiting=waiting,
                stdout=done.stdout.decode("utf-8", "replace")[-1000:],
                stderr=done.stderr.decode("utf-8", "replace")[-1000:])

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
