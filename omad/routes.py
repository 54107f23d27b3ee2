"""Routes: the ordered stages of each route, in one place so a reader sees a route's whole path."""

from __future__ import annotations

from .errors import InputError
from .stage import Stage

__all__ = ["stages_for", "ROUTES"]

ROUTES = ("caption",)


def stages_for(route: str) -> list[Stage]:
    # Stage modules are imported here, per route, so that a route's heavy
    # dependencies load only when a job of that route runs.
    if route == "caption":
        from .stages.caption import CaptionStage

        return [CaptionStage()]
    raise InputError(f"route '{route}' is not available in this omad version. Routes: {', '.join(ROUTES)}.")
