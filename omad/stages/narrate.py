"""The narrate stage: a text becomes a WAV and an SRT timed to it.

The text comes from a dropped ``.txt`` (UTF-8 or cp1252) or a narrate brief.
Guardrails run on it before any engine sees it (PII redacted, blocked topics
stop the job). The engine is ``tts.engine`` unless the brief's ``voice`` names
one; F5 runs on the GPU lane, espeak on the CPU lane. The published WAV is
loudness-normalised; the SRT keeps the text as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..media.audio import apply_gain_wav, gain_db, loudnorm_filter, measure_loudness
from ..media.subtitles import decode_text, write_srt
from ..stage import Lane, Stage, StageContext, StageResult
from ..tts.speech import speak

__all__ = ["NarrateStage"]


def normalise_wav(ctx: StageContext, src: Path, dst: Path, sample_rate: int, label: str) -> dict[str, Any]:
    """Two-pass loudness normalisation of a mono WAV, keeping its sample rate and length.

    Where loudnorm's linear mode would be a plain gain (the usual case for
    speech), the second pass is that gain applied in-process; else loudnorm
    with its limiter, in ffmpeg.
    """
    measured = measure_loudness(src, ff=ctx.ffmpeg, label=label, audio_cfg=ctx.config.audio)
    gain = gain_db(measured, ctx.config.audio)
    if gain is not None and apply_gain_wav(src, dst, gain, rate=sample_rate, channels=1):
        return {"measured_lufs": measured.get("input_i"), "target_lufs": ctx.config.audio.loudness_lufs}
    ctx.ffmpeg(
        ["-i", str(src), "-af", loudnorm_filter(measured, ctx.config.audio), "-ar", str(sample_rate), "-ac", "1",
         "-c:a", "pcm_s16le", str(dst)],
        file_label=label,
    )
    return {"measured_lufs": measured.get("input_i"), "target_lufs": ctx.config.audio.loudness_lufs}


class NarrateStage(Stage):
    name = "narrate"
    needs = ()
    makes = ("audio", "srt")

    def lane(self, ctx: StageContext) -> Lane:
        return ctx.tts_lane()

    def run(self, ctx: StageContext) -> StageResult:
        if ctx.has("text"):
            label = ctx.label("text")
            try:
                raw = ctx.path("text").read_bytes()
            except OSError as e:
                raise InputError(f"cannot be read ({e.strerror}).", file=label) from e
            text, encoding = decode_text(raw, label)
        else:
            label = ctx.label("brief")
            text, encoding = str(ctx.options.get("text") or ""), "brief"
        narration, findings = speak(ctx, text, ctx.work / "speech.wav", label, "text", (0.0, 0.9))
        loud = normalise_wav(ctx, narration.wav, ctx.work / "narration.wav", narration.sample_rate, label)
        write_srt(narration.cues, ctx.work / "narration.srt")
        ctx.progress(1.0)
        facts = {
            **narration.facts,
            "duration": round(narration.duration, 3),
            "sample_rate": narration.sample_rate,
            "cues": len(narration.cues),
            "words_timed": len(narration.words),
            "text_encoding": encoding,
            "loudness": loud,
        }
        kept = ("engine", "voice", "engine_choice", "rtf", "peak_vram_gb")
        tts: dict[str, Any] = {k: narration.facts[k] for k in kept if k in narration.facts}
        return StageResult(
            artifacts={"audio": "narration.wav", "srt": "narration.srt"},
            publish={".wav": "audio", ".srt": "srt"},
            facts=facts,
            guardrail_findings=findings,
            tts=[tts],
        )
