"""Burning captions into a video (and muxing a soft subtitle track), shared by the routes that caption.

``burn_captions`` burns a dropped subtitle file in omad's caption style (or an
ASS file's own); ``burn_ass`` burns an already built ASS file (plain or word
highlight) and may add the same captions as a soft ``mov_text`` track;
``mux_soft_subtitles`` adds only the soft track, copying the video when it can.
The guardrails check every caption's text before it is drawn.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pysubs2

from ..errors import InputError
from .encoder import choose_encoder
from .ffmpeg import SAFE_INPUT_ARGS, VIDEO_DEMUXERS, Probe, escape_filter_path, probe
from .fonts import font_substitute, missing_characters
from .subtitle_files import SubtitleFile
from .subtitles import Cue, burnable_ass, escape_ass_text

if TYPE_CHECKING:
    from ..stage import StageContext

__all__ = ["burn_captions", "burn_ass", "mux_soft_subtitles", "probe_video", "frame_size", "guard_cues",
           "guard_events", "font_warnings"]

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


def font_warnings(sub: SubtitleFile, ass: pysubs2.SSAFile, label: str) -> list[str]:
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


def probe_video(ctx: StageContext, video_role: str, label: str) -> Probe:
    """Probe the video at ``video_role``; refuse what is not a video omad can caption. Sizes the stage timeout."""
    info = probe(ctx.path(video_role), file_label=label)
    if info.video is None or info.format_name not in VIDEO_DEMUXERS:
        raise InputError(
            f"is not a video omad can caption (format '{info.format_name}'). Drop an .mp4, .mov, .mkv or .webm.",
            file=label,
        )
    ctx.scale_timeout(info.duration)
    return info


def frame_size(info: Probe) -> tuple[int, int]:
    """The video's displayed (width, height), rotation applied."""
    width, height = info.width, info.height
    return (height, width) if info.rotation in (90, 270) else (width, height)


def _audio_args(ctx: StageContext, info: Probe) -> tuple[list[str], str]:
    audio = info.audio
    copy_audio = bool(audio and audio.get("codec_name") == "aac")
    args = ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", ctx.config.video.audio_bitrate]
    return args, "none" if audio is None else ("copied" if copy_audio else "aac")


def _soft_args(soft: Path | None, language: str) -> tuple[list[str], list[str]]:
    """(extra inputs, mapping and codec args) for a soft ``mov_text`` track from the SRT ``soft``."""
    if soft is None:
        return [], []
    meta = ["-metadata:s:s:0", f"language={_iso639_2(language)}"] if language else []
    return ["-i", str(soft)], ["-map", "1:0", "-c:s", "mov_text", *meta]


def _iso639_2(language: str) -> str:
    # mp4 tags a track's language with ISO 639-2 codes; the common ones, else "und".
    return {"pt": "por", "en": "eng", "es": "spa", "fr": "fra", "de": "deu", "it": "ita", "ja": "jpn",
            "zh": "zho", "ru": "rus", "nl": "nld"}.get(language.split("-")[0].lower(), "und")


def burn_ass(ctx: StageContext, video_role: str, info: Probe, ass_path: Path, out_name: str, label: str, *,
             soft: Path | None = None, language: str = "") -> dict[str, Any]:
    """Burn the ASS file ``ass_path`` into the video as ``out_name`` (and add ``soft`` as a mov_text track)."""
    src = ctx.path(video_role)
    out = ctx.work / out_name
    audio_args, audio_fact = _audio_args(ctx, info)
    soft_in, soft_map = _soft_args(soft, language)
    encoder = choose_encoder(ctx.config.video, tags=False)
    ctx.ffmpeg(
        [
            *SAFE_INPUT_ARGS,
            "-i", str(src),
            *soft_in,
            "-map", "0:v:0", "-map", "0:a:0?",
            *soft_map,
            "-vf", f"ass={escape_filter_path(ass_path)}",
            *encoder.args,
            *audio_args,
            "-fps_mode", "passthrough",
            "-movflags", "+faststart",
            str(out),
        ],
        duration=info.duration,
        span=(0.0, 1.0),
        file_label=label,
    )
    width, height = frame_size(info)
    return {
        "width": width,
        "height": height,
        "fps": round(info.fps, 3),
        "duration": info.duration,
        "audio": audio_fact,
        **({"soft_subtitles": "mov_text"} if soft is not None else {}),
        **encoder.facts(),
    }


#: Video codecs an mp4 can carry as they are (a soft track alone then needs no re-encode).
_MP4_VIDEO = {"h264", "hevc", "av1", "mpeg4"}


def mux_soft_subtitles(ctx: StageContext, video_role: str, info: Probe, srt: Path | None, out_name: str, label: str,
                       *, language: str = "") -> dict[str, Any]:
    """The video as mp4 ``out_name`` with ``srt`` as a soft mov_text track (None: no track, only the remux).

    The picture is copied when mp4 can hold it, else encoded as renders are.
    """
    src = ctx.path(video_role)
    codec = str((info.video or {}).get("codec_name") or "")
    copy_video = codec in _MP4_VIDEO
    encoder = choose_encoder(ctx.config.video, tags=False)
    video_args = ["-c:v", "copy"] if copy_video else encoder.args
    audio_args, audio_fact = _audio_args(ctx, info)
    soft_in, soft_map = _soft_args(srt, language)
    ctx.ffmpeg(
        [*SAFE_INPUT_ARGS, "-i", str(src), *soft_in, "-map", "0:v:0", "-map", "0:a:0?", *soft_map, *video_args,
         *audio_args, "-movflags", "+faststart", str(ctx.work / out_name)],
        duration=info.duration, span=(0.0, 1.0), file_label=label,
    )
    width, height = frame_size(info)
    return {"width": width, "height": height, "fps": round(info.fps, 3), "duration": info.duration,
            "audio": audio_fact, **({"soft_subtitles": "mov_text"} if srt is not None else {}),
            "video": "copied" if copy_video else codec,
            **({} if copy_video else encoder.facts())}


def burn_captions(ctx: StageContext, video_role: str, sub: SubtitleFile, out_name: str,
                  label: str) -> dict[str, Any]:
    """Burn ``sub`` into the video at ``video_role`` as ``out_name``; returns the facts for the job record."""
    info = probe_video(ctx, video_role, label)
    width, height = frame_size(info)
    ass = burnable_ass(sub, width, height, ctx.config.caption)
    ass_path = ctx.work / f"{out_name}.ass"
    ass.save(str(ass_path), encoding="utf-8", format_="ass")
    for warning in [*sub.warnings, *font_warnings(sub, ass, ctx.label("srt"))]:
        if warning not in ctx.warnings:  # a re-run after the input changed warns once
            ctx.warn(warning)
    facts = burn_ass(ctx, video_role, info, ass_path, out_name, label)
    facts["captions"] = len(ass.events)
    return facts
