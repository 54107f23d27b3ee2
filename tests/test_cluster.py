"""The celery executor with a real redis-server and real `omad worker` processes.

Delivery is at-least-once; these tests kill things (a pool child, a whole
worker, the daemon, Redis) and check that every job still ends with exactly
one result, the same a local run makes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster_kit import REPO, SIGNING_KEY, RedisServer, Worker
from conftest import Env, Running, make_video, wait_for, wait_ticks, write_srt

from omad.cluster.app import queue_keys
from omad.cluster.task import StageTask, commit_reply, map_path, merged_config, task_settings
from omad.config import Config, load_config
from omad.errors import ConfigError
from omad.journal import JobStatus

pytestmark = pytest.mark.slow

HEARTBEAT = 0.5
LEASE = 4.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password="s3cret-pw").start()
    yield server
    server.stop()


class Cluster:
    """A daemon config in celery mode, its workers, and helpers to look at what happened."""

    def __init__(self, root: Path, redis: RedisServer, make_env: Callable[..., Env], **overrides: Any) -> None:
        self.root = root
        self.redis = redis
        executor = {"kind": "celery", "broker_url": redis.url,
                    "signing_key": SIGNING_KEY, "heartbeat_seconds": HEARTBEAT,
                    "lease_seconds": LEASE, "worker_state_dir": str(root / "daemon-worker-state")}
        executor.update(overrides.pop("executor", {}))
        self.env = make_env(executor=executor, **overrides)
        self.data: dict[str, Any] = yaml.safe_load((root / "omad.yaml").read_text())
        self.workers: list[Worker] = []

    def worker(self, name: str, start: bool = True, config: dict[str, Any] | None = None,
               env: dict[str, str] | None = None, **kw: Any) -> Worker:
        w = Worker(self.root, name, config or self.data, **kw)
        self.workers.append(w)
        return w.start(self.redis, env=env) if start else w

    def stop(self) -> None:
        for w in self.workers:
            w.stop()

    def started(self, stage: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(worker, log record) of every stage_started line in every worker's log."""
        return [(w.name, e) for w in self.workers for e in w.events("stage_started")
                if stage is None or e.get("stage") == stage]


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer,
            make_env: Callable[..., Env]) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def _make(**overrides: Any) -> Cluster:
        c = Cluster(tmp_path, redis_server, make_env, **overrides)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.stop()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(outbox: Path) -> list[str]:
    return sorted(p.name for p in outbox.iterdir() if p.is_file())


def drop_caption(inbox: Path, name: str = "c", seconds: float = 2.0, size: str = "320x180") -> Path:
    """A video and its subtitles, made aside and moved in whole; returns the folder keeping a copy."""
    keep = inbox.parent / "made"
    make_video(keep / f"{name}.mp4", seconds=seconds, size=size)
    write_srt(keep / f"{name}.srt")
    for suffix in (".mp4", ".srt"):
        (inbox.parent / f"{name}{suffix}.tmp").write_bytes((keep / f"{name}{suffix}").read_bytes())
        os.replace(inbox.parent / f"{name}{suffix}.tmp", inbox / f"{name}{suffix}")
    return keep


def wait_done(env: Env, count: int, timeout: float = 120) -> None:
    from omad.journal import Journal

    def done() -> bool:
        j = Journal(env.paths.journal)
        try:
            jobs = j.jobs()
            failed = [x for x in jobs if x.status == JobStatus.FAILED]
            assert not failed, [x.error for x in failed]
            return sum(1 for x in jobs if x.status == JobStatus.DONE) >= count
        finally:
            j.close()

    wait_for(done, timeout=timeout, every=0.25)


# -- the description that travels -------------------------------------------------------------------------

def test_settings_that_travel_leave_host_only_keys_and_secrets_behind(tmp_path: Path) -> None:
    """GIVEN a daemon config with an F5 checkpoint, an Ollama host, a webhook secret and a broker password
    WHEN the settings for a task are made THEN output-shaping settings travel, host-only ones and secrets don't,
    and a worker's own host settings survive the merge."""
    daemon = Config.model_validate({
        "video": {"crf": 28}, "tts": {"f5": {"checkpoint": "/daemon/ckpt.safetensors", "nfe_step": 8}},
        "llm": {"host": "http://daemon-box:11434"},
        "notify": {"webhooks": [{"url": "http://x/", "secret": "hook-secret"}]},
        "executor": {"kind": "celery", "broker_url": "redis://:pw-123@h:6379/0"},
    })
    settings = task_settings(daemon)
    text = json.dumps(settings)
    assert settings["video"]["crf"] == 28 and settings["tts"]["f5"]["nfe_step"] == 8
    for secret in ("ckpt.safetensors", "daemon-box", "hook-secret", "pw-123", "notify", "executor", "web"):
        assert secret not in text
    worker = Config.model_validate({"tts": {"f5": {"checkpoint": "/gpu/ckpt.safetensors"}},
                                    "llm": {"host": "http://localhost:11434"}})
    merged = merged_config(worker, settings)
    assert merged.video.crf == 28 and merged.tts.f5.nfe_step == 8
    assert merged.tts.f5.checkpoint == "/gpu/ckpt.safetensors" and merged.llm.host == "http://localhost:11434"


def test_path_map_takes_the_longest_prefix() -> None:
    m = {"/srv/omad": "/mnt/a", "/srv/omad/jobs": "/mnt/jobs"}
    assert map_path("/srv/omad/jobs/x/inputs/a.mp4", m) == Path("/mnt/jobs/x/inputs/a.mp4")
    assert map_path("/srv/omad/other", m) == Path("/mnt/a/other")
    assert map_path("/srv/omadx/y", m) == Path("/srv/omadx/y")
    assert map_path("/elsewhere", {}) == Path("/elsewhere")


def test_only_one_copy_commits(tmp_path: Path) -> None:
    first = commit_reply(tmp_path, {"status": "done", "n": 1})
    second = commit_reply(tmp_path, {"status": "done", "n": 2})
    assert first["n"] == 1 and second["n"] == 1
    assert json.loads((tmp_path / "result.json").read_text())["n"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_a_visibility_timeout_below_the_longest_stage_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("executor: {kind: celery, broker_url: 'redis://h/0', visibility_timeout_seconds: 600}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "visibility_timeout_seconds" in str(exc.value) and "longest stage timeout" in str(exc.value)
    p.write_text("executor: {kind: celery, broker_url: 'redis://h/0'}\njobs: {stage_timeout_seconds: 100, "
                 "timeout_base_seconds: 10, timeout_per_media_second: 1}\nintake: {max_audio_seconds: 60}\n")
    cfg = load_config(p)
    assert cfg.executor.visibility_timeout(cfg.jobs, cfg.intake) == 100 * 1.25 + 60


def test_a_message_of_another_protocol_is_refused() -> None:
    with pytest.raises(Exception, match="protocol"):
        StageTask.from_dict({"v": 99})


# -- through the daemon ------------------------------------------------------------------------------------

def test_caption_and_narrate_are_published_with_the_worker_recorded(cluster: Callable[..., Cluster],
                                                                    tmp_path: Path) -> None:
    """GIVEN the daemon in celery mode, Redis with a password, and one worker that sees the job folders
    through a path map WHEN a caption drop and an espeak text drop arrive THEN both are published, the sidecar
    names the worker, and the password is in no log line and no message."""
    c = cluster()
    mount = tmp_path / "mnt-jobs"
    mount.symlink_to(c.env.paths.jobs, target_is_directory=True)
    c.env.paths.jobs.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(c.data))
    data["executor"]["path_map"] = {str(c.env.paths.jobs): str(mount)}
    w = c.worker("w1", config=data)
    drop_caption(c.env.inbox)
    (c.env.inbox / "n.txt").write_text("Bom dia. São 10 horas.", encoding="utf-8")
    with Running(c.env.daemon()) as running:
        wait_done(c.env, 2)
        status = running.d.executor.status()
    assert outputs(c.env.outbox) == ["c.json", "c.mp4", "n.json", "n.srt", "n.wav"]
    from omad.i18n import Language
    from omad.web.templating import Pages

    assert [x["name"] for x in status["workers"]] == ["omad@w1"] and set(status["queues"]) == {"omad.cpu", "omad.gpu"}
    workers_html = Pages("en").render("_workers.html", Language.EN, view={"executor": status})
    assert "omad@w1" in workers_html and "s3cret-pw" not in json.dumps(status)
    for name in ("c", "n"):
        stage = c.env.sidecar(name)["stages"][0]
        assert stage["facts"]["worker"] == "omad@w1"
    assert {e["stage"] for _, e in c.started()} == {"caption", "narrate"}
    logs = "".join(p.read_text() for p in (c.env.outbox / "logs").iterdir()) + w.tail(10**7)
    assert "s3cret-pw" not in logs
    assert "s3cret-pw" not in (c.env.outbox / "c.json").read_text()


def test_doctor_on_a_worker_checks_broker_queues_and_shared_folder(cluster: Callable[..., Cluster],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from omad.cli import main as cli_main

    c = cluster()
    c.worker("w1", queues="cpu")
    with Running(c.env.daemon()) as r:  # the daemon writes the shared marker when it starts
        wait_ticks(r.d, 1)
    rc = cli_main(["doctor", "--worker", "--config", str(c.root / "omad.yaml")])
    out = capsys.readouterr().out
    assert "broker" in out and "Redis" in out and "s3cret-pw" not in out
    assert "served by omad@w1" in out  # the cpu queue
    assert "no worker serves it" in out  # the gpu queue: a warning, not a failure
    assert "shared folder" in out and "the daemon on" in out
    assert rc == 0


def test_kill_9_of_a_pool_child_mid_stage_gives_exactly_one_output(cluster: Callable[..., Cluster]) -> None:
    c = cluster()
    w = c.worker("w1")
    drop_caption(c.env.inbox, seconds=8, size="960x540")
    with Running(c.env.daemon()):
        wait_for(lambda: bool(c.started("caption")), timeout=60)  # the stage is running on the child
        w.kill_child()
        wait_done(c.env, 1, timeout=180)
    assert outputs(c.env.outbox) == ["c.json", "c.mp4"]
    assert len(c.started("caption")) >= 2  # it ran again after the kill


def test_kill_9_of_a_worker_moves_the_stage_to_another_and_fences_the_stale_copy(
        cluster: Callable[..., Cluster], make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN two workers WHEN the one running a stage is killed with SIGKILL THEN its lease expires, the next
    attempt runs on the other worker, and the killed attempt's message delivered again later is fenced off:
    one output, byte-identical to a clean local run's (x264 on one thread: threaded x264 is not reproducible)."""
    c = cluster(video={"x264_threads": 1})
    w1, w2 = c.worker("w1", queues="cpu"), c.worker("w2", queues="cpu")
    made = drop_caption(c.env.inbox, seconds=6, size="960x540")
    with Running(c.env.daemon()) as running:
        wait_for(lambda: bool(c.started("caption")), timeout=60)
        first_name, first = c.started("caption")[0]
        victim, other = (w1, w2) if first_name == w1.name else (w2, w1)
        job_dir = c.env.paths.jobs / first["job"]
        stale = json.loads((job_dir / "dispatch" / f"{first['task']}.json").read_text())
        victim.kill()
        wait_done(c.env, 1, timeout=180)
        side = c.env.sidecar("c")
        assert side["stages"][0]["facts"]["worker"] == f"omad@{other.name}"
        assert side["stages"][0]["attempt"] == 2
        # The killed worker's message comes back (Redis redelivers it after the visibility timeout). The live
        # workers were told of the revoke and drop it; a worker started since was not, and the fence stops it.
        other.stop()
        late = c.worker("w3", queues="cpu")
        running.d.executor.app.send_task("omad.stage", args=[stale], task_id=stale["task_id"], queue="omad.cpu")
        wait_for(lambda: any(e.get("task") == stale["task_id"] for e in late.events("fenced")), timeout=30)
    assert outputs(c.env.outbox) == ["c.json", "c.mp4"]
    clean = make_env(inbox=str(tmp_path / "clean-in"), outbox=str(tmp_path / "clean-out"),
                     state_dir=str(tmp_path / "clean-state"), executor={"kind": "local"},
                     video={"x264_threads": 1})
    for suffix in (".mp4", ".srt"):
        (clean.inbox / f"c{suffix}").write_bytes((made / f"c{suffix}").read_bytes())
    assert clean.once(max_wait=120) == 0
    assert sha256(c.env.outbox / "c.mp4") == sha256(clean.outbox / "c.mp4")


def test_sigterm_hands_a_running_stage_back_and_another_worker_finishes_it(cluster: Callable[..., Cluster]) -> None:
    """GIVEN two workers WHEN the one running a stage gets SIGTERM (systemd stop) THEN after the soft-shutdown
    grace it hands the task back to the queue and the other worker runs it: one output, one attempt."""
    c = cluster(jobs={"shutdown_grace_seconds": 0.5}, executor={"lease_seconds": 30})
    w1, w2 = c.worker("w1", queues="cpu"), c.worker("w2", queues="cpu")
    drop_caption(c.env.inbox, seconds=8, size="960x540")
    with Running(c.env.daemon()):
        wait_for(lambda: bool(c.started("caption")), timeout=60)
        first_name, _ = c.started("caption")[0]
        victim, other = (w1, w2) if first_name == w1.name else (w2, w1)
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGTERM)
        assert victim.proc.wait(timeout=30) == 0
        wait_done(c.env, 1, timeout=120)
    assert other.events("stage_started")  # the other worker took it over
    assert outputs(c.env.outbox) == ["c.json", "c.mp4"]
    stage = c.env.sidecar("c")["stages"][0]
    assert stage["facts"]["worker"] == f"omad@{other.name}" and stage["attempt"] == 1  # handed back, not lost


def test_a_second_delivery_of_a_running_task_never_commits_twice(cluster: Callable[..., Cluster]) -> None:
    """GIVEN a stage running on one worker WHEN Redis delivers the same task again to another worker (what a
    task longer than the visibility timeout gets) THEN the second copy waits for the first and answers its
    result: the stage ran once, one output."""
    c = cluster()
    w1, w2 = c.worker("w1", queues="cpu"), c.worker("w2", queues="cpu")
    drop_caption(c.env.inbox, seconds=6, size="960x540")
    with Running(c.env.daemon()) as running:
        wait_for(lambda: bool(c.started("caption")), timeout=60)
        _, first = c.started("caption")[0]
        message = json.loads((c.env.paths.jobs / first["job"] / "dispatch" / f"{first['task']}.json").read_text())
        running.d.executor.app.send_task("omad.stage", args=[message], task_id=message["task_id"],
                                         queue="omad.cpu")
        wait_done(c.env, 1, timeout=180)
        wait_for(lambda: bool(w1.events("duplicate_delivery") + w2.events("duplicate_delivery")), timeout=30)
    assert len(c.started("caption")) == 1
    assert outputs(c.env.outbox) == ["c.json", "c.mp4"]


_DAEMON = [sys.executable, "-m", "omad.cli", "run", "--config"]


def _scene_brief(inbox: Path) -> None:
    brief = {"kind": "video", "title": "Teste", "scenes": [
        {"narration": "Primeira cena, com alguma narração para durar.", "title": "Um"},
        {"narration": "Segunda cena, também com narração.", "title": "Dois"},
    ]}
    tmp = inbox.parent / "v.yaml"
    tmp.write_text(yaml.safe_dump(brief, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, inbox / "v.yaml")


def test_kill_9_of_the_daemon_is_reconciled_on_restart_without_rerunning_finished_stages(
        cluster: Callable[..., Cluster]) -> None:
    """GIVEN a two-stage scene video on a worker WHEN the daemon is killed with SIGKILL while the render
    runs THEN the worker finishes it anyway, and the restarted daemon takes that result by task id: no stage
    runs twice and the video is published once."""
    c = cluster(video={"preset": "custom", "width": 640, "height": 360, "fps": 24})
    c.worker("w1")
    _scene_brief(c.env.inbox)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (c.root / "daemon.log").open("ab") as log:
        first = subprocess.Popen([*_DAEMON, str(c.root / "omad.yaml")], env=env, stdout=log, stderr=log)
        try:
            wait_for(lambda: bool(c.started("render")), timeout=120)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            wait_for(lambda: any(e["stage"] == "render" for w in c.workers for e in w.events("stage_finished")),
                     timeout=120)
            second = subprocess.Popen([*_DAEMON, str(c.root / "omad.yaml")], env=env, stdout=log, stderr=log)
            try:
                wait_done(c.env, 1, timeout=120)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
    assert [e["stage"] for _, e in c.started()] == ["assets", "voice", "render", "post"]  # each once
    assert outputs(c.env.outbox) == ["v.jpg", "v.json", "v.mp4", "v.post.json", "v.srt"]
    daemon_log = (c.root / "daemon.log").read_text()
    assert "stage_adopted" in daemon_log
    assert c.env.sidecar("v")["attempts"] == 1  # the daemon's crash is not charged to the job


def test_redis_restarted_without_persistence_every_job_still_completes(cluster: Callable[..., Cluster]) -> None:
    c = cluster()
    c.worker("w1")
    for i in range(3):
        drop_caption(c.env.inbox, name=f"r{i}", seconds=3 + i / 2, size="640x360")  # three contents
    with Running(c.env.daemon()):
        wait_for(lambda: bool(c.started("caption")), timeout=60)
        c.redis.restart()
        wait_done(c.env, 3, timeout=240)
    assert outputs(c.env.outbox) == sorted(f"r{i}{s}" for i in range(3) for s in (".json", ".mp4"))


def test_exit_when_idle_stops_the_worker_with_success(cluster: Callable[..., Cluster]) -> None:
    """GIVEN a stage waiting in the queue WHEN an on-demand worker with --exit-when-idle starts THEN it runs the
    stage, then, idle for that long, exits with status 0 (its /metrics counted the task)."""
    c = cluster()
    drop_caption(c.env.inbox)
    with Running(c.env.daemon()):
        keys = queue_keys(c.env.config, "cpu")  # the queue's list of each priority step
        wait_for(lambda: sum(c.redis.client().llen(k) for k in keys) > 0, timeout=60)  # queued: no worker yet
        w = c.worker("idle", exit_when_idle=3.0, metrics=True)
        wait_done(c.env, 1)
        metrics = httpx.get(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=5).text
    assert 'omad_worker_tasks_total{outcome="done",stage="caption"} 1.0' in metrics
    assert w.proc is not None
    assert w.proc.wait(timeout=30) == 0
    [idle] = w.events("idle_exit")
    [done] = w.events("stage_finished")
    assert idle["timestamp"] > done["timestamp"]


@pytest.mark.otel
def test_one_trace_runs_from_the_daemon_through_the_worker(cluster: Callable[..., Cluster]) -> None:
    """GIVEN OTLP tracing on for the daemon and the worker WHEN a caption job runs on the worker THEN the
    receiver gets one trace: the worker's stage span is a child of the daemon's, its ffmpeg span a child of
    that, and the trace id is the sidecar's."""
    pytest.importorskip("opentelemetry.proto")
    from test_tracing import _OtlpReceiver

    c = cluster()
    with _OtlpReceiver() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        c.worker("w1", env=otel)
        drop_caption(c.env.inbox)
        cmd = [sys.executable, "-m", "omad.cli", "once", "--config", str(c.root / "omad.yaml"), "--max-wait", "60"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "PYTHONPATH": str(REPO), **otel})
        assert done.returncode == 0, done.stderr[-3000:]
        wait_for(lambda: any(s["service"] == "omad-worker" and s["name"].startswith("ffmpeg")
                             for s in receiver.spans), timeout=30)
        got = list(receiver.spans)
    trace = c.env.sidecar("c")["trace_id"]
    assert {s["trace"] for s in got} == {trace}
    by_name = {(s["service"], s["name"]): s for s in got}
    daemon_stage = by_name[("omad", "stage caption")]
    worker_stage = by_name[("omad-worker", "worker stage caption")]
    assert worker_stage["parent"] == daemon_stage["span"]
    ffmpeg = [s for s in got if s["service"] == "omad-worker" and s["name"].startswith("ffmpeg")]
    assert ffmpeg and all(s["parent"] == worker_stage["span"] for s in ffmpeg)


@pytest.fixture(scope="module")
def f5_kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from omad.tts.f5.imports import f5_available

    if not f5_available():
        pytest.skip("omad[f5] extra not installed")
    import f5_tiny as ft

    d = tmp_path_factory.mktemp("f5cluster")
    n = ft.write_vocab(d / "vocab.txt")
    ref = d / "voz.wav"
    subprocess.run(["espeak-ng", "-v", "pt-br", "-w", str(ref), "Olá, esta é a minha voz."], check=True)
    return {"vocab": d / "vocab.txt", "reference": ref, "vocoder": ft.write_vocos(d / "vocos"),
            "checkpoint": ft.save_checkpoint(ft.build_model(ft.tiny_shape(n)), d / "model_last.safetensors",
                                             "safetensors")}


@pytest.mark.f5
def test_gpu_stages_go_to_the_gpu_worker_one_at_a_time_and_its_model_unloads_when_idle(
        cluster: Callable[..., Cluster], f5_kit: dict[str, Path]) -> None:
    """GIVEN a CPU worker, and a GPU worker (GPU queue, concurrency 1) whose own config holds the F5 checkpoint
    WHEN two texts are narrated with F5 THEN both run on the GPU worker, never at the same time; the model stays
    loaded between them and is unloaded after gpu.idle_unload_seconds, as its /metrics show."""
    # Loading torch can hold the GIL for tens of seconds on this shared 2-core box, and with it the heartbeat
    # thread (CI saw 30 s): a long lease, so this test is about the queues, not the lease.
    c = cluster(tts={"engine": "f5"}, executor={"lease_seconds": 120})
    c.worker("cpu1", queues="cpu", concurrency=2)
    gpu_cfg = json.loads(json.dumps(c.data))
    gpu_cfg["tts"] = {"engine": "f5", "f5": {
        "checkpoint": str(f5_kit["checkpoint"]), "vocab": str(f5_kit["vocab"]), "vocoder": str(f5_kit["vocoder"]),
        "nfe_step": 4, "reference": {"audio": str(f5_kit["reference"]), "text": "Olá, esta é a minha voz."}}}
    gpu_cfg["gpu"] = {"idle_unload_seconds": 3}
    gpu = c.worker("gpu1", queues="gpu", config=gpu_cfg, metrics=True)
    for i, text in enumerate(["Bom dia a todos.", "O relatório está pronto."]):
        (c.env.inbox / f"t{i}.txt").write_text(text, encoding="utf-8")
    with Running(c.env.daemon()):
        wait_done(c.env, 2, timeout=240)
    for name in ("t0", "t1"):
        stage = c.env.sidecar(name)["stages"][0]
        assert stage["lane"] == "gpu" and stage["facts"]["worker"] == "omad@gpu1" and stage["facts"]["engine"] == "f5"
    assert {w for w, _ in c.started()} == {"gpu1"}
    ends = {f["task"]: f["timestamp"] for f in gpu.events("stage_finished")}
    spans = sorted((e["timestamp"], ends[e["task"]]) for e in gpu.events("stage_started") if e["task"] in ends)
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], spans  # one at a time

    def metric(name: str) -> str:
        text = httpx.get(f"http://127.0.0.1:{gpu.metrics_port}/metrics", timeout=5).text
        return "\n".join(line for line in text.splitlines() if line.startswith(name))

    assert "omad_gpu_model_loads_total" in metric("omad_gpu_model_loads_total")
    assert metric("omad_gpu_model_loads_total").rstrip().endswith(" 1.0")  # loaded once for both
    wait_for(lambda: metric("omad_gpu_model_unloads_total").rstrip().endswith(" 1.0"), timeout=30)
    assert metric("omad_gpu_resident_models") == ""


def test_without_a_share_files_go_through_an_object_store(cluster: Callable[..., Cluster], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN executor.files: s3 (an S3 stand-in on localhost) and a worker with its own folders only
    WHEN a two-stage scene video runs THEN the worker fetches the inputs and the voice stage's files by sha256
    into its cache, its results come back through the store, and the video is published."""
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        creds = {"AWS_ACCESS_KEY_ID": "omad-test", "AWS_SECRET_ACCESS_KEY": "omad-test-secret",
                 "AWS_DEFAULT_REGION": "us-east-1"}
        for k, v in creds.items():
            monkeypatch.setenv(k, v)
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="omad-jobs")
        c = cluster(video={"preset": "custom", "width": 320, "height": 180, "fps": 10},
                    executor={"files": "s3", "s3_endpoint_url": endpoint, "s3_bucket": "omad-jobs"})
        w = c.worker("w1", env=creds)
        _scene_brief(c.env.inbox)
        with Running(c.env.daemon()):
            wait_done(c.env, 1, timeout=180)
        assert outputs(c.env.outbox) == ["v.jpg", "v.json", "v.mp4", "v.post.json", "v.srt"]
        side = c.env.sidecar("v")
        assert {s["facts"]["worker"] for s in side["stages"]} == {"omad@w1"}
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="omad-jobs").get("Contents", [])]
        assert any(k.startswith("omad/blobs/") for k in keys) and any(k.startswith("omad/fences/") for k in keys)
        assert sum(k.startswith("omad/results/") for k in keys) == 4  # assets, voice, render, post: one each
        cache = w.folder / "state" / "cache"
        assert any(p.stat().st_size for p in cache.iterdir())  # the brief, and the voice's WAVs for the render
        mirrored = [p for p in (w.folder / "state" / "mirror").rglob("*") if p.is_file()]
        assert any(p.parts[-3] == "inputs" or "inputs" in p.parts for p in mirrored)  # its own copy of the inputs
    finally:
        server.stop()


def test_the_worker_cache_is_trimmed_least_recently_used_first(tmp_path: Path) -> None:
    pytest.importorskip("boto3")
    from omad.cluster.s3 import S3Files

    cfg = Config.model_validate({"executor": {"kind": "celery", "broker_url": "redis://h/0", "files": "s3",
                                              "s3_bucket": "b", "s3_endpoint_url": "http://127.0.0.1:9",
                                              "worker_state_dir": str(tmp_path), "worker_cache_mb": 0.002}})
    store = S3Files(cfg)
    store.cache.mkdir(parents=True)
    for i, name in enumerate(("old", "mid", "new")):
        p = store.cache / name
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1000 + i, 1000 + i))
    assert store.trim_cache() == 1
    assert sorted(p.name for p in store.cache.iterdir()) == ["mid", "new"]
