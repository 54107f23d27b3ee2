"""The ``f5`` TTS engine: F5-TTS voice cloning on the single GPU lane.

Owns turning text into a 24 kHz WAV with a user's F5-TTS checkpoint and
reference voice: where the model runs (CUDA or the CPU, fp16 or fp32), keeping
it resident on the GPU lane between jobs (``lanes.residency``), splitting long
text into chunks the model handles, retrying CUDA out-of-memory with shorter
chunks and then on the CPU, and recording device, peak memory and real-time
factor for the job record.

It must never download anything (files come only from ``tts.f5.*`` paths or
the brief), never import torch at module import (``import omad.tts.f5`` stays
cheap), and never let a torch exception escape untranslated.
"""

from __future__ import annotations

import hashlib
import re
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, InputError, OmadError, StageFailed, ToolMissing, ToolTimeout, TransientError
from ..lanes import Lane
from ..media.audio_prep import PreparedReference, finish_speech, prepare_reference, read_wav
from ..text.normalize import pack
from . import Synthesis, Voice
from ._f5_imports import INSTALL_HINT, f5_available, require_f5
from ._f5_loader import MEL, LoadedF5, load_f5

if TYPE_CHECKING:
    from ..config import Config, F5Config
    from ..lanes import Lanes

__all__ = ["F5Engine", "doctor_checks", "split_text", "CPU_SLOW_WARNING"]

SAMPLE_RATE = MEL["target_sample_rate"]
HOP = MEL["hop_length"]
REFERENCE_MAX_SECONDS = 12.0
# F5 is trained on clips of up to ~22 s (reference + generated): its own chunker sizes text to fit.
_CLIP_SECONDS = 22.0
_CROSS_FADE_SECONDS = 0.15
_TARGET_RMS = 0.1
# Below this many bytes a chunk cannot usefully be split further after an out-of-memory error.
_MIN_CHUNK_BYTES = 24

CPU_SLOW_WARNING = "F5 will run on the CPU: tens of times slower than real time"


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split at sentence ends, then clause marks, then spaces, into chunks of at most ``max_bytes`` UTF-8 bytes.

    Bytes, not characters, because F5's duration estimate and its own chunker
    count bytes; a single word longer than ``max_bytes`` is kept whole.
    """
    max_bytes = max(1, max_bytes)

    def size(s: str) -> int:
        return len(s.encode("utf-8"))

    def pieces(part: str, level: int) -> list[str]:
        if size(part) <= max_bytes or level == 3:
            return [part]
        pattern = [r"(?<=[.!?…])\s+", r"(?<=[,;:])\s+", r"\s+"][level]
        out: list[str] = []
        for p in re.split(pattern, part):
            if p:
                out.extend(pieces(p, level + 1))
        return out

    return pack(pieces(" ".join(text.split()), 0), max_bytes, size)


@dataclass
class _Placement:
    device: str
    dtype: str
    warnings: list[str]


@dataclass
class _Reference:
    prepared: PreparedReference
    text: str
    samples: npt.NDArray[np.float32]
    #: how Whisper wrote the transcript, when the brief or config gave none
    transcribed: dict[str, Any] = field(default_factory=dict)


class F5Engine:
    """F5-TTS narration. ``synthesize`` loads the model on first use and keeps it warm.

    With ``lanes`` the model is a GPU-lane resident (evicted to fit
    ``gpu.vram_budget_gb``, unloaded after ``gpu.idle_unload_seconds``); without
    it the engine holds the model until ``close()``. The caller holds the GPU
    lane slot around ``synthesize`` (the engine's ``lane`` is ``"gpu"``).
    """

    name = "f5"
    lane = Lane.GPU

    def __init__(self, config: Config, lanes: Lanes | None = None) -> None:
        self.config = config
        self.options = config.tts.f5
        self.lanes = lanes
        self._own: LoadedF5 | None = None
        self._lock = threading.Lock()
        self._references: dict[str, _Reference] = {}
        self.loads = 0

    # -- files -----------------------------------------------------------------------------------------

    def _config_path(self, value: str, key: str, what: str) -> Path:
        if not value:
            raise ConfigError(f"{key} is not set: give the path of the {what} in the configuration.")
        path = self.config.resolve(value)
        if not path.exists():
            raise ConfigError(
                f"the {what} does not exist. Fix {key} (omad never downloads models).",
                file=path,
                details={"key": key},
            )
        return path

    def files(self) -> tuple[Path, Path, Path]:
        """(checkpoint, vocab, vocoder folder), each checked to exist; ConfigError names the key otherwise."""
        ckpt = self._config_path(self.options.checkpoint, "tts.f5.checkpoint", "F5-TTS checkpoint")
        vocab = self._config_path(self.options.vocab, "tts.f5.vocab", "vocab file")
        vocoder = self._config_path(self.options.vocoder, "tts.f5.vocoder", "Vocos vocoder folder")
        for name in ("config.yaml", "pytorch_model.bin"):
            if not (vocoder / name).is_file():
                raise ConfigError(
                    f"the Vocos vocoder folder has no {name}; it needs config.yaml and pytorch_model.bin "
                    "(tts.f5.vocoder).",
                    file=vocoder / name,
                    details={"key": "tts.f5.vocoder"},
                )
        return ckpt, vocab, vocoder

    # -- placement -------------------------------------------------------------------------------------

    def placement(self) -> tuple[str, str, list[str]]:
        """(device, dtype, warnings) this configuration runs on here."""
        p = self._placement()
        return p.device, p.dtype, p.warnings

    def _placement(self) -> _Placement:
        import torch

        warnings: list[str] = []
        cuda = torch.cuda.is_available()
        want = self.options.device
        if want == "cuda" and not cuda:
            if not self.options.cpu_fallback:
                raise ConfigError(
                    "tts.f5.device is 'cuda' but torch sees no CUDA device. Check the driver and the CUDA build of "
                    "torch, or set tts.f5.device: auto."
                )
            warnings.append("tts.f5.device is 'cuda' but no CUDA device is available; ran on the CPU instead.")
        device = "cuda" if cuda and want != "cpu" else "cpu"
        if device == "cpu":
            warnings.append(f"{CPU_SLOW_WARNING}.")
            if self.options.fp16 == "true":
                warnings.append("tts.f5.fp16 is 'true' but half precision applies only on CUDA; ran in fp32.")
            return _Placement("cpu", "bf16" if self.options.cpu_bf16 else "fp32", warnings)
        major, _minor = torch.cuda.get_device_capability()
        fp16 = self.options.fp16 == "true" or (self.options.fp16 == "auto" and major >= 7)
        return _Placement("cuda", "fp16" if fp16 else "fp32", warnings)

    def residency_key(self, device: str, dtype: str) -> str:
        return f"f5:{self.config.resolve(self.options.checkpoint)}:{device}:{dtype}"

    # -- model lifetime --------------------------------------------------------------------------------

    def _load(self, device: str, dtype: str) -> LoadedF5:
        ckpt, vocab, vocoder = self.files()
        try:
            loaded = load_f5(ckpt, vocab, vocoder, device=device, dtype=dtype)
        except OmadError:
            raise
        except Exception as e:
            if _is_oom(e):
                _free_cuda()
                raise TransientError(
                    f"the F5 model does not fit in {device} memory ({_first_line(e)}). Lower gpu.vram_budget_gb "
                    "for other models or free the GPU; the job will be retried.",
                    file=ckpt,
                ) from e
            raise StageFailed(f"loading the F5 model failed: {_first_line(e)}", file=ckpt) from e
        self.loads += 1
        return loaded

    @staticmethod
    def _unload(loaded: LoadedF5) -> None:
        loaded.release()

    @contextmanager
    def _model(self, device: str, dtype: str) -> Iterator[tuple[LoadedF5, bool]]:
        """The warm model (and whether this call loaded it)."""
        loaded_now = False

        def load() -> LoadedF5:
            nonlocal loaded_now
            loaded_now = True
            return self._load(device, dtype)

        if self.lanes is not None:
            vram = self.options.vram_gb if device.startswith("cuda") else 0.0
            with self.lanes.residency.acquire(self.residency_key(device, dtype), vram, load, self._unload) as m:
                yield m, loaded_now
            return
        with self._lock:
            if self._own is not None and (self._own.device, self._own.dtype) != (device, dtype):
                self._own.release()
                self._own = None
            if self._own is None:
                self._own = load()
            yield self._own, loaded_now

    def close(self) -> None:
        """Unload a model this engine holds itself (lane residents are the lanes' to unload)."""
        with self._lock:
            if self._own is not None:
                self._own.release()
                self._own = None

    # -- reference -------------------------------------------------------------------------------------

    def _reference(self, voice: Voice | None, workdir: Path, timeout: float) -> _Reference:
        if voice is not None and voice.reference_audio is not None:
            audio = Path(voice.reference_audio)
            text = voice.reference_text.strip()
            from_brief = True
            if not audio.is_file():
                raise InputError("the reference recording named by the brief does not exist.", file=audio)
        else:
            audio = self._config_path(self.options.reference.audio, "tts.f5.reference.audio", "reference recording")
            text = self.options.reference.text.strip()
            from_brief = False
        digest = hashlib.sha256(audio.read_bytes()).hexdigest()[:16]
        cached = self._references.get(digest)
        if cached is not None and cached.prepared.path.is_file() and (not text or cached.text == _ref_text(text)):
            return cached
        transcribed: dict[str, Any] = {}
        if not text:  # Whisper writes the transcript and the clip is cut at a sentence end (reference_text.py)
            from .reference_text import transcribe_reference

            heard = transcribe_reference(self.config, self.lanes, audio, workdir, max_seconds=REFERENCE_MAX_SECONDS,
                                         timeout=timeout, label=audio.name)
            audio, text, transcribed = heard.audio, heard.text, heard.facts
        dest = workdir / f".f5-reference-{digest}.wav"
        try:
            prepared = prepare_reference(audio, dest, max_seconds=REFERENCE_MAX_SECONDS, timeout=timeout)
        except InputError as e:
            if from_brief:
                raise
            raise ConfigError(
                f"the reference recording cannot be used: {e.message} (tts.f5.reference.audio)",
                file=audio,
                details=e.details,
            ) from e
        samples, _ = read_wav(prepared.path)
        ref = _Reference(prepared=prepared, text=_ref_text(text), samples=samples, transcribed=transcribed)
        self._references[digest] = ref
        return ref

    # -- synthesis -------------------------------------------------------------------------------------

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        """Speak ``text`` with the reference voice into ``out`` (16-bit mono 24 kHz WAV)."""
        started = time.monotonic()
        deadline = started + timeout
        spoken = " ".join(text.split())
        if not spoken:
            raise InputError("there is no text to speak.", file=out.name)
        require_f5()
        self.files()
        out.parent.mkdir(parents=True, exist_ok=True)
        ref = self._reference(voice, out.parent, timeout)
        place = self._placement()
        speed = voice.speed if voice is not None and voice.speed else self.options.speed
        facts: dict[str, Any] = {
            "engine": "f5",
            "nfe_step": self.options.nfe_step,
            "cfg_strength": self.options.cfg_strength,
            "sway_sampling_coef": self.options.sway_sampling_coef,
            "speed": speed,
            "checkpoint": Path(self.options.checkpoint).name,
            "reference": {**ref.prepared.facts(), **ref.transcribed},
        }
        warnings = list(place.warnings) + list(ref.prepared.warnings)
        max_bytes = self._max_chunk_bytes(ref, speed)
        chunks = split_text(spoken, max_bytes)
        _reset_peak(place.device)
        with self._model(place.device, place.dtype) as (loaded, loaded_now):
            # The real-time factor counts generation only; a cold load is recorded apart.
            synth_started = time.monotonic()
            facts["model_loaded"] = loaded_now
            facts["load_seconds"] = round(loaded.load_seconds, 2) if loaded_now else 0.0
            facts["model"] = loaded.shape.as_dict()
            run = _ChunkRunner(self, loaded, ref, deadline, self.options.model_copy(update={"speed": speed}))
            try:
                waves, retries, fallback = run.all(chunks)
            finally:
                peak = _peak_vram_gb(place.device)
            synth_seconds = time.monotonic() - synth_started
        device = "cpu" if fallback else place.device
        dtype = "fp32" if fallback else place.dtype
        if fallback:
            warnings.append(
                "CUDA ran out of memory even with short chunks; the rest of the narration ran on the CPU "
                f"({CPU_SLOW_WARNING.split(': ')[1]})."
            )
        wave = _cross_fade(waves, int(_CROSS_FADE_SECONDS * SAMPLE_RATE))
        duration = finish_speech(
            wave,
            SAMPLE_RATE,
            out,
            loudness_lufs=self.config.audio.loudness_lufs,
            true_peak_db=self.config.audio.true_peak_db,
            timeout=max(30.0, deadline - time.monotonic()),
        )
        rtf = synth_seconds / duration if duration > 0 else None
        facts.update(
            device=device,
            dtype=dtype,
            chunks=len(waves),
            oom_retries=retries,
            cpu_fallback_used=fallback,
            synth_seconds=round(synth_seconds, 2),
            audio_seconds=round(duration, 3),
            rtf=None if rtf is None else round(rtf, 3),
        )
        if peak is not None:
            facts["peak_vram_gb"] = round(peak, 3)
            if self.lanes is not None:
                self.lanes.residency.note_peak(peak)
        facts["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if device == "cpu" and rtf is not None:
            warnings = [w for w in warnings if not w.startswith(CPU_SLOW_WARNING)]
            warnings.append(f"{CPU_SLOW_WARNING} (this narration: RTF {rtf:.1f}).")
        facts["warnings"] = warnings
        return Synthesis(path=out, duration=duration, sample_rate=SAMPLE_RATE, facts=facts)

    @staticmethod
    def _max_chunk_bytes(ref: _Reference, speed: float) -> int:
        # F5's own rule: the reference's bytes per second times the seconds left in a ~22 s clip.
        ref_seconds = ref.prepared.duration
        per_second = len(ref.text.encode("utf-8")) / max(ref_seconds, 0.5)
        return max(_MIN_CHUNK_BYTES, int(per_second * max(_CLIP_SECONDS - ref_seconds, 4.0) * speed))


class _ChunkRunner:
    """Runs chunks in order; CUDA out-of-memory makes chunks shorter, then moves the rest to the CPU."""

    def __init__(self, engine: F5Engine, loaded: LoadedF5, ref: _Reference, deadline: float,
                 options: F5Config) -> None:
        self.engine = engine
        self.options = options
        self.loaded = loaded
        self.ref = ref
        self.deadline = deadline
        self.cpu: LoadedF5 | None = None
        self.evicted_others = False

    def all(self, chunks: list[str]) -> tuple[list[npt.NDArray[np.float32]], int, bool]:
        waves: list[npt.NDArray[np.float32]] = []
        retries = 0
        queue = list(chunks)
        try:
            while queue:
                chunk = queue.pop(0)
                if time.monotonic() > self.deadline:
                    raise ToolTimeout(
                        f"F5 narration ran past its timeout with {len(queue) + 1} chunk(s) left; it will be retried. "
                        "On the CPU F5 is very slow: use a GPU or the espeak engine for long texts."
                    )
                model = self.cpu or self.loaded
                try:
                    waves.append(self.engine_chunk(model, chunk))
                except Exception as e:
                    if not (_is_oom(e) and model.device.startswith("cuda")):
                        raise _translate(e, model.device) from e
                    _free_cuda()
                    retries += 1
                    queue[:0] = self._after_oom(chunk, e)
        finally:
            if self.cpu is not None:
                self.cpu.release()
        return waves, retries, self.cpu is not None

    def _after_oom(self, chunk: str, error: BaseException) -> list[str]:
        lanes = self.engine.lanes
        if not self.evicted_others and lanes is not None:
            # Another resident (an Ollama model) may hold the VRAM we need: make room, same chunk again.
            self.evicted_others = True
            own = self.engine.residency_key(self.loaded.device, self.loaded.dtype)
            if lanes.residency.evict(lambda key: key != own, reason="f5-oom"):
                return [chunk]
        size = len(chunk.encode("utf-8"))
        if size > _MIN_CHUNK_BYTES:
            shorter = split_text(chunk, max(_MIN_CHUNK_BYTES, size // 2))
            if len(shorter) > 1:
                return shorter
        if not self.engine.options.cpu_fallback:
            raise TransientError(
                "CUDA ran out of memory even for the shortest chunk. Free the GPU (gpu.vram_budget_gb, other "
                "programs) or set tts.f5.cpu_fallback: true; the job will be retried.",
                details={"chunk": chunk[:80]},
            ) from error
        self.cpu = self.engine._load("cpu", "fp32")
        return [chunk]

    def engine_chunk(self, loaded: LoadedF5, chunk: str) -> npt.NDArray[np.float32]:
        return synthesize_chunk(loaded, self.ref.samples, self.ref.text, chunk, self.options)


def synthesize_chunk(
    loaded: LoadedF5, ref_samples: npt.NDArray[np.float32], ref_text: str, text: str, options: Any
) -> npt.NDArray[np.float32]:
    """One chunk through the DiT and Vocos, as f5-tts's ``infer_batch_process`` does for a single chunk.

    ``options`` carries nfe_step, cfg_strength, sway_sampling_coef and speed
    (an ``F5Config``). Chunks run one at a time: f5-tts runs them in parallel
    threads, which multiplies peak VRAM on a 4 GB card.
    """
    import torch
    from f5_tts.model.utils import convert_char_to_pinyin

    if loaded.model is None:
        raise StageFailed("the F5 model was unloaded while in use.")
    device = loaded.device
    audio = torch.from_numpy(np.ascontiguousarray(ref_samples)).unsqueeze(0).to(torch.float32)
    rms = float(torch.sqrt(torch.mean(torch.square(audio))))
    if rms < _TARGET_RMS:
        audio = audio * _TARGET_RMS / max(rms, 1e-6)
    audio = audio.to(device)
    speed = float(options.speed)
    if len(text.encode("utf-8")) < 10:
        speed = 0.3  # f5-tts's rule: very short text gets a generous duration
    ref_frames = audio.shape[-1] // HOP
    duration = ref_frames + int(ref_frames / len(ref_text.encode("utf-8")) * len(text.encode("utf-8")) / speed)
    tokens = convert_char_to_pinyin([ref_text + text])
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if loaded.dtype == "bf16"
        else nullcontext()
    )
    with torch.inference_mode(), autocast:
        generated, _ = loaded.model.sample(
            cond=audio,
            text=tokens,
            duration=duration,
            steps=int(options.nfe_step),
            cfg_strength=float(options.cfg_strength),
            sway_sampling_coef=float(options.sway_sampling_coef),
        )
    with torch.inference_mode():
        mel = generated.to(torch.float32)[:, ref_frames:, :].permute(0, 2, 1)
        wave = loaded.vocoder.decode(mel)
        if rms < _TARGET_RMS:
            wave = wave * rms / _TARGET_RMS
        result: npt.NDArray[np.float32] = wave.squeeze().detach().to("cpu", torch.float32).numpy().copy()
    return result.reshape(-1)


def _ref_text(text: str) -> str:
    # F5 expects the reference transcript to end a sentence before the new text starts.
    text = " ".join(text.split())
    if text.endswith(". ") or text.endswith("."):
        return text.rstrip() + " "
    if text[-1:] in "!?…":
        return text + " "
    return text + ". "


def _cross_fade(waves: list[npt.NDArray[np.float32]], samples: int) -> npt.NDArray[np.float32]:
    if not waves:
        return np.zeros(0, dtype=np.float32)
    out = waves[0]
    for nxt in waves[1:]:
        n = min(samples, len(out), len(nxt))
        if n <= 0:
            out = np.concatenate([out, nxt])
            continue
        fade = np.linspace(0.0, 1.0, n, dtype=np.float32)
        out = np.concatenate([out[:-n], out[-n:] * (1.0 - fade) + nxt[:n] * fade, nxt[n:]])
    return out.astype(np.float32, copy=False)


def _is_oom(e: BaseException) -> bool:
    try:
        import torch
    except ImportError:
        return False
    if isinstance(e, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


def _translate(e: BaseException, device: str) -> OmadError:
    """A torch/f5 exception from a synthesis as an omad error (the caller raises it ``from`` e)."""
    if isinstance(e, OmadError):
        return e
    if _is_oom(e):
        return TransientError(
            f"F5 ran out of {'CPU' if device == 'cpu' else 'GPU'} memory ({_first_line(e)}); "
            "the job will be retried. Shorter texts or more free memory help."
        )
    return StageFailed(f"F5 synthesis failed on {device}: {type(e).__name__}: {_first_line(e)}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak_vram_gb(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return float(torch.cuda.max_memory_allocated()) / 2**30


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
        checks.append(("f5: files", True, "F5 is not configured (tts.engine: espeak); nothing to check"))
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
