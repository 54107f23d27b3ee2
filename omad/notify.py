"""Notifications through Apprise: a short message to chat and e-mail when a job ends (``notify.apprise``).

Each target is an Apprise URL (``tgram://``, ``discord://``, ``ntfy://``,
``matrix://``, ``slack://``, ``mailto://``... every service the ``apprise``
library speaks) with the events it wants. The message comes from a Jinja2
template, ``<event>.<language>.txt`` (first line the title, the rest the body),
from ``notify.templates_dir`` when it has one, else the shipped pt-BR and
English ones (``omad/templates/notify``); a template sees ``job`` (the same
summary a webhook gets), ``event`` and ``seconds``. The job's poster is
attached when the target asks for it and the service takes attachments.

Delivery is retried with doubling backoff (``notify.backoff_seconds``, up to
``notify.max_attempts``), like the webhooks; every attempt is logged and
counted in ``omad_apprise_deliveries_total``. An Apprise URL holds the
service's secrets, so it is never logged or shown whole: :func:`mask_url`
keeps the scheme and the host, after Apprise's own privacy masking (a
Telegram bot token in the host position shows as ``1...r``).

Deliveries run on one background thread; nothing here reads or writes job state.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files as package_files
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from prometheus_client import CollectorRegistry, Counter

from .config import AppriseConfig, NotifyConfig
from .errors import ConfigError
from .journal import Job, JobStatus
from .log import get_logger
from .webhooks import EVENTS, job_payload

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["AppriseNotifier", "Delivery", "mask_url", "render_message"]


def _quiet_imghdr() -> None:
    """Apprise imports the standard library's imghdr (deprecated since 3.11, gone in 3.13, where Apprise has its
    own) when it loads its plugins; imported once here, quietly, it never warns mid-delivery."""
    with warnings.catch_warnings(), contextlib.suppress(ImportError):
        warnings.simplefilter("ignore", DeprecationWarning)
        import imghdr  # noqa: F401


def mask_url(url: str) -> str:
    """``scheme://host`` of an Apprise URL, its secrets masked (never the path, the user or the password)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if not scheme:
        return "(not an Apprise URL)"
    try:
        import apprise

        _quiet_imghdr()
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        shown = str(plugin.url(privacy=True)) if plugin else ""  # type: ignore[no-untyped-call]
        host = urlsplit(shown).hostname if shown else None
    except Exception:  # an odd URL: nothing of it but the scheme is shown
        host = None
    return f"{scheme}://{host}" if host else f"{scheme}://(unrecognised)"


class _PackageLoader(BaseLoader):
    """The shipped templates, read through importlib.resources (works from a wheel or a checkout)."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        res = package_files("omad").joinpath("templates/notify").joinpath(template)
        if not res.is_file():
            raise TemplateNotFound(template)
        return res.read_text(encoding="utf-8"), None, lambda: True


def _environment(config: NotifyConfig) -> SandboxedEnvironment:
    loaders: list[BaseLoader] = []
    if config.templates_dir:
        folder = Path(config.templates_dir).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"notify.templates_dir {folder} is not a folder. Create it with your "
                              "job.done.<lang>.txt / job.failed.<lang>.txt, or leave the option empty.")
        loaders.append(FileSystemLoader(str(folder)))
    loaders.append(_PackageLoader())
    return SandboxedEnvironment(loader=ChoiceLoader(loaders), autoescape=False, keep_trailing_newline=False)


def render_message(env: SandboxedEnvironment, language: str, event: str, payload: dict[str, Any]
                   ) -> tuple[str, str]:
    """(title, body) of the message for ``event`` in ``language`` (English when that language has none)."""
    job = payload["job"]
    seconds = None
    try:
        from datetime import datetime

        started, finished = job.get("started_at"), job.get("finished_at")
        if started and finished:
            seconds = round((datetime.fromisoformat(finished.replace("Z", "+00:00"))
                             - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds(), 1)
    except (TypeError, ValueError):
        seconds = None
    try:
        template = env.get_template(f"{event}.{language}.txt")
    except TemplateNotFound:
        template = env.get_template(f"{event}.en.txt")
    text = template.render(job=job, event=event, seconds=seconds).strip()
    title, _, body = text.partition("\n")
    return title.strip(), body.strip() or title.strip()


@dataclass
class Delivery:
    ok: bool
    message: str


class AppriseNotifier:
    """Sends job events to the configured Apprise targets from a background thread."""

    def __init__(self, config: NotifyConfig, registry: CollectorRegistry | None = None,
                 posters: Any = None) -> None:
        try:
            import apprise  # noqa: F401
        except ImportError as e:
            raise ConfigError("notify.apprise is set but the apprise package is missing: pip install apprise.") from e
        _quiet_imghdr()
        self.config = config
        self.log = get_logger("omad.notify")
        self.env = _environment(config)
        self.posters = posters  # an omad.web.files.PosterCache, when the daemon has one
        self.deliveries = Counter("omad_apprise_deliveries_total",
                                  "Apprise notification attempts by event and outcome (ok, retry, failed)",
                                  ["event", "outcome"], registry=registry or CollectorRegistry())
        for event in EVENTS.values():
            for outcome in ("ok", "retry", "failed"):
                self.deliveries.labels(event, outcome)
        self._queue: queue.Queue[tuple[AppriseConfig, str, dict[str, Any], Path | None] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Apprise logs through the standard library; its lines may hold a URL's secrets. Ours say what happened.
        logging.getLogger("apprise").setLevel(logging.CRITICAL)

    def attach(self, daemon: Daemon) -> AppriseNotifier:
        if self.posters is None:
            from .web.files import PosterCache

            self.posters = PosterCache(daemon.paths.state / "posters", daemon.paths.outbox)
        daemon.events.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name="omad-apprise", daemon=True)
        self._thread.start()
        return self

    def on_event(self, event: str, data: Mapping[str, Any]) -> None:
        job = data.get("job") if event == "job_finished" else None
        if not isinstance(job, Job) or job.status not in EVENTS:
            return
        name = EVENTS[job.status]
        targets = [t for t in self.config.apprise if name in t.events]
        if not targets:
            return
        payload = job_payload(name, job)
        poster = self._poster(job) if any(t.attach_poster for t in targets) else None
        for target in targets:
            self._queue.put((target, name, payload, poster if target.attach_poster else None))

    def _poster(self, job: Job) -> Path | None:
        if self.posters is None or job.status != JobStatus.DONE:
            return None
        try:
            found = self.posters.poster_for(job)
        except Exception:  # no picture for a notification is not worth a failure
            return None
        return Path(found) if found else None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(*item)

    def _deliver(self, target: AppriseConfig, event: str, payload: dict[str, Any], poster: Path | None) -> Delivery:
        where = mask_url(target.url)
        try:
            title, body = render_message(self.env, self.config.language, event, payload)
        except Exception as e:  # a broken override template: say which, send nothing
            self.log.error("notify_template_failed", hook_event=event, target=where, error=f"{type(e).__name__}: {e}",
                           message="fix the template in notify.templates_dir (Jinja2; first line the title)")
            self.deliveries.labels(event, "failed").inc()
            return Delivery(False, f"template: {e}")
        outcome = Delivery(False, "not sent")
        for attempt in range(1, self.config.max_attempts + 1):
            outcome = self.send(target, title, body, poster)
            last = outcome.ok or attempt == self.config.max_attempts
            label = "ok" if outcome.ok else ("failed" if last else "retry")
            self.deliveries.labels(event, label).inc()
            log = self.log.info if outcome.ok else self.log.warning
            log("notify_delivery", target=where, hook_event=event, attempt=attempt, outcome=label,
                attached=poster is not None, message=outcome.message)
            if last or self._stop.wait(self.config.backoff_seconds * 2 ** (attempt - 1)):
                break
        return outcome

    def send(self, target: AppriseConfig, title: str, body: str, poster: Path | None) -> Delivery:
        """One attempt through Apprise; never raises."""
        import apprise

        ap = apprise.Apprise()
        if not ap.add(target.url):
            return Delivery(False, "Apprise does not understand this URL; see the Apprise wiki for its form")
        attach = None
        if poster is not None and poster.is_file():
            attach = apprise.AppriseAttachment()
            attach.add(str(poster))
        try:
            ok = bool(ap.notify(title=title, body=body, attach=attach))
        except Exception as e:  # a plugin bug must not kill the delivery thread
            return Delivery(False, f"{type(e).__name__} in Apprise")
        return Delivery(ok, "delivered" if ok else "the service refused it or could not be reached; will retry")

    def send_test(self, event: str = "job.done") -> Iterator[tuple[AppriseConfig, Delivery]]:
        """A sample event to each target that wants it, now (``omad notify test``)."""
        now = time.time()
        sample = Job(id="0123456789abcdef", content_id="0123456789abcdef", route="caption", name="sample",
                     status=JobStatus.DONE if event == "job.done" else JobStatus.FAILED, stage=None, progress=1.0,
                     attempts=1, next_attempt_at=None, dropped_at=now - 5, created_at=now - 5, updated_at=now,
                     started_at=now - 4, finished_at=now, inputs=[], options={},
                     error={"message": "sample.srt: a sample error", "kind": "input"} if event == "job.failed"
                     else None, result={"outputs": {}})
        payload = job_payload(event, sample)
        for target in self.config.apprise:
            if event in target.events:
                yield target, self._deliver(target, event, payload, None)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
            self._stop.set()
            self._thread.join(5)
