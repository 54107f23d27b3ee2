"""Transcribing a job's input for a stage: the sound taken out at 16 kHz mono, then the job's recogniser.

Shared by the stages that hear speech (transcribe, resync, an F5 reference) so
that none imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..media.ffmpeg import SAFE_INPUT_ARGS
from . import AsrRequest, Transcript, engine_for

if TYPE_CHECKING:
    from ..stage import StageContext

__all__ = ["extract_speech", "transcribe_input"]


def extract_speech(ctx: StageContext, src: Path, dest: Path, label: str, duration: float | None) -> Path:
    """The first audio stream of ``src`` as the 16 kHz mono 16-bit WAV Whisper hears."""
    ctx.ffmpeg([*SAFE_INPUT_ARGS, "-i", str(src), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", "16000",
                "-c:a", "pcm_s16le", str(dest)], duration=duration, file_label=label)
    return dest


def transcribe_input(ctx: StageContext, src: Path, label: str, duration: float | None, *, span: float = 1.0,
                     prompt: str = "", progress: Callable[[float], None] | None = None) -> Transcript:
    """Transcribe ``src`` with the job's options (``language``, ``model``, ``vocabulary``).

    Progress goes to ``ctx.progress`` as the share ``span`` of the stage, counted in audio seconds.
    """
    opts = ctx.options
    engine = engine_for(ctx.config, ctx.lanes, model=str(opts.get("model") or "") or None)
    wav = extract_speech(ctx, src, ctx.scratch / "speech16k.wav", label, duration)
    request = AsrRequest(language=str(opts.get("language") or ""),
                         vocabulary=[str(w) for w in opts.get("vocabulary") or []], prompt=prompt)
    report = progress or ctx.progress

    def seconds(done: float, total: float) -> None:
        report(span * (done / total if total > 0 else 1.0))

    return engine.transcribe(wav, request, timeout=ctx.timeout, progress=seconds, cancel=ctx.cancel)
