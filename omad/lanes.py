"""Lanes: how many stages run at once, and which model sits on the GPU.

Two lanes: ``cpu`` (N slots) and ``gpu`` (one slot, the single GPU lane).
A slot is taken in FIFO order so a long queue cannot starve a job. The GPU lane
also owns *residency*: the models loaded on the card (an F5 voice, an Ollama
model). Before something loads, others are evicted until it fits
``gpu.vram_budget_gb``; a model idle for ``gpu.idle_unload_seconds`` is unloaded.

Lanes are thread-safe: stages run in worker threads and may take a lane slot
from inside a stage (an agent stage on the CPU lane takes the GPU lane for each
Ollama call). Nothing here knows about jobs beyond an id for display.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Lane", "Lanes", "GpuResidency", "Resident", "UNLOAD_REASONS"]

T = TypeVar("T")

#: Why a model leaves the GPU (the ``reason`` of an unload event). "f5-oom" is F5 clearing
#: the card after CUDA ran out of memory. Metrics create a series for each at start-up.
UNLOAD_REASONS = ("evicted", "idle", "shutdown", "f5-oom")

LaneListener = Callable[[str, str, dict[str, Any]], None]


class Lane:
    """A FIFO counting semaphore with a view of who holds and who waits."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        self._cond = threading.Condition()
        self._holders: dict[int, str] = {}
        self._waiting: deque[int] = deque()
        self._next_ticket = 0
        self.busy_seconds = 0.0

    @contextmanager
    def slot(self, holder: str = "") -> Iterator[None]:
        """Hold one slot for the duration of the block."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._waiting.append(ticket)
            while self._waiting[0] != ticket or len(self._holders) >= self.capacity:
                self._cond.wait()
            self._waiting.popleft()
            self._holders[ticket] = holder
            self._cond.notify_all()
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                del self._holders[ticket]
                self.busy_seconds += time.monotonic() - started
                self._cond.notify_all()

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._holders)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def holders(self) -> list[str]:
        with self._cond:
            return list(self._holders.values())


@dataclass
class Resident(Generic[T]):
    """One model loaded on the GPU."""

    key: str
    vram_gb: float
    value: T
    unload: Callable[[T], None]
    loaded_at: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    in_use: int = 0


class GpuResidency:
    """Which models are on the GPU, within a VRAM budget.

    ``acquire(key, vram_gb, load, unload)`` returns the loaded value, loading it
    (and evicting idle residents to make room) when needed; use it as a context
    manager so an in-use model is never evicted under a running synthesis.
    """

    def __init__(self, budget_gb: float, idle_unload_seconds: float) -> None:
        self.budget_gb = budget_gb
        self.idle_unload_seconds = idle_unload_seconds
        self._lock = threading.RLock()
        self._residents: dict[str, Resident[Any]] = {}
        self.loads: dict[str, int] = {}
        self.unloads: dict[str, int] = {}
        self.peak_vram_gb: float | None = None
        self.listeners: list[LaneListener] = []

    def _emit(self, event: str, key: str, **info: Any) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):  # a metrics hook must never break a job
                listener(event, key, info)

    def _unload(self, key: str, reason: str) -> None:
        r = self._residents.pop(key)
        try:
            r.unload(r.value)
        finally:
            self.unloads[key] = self.unloads.get(key, 0) + 1
            self._emit("unload", key, reason=reason)

    def used_gb(self) -> float:
        with self._lock:
            return sum(r.vram_gb for r in self._residents.values())

    @contextmanager
    def acquire(
        self, key: str, vram_gb: float, load: Callable[[], T], unload: Callable[[T], None]
    ) -> Iterator[T]:
        with self._lock:
            r = self._residents.get(key)
            if r is None:
                self._make_room(vram_gb, keep=key)
                value = load()
                r = Resident(key=key, vram_gb=vram_gb, value=value, unload=unload)
                self._residents[key] = r
                self.loads[key] = self.loads.get(key, 0) + 1
                self._emit("load", key, vram_gb=vram_gb)
            r.in_use += 1
            r.last_used = time.monotonic()
        try:
            yield r.value
        finally:
            with self._lock:
                r.in_use -= 1
                r.last_used = time.monotonic()

    def _make_room(self, need_gb: float, keep: str) -> None:
        # Evict least-recently-used idle residents until the new one fits.
        while self._residents and self.used_gb() + need_gb > self.budget_gb:
            idle = [r for r in self._residents.values() if r.in_use == 0 and r.key != keep]
            if not idle:
                return
            victim = min(idle, key=lambda r: r.last_used)
            self._unload(victim.key, reason="evicted")

    def evict(self, predicate: Callable[[str], bool] | None = None, reason: str = "evicted") -> list[str]:
        """Unload idle residents whose key matches ``predicate`` (all idle ones when None)."""
        done = []
        with self._lock:
            for key in list(self._residents):
                r = self._residents[key]
                if r.in_use == 0 and (predicate is None or predicate(key)):
                    self._unload(key, reason=reason)
                    done.append(key)
        return done

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload residents idle longer than ``idle_unload_seconds``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [
                k
                for k, r in self._residents.items()
                if r.in_use == 0 and now - r.last_used >= self.idle_unload_seconds
            ]
            for key in stale:
                self._unload(key, reason="idle")
        return stale

    def note_peak(self, vram_gb: float) -> None:
        with self._lock:
            self.peak_vram_gb = max(self.peak_vram_gb or 0.0, vram_gb)

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "model": r.key,
                    "vram_gb": r.vram_gb,
                    "in_use": r.in_use > 0,
                    "idle_seconds": round(now - r.last_used, 1),
                }
                for r in self._residents.values()
            ]

    def close(self) -> None:
        with self._lock:
            for key in list(self._residents):
                self._unload(key, reason="shutdown")


class Lanes:
    """The daemon's two lanes and the GPU residency they share."""

    def __init__(self, cpu_slots: int, vram_budget_gb: float = 4.0, idle_unload_seconds: float = 300.0) -> None:
        self.cpu = Lane("cpu", cpu_slots)
        self.gpu = Lane("gpu", 1)
        self.residency = GpuResidency(vram_budget_gb, idle_unload_seconds)

    def lane(self, name: str) -> Lane:
        if name == "gpu":
            return self.gpu
        return self.cpu

    def all(self) -> list[Lane]:
        return [self.cpu, self.gpu]
