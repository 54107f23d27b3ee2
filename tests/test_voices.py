"""Choosing and hearing voices: `omad voices`, `omad voices say`, GET /api/voices, previews, the Create form."""

from __future__ import annotations

import json
import subprocess
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env, Running
from piper_tiny import install_voice

import omad.media.ffmpeg
from omad.cli import main
from omad.tts.voices import list_voices, voice_spec

pytest.importorskip("piper", reason="the omad[piper] extra is not installed")


def lufs(path: Path) -> float:
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60, check=True).stderr
    return float(err[err.rindex("Summary:"):].split("I:")[1].split("LUFS")[0])


def test_omad_voices_lists_installed_voices_and_says_a_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a two-speaker Piper voice installed in the state dir's models folder
    THEN `omad voices` lists it (engine, language, quality, size, rate, speakers) beside espeak's voice,
    and `omad voices say` writes a sample normalised like a narration."""
    state = tmp_path / "state"
    install_voice(state / "models", "pt_BR-duo-medium", speakers=2, sample_rate=22050)
    common = ["--state-dir", str(state), "--inbox", str(tmp_path / "in"), "--outbox", str(tmp_path / "out")]
    assert main(["voices", *common]) == 0
    table = capsys.readouterr().out
    assert "pt_BR-duo-medium" in table and "piper" in table and "speaker0, speaker1" in table
    assert "22050" in table and "espeak:pt-br" in table
    assert main(["voices", "--json", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    duo = next(v for v in listed if v["name"] == "pt_BR-duo-medium")
    assert duo["engine"] == "piper" and duo["language"] == "pt_BR" and duo["quality"] == "medium"
    assert duo["size_bytes"] > 0 and duo["speakers"] == ["speaker0", "speaker1"] and duo["licence"].startswith("MIT")
    out = tmp_path / "amostra.wav"
    ran: list[list[str]] = []
    real_run = omad.media.ffmpeg.run_ffmpeg

    def _run(args: Sequence[str], **kw: Any) -> Any:
        ran.append([str(a) for a in args])
        return real_run(args, **kw)

    monkeypatch.setattr(omad.media.ffmpeg, "run_ffmpeg", _run)
    assert main(["voices", "say", "pt_BR-duo-medium", "Olá, custa R$ 3,20.", "-o", str(out), *common]) == 0
    assert not any("loudnorm" in a for args in ran for a in args)  # in numpy, as the narrate stage does it
    assert "piper voice pt_BR-duo-medium" in capsys.readouterr().out
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == 22050 and w.getnchannels() == 1
    assert abs(lufs(out) - (-16.0)) < 0.2  # normalised in numpy, as a narration is: on the target
    assert main(["voices", "say", "pt_BR-jeff-medium", "oi", *common]) == 2
    assert "omad models pull piper:pt_BR-jeff-medium" in capsys.readouterr().err
    main(["doctor", *common])
    doctor = capsys.readouterr().out
    assert "tts: engine" in doctor and "piper (auto: the Piper voice pt_BR-duo-medium is installed" in doctor
    assert "piper: voices" in doctor and "1 in " in doctor


def test_the_form_value_of_a_voice_names_its_engine() -> None:
    assert voice_spec("espeak:pt-br") == {"engine": "espeak", "name": "pt-br"}
    assert voice_spec("pt_BR-faber-medium") == {"engine": "piper", "name": "pt_BR-faber-medium"}
    assert voice_spec("pt-br") == {"name": "pt-br"}


def test_api_voices_and_a_preview_made_once_then_cached(make_env: Callable[..., Env]) -> None:
    """GIVEN a served daemon with a Piper voice installed
    THEN /api/voices lists it with a sample URL, the sample is a WAV made on demand and kept in the state dir,
    an unknown name is 404, and the Create form offers the installed voices."""
    env = make_env(web={"enabled": True, "port": 0}, lanes={"cpu": 1})
    install_voice(env.config.models_dir(), "pt_BR-tiny-medium")
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        voices = c.get("/api/voices").json()["voices"]
        tiny = next(v for v in voices if v["name"] == "pt_BR-tiny-medium")
        assert tiny["sample_url"] == "/voices/pt_BR-tiny-medium/sample.wav"
        first = c.get(tiny["sample_url"])
        assert first.status_code == 200 and first.content[:4] == b"RIFF"
        cached = list((env.state / "voice-samples").glob("*.wav"))
        assert len(cached) == 1
        made = cached[0].stat().st_mtime_ns
        assert c.get(tiny["sample_url"]).content == first.content
        assert cached[0].stat().st_mtime_ns == made  # served from the cache, not spoken again
        assert c.get("/voices/..%2Fetc/sample.wav").status_code == 404
        assert c.get("/voices/pt_BR-other-medium/sample.wav").status_code == 404
        page = c.get("/voices").text
        assert 'data-voice="pt_BR-tiny-medium"' in page and "<audio" in page
        assert 'href="/voices"' in c.get("/").text
        form = c.get("/create").text
        assert '<option value="pt_BR-tiny-medium">' in form and '<option value="espeak:pt-br">' in form
    assert [v.name for v in list_voices(env.config)] == ["pt_BR-tiny-medium", "espeak:pt-br"]
