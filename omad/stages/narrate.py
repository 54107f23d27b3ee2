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

from ..audio import loudnorm_filter, measure_loudness
from ..caption_layout import LayoutRules
from ..errors import InputError
from ..ffmpeg import run_ffmpeg
from ..guardrails import guardrails_for
from ..narration import Narration, narrate_text
from ..stage import StageContext, StageResult
from ..subtitles import decode_text, write_srt
from ..tts import Voice, engine_for

__all__ = ["NarrateStage", "speak", "voice_from_options", "engine_name"]


def engine_name(ctx: StageContext) -> str:
    voice = ctx.options.get("voice") or {}
    return str(voice.get("engine") or ctx.config.tts.engine)


def voice_from_options(ctx: StageContext) -> Voice | None:
    """The brief's voice: an espeak voice name, or an F5 reference clip (role ``reference``) and its transcript."""
    spec: dict[str, Any] = ctx.options.get("voice") or {}
    if not spec:
        return None
    reference = ctx.inputs.get("reference")
    if reference is not None and not spec.get("reference_text"):
        raise InputError(
            "voice.reference_audio needs voice.reference_text: the exact words spoken in the recording "
            "(omad has no speech recogniser).",
            file=ctx.label("brief") if ctx.has("brief") else None,
        )
    return Voice(
        name=spec.get("name") or "", reference_audio=reference, reference_text=spec.get("reference_text") or "",
        speed=spec.get("speed"),
    )


def speak(ctx: StageContext, text: str, out: Path, label: str, where: str,
          progress_span: tuple[float, float] = (0.0, 1.0),
          layout: LayoutRules | None = None) -> tuple[Narration, list[dict[str, Any]]]:
    """Guard, normalise and synthesise ``text`` into ``out``; returns the narration and guardrail findings."""
    guard = guardrails_for(ctx.config)
    checked = guard.check(text, where, file=label)
    engine = engine_for(ctx.config, ctx.lanes, engine_name(ctx))
    lo, hi = progress_span
    narration = narrate_text(
        checked.text,
        engine,
        voice_from_options(ctx),
        ctx.work,
        max_chunk_chars=ctx.config.tts.max_chunk_chars,
        pause_seconds=ctx.config.tts.sentence_pause_seconds,
        timeout=ctx.timeout,
        label=label,
        progress=lambda f: ctx.progress(lo + (hi - lo) * f),
        language=str(ctx.options.get("language") or ctx.config.tts.language),
        merge_sentences=ctx.config.tts.merge_sentences,
        out=out,
        layout=layout or layout_rules(ctx),
    )
    for warning in narration.facts.pop("warnings", []):
        ctx.warn(warning)
    return narration, [f.to_dict() for f in checked.findings]


def layout_rules(ctx: StageContext, frame: tuple[int, int] | None = None) -> LayoutRules:
    """How narration captions are laid out, from ``caption.*`` in config.

    With the ``frame`` (width, height) they will be burned into, a line is
    also kept to what fits across it at the caption size (a vertical video
    fits about 18 characters, not 42), so libass never has to re-wrap it.
    """
    c = ctx.config.caption
    chars = c.max_line_chars
    if frame is not None:
        width, height = frame
        # DejaVu Sans Bold averages ~0.6 em per character; margins take 10 % of the width.
        chars = max(10, min(chars, int(0.9 * width / (0.6 * c.size_ratio * height))))
    return LayoutRules(max_line_chars=chars, max_lines=c.max_lines, min_seconds=c.min_seconds,
                       max_seconds=c.max_seconds, max_cps=c.max_cps)


def normalise_wav(ctx: StageContext, src: Path, dst: Path, sample_rate: int, label: str) -> dict[str, Any]:
    """Two-pass loudness normalisation of a mono WAV, keeping its sample rate and length."""
    measured = measure_loudness(src, timeout=ctx.timeout, label=label, audio_cfg=ctx.config.audio)
    run_ffmpeg(
        ["-i", str(src), "-af", loudnorm_filter(measured, ctx.config.audio), "-ar", str(sample_rate), "-ac", "1",
         "-c:a", "pcm_s16le", str(dst)],
        timeout=ctx.timeout, file_label=label, stage=ctx.stage, cancel=ctx.cancel,
    )
    return {"measured_lufs": measured.get("input_i"), "target_lufs": ctx.config.audio.loudness_lufs}


class NarrateStage:
    name = "narrate"

    def lane_for(self, ctx: StageContext) -> str:
        return "gpu" if engine_name(ctx) == "f5" else "cpu"

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
            "guardrail_findings": findings,
            "tts": {"engine": narration.facts.get("engine"), "rtf": narration.facts.get("rtf")},
        }
        return StageResult(
            artifacts={"audio": "narration.wav", "srt": "narration.srt"},
            publish={".wav": "audio", ".srt": "srt"},
            facts=facts,
        )
