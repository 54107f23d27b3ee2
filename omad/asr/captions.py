"""A transcript as files people read: captions laid out from word times, WebVTT, and a plain transcript.

Captions go through the same layout as narration (``omad.text.caption_layout``:
two lines of 42 characters, phrase-boundary breaks, 1-7 s on screen, 17
characters a second, no caption across a long pause). Words stay as Whisper
wrote them: numbers are not spelled out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..media.subtitles import Cue, srt_timestamp
from ..text.caption_layout import LayoutRules, TimedWord, group_words
from . import Transcript

__all__ = ["timed_words", "transcript_cues", "write_vtt", "write_txt", "PARAGRAPH_PAUSE"]

#: A silence this long starts a new paragraph in the plain transcript.
PARAGRAPH_PAUSE = 2.0


def timed_words(transcript: Transcript) -> list[TimedWord]:
    """The transcript's words in order, each ending no later than the next starts."""
    words = [w for w in transcript.words if w.text]
    out: list[TimedWord] = []
    for i, w in enumerate(words):
        end = max(w.end, w.start + 0.01)
        if i + 1 < len(words):
            end = min(end, max(words[i + 1].start, w.start + 0.01))
        out.append(TimedWord(w.start, end, w.text))
    return out


def transcript_cues(transcript: Transcript, rules: LayoutRules | None = None) -> tuple[list[Cue], list[TimedWord]]:
    """Captions for the transcript (and the words they were made of, for word highlighting)."""
    words = timed_words(transcript)
    return [Cue(c.start, c.end, c.text) for c in group_words(words, rules)], words


def _vtt_timestamp(seconds: float) -> str:
    return srt_timestamp(seconds).replace(",", ".")


def write_vtt(cues: Sequence[Cue], path: Path) -> Path:
    """WebVTT of ``cues`` (a line with ``-->`` in a caption's text cannot occur: Whisper text has no newlines)."""
    lines = ["WEBVTT", ""]
    for c in cues:
        lines += [f"{_vtt_timestamp(c.start)} --> {_vtt_timestamp(c.end)}", c.text.replace("-->", "->"), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_txt(transcript: Transcript, path: Path) -> Path:
    """The plain transcript: one paragraph per stretch of speech, a new one after a long pause."""
    paragraphs: list[list[str]] = []
    last_end: float | None = None
    for s in transcript.segments:
        text = s.text.strip()
        if not text:
            continue
        if last_end is None or s.start - last_end >= PARAGRAPH_PAUSE:
            paragraphs.append([])
        paragraphs[-1].append(text)
        last_end = s.end
    path.write_text("\n\n".join(" ".join(p) for p in paragraphs) + ("\n" if paragraphs else ""), encoding="utf-8")
    return path
