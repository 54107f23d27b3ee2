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
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, InputError, OmadError, StageFailed, TransientError
from ...lanes import Lane
from ...media.audio_prep import finish_speech, prepare_reference, read_wav
from .. import Synthesis, Voice
from .imports import require_f5
from .loader import LoadedF5, load_f5

if TYPE_CHECKING:
    from ...config import Config
    from ...lanes import Lanes
from .synth import (  # noqa: F401 - the engine's parts, and names the package has always offered
    _CLIP_SECONDS,
    _CROSS_FADE_SECONDS,
    _MIN_CHUNK_BYTES,
    _TARGET_RMS,
    CPU_SLOW_WARNING,
    HOP,
    REFERENCE_MAX_SECONDS,
    SAMPLE_RATE,
    _ChunkRunner,
    _cross_fade,
    _first_line,
    _free_cuda,
    _is_oom,
    _peak_vram_gb,
    _Placement,
    _ref_text,
    _Reference,
    _reset_peak,
    _translate,
    split_text,
    synthesize_chunk,
)

__all__ = ["F5Engine", "doctor_checks", "split_text", "CPU_SLOW_WARNING"]


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
            from ..reference_text import transcribe_reference

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


# At the end: the checks use the engine defined above.
from .checks import doctor_checks  # noqa: E402
