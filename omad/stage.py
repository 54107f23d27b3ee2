"""The stage contract: what every stage module provides and receives.

A stage has a ``name``, a ``lane`` (``"cpu"`` or ``"gpu"``, or a function of
the context when it depends on options, e.g. the TTS engine) and
``run(ctx) -> StageResult``; an optional ``cleanup(ctx)`` always runs after
``run``. A stage reads its inputs from ``ctx.work`` and writes its outputs
there; it never touches the inbox, the outbox or the journal, so the same code
can later run in a remote worker. Errors leave a stage only as ``OmadError``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .config import Config
    from .lanes import Lanes

__all__ = ["Stage", "StageContext", "StageResult"]


@dataclass
class StageResult:
    """What a finished stage leaves behind.

    ``artifacts`` maps a role (``"video"``, ``"srt"``, ``"poster"``...) to a
    path relative to the work dir; later stages see the union of all earlier
    artifacts. ``publish`` maps an outbox suffix (``".mp4"``, ``".srt"``) to an
    artifact role: the outbox publishes the union over all stages, later
    stages winning. ``facts`` go into the job record (the sidecar).
    """

    artifacts: dict[str, str] = field(default_factory=dict)
    publish: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"artifacts": self.artifacts, "publish": self.publish, "facts": self.facts}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        return cls(
            artifacts=dict(data.get("artifacts") or {}),
            publish=dict(data.get("publish") or {}),
            facts=dict(data.get("facts") or {}),
        )


@dataclass
class StageContext:
    """Everything a stage may use. Built by the daemon for each stage run."""

    job_id: str
    route: str
    name: str  # the drop's stem: outputs are named after it
    work: Path  # the job's work directory (inputs/ inside it)
    inputs: dict[str, Path]  # role -> absolute path of a claimed input
    options: dict[str, Any]  # the brief's options (empty for plain drops)
    config: Config
    lanes: Lanes
    artifacts: dict[str, str] = field(default_factory=dict)  # from earlier stages
    stage: str = ""
    timeout: float = 3600.0
    progress: Callable[[float], None] = lambda fraction: None
    cancel: threading.Event = field(default_factory=threading.Event)
    warnings: list[str] = field(default_factory=list)
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger("omad.stage"))

    def path(self, role: str) -> Path:
        """Absolute path of an earlier artifact, else of an input, by role."""
        if role in self.artifacts:
            return self.work / self.artifacts[role]
        return self.inputs[role]

    def has(self, role: str) -> bool:
        return role in self.artifacts or role in self.inputs

    def label(self, role: str) -> str:
        """The name to show a user for an input (the file they dropped)."""
        p = self.inputs.get(role)
        return p.name if p is not None else role

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def scale_timeout(self, media_seconds: float | None) -> float:
        """Size this stage's timeout to the media it works on, once that length is known.

        ``jobs.timeout_base_seconds + jobs.timeout_per_media_second x seconds``,
        unless ``jobs.stage_timeouts`` names this stage explicitly.
        """
        jobs = self.config.jobs
        if media_seconds and media_seconds > 0 and self.stage not in jobs.stage_timeouts:
            self.timeout = jobs.timeout_base_seconds + jobs.timeout_per_media_second * media_seconds
        return self.timeout


@runtime_checkable
class Stage(Protocol):
    name: str

    def lane_for(self, ctx: StageContext) -> str: ...

    def run(self, ctx: StageContext) -> StageResult: ...
