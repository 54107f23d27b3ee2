"""The addaudio stage: a video gets a new soundtrack.

``replace`` drops the original sound; ``mix`` keeps it ducked under the new
audio. When lengths differ: ``shortest`` cuts to the shorter, ``pad`` holds the
video's last frame (or pads the audio with silence), ``loop`` repeats the video
for the whole audio. The result's loudness is normalised in two passes to
``audio.loudness_lufs``. The audio is rendered to a WAV first so that its
loudness can be measured before the final mux.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..media.audio import FINAL_AUDIO_FORMAT, check_audio, duck_filter, normalise_soundtrack
from ..media.encoder import Encoder, choose_encoder
from ..media.ffmpeg import SAFE_INPUT_ARGS, VIDEO_DEMUXERS, probe
from ..stage import Stage, StageContext, StageResult

__all__ = ["AddAudioStage"]


class AddAudioStage(Stage):
    name = "addaudio"
    needs = ("video", "audio")
    makes = ("video",)

    def run(self, ctx: StageContext) -> StageResult:
        vlabel, alabel = ctx.label("video"), ctx.label("audio")
        video, audio = ctx.path("video"), ctx.path("audio")
        vinfo = probe(video, file_label=vlabel)
        if vinfo.video is None or vinfo.format_name not in VIDEO_DEMUXERS or not vinfo.duration:
            raise InputError("is not a video omad can use. Drop an .mp4, .mov, .mkv or .webm.", file=vlabel)
        ainfo = check_audio(audio, alabel, ctx.config.intake.max_audio_seconds)
        mode = str(ctx.options.get("mode") or ctx.config.audio.addaudio_mode)
        policy = str(ctx.options.get("length") or ctx.config.audio.length)
        vdur, adur = float(vinfo.duration), float(ainfo.duration or 0)
        if policy == "shortest":
            length = min(vdur, adur)
        elif policy == "pad":
            length = max(vdur, adur)
        else:  # loop: the new audio sets the length
            length = adur
        has_original = vinfo.audio is not None and mode == "mix"
        ctx.scale_timeout(max(length, vdur))

        # 1. The soundtrack as a WAV of exactly `length` seconds.
        mix_wav = ctx.work / "soundtrack.wav"
        inputs = [*SAFE_INPUT_ARGS, "-i", str(audio)]
        if has_original:
            inputs += [*SAFE_INPUT_ARGS, *(["-stream_loop", "-1"] if policy == "loop" else []), "-i", str(video)]
            graph = duck_filter("1:a:0", "0:a:0", "mixed", ctx.config.audio.duck_db) + ";"
            graph += f"[mixed]{FINAL_AUDIO_FORMAT},apad,atrim=0:{length:.3f}[out]"
        else:
            graph = f"[0:a:0]{FINAL_AUDIO_FORMAT},apad,atrim=0:{length:.3f}[out]"
        ctx.ffmpeg([*inputs, "-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_s16le", str(mix_wav)],
                   duration=length, span=(0.0, 0.3), file_label=alabel)

        # 2. At the loudness target (in numpy: omad.media.r128), 3. muxed.
        wav, afilter, measured = normalise_soundtrack(mix_wav, ctx.work / "soundtrack.normalised.wav", ctx.config.audio,
                                                      ff=ctx.ffmpeg, label=alabel)
        out = ctx.work / "with_audio.mp4"
        vin = [*SAFE_INPUT_ARGS, *(["-stream_loop", "-1"] if policy == "loop" else []), "-i", str(video)]
        vfilter: list[str] = []
        video_codec: list[str]
        encoder: Encoder | None = None
        pad = length - vdur
        if policy == "pad" and pad > 0.02:
            vfilter = ["-vf", f"tpad=stop_mode=clone:stop_duration={pad:.3f}"]
        if vfilter or vinfo.video.get("codec_name") != "h264":
            encoder = choose_encoder(ctx.config.video, tags=False)
            video_codec = list(encoder.args)
        else:
            video_codec = ["-c:v", "copy"]
        ctx.ffmpeg(
            [*vin, "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", *vfilter, *video_codec, "-af", afilter,
             "-c:a", "aac", "-b:a", ctx.config.video.audio_bitrate, "-t", f"{length:.3f}",
             "-movflags", "+faststart", str(out)],
            duration=length, span=(0.3, 1.0), file_label=vlabel,
        )
        facts: dict[str, Any] = {
            "mode": mode if vinfo.audio is not None else "replace (the video had no sound)",
            "length_policy": policy,
            "video_seconds": round(vdur, 3),
            "audio_seconds": round(adur, 3),
            "output_seconds": round(length, 3),
            "video": "copied" if video_codec[1] == "copy" else "re-encoded",
            **({} if encoder is None else encoder.facts()),
            "loudness": {"measured_lufs": measured.get("input_i"), "target_lufs": ctx.config.audio.loudness_lufs},
        }
        return StageResult(artifacts={"video": "with_audio.mp4"}, publish={".mp4": "video"}, facts=facts)
