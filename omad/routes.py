"""Routes as data: what each route makes, and its stages in order, in one table.

Intake's accepted routes, the inbox's route folders (``inbox/caption/``...),
the metrics' known series and the README's table are all derived from
:data:`TABLE`. A stage is named here by its import path and imported only
when a job of its route runs, so a route's dependencies load only then.

    route        stages                  makes
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import InputError
from .stage import Stage

__all__ = ["Route", "TABLE", "ROUTES", "ROUTE_STAGES", "ROUTE_FOLDERS", "STAGES", "stages_for", "stage_named",
           "route_table"]


@dataclass(frozen=True)
class Route:
    #: the route's name, in the journal, the sidecar and metric labels
    name: str
    #: its stages' names, in order (each one a key of :data:`STAGES`)
    stages: tuple[str, ...]
    #: what a drop on this route becomes
    makes: str
    #: whether ``inbox/<name>/`` forces the route
    folder: bool = True


#: Every stage, by name, as ``module:Class`` (imported when a job needs it).
STAGES: dict[str, str] = {
    "caption": "omad.stages.caption:CaptionStage",
    "addaudio": "omad.stages.addaudio:AddAudioStage",
    "narrate": "omad.stages.narrate:NarrateStage",
    "img2vid": "omad.stages.img2vid:Img2VidStage",
    "plan": "omad.stages.plan:PlanStage",
    "assets": "omad.stages.assets:AssetStage",
    "voice": "omad.stages.video:VoiceStage",
    "render": "omad.stages.video:RenderStage",
    "post": "omad.stages.post:PostStage",
    "transcribe": "omad.stages.transcribe:TranscribeStage",
    "resync": "omad.stages.resync:ResyncStage",
}

TABLE: tuple[Route, ...] = (
    Route("caption", ("caption",), "video + subtitles -> the video with the captions burned in"),
    Route("addaudio", ("addaudio",), "video + audio -> the video with that soundtrack"),
    Route("narrate", ("narrate",), "text -> WAV narration + SRT timed to it"),
    Route("img2vid", ("img2vid",), "image (+ audio) -> Ken Burns clip"),
    Route("video", ("assets", "voice", "render", "post"),
          "scene brief -> narrated, captioned video + SRT + cover + the words to post it"),
    Route("agent-video", ("plan", "assets", "voice", "render", "post"),
          "prompt brief -> agents write the scenes -> as video",
          folder=False),
    Route("transcribe", ("transcribe",), "video or recording alone -> captions from its speech (+ SRT, VTT; TXT)"),
    Route("resync", ("resync", "caption"), "video + subtitles -> cues moved onto the speech, then burned in + SRT"),
)

ROUTES: tuple[str, ...] = tuple(r.name for r in TABLE)
#: The names of each route's stages, in order, known without importing the stage modules.
ROUTE_STAGES: dict[str, tuple[str, ...]] = {r.name: r.stages for r in TABLE}
#: Subfolders of the inbox that force a route instead of being bundles.
ROUTE_FOLDERS: tuple[str, ...] = tuple(r.name for r in TABLE if r.folder)


def stage_named(name: str) -> Stage:
    """A fresh instance of the stage called ``name``."""
    module, _, cls = STAGES[name].partition(":")
    stage = getattr(importlib.import_module(module), cls)()
    if not isinstance(stage, Stage) or stage.name != name:  # a mistake in this table, caught by the tests
        raise TypeError(f"{STAGES[name]} is not the Stage named {name!r}")
    return stage


def stages_for(route: str) -> list[Stage]:
    """A fresh instance of each of ``route``'s stages, in order."""
    if route not in ROUTE_STAGES:
        raise InputError(f"route '{route}' is not one omad knows. Routes: {', '.join(ROUTES)}.")
    return [stage_named(name) for name in ROUTE_STAGES[route]]


def route_table() -> str:
    """The table of routes as text (the module doc and ``omad routes`` show it)."""
    width = max(len(r.name) for r in TABLE) + 2
    swidth = max(len(" -> ".join(r.stages)) for r in TABLE) + 2
    return "\n".join(f"{r.name:<{width}}{' -> '.join(r.stages):<{swidth}}{r.makes}" for r in TABLE)


__doc__ = (__doc__ or "") + "\n".join("    " + line for line in route_table().splitlines()) + "\n"
