"""The faster-whisper engine: Whisper on CTranslate2, int8 on the CPU lane, float16 on the GPU lane.

Owns loading a Whisper model from the models folder (never from the Hub),
keeping it resident between jobs (``lanes.residency``: on the GPU within
``gpu.vram_budget_gb`` beside F5, Ollama and the image model, and unloaded
after ``gpu.idle_unload_seconds``; on the CPU with no VRAM cost), running one
transcription with Silero VAD and word timestamps, reporting progress in
audio seconds, stopping between segments on cancel or timeout, and judging
invented segments (``omad.asr.filters``).

It must never download anything and never let a CTranslate2 or faster-whisper
error escape untranslated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    Cancelled,
    ConfigError,
    InputError,
    OmadError,
    StageFailed,
    ToolMissing,
    ToolTimeout,
    TransientError,
)
from ..lanes import Lane
from ..models import whisper_dir
from . import AsrRequest, Segment, Transcript, Word
from .filters import split_invented

if TYPE_CHECKING:
    from ..config import Config
    from ..lanes import Lanes

__all__ = ["WhisperEngine", "placement", "map_error", "tighten_leading_words", "LANGUAGES"]

SAMPLE_RATE = 16000
INSTALL_HINT = "pip install 'omad[asr]' (in a checkout: .venv/bin/pip install -e '.[asr]')"


def _languages() -> frozenset[str]:
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return frozenset()
    return frozenset(_LANGUAGE_CODES)


#: The language codes Whisper knows (empty when faster-whisper is not installed).
LANGUAGES = _languages()


def _require() -> Any:
    try:
        import faster_whisper
    except ImportError as e:
        raise ToolMissing(f"speech recognition needs faster-whisper, which is not installed: {INSTALL_HINT}.") from e
    return faster_whisper


def placement(config: Config) -> tuple[str, str]:
    """(device, compute type) this configuration runs on here: int8 on the CPU, float16 on CUDA."""
    try:
        import ctranslate2
    except ImportError as e:
        raise ToolMissing(f"speech recognition needs CTranslate2 and faster-whisper: {INSTALL_HINT}.") from e

    asr = config.asr
    cuda = asr.device != "cpu" and ctranslate2.get_cuda_device_count() > 0
    if asr.device == "cuda" and not cuda:
        raise ConfigError("asr.device is 'cuda' but CTranslate2 sees no CUDA device. Check the driver, or set "
                          "asr.device: auto.")
    device = "cuda" if cuda else "cpu"
    compute = asr.compute_type
    if compute == "auto":
        compute = "float16" if cuda else "int8"
    return device, compute


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def map_error(e: BaseException, *, folder: Path | None, loading: bool) -> OmadError:
    """A CTranslate2 / faster-whisper error as the omad error that says what to do."""
    if isinstance(e, OmadError):
        return e
    text = str(e).lower()
    if isinstance(e, MemoryError) or "out of memory" in text:
        return TransientError(f"Whisper ran out of memory ({_first_line(e)}). Use a smaller asr.model or free "
                              "memory; the job will be retried.", file=folder)
    if loading and isinstance(e, ValueError) and "compute type" in text:
        return ConfigError(f"asr.compute_type does not work on this device ({_first_line(e)}). Set asr.compute_type: "
                           "auto.", file=folder, details={"key": "asr.compute_type"})
    if loading:
        return ConfigError(f"the Whisper model cannot be loaded ({_first_line(e)}). It may be damaged or not a "
                           "faster-whisper model: pull it again with `omad models pull whisper-<size>`.",
                           file=folder, details={"key": "asr.model"})
    if isinstance(e, ValueError):
        return InputError(f"Whisper refused the audio or options ({_first_line(e)}).")
    return StageFailed(f"Whisper failed while transcribing ({type(e).__name__}: {_first_line(e)}).", file=folder)


def _f(value: Any, digits: int = 3) -> float:
    return round(float(value), digits)


#: A pause this long before a word makes it a "leading" word (the first after silence).
_LEADING_PAUSE = 0.3


def tighten_leading_words(segments: list[Segment]) -> int:
    """Move the start of words that begin after silence but last far longer than usual; returns how many moved.

    Whisper's word times come from cross-attention: the first word after a
    pause (or at the start of a VAD chunk) soaks up the silence before it, so
    "The" can start 0.4 s before it is said. Such a word is given the median
    word length of the transcript, ending where Whisper ends it.
    """
    words = [w for s in segments for w in s.words]
    if len(words) < 3:
        return 0
    lengths = sorted(w.end - w.start for w in words)
    usual = min(max(lengths[len(lengths) // 2], 0.15), 0.5)
    moved = 0
    previous_end: float | None = None
    for seg in segments:
        for i, w in enumerate(seg.words):
            leading = previous_end is None or w.start - previous_end >= _LEADING_PAUSE or i == 0
            previous_end = w.end
            if leading and w.end - w.start > 1.5 * usual:
                seg.words[i] = Word(_f(w.end - usual), w.end, w.text, w.probability)
                moved += 1
        if seg.words:
            seg.start = seg.words[0].start
    return moved


class WhisperEngine:
    """faster-whisper behind :class:`omad.asr.AsrEngine`. The model loads on first use and stays warm.

    With ``lanes`` the model is a residency entry (on CUDA it counts against the
    VRAM budget); without, the engine holds it until ``close()``. The caller
    holds the lane slot (``lane()``) around ``transcribe``.
    """

    name = "faster-whisper"

    def __init__(self, config: Config, lanes: Lanes | None = None, model: str | None = None) -> None:
        self.config = config
        self.options = config.asr
        self.lanes = lanes
        self.model_name = (model or config.asr.model).strip()
        self._own: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        self.loads = 0

    def lane(self) -> Lane:
        device, _ = placement(self.config)
        return Lane.GPU if device == "cuda" else Lane.CPU

    def folder(self) -> Path:
        return whisper_dir(self.config, self.model_name)

    def _load(self, folder: Path, device: str, compute: str) -> Any:
        fw = _require()
        try:
            model = fw.WhisperModel(str(folder), device=device, compute_type=compute,
                                    cpu_threads=self.options.cpu_threads, local_files_only=True)
        except Exception as e:
            raise map_error(e, folder=folder, loading=True) from e
        self.loads += 1
        return model

    @staticmethod
    def _unload(model: Any) -> None:
        # CTranslate2 frees the weights when the last reference goes; unload_model does it now.
        inner = getattr(model, "model", None)
        if inner is not None and hasattr(inner, "unload_model"):
            inner.unload_model()

    @contextmanager
    def _model(self, folder: Path, device: str, compute: str) -> Iterator[tuple[Any, bool]]:
        loaded_now = False

        def load() -> Any:
            nonlocal loaded_now
            loaded_now = True
            return self._load(folder, device, compute)

        key = f"whisper:{folder}:{device}:{compute}"
        if self.lanes is not None:
            vram = self.options.vram_gb if device == "cuda" else 0.0
            with self.lanes.residency.acquire(key, vram, load, self._unload) as model:
                yield model, loaded_now
            return
        with self._lock:
            if self._own is not None and self._own[0] != key:
                self._unload(self._own[1])
                self._own = None
            if self._own is None:
                self._own = (key, load())
            yield self._own[1], loaded_now

    def close(self) -> None:
        with self._lock:
            if self._own is not None:
                self._unload(self._own[1])
                self._own = None

    def _language(self, request: AsrRequest) -> str | None:
        lang = (request.language or self.options.language).strip().lower()
        if lang == "auto":
            return None
        lang = lang.split("-")[0].split("_")[0]  # pt-BR -> pt: Whisper knows languages, not regions
        if LANGUAGES and lang not in LANGUAGES:
            raise InputError(f"Whisper does not know the language '{lang}'. Use an ISO code such as pt, en, es, "
                             "or auto to detect it.")
        return lang

    def transcribe(self, audio: Path, request: AsrRequest, *, timeout: float = 3600.0,
                   progress: Callable[[float, float], None] | None = None,
                   cancel: threading.Event | None = None) -> Transcript:
        """Transcribe the 16 kHz mono WAV ``audio``: segments, words, language, and what was dropped."""
        from ..media.audio_prep import read_wav

        started = time.monotonic()
        deadline = started + timeout
        language = self._language(request)
        folder = self.folder()
        device, compute = placement(self.config)
        samples, rate = read_wav(audio)
        if rate != SAMPLE_RATE:
            raise StageFailed(f"expected {SAMPLE_RATE} Hz audio for Whisper, found {rate} Hz.", file=audio)
        total = len(samples) / SAMPLE_RATE
        prompt = " ".join([*(w.strip() for w in request.vocabulary if w.strip()), request.prompt.strip()]).strip()
        asr = self.options
        with self._model(folder, device, compute) as (model, loaded_now):
            load_seconds = time.monotonic() - started if loaded_now else 0.0
            run_started = time.monotonic()
            try:
                pieces, info = model.transcribe(
                    samples, language=language, beam_size=asr.beam_size, word_timestamps=True,
                    vad_filter=asr.vad, vad_parameters={"min_silence_duration_ms": asr.vad_min_silence_ms},
                    no_speech_threshold=asr.no_speech_threshold,
                    compression_ratio_threshold=asr.compression_ratio_threshold,
                    log_prob_threshold=asr.log_prob_threshold, initial_prompt=prompt or None,
                    # Conditioning on earlier text is how one invented phrase becomes a loop; each window stands alone.
                    condition_on_previous_text=False,
                )
                segments: list[Segment] = []
                for piece in pieces:  # a generator: each step decodes one more window
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("the transcription was cancelled.")
                    if time.monotonic() > deadline:
                        raise ToolTimeout(f"transcription ran past its {timeout:.0f} s timeout at "
                                          f"{piece.end:.0f} s of {total:.0f} s of audio.", file=audio)
                    words = [Word(_f(w.start), _f(w.end), w.word.strip(), _f(w.probability, 4))
                             for w in (piece.words or []) if w.word.strip()]
                    segments.append(Segment(_f(piece.start), _f(piece.end), piece.text.strip(), words,
                                            _f(piece.avg_logprob, 4), _f(piece.no_speech_prob, 4),
                                            _f(piece.compression_ratio)))
                    if progress is not None:
                        progress(min(piece.end, total), total)
            except OmadError:
                raise
            except Exception as e:
                raise map_error(e, folder=folder, loading=False) from e
            run_seconds = time.monotonic() - run_started
        if progress is not None:
            progress(total, total)
        tightened = tighten_leading_words(segments)
        kept, dropped = split_invented(segments, asr)
        speech = float(info.duration_after_vad) if asr.vad else float(info.duration)
        return Transcript(
            language=str(info.language), language_probability=round(float(info.language_probability), 3),
            duration=round(total, 3), speech_seconds=round(speech, 3), segments=kept, dropped=dropped,
            model=self.model_name,
            facts={"engine": self.name, "device": device, "compute_type": compute, "model_loaded": loaded_now,
                   "load_seconds": round(load_seconds, 2), "transcribe_seconds": round(run_seconds, 2),
                   "rtf": round(run_seconds / total, 3) if total > 0 else None,
                   "language_detected": language is None, "vad": asr.vad, "beam_size": asr.beam_size,
                   "leading_words_tightened": tightened},
        )
