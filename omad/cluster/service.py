"""An ``omad worker``'s main process: the Celery worker, its /metrics, its record in Redis, the idle exit.

The pool children run the stages (``worker.py``) and write what they hold and
did to small state files; this process serves those as ``/metrics``,
advertises the worker in Redis (``omad:worker:<name>``) for the daemon's
status page, and, with ``--exit-when-idle``, stops the worker once nothing
has run for that long, so an on-demand GPU machine can power off.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from ..log import get_logger
from .task import alive
from .worker import redis_client, set_config

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["run_worker"]

_log = get_logger("omad.worker")


def _children(config: Config) -> list[dict[str, Any]]:
    """The state files of this worker's live pool children (stale ones removed)."""
    folder = config.worker_dir() / "children"
    out = []
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not alive(int(data.get("pid", 0))):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        out.append(data)
    return out


class _Collector:
    """The worker's ``/metrics``: what its children hold and did."""

    def __init__(self, config: Config, name: str, queues: list[str]) -> None:
        self.config = config
        self.name = name
        self.queues = queues

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        kids = _children(self.config)
        info = GaugeMetricFamily("omad_worker_info", "this worker", labels=["worker", "queues"])
        info.add_metric([self.name, ",".join(self.queues)], 1)
        yield info
        tasks = CounterMetricFamily("omad_worker_tasks", "stage tasks this worker finished",
                                    labels=["stage", "outcome"])
        totals: dict[tuple[str, str], int] = {}
        for kid in kids:
            for key, n in (kid.get("tasks") or {}).items():
                stage, _, outcome = key.partition(":")
                totals[(stage, outcome)] = totals.get((stage, outcome), 0) + int(n)
        for (stage, outcome), n in sorted(totals.items()):
            tasks.add_metric([stage, outcome], n)
        yield tasks
        running = GaugeMetricFamily("omad_worker_running", "stage tasks running now")
        running.add_metric([], sum(1 for k in kids if k.get("running")))
        yield running
        resident = GaugeMetricFamily("omad_gpu_resident_models", "models loaded on this worker's GPU",
                                     labels=["model"])
        vram = GaugeMetricFamily("omad_gpu_vram_used_gb", "VRAM the resident models are budgeted at")
        loads = CounterMetricFamily("omad_gpu_model_loads", "model loads", labels=["model"])
        unloads = CounterMetricFamily("omad_gpu_model_unloads", "model unloads", labels=["model"])
        used = 0.0
        for kid in kids:
            for r in kid.get("residents") or []:
                resident.add_metric([str(r.get("model"))], 1)
            used += float(kid.get("vram_used_gb") or 0)
            for model, n in (kid.get("loads") or {}).items():
                loads.add_metric([model], n)
            for model, n in (kid.get("unloads") or {}).items():
                unloads.add_metric([model], n)
        vram.add_metric([], used)
        yield from (resident, vram, loads, unloads)


def _advertise(config: Config, name: str, queues: list[str], concurrency: int, stop: threading.Event) -> None:
    """Keep ``omad:worker:<name>`` in Redis while the worker lives (the daemon's status page reads it)."""
    client = redis_client(config)
    every = max(1.0, min(5.0, config.executor.heartbeat_seconds))
    started = time.time()
    while not stop.is_set():
        kids = _children(config)
        record = {"name": name, "host": socket.gethostname(), "pid": os.getpid(), "queues": queues,
                  "concurrency": concurrency, "started_at": started, "seen_at": time.time(),
                  "running": [k["running"] for k in kids if k.get("running")],
                  "residents": [r for k in kids for r in k.get("residents") or []]}
        with contextlib.suppress(Exception):
            client.set(f"omad:worker:{name}", json.dumps(record), ex=int(every * 3) + 1)
        stop.wait(every)
    with contextlib.suppress(Exception):
        client.delete(f"omad:worker:{name}")


def _idle_exit(config: Config, seconds: float, stop: threading.Event) -> None:
    """Stop the worker once no task has run or waited for ``seconds`` (scale to zero)."""
    from celery.worker import state as wstate

    last = time.monotonic()
    seen = wstate.total_count.copy() if hasattr(wstate.total_count, "copy") else {}
    while not stop.wait(0.5):
        busy = bool(wstate.active_requests) or bool(wstate.reserved_requests)
        counts = dict(wstate.total_count)
        if busy or counts != seen or any(k.get("running") for k in _children(config)):
            last = time.monotonic()
            seen = counts
        elif time.monotonic() - last >= seconds:
            _log.info("idle_exit", idle_seconds=seconds, message="no task for the idle time: the worker stops")
            wstate.should_stop = 0  # the consumer loop ends the worker cleanly (exit code 0)
            return


def run_worker(config: Config, *, queues: list[str], concurrency: int, hostname: str | None = None,
               exit_when_idle: float | None = None, loglevel: str = "INFO") -> int:
    """Run a Celery worker for ``config`` until it is stopped (or idle for ``exit_when_idle``); its exit code."""
    # SIGTERM (systemd stop) becomes Celery's soft shutdown: a running task gets the grace, then goes back.
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    from ..trust import signing_key
    from .app import make_app, queue_name, redact_url

    signing_key(config)  # no key, no worker: a clear start-up error rather than a refusal per task
    set_config(config)
    from ..routes import load_route_modules

    load_route_modules(config.intake.route_modules)  # the pool children are forked with the table as it is now
    app = make_app(config)
    names = [queue_name(config, q) for q in queues]
    name = hostname or socket.gethostname()
    if "@" not in name:  # Celery's node names are NAME@HOST; the records show the same one
        name = f"omad@{name}"
    state_dir = config.worker_dir()
    (state_dir / "children").mkdir(parents=True, exist_ok=True)
    for stale in (state_dir / "children").glob("*.json"):
        with contextlib.suppress(OSError):
            stale.unlink()
    stop = threading.Event()
    ex = config.executor
    if ex.worker_metrics_port:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        registry.register(_Collector(config, name, names))
        start_http_server(ex.worker_metrics_port, addr=ex.worker_metrics_host, registry=registry)
    threading.Thread(target=_advertise, args=(config, name, names, concurrency, stop), daemon=True,
                     name="omad-advertise").start()
    if exit_when_idle:
        threading.Thread(target=_idle_exit, args=(config, exit_when_idle, stop), daemon=True,
                         name="omad-idle-exit").start()
    _log.info("worker_starting", worker=name, queues=names, concurrency=concurrency,
              broker=redact_url(ex.broker()))
    from celery.app import trace

    trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"  # not the whole reply in every line
    worker = app.Worker(hostname=name, queues=names, concurrency=concurrency, pool="prefork", loglevel=loglevel,
                        without_mingle=True, without_gossip=True, optimization="fair", quiet=True)
    try:
        worker.start()
    finally:
        stop.set()
    return int(worker.exitcode or 0)
