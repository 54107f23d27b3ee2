"""What a self-hoster's Prometheus, load balancer and browser see over real HTTP.

Jobs run through a real daemon loop; ``/metrics`` is scraped over HTTP and parsed
with prometheus-client's own parser; the outbox file server is attacked with raw
request lines (an HTTP client would normalise ``..`` away before sending).
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import pytest
import yaml
from conftest import Env, make_video, wait_for, write_srt
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import omad.runner as runner_mod
from omad import __version__
from omad.config import Config
from omad.daemon import Daemon, Paths
from omad.errors import ConfigError, InputError, TransientError
from omad.journal import JobStatus
from omad.lanes import UNLOAD_REASONS
from omad.log import configure_logging
from omad.metrics import GIB, model_label
from omad.routes import ROUTE_STAGES, ROUTES, stages_for
from omad.stage import Lane, Stage, StageContext, StageResult
from omad.web import PathRefused, parse_range, resolve_outbox_path, start_server

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"


# -- helpers ---------------------------------------------------------------------------------------


class Running(conftest.Running):
    """The daemon's loop and its HTTP server, with helpers to talk to it."""

    def __init__(self, d: Daemon) -> None:
        super().__init__(d, serve=True)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return get(self.port, path, headers)

    def scrape(self) -> list[Sample]:
        status, headers, body = self.get("/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        return parse(body.decode())

    def settled(self, n: int) -> bool:
        """n jobs are final and no job thread is still emitting its last events."""
        jobs = self.d.journal.jobs()
        return len(jobs) == n and all(j.status.final for j in jobs) and not self.d.running


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw GET: the path goes on the request line exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def parse(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"{name}{labels} is not in the scrape"
    return sum(found)


def served_env(make_env: Callable[..., Env], **overrides: Any) -> Env:
    return make_env(web={"enabled": True, "host": "127.0.0.1", "port": 0}, lanes={"cpu": 1}, **overrides)


def drop_caption(env: Env, stem: str, srt: str | None = None, seconds: float = 0.5) -> None:
    """A caption drop; give each drop of a test its own ``seconds`` so none is a duplicate."""
    make_video(env.root / "staging" / f"{stem}.mp4", seconds=seconds, size="160x90")
    srt_path = env.root / "staging" / f"{stem}.srt"
    write_srt(srt_path) if srt is None else write_srt(srt_path, srt)
    for p in sorted((env.root / "staging").iterdir()):
        p.rename(env.inbox / p.name)


# -- the caption route, counted exactly ---------------------------------------------------------------


def test_caption_jobs_move_counters_and_histograms_by_exact_amounts(make_env: Callable[..., Env]) -> None:
    """GIVEN two good caption drops and one with a broken SRT
    WHEN the daemon has finished them
    THEN a scrape counts 2 done and 1 failed, 2 caption stage runs, 3 first starts,
    1 input error and no retry, the published bytes and the lane seconds to the byte and second."""
    env = served_env(make_env)
    with Running(env.daemon()) as run:
        drop_caption(env, "um", seconds=0.5)
        drop_caption(env, "dois", seconds=0.6)
        drop_caption(env, "tres", "1\nbroken\n", seconds=0.7)
        wait_for(lambda: run.settled(3), timeout=60)
        s = run.scrape()
        jobs = run.d.journal.jobs()
        cost = sum(run.d.records.cost(j)["estimated"] for j in jobs)
        cpu = sum(j.cpu_seconds for j in jobs)

    assert value(s, "omad_jobs_finished_total", route="caption", status="done") == 2
    assert value(s, "omad_jobs_finished_total", route="caption", status="failed") == 1
    assert value(s, "omad_jobs_created_total", route="caption") == 3
    assert value(s, "omad_stage_duration_seconds_count", stage="caption", lane="cpu") == 2
    assert value(s, "omad_stage_duration_seconds_bucket", stage="caption", lane="cpu", le="+Inf") == 2
    assert value(s, "omad_stage_duration_seconds_sum", stage="caption") > 0
    assert value(s, "omad_drop_to_start_seconds_count", route="caption") == 3
    assert value(s, "omad_job_duration_seconds_count", route="caption", status="done") == 2
    assert value(s, "omad_stage_errors_total", stage="caption", kind="input") == 1
    assert value(s, "omad_retries_total") == 0  # the series exist from the start, all at zero
    published = sum((env.outbox / n).stat().st_size for n in ("um.mp4", "um.json", "dois.mp4", "dois.json"))
    assert value(s, "omad_published_bytes_total", route="caption") == published
    assert value(s, "omad_cpu_seconds_total", route="caption") == pytest.approx(cpu, rel=1e-6)
    assert cpu > 0
    assert value(s, "omad_estimated_cost_total", currency="USD", route="caption") == pytest.approx(cost, abs=1e-5)
    assert value(s, "omad_jobs", status="done") == 2 and value(s, "omad_jobs", status="failed") == 1
    assert value(s, "omad_jobs", status="queued") == 0 and value(s, "omad_jobs_in_progress") == 0
    assert value(s, "omad_lane_capacity_slots", lane="cpu") == 1 and value(s, "omad_lane_busy_slots", lane="cpu") == 0
    assert value(s, "omad_lane_queue_depth", lane="gpu") == 0
    assert value(s, "omad_lane_busy_seconds_total", lane="cpu") >= value(s, "omad_stage_duration_seconds_sum")
    assert value(s, "omad_build_info", version=__version__) == 1
    assert value(s, "omad_disk_free_bytes", path="outbox") > 0
    assert value(s, "omad_inbox_waiting_files") == 0
    # No file name ever becomes a label value.
    names = {"um", "dois", "tres", "um.mp4", "tres.srt"}
    assert not [x for x in s if names & set(x.labels.values())]


# -- series that exist before their first event -------------------------------------------------------


def test_a_fresh_daemon_exports_every_known_series_at_zero(make_env: Callable[..., Env]) -> None:
    """GIVEN a daemon that has just started and seen no drop
    WHEN Prometheus scrapes it
    THEN the counters and histograms for every route and final status, stage and error kind, lane,
    LLM role and model, TTS engine, PII finding and local Ollama model are there at zero,
    so the first failure after a start is an increase that rate() and increase() see."""
    env = served_env(make_env)
    with Running(env.daemon()) as run:
        status, _, body = run.get("/metrics")
    assert status == 200
    families = list(text_string_to_metric_families(body.decode()))
    s = [x for f in families for x in f.samples]
    for route in ROUTES:
        for final in ("done", "failed", "duplicate"):
            assert value(s, "omad_jobs_finished_total", route=route, status=final) == 0
        assert value(s, "omad_job_duration_seconds_count", route=route, status="failed") == 0
        assert value(s, "omad_job_duration_seconds_bucket", route=route, status="done", le="+Inf") == 0
        assert value(s, "omad_jobs_created_total", route=route) == 0
        assert value(s, "omad_drop_to_start_seconds_count", route=route) == 0
        assert value(s, "omad_estimated_cost_total", route=route, currency="USD") == 0
        for name in ("omad_published_bytes_total", "omad_cpu_seconds_total", "omad_gpu_seconds_total"):
            assert value(s, name, route=route) == 0
    stages = {name for names in ROUTE_STAGES.values() for name in names}
    for stage in stages:
        for kind in ("input", "guardrail", "transient", "timeout", "config", "tool_missing", "stage"):
            assert value(s, "omad_stage_errors_total", stage=stage, kind=kind) == 0
        for kind in ("transient", "timeout"):
            assert value(s, "omad_retries_total", stage=stage, kind=kind) == 0
        for lane in ("cpu", "gpu"):
            assert value(s, "omad_stage_duration_seconds_count", stage=stage, lane=lane) == 0
    assert value(s, "omad_stage_errors_total", stage="intake", kind="input") == 0
    roles = run.d.config.llm.roles
    for role in type(roles).model_fields:
        spec = getattr(roles, role)
        assert value(s, "omad_llm_fallbacks_total", role=role) == 0
        for model in (spec.model, spec.fallback):
            assert value(s, "omad_llm_requests_total", role=role, model=model, outcome="invalid") == 0
            assert value(s, "omad_llm_tokens_total", role=role, model=model, type="completion") == 0
            assert value(s, "omad_llm_request_duration_seconds_count", role=role, model=model) == 0
            assert value(s, "omad_gpu_model_loads_total", model=f"ollama:{model}") == 0
            for reason in UNLOAD_REASONS:
                assert value(s, "omad_gpu_model_unloads_total", model=f"ollama:{model}", reason=reason) == 0
            assert value(s, "omad_gpu_model_resident", model=f"ollama:{model}") == 0
    for engine in ("espeak", "f5"):
        assert value(s, "omad_tts_real_time_factor_count", engine=engine) == 0
    for pii in ("cpf", "cnpj", "email", "phone_br", "card"):
        assert value(s, "omad_guardrail_findings_total", type=pii, action="redact") == 0
    # No counter or histogram of omad's is left without a series, and nothing has counted yet.
    moving = [f for f in families if f.name.startswith("omad_") and f.type in ("counter", "histogram")]
    assert len(moving) >= 20
    assert not [f.name for f in moving if not f.samples]
    # (The main loop's own ticks and scans count from the start: they say the daemon is alive, not that work was done.)
    loop = ("omad_loop_ticks", "omad_inbox_scans")
    assert not [(x.name, x.labels) for f in moving for x in f.samples
                if not x.name.endswith("_created") and x.value and f.name not in loop]


def test_a_remote_ollama_gets_no_gpu_lane_series(make_env: Callable[..., Env]) -> None:
    """GIVEN llm.remote: its calls never take the GPU lane
    THEN no Ollama model is listed on the GPU lane, while its LLM request series still start at zero."""
    env = served_env(make_env, llm={"remote": True})
    with Running(env.daemon()) as run:
        s = run.scrape()
    assert not [x for x in s if x.name.startswith("omad_gpu_model") and x.labels.get("model", "").startswith("ollama")]
    assert value(s, "omad_llm_requests_total", role="editor", outcome="ok") == 0


def test_the_vocabularies_metrics_start_from_match_the_code() -> None:
    """The stage names per route are those stages_for builds; every unload reason omad passes is listed."""
    assert set(ROUTE_STAGES) == set(ROUTES)
    assert {route: tuple(s.name for s in stages_for(route)) for route in ROUTES} == ROUTE_STAGES
    reasons = {m for f in (REPO / "omad").rglob("*.py") for m in re.findall(r'reason="([^"]+)"', f.read_text())}
    assert reasons and reasons <= set(UNLOAD_REASONS), f"unload reasons missing from UNLOAD_REASONS: {reasons}"


# -- facts from richer stages: LLM calls, TTS, guardrails, GPU residency -----------------------------


_AGENTS = [
    {"role": "script_writer", "model": "qwen2.5:3b-instruct", "fallback_used": True, "tokens_in": 300,
     "tokens_out": 120, "latency_seconds": 3.0,
     "tries": [
         {"model": "phi3.5:3.8b-mini", "outcome": "answer does not match the schema (scenes: missing)",
          "tokens_in": 100, "tokens_out": 40, "latency_seconds": 1.0},
         {"model": "qwen2.5:3b-instruct", "outcome": "ok", "tokens_in": 200, "tokens_out": 80,
          "latency_seconds": 2.0},
     ]},
    {"role": "editor", "model": "qwen2:1.5b", "tokens_in": 50, "tokens_out": 10, "latency_seconds": 0.4},
]
_FINDINGS = [{"type": "email", "action": "redact", "where": "script", "sample": "a***@***"},
             {"type": "email", "action": "redact", "where": "scene 2", "sample": "b***@***"},
             {"type": "cpf", "action": "redact", "where": "script", "sample": "***.***.***-**"}]
_MODEL_KEY = "fake:/opt/models/tiny.safetensors:cpu"


class _Prepare(Stage):
    """A quick cpu stage (a real scene-video route starts with cpu work too)."""

    name = "prepare"

    def run(self, ctx: StageContext) -> StageResult:
        return StageResult(guardrail_findings=_FINDINGS[:1])


class _Compose(Stage):
    """A gpu stage that reports the facts the agent and TTS stages report, and loads a model.

    Its first attempt of ``rich`` fails transiently; ``bad`` is a bad drop.
    """

    name = "compose"

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def lane(self, ctx: StageContext) -> Lane:
        return Lane.GPU

    def run(self, ctx: StageContext) -> StageResult:
        n = self.attempts[ctx.name] = self.attempts.get(ctx.name, 0) + 1
        if ctx.name == "bad":
            raise InputError("the brief asks for a scene that does not exist.", file="bad.yaml")
        if n == 1:
            raise TransientError("the GPU is busy; omad will try again.")
        with ctx.lanes.residency.acquire(_MODEL_KEY, 1.0, lambda: "weights", lambda _w: None):
            ctx.lanes.residency.note_peak(1.5)
        (ctx.work / "out.txt").write_text("composed\n")
        return StageResult(
            artifacts={"text": "out.txt"}, publish={".txt": "text"},
            llm_calls=_AGENTS, tts=[{"engine": "f5", "rtf": 0.25, "peak_vram_gb": 1.25}],
            guardrail_findings=_FINDINGS[1:],
        )


@dataclass
class Scenario:
    samples: list[Sample]
    text: str
    gpu_seconds: float
    cpu_seconds: float
    cost: float


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """One daemon ran ``rich`` (retried once, then done with LLM/TTS/guardrail facts) and ``bad`` (failed)."""
    root = tmp_path_factory.mktemp("rich")
    cfg = Config.model_validate({
        "inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
        "watch": {"settle_seconds": 0.3, "rescan_seconds": 1.0},
        "intake": {"partner_grace_seconds": 0.5},
        "jobs": {"backoff_seconds": 0.2, "backoff_max_seconds": 1.0},
        "gpu": {"idle_unload_seconds": 0},
        "lanes": {"cpu": 1},
        "web": {"enabled": True, "port": 0},
    })
    Path(cfg.inbox).mkdir(parents=True)
    configure_logging(Path(cfg.outbox) / "logs", "debug")
    compose = _Compose()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_mod, "stages_for", lambda route: [_Prepare(), compose])
        env = Env(root, cfg)
        with Running(Daemon(cfg, Paths(env.inbox, env.outbox, env.state))) as run:
            drop_caption(env, "rich", seconds=0.5)
            drop_caption(env, "bad", seconds=0.6)
            wait_for(lambda: run.settled(2), timeout=60)
            wait_for(lambda: bool(run.d.lanes.residency.unloads), timeout=10)  # idle_unload_seconds: 0
            status, _, body = run.get("/metrics")
            assert status == 200
            jobs = run.d.journal.jobs()
            scenario = Scenario(
                samples=parse(body.decode()), text=body.decode(),
                gpu_seconds=sum(j.gpu_seconds for j in jobs), cpu_seconds=sum(j.cpu_seconds for j in jobs),
                cost=sum(run.d.records.cost(j)["estimated"] for j in jobs),
            )
    # Yielded after the patch is undone: later tests of this module run the real routes.
    yield scenario


def test_llm_tts_guardrail_and_gpu_facts_become_metrics(rich: Scenario) -> None:
    s = rich.samples
    # Each try is one request: the script writer's first model answered badly, its fallback answered.
    assert value(s, "omad_llm_requests_total", role="script_writer", model="phi3.5:3.8b-mini", outcome="invalid") == 1
    assert value(s, "omad_llm_requests_total", role="script_writer", model="qwen2.5:3b-instruct", outcome="ok") == 1
    assert value(s, "omad_llm_requests_total", role="editor", model="qwen2:1.5b", outcome="ok") == 1
    assert value(s, "omad_llm_tokens_total", role="script_writer", type="prompt") == 300
    assert value(s, "omad_llm_tokens_total", role="script_writer", model="qwen2.5:3b-instruct", type="completion") == 80
    assert value(s, "omad_llm_tokens_total", role="editor", type="completion") == 10
    assert value(s, "omad_llm_request_duration_seconds_count", role="script_writer") == 2
    assert value(s, "omad_llm_request_duration_seconds_sum", role="script_writer") == pytest.approx(3.0)
    assert value(s, "omad_llm_fallbacks_total", role="script_writer") == 1
    assert value(s, "omad_tts_real_time_factor_count", engine="f5") == 1
    assert value(s, "omad_tts_real_time_factor_sum", engine="f5") == pytest.approx(0.25)
    # prepare found one e-mail in each of the two jobs; compose one more e-mail and a CPF.
    assert value(s, "omad_guardrail_findings_total", type="email", action="redact") == 3
    assert value(s, "omad_guardrail_findings_total", type="cpf", action="redact") == 1
    # The GPU lane: loaded once, unloaded when idle; the label drops the checkpoint's directory.
    model = model_label(_MODEL_KEY)
    assert model == "fake:tiny.safetensors:cpu"
    assert value(s, "omad_gpu_model_loads_total", model=model) == 1
    assert value(s, "omad_gpu_model_unloads_total", model=model, reason="idle") == 1
    assert value(s, "omad_gpu_model_resident", model=model) == 0
    assert value(s, "omad_gpu_vram_peak_bytes") == 1.5 * GIB
    assert value(s, "omad_gpu_vram_budget_bytes") == 4.0 * GIB
    assert "/opt/models" not in rich.text
    # Retries and errors by stage and kind; stage runs by lane.
    assert value(s, "omad_retries_total", stage="compose", kind="transient") == 1
    assert value(s, "omad_stage_errors_total", stage="compose", kind="transient") == 1
    assert value(s, "omad_stage_errors_total", stage="compose", kind="input") == 1
    assert value(s, "omad_stage_duration_seconds_count", stage="prepare", lane="cpu") == 2
    assert value(s, "omad_stage_duration_seconds_count", stage="compose", lane="gpu") == 1
    assert value(s, "omad_jobs_finished_total", status="done") == 1
    assert value(s, "omad_jobs_finished_total", status="failed") == 1
    # Cost: the counters add up to what the journal says each job used.
    assert value(s, "omad_gpu_seconds_total") == pytest.approx(rich.gpu_seconds, rel=1e-6)
    assert value(s, "omad_cpu_seconds_total") == pytest.approx(rich.cpu_seconds, rel=1e-6)
    assert value(s, "omad_estimated_cost_total", currency="USD") == pytest.approx(rich.cost, abs=1e-5)


# -- health and readiness -----------------------------------------------------------------------------


@contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i``: what even root cannot write to, through a descriptor it already holds."""
    present = [str(p) for p in paths if p.exists()]
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is not installed: cannot make the journal read-only under root")
    done = subprocess.run(["chattr", "+i", *present], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system or user cannot set the immutable flag: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *present], check=True)


def test_readyz_names_the_journal_when_it_becomes_read_only(make_env: Callable[..., Env]) -> None:
    """GIVEN a running daemon that is ready
    WHEN its journal can no longer commit (the file made immutable under the open connection)
    THEN /readyz answers 503 naming the journal, /healthz stays 200, and both recover."""
    env = served_env(make_env)
    with Running(env.daemon()) as run:
        wait_for(lambda: run.get("/readyz")[0] == 200, timeout=10)
        status, _, body = run.get("/readyz")
        assert body.decode().startswith("ready") and "journal: ok" in body.decode()
        journal = env.state / "journal.sqlite"
        with immutable(journal, Path(f"{journal}-wal")):
            status, _, body = run.get("/readyz")
            assert status == 503
            text = body.decode()
            assert text.splitlines()[0] == "not ready: journal"
            assert "journal: FAIL" in text and "ffmpeg: ok" in text and "inbox: ok" in text
            assert run.get("/healthz")[0] == 200
        assert run.get("/readyz")[0] == 200


def test_readyz_names_a_missing_ffmpeg_and_an_unwatched_inbox(make_env: Callable[..., Env],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    env = served_env(make_env)
    with Running(env.daemon()) as run:
        wait_for(lambda: run.get("/readyz")[0] == 200, timeout=10)
        with monkeypatch.context() as m:
            m.setenv("PATH", "/nonexistent")
            status, _, body = run.get("/readyz")
        assert status == 503 and body.decode().splitlines()[0] == "not ready: ffmpeg, ffprobe"
        env.inbox.rmdir()  # an unmounted share
        wait_for(lambda: run.get("/readyz")[0] == 503, timeout=10)
        assert run.get("/readyz")[2].decode().splitlines()[0] == "not ready: inbox"
        env.inbox.mkdir()
        wait_for(lambda: run.get("/readyz")[0] == 200, timeout=10)


def test_healthz_turns_503_when_the_main_loop_stops_ticking(env: Env) -> None:
    d = env.daemon()
    server = start_server(d, port=0)
    try:
        assert get(server.port, "/healthz")[0] == 200
        d.heartbeat = time.monotonic() - 120  # as if the loop hung two minutes ago
        status, _, body = get(server.port, "/healthz")
        assert status == 503 and b"120 s ago" in body
    finally:
        server.shutdown()
        d.journal.close()


def test_a_taken_port_is_a_config_error_naming_the_option(env: Env) -> None:
    d = env.daemon()
    first = start_server(d, port=0)
    try:
        with pytest.raises(ConfigError, match="metrics.port"):
            start_server(d, port=first.port)
    finally:
        first.shutdown()
        d.journal.close()


# -- the outbox file server and posters --------------------------------------------------------------


def test_outbox_files_are_served_read_only_and_never_outside_it(make_env: Callable[..., Env]) -> None:
    """GIVEN a published caption job, a secret next to the outbox and a symlink leading to it
    THEN the result is served with its type and byte ranges, and every escape is refused."""
    env = served_env(make_env)
    secret = env.root / "secret.txt"
    secret.write_text("TOP-SECRET")
    with Running(env.daemon()) as run:
        drop_caption(env, "filme")
        wait_for(lambda: run.settled(1), timeout=60)
        video = (env.outbox / "filme.mp4").read_bytes()
        status, headers, body = run.get("/outbox/filme.mp4")
        assert status == 200 and body == video
        assert headers["content-type"] == "video/mp4" and headers["accept-ranges"] == "bytes"
        status, headers, body = run.get("/outbox/filme.mp4", {"Range": "bytes=100-199"})
        assert status == 206 and body == video[100:200]
        assert headers["content-range"] == f"bytes 100-199/{len(video)}"
        assert run.get("/outbox/filme.mp4", {"Range": "bytes=-10"})[2] == video[-10:]
        assert run.get("/outbox/filme.mp4", {"Range": f"bytes={len(video)}-"})[0] == 416
        assert run.get("/outbox/filme.json")[1]["content-type"] == "application/json"
        assert json.loads(run.get("/outbox/filme.json")[2])["route"] == "caption"
        assert run.get("/outbox/nada.mp4")[0] == 404

        (env.outbox / "link.txt").symlink_to(secret)
        (env.outbox / ".hidden").write_text("TOP-SECRET")
        attacks = [
            "/outbox/../secret.txt",
            "/outbox/%2e%2e/secret.txt",
            "/outbox/%2E%2E%2Fsecret.txt",
            "/outbox/logs/../../secret.txt",
            "/outbox/./filme.mp4",
            "/outbox//etc/passwd",
            "/outbox/%2Fetc%2Fpasswd",
            f"/outbox/{secret}",
            "/outbox/..%5csecret.txt",
            "/outbox/link.txt",
            "/outbox/.hidden",
            "/outbox/filme.mp4%00.txt",
        ]
        for path in attacks:
            status, _, body = run.get(path)
            assert status == 403, f"{path} answered {status}"
            assert b"TOP-SECRET" not in body and b"root:" not in body
        assert run.get("/outbox/%252e%252e/secret.txt")[0] == 404  # decoded once: a literal name
        for method in ("POST", "PUT", "DELETE"):
            conn = http.client.HTTPConnection("127.0.0.1", run.port, timeout=10)
            conn.request(method, "/outbox/filme.mp4", body=b"x")
            assert conn.getresponse().status == 405
            conn.close()
    assert (env.outbox / "filme.mp4").read_bytes() == video


def test_resolve_outbox_path_and_parse_range_edges(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a b.mp4").write_bytes(b"x")
    assert resolve_outbox_path(tmp_path, "sub/a%20b.mp4") == (tmp_path / "sub" / "a b.mp4").resolve()
    for raw in ("", "sub/", "sub//a.mp4", "%ff", ".", "sub/.."):
        with pytest.raises(PathRefused):
            resolve_outbox_path(tmp_path, raw)
    with pytest.raises(FileNotFoundError):
        resolve_outbox_path(tmp_path, "sub")  # a folder is not a file
    assert parse_range(None, 10) is None and parse_range("bytes=2-", 10) == (2, 9)
    assert parse_range("bytes=2-100", 10) == (2, 9) and parse_range("bytes=0-0,5-6", 10) is None
    assert parse_range("items=1-2", 10) is None and parse_range("bytes=5-2", 10) is None


def test_poster_is_a_frame_of_the_result_made_once_and_cached(make_env: Callable[..., Env]) -> None:
    env = served_env(make_env)
    with Running(env.daemon()) as run:
        drop_caption(env, "cartaz")
        wait_for(lambda: run.settled(1), timeout=60)
        job = run.d.journal.jobs()[0]
        status, headers, body = run.get(f"/poster/{job.id}")
        assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
        cached = env.state / "posters" / f"{job.id}.jpg"
        with Image.open(cached) as img:
            assert img.size == (160, 90)
        made = cached.stat().st_mtime_ns
        assert run.get(f"/poster/{job.id}")[2] == body and cached.stat().st_mtime_ns == made
        assert run.get("/poster/0123456789abcdef")[0] == 404
        assert run.get("/poster/..%2F..%2Fjournal.sqlite")[0] == 404


# -- the status page -----------------------------------------------------------------------------------


def test_status_page_lists_jobs_newest_first_and_escapes_file_names(make_env: Callable[..., Env]) -> None:
    """GIVEN a drop whose name is HTML, with a broken SRT, then a good drop
    THEN the page shows both, newest first, the failure's message, with the name escaped."""
    env = served_env(make_env)
    hostile = "<img src=x onerror=alert(1)>&\"q'"
    with Running(env.daemon()) as run:
        drop_caption(env, hostile, "1\nbroken\n", seconds=0.5)
        wait_for(lambda: run.settled(1), timeout=60)
        drop_caption(env, "bom", seconds=0.6)
        wait_for(lambda: run.settled(2), timeout=60)
        status, headers, body = run.get("/")
        api = json.loads(run.get("/api/status")[2])
    page = body.decode()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    # Without JavaScript the page reloads itself; with it, only the vendored script from this origin runs.
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/omad.js" defer>']
    assert "script-src 'self'" in headers["content-security-policy"] and "http" not in headers[
        "content-security-policy"]
    assert hostile not in page and "<img src=x" not in page
    assert html_escape(hostile) in page
    rows = re.findall(r'<tr class="job s-(\w+)" id="job-([0-9a-f-]+)"', page)
    assert [r[0] for r in rows] == ["done", "failed"]
    assert [j["status"] for j in api["jobs"]] == ["done", "failed"] and api["jobs"][1]["name"] == hostile
    assert api["jobs"][1]["message"] and html_escape(api["jobs"][1]["message"]) in page
    assert 'class="job-progress" max="100" value="100"' in page
    assert f'src="/poster/{api["jobs"][0]["id"]}"' in page and 'href="/outbox/bom.mp4"' in page
    assert [lane["name"] for lane in api["lanes"]] == ["cpu", "gpu"] and 'id="gpu"' in page


def html_escape(text: str) -> str:
    # What the templates' autoescape writes (markupsafe: ' becomes &#39;).
    import markupsafe

    return str(markupsafe.escape(text))


# -- deploy/ files -------------------------------------------------------------------------------------


_METRIC = re.compile(r"\bomad_[a-z0-9_]+")


def _base_names(samples: list[Sample]) -> set[str]:
    names = {s.name for s in samples}
    for s in samples:
        for suffix in ("_bucket", "_sum", "_count"):
            if s.name.endswith(suffix):
                names.add(s.name[: -len(suffix)])
    return names


def test_dashboard_parses_and_queries_only_metrics_a_live_daemon_exports(rich: Scenario) -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in _METRIC.findall(e)}
    live = _base_names(rich.samples)
    assert not used - live, f"the dashboard queries metrics no daemon exports: {sorted(used - live)}"
    wanted = {"omad_jobs_finished_total", "omad_stage_duration_seconds_bucket", "omad_lane_busy_slots",
              "omad_gpu_model_resident", "omad_llm_tokens_total", "omad_estimated_cost_total"}
    assert wanted <= used
    assert any("histogram_quantile(0.95" in e for e in exprs) and any("histogram_quantile(0.5" in e for e in exprs)


def test_alert_rules_pass_promtool_and_query_live_metrics(rich: Scenario, tmp_path: Path) -> None:
    rules_file = DEPLOY / "prometheus-alerts.yml"
    rules = yaml.safe_load(rules_file.read_text())
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert {"OmadDown", "OmadJobsFailing", "OmadQueueGrowing", "OmadDiskLow"} <= set(alerts)
    used = {m for e in alerts.values() for m in _METRIC.findall(e)}
    assert used and not used - _base_names(rich.samples)
    scrape = yaml.safe_load((DEPLOY / "prometheus-scrape.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); the YAML was checked above")
    done = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # The scrape example is a valid Prometheus config once it points at the rules.
    config = dict(scrape, rule_files=[str(rules_file)])
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_job_status_values_are_all_exported(rich: Scenario) -> None:
    """Every journal status has a series, so alerts on `queued` work before the first queued job."""
    assert {s.labels["status"] for s in rich.samples if s.name == "omad_jobs"} == {st.value for st in JobStatus}
