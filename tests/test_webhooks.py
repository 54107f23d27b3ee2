"""Webhooks: a local receiver gets each job's end, signed, and the retries when it answers 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import Env, Running, make_video, wait_for, write_srt

from omad.cli import main as cli_main
from omad.webhooks import SIGNATURE_HEADER, sign


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each request with the next status in ``answers``."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = list(answers or [])
        self.got: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = owner.answers.pop(0) if owner.answers else 200
                owner.got.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                  "answered": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def _valid(secret: str, delivery: dict[str, Any]) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), delivery["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(delivery["headers"].get(SIGNATURE_HEADER, ""), expected)


def test_each_job_end_is_delivered_signed_and_500s_are_retried(make_env: Callable[..., Env],
                                                                receiver: Receiver) -> None:
    """GIVEN two hooks: one for job.done and job.failed with a secret, one for job.failed only
    WHEN a caption drop succeeds and a broken one fails, and the receiver answers 500 twice first
    THEN each hook gets the events it asked for, with a valid HMAC over the body, the job's
    summary as payload, the 500s retried with backoff, and every attempt counted."""
    receiver.answers = [500, 500]
    env = make_env(web={"enabled": True, "port": 0}, lanes={"cpu": 1}, notify={
        "backoff_seconds": 0.1, "max_attempts": 4,
        "webhooks": [{"url": receiver.url, "secret": "s3cret"},
                     {"url": receiver.url + "?failed-only", "events": ["job.failed"], "secret": "other"}]})
    from omad.webhooks import Notifier

    with Running(env.daemon(), serve=True) as run:
        notifier = Notifier(env.config.notify, run.server.metrics.registry).attach(run.d)
        try:
            make_video(env.root / "staging" / "bom.mp4", seconds=0.5, size="160x90")
            write_srt(env.root / "staging" / "bom.srt")
            for p in sorted((env.root / "staging").iterdir()):
                p.rename(env.inbox / p.name)
            wait_for(lambda: any(d["answered"] == 200 for d in receiver.got), timeout=60)
            write_srt(env.inbox / "ruim.srt", "1\nbroken\n")
            make_video(env.root / "staging2" / "ruim.mp4", seconds=0.6, size="160x90").rename(env.inbox / "ruim.mp4")
            wait_for(lambda: len([d for d in receiver.got if d["answered"] == 200]) == 3, timeout=60)
        finally:
            notifier.close()
        metrics = run.server.metrics.render().decode()
    done = [d for d in receiver.got if d["headers"]["X-Omad-Event"] == "job.done"]
    assert [d["answered"] for d in done] == [500, 500, 200]
    assert len({d["headers"]["X-Omad-Delivery"] for d in done}) == 1  # one delivery, retried
    assert all(d["path"] == "/hook" and _valid("s3cret", d) for d in done)
    payload = json.loads(done[-1]["body"])
    assert payload["event"] == "job.done" and payload["job"]["name"] == "bom"
    assert payload["job"]["route"] == "caption" and payload["job"]["status"] == "done"
    assert payload["job"]["outputs"] == ["bom.json", "bom.mp4"] and payload["job"]["cost"]["currency"] == "USD"
    failed = [d for d in receiver.got if d["headers"]["X-Omad-Event"] == "job.failed"]
    assert sorted(d["path"] for d in failed) == ["/hook", "/hook?failed-only"]
    for d in failed:
        assert _valid("other" if "failed-only" in d["path"] else "s3cret", d)
        assert not _valid("wrong", d)
        body = json.loads(d["body"])
        assert "ruim.srt" in body["job"]["error"]["message"] and "omad retry" in body["job"]["error"]["what_to_do"]
    assert 'omad_webhook_deliveries_total{event="job.done",outcome="retry"} 2.0' in metrics
    assert 'omad_webhook_deliveries_total{event="job.done",outcome="ok"} 1.0' in metrics
    assert 'omad_webhook_deliveries_total{event="job.failed",outcome="ok"} 2.0' in metrics
    logs = (env.outbox / "logs").glob("*.jsonl")
    lines = [json.loads(x) for f in logs for x in f.read_text().splitlines()]
    assert len([x for x in lines if x.get("event") == "webhook_delivery"]) == 5


def test_a_4xx_is_not_retried_and_omad_notify_test_sends_a_sample(make_env: Callable[..., Env],
                                                                    receiver: Receiver,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    env = make_env(notify={"backoff_seconds": 0.05, "webhooks": [{"url": receiver.url, "secret": "k"}]})
    cfg = ["--config", str(env.root / "omad.yaml")]
    assert cli_main(["notify", "test", *cfg]) == 0
    assert "200" in capsys.readouterr().out
    sample = receiver.got[-1]
    assert json.loads(sample["body"])["test"] is True and sample["headers"][SIGNATURE_HEADER] == sign(
        "k", sample["body"])
    receiver.answers = [410]
    assert cli_main(["notify", "test", "--event", "job.failed", *cfg]) == 1
    assert len(receiver.got) == 2 and "not retried" in capsys.readouterr().out
    receiver.close()
    assert cli_main(["notify", "test", *cfg]) == 1  # nobody listening: retried, then reported
