"""Text-to-speech engines behind one small interface.

``engine_for(config, lanes)`` returns the configured engine. ``espeak`` (CPU,
always available) is the zero-setup engine; ``piper`` (neural voices on the
CPU, the GPL-3.0 extra ``omad[piper]``) lives in ``omad.tts.piper`` and ``f5``
(F5-TTS on the GPU lane) in ``omad.tts.f5``, each imported only when chosen,
so omad starts fast without them. ``auto`` is resolved to one of the three by
``omad.tts.choice`` before an engine is made.
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
ENGINE_LANES: dict[str, Lane] = {"espeak": Lane.CPU, "piper": Lane.CPU, "f5": Lane.GPU}


@dataclass
class Voice:
    """Who speaks. espeak and Piper use ``name``; F5 uses a reference recording and its transcript."""

    name: str = ""
    reference_audio: Path | None = None
    reference_text: str = ""
    speed: float | None = None  # a factor on the engine's configured speaking rate
    speaker: str = ""  # Piper: a speaker of a multi-speaker voice (name or number)
    noise_scale: float | None = None  # Piper: voice variation (None: config, then the voice's own)
    noise_w_scale: float | None = None  # Piper: rhythm variation


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


_ENGINES_HINT = "Use 'auto', 'espeak', 'piper' or 'f5' (tts.engine)."


def lane_of(name: str) -> Lane:
    """The lane engine ``name`` runs on."""
    try:
        return ENGINE_LANES[name]
    except KeyError as e:
        raise ConfigError(f"unknown TTS engine '{name}'. {_ENGINES_HINT}") from e


def engine_for(config: Config, lanes: Lanes | None = None, name: str | None = None) -> TtsEngine:
    """The engine named ``name`` (default: ``tts.engine`` from config; ``auto`` is resolved here)."""
    chosen = name or config.tts.engine
    if chosen == "auto":
        from .choice import choose_engine

        chosen = choose_engine(config).engine
    if chosen == "espeak":
        from .espeak import EspeakEngine

        return EspeakEngine(config.tts.espeak)
    if chosen == "piper":
        from .piper import PiperEngine  # lazy: piper-tts is an optional (GPL-3.0) extra

        return PiperEngine(config)
    if chosen == "f5":
        from .f5 import F5Engine  # lazy: pulls torch only when F5 is chosen

        return F5Engine(config, lanes)
    raise ConfigError(f"unknown TTS engine '{chosen}'. {_ENGINES_HINT}")
