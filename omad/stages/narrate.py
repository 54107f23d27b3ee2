"""The narrate stage: a text becomes a WAV and an SRT timed to it.

The text comes from a dropped ``.txt`` (UTF-8 or cp1252) or a narrate brief.
Guardrails run on it before any engine sees it (PII redacted, blocked topics
stop the job). The engine is ``tts.engine`` unless the brief's ``voice`` names
one; F5 runs on the GPU lane, espeak on the CPU lane. The published WAV is
loudness-normalised; the SRT keeps the text as written.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..media.audio import normalise_narration
from ..media.subtitles import decode_text, write_srt
from ..stage import Lane, Stage, StageContext, StageResult
from ..tts.speech import speak

__all__ = ["NarrateStage"]

#: A narration of at most this many characters (about half a minute of speech) with espeak-ng is light.
LIGHT_CHARS = 600


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
        measured = normalise_narration(narration.wav, ctx.work / "narration.wav", ctx.config.audio,
                                       rate=narration.sample_rate, ff=ctx.ffmpeg, label=label)
        loud = {"measured_lufs": measured.get("input_i"), "target_lufs": ctx.config.audio.loudness_lufs}
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
