"""ffmpeg under one caller's supervision: the timeout, the cancel event, progress and the stage, given once.

A stage gets its :class:`Ffmpeg` from ``ctx.ffmpeg`` and calls it like
``run_ffmpeg`` without threading ``timeout=``/``cancel=``/``stage=`` by hand;
code outside a stage (``bench/``, the web's thumbnails) builds one with a
timeout. Each call says which part of the caller's progress it covers
(``span``), or none: ffmpeg's own progress is reported only where asked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .ffmpeg import run_ffmpeg

__all__ = ["Ffmpeg", "Span"]

#: a part of the caller's progress, (from, to) with 0 <= from <= to <= 1
Span = tuple[float, float]


@dataclass(frozen=True)
class Ffmpeg:
    """How this caller's ffmpeg runs are supervised (see the module doc)."""

    #: seconds one run may take before it is killed (a transient error)
    timeout: float
    #: set: the run is stopped (SIGTERM, then SIGKILL) and fails as transient
    cancel: threading.Event | None = None
    #: the caller's progress, 0..1 (a call maps its own onto its ``span``)
    progress: Callable[[float], None] | None = None
    #: the stage the runs belong to, for errors and traces
    stage: str | None = None

    def __call__(self, args: Sequence[str], *, duration: float | None = None, span: Span | None = None,
                 file_label: str | None = None, loglevel: str = "error") -> str:
        """Run ffmpeg with ``args`` (see :func:`~omad.media.ffmpeg.run_ffmpeg`); returns its stderr tail.

        With ``duration`` (seconds of output expected) and ``span``, ffmpeg's progress is reported as that
        part of the caller's.
        """
        return run_ffmpeg(args, timeout=self.timeout, duration=duration, progress=self.reporter(span),
                          file_label=file_label, stage=self.stage, cancel=self.cancel, loglevel=loglevel)

    def reporter(self, span: Span | None) -> Callable[[float], None] | None:
        """The caller's progress mapped onto ``span`` (None: nothing reported)."""
        if span is None or self.progress is None:
            return None
        report = self.progress
        lo, hi = span
        return lambda fraction: report(lo + (hi - lo) * fraction)

    def within(self, span: Span) -> Ffmpeg:
        """The same supervision for a helper that reports 0..1 of its own: mapped onto ``span`` of the caller's."""
        return replace(self, progress=self.reporter(span))
