"""Agent video planning: a prompt brief becomes a scene brief, through the real ollama client and a FAKE Ollama.

Every test talks HTTP to ``tests/fake_ollama.py`` (a fake server, no model) with
omad's real client, guardrails from the shipped ``config/guardrails.yaml``, and
real files in a bundle folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import wait_for
from fake_ollama import FakeOllama, Reply
from PIL import Image
from pydantic import BaseModel, Field

from omad.agents import CallRecord, LlmClient, doctor_checks, estimate_vram_gb, ollama_host
from omad.agents.client import PromptRef
from omad.agents.roles import (
    AudioAnswer,
    EditorAnswer,
    ScriptAnswer,
    SupervisorAnswer,
    VisualAnswer,
    load_prompt,
)
from omad.brief import VideoBrief, load_brief
from omad.config import Config
from omad.errors import GuardrailBlocked, OmadError, StageFailed, ToolMissing, ToolTimeout, TransientError
from omad.lanes import Lanes
from omad.stage import StageContext, StageResult
from omad.stages.plan import PlanStage

REPO = Path(__file__).resolve().parents[1]
GUARDRAILS = REPO / "config" / "guardrails.yaml"

SUPERVISOR, SCRIPT, VISUAL, AUDIO, EDITOR = (
    "qwen2.5:3b-instruct",
    "phi3.5:3.8b-mini",
    "gemma2:2b",
    "mistral:7b-instruct",
    "qwen2:1.5b",
)
ROLES = ["supervisor", "script_writer", "visual_planner", "audio_producer", "editor"]

# Valid by their check digits / formats, so the guardrails must catch them.
BRIEF_CPF, BRIEF_EMAIL, BRIEF_PHONE = "529.982.247-25", "maria.souza@example.com", "(11) 91234-5678"
GEN_CPF, GEN_EMAIL, GEN_PHONE = "111.444.777-35", "contato@loja-exemplo.com.br", "(21) 98765-4321"


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def make_config(host: str, guardrails: Path = GUARDRAILS, **llm: Any) -> Config:
    data = {
        "llm": {"host": host, "connect_backoff_seconds": 0.05, "timeout_seconds": 10, **llm},
        "guardrails": {"file": str(guardrails)},
    }
    return Config.model_validate(data)


def make_bundle(
    root: Path, *, prompt: str | None = None, images: tuple[str, ...] = ("telhado.png", "conta.png"), **extra: Any
) -> Path:
    bundle = root / "energia"
    bundle.mkdir(parents=True)
    colours = [(200, 120, 40), (40, 90, 160), (90, 160, 60)]
    for i, name in enumerate(images):
        Image.new("RGB", (64, 36), colours[i % 3]).save(bundle / name)
    brief: dict[str, Any] = {
        "version": 1,
        "kind": "video",
        "name": "energia",
        "prompt": prompt or "Um vídeo curto explicando como a energia solar reduz a conta de luz de uma casa.",
        "topic": "energia solar em casa",
        "audience": "famílias",
        "tone": "amigável",
        "duration_seconds": 30,
        "assets": [
            {"file": images[0], "description": "painéis solares num telhado"},
            {"file": images[1], "description": "uma conta de luz sobre a mesa"},
        ]
        if len(images) >= 2
        else [],
        **extra,
    }
    (bundle / "brief.yaml").write_text(yaml.safe_dump(brief, allow_unicode=True), encoding="utf-8")
    return bundle


def make_ctx(tmp_path: Path, bundle: Path, config: Config, lanes: Lanes | None = None) -> StageContext:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return StageContext(
        job_id="job-1",
        route="agent-video",
        name="energia",
        work=work,
        inputs={"brief": bundle / "brief.yaml"},
        options={},
        config=config,
        lanes=lanes or Lanes(1, config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds),
        stage="plan",
        timeout=60.0,
    )


def run_plan(ctx: StageContext) -> tuple[StageResult, VideoBrief]:
    result = PlanStage().run(ctx)
    scene_brief = load_brief(ctx.work / result.artifacts["scene_brief"], 1 << 20)
    assert isinstance(scene_brief, VideoBrief)
    return result, scene_brief


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def script_with(narrations: list[str], hook: str = "Olha só isso.", cta: str = "Siga para mais.") -> Reply:
    return Reply.json(
        {
            "hook": hook,
            "scenes": [{"narration": n, "on_screen_text": f"Cena {i + 1}"} for i, n in enumerate(narrations)],
            "call_to_action": cta,
        }
    )


# -- the whole plan -----------------------------------------------------------------------------


def test_prompt_brief_with_two_images_becomes_a_scene_brief_using_them(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN a bundle with a prompt brief and two described images
    WHEN the plan stage runs against Ollama
    THEN scenes.yaml is a video brief whose scenes use both images, with narration sized to the duration,
    and the record names every role's model, prompt file and hash, attempts and tokens."""
    bundle = make_bundle(tmp_path, music=None)
    ctx = make_ctx(tmp_path, bundle, make_config(fake.url))

    result, scene_brief = run_plan(ctx)

    assert result.artifacts == {"scene_brief": "scenes.yaml"}
    assert result.publish == {".scenes.yaml": "scene_brief"}
    assert scene_brief.kind == "video" and scene_brief.scenes and not scene_brief.is_agent
    assert scene_brief.name == "energia" and scene_brief.language == "pt-BR"
    assert [a.file for a in scene_brief.assets] == ["telhado.png", "conta.png"]
    images = [s.image for s in scene_brief.scenes]
    assert {"telhado.png", "conta.png"} <= set(images)
    for scene in scene_brief.scenes:
        assert scene.narration.strip()
        if scene.image:
            assert (bundle / scene.image).is_file() and scene.motion is not None
    assert scene_brief.scenes[0].narration.startswith("Você sabia que isso muda tudo?")
    assert scene_brief.scenes[-1].narration.endswith("Compartilhe com quem precisa saber.")
    words = sum(len(s.narration.split()) for s in scene_brief.scenes)
    assert 0.6 * 30 * 2.5 <= words <= 1.6 * 30 * 2.5
    assert scene_brief.voice is not None and scene_brief.voice.speed == 1.0

    agents = result.llm_calls
    assert [a["role"] for a in agents] == ROLES
    assert [a["model"] for a in agents] == [SUPERVISOR, SCRIPT, VISUAL, AUDIO, EDITOR]
    for record in agents:
        prompt = load_prompt(record["role"])
        assert record["prompt_file"] == f"omad/prompts/{record['role']}.md"
        assert record["prompt_sha256"] == hashlib.sha256(prompt.text.encode()).hexdigest()
        assert record["attempts"] == 1 and not record["fallback_used"]
        assert record["tokens_in"] > 0 and record["tokens_out"] > 0 and record["latency_seconds"] > 0
        assert record["total_duration_seconds"] > 0 and record["eval_duration_seconds"] > 0
    summary = result.facts["agent_plan"]
    assert summary["target_duration_seconds"] == 30 and summary["editor_decision"] == "keep"
    assert result.guardrail_findings == []

    schemas: dict[str, type[BaseModel]] = {
        SUPERVISOR: SupervisorAnswer,
        SCRIPT: ScriptAnswer,
        VISUAL: VisualAnswer,
        AUDIO: AudioAnswer,
        EDITOR: EditorAnswer,
    }
    for model, answer in schemas.items():
        [chat] = fake.chats(model)
        assert chat.body["format"] == answer.model_json_schema()
        assert chat.body["keep_alive"] == "5m" and chat.body["options"]["temperature"] == 0.2
        assert "pt-BR" in chat.body["messages"][0]["content"]
    visual_in = json.loads(fake.chats(VISUAL)[0].body["messages"][1]["content"])
    assert visual_in["assets"] == [
        {"file": "telhado.png", "description": "painéis solares num telhado"},
        {"file": "conta.png", "description": "uma conta de luz sobre a mesa"},
    ]


def test_brief_language_reaches_every_prompt(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN a brief in English WHEN planned THEN each role is told to write in en-US."""
    bundle = make_bundle(tmp_path, language="en-US")
    _, scene_brief = run_plan(make_ctx(tmp_path, bundle, make_config(fake.url)))
    assert scene_brief.language == "en-US"
    systems = [c.body["messages"][0]["content"] for c in fake.chats()]
    assert len(systems) == 5 and all("en-US" in s and "$language" not in s for s in systems)


def test_calls_go_through_the_gpu_lane_which_evicts_f5_and_unloads_ollama_models(
    tmp_path: Path, fake: FakeOllama
) -> None:
    """GIVEN an F5 voice resident on the GPU lane and a 4 GB budget
    WHEN the agents run THEN the F5 voice is evicted before the large LLM loads,
    and WHEN F5 needs the card again THEN the Ollama models are unloaded with keep_alive=0."""
    config = make_config(fake.url)
    lanes = Lanes(1, vram_budget_gb=4.0, idle_unload_seconds=300)
    f5_unloads: list[str] = []
    with lanes.residency.acquire("f5:voice", 2.5, lambda: "f5", f5_unloads.append):
        pass
    holders: list[list[str]] = []
    original = lanes.gpu.slot

    def spying_slot(holder: str = "") -> Any:
        holders.append([holder])
        return original(holder)

    lanes.gpu.slot = spying_slot  # type: ignore[method-assign]
    run_plan(make_ctx(tmp_path, make_bundle(tmp_path), config, lanes))

    assert f5_unloads == ["f5"]
    assert [h[0] for h in holders] == [f"job-1:{r}" for r in ROLES]
    assert lanes.gpu.busy_seconds > 0
    loaded = {k for k in lanes.residency.loads if k.startswith("ollama:")}
    assert loaded == {f"ollama:{m}" for m in (SUPERVISOR, SCRIPT, VISUAL, AUDIO, EDITOR)}
    # mistral 7b (4.5 GB) alone overflows the budget, so everything else was unloaded for it.
    assert SUPERVISOR in fake.unloads() and SCRIPT in fake.unloads()

    with lanes.residency.acquire("f5:voice", 2.5, lambda: "f5", f5_unloads.append):
        assert lanes.residency.used_gb() <= 4.0
    remaining = [r["model"] for r in lanes.residency.snapshot()]
    assert remaining == ["f5:voice"]
    assert set(fake.unloads()) == {SUPERVISOR, SCRIPT, VISUAL, AUDIO, EDITOR}
    assert fake.loaded == []


def test_visual_planner_and_audio_producer_are_asked_at_the_same_time(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN a remote Ollama (no GPU lane) and slow answers WHEN planned THEN the two workers' requests overlap."""
    fake.queue(VISUAL, Reply.auto(delay=0.4))
    fake.queue(AUDIO, Reply.auto(delay=0.4))
    config = make_config(fake.url, remote=True)
    run_plan(make_ctx(tmp_path, make_bundle(tmp_path), config))
    [visual], [audio] = fake.chats(VISUAL), fake.chats(AUDIO)
    assert visual.started < audio.ended and audio.started < visual.ended


# -- invalid answers, fallbacks, missing models -------------------------------------------------


def test_invalid_json_is_retried_then_the_fallback_model_answers(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN the supervisor model answers prose, then nothing, then broken JSON
    WHEN planned THEN after llm.retries re-asks the fallback model answers, and the record shows both."""
    fake.queue(SUPERVISOR, Reply.text("Claro! Aqui está o plano: ..."), Reply.empty(), Reply.text('{"objective": '))
    result, scene_brief = run_plan(make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url)))

    assert scene_brief.scenes
    record = result.llm_calls[0]
    assert record["role"] == "supervisor" and record["model"] == "qwen2:1.5b" and record["fallback_used"]
    assert record["attempts"] == 4
    assert [t["model"] for t in record["tries"]] == [SUPERVISOR] * 3 + ["qwen2:1.5b"]
    outcomes = [t["outcome"] for t in record["tries"]]
    assert outcomes[1] == "empty answer" and outcomes[-1] == "ok"
    assert all("does not match the schema" in o for o in (outcomes[0], outcomes[2]))
    # The re-ask shows the model its answer and what was wrong with it.
    retry = fake.chats(SUPERVISOR)[1].body["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Claro! Aqui está o plano: ..."}
    assert "esquema" in retry[-1]["content"]


def test_no_valid_answer_from_either_model_fails_naming_role_model_and_reason(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN both editor models keep answering scene numbers that do not exist WHEN planned
    THEN the stage fails with StageFailed naming the role, both models and the reason."""
    bad = Reply.json(
        {"decision": "keep", "scenes": [{"from_scenes": [9], "narration": "x", "on_screen_text": ""}], "notes": ""}
    )
    fake.queue(EDITOR, bad, bad, bad)
    fake.queue("qwen2.5:3b-instruct", Reply.auto())  # the supervisor's own answer comes first
    fake.queue("qwen2.5:3b-instruct", bad, bad, bad)
    with pytest.raises(StageFailed) as err:
        run_plan(make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url)))
    message = str(err.value)
    assert "role editor" in message and EDITOR in message and "qwen2.5:3b-instruct" in message
    assert "scene(s) [9]" in message and "llm.roles.editor" in message
    assert err.value.stage == "plan" and err.value.file == "brief.yaml"
    assert err.value.details["record"]["attempts"] == 6


def test_a_model_not_pulled_uses_the_fallback_and_says_how_to_pull_it(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN the script writer's model is not pulled WHEN planned THEN its fallback writes the script,
    and the record carries the `ollama pull` command."""
    fake.remove_model(SCRIPT)
    result, _ = run_plan(make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url)))
    record = result.llm_calls[1]
    assert record["model"] == "qwen2.5:3b-instruct" and record["fallback_used"]
    assert record["warnings"] == [f"model {SCRIPT} is not pulled: run `ollama pull {SCRIPT}`"]


def test_missing_models_fail_with_the_pull_commands(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN neither script-writer model is pulled WHEN planned THEN ToolMissing gives both pull commands."""
    fake.remove_model(SCRIPT)
    config = make_config(fake.url)
    config.llm.roles.script_writer.fallback = "llama3.2:1b"
    with pytest.raises(ToolMissing) as err:
        run_plan(make_ctx(tmp_path, make_bundle(tmp_path), config))
    assert f"`ollama pull {SCRIPT}`" in str(err.value) and "`ollama pull llama3.2:1b`" in str(err.value)
    assert err.value.details["pull"] == [f"ollama pull {SCRIPT}", "ollama pull llama3.2:1b"]


# -- connection trouble -------------------------------------------------------------------------


def test_ollama_refusing_connections_is_retried_until_it_comes_up(tmp_path: Path) -> None:
    """GIVEN Ollama is not listening yet WHEN planned THEN omad retries with backoff and succeeds
    once it starts."""
    port = free_port()
    fake = FakeOllama(port=port)
    timer = threading.Timer(0.5, fake.start)
    timer.start()
    try:
        config = make_config(f"127.0.0.1:{port}", connect_retries=8, connect_backoff_seconds=0.1)
        _, scene_brief = run_plan(make_ctx(tmp_path, make_bundle(tmp_path), config))
    finally:
        timer.join()
        fake.stop()
    assert scene_brief.scenes and len(fake.chats()) == 5


def test_ollama_never_reachable_says_where_it_looked_and_how_to_start_it(tmp_path: Path) -> None:
    """GIVEN nothing listens on the configured port WHEN planned THEN a TransientError (the job is retried)
    names the URL and the commands that start Ollama."""
    port = free_port()
    config = make_config(f"127.0.0.1:{port}", connect_retries=2, connect_backoff_seconds=0.01)
    with pytest.raises(TransientError) as err:
        run_plan(make_ctx(tmp_path, make_bundle(tmp_path), config))
    message = str(err.value)
    assert f"http://127.0.0.1:{port}" in message and "ollama serve" in message and "systemctl start ollama" in message
    assert err.value.retryable and err.value.details["tries"] == 3


class _Small(BaseModel):
    answer: str = Field(min_length=1)


def _ask_once(config: Config) -> tuple[_Small, CallRecord]:
    async def go() -> tuple[_Small, CallRecord]:
        async with LlmClient(config.llm, None) as llm:
            return await llm.structured(
                "supervisor",
                SUPERVISOR,
                "",
                [{"role": "user", "content": "oi"}],
                _Small,
                prompt=PromptRef.of("x.md", "x"),
            )

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.error(500, "model requires more system memory (5.6 GiB) than is available"), TransientError),
        (Reply.error(503, "server busy"), TransientError),
        (Reply.error(400, "invalid format"), StageFailed),
        (Reply.error(401, "unauthorized"), StageFailed),
        (Reply.missing(), ToolMissing),
        (Reply.drop(), TransientError),
        (Reply.auto(delay=1.0), ToolTimeout),
        (Reply.raw("<html>not ollama</html>"), StageFailed),
        (Reply.raw('{"unexpected": true}'), StageFailed),
        (Reply.raw('{"error": "boom"}', status=502), TransientError),
    ],
)
def test_no_ollama_or_httpx_exception_escapes_unmapped(fake: FakeOllama, reply: Reply, expected: type) -> None:
    """GIVEN Ollama fails in one of the ways it can WHEN a role asks THEN only omad's own errors come out."""
    fake.queue(SUPERVISOR, reply)
    config = make_config(fake.url, timeout_seconds=0.3, retries=0)
    with pytest.raises(OmadError) as err:
        _ask_once(config)
    assert type(err.value) is expected
    assert fake.url in str(err.value) or SUPERVISOR in str(err.value)


def test_a_bad_host_setting_is_a_config_error() -> None:
    """GIVEN llm.host with a port that is not a number WHEN the client is made THEN ConfigError."""
    with pytest.raises(OmadError, match="invalid port"):
        ollama_host(make_config("http://localhost:port").llm)


def test_a_timeout_or_cancel_stops_the_plan_mid_call(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN a model that takes long WHEN the stage's time runs out or the daemon cancels
    THEN the plan stops promptly with ToolTimeout, or with a TransientError so it resumes later."""
    # A model that would answer only after 60 s: stopping before that proves the stop did not wait for it.
    fake.queue(SUPERVISOR, Reply.auto(delay=60.0), Reply.auto(delay=60.0))
    ctx = make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url))
    ctx.timeout = 0.3
    with pytest.raises(ToolTimeout):
        PlanStage().run(ctx)
    # Stopped while the model was still "thinking": the fake has not answered (a handler's end is recorded).
    assert [r.ended for r in fake.chats(SUPERVISOR)] == [0.0]
    assert ctx.lanes.gpu.busy == 0

    ctx.timeout = 60.0
    threading.Timer(0.3, ctx.cancel.set).start()
    with pytest.raises(TransientError, match="shutting down"):
        PlanStage().run(ctx)
    assert [r.ended for r in fake.chats(SUPERVISOR)] == [0.0, 0.0]
    assert ctx.lanes.gpu.busy == 0 and ctx.lanes.gpu.waiting == 0


def test_a_plan_stopped_while_waiting_for_the_gpu_lane_does_not_keep_it(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN another job holds the GPU lane WHEN the plan's time runs out while it waits for the lane
    THEN it stops at once (not when the lane frees), and once the other job is done the lane is free."""
    ctx = make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url))
    ctx.timeout = 0.3
    release = threading.Event()
    holding = threading.Event()

    def other_job() -> None:
        with ctx.lanes.gpu.slot("f5-job"):
            holding.set()
            release.wait(120)  # released only after the plan has stopped

    other = threading.Thread(target=other_job)
    other.start()
    assert holding.wait(60)
    try:
        with pytest.raises(ToolTimeout):
            PlanStage().run(ctx)
        assert ctx.lanes.gpu.holders() == ["f5-job"]  # it stopped while the lane was still held, not when it freed
    finally:
        release.set()
        other.join()
    wait_for(lambda: not (ctx.lanes.gpu.busy or ctx.lanes.gpu.waiting), 30, every=0.01, what="the GPU lane freed")
    assert fake.chats() == []
    with ctx.lanes.gpu.slot("next"):
        pass


# -- images -------------------------------------------------------------------------------------


def test_an_image_not_in_the_bundle_becomes_a_title_card_with_a_warning(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN the visual planner names a file that is not in the bundle, and one outside it
    WHEN planned THEN those scenes get title cards, a warning says so, and the real image is kept."""
    fake.queue(
        VISUAL,
        Reply.json(
            {
                "scenes": [
                    {"scene": 1, "asset": "TELHADO.PNG", "motion": "zoom_in"},
                    {"scene": 2, "asset": "praia.jpg", "motion": "pan_left"},
                    {"scene": 3, "asset": "../../etc/passwd", "motion": "zoom_out"},
                ]
            }
        ),
    )
    fake.queue(
        SUPERVISOR,
        Reply.json(
            {
                "objective": "Explicar",
                "audience": "famílias",
                "tone": "amigável",
                "target_duration_seconds": 30,
                "scene_count": 3,
                "workers": ["script_writer", "visual_planner", "audio_producer", "editor"],
            }
        ),
    )
    ctx = make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url))
    _, scene_brief = run_plan(ctx)
    assert scene_brief.scenes is not None
    assert [s.image for s in scene_brief.scenes] == ["telhado.png", None, None]
    assert scene_brief.scenes[1].motion is None and scene_brief.scenes[1].title == "Parte 2"
    assert len(ctx.warnings) == 2
    assert "'praia.jpg' for scene 2" in ctx.warnings[0] and "title card" in ctx.warnings[0]


def test_without_a_visual_planner_bundle_images_are_used_in_order(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN the supervisor runs only the required workers WHEN planned THEN no visual planner or audio
    producer is asked, and the bundle's images still illustrate the first scenes."""
    fake.queue(
        SUPERVISOR,
        Reply.json(
            {
                "objective": "Explicar",
                "audience": "famílias",
                "tone": "amigável",
                "target_duration_seconds": 20,
                "scene_count": 3,
                "workers": ["script_writer", "editor"],
            }
        ),
    )
    result, scene_brief = run_plan(make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url)))
    assert [a["role"] for a in result.llm_calls] == ["supervisor", "script_writer", "editor"]
    assert scene_brief.scenes is not None
    assert [s.image for s in scene_brief.scenes] == ["telhado.png", "conta.png", None]
    assert scene_brief.voice is None
    assert fake.chats(VISUAL) == [] and fake.chats(AUDIO) == []


# -- guardrails ---------------------------------------------------------------------------------


def test_a_blocked_topic_in_the_brief_stops_before_any_model_runs(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN a brief asking how to build a bomb WHEN planned THEN GuardrailBlocked names the finding
    and no model was asked anything."""
    bundle = make_bundle(tmp_path, prompt="Um tutorial para fabricar uma bomba em casa.")
    with pytest.raises(GuardrailBlocked) as err:
        run_plan(make_ctx(tmp_path, bundle, make_config(fake.url)))
    assert err.value.details["finding"]["type"] == "topic:weapons"
    assert err.value.details["finding"]["where"] == "brief.prompt"
    assert fake.chats() == []


def test_a_blocked_topic_in_generated_text_stops_the_plan(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN the script writer writes about homemade explosives WHEN planned THEN GuardrailBlocked,
    and the script never reaches the next roles."""
    fake.queue(SCRIPT, script_with(["Primeiro, veja como montar um explosivo caseiro.", "Depois, o resto."]))
    with pytest.raises(GuardrailBlocked) as err:
        run_plan(make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url)))
    assert err.value.details["finding"]["where"] == "script.scene[1].narration"
    assert fake.chats(VISUAL) == [] and fake.chats(EDITOR) == []


def test_personal_data_is_redacted_from_the_brief_and_from_generated_narration(
    tmp_path: Path, fake: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    """GIVEN a prompt with a CPF, an e-mail and a phone, and a script writer that writes others
    WHEN planned THEN none of those values reaches a later model, scenes.yaml, the facts or the logs;
    the findings name them masked."""
    caplog.set_level(logging.DEBUG)
    prompt = (
        f"Vídeo para a cliente Maria, CPF {BRIEF_CPF}, e-mail {BRIEF_EMAIL}, telefone {BRIEF_PHONE}, "
        "sobre economia com energia solar."
    )
    fake.queue(
        SCRIPT,
        script_with(
            [
                f"Ligue para {GEN_PHONE} e fale com a equipe.",
                f"Escreva para {GEN_EMAIL} e informe o CPF {GEN_CPF} no cadastro.",
            ]
        ),
    )
    result, scene_brief = run_plan(make_ctx(tmp_path, make_bundle(tmp_path, prompt=prompt), make_config(fake.url)))

    written = (tmp_path / "work" / "scenes.yaml").read_text(encoding="utf-8")
    facts = json.dumps(result.facts, ensure_ascii=False)
    logs = caplog.text
    for raw in (BRIEF_CPF, BRIEF_EMAIL, BRIEF_PHONE, GEN_CPF, GEN_EMAIL, GEN_PHONE):
        assert raw not in written and raw not in facts and raw not in logs
        digits = "".join(ch for ch in raw if ch.isdigit())
        if digits:
            assert digits not in written.replace(" ", "") and digits not in facts
    sent = fake.sent_text()
    for raw in (BRIEF_CPF, BRIEF_EMAIL, BRIEF_PHONE):
        assert raw not in sent  # the brief's values never reached any model
    for model in (VISUAL, AUDIO, EDITOR):
        later = json.dumps([c.body for c in fake.chats(model)], ensure_ascii=False)
        for raw in (GEN_CPF, GEN_EMAIL, GEN_PHONE):
            assert raw not in later
    assert scene_brief.scenes is not None
    narration = " ".join(s.narration for s in scene_brief.scenes)
    assert "[telefone removido]" in narration and "[e-mail removido]" in narration and "[CPF removido]" in narration
    findings = result.guardrail_findings
    kinds = {(f["type"], f["where"].split(".")[0]) for f in findings}
    assert {("cpf", "brief"), ("email", "brief"), ("phone_br", "brief")} <= kinds
    assert {("cpf", "script"), ("email", "script"), ("phone_br", "script")} <= kinds
    assert all(f["action"] == "redact" for f in findings)


def test_the_safety_model_is_asked_through_the_gpu_lane_and_can_block(tmp_path: Path, fake: FakeOllama) -> None:
    """GIVEN guardrails with the content-safety model enabled WHEN the script is judged unsafe
    THEN the plan is blocked with the category named, after the brief was judged safe."""
    rules = yaml.safe_load(GUARDRAILS.read_text(encoding="utf-8"))
    rules["safety_model"]["enabled"] = True
    guard_file = tmp_path / "guardrails.yaml"
    guard_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    fake.add_model("llama-guard3:1b")
    fake.queue("llama-guard3:1b", Reply.text("safe"), Reply.text("safe"), Reply.text("unsafe\nS9"))
    lanes = Lanes(1, 4.0, 300)
    ctx = make_ctx(tmp_path, make_bundle(tmp_path), make_config(fake.url, guardrails=guard_file), lanes)
    with pytest.raises(GuardrailBlocked) as err:
        PlanStage().run(ctx)
    assert err.value.details["finding"]["type"] == "safety:S9"
    assert err.value.details["finding"]["where"] == "script"
    assert len(fake.chats("llama-guard3:1b")) == 3
    assert "ollama:llama-guard3:1b" in lanes.residency.loads


# -- doctor and small rules ---------------------------------------------------------------------


def test_doctor_lists_missing_models_with_pull_commands(fake: FakeOllama) -> None:
    """GIVEN Ollama without the audio producer's model WHEN `omad doctor` runs THEN Ollama is reported
    reachable and the missing model comes with its pull command."""
    fake.remove_model(AUDIO)
    checks = {name: (ok, detail) for name, ok, detail in doctor_checks(make_config(fake.url))}
    assert checks["ollama"] == (True, f"version 0.0.0-fake at {fake.url}")
    assert checks[f"ollama model {AUDIO}"] == (
        False,
        "missing: run `ollama pull mistral:7b-instruct` (used by audio_producer)",
    )
    assert checks[f"ollama model {SUPERVISOR}"][0] is True
    assert len(checks) == 6


def test_doctor_also_checks_the_guardrails_safety_model(tmp_path: Path, fake: FakeOllama) -> None:
    rules = yaml.safe_load(GUARDRAILS.read_text(encoding="utf-8"))
    rules["safety_model"]["enabled"] = True
    guard_file = tmp_path / "guardrails.yaml"
    guard_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    checks = {name: (ok, detail) for name, ok, detail in doctor_checks(make_config(fake.url, guard_file))}
    assert checks["ollama model llama-guard3:1b"] == (
        False,
        "missing: run `ollama pull llama-guard3:1b` (used by guardrails safety_model)",
    )


def test_doctor_reports_an_unreachable_ollama() -> None:
    port = free_port()
    [(name, ok, detail)] = doctor_checks(make_config(f"127.0.0.1:{port}"))
    assert name == "ollama" and not ok
    assert f"http://127.0.0.1:{port}" in detail and "ollama serve" in detail


@pytest.mark.parametrize(
    ("model", "gb"),
    [
        ("qwen2.5:3b-instruct", 2.5),
        ("mistral:7b-instruct", 4.5),
        ("phi3.5:3.8b-mini", 2.9),
        ("qwen2:1.5b", 1.75),
        ("gemma2:2b", 2.0),
        ("llama-guard3:1b", 1.5),
        ("llama3.1:70b-instruct-q4_K_M", 36.0),
        ("mistral", 4.5),
    ],
)
def test_vram_is_estimated_from_the_tag(model: str, gb: float) -> None:
    assert estimate_vram_gb(model) == gb


def test_configured_vram_wins_over_the_estimate() -> None:
    assert estimate_vram_gb("gemma2:2b", {"gemma2:2b": 3.3}) == 3.3


@pytest.mark.parametrize(
    ("host", "env", "url"),
    [
        ("", None, "http://127.0.0.1:11434"),
        ("", "10.0.0.5", "http://10.0.0.5:11434"),
        ("", "gpu-box:9999", "http://gpu-box:9999"),
        ("https://ollama.example.com", "10.0.0.5", "https://ollama.example.com:443"),
        ("http://[::1]:11434/", None, "http://[::1]:11434"),
    ],
)
def test_the_host_comes_from_config_then_ollama_host(
    monkeypatch: pytest.MonkeyPatch, host: str, env: str | None, url: str
) -> None:
    if env is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", env)
    assert ollama_host(make_config(host).llm) == url
