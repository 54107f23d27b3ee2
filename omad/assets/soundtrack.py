"""A video's music, between the stages: the asset stage chooses a track by mood, the render finds and fits it.

:func:`choose_music` runs in the asset stage for a brief whose ``music`` is
a mood (``music: {mood: alegre}``): it brings the music index up to date,
takes the best track, copies it into ``work/assets/`` and returns the brief's
``music`` with a ``chosen`` record (title, artist, tags, credit, why), which
goes into ``X.scenes.yaml`` and, dropped again, gets the same track back
without a new choice. :func:`music_source` tells the render which file to
play: the chosen copy, or the file the bundle names. A mood with no folders
configured or no matching track is a warning, never a failure: the video is
made without music and says why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..brief import MusicChoice, MusicRecord, VideoBrief, resolve_asset
from ..errors import TransientError
from .base import asset_dir
from .music import MusicIndex, Track

if TYPE_CHECKING:
    from ..config import Config
    from ..stage import StageContext

__all__ = ["choose_music", "music_source", "index_for", "music_moods"]

_WORDS_PER_SECOND = 2.5


def index_for(config: Config) -> MusicIndex | None:
    """The music index of ``assets.music``, or None when no folders are configured."""
    music = config.assets.music
    if not music.folders:
        return None
    path = Path(music.index).expanduser() if music.index else Path(config.state_dir) / "assets" / "music.sqlite"
    try:
        return MusicIndex(path, [Path(f) for f in music.folders], max_files=music.max_files)
    except OSError as e:
        raise TransientError(f"the music index {path} cannot be opened ({e.strerror}).") from e


def music_moods(config: Config) -> list[str]:
    """The moods the user's music folders offer (none when no folders are configured or none can be read)."""
    try:
        index = index_for(config)
    except TransientError:
        return []
    if index is None:
        return []
    with index:
        index.scan()
        return index.moods()


def _estimate_seconds(brief: VideoBrief) -> float:
    if brief.duration_seconds:
        return brief.duration_seconds
    words = sum(len((s.spoken or s.narration).split()) for s in brief.scenes or [])
    return max(5.0, words / _WORDS_PER_SECOND + sum(s.duration or 0.0 for s in brief.scenes or []))


def _copy(track: Path, ctx: StageContext) -> str:
    name = f"music{track.suffix.lower()}"
    dst = asset_dir(ctx) / name
    dst.unlink(missing_ok=True)
    try:
        os.link(track, dst)
    except OSError:
        shutil.copyfile(track, dst)
    return name


def _record(track: Track, file: str, why: list[str]) -> MusicRecord:
    return MusicRecord(file=file, id=str(track.path), title=track.title[:300], artist=track.artist[:300],
                       genre=track.genre[:300], mood=track.mood[:300], seconds=round(track.seconds, 3),
                       why=f"matched {', '.join(why)} in its tags or folders"[:500], credit=track.credit()[:400])


def choose_music(ctx: StageContext, brief: VideoBrief) -> tuple[MusicChoice | None, dict[str, Any]]:
    """The brief's music with a track chosen (None: nothing to choose, or nothing found) and the facts of it."""
    music = brief.music
    if not isinstance(music, MusicChoice) or music.file:
        return None, {}
    label = ctx.label("brief")
    wanted = {"mood": music.mood, "words": music.words or []}
    index = index_for(ctx.config)
    if index is None:
        ctx.warn(f"{label}: music asks for a mood ('{music.mood}') but no music folders are configured "
                 "(assets.music.folders); the video has no music.")
        return None, {"music": {**wanted, "chosen": None, "why": "no music folders configured"}}
    with index:
        scan = index.scan()
        for line in scan.broken[:5]:
            ctx.warn(f"music: {line}; it is skipped. Replace or remove the file.")
        if music.chosen is not None:
            # Dropped again with the choice written in: the same track, when it is still in the folders.
            for track in index.tracks():
                if str(track.path) == music.chosen.id:
                    file = _copy(track.path, ctx)
                    chosen = music.chosen.model_copy(update={"file": file})
                    return music.model_copy(update={"chosen": chosen}), {
                        "music": {**wanted, "chosen": chosen.model_dump(), "kept": True, "index": scan.facts()}}
        pick = index.choose(music.mood, list(music.words or []), _estimate_seconds(brief), seed=ctx.job_id)
        if pick is None:
            ctx.warn(f"{label}: no track in the music folders matches the mood '{music.mood}'; the video has no "
                     "music. Tag a track's mood (or put it in a folder named after the mood).")
            return None, {"music": {**wanted, "chosen": None, "why": "no track matched", "index": scan.facts()}}
        track, why = pick
        record = _record(track, _copy(track.path, ctx), why)
    return music.model_copy(update={"chosen": record}), {
        "music": {**wanted, "chosen": record.model_dump(), "index": scan.facts()}}


def music_source(ctx: StageContext, brief: VideoBrief) -> tuple[Path | None, MusicRecord | None]:
    """The music file the render plays (the chosen copy in work/assets/, or the bundle's file) and its record."""
    music = brief.music
    if isinstance(music, MusicChoice) and music.chosen is not None and not music.file:
        folder = (ctx.path("scene_brief").parent if "scene_brief" in ctx.artifacts else ctx.work) / "assets"
        path = resolve_asset(folder, music.chosen.file, ctx.label("brief"), "music.chosen.file")
        return path, music.chosen
    return ctx.inputs.get("music"), None
