"""Where Piper voices are on disk, and what each one is.

A voice is ``<name>.onnx`` with ``<name>.onnx.json`` beside it. ``omad models
pull piper:<name>`` lays them out as ``<models.dir>/piper/<name>/``;
``tts.piper.voice`` (or a brief's ``voice.name``) is such a name, or a path
to an ``.onnx`` file. This module only reads files: it never imports
piper-tts (GPL-3.0, an optional extra) and never downloads anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputError

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["PiperVoiceInfo", "installed_voices", "resolve_voice", "voice_info", "default_voice", "PULL_HINT",
           "INSTALL_HINT", "piper_available"]

PULL_HINT = "omad models pull piper:pt_BR-faber-medium"
INSTALL_HINT = ".venv/bin/pip install -e '.[piper]'"


def piper_available() -> bool:
    """Whether the piper-tts package can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("piper") is not None


@dataclass(frozen=True)
class PiperVoiceInfo:
    """One installed voice, from its ``.onnx.json`` and file size."""

    name: str
    path: Path
    language: str = ""
    quality: str = ""
    sample_rate: int = 0
    speakers: list[str] = field(default_factory=list)
    size_bytes: int = 0
    espeak_voice: str = ""
    licence: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["engine"] = "piper"
        return data


def _config_of(onnx: Path) -> Path:
    return onnx.with_name(onnx.name + ".json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"is not a readable Piper voice config ({e}). Pull the voice again ({PULL_HINT}).",
                          file=path) from e
    if not isinstance(data, dict):
        raise ConfigError(f"is not a Piper voice config (a JSON object). Pull the voice again ({PULL_HINT}).",
                          file=path)
    return data


def _licence(folder: Path) -> str:
    card = folder / "MODEL_CARD"
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if "licen" in line.lower() and ":" in line:
            return line.split(":", 1)[1].strip()
    return ""


def voice_info(onnx: Path) -> PiperVoiceInfo:
    """What a voice is, read from its files (ConfigError when its config is missing or unreadable)."""
    config_path = _config_of(onnx)
    if not config_path.is_file():
        raise ConfigError(f"has no {config_path.name} beside it; a Piper voice is the .onnx and its .onnx.json. "
                          f"Pull the voice again ({PULL_HINT}).", file=onnx)
    data = _read_json(config_path)
    def section(key: str) -> dict[str, Any]:
        value = data.get(key)
        return value if isinstance(value, dict) else {}

    language, audio, espeak, speaker_map = section("language"), section("audio"), section("espeak"), \
        section("speaker_id_map")
    name = onnx.name.removesuffix(".onnx")
    speakers = [str(k) for k, _ in sorted(speaker_map.items(), key=lambda kv: int(kv[1]))]
    if not speakers and int(data.get("num_speakers") or 1) > 1:
        speakers = [str(i) for i in range(int(data["num_speakers"]))]
    parts = name.split("-")
    try:
        size = onnx.stat().st_size
    except OSError:
        size = 0
    return PiperVoiceInfo(
        name=name,
        path=onnx,
        language=str(language.get("code") or (parts[0] if parts else "")),
        quality=str(audio.get("quality") or (parts[-1] if len(parts) >= 3 else "")),
        sample_rate=int(audio.get("sample_rate") or 0),
        speakers=speakers,
        size_bytes=size,
        espeak_voice=str(espeak.get("voice") or ""),
        licence=_licence(onnx.parent),
    )


def installed_voices(config: Config) -> list[PiperVoiceInfo]:
    """Every voice under ``<models.dir>/piper/`` whose files are both there, by name."""
    root = config.models_dir() / "piper"
    found: list[PiperVoiceInfo] = []
    if not root.is_dir():
        return found
    for onnx in sorted(root.glob("*/*.onnx")):
        if not _config_of(onnx).is_file():
            continue
        try:
            found.append(voice_info(onnx))
        except ConfigError:
            continue  # a damaged voice is not "installed"; `omad voices` shows it through resolve_voice's error
    return found


def _language_key(tag: str) -> str:
    return tag.replace("-", "_").lower()


def default_voice(config: Config) -> PiperVoiceInfo | None:
    """The voice ``auto`` and an empty ``tts.piper.voice`` use: the first installed one of ``tts.language``.

    With none in that language, the first installed voice (a voice that reads
    another language is better than no voice only when the user installed it).
    """
    voices = installed_voices(config)
    if not voices:
        return None
    want = _language_key(config.tts.language)
    for v in voices:
        if _language_key(v.language) == want:
            return v
    family = want.split("_")[0]
    for v in voices:
        if _language_key(v.language).split("_")[0] == family:
            return v
    return voices[0]


def resolve_voice(config: Config, value: str, *, from_brief: bool = False) -> Path:
    """The ``.onnx`` of the voice ``value`` names (a name in the models folder or a path), checked to exist.

    Empty means the configured voice, else the default installed one. A voice
    a brief names that is not there is the drop's problem (InputError); one
    the configuration names is the configuration's (ConfigError).
    """
    Error = InputError if from_brief else ConfigError
    key = "voice.name in the brief" if from_brief else "tts.piper.voice"
    value = value.strip()
    if not value:
        value = config.tts.piper.voice.strip()
        from_brief, Error, key = False, ConfigError, "tts.piper.voice"
    if not value:
        chosen = default_voice(config)
        if chosen is None:
            raise ConfigError(
                f"no Piper voice is installed in {config.models_dir() / 'piper'}. Get one with `{PULL_HINT}` "
                "(or set tts.piper.voice to a voice's .onnx file).")
        return chosen.path
    if value.endswith(".onnx") or "/" in value or "\\" in value:
        if from_brief:
            raise InputError(f"names the Piper voice '{value}' by a path; a brief names installed voices only "
                             f"(`omad voices` lists them).")
        path = config.resolve(value)
    else:
        path = config.models_dir() / "piper" / value / f"{value}.onnx"
    if not path.is_file():
        raise Error(
            f"the Piper voice '{value}' ({key}) is not installed: {path} does not exist. Get it with "
            f"`omad models pull piper:{value}` or pick one that `omad voices` lists.",
            details={"voice": value, "looked_in": str(path)})
    if not _config_of(path).is_file():
        raise Error(f"the Piper voice '{value}' has no {_config_of(path).name} beside its .onnx; pull it again with "
                    f"`omad models pull piper:{path.name.removesuffix('.onnx')}`.", file=path)
    return path
