"""Where a daemon keeps things: the inbox it watches, the outbox it publishes to, its state folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Paths"]


@dataclass
class Paths:
    inbox: Path
    outbox: Path
    state: Path
    #: where job work folders live when workers on other machines must see them (``executor.shared_dir``);
    #: the journal stays in ``state`` whatever this is (SQLite WAL does not work over a network filesystem)
    shared: Path | None = None

    @property
    def journal(self) -> Path:
        return self.state / "journal.sqlite"

    @property
    def jobs(self) -> Path:
        """Work folders of jobs (``jobs/<id>/inputs/`` holds the claimed inputs)."""
        return (self.shared or self.state) / "jobs"

    @property
    def archive(self) -> Path:
        return self.state / "archive"
