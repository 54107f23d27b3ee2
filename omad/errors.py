"""The exceptions omad raises, and the only ones a stage may let escape.

Every error carries structure (the file it concerns, the stage, a return
code, the tail of a tool's stderr) and a message a person can act on. Other
libraries' errors (ffmpeg exit codes, ``ollama.ResponseError``, connection
errors, torch OOM) are translated into these at the boundary, ``from`` the
cause, so the daemon decides what to do by type, never by searching text.

    OmadError
    ├── InputError          the drop is bad: quarantine to outbox/failed/, no retry
    │   └── GuardrailBlocked a guardrail stopped the job (finding named)
    ├── TransientError      may succeed later: retry with backoff up to jobs.max_attempts
    │   └── ToolTimeout     a tool ran past its stage timeout
    ├── ConfigError         omad's configuration is wrong: fix config, then `omad retry`
    ├── ToolMissing         a program, package or model omad needs is not installed
    ├── StageFailed         a tool failed in a way that is neither the input's fault
    │   │                   nor known to be temporary: fail the job, keep the inputs
    │   └── Refused         a task message or reply failed its signature or name checks
    │                       (a bug, a version mismatch or an attack): fail the attempt
    └── Cancelled           a person cancelled the job (web or API): fail it, keep the
                            inputs in outbox/failed/ so a retry can run it again
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .names import clean, display

__all__ = [
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


class OmadError(Exception):
    """Root of omad's errors.

    ``message`` says what happened and what to do; ``file`` names the input it
    concerns (shown as a prefix); ``details`` holds structured facts for the
    job record (return code, stderr tail, expected/found values...).
    """

    kind: str = "error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        stage: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message: str = clean(message)
        self.file = display(file) if file is not None else None
        self.stage = stage
        self.details: dict[str, Any] = clean(dict(details or {}))
        super().__init__(self.__str__())

    def __str__(self) -> str:
        prefix = f"{self.file}: " if self.file else ""
        return f"{prefix}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "type": type(self).__name__,
            "message": str(self),
            "file": self.file,
            "stage": self.stage,
            "retryable": self.retryable,
            "details": self.details,
        }


class InputError(OmadError):
    """The drop itself is wrong. Retrying cannot help; the user must fix it."""

    kind = "input"


class GuardrailBlocked(InputError):
    """A guardrail rule blocked the job; ``details['finding']`` names it."""

    kind = "guardrail"


class TransientError(OmadError):
    """Something outside the drop failed and may work later (disk full, a killed tool)."""

    kind = "transient"
    retryable = True


class ToolTimeout(TransientError):
    """A tool ran longer than its stage's timeout."""

    kind = "timeout"


class ConfigError(OmadError):
    """omad's configuration is invalid or names something that does not exist."""

    kind = "config"


class ToolMissing(OmadError):
    """A program, Python package or model file omad needs is not installed."""

    kind = "tool_missing"


class StageFailed(OmadError):
    """A tool failed for a reason that is neither bad input nor known to be temporary."""

    kind = "stage"


class Refused(StageFailed):
    """A task message or a stage's reply that is not signed with omad's key, or names something it may not."""

    kind = "refused"


class Cancelled(OmadError):
    """A person cancelled the job; its inputs are kept for a retry."""

    kind = "cancelled"
