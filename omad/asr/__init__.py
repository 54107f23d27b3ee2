"""Speech recognition behind one small interface: the mirror of ``omad.tts``.

A :class:`Transcript` is what every engine returns: segments of words with
their times and probabilities, the language and how sure the engine was of
it, how much of the audio was speech, and the segments dropped as invented
(each with its reason). ``engine_for(config, lanes)`` returns the configured
engine; the only one is faster-whisper (``omad.asr.whisper``), imported only
when a job needs it so omad starts without CTranslate2 loaded.

Nothing here downloads anything: models come from ``omad models pull``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..lanes import Lane

if TYPE_CHECKING:
    from ..config import Config
    from ..lanes import Lanes

__all__ = ["Word", "Segment", "Dropped", "DropReason", "Transcript", "AsrRequest", "AsrEngine", "engine_for"]


class DropReason(StrEnum):
    """Why a recognised segment was thrown away instead of captioned."""

    #: Whisper itself judged it was not speech (no-speech probability high and log-probability low)
    NO_SPEECH = "no_speech"
    #: the text repeats itself (its compression ratio is above ``asr.compression_ratio_threshold``)
    REPETITIVE = "repetitive"
    #: the text is one of ``asr.hallucinations`` (phrases Whisper invents on silence and music)
    KNOWN_HALLUCINATION = "known_hallucination"


@dataclass(frozen=True)
class Word:
    """A recognised word as Whisper wrote it (leading space stripped), when it was said, and how sure it was."""

    start: float
    end: float
    text: str
    probability: float


@dataclass
class Segment:
    """A stretch of speech Whisper decoded in one go."""

    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0

    @property
    def confidence(self) -> float:
        """The mean probability of its words (1.0 with no words)."""
        return sum(w.probability for w in self.words) / len(self.words) if self.words else 1.0


@dataclass(frozen=True)
class Dropped:
    """A segment left out of the captions, and why."""

    start: float
    end: float
    text: str
    reason: DropReason


@dataclass
class Transcript:
    """Everything one transcription found. ``duration`` is the whole audio; ``speech_seconds`` what VAD kept."""

    language: str
    language_probability: float
    duration: float
    speech_seconds: float
    segments: list[Segment] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    model: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def speech_share(self) -> float:
        return round(self.speech_seconds / self.duration, 3) if self.duration > 0 else 0.0

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def low_confidence(self, threshold: float) -> list[dict[str, Any]]:
        """Segments whose mean word probability is under ``threshold``: their times, text and confidence."""
        return [{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip(),
                 "confidence": round(s.confidence, 3)} for s in self.segments if s.confidence < threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "language_probability": self.language_probability,
            "duration": self.duration,
            "speech_seconds": self.speech_seconds,
            "segments": [asdict(s) for s in self.segments],
            "dropped": [asdict(d) for d in self.dropped],
            "model": self.model,
            "facts": self.facts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        segments = [Segment(start=float(s["start"]), end=float(s["end"]), text=str(s["text"]),
                            words=[Word(float(w["start"]), float(w["end"]), str(w["text"]), float(w["probability"]))
                                   for w in s.get("words") or []],
                            avg_logprob=float(s.get("avg_logprob", 0.0)),
                            no_speech_prob=float(s.get("no_speech_prob", 0.0)),
                            compression_ratio=float(s.get("compression_ratio", 1.0)))
                    for s in data.get("segments") or []]
        dropped = [Dropped(float(d["start"]), float(d["end"]), str(d["text"]), DropReason(d["reason"]))
                   for d in data.get("dropped") or []]
        return cls(language=str(data["language"]), language_probability=float(data["language_probability"]),
                   duration=float(data["duration"]), speech_seconds=float(data["speech_seconds"]),
                   segments=segments, dropped=dropped, model=str(data.get("model", "")),
                   facts=dict(data.get("facts") or {}))


@dataclass
class AsrRequest:
    """What one transcription asks for, beyond the engine's configuration."""

    #: ISO code, or "auto" to detect; empty: ``asr.language``
    language: str = ""
    #: words to prefer (names, jargon), given to Whisper as its initial prompt
    vocabulary: list[str] = field(default_factory=list)
    #: the known text of the audio, when there is one (a prompt that steers spelling)
    prompt: str = ""


@runtime_checkable
class AsrEngine(Protocol):
    name: str

    def lane(self) -> Lane:
        """The lane a transcription runs on (GPU when the model runs on CUDA)."""
        ...

    def transcribe(self, audio: Path, request: AsrRequest, *, timeout: float = 3600.0,
                   progress: Callable[[float, float], None] | None = None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Transcribe the 16 kHz mono WAV ``audio``; ``progress(done_seconds, total_seconds)`` between segments."""
        ...


def engine_for(config: Config, lanes: Lanes | None = None, model: str | None = None) -> AsrEngine:
    """The speech recogniser for ``config`` (``model`` overrides ``asr.model``)."""
    from .whisper import WhisperEngine  # lazy: CTranslate2 loads only when a job transcribes

    return WhisperEngine(config, lanes, model=model)
