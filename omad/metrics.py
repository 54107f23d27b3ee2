"""Prometheus metrics for one daemon: counters fed by its events, gauges read at scrape time.

Owns a per-daemon ``CollectorRegistry`` (never the global one, so one process can
run many daemons, as the tests do). Counters and histograms move on the daemon's
events (:class:`omad.daemon.EventBus`) and on GPU residency loads and unloads;
queue, lane, journal, GPU and disk gauges are read when Prometheus scrapes, so
they are never stale.

Label values are bounded: routes, stages, lanes, error kinds, final statuses,
configured model and role names, guardrail finding types. Never a file name or a
job id; a label that sees more distinct values than expected folds the surplus
into ``other``.

Every labelled counter and histogram series whose labels are known in advance is
created at zero when the metrics start (routes x final statuses, stages x error
kinds, lanes, configured LLM roles and models, TTS engines, PII types x actions,
the configured Ollama models on the GPU lane). Prometheus sees a series from its
first scrape on: one born at its first increment is already at 1 by then, so
``rate()`` and ``increase()`` would miss the first failures after every start and
``OmadJobsFailing`` could not fire for them. Values known only at run time (an F5
checkpoint's device and precision, guardrail topics) start at their first event.

Stage results are read from the typed fields of ``StageResult`` (``stage_done``
events), and each field's records defensively: a missing or odd field is
skipped, never an error. Lane seconds come from ``billed`` events, failed
attempts included, so the cost counters add up to the journal's. This module
never writes to the journal, the outbox or the inbox.

- ``result.llm_calls``: LLM call records (``omad.agents.client.CallRecord``):
  ``role``, ``model``, ``tokens_in``, ``tokens_out``, ``latency_seconds``,
  ``fallback_used`` and ``tries`` (each ``model``, ``outcome``, ``tokens_in``,
  ``tokens_out``, ``latency_seconds``). When ``tries`` is present each try is one
  request; otherwise the record itself is.
- ``result.tts``: dicts with ``engine``, ``rtf`` and optionally ``peak_vram_gb``.
- ``result.guardrail_findings``: dicts with ``type`` and ``action``.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import __version__, errors
from .config import Config, TtsConfig
from .guardrails import PII_TYPES, Action
from .journal import Job, JobStatus
from .lanes import UNLOAD_REASONS
from .media.tool_version import ffmpeg_version_cached
from .routes import ROUTE_STAGES, ROUTES
from .stage import StageResult

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["Metrics", "model_label", "GIB"]

GIB = 2**30  # the "GB" of omad's VRAM options and facts are GiB (torch reports bytes / 2**30)

_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
_JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
_LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)

_MAX_LABEL_VALUES = 32  # per label name; a bug or odd input must not explode the series count

_LLM_OUTCOMES = ("ok", "invalid", "model_missing")  # what _request_outcome returns
_TOKEN_TYPES = ("prompt", "completion")
# An error before a job's first stage (its inputs vanished, an unknown route) is counted as "intake".
_NO_STAGE = "intake"


def _error_kinds() -> tuple[list[str], list[str]]:
    """The ``kind`` of every omad error class, and those of the retryable ones."""
    classes = [c for c in (getattr(errors, n) for n in errors.__all__)
               if isinstance(c, type) and issubclass(c, errors.OmadError) and c is not errors.OmadError]
    kinds = sorted({c.kind for c in classes})
    return kinds, sorted({c.kind for c in classes if c.retryable})


def _stages() -> list[str]:
    return list(dict.fromkeys(s for route in ROUTES for s in ROUTE_STAGES[route])) + [_NO_STAGE]


def _llm_models(config: Config) -> dict[str, list[str]]:
    """Each configured role and the models it may ask (its model, then its fallback)."""
    roles = config.llm.roles
    out: dict[str, list[str]] = {}
    for role in type(roles).model_fields:
        spec = getattr(roles, role)
        out[role] = [m for m in dict.fromkeys((spec.model, spec.fallback)) if m]
    return out


class _LabelGuard:
    """Keeps each label name to at most ``limit`` distinct values; the rest read ``other``."""

    def __init__(self, limit: int = _MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: Any) -> str:
        text = str(value).strip()[:80] if value is not None else ""
        text = text or "unknown"
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if text in seen:
                return text
            if len(seen) >= self.limit:
                return "other"
            seen.add(text)
            return text


def model_label(key: str) -> str:
    """A residency key as a label: absolute paths inside it shortened to their file name.

    F5 keys embed the configured checkpoint path (``f5:/srv/ckpt/model.safetensors:cuda:float16``);
    the directory says nothing on a dashboard and may hold a user name.
    """
    parts = key.split(":")
    return ":".join(p.rsplit("/", 1)[-1] if p.startswith(("/", "~")) else p for p in parts)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _request_outcome(outcome: Any) -> str:
    # Outcomes carry free text (the validation error); only its class is a label.
    if outcome == "ok":
        return "ok"
    if outcome == "model not pulled":
        return "model_missing"
    return "invalid"


class Metrics:
    """The daemon's metrics. Create it before ``daemon.run()`` so no event is missed."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.registry = CollectorRegistry()
        self._label = _LabelGuard()
        self._attached = True
        self._waiting_files = 0
        self._peak_vram_gb: float | None = None
        self._models: set[str] = set()
        self._lock = threading.Lock()
        r = self.registry

        self.build_info = Gauge("omad_build_info", "omad version, Python and ffmpeg versions (value is 1)",
                                ["version", "python", "ffmpeg"], registry=r)
        ffmpeg = ffmpeg_version_cached(daemon.paths.state / "cache")  # asked once per ffmpeg binary
        self.build_info.labels(__version__, sys.version.split()[0], ffmpeg).set(1)
        self.start_time = Gauge("omad_start_time_seconds", "Unix time the daemon's metrics started", registry=r)
        self.start_time.set(time.time())

        self.jobs_created = Counter("omad_jobs_created_total", "Jobs accepted from the inbox", ["route"], registry=r)
        self.jobs_finished = Counter("omad_jobs_finished_total", "Jobs that reached a final status",
                                     ["route", "status"], registry=r)
        self.job_seconds = Histogram("omad_job_duration_seconds",
                                     "Seconds from a job's first start to its final status", ["route", "status"],
                                     buckets=_JOB_BUCKETS, registry=r)
        self.drop_to_start = Histogram("omad_drop_to_start_seconds",
                                       "Seconds from a drop being first seen to its job's first start",
                                       ["route"], buckets=_WAIT_BUCKETS, registry=r)
        self.stage_seconds = Histogram("omad_stage_duration_seconds", "Seconds a finished stage ran, in its lane slot",
                                       ["stage", "lane"], buckets=_STAGE_BUCKETS, registry=r)
        self.stage_errors = Counter("omad_stage_errors_total", "Stage failures (each attempt), by error kind",
                                    ["stage", "kind"], registry=r)
        self.retries = Counter("omad_retries_total", "Failures scheduled for another attempt", ["stage", "kind"],
                               registry=r)
        self.published_bytes = Counter("omad_published_bytes_total", "Bytes published to the outbox (with sidecars)",
                                       ["route"], registry=r)
        self.cpu_seconds = Counter("omad_cpu_seconds_total", "Stage seconds spent in the cpu lane (cost basis)",
                                   ["route"], registry=r)
        self.gpu_seconds = Counter("omad_gpu_seconds_total", "Stage seconds spent in the gpu lane (cost basis)",
                                   ["route"], registry=r)
        self.cost = Counter("omad_estimated_cost_total",
                            "Estimated cost of lane seconds at metrics.cpu_hour_price and metrics.gpu_hour_price",
                            ["currency", "route"], registry=r)
        self.gpu_loads = Counter("omad_gpu_model_loads_total", "Models loaded onto the GPU lane", ["model"],
                                 registry=r)
        self.gpu_unloads = Counter("omad_gpu_model_unloads_total", "Models unloaded from the GPU lane, by reason",
                                   ["model", "reason"], registry=r)
        self.llm_tokens = Counter("omad_llm_tokens_total", "LLM tokens, prompt or completion",
                                  ["role", "model", "type"], registry=r)
        self.llm_requests = Counter("omad_llm_requests_total", "LLM requests by outcome (ok, invalid, model_missing)",
                                    ["role", "model", "outcome"], registry=r)
        self.llm_seconds = Histogram("omad_llm_request_duration_seconds", "Seconds one LLM request took",
                                     ["role", "model"], buckets=_LLM_BUCKETS, registry=r)
        self.llm_fallbacks = Counter("omad_llm_fallbacks_total", "LLM calls answered by the role's fallback model",
                                     ["role"], registry=r)
        self.tts_rtf = Histogram("omad_tts_real_time_factor", "Synthesis seconds per second of speech",
                                 ["engine"], buckets=_RTF_BUCKETS, registry=r)
        self.guardrail_findings = Counter("omad_guardrail_findings_total", "Guardrail findings by type and action",
                                          ["type", "action"], registry=r)

        self._zero_known_series()
        ProcessCollector(registry=r)
        r.register(_ScrapeCollector(self))

        self._handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "tick": self._on_tick,
            "job_created": self._on_job_created,
            "job_started": self._on_job_started,
            "stage_done": self._on_stage_done,
            "billed": self._on_billed,
            "stage_error": self._on_stage_error,
            "retry": self._on_retry,
            "job_finished": self._on_job_finished,
        }
        daemon.events.subscribe(self.on_event)
        daemon.lanes.residency.listeners.append(self.on_residency)

    def _zero_known_series(self) -> None:
        """Create at zero every series whose labels are known before the first event (see the module doc)."""
        label = self._label
        config = self.daemon.config
        currency = label("currency", config.metrics.currency)
        ran = [s.value for s in JobStatus if s.final and s is not JobStatus.DUPLICATE]  # a duplicate never runs
        for route in (label("route", r) for r in ROUTES):
            self.jobs_created.labels(route)
            self.drop_to_start.labels(route)
            self.published_bytes.labels(route)
            self.cpu_seconds.labels(route)
            self.gpu_seconds.labels(route)
            self.cost.labels(currency, route)
            for status in (s.value for s in JobStatus if s.final):
                self.jobs_finished.labels(route, status)
            for status in ran:
                self.job_seconds.labels(route, status)
        kinds, retryable = _error_kinds()
        lanes = [lane.name for lane in self.daemon.lanes.all()]
        for stage in (label("stage", s) for s in _stages()):
            for kind in kinds:
                self.stage_errors.labels(stage, label("kind", kind))
            for kind in retryable:
                self.retries.labels(stage, label("kind", kind))
            if stage != _NO_STAGE:
                for lane in lanes:
                    self.stage_seconds.labels(stage, lane)
        ollama_models: set[str] = set()
        for role_name, models in _llm_models(config).items():
            role = label("role", role_name)
            self.llm_fallbacks.labels(role)
            for name in models:
                model = label("llm_model", name)
                ollama_models.add(name)
                self.llm_seconds.labels(role, model)
                for outcome in _LLM_OUTCOMES:
                    self.llm_requests.labels(role, model, outcome)
                for kind in _TOKEN_TYPES:
                    self.llm_tokens.labels(role, model, kind)
        for engine in get_args(TtsConfig.model_fields["engine"].annotation):
            self.tts_rtf.labels(label("engine", engine))
        for pii in PII_TYPES:
            for action in get_args(Action):
                self.guardrail_findings.labels(label("finding_type", pii), label("action", action))
        if not config.llm.remote:  # a remote Ollama never takes the GPU lane (see omad.agents.client)
            for name in sorted(ollama_models):
                model = label("model", model_label(f"ollama:{name}"))
                self._models.add(model)
                self.gpu_loads.labels(model)
                for reason in UNLOAD_REASONS:
                    self.gpu_unloads.labels(model, label("reason", reason))

    # -- output ----------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of this daemon's registry."""
        return generate_latest(self.registry)

    def detach(self) -> None:
        """Stop listening (the event bus has no unsubscribe; events are ignored from now on)."""
        self._attached = False
        listeners = self.daemon.lanes.residency.listeners
        if self.on_residency in listeners:
            listeners.remove(self.on_residency)

    @property
    def waiting_files(self) -> int:
        return self._waiting_files

    # -- events ----------------------------------------------------------------------------------

    def on_event(self, event: str, data: Mapping[str, Any]) -> None:
        handler = self._handlers.get(event)
        if handler is not None and self._attached:
            handler(data)

    def on_residency(self, event: str, key: str, info: Mapping[str, Any]) -> None:
        model = self._label("model", model_label(key))
        with self._lock:
            self._models.add(model)
        if event == "load":
            self.gpu_loads.labels(model).inc()
        elif event == "unload":
            self.gpu_unloads.labels(model, self._label("reason", info.get("reason"))).inc()

    def _route(self, job: Job) -> str:
        return self._label("route", job.route)

    def _on_tick(self, data: Mapping[str, Any]) -> None:
        waiting = _number(data.get("waiting"))
        if waiting is not None:
            self._waiting_files = int(waiting)

    def _on_job_created(self, data: Mapping[str, Any]) -> None:
        self.jobs_created.labels(self._route(data["job"])).inc()

    def _on_job_started(self, data: Mapping[str, Any]) -> None:
        job: Job = data["job"]
        # The event carries the job as read before the attempt began: no started_at means a first start.
        if job.started_at is None:
            self.drop_to_start.labels(self._route(job)).observe(max(0.0, time.time() - job.dropped_at))

    def _on_stage_done(self, data: Mapping[str, Any]) -> None:
        lane = "gpu" if data.get("lane") == "gpu" else "cpu"
        seconds = max(0.0, float(data.get("seconds") or 0.0))
        self.stage_seconds.labels(self._label("stage", data.get("stage")), lane).observe(seconds)
        result = data.get("result")
        if isinstance(result, StageResult):
            self._read_result(result)

    def _on_billed(self, data: Mapping[str, Any]) -> None:
        # The journal bills the same seconds to the job's lane columns, so these counters
        # add up to the sum of daemon.records.cost(job) over the jobs.
        route = self._route(data["job"])
        prices = self.daemon.config.metrics
        for lane, value in (data.get("lane_seconds") or {}).items():
            seconds = max(0.0, float(value or 0.0))
            if lane == "gpu":
                self.gpu_seconds.labels(route).inc(seconds)
                price = prices.gpu_hour_price
            else:
                self.cpu_seconds.labels(route).inc(seconds)
                price = prices.cpu_hour_price
            self.cost.labels(self._label("currency", prices.currency), route).inc(seconds / 3600 * price)

    def _read_result(self, result: StageResult) -> None:
        for record in _dicts(result.llm_calls):
            self._read_llm_record(record)
        for tts in _dicts(result.tts):
            engine = self._label("engine", tts.get("engine"))
            rtf = _number(tts.get("rtf"))
            if rtf is not None and rtf >= 0:
                self.tts_rtf.labels(engine).observe(rtf)
            peak = _number(tts.get("peak_vram_gb"))
            if peak is not None:
                with self._lock:
                    self._peak_vram_gb = max(self._peak_vram_gb or 0.0, peak)
        for finding in _dicts(result.guardrail_findings):
            self.guardrail_findings.labels(self._label("finding_type", finding.get("type")),
                                           self._label("action", finding.get("action"))).inc()

    def _read_llm_record(self, record: Mapping[str, Any]) -> None:
        role = self._label("role", record.get("role"))
        tries = _dicts(record.get("tries")) or [record]
        for t in tries:
            model = self._label("llm_model", t.get("model") or record.get("model"))
            outcome = _request_outcome(t.get("outcome", "ok"))
            self.llm_requests.labels(role, model, outcome).inc()
            for key, kind in (("tokens_in", "prompt"), ("tokens_out", "completion")):
                n = _number(t.get(key))
                if n is not None and n > 0:
                    self.llm_tokens.labels(role, model, kind).inc(n)
            latency = _number(t.get("latency_seconds"))
            if latency is not None and outcome != "model_missing":
                self.llm_seconds.labels(role, model).observe(max(0.0, latency))
        if record.get("fallback_used") is True:
            self.llm_fallbacks.labels(role).inc()

    def _on_stage_error(self, data: Mapping[str, Any]) -> None:
        self.stage_errors.labels(self._label("stage", data.get("stage")), self._label("kind", data.get("kind"))).inc()

    def _on_retry(self, data: Mapping[str, Any]) -> None:
        stage = data.get("stage") or _NO_STAGE  # as stage_error names it, so the two series pair up
        self.retries.labels(self._label("stage", stage), self._label("kind", data.get("kind"))).inc()

    def _on_job_finished(self, data: Mapping[str, Any]) -> None:
        job: Job | None = data.get("job")
        if job is None:
            return
        route = self._route(job)
        status = job.status.value
        self.jobs_finished.labels(route, status).inc()
        size = _number(data.get("bytes"))
        if size is not None and size > 0:
            self.published_bytes.labels(route).inc(size)
        if job.started_at is not None and job.finished_at is not None:
            self.job_seconds.labels(route, status).observe(max(0.0, job.finished_at - job.started_at))

    # -- scrape-time views -------------------------------------------------------------------------

    def peak_vram_gb(self) -> float | None:
        """The highest VRAM peak known: from the residency (F5 notes it) or from TTS facts."""
        known = [v for v in (self.daemon.lanes.residency.peak_vram_gb, self._peak_vram_gb) if v is not None]
        return max(known) if known else None

    def known_models(self) -> set[str]:
        with self._lock:
            return set(self._models)


class _ScrapeCollector(Collector):
    """Gauges read from the daemon when Prometheus scrapes."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield from self._jobs()
        yield from self._lanes()
        yield from self._gpu()
        yield from self._disk()
        d = self.metrics.daemon
        yield GaugeMetricFamily("omad_inbox_waiting_files",
                                "Inbox files waiting to settle or for a partner file", value=self.metrics.waiting_files)
        yield GaugeMetricFamily("omad_inbox_ignored_files",
                                "FIFOs, sockets and devices in the inbox, never opened", value=len(d.ignored))
        yield GaugeMetricFamily("omad_loop_heartbeat_age_seconds", "Seconds since the main loop last ticked",
                                value=max(0.0, time.monotonic() - d.heartbeat))
        yield CounterMetricFamily("omad_loop_ticks", "Ticks of the main loop (each one looks at the inbox and "
                                  "the queue)", value=d.ticks)
        yield CounterMetricFamily("omad_inbox_scans", "Full scans of the inbox (at start, every "
                                  "watch.rescan_seconds, and while it is missing)", value=d.scans)
        yield CounterMetricFamily("omad_loop_errors", "Faults caught in the main loop (each logged with its "
                                  "traceback as loop_error); the loop went on", value=d.loop_errors)

    def _jobs(self) -> Iterator[Metric]:
        d = self.metrics.daemon
        running = len(d.running)  # len() of a dict is atomic: no need for the daemon's lock
        yield GaugeMetricFamily("omad_jobs_in_progress", "Job threads running now", value=running)
        try:
            counts = d.journal.counts()
        except Exception:  # a closed or broken journal must not break the whole scrape
            return
        family = GaugeMetricFamily("omad_jobs", "Jobs in the journal by status (queued = waiting for a lane)",
                                   labels=["status"])
        for status in JobStatus:
            family.add_metric([status.value], counts.get(status.value, 0))
        yield family

    def _lanes(self) -> Iterator[Metric]:
        lanes = self.metrics.daemon.lanes.all()
        capacity = GaugeMetricFamily("omad_lane_capacity_slots", "Slots a lane has", labels=["lane"])
        busy = GaugeMetricFamily("omad_lane_busy_slots", "Slots in use now", labels=["lane"])
        depth = GaugeMetricFamily("omad_lane_queue_depth", "Stages waiting for a slot", labels=["lane"])
        busy_seconds = CounterMetricFamily("omad_lane_busy_seconds", "Slot-seconds used (finished holds)",
                                           labels=["lane"])
        for lane in lanes:
            capacity.add_metric([lane.name], lane.capacity)
            busy.add_metric([lane.name], lane.busy)
            depth.add_metric([lane.name], lane.waiting)
            busy_seconds.add_metric([lane.name], lane.busy_seconds)
        yield from (capacity, busy, depth, busy_seconds)

    def _gpu(self) -> Iterator[Metric]:
        m = self.metrics
        residency = m.daemon.lanes.residency
        residents = residency.snapshot()
        resident = GaugeMetricFamily("omad_gpu_model_resident", "1 while a model is loaded on the GPU lane",
                                     labels=["model"])
        in_use = GaugeMetricFamily("omad_gpu_model_in_use", "1 while a resident model is serving a stage",
                                   labels=["model"])
        now = {m._label("model", model_label(str(r["model"]))): r for r in residents}
        for model in sorted(m.known_models() | set(now)):
            r = now.get(model)
            resident.add_metric([model], 1 if r else 0)
            in_use.add_metric([model], 1 if r and r.get("in_use") else 0)
        yield resident
        yield in_use
        yield GaugeMetricFamily("omad_gpu_vram_budget_bytes", "VRAM the GPU lane may fill (gpu.vram_budget_gb)",
                                value=residency.budget_gb * GIB)
        yield GaugeMetricFamily("omad_gpu_vram_resident_bytes", "VRAM budgeted to the models resident now",
                                value=residency.used_gb() * GIB)
        peak = m.peak_vram_gb()
        if peak is not None:
            yield GaugeMetricFamily("omad_gpu_vram_peak_bytes", "Highest VRAM use measured (when the GPU reports it)",
                                    value=peak * GIB)

    def _disk(self) -> Iterator[Metric]:
        paths = self.metrics.daemon.paths
        family = GaugeMetricFamily("omad_disk_free_bytes", "Free bytes on the file system of each folder",
                                   labels=["path"])
        for name, folder in (("inbox", paths.inbox), ("outbox", paths.outbox), ("state", paths.state)):
            try:
                family.add_metric([name], shutil.disk_usage(folder).free)
            except OSError:  # an unmounted share has no free space to report, not zero
                continue
        yield family
