"""Speech recognition: the engine's real loading path (a tiny Whisper), residency, errors, filters, caption files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import ffmpeg
from whisper_tiny import models_with, tiny_whisper  # noqa: F401  (a session fixture)

from omad.asr import AsrRequest, DropReason, Segment, Transcript, Word, engine_for
from omad.asr.captions import transcript_cues, write_txt, write_vtt
from omad.asr.filters import drop_warnings, judge, split_invented
from omad.asr.whisper import map_error
from omad.config import AsrConfig, Config
from omad.errors import Cancelled, ConfigError, InputError, StageFailed, ToolMissing, TransientError
from omad.lanes import Lanes
from omad.text.caption_layout import LayoutRules


def noise(path: Path, seconds: float = 3.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:a=0.2", "-ar", "16000", "-ac", "1",
           "-c:a", "pcm_s16le", str(path))
    return path


def config(tmp_path: Path, model_dir: Path, **asr: object) -> Config:
    root = models_with(tmp_path / "models", **{"tiny-test": model_dir})
    return Config.model_validate({"models": {"dir": str(root)},
                                  "asr": {"model": "tiny-test", "vad": False, "beam_size": 1, **asr}})


def test_the_engine_loads_a_real_whisper_and_keeps_it_resident(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    """GIVEN a tiny Whisper in models_dir/whisper/tiny-test and the daemon's lanes
    WHEN two recordings are transcribed
    THEN the model loads once (a CPU resident: no VRAM), progress counts audio seconds up to the total,
    and the transcript has words with times inside the audio and a detected language."""
    cfg = config(tmp_path, tiny_whisper, language="auto")
    lanes = Lanes(1, vram_budget_gb=4.0)
    engine = engine_for(cfg, lanes)
    wav = noise(tmp_path / "n.wav")
    seen: list[tuple[float, float]] = []
    first = engine.transcribe(wav, AsrRequest(), progress=lambda d, t: seen.append((d, t)))
    second = engine_for(cfg, lanes).transcribe(wav, AsrRequest())
    assert lanes.residency.loads == {next(iter(lanes.residency.loads)): 1}
    assert lanes.residency.used_gb() == 0.0
    assert seen[-1] == (3.0, 3.0) and all(0 <= d <= t for d, t in seen)
    assert first.facts["model_loaded"] is True and second.facts["model_loaded"] is False
    assert first.duration == 3.0 and first.facts["compute_type"] == "int8" and first.facts["device"] == "cpu"
    assert first.language and 0 < first.language_probability <= 1
    for w in first.words:
        assert 0 <= w.start <= w.end <= 3.0 + 1e-3 and 0 <= w.probability <= 1


def test_a_missing_model_names_the_pull_command(tmp_path: Path) -> None:
    cfg = Config.model_validate({"models": {"dir": str(tmp_path / "models")}})
    with pytest.raises(ToolMissing) as err:
        engine_for(cfg).transcribe(noise(tmp_path / "n.wav"), AsrRequest())
    assert "omad models pull whisper-base" in str(err.value)


def test_a_damaged_model_is_a_config_error_naming_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"not a model")
    (folder / "config.json").write_text("{}")
    cfg = config(tmp_path, folder)
    with pytest.raises(ConfigError) as err:
        engine_for(cfg).transcribe(noise(tmp_path / "n.wav"), AsrRequest())
    assert "cannot be loaded" in str(err.value) and "omad models pull" in str(err.value)


def test_cancel_stops_between_segments(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    cfg = config(tmp_path, tiny_whisper, language="en")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine_for(cfg).transcribe(noise(tmp_path / "n.wav", 4.0), AsrRequest(), cancel=cancel)


def test_an_unknown_language_is_refused_before_loading(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    cfg = config(tmp_path, tiny_whisper)
    with pytest.raises(InputError, match="klingon"):
        engine_for(cfg).transcribe(noise(tmp_path / "n.wav"), AsrRequest(language="klingon"))


def test_library_errors_are_mapped_by_kind() -> None:
    folder = Path("/models/whisper/base")
    assert isinstance(map_error(RuntimeError("CUDA failed with error out of memory"), folder=folder, loading=False),
                      TransientError)
    assert isinstance(map_error(MemoryError(), folder=folder, loading=True), TransientError)
    bad_type = map_error(ValueError("Requested float16 compute type, but the target device or backend do not "
                                    "support efficient float16 computation."), folder=folder, loading=True)
    assert isinstance(bad_type, ConfigError) and bad_type.details["key"] == "asr.compute_type"
    assert isinstance(map_error(RuntimeError("Unable to open file 'model.bin'"), folder=folder, loading=True),
                      ConfigError)
    assert isinstance(map_error(RuntimeError("boom"), folder=folder, loading=False), StageFailed)
    assert isinstance(map_error(ValueError("bad option"), folder=folder, loading=False), InputError)


def seg(text: str, start: float = 0.0, end: float = 2.0, **kw: float) -> Segment:
    return Segment(start, end, text, [Word(start, end, t, 0.9) for t in text.split()], **kw)


def test_invented_segments_are_dropped_and_named() -> None:
    """GIVEN segments Whisper wrote on silence and music
    THEN the known phrases (any case, accents or punctuation), loops and no-speech segments are dropped
    with their reason, and real speech that merely contains a common word is kept."""
    cfg = AsrConfig()
    assert judge(seg("Legendas pela comunidade Amara.org"), cfg) is DropReason.KNOWN_HALLUCINATION
    assert judge(seg("obrigado POR assistir!"), cfg) is DropReason.KNOWN_HALLUCINATION
    assert judge(seg("Inscreva-se no canal e ative o sininho"), cfg) is None  # more than the phrase: speech
    assert judge(seg("sim", no_speech_prob=0.9, avg_logprob=-1.5), cfg) is DropReason.NO_SPEECH
    assert judge(seg("sim", no_speech_prob=0.9, avg_logprob=-0.2), cfg) is None  # sure of its words: kept
    assert judge(seg("la la la", compression_ratio=3.1), cfg) is DropReason.REPETITIVE
    kept, dropped = split_invented([seg("Bom dia a todos."), seg("Obrigado por assistir.", 5.0, 7.0)], cfg)
    assert [s.text for s in kept] == ["Bom dia a todos."]
    [warning] = drop_warnings(dropped, "talk.mp4")
    assert warning.startswith("talk.mp4: left out 'Obrigado por assistir.' at 5.0-7.0 s")


def test_captions_from_words_follow_the_layout_and_the_files_are_readable(tmp_path: Path) -> None:
    words = "Hoje vamos falar sobre o porto de Santos, que recebe 300 navios por mês e emprega milhares de pessoas."
    tokens = words.split()
    wl = [Word(i * 0.35, i * 0.35 + 0.3, t, 0.9) for i, t in enumerate(tokens)]
    late = Word(20.0, 20.5, "Fim.", 0.9)
    transcript = Transcript("pt", 0.98, 22.0, 8.0, [Segment(0.0, wl[-1].end, words, wl), Segment(20.0, 20.5, "Fim.",
                                                                                                [late])])
    cues, timed = transcript_cues(transcript, LayoutRules())
    assert len(timed) == len(tokens) + 1
    assert "300" in " ".join(c.text for c in cues)  # numbers stay as Whisper wrote them
    for c in cues:
        assert all(len(line) <= 42 for line in c.text.split("\n")) and c.text.count("\n") <= 1
        assert c.end - c.start <= 7.0
    assert cues[-1].text == "Fim." and cues[-1].start == 20.0  # no caption across the long pause
    vtt = write_vtt(cues, tmp_path / "t.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    txt = write_txt(transcript, tmp_path / "t.txt").read_text()
    assert txt == words + "\n\nFim.\n"


def test_transcript_round_trips_through_json() -> None:
    t = Transcript("en", 0.9, 3.0, 2.0, [seg("hello there")], [], "base", {"rtf": 0.2})
    again = Transcript.from_dict(t.to_dict())
    assert again == t and again.speech_share == pytest.approx(0.667)


def test_asr_settings_travel_to_workers_without_host_paths() -> None:
    """GIVEN a daemon whose Whisper model is a path on its own disk
    THEN a task carries the language, VAD and hallucination list, never the model, its device or models.dir,
    and a worker keeps its own model."""
    from omad.cluster.task import merged_config, task_settings

    daemon = Config.model_validate({"asr": {"model": "/daemon/models/whisper/base", "language": "en", "vad": False,
                                            "device": "cuda", "hallucinations": ["Tchau"]},
                                    "models": {"dir": "/daemon/models"}})
    settings = task_settings(daemon)
    assert settings["asr"]["language"] == "en" and settings["asr"]["hallucinations"] == ["Tchau"]
    assert "/daemon" not in str(settings) and "device" not in settings["asr"] and "models" not in settings
    merged = merged_config(Config.model_validate({"asr": {"model": "small"}, "models": {"dir": "/gpu/models"}}),
                           settings)
    assert merged.asr.model == "small" and merged.asr.language == "en" and merged.models_dir() == Path("/gpu/models")


def test_a_word_that_soaks_up_the_silence_before_it_is_tightened() -> None:
    """GIVEN the first word after a pause lasting 0.5 s where words usually last 0.25 s
    THEN it starts a usual word length before its end; words in the flow of speech are untouched."""
    from omad.asr.whisper import tighten_leading_words

    flow = [Word(1.14 + i * 0.26, 1.38 + i * 0.26, t, 0.9) for i, t in enumerate(["harbor", "was", "quiet", "this"])]
    segment = Segment(0.66, 2.3, "The harbor was quiet this", [Word(0.66, 1.14, "The", 0.9), *flow])
    assert tighten_leading_words([segment]) == 1
    assert segment.words[0].start == pytest.approx(1.14 - 0.24, abs=0.03) and segment.words[1:] == flow
    assert segment.start == segment.words[0].start


def test_the_whisper_engine_is_an_asr_engine_on_the_cpu_lane_here() -> None:
    from omad.asr import AsrEngine
    from omad.lanes import Lane

    engine = engine_for(Config())
    assert isinstance(engine, AsrEngine) and engine.lane() is Lane.CPU
