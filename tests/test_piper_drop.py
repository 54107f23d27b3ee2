"""Piper through the daemon: a narrate drop and a two-voice scene video, with the voices built in piper_tiny."""

from __future__ import annotations

import json
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env
from piper_tiny import install_voice

from omad.media.subtitles import read_srt

pytest.importorskip("piper", reason="the omad[piper] extra is not installed")

TEXT = "Hoje o menino comprou pão por R$ 12,50. Depois ele foi para a escola com a irmã."


def loudness(path: Path) -> float:
    """Integrated loudness (LUFS) as ffmpeg's ebur128 measures it."""
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60, check=True).stderr
    summary = err[err.rindex("Summary:"):]
    return float(summary.split("I:")[1].split("LUFS")[0])


def test_a_text_drop_is_narrated_by_the_installed_piper_voice(make_env: Callable[..., Env]) -> None:
    """GIVEN the default configuration (tts.engine: auto) and a Piper voice installed in the models folder
    WHEN talk.txt is dropped and omad runs once
    THEN talk.wav is Piper's voice at its own rate, loudness-normalised to -16 LUFS, talk.srt is timed word by
    word from the voice, and the sidecar says Piper was chosen and why."""
    env = make_env()
    assert env.config.tts.engine == "auto"
    install_voice(env.config.models_dir(), "pt_BR-tiny-medium", sample_rate=16000)
    (env.inbox / "talk.txt").write_text(TEXT, encoding="utf-8")
    assert env.once() == 0
    record = env.sidecar("talk")
    stage = record["stages"][-1]
    facts = stage["facts"]
    assert facts["engine"] == "piper" and facts["voice"] == "pt_BR-tiny-medium"
    assert facts["engine_choice"]["engine"] == "piper"
    assert "pt_BR-tiny-medium is installed" in facts["engine_choice"]["why"]
    assert facts["caption_timing"] == "word: engine word events"
    # the voice read the pt-BR expansion ("doze reais e cinquenta centavos"); captions keep the text as written
    assert facts["characters_spoken"] > facts["characters_written"]
    assert facts["tts"]["engine"] == "piper" and facts["tts"]["voice"] == "pt_BR-tiny-medium"
    with wave.open(str(env.outbox / "talk.wav"), "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1
    assert abs(loudness(env.outbox / "talk.wav") - env.config.audio.loudness_lufs) < 1.0
    cues, _ = read_srt(env.outbox / "talk.srt", "talk.srt")
    assert " ".join(c.text for c in cues).split() == TEXT.split()
    assert cues[0].start < 0.2 and all(b.start >= a.end for a, b in zip(cues, cues[1:], strict=False))


def test_a_brief_naming_a_voice_that_is_not_installed_fails_with_the_pull_command(
        make_env: Callable[..., Env]) -> None:
    env = make_env()
    install_voice(env.config.models_dir(), "pt_BR-tiny-medium")
    (env.inbox / "aviso.yaml").write_text("version: 1\nkind: narrate\ntext: Olá a todos.\n"
                                          "voice:\n  engine: piper\n  name: pt_BR-jeff-medium\n", encoding="utf-8")
    env.once()
    error = env.failed_error("aviso")
    assert "omad models pull piper:pt_BR-jeff-medium" in error["message"]
    assert error["attempts"] == 1  # the drop is at fault: not retried


@pytest.mark.slow
def test_a_scene_video_has_two_speakers(make_env: Callable[..., Env]) -> None:
    """GIVEN two Piper voices (16 and 22.05 kHz) and a scene brief whose second scene names the other voice
    (and a speaker of it) and whose third names espeak-ng's
    WHEN omad runs once
    THEN the video is made, each scene is spoken by its voice, and the word-highlight captions follow them."""
    env = make_env(video={"preset": "custom", "width": 320, "height": 240, "fps": 10, "x264_preset": "ultrafast"})
    install_voice(env.config.models_dir(), "pt_BR-ana-medium", sample_rate=16000)
    install_voice(env.config.models_dir(), "pt_BR-beto-medium", sample_rate=22050, speakers=2)
    brief = {
        "version": 1, "kind": "video", "caption": {"style": "word_highlight"},
        "voice": {"engine": "piper", "name": "pt_BR-ana-medium"},
        "scenes": [
            {"title": "Um", "narration": "Bom dia a todos.", "background": "#000000"},
            {"title": "Dois", "narration": "E boa tarde para você.", "background": "#000000",
             "voice": {"name": "pt_BR-beto-medium", "speaker": "speaker1"}},
            {"title": "Três", "narration": "Até logo, e obrigado por assistir ao nosso vídeo.",
             "background": "#000000", "voice": "espeak:pt-br"},
        ],
    }
    (env.inbox / "dupla.json").write_text(json.dumps(brief), encoding="utf-8")
    assert env.once() == 0
    record = env.sidecar("dupla")
    voice_stage = next(s for s in record["stages"] if s["name"] == "voice")
    spoken = voice_stage["facts"]["tts"]
    assert [t["voice"] for t in spoken] == ["pt_BR-ana-medium", "pt_BR-beto-medium", "pt-br"]
    assert [t["engine"] for t in spoken] == ["piper", "piper", "espeak"]
    render = next(s for s in record["stages"] if s["name"] == "render")["facts"]
    assert render["captions_word_highlighted"] == render["captions"] >= 2
    assert (env.outbox / "dupla.mp4").stat().st_size > 0
    cues, _ = read_srt(env.outbox / "dupla.srt", "dupla.srt")
    assert " ".join(" ".join(c.text.split()) for c in cues) == (
        "Bom dia a todos. E boa tarde para você. Até logo, e obrigado por assistir ao nosso vídeo.")


@pytest.mark.slow
def test_an_agent_video_speaks_with_the_installed_piper_voice(make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a Piper voice installed and a prompt brief the agents (the fake Ollama) turn into scenes
    THEN the voice stage narrates every scene with Piper, chosen by tts.engine auto."""
    from fake_ollama import FakeOllama
    from test_agent_video import BRIEF, SMALL, drop_bundle

    with FakeOllama() as fake:
        env = make_env(video=SMALL, llm={"host": fake.url, "remote": False})
        install_voice(env.config.models_dir(), "pt_BR-tiny-medium")
        drop_bundle(env, BRIEF)
        assert env.once(max_wait=120) == 0
    voice = next(s for s in env.sidecar("abelhas")["stages"] if s["name"] == "voice")
    spoken = voice["facts"]["tts"]
    spoken = spoken if isinstance(spoken, list) else [spoken]
    assert spoken and all(t["engine"] == "piper" and t["voice"] == "pt_BR-tiny-medium" for t in spoken)
    assert "pt_BR-tiny-medium is installed" in spoken[0]["engine_choice"]["why"]
