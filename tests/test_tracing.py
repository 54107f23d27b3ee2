"""Tracing (the omad[otel] extra): one trace per job through the real daemon, real ffmpeg and a FAKE Ollama.

Spans are caught by the SDK's in-memory exporter (``tracing.install``), or,
end to end, by ``_OtlpReceiver`` below: a small HTTP server in the test that
decodes what the real OTLP/HTTP exporter sends with opentelemetry-proto (no
collector can be installed here). "Tracing off" and "without the extra" run
in child processes, so ``sys.modules`` shows what was imported.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, Running, make_video, wait_for, write_srt
from fake_ollama import FakeOllama

from omad import tracing
from omad.errors import TransientError
from omad.journal import JobStatus, Journal
from omad.stage import StageContext, StageResult
from omad.stages.caption import CaptionStage

REPO = Path(__file__).resolve().parents[1]
SPAN_KINDS = ("job", "stage caption", "ffmpeg", "publish")


def _hex(value: int, width: int) -> str:
    return f"{value:0{width}x}"


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on in this process, every finished span kept in memory."""
    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = memory.InMemorySpanExporter()
    tracing.install(exporter)
    try:
        yield exporter
    finally:
        tracing.reset()


def _by_name(finished: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in finished:
        out.setdefault(s.name, []).append(s)
    return out


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests")])
    env.update(extra)
    return env


def _drop_caption(env: Env, name: str = "c", seconds: float = 0.5) -> None:
    make_video(env.inbox / f"{name}.mp4", seconds=seconds)
    write_srt(env.inbox / f"{name}.srt")


def _log_lines(env: Env) -> list[dict[str, Any]]:
    lines = []
    for path in sorted((env.outbox / "logs").glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines


# -- one job, one trace ---------------------------------------------------------------------------------


@pytest.mark.otel
def test_a_caption_job_is_one_trace_with_stage_ffmpeg_and_publish_spans(env: Env, spans: Any) -> None:
    """GIVEN tracing on WHEN a caption pair goes through the daemon
    THEN its spans form one trace rooted at the journaled context: job -> stage caption -> ffmpeg, job -> publish;
    the sidecar and the job's JSON log lines carry that trace id, and no span names a path."""
    _drop_caption(env)
    assert env.once() == 0

    journal = Journal(env.paths.journal)
    [job] = journal.jobs()
    journal.close()
    assert job.status is JobStatus.DONE and job.trace
    _, trace_hex, root_hex, _ = job.trace.split("-")
    finished = spans.get_finished_spans()
    by = _by_name(finished)
    assert set(SPAN_KINDS) <= set(by), sorted(by)
    assert {_hex(s.context.trace_id, 32) for s in finished} == {trace_hex}

    [root] = by["job"]
    assert root.parent is None and _hex(root.context.span_id, 16) == root_hex
    assert root.attributes["omad.job.id"] == job.id and root.attributes["omad.outcome"] == "done"
    assert root.start_time == int(job.created_at * 1e9)

    [stage] = by["stage caption"]
    assert stage.parent is not None and stage.parent.span_id == root.context.span_id
    assert dict(stage.attributes) == {"omad.job.id": job.id, "omad.route": "caption", "omad.stage": "caption",
                                      "omad.attempt": 1, "omad.lane": "cpu", "omad.outcome": "done"}
    for ff in by["ffmpeg"]:
        assert ff.parent is not None and ff.parent.span_id == stage.context.span_id
        assert ff.attributes["omad.ffmpeg.returncode"] == 0 and ff.attributes["omad.file"] == "c.mp4"
        assert "ass" in ff.attributes["omad.ffmpeg.filters"].split(",")
        assert "libx264" in ff.attributes["omad.ffmpeg.codecs"]
        assert ff.end_time > ff.start_time
    [publish] = by["publish"]
    assert publish.parent is not None and publish.parent.span_id == root.context.span_id
    for s in finished:
        for value in s.attributes.values():
            assert str(env.root) not in str(value), (s.name, value)

    assert env.sidecar("c")["trace_id"] == trace_hex
    # The attempt's lines (intake's "accepted" comes before the job's first attempt makes its trace).
    lines = [line for line in _log_lines(env) if line.get("job") == job.id and line["event"] != "accepted"]
    events = {line["event"]: line for line in lines}
    assert {"stage_started", "stage_done", "published"} <= set(events)
    assert all(line.get("trace_id") == trace_hex for line in lines)
    assert events["stage_done"]["span_id"] == _hex(stage.context.span_id, 16)
    assert events["published"]["span_id"] == _hex(publish.context.span_id, 16)


@pytest.mark.otel
def test_a_failed_job_ends_its_trace_with_the_error_kind(env: Env, spans: Any) -> None:
    """GIVEN tracing on WHEN a caption drop whose video is not a video fails
    THEN the stage span and the root span are errors of kind "input", in the journaled trace."""
    (env.inbox / "bad.mp4").write_bytes(b"this is not a video" * 100)
    write_srt(env.inbox / "bad.srt")
    assert env.once() == 1

    journal = Journal(env.paths.journal)
    [job] = journal.jobs()
    journal.close()
    assert job.status is JobStatus.FAILED and job.trace
    by = _by_name(spans.get_finished_spans())
    [root] = by["job"]
    assert _hex(root.context.trace_id, 32) == job.trace.split("-")[1]
    assert root.attributes["omad.outcome"] == "failed" and root.attributes["omad.error.kind"] == "input"
    assert root.status.status_code.name == "ERROR"
    [stage] = by["stage caption"]
    assert stage.attributes["omad.outcome"] == "error" and stage.attributes["omad.error.kind"] == "input"
    assert stage.status.description == "input"  # the kind, never the message


@pytest.mark.otel
def test_the_trace_survives_a_daemon_restart(make_env: Callable[..., Env], spans: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a caption job interrupted by a daemon shutdown mid-stage
    WHEN tracing starts afresh (as in a new process) and a new daemon finishes the job
    THEN both attempts' stage spans and the root carry the trace id journaled at the first attempt."""
    env = make_env(jobs={"shutdown_grace_seconds": 0.2, "backoff_seconds": 0.2, "backoff_max_seconds": 1.0})
    real_run = CaptionStage.run
    entered = threading.Event()

    def held(self: CaptionStage, ctx: StageContext) -> StageResult:
        entered.set()
        ctx.cancel.wait(30)
        raise TransientError("omad is shutting down.", stage="caption")

    monkeypatch.setattr(CaptionStage, "run", held)
    _drop_caption(env)
    d = env.daemon()
    with Running(d):
        wait_for(entered.is_set, timeout=30)
        [job] = d.journal.jobs()
        trace = job.trace
    assert trace is not None
    first = _by_name(spans.get_finished_spans())
    assert "job" not in first  # not ended: the job is still open
    [interrupted] = first["stage caption"]
    assert interrupted.attributes["omad.error.kind"] == "transient"

    memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    again = memory.InMemorySpanExporter()
    tracing.install(again)  # nothing of the first run's tracing state is left
    monkeypatch.setattr(CaptionStage, "run", real_run)
    assert env.once() == 0

    journal = Journal(env.paths.journal)
    job2 = journal.get(job.id)
    journal.close()
    assert job2 is not None and job2.status is JobStatus.DONE and job2.trace == trace
    trace_hex, root_hex = trace.split("-")[1:3]
    second = _by_name(again.get_finished_spans())
    [stage] = second["stage caption"]
    [root] = second["job"]
    assert _hex(interrupted.context.trace_id, 32) == _hex(stage.context.trace_id, 32) == trace_hex
    assert interrupted.parent.span_id == stage.parent.span_id == root.context.span_id
    assert _hex(root.context.span_id, 16) == root_hex and root.start_time == int(job2.created_at * 1e9)
    assert env.sidecar("c")["trace_id"] == trace_hex


# -- LLM calls ------------------------------------------------------------------------------------------


_LLM_KEYS = {"gen_ai.system", "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.usage.input_tokens",
             "gen_ai.usage.output_tokens", "omad.llm.role", "omad.outcome", "omad.llm.total_seconds",
             "omad.llm.load_seconds", "omad.llm.prompt_eval_seconds", "omad.llm.eval_seconds", "omad.error.kind"}


@pytest.mark.otel
def test_llm_calls_are_spans_with_model_and_tokens_but_no_text(tmp_path: Path, spans: Any) -> None:
    """GIVEN the plan stage against a FAKE Ollama inside a job's trace
    WHEN every role answers THEN each request is a span under the stage with role, model, token counts and
    Ollama's timings, and no attribute holds anything the model was sent or wrote."""
    from test_agents import ROLES, make_bundle, make_config, make_ctx

    from omad.stages.plan import PlanStage

    with FakeOllama() as fake:
        ctx = make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url))
        trace = tracing.new_job_trace()
        assert trace is not None
        with tracing.job_context(trace), tracing.span("stage plan"):
            result = PlanStage().run(ctx)
        sent = fake.sent_text()
    scenes = (ctx.work / result.artifacts["scene_brief"]).read_text(encoding="utf-8")

    by = _by_name(spans.get_finished_spans())
    [stage] = by["stage plan"]
    llm = [s for name, group in by.items() if name.startswith("llm ") for s in group]
    assert {s.attributes["omad.llm.role"] for s in llm} == set(ROLES)
    records = {r["role"]: r for r in result.llm_calls}
    for s in llm:
        attrs = dict(s.attributes)
        assert set(attrs) <= _LLM_KEYS
        assert s.parent is not None and s.parent.span_id == stage.context.span_id
        assert _hex(s.context.trace_id, 32) == trace.split("-")[1]
        record = records[attrs["omad.llm.role"]]
        assert attrs["gen_ai.request.model"] == record["model"] and attrs["omad.outcome"] == "ok"
        assert attrs["gen_ai.usage.input_tokens"] == record["tokens_in"] > 0
        assert attrs["gen_ai.usage.output_tokens"] == record["tokens_out"] > 0
        assert attrs["omad.llm.eval_seconds"] == record["eval_duration_seconds"] > 0
        for value in attrs.values():
            if isinstance(value, str):
                assert re.fullmatch(r"[\w.:\-]+", value), value  # identifiers only: no sentence can hide here
    narration = [line.split(":", 1)[1].strip() for line in scenes.splitlines() if "narration:" in line]
    everything = json.dumps([dict(s.attributes) for s in llm], ensure_ascii=False)
    assert narration and not any(n[:30] in everything for n in narration)
    assert "energia solar" in sent and "energia solar" not in everything


# -- across processes -----------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, sys
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from omad import tracing

    exporter = InMemorySpanExporter()
    tracing.install(exporter)
    with tracing.attached(json.loads(sys.argv[1])), tracing.span("worker side"):
        pass
    [s] = exporter.get_finished_spans()
    print(json.dumps({"trace": f"{s.context.trace_id:032x}", "parent": f"{s.parent.span_id:016x}"}))
    """
)


@pytest.mark.otel
def test_a_carrier_continues_the_trace_in_another_process(spans: Any) -> None:
    """GIVEN a stage span in a job's trace WHEN its carrier is handed to a child python process that attaches it
    THEN the child's span has the same trace id and the stage span as its parent; off, the carrier is empty."""
    with tracing.job_context(tracing.new_job_trace()), tracing.span("stage caption") as sp:
        headers = tracing.carrier()
    assert set(headers) == {"traceparent"}
    child = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(headers)], capture_output=True, text=True,
                           timeout=60, env=_child_env())
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout)
    assert got == {"trace": _hex(sp.context.trace_id, 32), "parent": _hex(sp.context.span_id, 16)}
    tracing.reset()
    assert tracing.carrier() == {}
    with tracing.attached(headers), tracing.span("nothing") as nothing:
        assert nothing is None


# -- through the OTLP exporter, to a receiver in the test ----------------------------------------------


class _OtlpReceiver:
    """An OTLP/HTTP traces endpoint (``POST /v1/traces``) that decodes each ExportTraceServiceRequest."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        received: list[dict[str, Any]] = []
        self.spans = received
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for rs in request.resource_spans:
                        service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
                        for ss in rs.scope_spans:
                            for s in ss.spans:
                                attempt = {a.key: a.value.int_value for a in s.attributes}.get("omad.attempt")
                                received.append({"name": s.name, "trace": s.trace_id.hex(), "span": s.span_id.hex(),
                                                 "parent": s.parent_span_id.hex(), "service": service,
                                                 "attempt": attempt})
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _omad_once(env: Env, **otel: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omad.cli", "once", "--config", str(env.root / "omad.yaml"), "--max-wait", "30"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_child_env(**otel))


@pytest.mark.otel
@pytest.mark.slow
def test_omad_once_sends_the_job_trace_over_otlp_http(env: Env) -> None:
    """GIVEN OTEL_EXPORTER_OTLP_ENDPOINT pointing at an OTLP/HTTP receiver WHEN `omad once` runs a caption drop
    THEN the receiver gets the job's spans, one trace, under the configured service name, before omad exits."""
    pytest.importorskip("opentelemetry.proto")
    _drop_caption(env)
    with _OtlpReceiver() as receiver:
        done = _omad_once(env, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="omad-nas")
        assert done.returncode == 0, done.stderr
        got = list(receiver.spans)
    names = {s["name"] for s in got}
    assert set(SPAN_KINDS) <= names, names
    trace_hex = env.sidecar("c")["trace_id"]
    assert {s["trace"] for s in got} == {trace_hex} and {s["service"] for s in got} == {"omad-nas"}
    [root] = [s for s in got if s["name"] == "job"]
    [stage] = [s for s in got if s["name"] == "stage caption"]
    assert root["parent"] == "" and stage["parent"] == root["span"]


_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from omad.cli import main
    from omad.stages.caption import CaptionStage

    def crash(self, ctx):
        os.kill(os.getpid(), signal.SIGKILL)  # mid-stage, nothing flushed

    CaptionStage.run = crash
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.otel
@pytest.mark.slow
def test_after_kill_9_the_next_process_continues_the_journaled_trace(env: Env) -> None:
    """GIVEN `omad once` killed with SIGKILL in the middle of a caption stage
    WHEN a new `omad once` finishes the job, sending spans over OTLP
    THEN its spans (attempt 2) and the root carry the trace id and root span id journaled by the killed process."""
    pytest.importorskip("opentelemetry.proto")
    _drop_caption(env)
    script = env.root / "crash.py"
    script.write_text(_CRASH)
    args = ["once", "--config", str(env.root / "omad.yaml"), "--max-wait", "30"]
    with _OtlpReceiver() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        killed = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                                env=_child_env(**otel))
        assert killed.returncode == -9, killed.stderr
        journal = Journal(env.paths.journal)
        [job] = journal.jobs()
        journal.close()
        assert job.trace is not None and job.status is JobStatus.RUNNING
        done = _omad_once(env, **otel)
        assert done.returncode == 0, done.stderr
        got = list(receiver.spans)
    trace_hex, root_hex = job.trace.split("-")[1:3]
    assert {s["trace"] for s in got} == {trace_hex}
    [root] = [s for s in got if s["name"] == "job"]
    [stage] = [s for s in got if s["name"] == "stage caption"]
    # The killed attempt is given back (omad's own crash costs no attempt), so the stage runs again as attempt 1.
    assert root["span"] == root_hex and stage["parent"] == root_hex and stage["attempt"] == 1
    assert env.sidecar("c")["trace_id"] == trace_hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.otel
@pytest.mark.slow
def test_an_unreachable_collector_warns_once_and_the_job_is_published(env: Env) -> None:
    """GIVEN an OTLP endpoint where nothing listens WHEN `omad once` runs two caption drops
    THEN both are published, and the log says once that spans could not be sent."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    _drop_caption(env, "a")
    _drop_caption(env, "b", seconds=0.6)
    done = _omad_once(env, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_free_port()}")
    assert done.returncode == 0, done.stderr
    assert (env.outbox / "a.mp4").is_file() and (env.outbox / "b.mp4").is_file()
    warnings = [line for line in _log_lines(env) if "spans could not be sent" in str(line.get("event"))]
    assert len(warnings) == 1, warnings
    assert env.sidecar("a")["trace_id"] != env.sidecar("b")["trace_id"]


def test_an_ffmpeg_span_names_options_and_filters_never_paths_or_values() -> None:
    from omad.media.ffmpeg import _summary

    got = _summary(["-protocol_whitelist", "file,pipe", "-i", "/home/ana/Vídeos/férias.mp4", "-f", "lavfi", "-i",
                    "anullsrc", "-filter_complex", "[0:v]scale=1280:-2,subtitles=/home/ana/legenda.ass[v];[1:a]"
                    "volume=0.5[a]", "-c:v", "libx264", "-crf", "-1", "-metadata", "title=Minhas férias",
                    "/home/ana/out.mp4"])
    assert got == {"omad.tool": "ffmpeg", "omad.ffmpeg.inputs": 2, "omad.ffmpeg.codecs": "libx264",
                   "omad.ffmpeg.formats": "lavfi", "omad.ffmpeg.filters": "scale,subtitles,volume",
                   "omad.ffmpeg.options": "-protocol_whitelist -i -f -i -filter_complex -c:v -crf -metadata"}


# -- off ------------------------------------------------------------------------------------------------

_OFF = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from omad import tracing
    from omad.config import load_config
    from omad.daemon import Daemon, Paths
    from omad.journal import Journal
    from omad.log import configure_logging

    cfg = load_config(sys.argv[1])
    configure_logging(Path(cfg.outbox) / "logs", "debug")
    variants = [{}, {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
                {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}]
    setups = []
    for variant in variants:
        os.environ.update(variant)
        setups.append(tracing.setup())
        for key in variant:
            del os.environ[key]
    os.environ.update(json.loads(sys.argv[2]))
    code = Daemon(cfg, Paths(Path(cfg.inbox), Path(cfg.outbox), Path(cfg.state_dir)), once=True).run_once(30)
    journal = Journal(Path(cfg.state_dir) / "journal.sqlite")
    print(json.dumps({"code": code, "setups": setups, "traces": [j.trace for j in journal.jobs()],
                      "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}))
    """
)

# Makes the extra look uninstalled: every opentelemetry import fails as it would without the packages.
_NO_EXTRA = textwrap.dedent(
    """
    import sys
    class _NoOtel:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None
    sys.meta_path.insert(0, _NoOtel())
    """
)


def _run_off(env: Env, prelude: str = "", **otel: str) -> dict[str, Any]:
    script = env.root / "off.py"
    script.write_text(prelude + _OFF)
    child = subprocess.run([sys.executable, str(script), str(env.root / "omad.yaml"), json.dumps(otel)],
                           capture_output=True, text=True, timeout=120, env=_child_env())
    assert child.returncode == 0, child.stderr
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def test_tracing_off_imports_nothing_and_records_no_trace(env: Env) -> None:
    """GIVEN no OTEL_* configuration (or OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none)
    WHEN a caption job runs THEN opentelemetry is never imported, the journal holds no trace,
    and neither the sidecar nor any log line has a trace id."""
    _drop_caption(env)
    got = _run_off(env)
    assert got == {"code": 0, "setups": [False, False, False], "traces": [None], "otel": []}
    assert "trace_id" not in env.sidecar("c")
    assert not any("trace_id" in line for line in _log_lines(env))


def test_configured_without_the_extra_warns_once_and_runs_untraced(env: Env) -> None:
    """GIVEN OTEL_EXPORTER_OTLP_ENDPOINT set but the OpenTelemetry packages missing
    WHEN a caption job runs THEN it is published untraced, with one warning saying how to install the extra."""
    _drop_caption(env)
    got = _run_off(env, _NO_EXTRA, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert got["code"] == 0 and got["traces"] == [None] and got["otel"] == []
    assert "trace_id" not in env.sidecar("c")
    warnings = [line for line in _log_lines(env) if "omad[otel]" in str(line.get("event"))]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"


# -- configuration and the journal ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, []),
    ],
)
def test_the_standard_environment_decides_the_exporters(environ: dict[str, str], wanted: list[str]) -> None:
    assert tracing._wanted(environ) == wanted


def test_a_journal_from_before_tracing_gets_the_trace_column(tmp_path: Path) -> None:
    """GIVEN a journal whose jobs table has no trace column (written by an older omad)
    WHEN this omad opens it THEN the column is added, and the old jobs read back with no trace."""
    path = tmp_path / "journal.db"
    journal = Journal(path)
    job = journal.create(cid="abc", route="caption", name="c", inputs=[], options={}, dropped_at=1.0)
    journal.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE jobs DROP COLUMN trace")
    db.commit()
    db.close()

    journal = Journal(path)
    again = journal.get(job.id)
    assert again is not None and again.trace is None and again.name == "c"
    journal.update(job.id, trace="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert (journal.get(job.id) or again).trace == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    journal.close()
