"""OpenTelemetry tracing, the optional extra ``omad[otel]``: one trace per job, across attempts and processes.

This is the only module that imports ``opentelemetry``, and it does so only
when the environment asks for traces. Tracing is on when the extra is installed *and* the
standard environment asks for it: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console``; ``none`` turns it off), or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins over
both; ``OTEL_SERVICE_NAME`` defaults to ``omad``. Otherwise every helper here is
a cheap no-op (one boolean test), nothing from opentelemetry is imported, and
nothing is written to the journal, the logs or the sidecars.

A job's trace. At a job's first attempt :func:`new_job_trace` makes a W3C
``traceparent`` (a random trace id and the span id of the job's root span);
the runner stores it in the journal (``jobs.trace``). Every attempt, in any
process and after any number of restarts, makes it current with
:func:`job_context`, so each stage span is a child of the job's root. The
root span ``job`` itself is emitted once, by :func:`end_job` when the job is
published or fails, with the journaled ids and the job's creation time as its
start. So a viewer shows one tree per job with a real root, and a daemon that
dies mid-job loses only the spans it had not exported yet, never the trace.

Propagation to other processes (the Celery executor's workers):
:func:`carrier` gives the current context as W3C headers (``{}`` when off);
:func:`attached` makes such a carrier current in the receiving process, which
must have called :func:`setup` itself. Spans carry ids, routes, stage names,
models, token counts, tool names and return codes: never prompt or answer
text, never the paths of user files, never error messages (only error kinds).

An unreachable collector never touches a job: spans are exported from a
background thread (``BatchSpanProcessor``), a failed export is logged once
per outage ("spans could not be sent ..."), and :func:`flush` at daemon
shutdown is bounded by its timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

__all__ = [
    "setup",
    "install",
    "reset",
    "enabled",
    "flush",
    "new_job_trace",
    "job_context",
    "trace_id",
    "span",
    "annotate",
    "record_span",
    "end_job",
    "current_ids",
    "carrier",
    "attached",
]

log = logging.getLogger("omad.tracing")

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_NOOP: AbstractContextManager[Any] = contextlib.nullcontext()
_EXPORTERS = ("otlp", "console")


class _State:
    """What this process traces with; ``on`` is the one flag every helper tests first."""

    def __init__(self) -> None:
        self.on = False
        self.tracer: Any = None
        self.provider: Any = None
        self.ids: Any = None
        self.owned = False  # made by setup() from the environment (reset() shuts it down)
        self.global_set = False
        self.exit_hook = False
        self.failing = False  # an export failed and was reported; cleared when one succeeds
        self.where = "the collector"
        self.warned: set[str] = set()
        self.lock = threading.Lock()


_state = _State()


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _state.warned:
        _state.warned.add(key)
        log.warning(message, *args)


def _wanted(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the OTEL_* environment asks for; empty when tracing is not configured."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint and endpoint.strip() else []
    if "none" in names:
        return []
    unknown = [n for n in names if n not in _EXPORTERS]
    if unknown:
        _warn_once("unknown-exporter", "tracing: OTEL_TRACES_EXPORTER names %s, which omad does not ship; "
                   "use otlp (OTLP over HTTP/protobuf) or console", ", ".join(unknown))
    return [n for n in names if n in _EXPORTERS]


def enabled() -> bool:
    """Whether spans are being made in this process."""
    return _state.on


def setup(*, service_name: str | None = None) -> bool:
    """Turn tracing on as the OTEL_* environment says (idempotent); whether it is on.

    Called by the daemon at start (and by a worker process, with its own
    ``service_name``, the default when ``OTEL_SERVICE_NAME`` is not set). With
    the configuration but without the extra, it warns once and stays off.
    """
    if _state.on:
        return True
    exporters = _wanted(os.environ)
    if not exporters:
        return False
    with _state.lock:
        if _state.on:
            return True
        try:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        except ImportError:
            _warn_once("no-extra", "tracing: OTEL_* asks for traces but the OpenTelemetry packages are not "
                       "installed; jobs run untraced. Install them with `pip install 'omad[otel]'`.")
            return False
        processors = []
        for name in exporters:
            if name == "console":
                processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
                continue
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                _warn_once("no-otlp", "tracing: the OTLP exporter is not installed; jobs run untraced. "
                           "Install it with `pip install 'omad[otel]'`.")
                continue
            protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
            if protocol != "http/protobuf":
                _warn_once("protocol", "tracing: OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; omad sends "
                           "OTLP over http/protobuf (port 4318 on a collector)", protocol)
            # The exporter's own retry warnings would repeat on every batch; _Guarded says it once instead.
            logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
            inner = OTLPSpanExporter()
            processors.append(BatchSpanProcessor(_guarded(inner, str(getattr(inner, "_endpoint", "the collector")))))
        if not processors:
            return False
        provider = _provider(service_name, processors)
        from opentelemetry import trace

        if not _state.global_set:  # for libraries' own instrumentation; the SDK refuses a second one
            trace.set_tracer_provider(provider)
            _state.global_set = True
        _use(provider, owned=True)
        if not _state.exit_hook:
            atexit.register(flush)
            _state.exit_hook = True
        log.info("tracing on: exporters %s", ", ".join(exporters))
    return True


def install(exporter: Any, *, service_name: str | None = None) -> None:
    """Turn tracing on with ``exporter`` (an SDK ``SpanExporter``), each span exported when it ends.

    The test hook (an ``InMemorySpanExporter``) and a way to embed omad under
    another exporter; replaces whatever :func:`setup` or an earlier call set.
    """
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    with _state.lock:
        _drop()
        _use(_provider(service_name, [SimpleSpanProcessor(exporter)]), owned=False)


def reset() -> None:
    """Tracing off again (a provider made by :func:`setup` is flushed and shut down first)."""
    with _state.lock:
        _drop()


def _drop() -> None:
    if _state.owned and _state.provider is not None:  # bounded, like flush(): the exporter may be retrying
        closing = threading.Thread(target=_state.provider.shutdown, name="omad-trace-shutdown", daemon=True)
        closing.start()
        closing.join(2.0)
    _state.on, _state.tracer, _state.provider, _state.ids, _state.owned = False, None, None, None, False
    _state.failing = False


def _use(provider: Any, *, owned: bool) -> None:
    from . import __version__

    _state.provider, _state.owned = provider, owned
    _state.ids = provider.id_generator
    _state.tracer = provider.get_tracer("omad", __version__)
    _state.on = True


def _provider(service_name: str | None, processors: list[Any]) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from . import __version__

    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name or "omad"
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; the service name set here wins over it.
    resource = Resource.create({"service.name": name, "service.version": __version__})
    # Not the SDK's own exit hook, which waits as long as the exporter retries; flush() is bounded.
    provider = TracerProvider(resource=resource, id_generator=_id_generator(), shutdown_on_exit=False)
    for p in processors:
        provider.add_span_processor(p)
    return provider


def _id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _Ids(RandomIdGenerator):
        """Random ids, except for a job's root span, whose ids were journaled at its first attempt."""

        def __init__(self) -> None:
            self.forced = threading.local()

        def generate_trace_id(self) -> int:
            ids = getattr(self.forced, "ids", None)
            return int(ids[0]) if ids else super().generate_trace_id()

        def generate_span_id(self) -> int:
            ids = getattr(self.forced, "ids", None)
            if ids:
                self.forced.ids = None
                return int(ids[1])
            return super().generate_span_id()

    return _Ids()


def _guarded(inner: Any, where: str) -> Any:
    """``inner`` that never raises into the batch thread and says once per outage that spans are not arriving."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    _state.where = where

    class _Guarded(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            try:
                result: SpanExportResult = inner.export(spans)
                why = "the collector refused them or did not answer"
            except Exception as e:  # noqa: BLE001 - a collector's fault must never reach a job
                result, why = SpanExportResult.FAILURE, type(e).__name__
            if result is not SpanExportResult.SUCCESS:
                _outage(where, why)
            elif _state.failing:
                _state.failing = False
                log.info("tracing: spans reach %s again", where)
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return _Guarded()


def _outage(where: str, why: str) -> None:
    """Spans are not arriving: said once until they arrive again (a job never notices)."""
    if not _state.failing:
        _state.failing = True
        log.warning("tracing: spans could not be sent to %s (%s); jobs are not affected. Check "
                    "OTEL_EXPORTER_OTLP_ENDPOINT and that the collector is up", where, why)


def flush(timeout: float = 5.0) -> bool:
    """Export what is buffered, waiting at most ``timeout`` seconds; whether it all went out in time.

    The daemon's shutdown calls it (and so does process exit). An exporter
    retrying an unreachable collector can take longer than its own timeout, so
    the flush runs in a thread that is left behind after ``timeout``.
    """
    provider = _state.provider
    if not _state.on or provider is None:
        return True
    done = threading.Event()
    sent = [False]

    def run() -> None:
        try:
            sent[0] = bool(provider.force_flush(int(timeout * 1000)))
        except Exception as e:  # noqa: BLE001 - shutdown goes on whatever the exporter does
            log.warning("tracing: flushing spans failed (%s)", type(e).__name__)
        finally:
            done.set()

    threading.Thread(target=run, name="omad-trace-flush", daemon=True).start()
    # A collector already known to be down does not hold a shutdown for long.
    if not done.wait(min(timeout, 1.0) if _state.failing else timeout):
        _outage(_state.where, f"no answer within {timeout:.0f} s")
        return False
    return sent[0]


# -- a job's trace ---------------------------------------------------------------------------------------


def _parse(traceparent: str | None) -> tuple[int, int] | None:
    m = _TRACEPARENT.match(traceparent or "")
    if m is None:
        return None
    trace, span_id = int(m.group(1), 16), int(m.group(2), 16)
    return (trace, span_id) if trace and span_id else None


def new_job_trace() -> str | None:
    """A new job's ``traceparent`` (its trace id and root span id) to journal; None when tracing is off."""
    if not _state.on:
        return None
    ids = _state.ids
    return f"00-{ids.generate_trace_id():032x}-{ids.generate_span_id():016x}-01"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a journaled ``traceparent``; None when tracing is off or it is not one."""
    if not _state.on:
        return None
    ids = _parse(traceparent)
    return f"{ids[0]:032x}" if ids else None


def job_context(traceparent: str | None) -> AbstractContextManager[Any]:
    """Make a job's journaled root context current: spans made inside belong to the job's trace."""
    if not _state.on or _parse(traceparent) is None:
        return _NOOP
    return attached({"traceparent": str(traceparent)})


def end_job(traceparent: str | None, *, started_at: float, attributes: Mapping[str, Any]) -> None:
    """Emit the job's root span ``job`` (from ``started_at``, Unix seconds, to now) with the journaled ids.

    Called once, when the job is published or fails; ``omad.outcome`` other
    than ``done`` marks it as an error.
    """
    if not _state.on:
        return
    ids = _parse(traceparent)
    if ids is None:
        return
    from opentelemetry.context import Context
    from opentelemetry.trace import Status, StatusCode

    _state.ids.forced.ids = ids
    try:
        root = _state.tracer.start_span("job", context=Context(), start_time=int(started_at * 1e9),
                                        attributes=_attrs(attributes))
    finally:
        _state.ids.forced.ids = None
    if attributes.get("omad.outcome", "done") != "done":
        root.set_status(Status(StatusCode.ERROR, str(attributes.get("omad.error.kind") or "failed")))
    root.end()


# -- spans -----------------------------------------------------------------------------------------------


def _attrs(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes as OpenTelemetry takes them: str, bool, int, float (None left out, others as str)."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def _mark_error(sp: Any, err: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    from .errors import OmadError

    kind = err.kind if isinstance(err, OmadError) else type(err).__name__
    sp.set_attribute("omad.error.kind", kind)
    if not sp.attributes or "omad.outcome" not in sp.attributes:
        sp.set_attribute("omad.outcome", "error")
    # Only the kind: an error's message may quote a file's content.
    sp.set_status(Status(StatusCode.ERROR, kind))


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A child span of the current one for the ``with`` block; an exception marks it with its error kind.

    A no-op when tracing is off, and outside a job's trace (an ffmpeg run by
    ``omad doctor`` makes no trace of its own).
    """
    if not _state.on:
        return _NOOP
    return _span(name, attributes)


@contextlib.contextmanager
def _span(name: str, attributes: Mapping[str, Any] | None) -> Iterator[Any]:
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        yield None
        return
    with _state.tracer.start_as_current_span(name, attributes=_attrs(attributes), record_exception=False,
                                             set_status_on_exception=False) as sp:
        try:
            yield sp
        except BaseException as e:
            _mark_error(sp, e)
            raise


def annotate(attributes: Mapping[str, Any]) -> None:
    """Add attributes to the current span (a no-op when off or outside a span)."""
    if not _state.on:
        return
    from opentelemetry import trace

    sp = trace.get_current_span()
    if sp.is_recording():
        sp.set_attributes(_attrs(attributes))


def record_span(name: str, start_ns: int, attributes: Mapping[str, Any], *, error_kind: str | None = None) -> None:
    """A finished child span of the current one that began at ``start_ns`` (``time.time_ns()``) and ends now.

    For calls whose outcome is only known after they return (an LLM answer
    that is then validated), so the call site needs no ``with`` block.
    """
    if not _state.on:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    if not trace.get_current_span().get_span_context().is_valid:
        return
    sp = _state.tracer.start_span(name, start_time=start_ns, attributes=_attrs(attributes))
    if error_kind:
        sp.set_attribute("omad.error.kind", error_kind)
        sp.set_status(Status(StatusCode.ERROR, error_kind))
    sp.end(max(start_ns, time.time_ns()))


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log lines; None when off or outside a trace."""
    if not _state.on:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") if ctx.is_valid else None


# -- across processes ------------------------------------------------------------------------------------


def carrier() -> dict[str, str]:
    """The current context as W3C trace-context headers (``traceparent``), to send with a task; ``{}`` when off."""
    if not _state.on:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    out: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(out)
    return out


def attached(headers: Mapping[str, str] | None) -> AbstractContextManager[Any]:
    """Make the context in ``headers`` (from :func:`carrier`, maybe in another process) current for the block.

    Spans made inside continue the sender's trace. A no-op when tracing is off
    here or the headers carry no context.
    """
    if not _state.on or not headers or "traceparent" not in headers:
        return _NOOP
    return _attached(dict(headers))


@contextlib.contextmanager
def _attached(headers: dict[str, str]) -> Iterator[None]:
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    token = context.attach(TraceContextTextMapPropagator().extract(headers))
    try:
        yield
    finally:
        context.detach(token)
