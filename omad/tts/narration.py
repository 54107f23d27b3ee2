"""Narration assembly: written text → one WAV plus caption cues timed to it.

Shared by the ``narrate`` route and scene videos. The *written* text is cut
into sentence chunks first and each chunk is normalised and spoken on its
own, so every cue carries the words as written ("R$ 12,50") while the engine
reads the expansion ("doze reais e cinquenta centavos"). Chunks are placed
by their measured audio, and inside a chunk every word is timed to the voice
(``omad.tts.wordtiming``: espeak's own word events, or forced alignment for F5),
then grouped into readable captions (``omad.text.caption_layout``); captions are
never estimated from text length, so they cannot drift from the voice. When
words cannot be timed (libespeak-ng missing) captions fall back to one per
chunk, with a warning.

This module never picks an engine or reads config (callers pass both in) and
never writes outside the work directory it is given, except ``write_srt``'s
explicit target.
"""

from __future__ import annotations

import contextlib
import os
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OmadError, StageFailed, ToolMissing, ToolTimeout
from ..media.ffmpeg import SAFE_INPUT_ARGS, probe, run_ffmpeg
from ..media.subtitles import Cue, srt_timestamp, write_srt
from ..text.caption_layout import LayoutRules, TimedWord, group_words
from ..text.normalize import has_speech, normalize_for_speech, split_sentences
from . import Synthesis, TtsEngine, Voice
from .wordtiming import WordTime, align_words

__all__ = ["Cue", "Narration", "narrate_text", "write_srt", "measure_wav", "srt_timestamp"]

_SAMPLE_WIDTH = 2  # bytes: the narration is always 16-bit PCM


@dataclass
class Narration:
    """The spoken result: one mono 16-bit WAV, its length, captions, facts for the job record.

    ``cues`` are the readable captions (word-timed when ``words`` is not empty);
    ``chunk_cues`` has one cue per spoken chunk (sentence), as written.
    """

    wav: Path
    duration: float
    sample_rate: int
    cues: list[Cue]
    facts: dict[str, Any] = field(default_factory=dict)
    words: list[TimedWord] = field(default_factory=list)
    chunk_cues: list[Cue] = field(default_factory=list)


def measure_wav(path: Path) -> float:
    """The real duration of an audio file in seconds (frame count for PCM WAV, ffprobe otherwise)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError):
        pass  # float or extensible WAV: ffprobe knows it
    except OSError as e:
        raise StageFailed(f"cannot read the audio file ({e.strerror or e}).", file=path) from e
    duration = probe(path).duration
    if duration is None:
        raise StageFailed("ffprobe reports no duration for this audio file.", file=path)
    return duration


def _read_mono16(path: Path, rate: int | None, work: Path, timeout: float) -> tuple[bytes, int]:
    """PCM frames of ``path`` as mono 16-bit, at ``rate`` (None: the file's own rate)."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, file_rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
        if rate is None or file_rate == rate:
            return _to_mono16(raw, channels, width), file_rate
    except (wave.Error, EOFError):
        pass  # a format the wave module cannot read (float PCM): let ffmpeg convert it
    except OSError as e:
        raise StageFailed(f"cannot read the audio the TTS engine wrote ({e.strerror or e}).", file=path) from e
    # Engines may differ in rate or format between chunks; ffmpeg resamples properly.
    converted = work / f"{path.stem}.s16.wav"
    args = [*SAFE_INPUT_ARGS, "-i", str(path), "-ac", "1", "-c:a", "pcm_s16le"]
    if rate is not None:
        args += ["-ar", str(rate)]
    run_ffmpeg([*args, str(converted)], timeout=timeout, file_label=str(path), stage="narrate")
    try:
        with wave.open(str(converted), "rb") as w:
            return w.readframes(w.getnframes()), w.getframerate()
    finally:
        converted.unlink(missing_ok=True)


def _to_mono16(raw: bytes, channels: int, width: int) -> bytes:
    if channels == 1 and width == _SAMPLE_WIDTH:
        return raw
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 4:
        samples = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0
    else:
        raise StageFailed(f"the TTS engine wrote {width * 8}-bit audio, which omad cannot mix.")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return bytes((np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes())


def narrate_text(
    text: str,
    engine: TtsEngine,
    voice: Voice | None,
    work: Path,
    *,
    max_chunk_chars: int,
    pause_seconds: float,
    timeout: float,
    label: str,
    progress: Callable[[float], None] | None = None,
    language: str = "pt-BR",
    merge_sentences: bool = False,
    out: Path | None = None,
    layout: LayoutRules | None = None,
) -> Narration:
    """Speak ``text`` with ``engine`` into ``out`` (default ``work/narration.wav``).

    ``label`` names the input in error messages (e.g. ``inbox/talk.txt``).
    Chunks are joined with ``pause_seconds`` of silence; ``timeout`` covers
    the whole narration. By default every sentence is its own chunk and cue
    (captions read sentence by sentence; a sentence over ``max_chunk_chars``
    is cut at clauses); with ``merge_sentences`` short sentences share a chunk
    and a cue up to ``max_chunk_chars`` (fewer engine calls, longer captions).
    ``language`` picks the normalisation (``pt*``: full pt-BR expansion) and
    the espeak voice that F5 audio is aligned against. ``layout`` shapes the
    captions (lines, characters, seconds on screen).
    """
    if not text.strip():
        raise InputError("has no text to narrate. Write the text to be spoken in it and drop it again.", file=label)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out is not None else work / "narration.wav"
    deadline = time.monotonic() + timeout

    planned: list[tuple[str, str]] = []
    skipped = 0
    for written in split_sentences(text, max_chunk_chars, merge=merge_sentences):
        spoken = normalize_for_speech(written, language)
        if has_speech(spoken):
            planned.append((written, spoken))
        else:
            skipped += 1
    if not planned:
        raise InputError(
            "holds nothing that can be spoken: after removing emoji, symbols and punctuation no words are left. "
            "Write the text to be spoken in it and drop it again.",
            file=label,
        )

    chunk_dir = work / "narration-chunks"
    chunk_dir.mkdir(exist_ok=True)
    syntheses: list[Synthesis] = []
    synth_seconds = 0.0
    try:
        for i, (_written, spoken) in enumerate(planned):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ToolTimeout(
                    f"narration ran longer than {timeout:.0f}s ({i} of {len(planned)} chunks spoken) and was stopped; "
                    "it will be retried. Raise jobs.stage_timeouts if the text is very long.",
                    file=label,
                    details={"chunks_done": i, "chunks": len(planned)},
                )
            started = time.monotonic()
            syntheses.append(engine.synthesize(spoken, voice, chunk_dir / f"chunk-{i:04d}.wav", timeout=left))
            synth_seconds += time.monotonic() - started
            if progress is not None:
                # Synthesis is nearly all the work; joining is the last sliver.
                progress(0.95 * (i + 1) / len(planned))
        chunk_cues, rate = _join(planned, syntheses, out, pause_seconds, chunk_dir,
                                 max(1.0, deadline - time.monotonic()))
        words, timing, timing_warning = _time_words(planned, syntheses, chunk_cues, language, chunk_dir,
                                                    max(1.0, deadline - time.monotonic()))
    except OmadError as e:
        if e.file is None:
            e.file = label  # engines do not know which input they speak for
        raise
    finally:
        for s in syntheses:
            s.path.unlink(missing_ok=True)
        _remove_empty_dir(chunk_dir)

    duration = measure_wav(out)
    if progress is not None:
        progress(1.0)
    engine_facts = _merge_engine_facts([s.facts for s in syntheses])
    if timing_warning:
        engine_facts.setdefault("warnings", []).append(timing_warning)
    cues = [Cue(c.start, c.end, c.text) for c in group_words(words, layout)] if words else chunk_cues
    facts: dict[str, Any] = {
        **engine_facts,
        "engine": engine.name,
        "language": language,
        "chunks": len(planned),
        "skipped_chunks": skipped,
        "characters_written": sum(len(w) for w, _ in planned),
        "characters_spoken": sum(len(s) for _, s in planned),
        "sample_rate": rate,
        "duration": round(duration, 3),
        "synth_seconds": round(synth_seconds, 3),
        "rtf": round(synth_seconds / duration, 4) if duration else None,
        "caption_timing": timing,
    }
    return Narration(wav=out, duration=duration, sample_rate=rate, cues=cues, facts=facts, words=words,
                     chunk_cues=chunk_cues)


def _espeak_voice(language: str) -> str:
    """The espeak-ng voice that speaks ``language`` (a BCP 47 tag such as pt-BR)."""
    return language.strip().lower() or "pt-br"


def _time_words(
    planned: Sequence[tuple[str, str]],
    syntheses: Sequence[Synthesis],
    chunk_cues: Sequence[Cue],
    language: str,
    work: Path,
    timeout: float,
) -> tuple[list[TimedWord], str, str | None]:
    """Every written word with its time in the joined narration; how it was timed; a warning if it was not."""
    words: list[TimedWord] = []
    sources: set[str] = set()
    for (written, spoken), synthesis, chunk in zip(planned, syntheses, chunk_cues, strict=True):
        spoken_words = synthesis.words
        if spoken_words is not None:
            sources.add("engine word events")
        else:
            raw, rate = _read_mono16(synthesis.path, None, work, timeout)
            try:
                spoken_words = align_words(spoken, np.frombuffer(raw, dtype="<i2"), rate, _espeak_voice(language))
            except ToolMissing as e:
                return [], "sentence", f"captions are timed per sentence, not per word: {e.message}"
            sources.add("aligned to espeak (DTW)")
        timed = _written_timing(written, spoken_words, language)
        for k, w in enumerate(timed):
            start = min(chunk.start + w.start, chunk.end)
            end = min(max(start, chunk.start + w.end), chunk.end)
            # A chunk is a sentence (or a clause of a long one): its last word closes a caption.
            words.append(TimedWord(start, end, w.text, ends_sentence=k == len(timed) - 1))
    if not words:
        return [], "sentence", None
    return words, "word: " + ", ".join(sorted(sources)), None


@lru_cache(maxsize=4096)
def _spoken_count(token: str, language: str) -> int:
    """How many words one written token becomes when spoken (the normaliser is ~0.5 ms a token; words repeat)."""
    return len(normalize_for_speech(token, language).split())


def _written_timing(written: str, spoken: Sequence[WordTime], language: str) -> list[TimedWord]:
    """Times for the words as *written*, from the timed words as *spoken* (chunk-relative seconds).

    Each written word is normalised on its own to count the spoken words it
    becomes ("R$" → "reais"); when the counts add up, written words take the
    times of their spoken words, else they are spread over the spoken ones
    in proportion to their position in the text.
    """
    tokens = written.split()
    if not tokens or not spoken:
        return []
    counts = [_spoken_count(t, language) for t in tokens]
    out: list[TimedWord] = []
    if sum(counts) == len(spoken):
        i = 0
        for tok, n in zip(tokens, counts, strict=True):
            if n == 0:  # an emoji or a dash: shown with its neighbour, takes no time of its own
                at = spoken[i].start if i < len(spoken) else spoken[-1].end
                out.append(TimedWord(at, at, tok))
                continue
            out.append(TimedWord(spoken[i].start, spoken[i + n - 1].end, tok))
            i += n
        return out
    total = sum(len(t) + 1 for t in tokens)
    pos = 0
    for tok in tokens:
        a = min(len(spoken) - 1, int(pos / total * len(spoken)))
        pos += len(tok) + 1
        b = max(a, min(len(spoken) - 1, int(pos / total * len(spoken)) - 1))
        out.append(TimedWord(spoken[a].start, spoken[b].end, tok))
    return out


def _join(
    planned: Sequence[tuple[str, str]],
    syntheses: Sequence[Synthesis],
    out: Path,
    pause_seconds: float,
    work: Path,
    timeout: float,
) -> tuple[list[Cue], int]:
    """Concatenate the chunks with silences into ``out``; cues come from the frames actually written."""
    first, rate = _read_mono16(syntheses[0].path, None, work, timeout)
    silence = b"\x00\x00" * round(pause_seconds * rate)
    cues: list[Cue] = []
    cursor = 0  # frames written so far
    tmp = out.with_name(f".{out.name}.part")
    try:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(_SAMPLE_WIDTH)
            w.setframerate(rate)
            for i, ((written, _spoken), synthesis) in enumerate(zip(planned, syntheses, strict=True)):
                frames = first if i == 0 else _read_mono16(synthesis.path, rate, work, timeout)[0]
                if i:
                    w.writeframes(silence)
                    cursor += len(silence) // _SAMPLE_WIDTH
                n = len(frames) // _SAMPLE_WIDTH
                w.writeframes(frames)
                cues.append(Cue(start=cursor / rate, end=(cursor + n) / rate, text=written))
                cursor += n
        os.replace(tmp, out)
    except OSError as e:
        raise StageFailed(f"cannot write the narration ({e.strerror or e}).", file=out) from e
    finally:
        tmp.unlink(missing_ok=True)
    return cues, rate


def _remove_empty_dir(path: Path) -> None:
    # Not empty means an engine left extra files: the work dir's cleanup takes them.
    with contextlib.suppress(OSError):
        path.rmdir()


def _merge_engine_facts(all_facts: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for the whole narration: the first chunk's settings, the peaks and warnings of all chunks."""
    merged = {k: v for k, v in all_facts[0].items() if k != "rtf"}
    warnings: list[str] = []
    for facts in all_facts:
        for w in facts.get("warnings") or []:
            if w not in warnings:
                warnings.append(w)
        for key in ("peak_vram_gb", "peak_rss_mb", "load_seconds"):
            values = [f[key] for f in all_facts if isinstance(f.get(key), int | float)]
            if values:
                merged[key] = max(values)
        for key in ("oom_retries",):
            merged[key] = sum(int(f.get(key) or 0) for f in all_facts)
        if any(f.get("cpu_fallback_used") for f in all_facts):
            merged["cpu_fallback_used"] = True
    if warnings:
        merged["warnings"] = warnings
    return merged
