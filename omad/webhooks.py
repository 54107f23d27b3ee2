"""Webhooks: telling other systems when a job ends (``notify.webhooks``).

Each hook names the events it wants (``job.done``, ``job.failed``). A delivery
is one POST of the job's summary as JSON, signed with HMAC-SHA256 over the exact
body bytes with the hook's secret (``X-Omad-Signature: sha256=<hex>``), and
retried with doubling backoff (``notify.backoff_seconds``) up to
``notify.max_attempts`` on a network error or a 5xx/429 answer. A 4xx is the
receiver saying no: not retried. Every attempt is logged and counted in
``omad_webhook_deliveries_total``.

Deliveries run on one background thread, so a slow receiver never holds up a
job; the daemon's event bus only puts events on its queue. Nothing here reads
or writes job state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import CollectorRegistry, Counter

from . import __version__
from .config import NotifyConfig, WebhookConfig
from .journal import Job, JobStatus
from .log import get_logger
from .records import read_record

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["Notifier", "Outcome", "sign", "public_url", "SIGNATURE_HEADER", "EVENTS"]

SIGNATURE_HEADER = "X-Omad-Signature"
EVENTS = {JobStatus.DONE: "job.done", JobStatus.FAILED: "job.failed"}
_SIDECAR_HEAD = ("job_id", "route", "name", "status", "inputs", "dropped_at", "started_at", "finished_at",
                 "attempts", "warnings", "cost")


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def public_url(url: str) -> str:
    """A hook's URL fit for a log, a page or a terminal: scheme and host only (Slack-style hooks keep their secret
    in the path, others in the query or the user part)."""
    parts = httpx.URL(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.host}{port}/…"


@dataclass
class Outcome:
    ok: bool
    status: str  # the HTTP status, or "err" when none came back
    message: str
    retry: bool


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def job_payload(event: str, job: Job) -> dict[str, Any]:
    """What a hook receives: the event, and the head of the job's sidecar (or of its error.json)."""
    result = job.result or {}
    raw = result.get("outputs")
    outputs: dict[str, Any] = raw if isinstance(raw, dict) else {}
    head: dict[str, Any] = {"job_id": job.id, "route": job.route, "name": job.name, "status": job.status.value,
                            "dropped_at": _iso(job.dropped_at), "started_at": _iso(job.started_at),
                            "finished_at": _iso(job.finished_at), "attempts": job.attempts}
    sidecar = next((read_record(Path(str(p))) for p in outputs.values() if str(p).endswith(".json")), None)
    if sidecar is not None:
        head.update({k: sidecar[k] for k in _SIDECAR_HEAD if k in sidecar})
        head["status"] = job.status.value
    if job.status == JobStatus.FAILED:
        record = read_record(Path(str(result.get("failed_dir", ""))) / "error.json") or {}
        head["error"] = {"message": (job.error or {}).get("message"), "kind": (job.error or {}).get("kind"),
                         "what_to_do": record.get("what_to_do")}
    head["outputs"] = sorted(Path(str(p)).name for p in outputs.values())
    return {"event": event, "omad": __version__, "sent_at": _iso(time.time()), "job": head}


class Notifier:
    """Delivers job events to the configured hooks from a background thread."""

    def __init__(self, config: NotifyConfig, registry: CollectorRegistry | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.log = get_logger("omad.webhooks")
        self.deliveries = Counter("omad_webhook_deliveries_total",
                                  "Webhook delivery attempts by event and outcome (ok, retry, failed)",
                                  ["event", "outcome"], registry=registry or CollectorRegistry())
        for event in EVENTS.values():  # at zero from the start (see omad.metrics)
            for outcome in ("ok", "retry", "failed"):
                self.deliveries.labels(event, outcome)
        self._client = httpx.Client(timeout=config.timeout_seconds, transport=transport, follow_redirects=False,
                                    headers={"User-Agent": f"omad/{__version__}"})
        self._queue: queue.Queue[tuple[WebhookConfig, str, bytes] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, daemon: Daemon) -> Notifier:
        """Listen to ``daemon``'s events and start delivering."""
        daemon.events.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name="omad-webhooks", daemon=True)
        self._thread.start()
        return self

    def on_event(self, event: str, data: Mapping[str, Any]) -> None:
        job = data.get("job") if event == "job_finished" else None
        if not isinstance(job, Job) or job.status not in EVENTS:
            return
        name = EVENTS[job.status]
        hooks = [h for h in self.config.webhooks if name in h.events]
        if not hooks:
            return
        body = json.dumps(job_payload(name, job), ensure_ascii=False, default=str).encode("utf-8", "replace")
        for hook in hooks:
            self._queue.put((hook, name, body))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            hook, event, body = item
            self._deliver(hook, event, body)

    def _deliver(self, hook: WebhookConfig, event: str, body: bytes) -> Outcome:
        delivery = uuid.uuid4().hex
        outcome = Outcome(False, "err", "not sent", False)
        for attempt in range(1, self.config.max_attempts + 1):
            outcome = self.post(hook, event, body, delivery)
            last = attempt == self.config.max_attempts or not outcome.retry
            label = "ok" if outcome.ok else ("failed" if last else "retry")
            self.deliveries.labels(event, label).inc()
            log = self.log.info if outcome.ok else self.log.warning
            log("webhook_delivery", url=public_url(hook.url), hook_event=event, delivery=delivery, attempt=attempt,
                status=outcome.status, outcome=label, message=outcome.message)
            if last:
                break
            if self._stop.wait(self.config.backoff_seconds * 2 ** (attempt - 1)):
                break
        return outcome

    def post(self, hook: WebhookConfig, event: str, body: bytes, delivery: str) -> Outcome:
        """One POST of ``body`` to ``hook``; never raises."""
        headers = {"Content-Type": "application/json", "X-Omad-Event": event, "X-Omad-Delivery": delivery}
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(hook.secret, body)
        try:
            resp = self._client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as e:  # its text may quote the URL, whose path or query can be the secret
            return Outcome(False, "err", f"{type(e).__name__}: {str(e).replace(hook.url, public_url(hook.url))}",
                           True)
        if resp.is_success:
            return Outcome(True, str(resp.status_code), "delivered", False)
        retry = resp.status_code >= 500 or resp.status_code in (408, 429)
        return Outcome(False, str(resp.status_code), f"the receiver answered {resp.status_code}"
                       + ("; will retry" if retry else "; not retried (a 4xx means the receiver refused it)"),
                       retry)

    def send_test(self, event: str = "job.done") -> Iterator[tuple[WebhookConfig, Outcome]]:
        """Deliver a sample event to each hook that wants it, now (``omad notify test``)."""
        now = time.time()
        sample = Job(id="0123456789abcdef", content_id="0123456789abcdef", route="caption", name="sample",
                     status=JobStatus.DONE if event == "job.done" else JobStatus.FAILED, stage=None, progress=1.0,
                     attempts=1, next_attempt_at=None, dropped_at=now - 5, created_at=now - 5, updated_at=now,
                     started_at=now - 4, finished_at=now, inputs=[], options={},
                     error={"message": "sample.srt: a sample error", "kind": "input"} if event == "job.failed"
                     else None, result={"outputs": {}})
        payload = job_payload(event, sample)
        payload["test"] = True
        body = json.dumps(payload).encode()
        for hook in self.config.webhooks:
            if event in hook.events:
                yield hook, self._deliver(hook, event, body)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
            self._stop.set()
            self._thread.join(5)
        self._client.close()
