"""A quick low-resolution preview of one storyboard scene, with its voice.

The scene alone becomes a one-scene brief beside the storyboard (so its
picture resolves as the render resolves it) and runs through the real
``voice`` and ``render`` stages: the voice at the job's own settings, so it
lands in the job's voice cache and the final render takes it from there; the
picture small and fast (``PREVIEW_WIDTH`` wide, ``PREVIEW_FPS``, x264
``ultrafast``). A preview is kept by what it shows (the scene and the frame
format): asking again is a file read. A scene whose voice is not made yet and
whose engine runs on the GPU lane (F5) is not previewed: the web side never
takes the GPU from the jobs; Render makes it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..errors import InputError
from ..lanes import Lane, Lanes
from ..outbox import atomic_write_text
from ..stage import StageContext
from ..tts.speech import layout_rules, scene_voice
from .scene_voice import lookup
from .voice_cache import VoiceCache

if TYPE_CHECKING:
    from ..config import Config
    from ..journal import Job
    from .board import Board

__all__ = ["make_preview", "PREVIEW_WIDTH", "PREVIEW_FPS"]

PREVIEW_WIDTH = 384
PREVIEW_FPS = 12
_LOCK = threading.Lock()  # one preview at a time: the web side takes one CPU slot, never more


def _small(config: Config, fmt: str | None) -> Config:
    width, height = config.video.size(fmt)
    w = PREVIEW_WIDTH if width >= height else PREVIEW_WIDTH * width // height
    h = w * height // width
    video = config.video.model_copy(update={"preset": "custom", "width": w - w % 2, "height": h - h % 2,
                                            "fps": PREVIEW_FPS, "x264_preset": "ultrafast"})
    return config.model_copy(update={"video": video})


def make_preview(config: Config, job: Job, board: Board, index: int, timeout: float = 600.0) -> Path:
    """The preview video of scene ``index`` (made now unless it is already there)."""
    from ..stages.video import RenderStage, VoiceStage

    brief = board.load()
    scenes = brief.scenes or []
    if not 0 <= index < len(scenes):
        raise InputError(f"the storyboard has no scene {index + 1} (it has {len(scenes)}).", file=board.label)
    one = brief.model_copy(update={"scenes": [scenes[index]], "format": brief.format})
    text = yaml.safe_dump(one.model_dump(mode="json", exclude_none=True), allow_unicode=True, sort_keys=False)
    key = hashlib.sha256(f"{text}\0{config.video.size(brief.format)}".encode()).hexdigest()[:20]
    folder = board.work / "preview" / key
    video = folder / "video.mp4"
    if video.is_file():
        return video
    with _LOCK:
        if video.is_file():
            return video
        folder.mkdir(parents=True, exist_ok=True)
        scene_brief = f".preview-{key}.yaml"
        atomic_write_text(board.work / scene_brief, text)
        inputs = {c["role"]: board.work / c["stored"] for c in job.inputs if not c.get("claim")}
        lanes = Lanes(1)

        def context(cfg: Config, stage: str, artifacts: dict[str, str]) -> StageContext:
            return StageContext(job_id=job.id, route=job.route, name=job.name, work=folder, inputs=inputs,
                                options=job.options, config=cfg, lanes=lanes, artifacts=artifacts, stage=stage,
                                timeout=timeout, base=board.work)

        voice_ctx = context(config, "voice", {"scene_brief": scene_brief})
        _refuse_gpu(voice_ctx, board, one.scenes[0] if one.scenes else None, folder, brief.format)
        voice_stage = VoiceStage()
        try:
            voice_stage.run(voice_ctx)
        finally:
            voice_stage.cleanup(voice_ctx)
        render_ctx = context(_small(config, brief.format), "render",
                             {"scene_brief": scene_brief, "voice": f"preview/{key}/voice.json"})
        render = RenderStage()
        try:
            render.run(render_ctx)
        finally:
            render.cleanup(render_ctx)
            (board.work / scene_brief).unlink(missing_ok=True)
        return video


def _refuse_gpu(ctx: StageContext, board: Board, scene: object, folder: Path, fmt: str | None) -> None:
    """A GPU-lane voice (F5) is previewed only from the cache: the web side never takes the GPU from the jobs."""
    from ..brief import Scene

    if not isinstance(scene, Scene) or ctx.tts_lane() is not Lane.GPU:
        return
    said = (scene.spoken or scene.narration).strip()
    if not said:
        return
    own = (scene_voice(ctx, scene.voice.model_dump(exclude_none=True), "scene") if scene.voice is not None
           else None)
    frame = ctx.config.video.size(fmt)
    cache = VoiceCache.for_job(ctx.config, board.work)
    found = lookup(ctx, cache, said, scene.narration, own, layout_rules(ctx, frame), frame, folder / "probe.wav",
                   board.label, "scene")
    if found.entry is None:
        raise InputError("this scene's voice is made by F5 on the GPU lane, which a preview never takes from the "
                         "jobs. Press Render to hear it in the video.", file=board.label)
