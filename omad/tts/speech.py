"""Speaking a text for a stage: the guardrails, the job's TTS engine and voice, then the narration.

Shared by the narrate route and the scene video's voice stage, so that neither
stage imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..lanes import Lane
from ..stage import StageContext
from ..text.caption_layout import LayoutRules
from . import TtsEngine, Voice, lane_of
from .narration import Narration, narrate_text

__all__ = ["speak", "voice_from_options", "scene_voice", "layout_rules"]


def voice_from_options(ctx: StageContext) -> Voice | None:
    """The brief's voice: an espeak voice name, or an F5 reference clip (role ``reference``) and its transcript."""
    spec: dict[str, Any] = ctx.options.get("voice") or {}
    if not spec:
        return None
    # A reference without reference_text is transcribed by the F5 engine (tts/reference_text.py).
    reference = ctx.inputs.get("reference")
    return Voice(
        name=spec.get("name") or "", reference_audio=reference, reference_text=spec.get("reference_text") or "",
        speed=spec.get("speed"), speaker=str(spec.get("speaker") or ""), noise_scale=spec.get("noise_scale"),
        noise_w_scale=spec.get("noise_w_scale"),
    )


def scene_voice(ctx: StageContext, spec: dict[str, Any], where: str) -> tuple[TtsEngine, Voice]:
    """The engine and voice a scene's own ``voice:`` names (a video with two speakers).

    The scene's fields fall back to the brief's ``voice``. A scene may not move
    narration onto the GPU lane the voice stage did not take: F5 for one scene
    needs F5 on the brief's voice.
    """
    base: dict[str, Any] = dict(ctx.options.get("voice") or {})
    merged = {**base, **{k: v for k, v in spec.items() if v is not None}}
    if spec.get("name") and not spec.get("engine"):
        merged["engine"] = "auto"  # a voice named on the scene brings its own engine (pt-br: espeak, pt_BR-...: Piper)
    from .choice import choose_engine

    engine_name = choose_engine(ctx.config, str(merged.get("engine") or "") or None,
                                str(merged.get("name") or "")).engine
    if lane_of(engine_name) is Lane.GPU and ctx.tts_lane() is not Lane.GPU:
        raise InputError(
            f"{where}.voice asks for {engine_name}, which runs on the GPU lane, but the video's narration runs on "
            "the CPU lane. Set voice.engine: f5 on the brief to narrate every scene with F5.",
            file=ctx.label("brief") if ctx.has("brief") else None)
    if engine_name not in ctx.engines:
        from . import engine_for

        ctx.engines[engine_name] = engine_for(ctx.config, ctx.lanes, engine_name)
    reference = ctx.inputs.get("reference")
    voice = Voice(name=str(merged.get("name") or ""), reference_audio=reference,
                  reference_text=str(merged.get("reference_text") or ""), speed=merged.get("speed"),
                  speaker=str(merged.get("speaker") or ""), noise_scale=merged.get("noise_scale"),
                  noise_w_scale=merged.get("noise_w_scale"))
    return ctx.engines[engine_name], voice


def speak(ctx: StageContext, text: str, out: Path, label: str, where: str,
          progress_span: tuple[float, float] = (0.0, 1.0),
          layout: LayoutRules | None = None,
          voice: tuple[TtsEngine, Voice] | None = None) -> tuple[Narration, list[dict[str, Any]]]:
    """Guard, normalise and synthesise ``text`` into ``out``; returns the narration and guardrail findings.

    ``voice`` (a scene's own engine and voice) replaces the job's.
    """
    checked = ctx.guard().check(text, where, file=label)
    engine, who = voice if voice is not None else (ctx.tts(), voice_from_options(ctx))
    lo, hi = progress_span
    narration = narrate_text(
        checked.text,
        engine,
        who,
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
    if voice is None:
        narration.facts["engine_choice"] = ctx.engine_choice().to_dict()
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
