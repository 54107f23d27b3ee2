"""Scene videos: a scene brief becomes a narrated, captioned video with an SRT and a poster.

Two stages, so that a crash between them does not redo the narration:

- ``voice`` speaks each scene's narration (GPU lane for F5, CPU for espeak) and
  records per-scene durations and caption cues in ``voice.json``;
- ``render``, for each of the brief's formats, draws every frame of the video
  (each scene a Ken Burns image, a video clip or a title card as long as its
  narration plus padding, on-screen titles, crossfades: ``omad.media.scenes``)
  and pipes them into one ffmpeg, which burns the captions with the caption
  stage's style and encodes each frame once, while the format's cover is
  designed (``omad.media.cover``). Beside the first encode, on its own thread,
  the sound is made once for all formats: the narration laid at each scene's
  start, optional music ducked under it (and the sound of clips a scene asks
  to duck), measured in the same ffmpeg run that mixes it, normalised and
  encoded to AAC. Each format's pictures and that sound are then muxed by
  copying both streams. No per-scene clip is written: a retry draws the
  scenes again, which costs less than decoding a cached clip would.

The scene brief is the job's brief, or the ``scene_brief`` artifact an earlier
stage (the agents' plan, the asset stage) wrote, the newest winning. Images and clips are resolved
against the bundle, or, for a scene whose ``asset`` record says the asset stage chose it, against the
``assets/`` folder beside that stage's scene brief; all are checked before anything is encoded.
"""

from __future__ import annotations

import contextvars
import json
import textwrap
import wave
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..assets.music import fit_track
from ..assets.soundtrack import music_source
from ..brief import MusicRecord, Scene, VideoBrief, load_brief, parse_brief, resolve_asset
from ..errors import InputError
from ..media.audio import FINAL_AUDIO_FORMAT, check_audio, duck_filter, normalise_soundtrack
from ..media.clips import ClipFrames, ClipInfo, check_clip
from ..media.cover import make_cover, scored_scenes
from ..media.encoder import Encoder, choose_encoder
from ..media.ffmpeg import SAFE_INPUT_ARGS, escape_filter_path
from ..media.framing import SAFE_AREAS, FrameShape, SafeArea, Subjects
from ..media.kenburns import StillFrames, check_image, prepare_still, resolve_motion
from ..media.pipe import Planes, encode_piped
from ..media.scenes import SceneSpec, Timeline, TitleOverlay, layout
from ..media.subtitles import Cue, build_ass, build_karaoke_ass, write_srt
from ..media.titlecard import check_colour, prepare_title_card
from ..stage import Lane, Stage, StageContext, StageResult
from ..storyboard.scene_voice import ENTRY_KEYS, lookup
from ..storyboard.voice_cache import VoiceCache
from ..text.sentences import split_sentences
from ..tts.speech import layout_rules, scene_voice, speak

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
    needs = ("brief",)
    makes = ("voice",)

    def lane(self, ctx: StageContext) -> Lane:
        return ctx.tts_lane()

    def run(self, ctx: StageContext) -> StageResult:
        brief = scene_brief(ctx)
        label = ctx.label("brief")
        scenes: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        tts: list[dict[str, Any]] = []
        n = len(brief.scenes or [])
        # Each scene's voice is kept by what determines it: an edited storyboard makes only its changed scenes.
        cache = VoiceCache.for_job(ctx.config, ctx.base or ctx.work)
        frame = _caption_frame(ctx, brief)  # captions are laid out for the narrowest format
        for i, scene in enumerate(brief.scenes or []):
            entry: dict[str, Any] = {"index": i, "wav": None, "duration": 0.0, "cues": []}
            said = (scene.spoken or scene.narration).strip()
            if said:
                out = ctx.work / f"scene{i:02d}.wav"
                own = (scene_voice(ctx, scene.voice.model_dump(exclude_none=True), f"scenes[{i}]")
                       if scene.voice is not None else None)
                rules = layout_rules(ctx, frame)
                found_voice = lookup(ctx, cache, said, scene.narration, own, rules, frame, out, label,
                                     f"scenes[{i}].narration")
                if found_voice.entry is not None:
                    findings.extend(f for f in found_voice.findings if f not in findings)
                    tts.append({"engine": found_voice.engine, "cached": True})
                    entry.update(found_voice.entry)
                    scenes.append(entry)
                    continue
                narration, found = speak(ctx, said, out, label, f"scenes[{i}].narration", (i / n, (i + 1) / n),
                                         layout=rules, voice=own)
                findings.extend(found)
                tts.append({k: narration.facts[k] for k in ("engine", "rtf", "voice", "engine_choice")
                            if k in narration.facts})
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
                cache.put(found_voice.key, {k: entry[k] for k in ENTRY_KEYS}, out)
            scenes.append(entry)
        (ctx.work / "voice.json").write_text(json.dumps({"scenes": scenes}, ensure_ascii=False))
        facts = {"scenes": n, "spoken_seconds": round(sum(s["duration"] for s in scenes), 3),
                 "voice_cache": {"made": cache.misses, "from_job": cache.hits["job"],
                                 "from_state": cache.hits["state"]}}
        return StageResult(artifacts={"voice": "voice.json"}, facts=facts, guardrail_findings=findings, tts=tts)


def cover_title(brief: VideoBrief) -> str | None:
    """The words on the cover: the brief's title, else the first on-screen title; never invented."""
    return brief.title or next((s.title for s in brief.scenes or [] if s.title), None)


def _title_top(shape: str | None) -> float:
    """Where on-screen titles start in ``shape``'s frame (its safe area's top), as a fraction of the height."""
    safe = SAFE_AREAS.get(FrameShape(shape)) if shape else None
    return safe.top if safe else 0.08


def _caption_frame(ctx: StageContext, brief: VideoBrief) -> tuple[int, int]:
    """The frame captions are laid out for: the narrowest of the brief's formats, so every format fits them."""
    sizes = [ctx.config.video.size(shape) for shape in brief.frame_shapes()]
    return min(sizes, key=lambda wh: wh[0] / wh[1])


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


def _prepare_image(image: Path, frames: int, **options: Any) -> StillFrames:
    return prepare_still(image, frames=frames, **options)[0]


def _prepare_card(text: str, frames: int, **options: Any) -> StillFrames:
    return prepare_title_card(text, frames=frames, **options)[0]


def _prepare_clip(info: ClipInfo, frames: int, **options: Any) -> ClipFrames:
    return ClipFrames(info, count=frames, **options)


@dataclass(frozen=True)
class _Sound:
    """A scene video's finished sound, shared by its formats."""

    aac: Path
    measured: dict[str, Any]
    music_facts: dict[str, Any]


@dataclass(frozen=True)
class _DuckedClip:
    """A clip whose own sound is mixed under the narration, where and how long its scene plays."""

    path: Path
    clip_start: float
    at: float
    seconds: float


def _unless_sound_failed(sounding: Future[_Sound], timeline: Timeline, n: int) -> Planes:
    """Frame ``n`` of ``timeline``, or the sound's error once the sound has failed."""
    if sounding.done():
        error = sounding.exception()
        if error is not None:
            raise error
    return timeline(n)


def _wrap_title(text: str, width: int, height: int) -> str:
    chars = max(12, int(width / (height * 0.06 * 0.55)))
    return "\n".join(textwrap.wrap(" ".join(text.split()), chars)[:3])


class RenderStage(Stage):
    name = "render"
    needs = ("brief", "voice")
    makes = ("video", "srt", "poster")

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.config
        brief = scene_brief(ctx)
        scenes = brief.scenes or []
        voice = json.loads(ctx.path("voice").read_text())["scenes"]
        width, height = cfg.video.size(brief.frame_shapes()[0])
        fps = cfg.video.fps
        pad = cfg.scenes.padding_seconds
        xf = cfg.scenes.crossfade_seconds
        lengths = [_scene_seconds(s, v["duration"], pad) for s, v in zip(scenes, voice, strict=True)]
        if len(scenes) > 1:
            # A crossfade eats into both neighbours: keep every scene longer than two fades.
            xf = min(xf, min(lengths) / 3)
        # The timeline is in whole frames, so picture, narration and captions share one clock.
        counts = [max(1, round(length * fps)) for length in lengths]
        fade = round(xf * fps) if len(scenes) > 1 else 0
        first, frames = layout(counts, fade)
        starts = [f / fps for f in first]
        total = frames / fps
        ctx.scale_timeout(total)

        # Checked now (assets, images, clips, colours, the music) so a bad one fails before anything is encoded.
        shapes = brief.frame_shapes()
        subjects = Subjects()
        prepared = self._scene_specs(ctx, brief, scenes, counts, width, height, starts, subjects=subjects,
                                     title_top=_title_top(shapes[0]))
        music, music_record = music_source(ctx, brief)
        if music is not None:
            check_audio(music, music.name, cfg.intake.max_audio_seconds)
        timeline = Timeline(prepared[0], fade)
        try:
            timeline.prefetch()
            with ThreadPoolExecutor(1, thread_name_prefix="omad-sound") as sound_pool:
                # The sound (narration laid out, music fitted and ducked, measured, normalised, AAC) does not
                # hold up the pictures: it is made while the first format is encoded, and muxed in after.
                sounding = sound_pool.submit(contextvars.copy_context().run, self._sound, ctx, brief, voice,
                                             starts, total, prepared[2], music, music_record)
                return self._render(ctx, brief, voice, counts, starts, fade, frames, total, shapes, subjects,
                                    prepared, timeline, sounding, music is not None)
        finally:
            timeline.close()

    def _render(self, ctx: StageContext, brief: VideoBrief, voice: list[dict[str, Any]], counts: list[int],
                 starts: list[float], fade: int, frames: int, total: float, shapes: list[str | None],
                 subjects: Subjects, prepared: tuple[list[SceneSpec], list[dict[str, Any]], list[_DuckedClip]],
                 timeline: Timeline, sounding: Future[_Sound], music: bool) -> StageResult:
        """Each format drawn and encoded (the first on ``timeline``), then muxed with the one sound."""
        cfg = ctx.config
        scenes = brief.scenes or []
        fps = cfg.video.fps
        ctx.progress(0.05)

        cues = [Cue(starts[i] + c[0], starts[i] + c[1], c[2]) for i, v in enumerate(voice) for c in v["cues"]]
        write_srt(cues, ctx.work / "captions.srt")
        style = (brief.caption.style if brief.caption else None) or cfg.caption.style
        artifacts = {"srt": "captions.srt"}
        publish = {".srt": "srt"}
        made: list[dict[str, Any]] = []
        facts_scenes: list[dict[str, Any]] = []
        cover_facts: dict[str, Any] = {}
        highlighted = 0
        encoder = choose_encoder(cfg.video)
        for n, shape in enumerate(shapes):
            # Every format from the same narration, timings and pictures: only the frame, the crops and the
            # safe area differ. The first is X.mp4, the others X.<format>.mp4.
            width, height = cfg.video.size(shape)
            safe = SAFE_AREAS.get(FrameShape(shape)) if shape else None
            tag = "" if n == 0 else f".{shape}"
            role = "" if n == 0 else f"_{shape}"
            specs, scene_facts, _ = prepared if n == 0 else self._scene_specs(
                ctx, brief, scenes, counts, width, height, starts, subjects=subjects, title_top=_title_top(shape))
            if n == 0:
                facts_scenes = scene_facts
            cards = [f["kind"] == "title" for f in scene_facts]
            pictures, poster, lit, cover = self._encode(ctx, brief, voice, cues, starts, specs,
                                                        timeline if n == 0 else Timeline(specs, fade), frames, total,
                                                        cards, width, height, style, safe, tag, encoder,
                                                        sounding, base_progress=0.05 + 0.93 * n / len(shapes),
                                                        share=0.93 / len(shapes))
            sound = sounding.result()
            out = ctx.work / f"video{tag}.mp4"
            # Both streams copied as encoded: the same packets the one encoder wrote before, moov up front.
            ctx.ffmpeg(["-i", str(pictures), "-i", str(sound.aac), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
                        "-movflags", "+faststart", str(out)], file_label=ctx.label("brief"))
            pictures.unlink(missing_ok=True)
            highlighted = highlighted or lit
            artifacts.update({f"video{role}": out.name, f"poster{role}": poster.name})
            publish.update({f"{tag}.mp4": f"video{role}", f"{tag}.jpg": f"poster{role}"})
            made.append({"format": shape or cfg.video.preset, "width": width, "height": height,
                         "video": f"{tag}.mp4", "cover": f"{tag}.jpg", "cover_scene": cover["scene"],
                         "cover_title": cover["title"]})
            if n == 0:
                cover_facts = cover
        for i in range(len(scenes)):
            found = subjects.get(str(i))
            if found is not None:
                facts_scenes[i]["subject"] = found.to_dict()
        width, height = made[0]["width"], made[0]["height"]
        ctx.progress(1.0)
        return StageResult(
            artifacts=artifacts,
            publish=publish,
            facts={"seconds": round(total, 3), "width": width, "height": height, "fps": fps, "frames": frames,
                   "crossfade_seconds": round(fade / fps, 3), "scenes": facts_scenes, "captions": len(cues),
                   "caption_style": style, "captions_word_highlighted": highlighted,
                   "music": music, "clips_ducked": len(prepared[2]), **encoder.facts(), "render": "one pass",
                   **({"formats": made} if len(made) > 1 or brief.formats else {}), **sound.music_facts,
                   "cover": cover_facts,
                   "loudness": {"measured_lufs": sound.measured.get("input_i"),
                                "target_lufs": cfg.audio.loudness_lufs}},
        )

    def _sound(self, ctx: StageContext, brief: VideoBrief, voice: list[dict[str, Any]], starts: list[float],
               total: float, ducked: list[_DuckedClip], music: Path | None,
               music_record: MusicRecord | None) -> _Sound:
        """The finished sound: narration at each scene's start, the music fitted and ducked under it (and the
        clips' own sound where a scene asks), mixed by ffmpeg, measured and normalised in numpy, then encoded to
        AAC once for every format."""
        cfg = ctx.config
        label = ctx.label("brief")
        voice_wav = self._voice_track(ctx, voice, starts, total)
        soundtrack = ctx.work / "soundtrack.wav"
        args = ["-i", str(voice_wav)]
        beds: list[str] = []
        graph: list[str] = []
        music_facts: dict[str, Any] = {}
        if music is not None:
            music_db = brief.music_db if brief.music_db is not None else cfg.scenes.music_db
            # Cut or looped where a phrase ends, faded (omad.assets.music); ducked under the voice below.
            fitted_bed = ctx.work / "music.wav"
            fitted = fit_track(music, total, fitted_bed, timeout=ctx.timeout, label=f"{label}: {music.name}",
                               cancel=ctx.cancel)
            music_facts = {"music_track": {**(music_record.model_dump() if music_record else {"file": music.name}),
                                           **fitted.facts()}}
            args += [*SAFE_INPUT_ARGS, "-i", str(fitted_bed)]
            graph.append(f"[1:a:0]volume={music_db}dB[_bed0]")
            beds.append("[_bed0]")
        for clip in ducked:
            # From clip_start, looped from the clip's beginning as its picture is, laid at its scene's start.
            n = len(beds) + 1
            args += [*SAFE_INPUT_ARGS, "-ss", f"{clip.clip_start:.3f}", "-stream_loop", "-1", "-i", str(clip.path)]
            graph.append(f"[{n}:a:0]aformat=sample_rates=48000:channel_layouts=stereo,atrim=0:{clip.seconds:.3f},"
                         f"asetpts=PTS-STARTPTS,volume={cfg.scenes.clip_audio_db}dB,"
                         f"adelay={round(clip.at * 1000)}:all=1[_bed{n - 1}]")
            beds.append(f"[_bed{n - 1}]")
        if beds:
            if len(beds) > 1:
                graph.append(f"{''.join(beds)}amix=inputs={len(beds)}:duration=longest:normalize=0[_beds]")
                bed = "_beds"
            else:
                bed = beds[0][1:-1]
            graph.append(duck_filter(bed, "0:a:0", "mixed", 0.0) + f";[mixed]{FINAL_AUDIO_FORMAT},apad,"
                         f"atrim=0:{total:.3f}[out]")
        else:
            graph.append(f"[0:a:0]{FINAL_AUDIO_FORMAT},apad,atrim=0:{total:.3f}[out]")
        ctx.ffmpeg([*args, "-filter_complex", ";".join(graph), "-map", "[out]", "-c:a", "pcm_s16le", str(soundtrack)],
                   file_label=label)
        # Measured and brought to the target in numpy (omad.media.audio.normalise_soundtrack).
        wav, afilter, measured = normalise_soundtrack(soundtrack, ctx.work / "soundtrack.normalised.wav", cfg.audio,
                                                      ff=ctx.ffmpeg, label=label)
        aac = ctx.work / "soundtrack.m4a"
        ctx.ffmpeg(["-i", str(wav), "-map", "0:a:0", "-af", afilter, "-c:a", "aac", "-b:a", cfg.video.audio_bitrate,
                    "-t", f"{total:.6f}", str(aac)], file_label=label)
        return _Sound(aac, measured, music_facts)

    @staticmethod
    def _encode(ctx: StageContext, brief: VideoBrief, voice: list[dict[str, Any]], cues: list[Cue],
                starts: list[float], specs: list[SceneSpec], timeline: Timeline, frames: int, total: float,
                cards: list[bool], width: int, height: int, style: str,
                safe: SafeArea | None, tag: str, encoder: Encoder, sounding: Future[_Sound], *, base_progress: float,
                share: float) -> tuple[Path, Path, int, dict[str, Any]]:
        """One format's pictures: its frames piped into one encoder that burns its captions (no sound yet).

        If the sound fails meanwhile, the drawing stops at the next frame and the sound's error is raised: the
        video would have nothing to be muxed with.
        """
        cfg = ctx.config
        label = ctx.label("brief")
        fps = cfg.video.fps
        vfilter: list[str] = []
        highlighted = 0
        # Captions sit above the format's safe margin (a vertical video's lower fifth is the app's own).
        caption_cfg = (cfg.caption if safe is None else
                       cfg.caption.model_copy(update={"margin_ratio": max(cfg.caption.margin_ratio, safe.bottom)}))
        if brief.captions and cues:
            ass = ctx.work / f"captions{tag}.ass"
            if style == "word_highlight":
                words = [(starts[i] + w[0], starts[i] + w[1], w[2]) for i, v in enumerate(voice)
                         for w in v.get("words", [])]
                highlighted = build_karaoke_ass(cues, words, width, height, caption_cfg, ass)
            else:
                build_ass(cues, width, height, caption_cfg, ass)
            vfilter = ["-vf", f"ass={escape_filter_path(ass)}"]
        out = ctx.work / f"pictures{tag}.mp4"

        def _args(fifo: Path) -> list[str]:
            # One encoder: omad's frames in, libass burns the captions; the sound is muxed in afterwards.
            return [
                *SAFE_INPUT_ARGS,
                "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(fps),
                "-i", str(fifo),
                "-map", "0:v:0", *vfilter, *encoder.args, "-t", f"{total:.6f}", str(out),
            ]  # fmt: skip

        poster = ctx.work / f"poster{tag}.jpg"
        # The cover (the best scene picture by sharpness and faces, with the title large in the safe area) is
        # drawn while the encoder runs: ~1 s of drawing that would otherwise follow it.
        timeline.keep_middles(scored_scenes(cards))
        with ThreadPoolExecutor(1, thread_name_prefix="omad-cover") as pool:
            covering = pool.submit(make_cover, specs, cards, cover_title(brief), cfg.scenes.title_font_file, safe,
                                   poster, timeline.middle)
            try:
                encode_piped(partial(_unless_sound_failed, sounding, timeline), frames, _args, ff=ctx.ffmpeg,
                             duration=total, label=label,
                             span=(base_progress, base_progress + share))
            except BaseException:
                out.unlink(missing_ok=True)
                raise
            finally:
                timeline.close()
            cover = covering.result()
        return out, poster, highlighted, cover

    @staticmethod
    def _scene_specs(ctx: StageContext, brief: VideoBrief, scenes: list[Scene], counts: list[int], width: int,
                     height: int, starts: list[float], subjects: Subjects | None = None, title_top: float = 0.08,
                     ) -> tuple[list[SceneSpec], list[dict[str, Any]], list[_DuckedClip]]:
        """How to draw each scene, checked now (assets, images, clips, colours) so a bad one fails before encoding.

        Also the clips whose sound is ducked under the narration.
        """
        cfg = ctx.config
        label = ctx.label("brief")
        base = ctx.inputs["brief"].parent
        # The asset stage's pictures sit in assets/ beside the scene brief it wrote (in its own run folder).
        chosen = (ctx.path("scene_brief").parent if "scene_brief" in ctx.artifacts else ctx.work) / "assets"
        font = cfg.scenes.title_font_file
        fps = cfg.video.fps
        specs: list[SceneSpec] = []
        facts: list[dict[str, Any]] = []
        ducked: list[_DuckedClip] = []
        for i, (scene, count) in enumerate(zip(scenes, counts, strict=True)):
            motion = scene.motion or cfg.img2vid.motion
            seed = f"{ctx.job_id}{i}"
            seconds = count / fps
            entry: dict[str, Any] = {"index": i, "seconds": round(seconds, 3),
                                     "kind": "image" if scene.image else "clip" if scene.clip else "title"}
            if scene.asset is not None:
                entry["source"] = scene.asset.source
            # A picture the asset stage chose lives in its assets/ folder, never outside it; the user's in the bundle.
            where = chosen if scene.asset is not None else base
            title = scene.title
            overlay = (partial(TitleOverlay, _wrap_title(title, width, height), width, height, font, title_top)
                       if title else None)
            if scene.clip:
                key = f"scenes[{i}].clip"
                path = resolve_asset(where, scene.clip, label, key)
                start = scene.clip_start or 0.0
                info = check_clip(path, label, key, start=start, max_seconds=cfg.intake.max_clip_seconds,
                                  max_megapixels=cfg.intake.max_image_megapixels)
                fit = scene.fit or cfg.scenes.fit
                sound: str = scene.clip_audio or "mute"
                if sound == "duck" and not info.has_audio:
                    ctx.warn(f"{label}: '{key}' ('{scene.clip}') has no sound to duck under the narration.")
                    sound = "none"
                if sound == "duck":
                    ducked.append(_DuckedClip(path, start, starts[i], seconds))
                entry.update(clip=scene.clip, fit=fit, clip_audio=sound, clip_size=[info.width, info.height],
                             **info.plan(start, seconds))
                specs.append(SceneSpec(
                    prepare=partial(_prepare_clip, info, width=width, height=height, fps=fps, start=start, fit=fit,
                                    label=label),
                    frames=count,
                    title=overlay,
                ))
            elif scene.image:
                image = resolve_asset(where, scene.image, label, f"scenes[{i}].image")
                image_label = f"{label}: {scene.image}"
                check_image(image, image_label, cfg.intake.max_image_megapixels)
                # The motion prepare_still will pick, recorded without decoding the picture yet.
                entry["motion"] = resolve_motion(motion, seed, image_label).value
                entry["fit"] = scene.fit or cfg.img2vid.fit
                specs.append(SceneSpec(
                    prepare=partial(_prepare_image, image, width=width, height=height, motion=motion,
                                    fit=entry["fit"], zoom=cfg.img2vid.zoom, seed=seed, label=image_label,
                                    max_megapixels=cfg.intake.max_image_megapixels,
                                    subject=subjects.finder(str(i)) if subjects is not None else None),
                    frames=count,
                    title=overlay,
                    faces=subjects.faces(str(i)) if subjects is not None else None,
                ))
            else:
                text = scene.title or scene.narration or brief.title or " "
                background = scene.background or cfg.scenes.title_background
                check_colour(background, label)
                entry["motion"] = "zoom_in"
                specs.append(SceneSpec(
                    prepare=partial(_prepare_card, text, width=width, height=height, background=background,
                                    font_file=font, label=label),
                    frames=count,
                ))
            facts.append(entry)
        return specs, facts, ducked

    @staticmethod
    def _voice_track(ctx: StageContext, voice: list[dict[str, Any]], starts: list[float], total: float) -> Path:
        """All scenes' narration laid at their start times in one mono 16-bit WAV."""
        rates = {int(v["sample_rate"]) for v in voice if v["wav"]}
        rate = next(iter(rates)) if len(rates) == 1 else 48000
        buf = np.zeros(int(total * rate) + rate, dtype=np.int32)
        for v, start in zip(voice, starts, strict=True):
            if not v["wav"]:
                continue
            with wave.open(str(ctx.path("voice").parent / v["wav"]), "rb") as w:
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
