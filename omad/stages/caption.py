"""The caption stage: burn an SRT into its video, styled through ASS.

Keeps the input's resolution and frame rate, copies AAC audio (re-encodes
anything else to AAC), writes H.264 with ``+faststart``. Reads ``video`` and
``srt`` inputs from the context; writes ``captioned.mp4``.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..ffmpeg import SAFE_INPUT_ARGS, VIDEO_DEMUXERS, escape_filter_path, probe, run_ffmpeg
from ..guardrails import guardrails_for
from ..media.encoder import choose_encoder
from ..stage import StageContext, StageResult
from ..subtitles import Cue, build_ass, check_cost, read_srt

__all__ = ["CaptionStage", "burn_captions"]


def burn_captions(ctx: StageContext, video_role: str, cues: list[Cue], out_name: str, label: str) -> dict[str, object]:
    """Burn ``cues`` into the video at ``video_role``; shared with the scene-video route."""
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
    ass = ctx.work / f"{out_name}.ass"
    build_ass(cues, width, height, ctx.config.caption, ass)
    out = ctx.work / out_name
    audio = info.audio
    audio_args = ["-c:a", "copy"] if audio and audio.get("codec_name") == "aac" else [
        "-c:a", "aac", "-b:a", ctx.config.video.audio_bitrate
    ]
    encoder = choose_encoder(ctx.config.video, tags=False)
    run_ffmpeg(
        [
            *SAFE_INPUT_ARGS,
            "-i", str(src),
            "-map", "0:v:0", "-map", "0:a:0?",
            "-vf", f"ass={escape_filter_path(ass)}",
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
        "audio": "none" if audio is None else ("copied" if audio_args[1] == "copy" else "aac"),
        "captions": len(cues),
        **encoder.facts(),
    }


def guard_cues(ctx: StageContext, cues: list[Cue], label: str) -> tuple[list[Cue], list[dict[str, Any]]]:
    """Guardrails on every caption: PII redacted, a blocked topic stops the job naming the caption."""
    guard = guardrails_for(ctx.config)
    texts, findings = guard.check_many({f"caption {i + 1}": c.text for i, c in enumerate(cues)}, file=label)
    out = [Cue(c.start, c.end, texts[f"caption {i + 1}"]) for i, c in enumerate(cues)]
    return out, [f.to_dict() for f in findings]


class CaptionStage:
    name = "caption"

    def lane_for(self, ctx: StageContext) -> str:
        return "cpu"

    def run(self, ctx: StageContext) -> StageResult:
        srt_label = ctx.label("srt")
        limits = ctx.config.intake
        cues, encoding = read_srt(ctx.path("srt"), srt_label, limits.max_subtitle_bytes)
        check_cost(cues, srt_label, max_cues=limits.max_cues, max_on_screen=limits.max_cues_on_screen)
        cues, findings = guard_cues(ctx, cues, srt_label)
        facts = burn_captions(ctx, "video", cues, "captioned.mp4", ctx.label("video"))
        facts["srt_encoding"] = encoding
        facts["guardrail_findings"] = findings
        return StageResult(artifacts={"video": "captioned.mp4"}, publish={".mp4": "video"}, facts=facts)
