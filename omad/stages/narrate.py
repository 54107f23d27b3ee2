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
from ..media import loudness
from ..media.audio import apply_gain_wav, gain_db, measure_loudness, normalise_short_wav
from ..media.subtitles import decode_text, write_srt
from ..stage import Lane, Stage, StageContext, StageResult
from ..tts.speech import speak

__all__ = ["NarrateStage"]

#: A narration of at most this many characters (about half a minute of speech) with espeak-ng is light.
LIGHT_CHARS = 600


def normalise_wav(ctx: StageContext, src: Path, dst: Path, sample_rate: int, label: str) -> dict[str, Any]:
    """Loudness normalisation of a mono WAV, keeping its sample rate and length, in-process.

    A narration of up to ``r128.MAX_SAMPLES`` (~22 minutes at 22.05 kHz) is measured and normalised in numpy at its
    own rate: a gain, and a look-ahead limiter where the gain would pass the true-peak ceiling
    (``omad.media.r128``; ~12 ms for a sentence where loudnorm's two passes at 192 kHz took ~95 ms). A longer
    one goes through loudnorm's two passes (``omad.media.loudness``: ffmpeg's filter, no ffmpeg process),
    the second a plain gain on the 16-bit samples where loudnorm's linear mode would be one.
    """
    audio = ctx.config.audio
    short = normalise_short_wav(src, dst, audio)
    if short is not None:
        return {"measured_lufs": short.report()["input_i"], "target_lufs": audio.loudness_lufs}
    measured = measure_loudness(src, ff=ctx.ffmpeg, label=label, audio_cfg=audio)
    gain = gain_db(measured, audio)
    if gain is None or not apply_gain_wav(src, dst, gain, rate=sample_rate, channels=1):
        loudness.normalise(src, dst, measured, audio, rate=sample_rate, channels=1, label=label,
                           timeout=ctx.ffmpeg.timeout, cancel=ctx.ffmpeg.cancel)
    return {"measured_lufs": measured.get("input_i"), "target_lufs": audio.loudness_lufs}


class NarrateStage(Stage):
    name = "narrate"
    needs = ()
    makes = ("audio", "srt")

    def lane(self, ctx: StageContext) -> Lane:
        return ctx.tts_lane()

    def light(self, ctx: StageContext) -> bool:
        # espeak-ng speaks a sentence in ~5 ms and its loudness takes ~12 ms: far less than a wait behind a
        # render. Piper and F5 are not light at any length.
        if ctx.engine_name() != "espeak":
            return False
        if ctx.has("text"):
            path = ctx.path("text")
            try:
                if path.stat().st_size > 4 * LIGHT_CHARS:  # UTF-8: at most four bytes a character
                    return False
                return len(path.read_bytes().decode("utf-8", "replace")) <= LIGHT_CHARS
            except OSError:
                return False  # run() says what is wrong with it
        return len(str(ctx.options.get("text") or "")) <= LIGHT_CHARS

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
