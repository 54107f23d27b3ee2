"""No invented captions: which recognised segments are thrown away, and the warnings that name them.

Whisper writes text where there is none: on silence, on music, and in loops.
Silero VAD (inside faster-whisper) keeps most silence from reaching it; what
still comes out is judged here, segment by segment, by Whisper's own
no-speech probability and log-probability, by how well the text compresses (a
loop compresses very well), and by a list of phrases it is known to invent
(``asr.hallucinations``: in Portuguese "Legendas pela comunidade Amara.org",
learned from fan-subtitled films). This module only judges; it never edits a
kept segment's words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import Dropped, DropReason, Segment

if TYPE_CHECKING:
    from ..config import AsrConfig

__all__ = ["judge", "split_invented", "drop_warnings", "normalise"]

_PUNCT = re.compile(r"[^\w\s]")
_REASONS = {
    DropReason.NO_SPEECH: "Whisper judged it was not speech",
    DropReason.REPETITIVE: "its text repeats itself",
    DropReason.KNOWN_HALLUCINATION: "a phrase Whisper is known to invent (asr.hallucinations)",
}


def normalise(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: how phrases are compared."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", plain).split())


def judge(segment: Segment, cfg: AsrConfig) -> DropReason | None:
    """Why ``segment`` must not become a caption, or None when it may."""
    if segment.no_speech_prob > cfg.no_speech_threshold and segment.avg_logprob < cfg.log_prob_threshold:
        return DropReason.NO_SPEECH
    if segment.compression_ratio > cfg.compression_ratio_threshold:
        return DropReason.REPETITIVE
    said = normalise(segment.text)
    for phrase in cfg.hallucinations:
        known = normalise(phrase)
        # The phrase alone, or with a word or two around it ("Obrigado por assistir!", "... e até a próxima").
        if known and known in said and len(said.split()) - len(known.split()) <= 2:
            return DropReason.KNOWN_HALLUCINATION
    if not said:
        return DropReason.NO_SPEECH
    return None


def split_invented(segments: Sequence[Segment], cfg: AsrConfig) -> tuple[list[Segment], list[Dropped]]:
    """(segments to caption, segments dropped with their reason)."""
    kept: list[Segment] = []
    dropped: list[Dropped] = []
    for s in segments:
        reason = judge(s, cfg)
        if reason is None:
            kept.append(s)
        else:
            dropped.append(Dropped(round(s.start, 2), round(s.end, 2), s.text.strip(), reason))
    return kept, dropped


def drop_warnings(dropped: Sequence[Dropped], label: str) -> list[str]:
    """One warning per dropped segment, naming its time, its text and why."""
    return [f"{label}: left out '{d.text}' at {d.start:.1f}-{d.end:.1f} s: {_REASONS[d.reason]}."
            for d in dropped]
