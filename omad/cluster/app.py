"""The Celery app: its settings, its queues and its one task, ``omad.stage``.

Settings (measured: docs/field-notes.md): late acks and ``reject_on_worker_lost`` so a
killed pool child's task is delivered again; prefetch 1 so a worker never
sits on a task another could run; JSON only (never pickle); a visibility
timeout above the longest stage timeout (``omad.config`` refuses a shorter
one), so Redis does not hand a running stage to a second worker; and a soft
shutdown on SIGTERM (``REMAP_SIGTERM=SIGQUIT``, set by ``omad worker``) that
hands a running task back to the queue. Tasks carry the job's priority on
Redis priority queues (``priority_steps``, see docs/benchmarks.md for why not
separate queues).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["make_app", "queue_name", "queue_keys", "redis_priority", "TASK_NAME", "redact_url", "PRIORITY_STEPS"]

TASK_NAME = "omad.stage"

#: Redis priority queues (kombu's ``priority_steps``): each queue is one Redis list per step, read in step
#: order, 0 first. Step 0 is the queue's own name, so messages sent without a priority land where they always did.
PRIORITY_STEPS = list(range(10))
_PRIORITY_SEP = "\x06\x16"  # kombu's separator between a queue's name and its step


def redis_priority(effective: float) -> int:
    """The Redis step (0 first, 9 last) for a job's effective priority: normal (0) is 5, high (10) 3, low (-10) 7;
    one step per 5 points, aging included."""
    return max(0, min(9, 5 - int(effective // 5)))


def queue_keys(config: Config, lane: str) -> list[str]:
    """Every Redis list of a lane's queue, one per priority step (for counting what waits)."""
    name = queue_name(config, lane)
    return [name if step == 0 else f"{name}{_PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


def queue_name(config: Config, lane: str) -> str:
    """The queue of a lane: ``<prefix>.cpu`` or ``<prefix>.gpu``."""
    return f"{config.executor.queue_prefix}.{lane}"


def redact_url(url: str) -> str:
    """A broker URL fit for a log or a page: the password replaced."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def make_app(config: Config) -> Any:
    """A Celery app for ``config``'s broker; ``omad.stage`` is registered on it."""
    try:
        from celery import Celery
    except ImportError as e:
        raise ConfigError("executor.kind is celery but Celery is not installed: pip install 'omad[celery]'.") from e
    ex = config.executor
    broker = ex.broker()
    if not broker:
        raise ConfigError("executor.kind is celery but no broker is set: give executor.broker_url "
                          "(redis://[user:password@]host:6379/0) or $OMAD_BROKER_URL.")
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"executor.broker_url must be a Redis URL (redis://, rediss:// or unix://), "
                          f"not {redact_url(broker)}.")
    visibility = ex.visibility_timeout(config.jobs, config.intake)
    app = Celery("omad", broker=broker, backend=ex.backend(), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        task_default_queue=queue_name(config, "cpu"),
        broker_transport_options={"visibility_timeout": visibility, "priority_steps": PRIORITY_STEPS,
                                  "sep": _PRIORITY_SEP, "queue_order_strategy": "priority"},
        result_backend_transport_options={"visibility_timeout": visibility},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        result_expires=7 * 24 * 3600,
        worker_soft_shutdown_timeout=config.jobs.shutdown_grace_seconds,
        worker_enable_soft_shutdown_on_idle=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )

    def stage(self: Any, message: dict[str, Any]) -> dict[str, Any]:
        from .worker import execute

        return execute(self, message)

    app.task(name=TASK_NAME, bind=True, max_retries=None, acks_late=True, reject_on_worker_lost=True)(stage)
    return app
