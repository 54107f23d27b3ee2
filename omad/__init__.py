"""omad: a hot-folder daemon that turns dropped files into finished media.

Drop a video and its SRT, an image, audio, a text or a brief into ``inbox/``;
omad waits for the copy to finish, runs the drop through a journaled pipeline
of stages and publishes the result with a JSON record to ``outbox/``.
"""

from .config import Config, load_config
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
