"""F5 on chunks of text: the chunk runner (shorter chunks, then the CPU, after CUDA runs out of memory),
one chunk's synthesis, cross-fades, and torch's errors translated to omad's.

Part of the ``f5`` engine (``omad.tts.f5``); torch is only ever imported inside functions.
"""

from __future__ import annotations

import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ...errors import OmadError, StageFailed, ToolTimeout, TransientError
from ...media.audio_prep import PreparedReference
from ...text.sentences import pack
from .loader import MEL, LoadedF5

if TYPE_CHECKING:
    from ...config import F5Config
    from . import F5Engine

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
