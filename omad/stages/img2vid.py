"""The img2vid stage: a still image becomes a Ken Burns clip, as long as its audio when it has one.

Motion, fit, length and frame come from the brief, else from config. A
same-stem audio file is loudness-normalised (two passes) before it is muxed.
The rendering itself is ``omad.media.kenburns``.
"""

from __future__ import annotations

from typing import Any

from ..media.audio import FINAL_AUDIO_FORMAT, check_audio, normalise_soundtrack
from ..media.encoder import VideoOutput
from ..media.kenburns import render_still
from ..stage import Stage, StageContext, StageResult

__all__ = ["Img2VidStage"]


def _seed(ctx: StageContext, role: str) -> str:
    return ctx.job_id.split("-")[0] + role


class Img2VidStage(Stage):
    name = "img2vid"
    needs = ("image",)
    makes = ("video",)

    def run(self, ctx: StageContext) -> StageResult:
        label = ctx.label("image")
        o = ctx.options
        cfg = ctx.config
        facts: dict[str, Any] = {}
        audio_path = None
        audio_filter = FINAL_AUDIO_FORMAT
        seconds = float(o.get("seconds") or cfg.img2vid.default_seconds)
        if ctx.has("audio"):
            alabel = ctx.label("audio")
            info = check_audio(ctx.path("audio"), alabel, cfg.intake.max_audio_seconds)
            seconds = float(info.duration or seconds)
            # Decoded once to 48 kHz stereo, then brought to the loudness target (omad.media.audio).
            decoded = ctx.work / "audio.wav"
            ctx.ffmpeg(["-i", str(ctx.path("audio")), "-map", "0:a:0", "-ar", "48000", "-ac", "2", "-c:a",
                        "pcm_s16le", str(decoded)], file_label=alabel)
            audio_path, audio_filter, measured = normalise_soundtrack(
                decoded, ctx.work / "audio.normalised.wav", cfg.audio, ff=ctx.ffmpeg, label=alabel)
            facts["loudness"] = {"measured_lufs": measured.get("input_i"), "target_lufs": cfg.audio.loudness_lufs}
        ctx.scale_timeout(seconds)
        out = ctx.work / "clip.mp4"
        facts.update(render_still(
            ctx.path("image"), out, video=VideoOutput.from_config(cfg.video, cfg.video.size(o.get("format"))),
            seconds=seconds, motion=str(o.get("motion") or cfg.img2vid.motion),
            fit=str(o.get("fit") or cfg.img2vid.fit), zoom=cfg.img2vid.zoom, seed=_seed(ctx, "image"),
            audio=audio_path, audio_filter=audio_filter, ff=ctx.ffmpeg, label=label,
            max_megapixels=cfg.intake.max_image_megapixels,
        ))
        facts["seconds"] = round(seconds, 3)
        return StageResult(artifacts={"video": "clip.mp4"}, publish={".mp4": "video"}, facts=facts)
