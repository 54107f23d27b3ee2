"""What the web handlers may use: one small, typed, frozen value instead of the daemon and server objects.

Handlers read the journal, the paths and the configuration, ask the auth
side who may do what, and move the daemon only through :class:`Controls`
(wake it, cancel a job, read its health and its status view). They never see
the daemon itself, so what the web side can touch is listed here, in one place.

:func:`csrf_refused` is the one CSRF check: every form and every API call
that changes something passes the token it got (a hidden ``csrf`` field or the
``X-CSRF-Token`` header) through it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request

from .responses import client, principal

if TYPE_CHECKING:
    from ..config import Config
    from ..journal import Journal
    from ..metrics import Metrics
    from ..paths import Paths
    from .auth import Auth
    from .files import PosterCache
    from .submit import Submissions
    from .templating import Pages

__all__ = ["AppState", "Controls", "JournalReader", "csrf_refused", "CSRF_STALE"]

#: What a person is told when a form's CSRF token is missing or stale.
CSRF_STALE = "the form is stale or came from elsewhere (CSRF check failed). Reload the page and try again."


class JournalReader(Protocol):
    """What read-only views (a job's detail, analytics) need: the journal, the folders, the configuration."""

    @property
    def journal(self) -> Journal: ...

    @property
    def paths(self) -> Paths: ...

    @property
    def config(self) -> Config: ...

    @property
    def queue_reasons(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Controls:
    """The daemon's levers the web side may pull, and the live state it may read."""

    #: wake the main loop (after a submission, a retry or a cancel)
    wake: Callable[[], None]
    #: cancel a job; its message, or an OmadError saying why not
    cancel: Callable[[str], str]
    #: the main loop's heartbeat is fresh
    healthy: Callable[[], bool]
    #: seconds since the main loop last ticked
    heartbeat_age: Callable[[], float]
    #: (check, ok, message) for /readyz
    readiness: Callable[[], list[tuple[str, bool, str]]]
    #: the status page's view of the newest ``limit`` jobs (also /api/status)
    status: Callable[[int], dict[str, Any]]
    #: pause the queue (``now``: stop running stages too), by whom
    pause: Callable[[bool, str], Any]
    #: resume the queue, by whom
    resume: Callable[[str], Any]
    #: the queue's controls as plain data (/api/queue)
    queue: Callable[[], dict[str, Any]]
    #: queued job id -> why it does not start now (paused, outside its lane's window)
    queue_reasons: Callable[[], dict[str, str]]
    #: a slot of the CPU lane held for web work (a voice's preview), so it never starves jobs of more than one
    cpu_slot: Callable[[str], AbstractContextManager[Any]]


@dataclass(frozen=True)
class AppState:
    """Everything a handler needs, built once by the server."""

    journal: Journal
    paths: Paths
    config: Config
    auth: Auth
    submissions: Submissions
    posters: PosterCache
    metrics: Metrics
    pages: Pages
    controls: Controls
    log: Any

    @property
    def queue_reasons(self) -> dict[str, str]:
        return self.controls.queue_reasons()


def csrf_refused(state: AppState, request: Request, token: str | None) -> bool:
    """True (and the refusal logged and counted) when ``token`` does not match the request's session."""
    p = principal(request)
    if state.auth.csrf_ok(p, token):
        return False
    state.auth.failed("csrf", client(request), request.url.path, p.name)
    return True
