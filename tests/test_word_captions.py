"""Narration captions timed word by word, and laid out for reading."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Env
from hypothesis import given, settings
from hypothesis import strategies as st

from omad.media.subtitles import Cue, karaoke_text, read_srt
from omad.text.caption_layout import LayoutRules, TimedWord, group_words, split_lines
from omad.tts.espeak import EspeakEngine
from omad.tts.narration import _written_timing, narrate_text
from omad.tts.wordtiming import WordTime, align_words, espeak_words

LONG = (
    "Hoje vamos falar sobre as abelhas, que visitam milhares de flores todos os dias para levar pólen e néctar "
    "até a colmeia. Elas dançam para contar às outras onde estão as flores! Incrível, não é?"
)


def _energy_at(audio: np.ndarray, rate: int, t: float, span: float = 0.03) -> float:
    seg = audio[int(t * rate): int((t + span) * rate)].astype(float)
    return float(np.sqrt(np.mean(seg**2))) if seg.size else 0.0


def test_the_engine_times_its_own_recording_with_espeaks_word_events(tmp_path: Path) -> None:
    """GIVEN a text spoken by the espeak-ng program
    THEN the engine returns a time for every word, carried from libespeak-ng's word events onto the
    program's recording: in order, each where the recording has sound (after at most a stop consonant's
    silent closure), close to the library's own timing."""
    text = "Olá, tudo bem? Hoje vamos falar de doze reais."
    synthesis = EspeakEngine().synthesize(text, None, tmp_path / "engine.wav")
    assert synthesis.words is not None
    assert [w.text for w in synthesis.words] == text.split()
    with wave.open(str(synthesis.path)) as w:
        cli, rate = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()
    assert all(a.start < b.start for a, b in zip(synthesis.words, synthesis.words[1:], strict=False))
    for word in synthesis.words:
        assert _energy_at(cli, rate, word.start, span=0.08) > 200, word
    _audio, _rate, lib_words = espeak_words(text, "pt-br", 160, 50)
    assert all(abs(a.start - b.start) < 0.1 for a, b in zip(synthesis.words, lib_words, strict=True))


def test_word_onsets_sit_where_the_voice_starts(tmp_path: Path) -> None:
    """GIVEN a sentence with pauses at its commas
    THEN each word after a pause starts where sound resumes, not where the pause began."""
    audio, rate, words = espeak_words("Olá, tudo bem? Hoje, não.", "pt-br", 160, 50)
    assert all(a.start < b.start for a, b in zip(words, words[1:], strict=False))
    for w in words:
        assert _energy_at(audio, rate, w.start) > 200, w
        assert w.end > w.start
    after_pause = words[1]  # "tudo", after "Olá,"
    assert _energy_at(audio, rate, after_pause.start - 0.03) < 0.5 * _energy_at(audio, rate, after_pause.start)


@pytest.mark.parametrize("voice,rate,pitch", [("pt-br+f3", 130, 70), ("pt-br+m3", 200, 35), ("pt-br+klatt", 150, 50)])
def test_alignment_finds_word_onsets_in_another_voice(voice: str, rate: int, pitch: int) -> None:
    """GIVEN speech in another voice, speed and pitch, whose word onsets are known from its own events
    WHEN it is aligned to a reference spoken by the default voice
    THEN the onsets found are on average within 80 ms of the true ones."""
    audio, sr, truth = espeak_words(LONG, voice, rate, pitch)
    found = align_words(LONG, audio, sr)
    assert [w.text for w in found] == [w.text for w in truth]
    gaps = [abs(a.start - b.start) for a, b in zip(found, truth, strict=True)]
    assert float(np.mean(gaps)) < 0.08
    assert all(a.start <= b.start for a, b in zip(found, found[1:], strict=False))


def _words(text: str, per_char: float = 0.06) -> list[TimedWord]:
    out, t = [], 0.0
    for w in text.split():
        d = per_char * len(w) + 0.1
        out.append(TimedWord(t, t + d, w))
        t += d + (0.25 if w.endswith((",", ".")) else 0.04)
    return out


def test_captions_follow_the_reading_rules() -> None:
    """GIVEN a long paragraph of timed words
    THEN no caption has more than 2 lines of 42 characters, none is on screen under 1 s or over 6 s unless
    its words take longer, sentences never share a caption, and a caption starts on its first word."""
    words = _words(LONG)
    rules = LayoutRules()
    caps = group_words(words, rules)
    assert [w for c in caps for w in c.words] == words
    for c in caps:
        assert len(c.lines) <= 2 and all(len(" ".join(w.text for w in line)) <= 42 for line in c.lines), c.text
        assert c.start == c.words[0].start
        assert c.end >= c.words[-1].end - 1e-9
        assert c.end - c.start <= max(6.0, c.words[-1].end - c.start) + 1e-9
    for a, b in zip(caps, caps[1:], strict=False):
        assert a.end <= b.start
        assert a.end - a.start >= min(1.0, b.start - a.start - 0.05)
    sentence_ends = {"colmeia.", "flores!"}
    for c in caps:
        assert all(w.text not in sentence_ends for w in c.words[:-1]), c.text
    # Mid-sentence breaks fall after punctuation or before a phrase word, never in between.
    for a in caps[:-1]:
        last = a.words[-1].text
        nxt = words[words.index(a.words[-1]) + 1].text
        assert last.endswith((",", ".", "!", "?")) or nxt in {"que", "de", "para", "e", "até", "às", "onde"}, a.text


def test_reading_speed_keeps_a_short_caption_up_longer() -> None:
    """A caption whose words are spoken fast stays up long enough to read (17 characters a second)
    when the next caption is far enough away."""
    fast = [TimedWord(0.0, 0.3, "Abelhas"), TimedWord(0.3, 0.6, "dançam."), TimedWord(5.0, 5.5, "Sim.")]
    caps = group_words(fast)
    assert caps[0].end == pytest.approx(max(1.0, len("Abelhas dançam.") / 17.0))
    assert caps[1].start == 5.0


def test_two_lines_break_at_the_comma() -> None:
    words = _words("Quando a chuva chega ao jardim, tudo fica verde e as frutas aparecem")
    lines = split_lines(words, 42, 2)
    assert lines is not None and lines[0][-1].text == "jardim,"


def test_written_words_take_the_times_of_what_they_became() -> None:
    """GIVEN '5 km' spoken as 'cinco quilômetros' THEN '5' and 'km' take those words' times."""
    spoken = [WordTime(0.0, 0.3, "andou"), WordTime(0.35, 0.6, "cinco"), WordTime(0.62, 1.2, "quilômetros")]
    timed = _written_timing("andou 5 km", spoken, "pt-BR")
    assert [(w.text, w.start, w.end) for w in timed] == [("andou", 0.0, 0.3), ("5", 0.35, 0.6), ("km", 0.62, 1.2)]


def test_narration_captions_are_timed_to_the_words(tmp_path: Path) -> None:
    """GIVEN a paragraph narrated by espeak-ng
    THEN its captions are shorter than its sentences, each starts where its first word is heard,
    and together they hold the text as written."""
    result = narrate_text(LONG, EspeakEngine(), None, tmp_path, max_chunk_chars=300, pause_seconds=0.25,
                          timeout=60.0, label="t.txt")
    assert result.facts["caption_timing"] == "word: engine word events"
    assert len(result.cues) > len(result.chunk_cues)
    assert " ".join(" ".join(c.text.split()) for c in result.cues) == " ".join(LONG.split())
    with wave.open(str(result.wav)) as w:
        audio, rate = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()
    onsets = {round(w.start, 6) for w in result.words}
    for c in result.cues:
        assert round(c.start, 6) in onsets
        assert _energy_at(audio, rate, c.start) > 200, c.text


def test_karaoke_text_times_each_word_with_k() -> None:
    """GIVEN a two-line caption and its words
    THEN each word carries a \\k as long as the time to the next word (centiseconds), lines are kept,
    and the \\k times add up to the caption's spoken span."""
    cue = Cue(1.0, 3.0, "Olá a\ntodos")
    words = [(1.1, 1.5, "Olá"), (1.6, 1.8, "a"), (2.0, 2.7, "todos")]
    text = karaoke_text(cue, words)
    assert text == "{\\k10}{\\k50}Olá {\\k40}a\\N{\\k70}todos"
    assert karaoke_text(cue, words[:2]) is None  # not this caption's words: drawn plain


@pytest.mark.slow
def test_word_highlight_lights_the_spoken_word(make_env: Callable[..., Env]) -> None:
    """GIVEN a vertical scene video brief with caption.style word_highlight
    WHEN omad once runs
    THEN the captions are karaoke: early in a caption little of it is in the highlight colour,
    late in it most of it is, and the sidecar says every caption was highlighted word by word."""
    env = make_env(video={"preset": "custom", "width": 360, "height": 640, "fps": 10, "x264_preset": "ultrafast"})
    brief = ("version: 1\nkind: video\ncaption:\n  style: word_highlight\nscenes:\n"
             "  - title: Abelhas\n    narration: \"Hoje vamos falar sobre as abelhas e as flores do jardim.\"\n"
             "    background: \"#000000\"\n")
    (env.inbox / "curto.yaml").write_text(brief, encoding="utf-8")
    assert env.once() == 0
    facts = next(s for s in env.sidecar("curto")["stages"] if s["name"] == "render")["facts"]
    assert facts["caption_style"] == "word_highlight"
    assert facts["captions_word_highlighted"] == facts["captions"] >= 1
    cues, _ = read_srt(env.outbox / "curto.srt", "curto.srt")
    first = cues[0]

    def highlight(t: float) -> int:
        raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-ss", f"{t:.3f}", "-i", str(env.outbox / "curto.mp4"),
                              "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True, timeout=60).stdout
        rgb = np.frombuffer(raw, dtype=np.uint8).reshape(640, 360, 3).astype(int)
        lower = rgb[320:]  # captions sit at the bottom; the title card's text is in the middle
        return int(((lower[..., 0] > 200) & (lower[..., 1] > 160) & (lower[..., 2] < 80)).sum())

    early = highlight(first.start + 0.15)
    late = highlight(first.end - 0.15)
    assert late > 3 * max(early, 20), (early, late)


def test_a_long_chunk_is_aligned_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a chunk long enough that its warp matrix would pass the cell limit
    THEN frames are pooled, and onsets are still found to within the pooled resolution."""
    import omad.tts.wordtiming as wordtiming

    monkeypatch.setattr(wordtiming, "_MAX_CELLS", 40_000)  # ~200 x 200 frames: forces pooling on this text
    audio, sr, truth = espeak_words(LONG, "pt-br+m3", 190, 40)
    found = align_words(LONG, audio, sr)
    gaps = [abs(a.start - b.start) for a, b in zip(found, truth, strict=True)]
    assert float(np.mean(gaps)) < 0.1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="abcdeçãé,.!?", min_size=1, max_size=14),
                          st.floats(min_value=0.0, max_value=1.5), st.floats(min_value=0.01, max_value=1.2)),
                min_size=1, max_size=60),
       st.integers(min_value=10, max_value=42), st.integers(min_value=1, max_value=3))
def test_any_words_make_captions_that_keep_the_rules(spec: list[tuple[str, float, float]], chars: int,
                                                      lines: int) -> None:
    """Whatever the words and pauses: every word once, in order; lines within the limits (a single word
    longer than a line stands alone); captions start on their first word and never overlap."""
    words, t = [], 0.0
    for text, gap, length in spec:
        t += gap
        words.append(TimedWord(t, t + length, text))
        t += length
    rules = LayoutRules(max_line_chars=chars, max_lines=lines)
    caps = group_words(words, rules)
    assert [w for c in caps for w in c.words] == words
    for c in caps:
        assert c.start == c.words[0].start and c.end > c.start
        if len(c.words) > 1:
            assert len(c.lines) <= lines
            assert all(len(" ".join(w.text for w in line)) <= chars for line in c.lines)
    for a, b in zip(caps, caps[1:], strict=False):
        assert a.end <= b.start + 1e-9
