"""Logging: JSON lines to ``outbox/logs/omad-YYYY-MM-DD.jsonl`` and to stderr (journald).

structlog renders each event once as JSON; a small tee logger writes the line to
both places. Log records carry job ids and routes, never the content of inputs.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

from . import tracing
from .names import clean

# structlog's package imports its console renderer module, which imports ``rich`` when it is installed, only to
# pretty-print tracebacks in that renderer: ~45 ms of CPU at every start, and omad renders JSON lines and formats
# exceptions with structlog's plain ``format_exc_info``. Hidden while structlog loads (``rich`` stays importable
# for anything that wants it later); structlog then falls back to its plain traceback formatter.
_HIDE_RICH = "rich" not in sys.modules and "structlog" not in sys.modules
if _HIDE_RICH:
    sys.modules["rich"] = None  # type: ignore[assignment]  # ``import rich`` raises ImportError meanwhile
try:
    import structlog
finally:
    if _HIDE_RICH:
        del sys.modules["rich"]

__all__ = ["configure_logging", "get_logger"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _TeeLogger:
    """Writes each rendered line to stderr and to the day's log file."""

    _lock = threading.Lock()

    def __init__(self, logs_dir: Path | None, stream: TextIO) -> None:
        self.logs_dir = logs_dir
        self.stream = stream

    def msg(self, message: str) -> None:
        with self._lock:
            try:
                self.stream.write(message + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            if self.logs_dir is not None:
                day = _dt.date.today().isoformat()
                try:
                    self.logs_dir.mkdir(parents=True, exist_ok=True)
                    with open(self.logs_dir / f"omad-{day}.jsonl", "a", encoding="utf-8") as f:
                        f.write(message + "\n")
                except OSError:
                    pass

    debug = info = warning = warn = error = critical = exception = log = msg


class _TeeFactory:
    def __init__(self, logs_dir: Path | None, stream: TextIO) -> None:
        self.logger = _TeeLogger(logs_dir, stream)

    def __call__(self, *args: Any) -> _TeeLogger:
        return self.logger


def _encodable(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """Every value made encodable: a file name with bytes that are not UTF-8 must never break a log line."""
    out: dict[str, Any] = clean(event)
    return out


def _trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The current span's trace and span ids, when tracing is on and the line is logged inside a job's trace."""
    ids = tracing.current_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


class _ToStructlog(logging.Handler):
    """Standard-library log records (ollama, httpx, omad's own stdlib loggers) as structlog JSON lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = record.levelname.lower()
            logger = structlog.get_logger(record.name)
            getattr(logger, level if level in ("debug", "info", "warning", "error", "critical") else "info")(
                record.getMessage(), logger=record.name)
        except Exception:  # a log line must never break the caller
            self.handleError(record)


_BRIDGE = _ToStructlog()


def configure_logging(logs_dir: Path | None, level: str = "info", stream: TextIO | None = None) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _trace_ids,
            _encodable,
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=_TeeFactory(logs_dir, stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if _BRIDGE not in root.handlers:
        # Replaces the last-resort plain-text stderr output of libraries with omad's JSON lines.
        root.addHandler(_BRIDGE)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for noisy in ("httpx", "httpcore"):  # one INFO line per request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str = "omad") -> Any:
    return structlog.get_logger(name)
