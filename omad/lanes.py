"""Lanes: how many stages run at once, and which model sits on the GPU.

Two lanes: ``cpu`` (N slots) and ``gpu`` (one slot, the single GPU lane).
A slot is taken by the waiter with the highest priority, FIFO among equals (the
daemon passes a job's effective priority, which rises with age: see
``omad.controls``), so a long queue cannot starve a job. The CPU lane may also
lend the cores its slots leave idle (``cores - slots``: one on a 2-core box,
where renders get one slot because x264 wants both cores) to *light* stages, a
one-sentence narration, which cost less than their wait: a light waiter may
pass a heavy one only while that one is held back by the slot count, never by
the lent cores, so the heavy one is not starved. The GPU lane
also owns *residency*: the models loaded on the card (an F5 voice, an Ollama
model). Before something loads, others are evicted until it fits
``gpu.vram_budget_gb``; a model idle for ``gpu.idle_unload_seconds`` is unloaded.

Lanes are thread-safe: stages run in worker threads and may take a lane slot
from inside a stage (an agent stage on the CPU lane takes the GPU lane for each
Ollama call). Nothing here knows about jobs beyond an id for display.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

__all__ = ["Lane", "LaneSlots", "Lanes", "GpuResidency", "Resident", "UNLOAD_REASONS"]

T = TypeVar("T")

#: Why a model leaves the GPU (the ``reason`` of an unload event). "f5-oom" is F5 clearing
#: the card after CUDA ran out of memory. Metrics create a series for each at start-up.
UNLOAD_REASONS = ("evicted", "idle", "shutdown", "f5-oom")

LaneListener = Callable[[str, str, dict[str, Any]], None]


class Lane(StrEnum):
    """Where a stage (or a call inside one) runs; a stage declares it, the runner takes a slot there."""

    #: the CPU lane: N slots (``lanes.cpu``)
    CPU = "cpu"
    #: the single GPU lane: one slot, and the residency of the models on the card
    GPU = "gpu"


class LaneSlots:
    """A counting semaphore taken highest priority first, FIFO among equals, with a view of who holds and who
    waits, and the seconds each job held it.

    ``capacity`` slots for anything, and ``lent`` more that only light holders may take (see the module
    doc). A holder is ``JOB`` or ``JOB:detail``: the seconds are booked to ``JOB`` (see :meth:`take_seconds`).
    """

    def __init__(self, name: str, capacity: int, lent: int = 0) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        self.lent = max(0, lent)
        self._cond = threading.Condition()
        self._holders: dict[int, str] = {}
        self._heavy = 0  # holders not light
        self._waiting: list[tuple[float, int]] = []  # a heap of (-priority, ticket)
        self._light: set[int] = set()  # tickets of light waiters and holders
        self._next_ticket = 0
        self.busy_seconds = 0.0
        self._held_by_job: dict[str, float] = {}

    def _may_take(self, key: tuple[float, int]) -> bool:
        """Whether the waiter ``key`` takes a slot now (called under the condition)."""
        light = key[1] in self._light
        if len(self._holders) >= self.capacity + self.lent or (not light and self._heavy >= self.capacity):
            return False
        if key == self._waiting[0]:
            return True
        # Out of turn only a light waiter, and only past heavy ones that the slot count holds back.
        return light and self._heavy >= self.capacity and all(
            k[1] not in self._light for k in self._waiting if k < key)

    @contextmanager
    def slot(self, holder: str = "", priority: float = 0.0, *, light: bool = False) -> Iterator[None]:
        """Hold one slot for the duration of the block (waiters with a higher ``priority`` go first).

        ``light``: a stage cheap enough to run on a lent core (see the module doc).
        """
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            key = (-priority, ticket)
            heapq.heappush(self._waiting, key)
            if light:
                self._light.add(ticket)
            while not self._may_take(key):
                self._cond.wait()
            self._waiting.remove(key)
            heapq.heapify(self._waiting)
            self._holders[ticket] = holder
            self._heavy += 0 if light else 1
            self._cond.notify_all()
        started = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                del self._holders[ticket]
                self._heavy -= 0 if light else 1
                self._light.discard(ticket)
                held = time.monotonic() - started
                self.busy_seconds += held
                job = holder.split(":", 1)[0]
                self._held_by_job[job] = self._held_by_job.get(job, 0.0) + held
                self._cond.notify_all()

    def take_seconds(self, job: str) -> float:
        """Seconds ``job`` held this lane since the last call (its slots and those of calls made for it)."""
        with self._cond:
            return self._held_by_job.pop(job, 0.0)

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

    def __init__(self, cpu_slots: int, vram_budget_gb: float = 4.0, idle_unload_seconds: float = 300.0,
                 cpu_lent: int = 0) -> None:
        self.cpu = LaneSlots(Lane.CPU, cpu_slots, cpu_lent)
        self.gpu = LaneSlots(Lane.GPU, 1)
        self.residency = GpuResidency(vram_budget_gb, idle_unload_seconds)

    def lane(self, name: Lane) -> LaneSlots:
        return self.gpu if Lane(name) is Lane.GPU else self.cpu

    def take_seconds(self, job: str) -> dict[Lane, float]:
        """Seconds ``job`` held each lane since the last call: what its attempt is billed."""
        return {Lane.CPU: self.cpu.take_seconds(job), Lane.GPU: self.gpu.take_seconds(job)}

    def all(self) -> list[LaneSlots]:
        return [self.cpu, self.gpu]
