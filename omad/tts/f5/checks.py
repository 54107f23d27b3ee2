"""`omad doctor`'s checks of the F5 engine: the extra, CUDA, and the checkpoint, vocab, vocoder and
reference it would load."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import ConfigError, ToolMissing
from .imports import INSTALL_HINT, f5_available

if TYPE_CHECKING:
    from ...config import Config
from . import F5Engine
from .synth import CPU_SLOW_WARNING


def doctor_checks(config: Config) -> list[tuple[str, bool, str]]:
    """(name, ok, message) lines about F5 for ``omad doctor``; never loads the model."""
    checks: list[tuple[str, bool, str]] = []
    opts = config.tts.f5
    installed, message = f5_available()
    checks.append(("f5: extra installed", installed, message if installed else f"{message}"))
    if installed:
        import torch

        if opts.device == "cpu":
            checks.append(("f5: CUDA", False, f"tts.f5.device is 'cpu': {CPU_SLOW_WARNING}."))
        elif torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            fp16 = opts.fp16 == "true" or (opts.fp16 == "auto" and major >= 7)
            checks.append(
                (
                    "f5: CUDA",
                    True,
                    f"{torch.cuda.get_device_name()} (compute {major}.{minor}), {'fp16' if fp16 else 'fp32'}",
                )
            )
        else:
            checks.append(("f5: CUDA", False, f"no CUDA device: {CPU_SLOW_WARNING}."))
    else:
        checks.append(("f5: CUDA", False, f"unknown until the extra is installed: {INSTALL_HINT}"))
    if config.tts.engine != "f5" and not opts.checkpoint:
        checks.append(("f5: files", True, f"F5 is not configured (tts.engine: {config.tts.engine}); nothing to check"))
        return checks
    engine = F5Engine(config, None)
    for name, action in (
        ("f5: checkpoint, vocab, vocoder", engine.files),
        (
            "f5: reference voice",
            lambda: engine._config_path(opts.reference.audio, "tts.f5.reference.audio", "reference recording"),
        ),
    ):
        checks.append(_check(name, action))
    if opts.reference.audio and not opts.reference.text.strip():
        checks.append(("f5: reference transcript", False, "tts.f5.reference.text is empty: give the exact transcript"))
    return checks


def _check(name: str, action: Callable[[], object]) -> tuple[str, bool, str]:
    try:
        result = action()
    except (ConfigError, ToolMissing) as e:
        return name, False, str(e)
    paths = result if isinstance(result, tuple) else (result,)
    return name, True, ", ".join(str(p) for p in paths)
