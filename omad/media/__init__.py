"""Media rendering that the stages share: Ken Burns clips from stills, and title cards.

Nothing here knows about jobs, the inbox or the outbox: callers pass paths and
the config's values, and get back the facts for the job record.
"""

from .kenburns import MOVING_MOTIONS, OVERSAMPLE, Motion, canvas_size, pick_motion, render_still
from .titlecard import draw_title_card, render_title_card

__all__ = [
    "MOVING_MOTIONS",
    "OVERSAMPLE",
    "Motion",
    "canvas_size",
    "draw_title_card",
    "pick_motion",
    "render_still",
    "render_title_card",
]
