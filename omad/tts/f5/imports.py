"""Importing the optional F5 stack (torch, torchaudio, f5-tts, vocos) on demand.

This module owns the one place where omad imports the ``omad[f5]`` extra, and the
workaround that lets a CPU-only torch load PyPI's torchaudio: every torchaudio
wheel on PyPI is a CUDA build whose compiled extension cannot load beside a CPU
torch (``libc10_cuda.so`` missing), yet F5 only uses torchaudio's pure-Python
parts (MelSpectrogram, Resample). When, and only when, the real import fails
that way, torchaudio is imported again with its extension marked unavailable,
which is the state torchaudio itself supports for builds without the extension.

It must never be imported at omad start-up by anything but the F5 engine, and
it never downloads anything.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any

from ...errors import ToolMissing

__all__ = ["INSTALL_HINT", "require_f5", "import_torchaudio", "f5_available"]

INSTALL_HINT = "pip install 'omad[f5]' (in a checkout: .venv/bin/pip install -e '.[f5]')"

_lock = threading.Lock()
_torchaudio_shimmed = False


def _purge(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def _fail_if_no_align(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{func.__name__} needs torchaudio's compiled extension, which could not be loaded beside this torch."
        )

    return wrapped


def _no_extension_module(package_dir: str) -> types.ModuleType:
    """A stand-in for ``torchaudio._extension`` saying "no compiled extension".

    Its ``__path__`` points at the real folder so ``torchaudio._extension.utils``
    still imports from the installed file if something asks for it.
    """
    mod = types.ModuleType("torchaudio._extension")
    mod.__path__ = [f"{package_dir}/_extension"]
    mod.__dict__.update(
        _IS_TORCHAUDIO_EXT_AVAILABLE=False,
        _IS_ALIGN_AVAILABLE=False,
        fail_if_no_align=_fail_if_no_align,
        _load_lib=lambda lib: False,
        _check_cuda_version=lambda: None,
    )
    return mod


def import_torchaudio() -> types.ModuleType:
    """Import torchaudio, sidestepping an extension that cannot load beside this torch."""
    with _lock:
        return _import_torchaudio_locked()


def _import_torchaudio_locked() -> types.ModuleType:
    global _torchaudio_shimmed
    loaded = sys.modules.get("torchaudio")
    if loaded is not None and hasattr(loaded, "transforms"):
        return loaded
    try:
        return importlib.import_module("torchaudio")
    except OSError as e:
        # Only a compiled library that fails to load is worked around; a torchaudio
        # that is absent or broken in another way is reported as it is.
        first_error: BaseException = e
    _purge("torchaudio")
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or not spec.submodule_search_locations:
        raise first_error
    package_dir = list(spec.submodule_search_locations)[0]
    sys.modules["torchaudio._extension"] = _no_extension_module(package_dir)
    try:
        module = importlib.import_module("torchaudio")
    except Exception:
        _purge("torchaudio")
        raise first_error from None
    _torchaudio_shimmed = True
    return module


def torchaudio_shimmed() -> bool:
    """Whether torchaudio was imported without its compiled extension (recorded in doctor)."""
    return _torchaudio_shimmed


def require_f5() -> None:
    """Import the F5 stack or raise one ToolMissing naming the install command."""
    missing: list[str] = []
    for name in ("torch", "f5_tts", "vocos", "safetensors"):
        if name in sys.modules and sys.modules[name] is None:
            missing.append(name)
            continue
        try:
            if name != "f5_tts" and importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    if not missing:
        try:
            with _lock, warnings.catch_warnings():
                # The stack warns at import about its own deprecated internals (torch.jit.script in
                # x_transformers, ...): nothing a user of omad can act on, so not passed on.
                warnings.simplefilter("ignore")
                importlib.import_module("torch")
                _import_torchaudio_locked()
                importlib.import_module("vocos")
                importlib.import_module("f5_tts.model")
                importlib.import_module("f5_tts.model.utils")
        except ImportError as e:
            missing.append(e.name or str(e))
        except OSError as e:
            raise ToolMissing(
                f"the F5-TTS extra is installed but does not load ({e}). Reinstall it with {INSTALL_HINT}.",
                details={"install": INSTALL_HINT},
            ) from e
    if missing:
        raise ToolMissing(
            f"the F5-TTS engine needs the optional packages {', '.join(sorted(set(missing)))}, which are not "
            f"installed. Install them with {INSTALL_HINT}, or set tts.engine: espeak.",
            details={"missing": sorted(set(missing)), "install": INSTALL_HINT},
        )


def f5_available() -> tuple[bool, str]:
    """(installed and importable, message) without raising: for ``omad doctor``."""
    try:
        require_f5()
    except ToolMissing as e:
        return False, e.message
    if _torchaudio_shimmed:
        return True, (
            "torch, vocos and f5-tts import; torchaudio without its compiled extension (a CUDA build beside a CPU "
            "torch), which F5 does not need"
        )
    return True, "torch, torchaudio, vocos and f5-tts import"
