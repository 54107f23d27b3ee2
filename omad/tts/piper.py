"""The ``piper`` TTS engine: neural voices on the CPU through piper-tts and ONNX Runtime.

Owns loading a Piper voice (``.onnx`` + ``.onnx.json``), keeping it resident
between jobs in a process-wide cache (keyed by path and mtime, so a voice
pulled again is reloaded; dropped after ``tts.piper.idle_unload_seconds``
unused), speaking already-normalised text into a 16-bit mono WAV at the
voice's rate, and timing each word from Piper's own phoneme alignment when
the voice exposes its durations (``omad.tts.piper_timing``; otherwise the
narration aligns it, as for F5).

piper-tts is GPL-3.0 and stays the optional extra ``omad[piper]``: it is
imported only when a Piper voice is loaded, never at module import. Its
errors and ONNX Runtime's are translated into omad's at this boundary
(``map_error``; a test walks ONNX Runtime's exception classes). It never
downloads a voice: ``omad models pull`` does that, on request.
"""

from __future__ import annotations

import importlib.metadata
import json
import resource
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputError, OmadError, StageFailed, ToolMissing, ToolTimeout, TransientError
from ..lanes import Lane
from . import Synthesis, Voice
from .piper_files import INSTALL_HINT, PULL_HINT, resolve_voice
from .piper_timing import SentenceAlignment, words_from_alignment

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["PiperEngine", "VoiceCache", "VOICES", "map_error", "LOAD_ERRORS", "RUN_ERRORS", "piper_version"]


def piper_version() -> str:
    try:
        return importlib.metadata.version("piper-tts")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _require_piper() -> Any:
    try:
        import piper
    except ImportError as e:
        raise ToolMissing(f"the piper-tts package is not installed ({e}); Piper voices need the omad[piper] extra "
                          f"(GPL-3.0). Install it with `{INSTALL_HINT}`, or set tts.engine: espeak.") from e
    return piper


# -- errors ------------------------------------------------------------------------------------------

def _ort_classes() -> dict[str, type[BaseException]]:
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError:
        return {}
    return {k: v for k, v in vars(state).items() if isinstance(v, type) and issubclass(v, BaseException)}


#: ONNX Runtime errors while loading a voice: the file is not a usable Piper voice.
LOAD_ERRORS = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph",
               "NotImplemented", "ModelRequiresCompilation", "NotFound", "ModelLoaded", "RuntimeException",
               "EPFail", "EngineError")
#: ONNX Runtime errors that may pass when tried again (the run was cancelled, the device went away).
RETRY_ERRORS = ("ModelLoadCanceled", "DeviceReset")
#: ONNX Runtime errors while speaking: the voice took the inputs but failed.
RUN_ERRORS = ("Fail", "InvalidArgument", "RuntimeException", "EPFail", "EngineError", "NotImplemented",
              "InvalidGraph", "NotFound", "NoSuchFile", "NoModel", "InvalidProtobuf", "ModelLoaded",
              "ModelRequiresCompilation")


def map_error(e: BaseException, voice: Path, *, loading: bool) -> OmadError:
    """An exception from piper-tts or ONNX Runtime as the omad error its policy needs (raise it ``from`` e)."""
    if isinstance(e, OmadError):
        return e
    name = type(e).__name__
    detail = (str(e).strip().splitlines() or [name])[0][:300]
    details = {"error": name, "voice": voice.name}
    if isinstance(e, MemoryError) or "bad_alloc" in detail or "out of memory" in detail.lower():
        return TransientError(f"not enough memory to {'load' if loading else 'run'} the Piper voice ({detail}); "
                              "the job will be retried. Fewer CPU jobs at once (lanes.cpu) leave it more.",
                              file=voice, details=details)
    ort = _ort_classes()
    if name in RETRY_ERRORS and isinstance(e, tuple(ort.values())):
        return TransientError(f"ONNX Runtime stopped the Piper voice ({name}: {detail}); the job will be retried.",
                              file=voice, details=details)
    if loading:
        if isinstance(e, OSError):
            return ConfigError(f"cannot read the Piper voice ({e.strerror or detail}).", file=voice, details=details)
        # onnx (patching the durations in) parses the file with protobuf first: a corrupt file fails there
        parser = type(e).__module__.startswith(("google.protobuf", "onnx"))
        if isinstance(e, KeyError | ValueError | TypeError | json.JSONDecodeError) or name in LOAD_ERRORS or parser:
            return ConfigError(f"is not a Piper voice omad can load ({name}: {detail}). Pull it again "
                               f"(`{PULL_HINT}` for the pt-BR voice) or fix tts.piper.voice.",
                               file=voice, details=details)
        return StageFailed(f"loading the Piper voice failed ({name}: {detail}).", file=voice, details=details)
    if name == "InvalidArgument" or isinstance(e, KeyError):
        return ConfigError(f"the Piper voice refused its inputs ({detail}); its .onnx and .onnx.json may not "
                           "belong together. Pull the voice again.", file=voice, details=details)
    if isinstance(e, OSError):
        return TransientError(f"reading or writing audio failed ({e.strerror or detail}); the job will be retried.",
                              file=voice, details=details)
    return StageFailed(f"Piper failed to speak ({name}: {detail}).", file=voice, details=details)


# -- the resident voices -----------------------------------------------------------------------------

@dataclass
class _Resident:
    voice: Any  # piper.PiperVoice
    alignment: bool  # whether the durations tensor is an output (patched in memory or in the file)
    load_seconds: float
    last_used: float
    users: int = 0


class VoiceCache:
    """Loaded voices shared by every job of the process, each dropped after ``idle`` seconds unused.

    Keyed by (path, mtime, size): replacing a voice file loads the new one. A
    voice in use is never dropped. ``sweep`` runs on a background timer; tests
    call it with a ``now`` of their choosing instead of waiting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._voices: dict[tuple[str, int, int], _Resident] = {}
        self._loading: dict[tuple[str, int, int], threading.Lock] = {}
        self._timer: threading.Timer | None = None
        self.idle_seconds = 300.0
        self.loads = 0

    @staticmethod
    def key(path: Path) -> tuple[str, int, int]:
        st = path.stat()
        return str(path.resolve()), st.st_mtime_ns, st.st_size

    def resident(self) -> list[str]:
        """The paths of the voices loaded now."""
        with self._lock:
            return [k[0] for k in self._voices]

    @contextmanager
    def use(self, path: Path, idle_seconds: float,
            load: Callable[[Path], _Resident]) -> Iterator[tuple[_Resident, bool]]:
        """The loaded voice at ``path`` (loading it once if needed) and whether this call loaded it."""
        self.idle_seconds = idle_seconds
        try:
            key = self.key(path)
        except OSError as e:
            raise ConfigError(f"the Piper voice cannot be read ({e.strerror or e}).", file=path) from e
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        loaded_now = False
        with gate:  # one load per voice even when two jobs start together
            with self._lock:
                resident = self._voices.get(key)
                for other in [k for k in self._voices if k[0] == key[0] and k != key and not self._voices[k].users]:
                    del self._voices[other]  # an older copy of a file pulled again
            if resident is None:
                resident = load(path)
                loaded_now = True
                with self._lock:
                    self._voices[key] = resident
                    self.loads += 1
            with self._lock:
                resident.users += 1
        try:
            yield resident, loaded_now
        finally:
            with self._lock:
                resident.users -= 1
                resident.last_used = time.monotonic()
            self._schedule()

    def sweep(self, now: float | None = None) -> list[str]:
        """Drop voices unused for ``idle_seconds`` (as of ``now``); returns the paths dropped."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stale = [k for k, r in self._voices.items() if not r.users and now - r.last_used >= self.idle_seconds]
            for k in stale:
                del self._voices[k]
                self._loading.pop(k, None)
            pending = bool(self._voices)
        if pending:
            self._schedule()
        return [k[0] for k in stale]

    def clear(self) -> None:
        """Drop every voice not in use (shutdown, tests)."""
        self.sweep(now=float("inf"))

    def _schedule(self) -> None:
        with self._lock:
            if self._timer is not None and self._timer.is_alive():
                return
            delay = max(1.0, self.idle_seconds)
            self._timer = threading.Timer(delay, self.sweep)
            self._timer.daemon = True
            self._timer.name = "omad-piper-unload"
            self._timer.start()


#: The process's resident voices.
VOICES = VoiceCache()


def _alignment_possible() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


def _load(path: Path) -> _Resident:
    piper = _require_piper()
    started = time.monotonic()
    # With the onnx package, piper-tts exposes a voice's duration tensor in memory (the file is not
    # changed), so word timing comes from the voice itself; a voice it cannot patch loads as it is.
    patch = _alignment_possible()
    try:
        voice = piper.PiperVoice.load(path, config_path=path.with_name(path.name + ".json"),
                                      include_alignments=patch)
    except Exception as e:
        raise map_error(e, path, loading=True) from e
    outputs = [o.name for o in voice.session.get_outputs()]
    return _Resident(voice=voice, alignment=len(outputs) > 1, load_seconds=time.monotonic() - started,
                     last_used=time.monotonic())


def _phonemizer(voice: Any) -> Callable[[str], list[str]]:
    """One token's phonemes as the voice makes them (for matching words espeak joined)."""
    def phonemize(token: str) -> list[str]:
        try:
            return [p for sentence in voice.phonemize(token) for p in sentence]
        except Exception:  # a token espeak cannot take weighs one phoneme: the match still runs
            return ["?"]
    return phonemize


# -- the engine --------------------------------------------------------------------------------------

class PiperEngine:
    """Speaks with a Piper voice into a 16-bit mono WAV at the voice's own sample rate."""

    name = "piper"
    lane = Lane.CPU

    def __init__(self, config: Config, cache: VoiceCache | None = None) -> None:
        self.config = config
        self.options = config.tts.piper
        self.cache = cache or VOICES

    def voice_path(self, voice: Voice | None) -> Path:
        """The voice to speak with: the brief's ``voice.name``, else ``tts.piper.voice``, else the default."""
        named = voice.name if voice is not None and voice.name else ""
        return resolve_voice(self.config, named, from_brief=bool(named))

    def _speaker(self, loaded: Any, voice: Voice | None, path: Path) -> int | None:
        from_brief = voice is not None and bool(voice.speaker)
        wanted = (voice.speaker if from_brief and voice is not None else self.options.speaker).strip()
        cfg = loaded.config
        if cfg.num_speakers <= 1:
            return None
        if not wanted:
            return int(cfg.default_speaker_id)
        names = dict(cfg.speaker_id_map)
        if wanted in names:
            return int(names[wanted])
        if wanted.isdigit() and int(wanted) < cfg.num_speakers:
            return int(wanted)
        listing = ", ".join(list(names)[:12]) or f"0-{cfg.num_speakers - 1}"
        message = (f"the Piper voice {path.name.removesuffix('.onnx')} has no speaker '{wanted}'. "
                   f"Its speakers: {listing}.")
        if from_brief:
            raise InputError(message + " Fix voice.speaker in the brief.")
        raise ConfigError(message + " Fix tts.piper.speaker.", file=path)

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        """Speak already-normalised ``text`` into ``out``; words are timed from the voice when it can say."""
        spoken = " ".join(text.split())
        if not spoken:
            raise InputError("there is no text to speak.", file=out.name)
        deadline = time.monotonic() + timeout
        path = self.voice_path(voice)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with self.cache.use(path, self.options.idle_unload_seconds, _load) as (resident, loaded_now):
            piper = _require_piper()
            pv = resident.voice
            speed = voice.speed if voice is not None and voice.speed else self.options.speed
            noise = (voice.noise_scale if voice is not None and voice.noise_scale is not None
                     else self.options.noise_scale)
            noise_w = (voice.noise_w_scale if voice is not None and voice.noise_w_scale is not None
                       else self.options.noise_w_scale)
            syn = piper.SynthesisConfig(
                speaker_id=self._speaker(pv, voice, path),
                length_scale=float(pv.config.length_scale) / speed,
                noise_scale=noise,
                noise_w_scale=noise_w,
            )
            started = time.monotonic()
            audio: list[bytes] = []
            sentences: list[SentenceAlignment] = []
            offset = 0
            try:
                for chunk in pv.synthesize(spoken, syn, include_alignments=resident.alignment):
                    data = chunk.audio_int16_bytes
                    audio.append(data)
                    if chunk.phoneme_id_samples is not None:
                        sentences.append(SentenceAlignment(chunk.phonemes, chunk.phoneme_ids,
                                                           chunk.phoneme_id_samples, offset))
                    offset += len(data) // 2
                    if time.monotonic() > deadline:
                        raise ToolTimeout(
                            f"Piper ran longer than {timeout:.0f}s on {len(spoken)} characters and was stopped; it "
                            "will be retried. Raise jobs.stage_timeouts if the text is very long.",
                            details={"characters": len(spoken)})
            except Exception as e:
                raise map_error(e, path, loading=False) from e
            wall = time.monotonic() - started
            rate = int(pv.config.sample_rate)
            id_map = pv.config.phoneme_id_map
            speaker = syn.speaker_id
        if offset == 0:
            raise StageFailed(f"Piper produced no audio for {spoken[:60]!r}; the text may hold nothing it can "
                              "pronounce.", file=path)
        try:
            with wave.open(str(out), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes(b"".join(audio))
        except OSError as e:
            out.unlink(missing_ok=True)
            raise StageFailed(f"cannot write the speech ({e.strerror or e}).", file=out) from e
        duration = offset / rate
        words = None
        if sentences and len(sentences) == len(audio):
            words = words_from_alignment(spoken, sentences, id_map, rate, phonemize=_phonemizer(resident.voice))
        facts: dict[str, Any] = {
            "engine": self.name,
            "engine_version": piper_version(),
            "voice": path.name.removesuffix(".onnx"),
            "sample_rate": rate,
            "length_scale": round(float(syn.length_scale or 1.0), 4),
            "noise_scale": noise,
            "noise_w_scale": noise_w,
            "model_loaded": loaded_now,
            "load_seconds": round(resident.load_seconds, 3) if loaded_now else 0.0,
            "alignment": "voice" if words is not None else ("voice (words did not match)" if sentences else "none"),
            "rtf": round(wall / duration, 4) if duration else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        if speaker is not None:
            facts["speaker"] = speaker
        return Synthesis(path=out, duration=duration, sample_rate=rate, facts=facts, words=words)
