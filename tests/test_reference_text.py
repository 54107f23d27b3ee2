"""An F5 reference with no transcript: Whisper writes it, and the clip is cut at a sentence end within 12 s."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from conftest import ffmpeg
from whisper_tiny import base_whisper, models_with, piper_speech  # noqa: F401  (a session fixture)

from omad.asr import Word
from omad.config import Config
from omad.tts.reference_text import cut_point, transcribe_reference


def w(text: str, start: float, end: float) -> Word:
    return Word(start, end, text, 0.9)


def test_the_cut_prefers_a_sentence_end_then_a_clause_end_within_the_limit() -> None:
    words = [w("Bom", 0.5, 0.8), w("dia.", 0.8, 1.2), w("Hoje,", 1.4, 1.8), w("falamos", 1.9, 2.4),
             w("do", 2.4, 2.5), w("porto.", 2.5, 3.0)]
    assert cut_point(words, 12.0) == 6
    assert cut_point(words, 2.0) == 2  # "Bom dia." ends 0.85 s after speech starts (with its tail)
    assert cut_point([w("Hoje,", 1.0, 1.5), w("falamos", 1.6, 2.2), w("muito", 2.2, 9.0)], 3.0) == 1
    assert cut_point([w("um", 0.0, 0.4), w("dois", 0.5, 0.9), w("tres", 1.0, 9.0)], 3.0) == 2
    assert cut_point([], 12.0) == 0


@pytest.mark.slow
def test_a_long_reference_is_cut_after_the_last_sentence_that_fits(tmp_path: Path,
                                                                   base_whisper: Path) -> None:  # noqa: F811
    """GIVEN more than 12 s of real speech (the Piper joe voice) in four sentences
    THEN the reference ends after the last sentence that fits in 12 s, and its text is those sentences."""
    text = ("The harbor was quiet this morning, and the gulls were resting on the old stone wall. "
            "Seven boats came back before noon with their nets full of silver fish. "
            "By the afternoon the fishermen had sold everything at the market near the church. "
            "In the evening the whole town gathered by the water to watch the sun go down.")
    speech = piper_speech(tmp_path / "ref.wav", text)
    with wave.open(str(speech)) as f:
        assert f.getnframes() / f.getframerate() > 12.0
    cfg = Config.model_validate({"models": {"dir": str(models_with(tmp_path / "models", base=base_whisper))},
                                 "tts": {"language": "en"}})
    got = transcribe_reference(cfg, None, speech, tmp_path, max_seconds=12.0, timeout=120, label="ref.wav")
    assert got.text.endswith(".") and got.text.startswith("The harbor") and "evening" not in got.text
    assert got.facts["cut_at"] == "sentence end" and got.facts["words_left_out"] > 5
    cut = tmp_path / "cut16.wav"
    ffmpeg("-i", str(got.audio), "-ar", "16000", str(cut))
    with wave.open(str(cut)) as f:
        assert f.getnframes() / f.getframerate() <= 12.5
