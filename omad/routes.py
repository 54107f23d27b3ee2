"""Routes as data: what each route makes, the drops it takes and its stages in order, in one table.

Intake's grouping and pairing (:mod:`omad.pairing`), the inbox's route folders
(``inbox/caption/``...), the accepted-files text, the Create form's kinds and
the API's validation, the metrics' known series and the README's table are all
derived from :data:`TABLE`. A stage is named here by its import path and
imported only when a job of its route runs, so a route's dependencies load only
then; what each stage needs and makes is written beside that path (and on the
stage class, which :func:`stage_named` checks against it), so every route's
chain is checked when the table is built, without importing a stage: a stage
that needs an artifact no earlier stage, drop or brief of its route supplies
is a ``TypeError`` at import.

A new route is three edits: its stage module, its entry here (or
:func:`register` from a module named in ``intake.route_modules``) and its brief
model in :mod:`omad.brief` (or :func:`omad.brief.register`).

    route        stages                  makes
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .errors import InputError
from .stage import Stage

__all__ = ["Route", "Drop", "drop", "StageRef", "TABLE", "ROUTES", "ROUTE_STAGES", "ROUTE_FOLDERS", "STAGES",
           "stages_for", "stage_named", "route_table", "register", "unregister", "load_route_modules", "check_chain"]


@dataclass(frozen=True)
class Drop:
    """One shape of plain drop (files sharing a stem) that a route takes, by file kind (:mod:`omad.kinds`)."""

    #: the kinds the drop must hold, one file each
    needs: frozenset[str]
    #: kinds it may hold besides
    may: frozenset[str] = frozenset()
    #: an ``intake.*`` key: how long a drop holding only ``needs`` waits for a partner (a ``may`` kind, or in
    #: the inbox root one that makes it another route's drop) before it goes alone; 0 there means
    #: ``intake.partner_grace_seconds``. None: it goes at once.
    grace: str | None = None
    #: whether a drop in the inbox root takes this shape; False: only inside the route's folder
    root: bool = True
    #: ``(intake key, value)``: a root drop takes this shape only while that setting has that value
    when: tuple[str, str] | None = None
    #: what a partner of this shape is for, shown in messages ("for captions")
    purpose: str = ""
    #: what happens to the drop when no partner comes, shown while it waits ("transcribed")
    then: str = ""

    @property
    def kinds(self) -> frozenset[str]:
        return self.needs | self.may


def drop(*needs: str, may: tuple[str, ...] = (), grace: str | None = None, root: bool = True,
         when: tuple[str, str] | None = None, purpose: str = "", then: str = "") -> Drop:
    return Drop(frozenset(needs), frozenset(may), grace, root, when, purpose, then)


@dataclass(frozen=True)
class StageRef:
    """A stage as the table knows it: where its class is, and the artifacts it needs and makes.

    ``needs`` entries may be alternatives written ``"video|audio"`` (one of them).
    ``target`` is ``module:Class``, or the class itself for a route registered at run time.
    """

    target: str | type[Stage]
    needs: tuple[str, ...] = ()
    makes: tuple[str, ...] = ()

    @classmethod
    def of(cls, stage: type[Stage]) -> StageRef:
        return cls(stage, tuple(stage.needs), tuple(stage.makes))


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
    #: the plain drops it takes, the first fitting shape winning; none: briefs only
    drops: tuple[Drop, ...] = field(default=())
    #: the ``intake.*`` key: how long a drop that lacks a needed partner waits before it is refused
    wait: str = "pair_timeout_seconds"


#: Every stage, by name: where it is, what it needs and what it makes (imported when a job needs it).
STAGES: dict[str, StageRef] = {
    "caption": StageRef("omad.stages.caption:CaptionStage", ("video", "srt"), ("video",)),
    "addaudio": StageRef("omad.stages.addaudio:AddAudioStage", ("video", "audio"), ("video",)),
    "narrate": StageRef("omad.stages.narrate:NarrateStage", (), ("audio", "srt")),
    "img2vid": StageRef("omad.stages.img2vid:Img2VidStage", ("image",), ("video",)),
    "plan": StageRef("omad.stages.plan:PlanStage", ("brief",), ("scene_brief",)),
    "assets": StageRef("omad.stages.assets:AssetStage", ("brief",), ("scene_brief",)),
    "voice": StageRef("omad.stages.video:VoiceStage", ("brief",), ("voice",)),
    "render": StageRef("omad.stages.video:RenderStage", ("brief", "voice"), ("video", "srt", "poster")),
    "post": StageRef("omad.stages.post:PostStage", ("brief",), ("post",)),
    "transcribe": StageRef("omad.stages.transcribe:TranscribeStage", ("video|audio",),
                         ("transcript", "srt", "vtt", "text", "video")),
    "resync": StageRef("omad.stages.resync:ResyncStage", ("video", "srt"), ("srt",)),
}

TABLE: list[Route] = [
    Route("caption", ("caption",), "video + subtitles -> the video with the captions burned in",
          drops=(drop("video", "srt", purpose="for captions"),)),
    Route("addaudio", ("addaudio",), "video + audio -> the video with that soundtrack",
          drops=(drop("video", "audio", purpose="for new sound"),)),
    Route("narrate", ("narrate",), "text -> WAV narration + SRT timed to it", drops=(drop("text"),)),
    Route("img2vid", ("img2vid",), "image (+ audio) -> Ken Burns clip",
          drops=(drop("image", may=("audio",), grace="partner_grace_seconds"),)),
    Route("video", ("assets", "voice", "render", "post"),
          "scene brief -> narrated, captioned video + SRT + cover + the words to post it"),
    Route("agent-video", ("plan", "assets", "voice", "render", "post"),
          "prompt brief -> agents write the scenes -> as video",
          folder=False),
    Route("transcribe", ("transcribe",), "video or recording alone -> captions from its speech (+ SRT, VTT; TXT)",
          drops=tuple(drop(k, grace="lone_video_grace_seconds", when=("lone_video", "transcribe"), then="transcribed")
                      for k in ("video", "audio"))),
    Route("resync", ("resync", "caption"), "video + subtitles -> cues moved onto the speech, then burned in + SRT",
          drops=(drop("video", "srt", root=False),)),
]

#: The derived views below are updated in place when a route is registered, so importers keep seeing them.
ROUTES: list[str] = []
#: The names of each route's stages, in order, known without importing the stage modules.
ROUTE_STAGES: dict[str, tuple[str, ...]] = {}
#: Subfolders of the inbox that force a route instead of being bundles.
ROUTE_FOLDERS: list[str] = []


def _supplied(route: Route) -> set[str]:
    """Every artifact kind a drop or a brief of ``route`` can bring (the brief's file roles, and the brief)."""
    from .brief import briefs_for

    kinds = {k for d in route.drops for k in d.kinds}
    for model in briefs_for(route.name):
        kinds |= {"brief", *model.roles()}
    return kinds


def check_chain(route: Route, stages: dict[str, StageRef] | None = None) -> None:
    """``TypeError`` unless each of ``route``'s stages is known and needs only what is supplied before it."""
    stages = STAGES if stages is None else stages
    have = _supplied(route)
    for name in route.stages:
        ref = stages.get(name)
        if ref is None:
            raise TypeError(f"route {route.name!r} names stage {name!r}, which is not in routes.STAGES")
        for need in ref.needs:
            if not have & set(need.split("|")):
                raise TypeError(f"route {route.name!r}: stage {name!r} needs {need!r}, which neither a drop or brief "
                                f"of the route ({', '.join(sorted(have)) or 'nothing'}) nor an earlier stage makes")
        have |= set(ref.makes)


def _rebuild() -> None:
    for route in TABLE:
        check_chain(route)
    ROUTES[:] = [r.name for r in TABLE]
    ROUTE_STAGES.clear()
    ROUTE_STAGES.update({r.name: r.stages for r in TABLE})
    ROUTE_FOLDERS[:] = [r.name for r in TABLE if r.folder]


def register(route: Route, stages: dict[str, type[Stage] | StageRef] | None = None) -> None:
    """Add ``route`` (and the stages it brings) to the table; checked like the built-in ones.

    Register its brief model first (:func:`omad.brief.register`) when its stages need what the brief names.
    """
    if any(r.name == route.name for r in TABLE):
        raise ValueError(f"route {route.name!r} is already in the table")
    refs = {n: s if isinstance(s, StageRef) else StageRef.of(s) for n, s in (stages or {}).items()}
    clash = sorted(set(refs) & set(STAGES))
    if clash:
        raise ValueError(f"stage names {', '.join(clash)} are taken")
    check_chain(route, {**STAGES, **refs})
    STAGES.update(refs)
    TABLE.append(route)
    _rebuild()


def unregister(name: str) -> None:
    """Take route ``name`` and the stages only it used out of the table (undoes :func:`register`)."""
    route = next((r for r in TABLE if r.name == name), None)
    if route is None:
        return
    TABLE.remove(route)
    used = {s for r in TABLE for s in r.stages}
    for stage in route.stages:
        if stage not in used:
            STAGES.pop(stage, None)
    _rebuild()


def load_route_modules(modules: list[str]) -> None:
    """Import each module of ``intake.route_modules`` (they register their routes and briefs when imported)."""
    from .errors import ConfigError

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"intake.route_modules names {module!r}, which cannot be imported ({e}). Install it, "
                              "or fix the name in the config.") from e


def stage_named(name: str) -> Stage:
    """A fresh instance of the stage called ``name``; its class must declare what the table says it needs/makes."""
    ref = STAGES[name]
    if isinstance(ref.target, str):
        module, _, cls_name = ref.target.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
    else:
        cls = ref.target
    stage = cls()
    if not isinstance(stage, Stage) or stage.name != name:  # a mistake in this table, caught by the tests
        raise TypeError(f"{ref.target} is not the Stage named {name!r}")
    if (tuple(stage.needs), tuple(stage.makes)) != (ref.needs, ref.makes):
        raise TypeError(f"stage {name!r} declares needs={stage.needs} makes={stage.makes}, but routes.STAGES says "
                        f"needs={ref.needs} makes={ref.makes}")
    return stage


def stages_for(route: str) -> list[Stage]:
    """A fresh instance of each of ``route``'s stages, in order."""
    if route not in ROUTE_STAGES:
        raise InputError(f"route '{route}' is not one omad knows. Routes: {', '.join(ROUTES)}.")
    return [stage_named(name) for name in ROUTE_STAGES[route]]


def route_table() -> str:
    """The table of routes as text (this module's doc shows it)."""
    width = max(len(r.name) for r in TABLE) + 2
    swidth = max(len(" -> ".join(r.stages)) for r in TABLE) + 2
    return "\n".join(f"{r.name:<{width}}{' -> '.join(r.stages):<{swidth}}{r.makes}" for r in TABLE)


_rebuild()
__doc__ = (__doc__ or "") + "\n".join("    " + line for line in route_table().splitlines()) + "\n"
