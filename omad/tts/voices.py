"""The voices a person can choose, and a sample of each: for ``omad voices``, the Voices page and the API.

Lists every Piper voice installed in the models folder and the configured
espeak-ng voice (always there). A sample is the same path a narration takes
(pt-BR normalisation, sentence chunks, the engine, then two-pass loudness
normalisation to ``audio.loudness_lufs``); the web's samples are cached in
the state dir, keyed by the voice file and the text, so a preview is made
once. Nothing here downloads a voice.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputError
from . import TtsEngine, Voice, engine_for
from .choice import looks_like_piper_voice
from .piper_files import installed_voices, piper_available

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["VoiceEntry", "list_voices", "find_voice", "voice_spec", "say", "cached_sample", "SAMPLE_TEXT"]

#: What a preview says (pt-BR, with a number and money, so the normaliser is heard too).
_SAMPLES = threading.Lock()  # one sample made at a time: a page of previews must not start ten syntheses

SAMPLE_TEXT = "Olá! Esta é uma amostra da minha voz. Hoje são 7 de dezembro e o café custa R$ 4,50."


@dataclass(frozen=True)
class VoiceEntry:
    """One voice: the name a brief or ``tts.piper.voice`` uses, its engine and what it is."""

    name: str
    engine: str
    language: str
    quality: str = ""
    size_bytes: int = 0
    sample_rate: int = 0
    speakers: list[str] = field(default_factory=list)
    licence: str = ""
    path: str = ""  # the voice file (Piper); empty for espeak

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "engine": self.engine, "language": self.language, "quality": self.quality,
                "size_bytes": self.size_bytes, "sample_rate": self.sample_rate, "speakers": list(self.speakers),
                "licence": self.licence}


def list_voices(config: Config) -> list[VoiceEntry]:
    """Installed Piper voices (only when piper-tts can load them), then the configured espeak-ng voice."""
    voices: list[VoiceEntry] = []
    if piper_available():
        for v in installed_voices(config):
            voices.append(VoiceEntry(name=v.name, engine="piper", language=v.language, quality=v.quality,
                                     size_bytes=v.size_bytes, sample_rate=v.sample_rate, speakers=list(v.speakers),
                                     licence=v.licence, path=str(v.path)))
    espeak = config.tts.espeak.voice
    voices.append(VoiceEntry(name=f"espeak:{espeak}", engine="espeak", language=espeak, quality="formant",
                             sample_rate=22050, licence="GPL-3.0 (espeak-ng)"))
    return voices


def find_voice(config: Config, name: str) -> tuple[str, str]:
    """(engine, voice name for that engine) for a name ``omad voices`` shows, or an espeak-ng voice name."""
    name = name.strip()
    if name.startswith("espeak:"):
        return "espeak", name.split(":", 1)[1]
    for v in list_voices(config):
        if v.name == name:
            return v.engine, name
    if name.startswith("piper:"):
        raise ConfigError(f"the Piper voice '{name[6:]}' is not installed. Get it with `omad models pull {name}`.")
    if looks_like_piper_voice(name):
        hint = "install piper-tts first (.venv/bin/pip install -e '.[piper]'), then " if not piper_available() else ""
        raise ConfigError(f"the Piper voice '{name}' is not installed: {hint}get it with "
                          f"`omad models pull piper:{name}`. `omad voices` lists the installed ones.")
    return "espeak", name


def voice_spec(value: str) -> dict[str, str]:
    """The brief's ``voice`` for a value of the Create form's voice list (``espeak:pt-br``, a Piper name...)."""
    value = value.strip()
    if value.startswith("espeak:"):
        return {"engine": "espeak", "name": value.split(":", 1)[1]}
    if looks_like_piper_voice(value):
        return {"engine": "piper", "name": value}
    return {"name": value}


def say(config: Config, name: str, text: str, out: Path, *, engine: TtsEngine | None = None,
        timeout: float = 300.0) -> dict[str, Any]:
    """Speak ``text`` with voice ``name`` into the WAV ``out``, as a narration sounds; returns its facts."""
    from ..media.audio import normalise_narration
    from ..media.ffmpeg_run import Ffmpeg
    from .narration import narrate_text

    if not text.strip():
        raise InputError("there is no text to say. Give the words to speak.")
    engine_name, voice_name = find_voice(config, name)
    engine = engine or engine_for(config, None, engine_name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".omad-voice-", dir=out.parent) as tmp:
        work = Path(tmp)
        narration = narrate_text(text, engine, Voice(name=voice_name), work, max_chunk_chars=config.tts.max_chunk_chars,
                                 pause_seconds=config.tts.sentence_pause_seconds, timeout=timeout, label=name,
                                 language=config.tts.language, merge_sentences=config.tts.merge_sentences)
        normalised = work / "sample.wav"
        normalise_narration(narration.wav, normalised, config.audio, rate=narration.sample_rate,
                            ff=Ffmpeg(timeout=timeout), label=name)
        shutil.move(str(normalised), out)
    return {**narration.facts, "voice": voice_name, "engine": engine_name, "duration": round(narration.duration, 3)}


def cached_sample(config: Config, name: str, text: str = SAMPLE_TEXT) -> Path:
    """The preview WAV of voice ``name`` (made on first request, then kept in ``<state_dir>/voice-samples/``)."""
    engine_name, voice_name = find_voice(config, name)
    key = f"{engine_name}\0{voice_name}\0{text}\0{config.tts.language}\0{config.audio.loudness_lufs}"
    if engine_name == "piper":
        from .piper_files import resolve_voice

        onnx = resolve_voice(config, voice_name)
        st = onnx.stat()
        key += f"\0{st.st_mtime_ns}\0{st.st_size}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    folder = config.resolve(config.state_dir) / "voice-samples"
    path = folder / f"{digest}.wav"
    with _SAMPLES:
        if not path.is_file():
            tmp = folder / f".{digest}.part.wav"
            say(config, name, text, tmp)
            tmp.replace(path)
    return path
