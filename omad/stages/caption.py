"""The caption stage: burn a subtitle file (SRT, WebVTT, ASS, SSA) into its video.

Keeps the input's resolution and frame rate, copies AAC audio (re-encodes
anything else to AAC), writes H.264 with ``+faststart``. Reads ``video`` and
``srt`` (the subtitle file, whatever its format) inputs from the context;
writes ``captioned.mp4``. SRT/VTT captions get omad's caption style with
their own italics, colours and ``{\\an8}`` positions; an ASS/SSA file is
burned with its own styles. What was left out of the file, and characters no
installed font can draw, become warnings in the sidecar.
"""

from __future__ import annotations

import re
from typing import Any

import pysubs2

from ..errors import InputError
from ..media.encoder import choose_encoder
from ..media.ffmpeg import SAFE_INPUT_ARGS, VIDEO_DEMUXERS, escape_filter_path, probe, run_ffmpeg
from ..media.fonts import font_substitute, missing_characters
from ..media.subtitle_files import SubtitleFile, read_subtitles
from ..media.subtitles import Cue, burnable_ass, check_cost, escape_ass_text
from ..stage import Stage, StageContext, StageResult

__all__ = ["CaptionStage", "burn_captions", "guard_cues", "guard_events"]

_DRAWING = re.compile(r"\\p[1-9]")


def guard_cues(ctx: StageContext, cues: list[Cue], label: str) -> tuple[list[Cue], list[dict[str, Any]]]:
    """Guardrails on every caption: PII redacted, a blocked topic stops the job naming the caption."""
    texts, findings = ctx.guard().check_many({f"caption {i + 1}": c.text for i, c in enumerate(cues)}, file=label)
    out = [Cue(c.start, c.end, texts[f"caption {i + 1}"]) for i, c in enumerate(cues)]
    return out, [f.to_dict() for f in findings]


def guard_events(ctx: StageContext, sub: SubtitleFile, label: str) -> list[dict[str, Any]]:
    """Guardrails on the visible text of every event; a redacted event keeps its leading tags, not inline ones.

    ASS drawings (``{\\p1}m 0 0 l 10 0 ...``) are shapes, not text: their
    coordinates would read as phone or card numbers, so they are not checked.
    """
    events = [ev for ev in sub.subs.events if not _DRAWING.search(ev.text)]
    texts, findings = ctx.guard().check_many({f"caption {i + 1}": ev.plaintext for i, ev in enumerate(events)},
                                            file=label)
    for i, ev in enumerate(events):
        redacted = texts[f"caption {i + 1}"]
        if redacted != ev.plaintext:
            lead = ev.text[: ev.text.index("}") + 1] if ev.text.startswith("{") and "}" in ev.text else ""
            ev.text = lead + escape_ass_text(redacted)
    return [f.to_dict() for f in findings]


def _font_warnings(sub: SubtitleFile, ass: pysubs2.SSAFile, label: str) -> list[str]:
    warnings: list[str] = []
    used = {ev.style for ev in ass.events}
    for name, style in ass.styles.items():
        if name in used or (not sub.own_styles and name == "Default"):
            other = font_substitute(style.fontname)
            if other is not None:
                warnings.append(f"{label}: the font '{style.fontname}' (style {name}) is not installed; "
                                f"captions are drawn in '{other}'. Install the font to get the look the file asks for.")
    missing = missing_characters(ev.plaintext for ev in ass.events)
    if missing:
        shown = " ".join(f"{ch} (U+{ord(ch):04X})" for ch in missing[:12])
        more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
        warnings.append(f"{label}: no installed font can draw {shown}{more}; they are missing from the video. "
                        "Install a font that covers them (e.g. fonts-noto) and drop the file again.")
    return warnings


def burn_captions(ctx: StageContext, video_role: str, sub: SubtitleFile, out_name: str,
                  label: str) -> dict[str, Any]:
    """Burn ``sub`` into the video at ``video_role`` as ``out_name``; returns the facts for the job record."""
    src = ctx.path(video_role)
    info = probe(src, file_label=label)
    if info.video is None or info.format_name not in VIDEO_DEMUXERS:
        raise InputError(
            f"is not a video omad can caption (format '{info.format_name}'). Drop an .mp4, .mov, .mkv or .webm.",
            file=label,
        )
    ctx.scale_timeout(info.duration)
    width, height = info.width, info.height
    if info.rotation in (90, 270):
        width, height = height, width
    ass = burnable_ass(sub, width, height, ctx.config.caption)
    ass_path = ctx.work / f"{out_name}.ass"
    ass.save(str(ass_path), encoding="utf-8", format_="ass")
    for warning in [*sub.warnings, *_font_warnings(sub, ass, ctx.label("srt"))]:
        if warning not in ctx.warnings:  # a re-run after the input changed warns once
            ctx.warn(warning)
    out = ctx.work / out_name
    audio = info.audio
    copy_audio = bool(audio and audio.get("codec_name") == "aac")
    audio_args = ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", ctx.config.video.audio_bitrate]
    encoder = choose_encoder(ctx.config.video, tags=False)
    run_ffmpeg(
        [
            *SAFE_INPUT_ARGS,
            "-i", str(src),
            "-map", "0:v:0", "-map", "0:a:0?",
            "-vf", f"ass={escape_filter_path(ass_path)}",
            *encoder.args,
            *audio_args,
            "-fps_mode", "passthrough",
            "-movflags", "+faststart",
            str(out),
        ],
        timeout=ctx.timeout,
        duration=info.duration,
        progress=ctx.progress,
        file_label=label,
        stage=ctx.stage,
        cancel=ctx.cancel,
    )
    return {
        "width": width,
        "height": height,
        "fps": round(info.fps, 3),
        "duration": info.duration,
        "audio": "none" if audio is None else ("copied" if copy_audio else "aac"),
        "captions": len(ass.events),
        **encoder.facts(),
    }


class CaptionStage(Stage):
    name = "caption"

    def run(self, ctx: StageContext) -> StageResult:
        sub_label = ctx.label("srt")
        limits = ctx.config.intake
        sub = read_subtitles(ctx.path("srt"), sub_label, limits.max_subtitle_bytes)
        check_cost([Cue(ev.start / 1000, ev.end / 1000, ev.plaintext) for ev in sub.subs.events], sub_label,
                   max_cues=limits.max_cues, max_on_screen=limits.max_cues_on_screen)
        findings = guard_events(ctx, sub, sub_label)
        facts = burn_captions(ctx, "video", sub, "captioned.mp4", ctx.label("video"))
        facts.update({
            "subtitle_format": sub.format,
            "subtitle_encoding": sub.encoding,
            "subtitle_encoding_from": sub.encoding_from,
            "subtitle_styles": "own" if sub.own_styles else "omad",
        })
        return StageResult(artifacts={"video": "captioned.mp4"}, publish={".mp4": "video"}, facts=facts,
                           guardrail_findings=findings)
