"""Scene videos: a scene brief becomes a narrated, captioned video with an SRT and a poster.

Two stages, so that a crash between them does not redo the narration:

- ``voice`` speaks each scene's narration (GPU lane for F5, CPU for espeak) and
  records per-scene durations and caption cues in ``voice.json``;
- ``render`` makes each scene a clip (a Ken Burns image or a title card) as long
  as its narration plus padding, joins them with crossfades, lays the narration
  at each scene's start, ducks optional music under it, normalises loudness,
  burns the captions with the caption stage's style and grabs a poster.

The scene brief is the job's brief, or the ``scene_brief`` artifact an earlier
stage (the agents' plan) wrote. Images are resolved against the bundle.
"""

from __future__ import annotations

import json
import textwrap
import wave
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..brief import Scene, VideoBrief, load_brief, parse_brief, resolve_asset
from ..errors import InputError
from ..media.audio import FINAL_AUDIO_FORMAT, check_audio, duck_filter, loudnorm_filter, measure_loudness
from ..media.ffmpeg import SAFE_INPUT_ARGS, escape_filter_path, run_ffmpeg
from ..media.kenburns import render_still
from ..media.subtitles import Cue, build_ass, build_karaoke_ass, write_srt
from ..media.titlecard import render_title_card
from ..stage import Lane, Stage, StageContext, StageResult
from ..text.normalize import split_sentences
from ..tts.speech import layout_rules, speak
from .img2vid import frame_size

__all__ = ["VoiceStage", "RenderStage", "scene_brief"]

MAX_SCENES = 60
SILENT_SCENE_SECONDS = 3.0


def scene_brief(ctx: StageContext) -> VideoBrief:
    """The scenes to render: the plan's output when there is one, else the dropped brief."""
    if "scene_brief" in ctx.artifacts:
        path = ctx.path("scene_brief")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        brief = parse_brief(data, ctx.label("brief"))
    else:
        brief = load_brief(ctx.path("brief"), ctx.config.intake.max_brief_bytes, ctx.label("brief"),
                           ctx.config.intake.max_brief_depth)
    if not isinstance(brief, VideoBrief) or not brief.scenes:
        raise InputError("is not a video brief with scenes.", file=ctx.label("brief"))
    if len(brief.scenes) > MAX_SCENES:
        raise InputError(f"has {len(brief.scenes)} scenes; the limit is {MAX_SCENES}. Split the video.",
                         file=ctx.label("brief"))
    return brief


class VoiceStage(Stage):
    name = "voice"

    def lane(self, ctx: StageContext) -> Lane:
        return ctx.tts_lane()

    def run(self, ctx: StageContext) -> StageResult:
        brief = scene_brief(ctx)
        label = ctx.label("brief")
        scenes: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        tts: list[dict[str, Any]] = []
        n = len(brief.scenes or [])
        for i, scene in enumerate(brief.scenes or []):
            entry: dict[str, Any] = {"index": i, "wav": None, "duration": 0.0, "cues": []}
            said = (scene.spoken or scene.narration).strip()
            if said:
                out = ctx.work / f"scene{i:02d}.wav"
                narration, found = speak(ctx, said, out, label, f"scenes[{i}].narration", (i / n, (i + 1) / n),
                                         layout=layout_rules(ctx, frame_size(ctx.config.video, brief.format)))
                findings.extend(found)
                tts.append({"engine": narration.facts.get("engine"), "rtf": narration.facts.get("rtf")})
                cues = [[c.start, c.end, c.text] for c in narration.cues]
                words = [[w.start, w.end, w.text] for w in narration.words]
                if said != scene.narration.strip() and cues:
                    # Respelled for the voice: the words heard are not the words shown, so captions
                    # go sentence by sentence (chunk cues) and no word is highlighted.
                    chunk_cues = [[c.start, c.end, c.text] for c in narration.chunk_cues]
                    cues = _caption_written(scene.narration, chunk_cues, ctx, f"scenes[{i}].narration", findings)
                    words = []
                entry.update(wav=out.name, duration=narration.duration, sample_rate=narration.sample_rate,
                             cues=cues, words=words)
            scenes.append(entry)
        (ctx.work / "voice.json").write_text(json.dumps({"scenes": scenes}, ensure_ascii=False))
        facts = {"scenes": n, "spoken_seconds": round(sum(s["duration"] for s in scenes), 3)}
        return StageResult(artifacts={"voice": "voice.json"}, facts=facts, guardrail_findings=findings, tts=tts)


def _caption_written(written: str, cues: list[list[Any]], ctx: StageContext, where: str,
                     findings: list[dict[str, Any]]) -> list[list[Any]]:
    """Captions show the narration as written, not its respelled spoken form.

    Sentence by sentence when both forms have as many sentences, else one caption
    over the whole spoken span. The written text passes the guardrails too.
    """
    checked = ctx.guard().check(written, where)
    findings.extend(f.to_dict() for f in checked.findings if f.to_dict() not in findings)
    sentences = split_sentences(checked.text, ctx.config.tts.max_chunk_chars, merge=False)
    if len(sentences) == len(cues):
        return [[c[0], c[1], s] for c, s in zip(cues, sentences, strict=True)]
    return [[cues[0][0], cues[-1][1], " ".join(checked.text.split())]]


def _scene_seconds(scene: Scene, spoken: float, padding: float) -> float:
    natural = spoken + padding if spoken > 0 else SILENT_SCENE_SECONDS
    return max(natural, scene.duration or 0.0)


def _wrap_title(text: str, width: int, height: int) -> str:
    chars = max(12, int(width / (height * 0.06 * 0.55)))
    return "\n".join(textwrap.wrap(" ".join(text.split()), chars)[:3])


class RenderStage(Stage):
    name = "render"

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.config
        brief = scene_brief(ctx)
        scenes = brief.scenes or []
        label = ctx.label("brief")
        base = ctx.inputs["brief"].parent
        voice = json.loads(ctx.path("voice").read_text())["scenes"]
        width, height = frame_size(cfg.video, brief.format)
        fps = cfg.video.fps
        pad = cfg.scenes.padding_seconds
        xf = cfg.scenes.crossfade_seconds
        lengths = [_scene_seconds(s, v["duration"], pad) for s, v in zip(scenes, voice, strict=True)]
        if len(scenes) > 1:
            # A crossfade eats into both neighbours: keep every scene longer than two fades.
            xf = min(xf, min(lengths) / 3)
        starts = []
        t = 0.0
        for length in lengths:
            starts.append(t)
            t += length - xf
        total = starts[-1] + lengths[-1]
        ctx.scale_timeout(total)

        clips: list[Path] = []
        facts_scenes: list[dict[str, Any]] = []
        n = len(scenes)
        for i, (scene, length) in enumerate(zip(scenes, lengths, strict=True)):
            clip = ctx.work / f"clip{i:02d}.mp4"
            common = dict(width=width, height=height, fps=fps, seconds=length, crf=16, x264_preset="ultrafast",
                          timeout=ctx.timeout, cancel=ctx.cancel)
            if scene.image:
                image = resolve_asset(base, scene.image, label, f"scenes[{i}].image")
                info = render_still(image, clip, motion=scene.motion or cfg.img2vid.motion, fit=cfg.img2vid.fit,
                                    zoom=cfg.img2vid.zoom, seed=f"{ctx.job_id}{i}", label=f"{label}: {scene.image}",
                                    max_megapixels=cfg.intake.max_image_megapixels,
                                    **common)  # type: ignore[arg-type]
                if scene.title:
                    clip = self._overlay_title(ctx, clip, scene.title, width, height, i)
            else:
                text = scene.title or scene.narration or brief.title or " "
                info = render_title_card(text, clip, background=scene.background or cfg.scenes.title_background,
                                         font_file=cfg.scenes.title_font_file, label=label,
                                         **common)  # type: ignore[arg-type]
            clips.append(clip)
            facts_scenes.append({"index": i, "seconds": round(length, 3), "kind": "image" if scene.image else "title",
                                 "motion": info.get("motion")})
            ctx.progress(0.6 * (i + 1) / n)

        voice_wav = self._voice_track(ctx, voice, starts, total)
        music = ctx.inputs.get("music")
        soundtrack = ctx.work / "soundtrack.wav"
        if music is not None:
            check_audio(music, music.name, cfg.intake.max_audio_seconds)
            music_db = brief.music_db if brief.music_db is not None else cfg.scenes.music_db
            graph = duck_filter("1:a:0", "0:a:0", "mixed", music_db) + f";[mixed]{FINAL_AUDIO_FORMAT},apad," \
                f"atrim=0:{total:.3f}[out]"
            args = ["-i", str(voice_wav), *SAFE_INPUT_ARGS, "-stream_loop", "-1", "-i", str(music)]
        else:
            graph = f"[0:a:0]{FINAL_AUDIO_FORMAT},apad,atrim=0:{total:.3f}[out]"
            args = ["-i", str(voice_wav)]
        run_ffmpeg([*args, "-filter_complex", graph, "-map", "[out]", "-c:a", "pcm_s16le", str(soundtrack)],
                   timeout=ctx.timeout, file_label=label, stage=ctx.stage, cancel=ctx.cancel)
        measured = measure_loudness(soundtrack, timeout=ctx.timeout, label=label, audio_cfg=cfg.audio)

        cues = [Cue(starts[i] + c[0], starts[i] + c[1], c[2]) for i, v in enumerate(voice) for c in v["cues"]]
        write_srt(cues, ctx.work / "captions.srt")
        vgraph = self._join_graph(len(clips), lengths, starts, xf)
        style = (brief.caption.style if brief.caption else None) or cfg.caption.style
        highlighted = 0
        if brief.captions and cues:
            ass = ctx.work / "captions.ass"
            if style == "word_highlight":
                words = [(starts[i] + w[0], starts[i] + w[1], w[2]) for i, v in enumerate(voice)
                         for w in v.get("words", [])]
                highlighted = build_karaoke_ass(cues, words, width, height, cfg.caption, ass)
            else:
                build_ass(cues, width, height, cfg.caption, ass)
            vgraph += f";[joined]ass={escape_filter_path(ass)}[v]"
        else:
            vgraph += ";[joined]null[v]"
        out = ctx.work / "video.mp4"
        inputs: list[str] = []
        for c in clips:
            inputs += ["-i", str(c)]
        inputs += ["-i", str(soundtrack)]
        v = cfg.video
        run_ffmpeg(
            [*inputs, "-filter_complex", vgraph, "-map", "[v]", "-map", f"{len(clips)}:a:0",
             "-af", f"{loudnorm_filter(measured, cfg.audio)},{FINAL_AUDIO_FORMAT}",
             "-c:v", "libx264", "-preset", v.x264_preset, "-crf", str(v.crf), "-pix_fmt", "yuv420p", "-r", str(fps),
             "-c:a", "aac", "-b:a", v.audio_bitrate, "-t", f"{total:.3f}", "-movflags", "+faststart", str(out)],
            timeout=ctx.timeout, duration=total, progress=lambda f: ctx.progress(0.6 + 0.38 * f),
            file_label=label, stage=ctx.stage, cancel=ctx.cancel,
        )
        poster = ctx.work / "poster.jpg"
        run_ffmpeg(["-ss", f"{min(total / 2, lengths[0] * 0.5):.3f}", "-i", str(out), "-frames:v", "1",
                    "-q:v", "3", str(poster)], timeout=ctx.timeout, file_label=label, stage=ctx.stage)
        ctx.progress(1.0)
        return StageResult(
            artifacts={"video": "video.mp4", "srt": "captions.srt", "poster": "poster.jpg"},
            publish={".mp4": "video", ".srt": "srt", ".jpg": "poster"},
            facts={"seconds": round(total, 3), "width": width, "height": height, "fps": fps,
                   "crossfade_seconds": round(xf, 3), "scenes": facts_scenes, "captions": len(cues),
                   "caption_style": style, "captions_word_highlighted": highlighted,
                   "music": music is not None,
                   "loudness": {"measured_lufs": measured.get("input_i"), "target_lufs": cfg.audio.loudness_lufs}},
        )

    @staticmethod
    def _join_graph(n: int, lengths: list[float], starts: list[float], xf: float) -> str:
        if n == 1:
            return "[0:v]settb=AVTB,setpts=PTS-STARTPTS[joined]"
        parts = [f"[{i}:v]settb=AVTB,setpts=PTS-STARTPTS[c{i}]" for i in range(n)]
        prev = "c0"
        for i in range(1, n):
            out = "joined" if i == n - 1 else f"x{i}"
            parts.append(f"[{prev}][c{i}]xfade=transition=fade:duration={xf:.3f}:offset={starts[i]:.3f}[{out}]")
            prev = out
        return ";".join(parts)

    @staticmethod
    def _voice_track(ctx: StageContext, voice: list[dict[str, Any]], starts: list[float], total: float) -> Path:
        """All scenes' narration laid at their start times in one mono 16-bit WAV."""
        rates = {int(v["sample_rate"]) for v in voice if v["wav"]}
        rate = next(iter(rates)) if len(rates) == 1 else 48000
        buf = np.zeros(int(total * rate) + rate, dtype=np.int32)
        for v, start in zip(voice, starts, strict=True):
            if not v["wav"]:
                continue
            with wave.open(str(ctx.work / v["wav"]), "rb") as w:
                data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
                if w.getframerate() != rate:
                    idx = np.linspace(0, len(data) - 1, int(len(data) * rate / w.getframerate()))
                    data = np.interp(idx, np.arange(len(data)), data).astype(np.int16)
            at = int(round(start * rate))
            buf[at:at + len(data)] += data[: max(0, len(buf) - at)]
        out = ctx.work / "voice.wav"
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.clip(buf[: int(total * rate)], -32768, 32767).astype(np.int16).tobytes())
        return out

    @staticmethod
    def _overlay_title(ctx: StageContext, clip: Path, title: str, width: int, height: int, i: int) -> Path:
        text_file = ctx.work / f"title{i:02d}.txt"
        text_file.write_text(_wrap_title(title, width, height), encoding="utf-8")
        font = ctx.config.scenes.title_font_file
        out = ctx.work / f"clip{i:02d}_t.mp4"
        size = max(12, round(height * 0.06))
        draw = (f"drawtext=fontfile={escape_filter_path(font)}:textfile={escape_filter_path(text_file)}"
                f":fontsize={size}:fontcolor=white:line_spacing={size // 4}:box=1:boxcolor=black@0.45"
                f":boxborderw={size // 2}:x=(w-text_w)/2:y=h*0.08")
        run_ffmpeg(["-i", str(clip), "-vf", draw, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16",
                    "-pix_fmt", "yuv420p", str(out)], timeout=ctx.timeout, file_label=ctx.label("brief"),
                   stage=ctx.stage, cancel=ctx.cancel)
        return out
