"""The Piper engine on a tiny voice built here, loaded through the real piper-tts and ONNX Runtime."""

from __future__ import annotations

import inspect
import os
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from piper_tiny import expected_onsets, install_voice, write_voice

from omad.config import Config
from omad.errors import ConfigError, InputError, OmadError, StageFailed, ToolMissing, TransientError
from omad.tts import Voice, engine_for
from omad.tts.choice import choose_engine
from omad.tts.narration import narrate_text
from omad.tts.piper import LOAD_ERRORS, RETRY_ERRORS, RUN_ERRORS, PiperEngine, VoiceCache, map_error
from omad.tts.piper_files import installed_voices, resolve_voice

pytest.importorskip("piper", reason="the omad[piper] extra is not installed")

TEXT = "o menino comprou doze reais de pão. tudo bem com ela?"


def config(tmp_path: Path, **tts: object) -> Config:
    return Config.model_validate({"state_dir": str(tmp_path / "state"), "tts": tts})


def test_a_voice_speaks_into_a_wav_with_its_words_timed_exactly(tmp_path: Path) -> None:
    """GIVEN a tiny pt-BR voice installed where `omad models pull` puts voices
    WHEN the piper engine speaks a text of two sentences
    THEN the WAV is 16-bit mono at the voice's rate and every word starts where the voice's durations put it."""
    cfg = config(tmp_path, engine="piper")
    install_voice(cfg.models_dir())
    engine = engine_for(cfg)
    assert isinstance(engine, PiperEngine) and engine.lane == "cpu"
    out = engine.synthesize(TEXT, None, tmp_path / "speech.wav")
    with wave.open(str(out.path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert abs(w.getnframes() / 16000 - out.duration) < 1e-9
    assert out.facts["engine"] == "piper" and out.facts["voice"] == "pt_BR-tiny-medium"
    assert out.facts["alignment"] == "voice"
    assert out.words is not None
    assert [w.text for w in out.words] == TEXT.split()
    reference = expected_onsets(TEXT)
    assert len(reference) == len(out.words)
    errors = [abs(w.start - r) for w, r in zip(out.words, reference, strict=True)]
    assert max(errors) < 1e-6, errors
    assert all(w.end > w.start for w in out.words)


def test_speed_speaker_and_noise_reach_the_voice(tmp_path: Path) -> None:
    """Speed divides the length scale (a faster voice is shorter), a speaker changes the sound, noise the level."""
    cfg = config(tmp_path, engine="piper")
    install_voice(cfg.models_dir(), "pt_BR-two-medium", speakers=2)
    engine = PiperEngine(cfg)
    normal = engine.synthesize(TEXT, Voice(name="pt_BR-two-medium"), tmp_path / "a.wav")
    fast = engine.synthesize(TEXT, Voice(name="pt_BR-two-medium", speed=2.0), tmp_path / "b.wav")
    assert fast.duration < 0.6 * normal.duration
    assert fast.facts["length_scale"] == 0.5
    assert fast.words is not None
    assert max(abs(w.start - r) for w, r in zip(fast.words, expected_onsets(TEXT, 0.5), strict=True)) < 1e-6

    def samples(path: Path) -> np.ndarray:
        with wave.open(str(path), "rb") as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")

    other = engine.synthesize(TEXT, Voice(name="pt_BR-two-medium", speaker="speaker1"), tmp_path / "c.wav")
    assert other.facts["speaker"] == 1 and normal.facts["speaker"] == 0
    assert not np.array_equal(samples(other.path), samples(normal.path))
    with pytest.raises(InputError, match="no speaker 'nobody'.*speaker0, speaker1"):
        engine.synthesize(TEXT, Voice(name="pt_BR-two-medium", speaker="nobody"), tmp_path / "d.wav")
    # piper-tts peak-normalises each sentence; the variation options still reach the model's scales input
    quiet = engine.synthesize(TEXT, Voice(name="pt_BR-two-medium", noise_scale=0.0), tmp_path / "e.wav")
    assert quiet.facts["noise_scale"] == 0.0


def test_a_voice_without_alignment_output_is_aligned_by_the_narration(tmp_path: Path) -> None:
    """GIVEN a voice whose durations cannot be exposed (no Ceil tensor for piper-tts to patch)
    THEN the engine gives no word times and the narration times the words with omad's aligner."""
    cfg = config(tmp_path, engine="piper")
    install_voice(cfg.models_dir(), ceil=False)
    engine = PiperEngine(cfg)
    out = engine.synthesize(TEXT, None, tmp_path / "s.wav")
    assert out.words is None and out.facts["alignment"] == "none"
    narration = narrate_text(TEXT, engine, None, tmp_path / "work", max_chunk_chars=300, pause_seconds=0.25,
                             timeout=120, label="talk.txt")
    assert narration.facts["caption_timing"] == "word: aligned to espeak (DTW)"
    assert [w.text for w in narration.words] == TEXT.split()


def test_a_voice_exported_with_alignment_output_is_timed_from_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, engine="piper")
    install_voice(cfg.models_dir(), alignment=True)
    out = PiperEngine(cfg).synthesize(TEXT, None, tmp_path / "s.wav")
    assert out.words is not None and out.facts["alignment"] == "voice"


def test_the_voice_stays_resident_between_jobs_and_is_dropped_when_idle(tmp_path: Path) -> None:
    """One load for many syntheses; a sweep past the idle time drops it; a voice pulled again is reloaded."""
    cfg = config(tmp_path, engine="piper", piper={"idle_unload_seconds": 60})
    onnx = install_voice(cfg.models_dir())
    cache = VoiceCache()
    first = PiperEngine(cfg, cache).synthesize(TEXT, None, tmp_path / "1.wav")
    second = PiperEngine(cfg, cache).synthesize(TEXT, None, tmp_path / "2.wav")
    assert cache.loads == 1 and first.facts["model_loaded"] and not second.facts["model_loaded"]
    assert cache.sweep() == []  # just used: stays
    assert cache.resident() == [str(onnx.resolve())]
    import time

    assert cache.sweep(now=time.monotonic() + 61) == [str(onnx.resolve())]
    assert cache.resident() == []
    PiperEngine(cfg, cache).synthesize(TEXT, None, tmp_path / "3.wav")
    assert cache.loads == 2
    stat = onnx.stat()
    os.utime(onnx, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))  # the voice was pulled again
    PiperEngine(cfg, cache).synthesize(TEXT, None, tmp_path / "4.wav")
    assert cache.loads == 3 and len(cache.resident()) == 1


def test_missing_voices_and_the_missing_package_say_what_to_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, engine="piper")
    with pytest.raises(ConfigError, match=r"no Piper voice is installed.*omad models pull piper:pt_BR-faber-medium"):
        PiperEngine(cfg).synthesize(TEXT, None, tmp_path / "s.wav")
    with pytest.raises(InputError, match=r"'pt_BR-jeff-medium' \(voice.name in the brief\) is not installed.*"
                       r"omad models pull piper:pt_BR-jeff-medium"):
        PiperEngine(cfg).synthesize(TEXT, Voice(name="pt_BR-jeff-medium"), tmp_path / "s.wav")
    named = config(tmp_path, engine="piper", piper={"voice": "pt_BR-cadu-medium"})
    with pytest.raises(ConfigError, match=r"\(tts.piper.voice\) is not installed"):
        PiperEngine(named).synthesize(TEXT, None, tmp_path / "s.wav")
    onnx = install_voice(cfg.models_dir())
    onnx.with_name(onnx.name + ".json").unlink()
    with pytest.raises(ConfigError, match="has no pt_BR-tiny-medium.onnx.json"):
        resolve_voice(cfg, "pt_BR-tiny-medium")
    assert installed_voices(cfg) == []
    install_voice(cfg.models_dir())
    monkeypatch.setitem(sys.modules, "piper", None)  # as if the extra were not installed
    with pytest.raises(ToolMissing, match=r"pip install -e '\.\[piper\]'"):
        PiperEngine(cfg, VoiceCache()).synthesize(TEXT, None, tmp_path / "s.wav")


def test_a_damaged_voice_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, engine="piper")
    onnx = install_voice(cfg.models_dir())
    onnx.write_bytes(b"not an onnx model")
    with pytest.raises(ConfigError, match="is not a Piper voice omad can load") as caught:
        PiperEngine(cfg, VoiceCache()).synthesize(TEXT, None, tmp_path / "s.wav")
    assert caught.value.file is not None and "pt_BR-tiny-medium.onnx" in caught.value.file
    assert caught.value.__cause__ is not None


def test_every_onnxruntime_exception_class_is_mapped() -> None:
    """GIVEN every exception class ONNX Runtime defines THEN each has a policy here: a new one breaks this test."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    classes = {n for n, v in vars(state).items() if inspect.isclass(v) and issubclass(v, BaseException)}
    known = set(LOAD_ERRORS) | set(RUN_ERRORS) | set(RETRY_ERRORS)
    assert not sorted(classes - known), f"Unmapped onnxruntime exceptions: {sorted(classes - known)}"
    voice = Path("v.onnx")
    for name in sorted(classes):
        exc = getattr(state, name)("boom")
        for loading in (True, False):
            mapped = map_error(exc, voice, loading=loading)
            assert isinstance(mapped, OmadError) and "v.onnx" in str(mapped)
            if name in RETRY_ERRORS:
                assert isinstance(mapped, TransientError)
    assert isinstance(map_error(MemoryError(), voice, loading=False), TransientError)
    assert isinstance(map_error(RuntimeError("x"), voice, loading=False), StageFailed)
    assert isinstance(map_error(KeyError("num_symbols"), voice, loading=True), ConfigError)


def test_auto_picks_piper_when_a_voice_is_installed_and_says_why(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert cfg.tts.engine == "auto"
    chosen = choose_engine(cfg)
    assert chosen.engine == "espeak" and "no Piper voice is installed" in chosen.why
    assert "no F5 checkpoint" in chosen.why
    install_voice(cfg.models_dir(), "en_US-tiny-low", language="en_US", espeak_voice="en-us", quality="low")
    install_voice(cfg.models_dir(), "pt_BR-tiny-medium")
    chosen = choose_engine(cfg)
    assert chosen.engine == "piper" and "pt_BR-tiny-medium" in chosen.why  # the voice of tts.language
    assert isinstance(engine_for(cfg), PiperEngine)
    assert choose_engine(cfg, "espeak").engine == "espeak"
    # a brief naming a voice but no engine: the voice says which engine (old briefs with pt-br keep espeak)
    assert choose_engine(cfg, None, "pt-br").engine == "espeak"
    assert choose_engine(cfg, None, "pt_BR-cadu-medium").engine == "piper"
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"x")
    with_f5 = config(tmp_path, f5={"checkpoint": str(ckpt)})
    chosen = choose_engine(with_f5)
    from omad.tts.choice import cuda_available

    assert chosen.engine == ("f5" if cuda_available() else "piper")
    if not cuda_available():
        assert "no CUDA GPU" in chosen.why
    espeak = choose_engine(config(tmp_path, engine="espeak"))
    assert espeak.engine == "espeak" and espeak.why == "tts.engine is 'espeak'"


def test_a_voice_by_path_needs_its_json_beside_it(tmp_path: Path) -> None:
    onnx = write_voice(tmp_path / "voices", "pt_BR-loose-x_low", quality="x_low")
    cfg = config(tmp_path, engine="piper", piper={"voice": str(onnx)})
    out = PiperEngine(cfg).synthesize("olá", None, tmp_path / "s.wav")
    assert out.facts["voice"] == "pt_BR-loose-x_low"
    with pytest.raises(InputError, match="by a path"):
        PiperEngine(cfg).synthesize("olá", Voice(name=str(onnx)), tmp_path / "s.wav")


def test_words_espeak_joined_are_shared_by_their_phonemes() -> None:
    """GIVEN a sentence where espeak made one phonetic word of two ("for a" -> "fɚɹə")
    THEN both tokens get times inside that word's span, split by their own phoneme counts,
    and without a phonemizer to match them the alignment is not trusted at all."""
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP, phonemes_to_ids

    from omad.tts.piper_timing import SentenceAlignment, words_from_alignment

    phonemes = list("fɚɹə kˈæt.")
    ids = phonemes_to_ids(phonemes, DEFAULT_PHONEME_ID_MAP)
    samples = [100 if i != DEFAULT_PHONEME_ID_MAP["_"][0] else 0 for i in ids]
    sentence = SentenceAlignment(phonemes, ids, samples, offset=1000)
    own = {"for": list("fɔːɹ"), "a": ["ə"], "cat": list("kˈæt")}
    assert words_from_alignment("for a cat.", [sentence], DEFAULT_PHONEME_ID_MAP, 1000) is None
    words = words_from_alignment("for a cat.", [sentence], DEFAULT_PHONEME_ID_MAP, 1000,
                                 phonemize=lambda token: own[token.strip(".")])
    assert words is not None and [w.text for w in words] == ["for", "a", "cat."]
    first_sample = 1000 + 100  # the chunk's offset, then BOS (its PAD takes no samples here)
    assert words[0].start == first_sample / 1000
    assert words[1].start == (first_sample + 300) / 1000  # "for" weighs 3 phonemes of the joined word's 4
    assert words[1].end == (first_sample + 400) / 1000
    assert words[2].start == (first_sample + 500) / 1000  # after the 4 phonemes and the space
