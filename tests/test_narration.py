"""Narration with the real espeak-ng: one WAV, and captions timed to what was actually spoken."""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omad.config import EspeakConfig
from omad.errors import ConfigError, InputError, ToolMissing, ToolTimeout
from omad.media.ffmpeg import probe
from omad.text.normalize import normalize_ptbr
from omad.tts import Synthesis, TtsEngine, Voice
from omad.tts import espeak as espeak_module
from omad.tts.espeak import IN_PROCESS_CHARS, EspeakEngine
from omad.tts.narration import Cue, Narration, measure_wav, narrate_text, srt_timestamp, write_srt

PAUSE = 0.25
STORY = (
    "O Sr. Silva pagou R$ 12,50 pelo café na Av. Paulista. "
    "Depois andou 5 km em 1h30, com 2 amigas! "
    "Chegaram às 14h do dia 25/12/2024?"
)


def _narrate(text: str, tmp_path: Path, engine: TtsEngine | None = None, **kw: object) -> Narration:
    options: dict[str, object] = {
        "max_chunk_chars": 300,
        "pause_seconds": PAUSE,
        "timeout": 60.0,
        "label": "inbox/story.txt",
        "merge_sentences": False,
    }
    options.update(kw)
    return narrate_text(text, engine or EspeakEngine(), None, tmp_path / "work", **options)  # type: ignore[arg-type]


def _samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64), w.getframerate()


def _parse_srt(path: Path) -> list[tuple[float, float, str]]:
    def secs(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    out = []
    for i, block in enumerate(blocks, start=1):
        index, timing, text = block.split("\n", 2)
        assert index == str(i)
        start, end = re.fullmatch(r"(\S+) --> (\S+)", timing).groups()  # type: ignore[union-attr]
        out.append((secs(start), secs(end), text))
    return out


def test_story_becomes_one_wav_with_captions_timed_to_the_voice(tmp_path: Path) -> None:
    """GIVEN three pt-BR sentences with money, units, times and a date
    WHEN they are narrated with espeak-ng
    THEN one mono 16-bit WAV holds them, with a chunk cue per sentence that reads as written
    and lies exactly where that sentence's audio is, and captions timed to the words inside them."""
    fractions: list[float] = []
    result = _narrate(STORY, tmp_path, progress=fractions.append)

    info = probe(result.wav)
    stream = info.audio
    assert stream is not None and stream["codec_name"] == "pcm_s16le"
    assert (int(stream["channels"]), int(stream["sample_rate"])) == (1, result.sample_rate) == (1, 22050)
    assert info.duration is not None and abs(info.duration - result.duration) < 0.01

    cues = result.chunk_cues
    assert [c.text for c in cues] == [
        "O Sr. Silva pagou R$ 12,50 pelo café na Av. Paulista.",
        "Depois andou 5 km em 1h30, com 2 amigas!",
        "Chegaram às 14h do dia 25/12/2024?",
    ]
    spoken = sum(c.end - c.start for c in cues)
    assert abs(result.duration - (spoken + PAUSE * (len(cues) - 1))) <= 0.05
    assert cues[0].start == 0.0
    for before, after in zip(cues, cues[1:], strict=False):
        assert before.end <= after.start
        assert abs((after.start - before.end) - PAUSE) < 0.001
    assert abs(cues[-1].end - result.duration) <= 0.1

    # The cue regions hold speech and the pauses between them hold silence.
    samples, rate = _samples(result.wav)
    for cue in cues:
        region = samples[int(cue.start * rate) : int(cue.end * rate)]
        assert np.sqrt(np.mean(region**2)) > 300, cue.text
    for before, after in zip(cues, cues[1:], strict=False):
        assert np.abs(samples[int(before.end * rate) + 1 : int(after.start * rate) - 1]).max() == 0

    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert result.facts["engine"] == "espeak" and result.facts["voice"] == "pt-br"
    assert result.facts["chunks"] == 3 and result.facts["rtf"] > 0
    assert result.facts["characters_spoken"] > result.facts["characters_written"]
    assert list((tmp_path / "work").iterdir()) == [result.wav], "chunk files are cleaned up"

    srt = write_srt(cues, tmp_path / "story.srt")
    parsed = _parse_srt(srt)
    assert [t for _, _, t in parsed] == [c.text for c in cues]
    assert "R$ 12,50" in parsed[0][2]
    assert all(s < e for s, e, _ in parsed)
    assert all(a[1] <= b[0] for a, b in zip(parsed, parsed[1:], strict=False))
    assert abs(parsed[-1][1] - measure_wav(result.wav)) <= 0.1


class _Kept:
    """A test engine: real espeak-ng, each chunk's recording kept aside (narrate_text deletes the chunks)."""

    name = "kept-espeak"
    lane = "cpu"

    def __init__(self, folder: Path) -> None:
        self.inner, self.folder, self.kept = EspeakEngine(), folder, []

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        result = self.inner.synthesize(text, voice, out, timeout=timeout)
        copy = self.folder / f"kept-{len(self.kept)}.wav"
        copy.write_bytes(out.read_bytes())
        self.kept.append(copy)
        return result


def test_each_cue_lasts_as_long_as_espeak_speaks_its_sentence(tmp_path: Path) -> None:
    """GIVEN a story spoken sentence by sentence THEN every chunk cue's length is that sentence's recording,
    measured, not an estimate; and each is as long as espeak-ng alone speaks the sentence, to within the few
    hundredths of a second by which libespeak-ng's recordings vary with what it spoke before."""
    engine = _Kept(tmp_path)
    result = _narrate(STORY, tmp_path, engine=engine)  # type: ignore[arg-type]
    assert len(engine.kept) == len(result.chunk_cues) == 3
    for i, (cue, kept) in enumerate(zip(result.chunk_cues, engine.kept, strict=True)):
        assert abs((cue.end - cue.start) - measure_wav(kept)) < 0.001, cue.text
        alone = tmp_path / f"alone-{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "pt-br", "-s", "160", "-p", "50", "-b", "1", "-w", str(alone), "--stdin"],
            input=normalize_ptbr(cue.text).encode("utf-8"),
            check=True,
        )
        assert abs((cue.end - cue.start) - measure_wav(alone)) < 0.08, cue.text


def test_short_sentences_share_a_chunk_and_a_cue_when_merging(tmp_path: Path) -> None:
    result = _narrate("Oi. Tudo bem? Sim.", tmp_path, merge_sentences=True, max_chunk_chars=100)
    assert [c.text for c in result.cues] == ["Oi. Tudo bem? Sim."]
    assert abs(result.chunk_cues[0].end - result.duration) < 0.001


@pytest.mark.parametrize("text", ["", "   \n\n\t", "🎉🎉 👍🏽", "... !!! ???", "™ © ✔"])
def test_text_with_nothing_to_say_is_a_bad_drop(tmp_path: Path, text: str) -> None:
    """GIVEN an empty or emoji-only text WHEN narrated THEN the drop is refused, naming the file and the fix."""
    with pytest.raises(InputError) as err:
        _narrate(text, tmp_path)
    assert err.value.file == "inbox/story.txt"
    assert "Write the text to be spoken" in err.value.message
    assert not (tmp_path / "work" / "narration.wav").exists()


def test_emoji_only_sentences_are_skipped_not_spoken(tmp_path: Path) -> None:
    result = _narrate("Olá. 🎉🎉 Até logo.", tmp_path)
    assert [c.text for c in result.cues] == ["Olá.", "🎉🎉 Até logo."]
    result = _narrate("Olá.\n\n🎉🎉\n\nAté logo.", tmp_path)
    assert [c.text for c in result.cues] == ["Olá.", "Até logo."]
    assert result.facts["skipped_chunks"] == 1


def test_missing_espeak_is_reported_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a machine without espeak-ng on PATH WHEN narrating THEN ToolMissing says how to install it."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolMissing) as err:
        _narrate("Olá mundo.", tmp_path)
    assert "apt-get install espeak-ng" in err.value.message
    assert err.value.file == "inbox/story.txt"


def test_unknown_configured_voice_is_a_config_error(tmp_path: Path) -> None:
    engine = EspeakEngine(EspeakConfig(voice="xx-nao-existe", rate=160, pitch=50))
    with pytest.raises(ConfigError) as err:
        _narrate("Olá mundo.", tmp_path, engine=engine)
    assert "tts.espeak.voice" in err.value.message and "xx-nao-existe" in err.value.message
    assert "espeak-ng --voices" in err.value.message


def test_unknown_voice_from_a_brief_is_the_drops_fault(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        EspeakEngine().synthesize("Olá.", Voice(name="xx-nao-existe"), tmp_path / "a.wav")
    assert "voice.name" in err.value.message
    assert not (tmp_path / "a.wav").exists()


def test_engine_reads_text_from_stdin_not_argv(tmp_path: Path) -> None:
    """GIVEN text that looks like espeak-ng options, too long to speak in-process WHEN spoken THEN the program
    reads it aloud and does not obey it."""
    out = tmp_path / "dash.wav"
    text = "-v xx --help " + "palavra " * 80
    assert len(text) > IN_PROCESS_CHARS
    result = EspeakEngine().synthesize(text, None, out)
    assert isinstance(result, Synthesis)
    assert result.path == out and result.sample_rate == 22050
    assert result.duration == pytest.approx(measure_wav(out), abs=1e-6)
    assert result.duration > 20  # eighty words at 160 wpm
    assert set(result.facts) >= {"engine", "voice", "rate", "pitch", "rtf"}


def test_a_short_chunk_is_spoken_in_process_as_the_program_speaks_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a sentence WHEN the engine speaks it THEN no espeak-ng program starts; the recording is as long as the
    program's to within a few hundredths of a second (the same synthesiser with the program's end-of-text pause;
    it keeps a little state between texts), and each word is timed by espeak's own events, in order, inside it."""
    text = "A casa perto do rio tem o número 7, e a porta é azul."
    program = tmp_path / "program.wav"
    subprocess.run(["espeak-ng", "-v", "pt-br", "-s", "160", "-p", "50", "-b", "1", "-w", str(program), "--stdin"],
                   input=text.encode(), check=True)
    EspeakEngine().synthesize("Outra frase, dita antes; com uma pausa.", None, tmp_path / "before.wav")
    started: list[list[str]] = []
    real_run_tool = espeak_module.run_tool

    def spy(cmd: list[str], **kwargs: Any) -> Any:
        started.append(cmd)
        return real_run_tool(cmd, **kwargs)

    monkeypatch.setattr(espeak_module, "run_tool", spy)
    result = EspeakEngine(EspeakConfig(voice="pt-br", rate=160, pitch=50)).synthesize(text, None, tmp_path / "a.wav")
    assert not [cmd for cmd in started if "-w" in cmd]
    assert result.duration == pytest.approx(measure_wav(program), abs=0.08)
    assert result.duration == pytest.approx(measure_wav(tmp_path / "a.wav"), abs=1e-6)
    words = result.words
    assert words is not None and [w.text for w in words] == text.split()
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    assert 0 <= words[0].start < 0.3 and words[-1].end <= result.duration


def test_rate_and_voice_settings_reach_espeak(tmp_path: Path) -> None:
    text = "Uma frase de teste para medir a velocidade da fala."
    slow = EspeakEngine(EspeakConfig(voice="pt-br", rate=100, pitch=50)).synthesize(text, None, tmp_path / "s.wav")
    fast = EspeakEngine(EspeakConfig(voice="pt-br", rate=300, pitch=50)).synthesize(text, None, tmp_path / "f.wav")
    assert slow.duration > 1.8 * fast.duration
    assert (slow.facts["rate"], fast.facts["rate"]) == (100, 300)


def test_a_stuck_engine_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    with pytest.raises(ToolTimeout):
        EspeakEngine().synthesize("palavra " * 3000, None, tmp_path / "t.wav", timeout=0.01)
    assert not (tmp_path / "t.wav").exists()


class _StereoFloatEspeak:
    """A test engine: real espeak-ng, but every other chunk re-encoded by ffmpeg as 44.1 kHz stereo float,
    the way a neural engine may write its output."""

    name = "stereo-float-espeak"
    lane = "cpu"

    def __init__(self) -> None:
        self.inner = EspeakEngine()
        self.calls = 0

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        self.calls += 1
        raw = out.with_name("raw-" + out.name)
        first = self.inner.synthesize(text, voice, raw, timeout=timeout)
        if self.calls % 2:
            raw.rename(out)
            return Synthesis(out, first.duration, first.sample_rate, dict(first.facts))
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-ac", "2", "-ar", "44100", "-c:a", "pcm_f32le"]
            + [str(out)],
            check=True,
        )
        raw.unlink()
        return Synthesis(out, first.duration, 44100, dict(first.facts))


def test_chunks_of_other_formats_are_converted_to_the_first_chunks_format(tmp_path: Path) -> None:
    """GIVEN an engine whose chunks differ in rate, channels and sample format
    THEN the narration is still one mono 16-bit WAV and the cues still add up to it."""
    engine = _StereoFloatEspeak()
    result = _narrate(STORY, tmp_path, engine=engine)
    samples, rate = _samples(result.wav)
    assert rate == 22050 and len(result.chunk_cues) == 3
    middle = result.chunk_cues[1]
    assert np.sqrt(np.mean(samples[int(middle.start * rate) : int(middle.end * rate)] ** 2)) > 300
    spoken = sum(c.end - c.start for c in result.chunk_cues)
    assert abs(result.duration - (spoken + 2 * PAUSE)) <= 0.05
    assert abs(result.chunk_cues[-1].end - result.duration) <= 0.1
    # No word events from this engine: the words were aligned to the voice instead.
    assert result.facts["caption_timing"] == "word: aligned to espeak (DTW)"
    assert [" ".join(c.text.split()) for c in result.cues] == [c.text for c in result.chunk_cues]


def test_other_languages_keep_their_numbers_for_the_engine(tmp_path: Path) -> None:
    engine = EspeakEngine(EspeakConfig(voice="en", rate=160, pitch=50))
    result = _narrate("It costs 5 dollars 🎉. Thank you.", tmp_path, engine=engine, language="en")
    assert [c.text for c in result.cues] == ["It costs 5 dollars 🎉.", "Thank you."]
    assert result.facts["language"] == "en"


def test_srt_cues_never_overlap_after_rounding(tmp_path: Path) -> None:
    cues = [Cue(0.0, 1.0004, "um"), Cue(1.0003, 2.0, "dois"), Cue(2.0, 2.0, "três"), Cue(2.5, 3.0, "  ")]
    parsed = _parse_srt(write_srt(cues, tmp_path / "x.srt"))
    assert [t for _, _, t in parsed] == ["um", "dois", "três"]
    assert all(s < e for s, e, _ in parsed)
    assert all(a[1] <= b[0] for a, b in zip(parsed, parsed[1:], strict=False))
    assert srt_timestamp(3725.5) == "01:02:05,500"


def test_srt_keeps_a_captions_two_lines_but_never_a_blank_line(tmp_path: Path) -> None:
    cues = [Cue(0.0, 1.0, "primeira  linha\nsegunda"), Cue(1.0, 2.0, "a\n\n  \nb")]
    parsed = _parse_srt(write_srt(cues, tmp_path / "x.srt"))
    assert [t for _, _, t in parsed] == ["primeira linha\nsegunda", "a\nb"]
