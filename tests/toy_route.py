"""A toy route, registered when imported: what a route module named in ``intake.route_modules`` looks like.

The other two of a route's three places: its table entry (:func:`omad.routes.register`) and its brief model
(:func:`omad.brief.register`). Everything else (intake's pairing, the route folder, the accepted-files text,
the Create form's kinds, the API's validation and its OpenAPI schema, the celery worker) follows from them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from toy_stage import ShoutStage

from omad import brief, routes
from omad.brief import BriefModel


class ShoutBrief(BriefModel):
    files = {"text_file": ("text", "text"), "subtitles": ("srt", "srt")}
    uploads = ("text_file", "subtitles")
    label = "shout: a text in capitals, its captions counted"

    kind: Literal["shout"]
    text_file: str = Field(..., description="the text")
    subtitles: str = Field(..., description="its captions")
    exclaim: int = Field(1, ge=0, le=5, description="exclamation marks after the text")


def register() -> None:
    brief.register(ShoutBrief)
    routes.register(routes.Route("shout", ("shout",), "text + subtitles -> the text in capitals",
                                 drops=(routes.drop("text", "srt", purpose="to shout"),)), {"shout": ShoutStage})


def unregister() -> None:
    routes.unregister("shout")
    brief.unregister("shout")


register()
