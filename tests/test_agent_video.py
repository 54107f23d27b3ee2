"""A prompt brief becomes a finished video through the agents, the daemon and the fake Ollama server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Env, make_image
from fake_ollama import FakeOllama, Reply

from omad.media.ffmpeg import probe
from omad.media.subtitles import read_srt

SMALL = {"preset": "custom", "width": 320, "height": 180, "fps": 10, "x264_preset": "ultrafast"}

BRIEF = """
version: 1
kind: video
name: abelhas
prompt: "Um vídeo curto sobre abelhas nativas do Brasil. Contato: joao.silva@exemplo.com.br, CPF 529.982.247-25,
  telefone (11) 91234-5678."
audience: crianças
tone: alegre
duration_seconds: 12
assets:
  - file: flor.jpg
    description: uma flor amarela com uma abelha
  - file: colmeia.png
    description: uma colmeia de madeira
"""


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def drop_bundle(env: Env, brief: str) -> None:
    staging = env.root / "staging" / "abelhas"
    staging.mkdir(parents=True)
    make_image(staging / "flor.jpg", "640x480")
    make_image(staging / "colmeia.png", "480x640")
    (staging / "brief.yaml").write_text(brief, encoding="utf-8")
    staging.rename(env.inbox / "abelhas")


def test_prompt_brief_becomes_a_narrated_captioned_video(make_env: Callable[..., Env], fake: FakeOllama) -> None:
    """GIVEN a prompt brief with two bundle images and personal data in the prompt
    WHEN the daemon runs it with the agents on the (fake) Ollama
    THEN an mp4 with narration and captions, its SRT, poster and editable scene brief are published,
    the scenes use the bundle's images, and the personal data appears in no output or log."""
    env = make_env(video=SMALL, llm={"host": fake.url, "remote": False})
    drop_bundle(env, BRIEF)
    assert env.once(max_wait=120) == 0
    out = env.outbox / "abelhas.mp4"
    info = probe(out)
    assert info.audio is not None and (info.width, info.height) == (320, 180)
    cues, _ = read_srt(env.outbox / "abelhas.srt", "abelhas.srt")
    assert len(cues) >= 2
    scenes = yaml.safe_load((env.outbox / "abelhas.scenes.yaml").read_text())
    images = {s.get("image") for s in scenes["scenes"]}
    assert {"flor.jpg", "colmeia.png"} <= images
    assert (env.outbox / "abelhas.jpg").exists()
    side = env.sidecar("abelhas")
    assert [s["name"] for s in side["stages"]] == ["plan", "assets", "voice", "render", "post"]
    agents = side["stages"][0]["facts"]["agents"]
    assert {a["role"] for a in agents} >= {"supervisor", "script_writer", "visual_planner", "audio_producer",
                                            "editor"}
    assert all(a["prompt_sha256"] and a["tokens_out"] >= 0 for a in agents)
    texts = [p.read_text(errors="replace") for p in env.outbox.rglob("*") if p.suffix in (".json", ".srt", ".yaml",
                                                                                           ".jsonl")]
    for secret in ("joao.silva@exemplo.com.br", "529.982.247-25", "91234-5678"):
        assert all(secret not in t for t in texts), secret
        assert secret not in fake.sent_text()
    kinds = {f["type"] for f in side["guardrail_findings"]}
    assert {"cpf", "email", "phone_br"} <= kinds


def test_ollama_down_is_retried_then_fails_saying_where_it_looked(make_env: Callable[..., Env]) -> None:
    env = make_env(video=SMALL, llm={"host": "http://127.0.0.1:9", "connect_retries": 0},
                   jobs={"max_attempts": 2, "backoff_seconds": 0.1})
    drop_bundle(env, BRIEF)
    assert env.once(max_wait=60) == 1
    err = env.failed_error("abelhas")
    assert "127.0.0.1:9" in err["message"] and "ollama serve" in err["message"]
    assert err["attempts"] == 2
    assert (env.outbox / "failed" / "abelhas" / "abelhas" / "brief.yaml").exists()


def test_model_not_pulled_names_the_pull_command(make_env: Callable[..., Env], fake: FakeOllama) -> None:
    env = make_env(video=SMALL, llm={"host": fake.url})
    fake.queue("qwen2.5:3b-instruct", Reply.missing())
    fake.remove_model("qwen2.5:3b-instruct")
    fake.remove_model("qwen2:1.5b")
    drop_bundle(env, BRIEF)
    assert env.once(max_wait=60) == 1
    assert "ollama pull qwen2.5:3b-instruct" in env.failed_error("abelhas")["message"]


def test_guardrail_block_quarantines_before_any_model_runs(make_env: Callable[..., Env], fake: FakeOllama,
                                                          tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("blocked_words:\n  words: [contrabando]\n  action: block\n")
    env = make_env(video=SMALL, llm={"host": fake.url}, guardrails={"file": str(rules)})
    drop_bundle(env, BRIEF.replace("abelhas nativas", "contrabando de abelhas"))
    assert env.once(max_wait=60) == 1
    err = env.failed_error("abelhas")
    assert err["error"]["kind"] == "guardrail" and "blocked_word" in err["message"]
    assert fake.chats() == []


def test_llm_time_on_the_gpu_lane_is_billed_as_gpu_seconds(make_env: Callable[..., Env], fake: FakeOllama) -> None:
    """GIVEN five model calls of at least 0.5 s each, made from the CPU-lane plan stage through the GPU lane
    THEN the job is billed at least 2.5 GPU seconds (the lane that was held), in the sidecar and the journal."""
    env = make_env(video=SMALL, llm={"host": fake.url, "remote": False})
    for model in ("qwen2.5:3b-instruct", "phi3.5:3.8b-mini", "gemma2:2b", "mistral:7b-instruct", "qwen2:1.5b"):
        fake.queue(model, Reply.auto(delay=0.5))
    drop_bundle(env, BRIEF)
    assert env.once(max_wait=120) == 0
    side = env.sidecar("abelhas")
    assert side["cost"]["gpu_seconds"] >= 2.5
    assert side["cost"]["cpu_seconds"] > 0  # the plan, voice and render stages held the CPU lane


def test_a_failed_attempt_is_billed_too(make_env: Callable[..., Env]) -> None:
    env = make_env(video=SMALL, llm={"host": "http://127.0.0.1:9", "connect_retries": 0},
                   jobs={"max_attempts": 2, "backoff_seconds": 0.1})
    drop_bundle(env, BRIEF)
    d = env.daemon(once=True)
    assert d.run_once(max_wait=60) == 1
    (job,) = d.journal.jobs()
    assert job.attempts == 2 and job.cpu_seconds > 0
