"""F5 narration through real drops: the daemon, the GPU lane and omad's loader on a tiny checkpoint."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env

from omad.media.subtitles import read_srt
from omad.tts.f5.imports import f5_available

pytestmark = [pytest.mark.f5, pytest.mark.skipif(not f5_available(), reason="omad[f5] extra not installed")]

REF_TEXT = "Olá, esta é a minha voz de referência."


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import f5_tiny as ft

    d = tmp_path_factory.mktemp("f5drop")
    n = ft.write_vocab(d / "vocab.txt")
    model = ft.build_model(ft.tiny_shape(n))
    ref = d / "voz.wav"
    subprocess.run(["espeak-ng", "-v", "pt-br", "-w", str(ref), REF_TEXT], check=True, capture_output=True)
    return {
        "vocab": d / "vocab.txt",
        "checkpoint": ft.save_checkpoint(model, d / "model_last.safetensors", "safetensors"),
        "vocoder": ft.write_vocos(d / "vocos"),
        "reference": ref,
    }


def f5_env(make_env: Callable[..., Env], kit: dict[str, Path]) -> Env:
    return make_env(
        video={"preset": "custom", "width": 320, "height": 180, "fps": 10, "x264_preset": "ultrafast"},
        tts={"engine": "f5", "f5": {"checkpoint": str(kit["checkpoint"]), "vocab": str(kit["vocab"]),
                                    "vocoder": str(kit["vocoder"]), "nfe_step": 4,
                                    "reference": {"audio": str(kit["reference"]), "text": REF_TEXT}}},
    )


def test_text_drop_is_narrated_by_f5_on_the_gpu_lane(make_env: Callable[..., Env], kit: dict[str, Path]) -> None:
    """GIVEN tts.engine: f5 with a user's checkpoint, vocab, vocoder and reference voice
    WHEN a pt-BR .txt is dropped
    THEN a 24 kHz WAV of plausible length and an SRT come out, the stage ran on the GPU lane, and the
    record says F5 ran without CUDA (slow) and gives its real-time factor."""
    env = f5_env(make_env, kit)
    (env.inbox / "aviso.txt").write_text("Bom dia a todos. O relatório está pronto.", encoding="utf-8")
    assert env.once(max_wait=300) == 0
    with wave.open(str(env.outbox / "aviso.wav")) as w:
        assert w.getframerate() == 24000
        seconds = w.getnframes() / w.getframerate()
    assert 0.8 < seconds < 15.0
    cues, _ = read_srt(env.outbox / "aviso.srt", "aviso.srt")
    assert [c.text for c in cues] == ["Bom dia a todos.", "O relatório está pronto."]
    side = env.sidecar("aviso")
    stage = side["stages"][0]
    assert stage["lane"] == "gpu" and stage["facts"]["engine"] == "f5"
    assert stage["facts"]["tts"]["rtf"] > 0
    assert any("CPU" in w for w in side["warnings"])
    assert side["cost"]["gpu_seconds"] > 0


def test_scene_brief_brings_its_own_reference_voice(make_env: Callable[..., Env], kit: dict[str, Path]) -> None:
    env = f5_env(make_env, kit)
    staging = env.root / "staging" / "voz-propria"
    staging.mkdir(parents=True)
    (staging / "minha-voz.wav").write_bytes(kit["reference"].read_bytes())
    (staging / "brief.yaml").write_text(
        "version: 1\nkind: video\nvoice:\n  engine: f5\n  reference_audio: minha-voz.wav\n"
        f"  reference_text: \"{REF_TEXT}\"\nscenes:\n  - title: Olá\n    narration: Uma frase curta.\n",
        encoding="utf-8")
    staging.rename(env.inbox / "voz-propria")
    assert env.once(max_wait=300) == 0
    side = env.sidecar("voz-propria")
    voice = next(s for s in side["stages"] if s["name"] == "voice")
    assert voice["lane"] == "gpu"
    assert (env.outbox / "voz-propria.mp4").exists()


def test_missing_checkpoint_fails_naming_the_config_key(make_env: Callable[..., Env], kit: dict[str, Path],
                                                        tmp_path: Path) -> None:
    env = make_env(tts={"engine": "f5", "f5": {"checkpoint": str(tmp_path / "nope.safetensors"),
                                               "vocab": str(kit["vocab"]), "vocoder": str(kit["vocoder"]),
                                               "reference": {"audio": str(kit["reference"]), "text": REF_TEXT}}})
    (env.inbox / "x.txt").write_text("Oi.", encoding="utf-8")
    assert env.once(max_wait=120) == 1
    msg = env.failed_error("x")["message"]
    assert "tts.f5.checkpoint" in msg and "nope.safetensors" in msg


def test_cpu_bf16_option_runs_in_bf16(make_env: Callable[..., Env], kit: dict[str, Path]) -> None:
    env = f5_env(make_env, kit)
    env.config.tts.f5.cpu_bf16 = True
    (env.inbox / "b.txt").write_text("Uma frase em bf16.", encoding="utf-8")
    assert env.once(max_wait=300) == 0
    facts = env.sidecar("b")["stages"][0]["facts"]
    assert facts["dtype"] == "bf16" and facts["device"] == "cpu"
