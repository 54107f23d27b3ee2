"""omad: a hot-folder daemon that turns dropped files into finished media.

Drop a video and its SRT, an image, audio, a text or a brief into ``inbox/``;
omad waits for the copy to finish, runs the drop through a journaled pipeline
of stages and publishes the result with a JSON record to ``outbox/``.
"""

import os

# Pydantic looks for plugins (the "pydantic" entry points of every installed distribution) when the first model is
# built: ~13 ms of every start (~4 % of `omad once` on an empty inbox), for plugins omad never uses. An explicit
# setting of the operator's wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from .config import Config, load_config  # noqa: E402 - after the setting above
from .errors import (
    Cancelled,
    ConfigError,
    GuardrailBlocked,
    InputError,
    OmadError,
    Refused,
    StageFailed,
    ToolMissing,
    ToolTimeout,
    TransientError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Config",
    "load_config",
    "OmadError",
    "InputError",
    "GuardrailBlocked",
    "TransientError",
    "ToolTimeout",
    "ConfigError",
    "ToolMissing",
    "StageFailed",
    "Refused",
    "Cancelled",
]
