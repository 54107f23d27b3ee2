"""Text-to-speech engines behind one small interface.

``engine_for(config, lanes)`` returns the configured engine. ``espeak`` (CPU,
always available) is the default; ``f5`` (F5-TTS on the GPU lane) lives in
``omad.tts.f5`` and is imported only when chosen, so omad starts fast without
torch installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..lanes import Lane

if TYPE_CHECKING:
    from ..config import Config
    from ..lanes import Lanes
    from .wordtiming import WordTime

__all__ = ["Synthesis", "TtsEngine", "Voice", "engine_for", "lane_of", "ENGINE_LANES"]

#: The lane of each engine, known without importing it (F5 pulls torch). Each engine's ``lane`` matches.
ENGINE_LANES: dict[str, Lane] = {"espeak": Lane.CPU, "f5": Lane.GPU}


@dataclass
class Voice:
    """Who speaks. espeak uses ``name``; F5 uses a reference recording and its transcript."""

    name: str = ""
    reference_audio: Path | None = None
    reference_text: str = ""
    speed: float | None = None  # a factor on the engine's configured speaking rate


@dataclass
class Synthesis:
    """One synthesised chunk: a WAV file, its measured duration, and facts for the job record.

    ``words`` is the engine's own timing of each whitespace token of the text
    it was given, when it knows it (espeak); None means "align it" (F5).
    """

    path: Path
    duration: float
    sample_rate: int
    facts: dict[str, Any] = field(default_factory=dict)
    words: list[WordTime] | None = None


@runtime_checkable
class TtsEngine(Protocol):
    name: str
    lane: Lane

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        """Speak already-normalised ``text`` into the WAV file ``out``."""
        ...


def lane_of(name: str) -> Lane:
    """The lane engine ``name`` runs on."""
    try:
        return ENGINE_LANES[name]
    except KeyError as e:
        raise ConfigError(f"unknown TTS engine '{name}'. Use 'espeak' or 'f5' (tts.engine).") from e


def engine_for(config: Config, lanes: Lanes | None = None, name: str | None = None) -> TtsEngine:
    """The engine named ``name`` (default: ``tts.engine`` from config)."""
    chosen = name or config.tts.engine
    if chosen == "espeak":
        from .espeak import EspeakEngine

        return EspeakEngine(config.tts.espeak)
    if chosen == "f5":
        from .f5 import F5Engine  # lazy: pulls torch only when F5 is chosen

        return F5Engine(config, lanes)
    raise ConfigError(f"unknown TTS engine '{chosen}'. Use 'espeak' or 'f5' (tts.engine).")
