"""The pieces every config section is built from: the reach marks, the environment fallback."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

DEFAULT_IGNORE = [
    ".*",
    "*.part",
    "*.crdownload",
    "*.tmp",
    "~syncthing~*",
    ".syncthing.*.tmp",
    ".~lock.*",
    "*.sync-conflict-*",
    "*~",
    "Thumbs.db",
    "desktop.ini",
]


_MOVED_TO_WEB = ("enabled", "host", "port")

#: Options that an environment variable fills when the file leaves them empty (see the module doc).
ENV_FALLBACK: dict[str, str] = {
    "executor.broker_url": "OMAD_BROKER_URL",
    "executor.result_backend": "OMAD_RESULT_BACKEND",
    "executor.signing_key": "OMAD_SIGNING_KEY",
    "llm.host": "OLLAMA_HOST",
    "assets.stability.api_key": "STABILITY_API_KEY",
    "assets.stock.pexels_key": "OMAD_PEXELS_KEY",
    "assets.stock.pixabay_key": "OMAD_PIXABAY_KEY",
}


def from_env(value: str, option: str) -> str:
    """``value`` as written in the file, else the environment variable of ``option`` (:data:`ENV_FALLBACK`)."""
    return value.strip() or os.environ.get(ENV_FALLBACK[option], "").strip()


class Reach(StrEnum):
    """Whether an option goes with a stage task to a worker (``executor.kind: celery``).

    Each top-level section is marked; an option inside it takes its section's mark unless it has its own.
    """

    #: shapes a stage's output: sent with every task and laid over the worker's own config
    TRAVELS = "travels"
    #: belongs to the machine (paths, hosts, URLs, keys, secrets, budgets): never sent; a worker uses its own
    HOST = "host"


#: ``json_schema_extra`` of an option that travels with stage tasks
TRAVELS: dict[str, Any] = {"reach": Reach.TRAVELS.value}
#: ``json_schema_extra`` of an option that never leaves its machine
HOST: dict[str, Any] = {"reach": Reach.HOST.value}


def reach_of(field: Any, inherited: Reach | None) -> Reach | None:
    """A field's own mark, else the one it inherits from its section (None: unmarked)."""
    extra = field.json_schema_extra
    mark = extra.get("reach") if isinstance(extra, dict) else None
    return Reach(mark) if isinstance(mark, str) else inherited


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
