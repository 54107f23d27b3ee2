"""Media rendering that is not a stage of its own: Ken Burns clips and title cards."""

from .kenburns import MOVING_MOTIONS, Motion, canvas_size, pick_motion, render_still

__all__ = ["MOVING_MOTIONS", "Motion", "canvas_size", "pick_motion", "render_still"]
