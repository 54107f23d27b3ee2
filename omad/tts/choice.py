"""``tts.engine: auto``: which engine narrates on this machine, and why.

F5 when a CUDA GPU and an F5 checkpoint are there (a human-sounding clone);
else Piper when piper-tts is installed and a voice is (a natural voice on the
CPU); else espeak-ng, which is always there. The reason goes into the job's
sidecar, so a person can tell why a narration sounds the way it does.

Deciding never loads a model: torch is imported (to ask for CUDA) only when
an F5 checkpoint is configured and exists, and the answer is kept for the
life of the process.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from .piper_files import default_voice, piper_available, resolve_voice

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["EngineChoice", "choose_engine", "cuda_available", "doctor_checks", "looks_like_piper_voice"]


@dataclass(frozen=True)
class EngineChoice:
    """The engine ``auto`` picked and the reason, for the sidecar (``{"engine": ..., "why": ...}``)."""

    engine: str
    why: str

    def to_dict(self) -> dict[str, str]:
        return {"engine": self.engine, "why": self.why}


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device (asked once per process)."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install is "no GPU" for the choice; F5's own checks say more
        return False


def _f5_reason(config: Config) -> tuple[bool, str]:
    ckpt = config.tts.f5.checkpoint
    if not ckpt:
        return False, "no F5 checkpoint is configured (tts.f5.checkpoint)"
    if not config.resolve(ckpt).is_file():
        return False, f"the F5 checkpoint {ckpt} does not exist"
    if config.tts.f5.device == "cpu":
        return False, "tts.f5.device is 'cpu' (F5 on the CPU is far slower than real time)"
    if not cuda_available():
        return False, "there is no CUDA GPU for F5"
    return True, f"a CUDA GPU and the F5 checkpoint {config.resolve(ckpt).name} are there"


def _piper_reason(config: Config) -> tuple[bool, str]:
    if not piper_available():
        return False, "piper-tts is not installed (the omad[piper] extra)"
    if config.tts.piper.voice.strip():
        from ..errors import ConfigError

        try:
            path = resolve_voice(config, "")
        except ConfigError as e:
            return False, f"the configured Piper voice is not usable ({e.message})"
        return True, f"the Piper voice {path.name.removesuffix('.onnx')} is installed (tts.piper.voice)"
    voice = default_voice(config)
    if voice is None:
        return False, f"no Piper voice is installed in {config.models_dir() / 'piper'}"
    return True, f"the Piper voice {voice.name} is installed"


def looks_like_piper_voice(name: str) -> bool:
    """Whether a voice name is Piper's ``<lang>_<REGION>-<name>-<quality>`` (espeak-ng's are ``pt-br``, ``en``)."""
    head = name.split("-", 1)[0]
    return "_" in head and "-" in name or name.endswith(".onnx")


def choose_engine(config: Config, requested: str | None = None, voice_name: str = "") -> EngineChoice:
    """What the brief's ``voice.engine`` (``requested``), else ``tts.engine``, means on this machine.

    Under ``auto``, a brief that names a voice but no engine is spoken by the
    engine the voice belongs to: an espeak-ng voice (``pt-br``) by espeak, a
    Piper voice (``pt_BR-faber-medium``) by Piper.
    """
    if requested and requested != "auto":
        return EngineChoice(requested, f"the brief asks for {requested} (voice.engine)")
    if not requested and config.tts.engine != "auto":
        return EngineChoice(config.tts.engine, f"tts.engine is '{config.tts.engine}'")
    if voice_name.strip():
        if looks_like_piper_voice(voice_name.strip()):
            return EngineChoice("piper", f"auto: the brief names the Piper voice {voice_name.strip()}")
        return EngineChoice("espeak", f"auto: the brief names the espeak-ng voice {voice_name.strip()}")
    f5_ok, f5_why = _f5_reason(config)
    if f5_ok:
        return EngineChoice("f5", f"auto: {f5_why}")
    piper_ok, piper_why = _piper_reason(config)
    if piper_ok:
        return EngineChoice("piper", f"auto: {piper_why}; not F5: {f5_why}")
    return EngineChoice("espeak", f"auto: espeak-ng is always there; not F5: {f5_why}; not Piper: {piper_why}")


def doctor_checks(config: Config) -> list[tuple[str, bool, str]]:
    """(name, ok, message) lines for ``omad doctor``: what narrates here, and the Piper extra and voices."""
    from .piper_files import INSTALL_HINT, PULL_HINT, installed_voices

    choice = choose_engine(config)
    checks = [("tts: engine", True, f"{choice.engine} ({choice.why})")]
    if not piper_available():
        checks.append(("piper: extra installed", False, f"piper-tts is not installed: {INSTALL_HINT} (GPL-3.0)"))
        return checks
    checks.append(("piper: extra installed", True, "piper-tts imports"))
    voices = installed_voices(config)
    if voices:
        checks.append(("piper: voices", True, f"{len(voices)} in {config.models_dir() / 'piper'}: "
                       + ", ".join(v.name for v in voices[:8])))
    else:
        checks.append(("piper: voices", False, f"none in {config.models_dir() / 'piper'}: {PULL_HINT}"))
    return checks
