"""Routes: the ordered stages of each route, in one place so a reader sees a route's whole path.

    caption      caption                         video + SRT -> captioned video
    addaudio     addaudio                        video + audio -> video with that soundtrack
    narrate      narrate                         text -> WAV + SRT
    img2vid      img2vid                         image (+ audio) -> Ken Burns clip
    video        voice -> render                 scene brief -> narrated, captioned video + SRT + poster
    agent-video  plan -> voice -> render         prompt brief -> agents write the scenes -> as above
"""

from __future__ import annotations

from .errors import InputError
from .stage import Stage

__all__ = ["stages_for", "ROUTES", "ROUTE_STAGES"]

ROUTES = ("caption", "addaudio", "narrate", "img2vid", "video", "agent-video")

#: The names of each route's stages, in order, known without importing the stage modules:
#: metrics create their series from it at start-up. A test checks it against ``stages_for``.
ROUTE_STAGES: dict[str, tuple[str, ...]] = {
    "caption": ("caption",),
    "addaudio": ("addaudio",),
    "narrate": ("narrate",),
    "img2vid": ("img2vid",),
    "video": ("voice", "render"),
    "agent-video": ("plan", "voice", "render"),
}


def stages_for(route: str) -> list[Stage]:
    # Stage modules are imported per route, so that a route's dependencies
    # load only when a job of that route runs.
    if route == "caption":
        from .stages.caption import CaptionStage

        return [CaptionStage()]
    if route == "addaudio":
        from .stages.addaudio import AddAudioStage

        return [AddAudioStage()]
    if route == "narrate":
        from .stages.narrate import NarrateStage

        return [NarrateStage()]
    if route == "img2vid":
        from .stages.img2vid import Img2VidStage

        return [Img2VidStage()]
    if route == "video":
        from .stages.video import RenderStage, VoiceStage

        return [VoiceStage(), RenderStage()]
    if route == "agent-video":
        from .stages.plan import PlanStage
        from .stages.video import RenderStage, VoiceStage

        return [PlanStage(), VoiceStage(), RenderStage()]
    raise InputError(f"route '{route}' is not one omad knows. Routes: {', '.join(ROUTES)}.")
