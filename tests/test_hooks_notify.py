"""Hooks and Apprise notifications when a job ends: real programs, a real `apprise` posting to a local server."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, Running, make_image, wait_for
from prometheus_client import CollectorRegistry

from omad.cli import main as cli_main
from omad.config import NotifyConfig
from omad.hooks import Hooks
from omad.notify import AppriseNotifier, mask_url

# -- a receiver on loopback ---------------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST and answers ``fail_first`` of them with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.seen = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen += 1
                if outer.seen <= outer.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                ctype = self.headers.get("Content-Type", "")
                outer.posts.append({"path": self.path, "ctype": ctype,
                                    "body": json.loads(body or b"{}") if "json" in ctype else body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def _make(fail_first: int = 0) -> Receiver:
        r = Receiver(fail_first).__enter__()
        made.append(r)
        return r

    yield _make
    for r in made:
        r.__exit__()


def _log(env: Env, event: str) -> list[dict[str, Any]]:
    out = []
    for f in sorted((env.outbox / "logs").iterdir()):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                out.append(json.loads(line))
    return out


# -- hooks --------------------------------------------------------------------------------------------

HOOK = """
import json, os, sys
summary = json.load(sys.stdin)
env = {k: v for k, v in os.environ.items() if k.startswith("OMAD_")}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"summary": summary, "env": env}) + "\\n")
print("hook saw", env["OMAD_JOB_ID"])
"""


def test_hooks_get_the_summary_and_env_and_their_failures_are_logged_not_the_jobs(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN hooks.after_publish (a program that records what it got) and hooks.after_fail (one that exits 3)
    WHEN a job is published and another drop fails
    THEN the first hook got the job's summary on stdin and OMAD_* variables; the second's failure is logged
    and the failed job's own record is untouched."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    seen = tmp_path / "seen.jsonl"
    env = make_env(hooks={"after_publish": [sys.executable, str(script), str(seen)],
                          "after_fail": f"{sys.executable} -c 'import sys; print(\"nope\"); sys.exit(3)'"})
    d = env.daemon()
    hooks = Hooks(env.config.hooks).attach(d)
    try:
        with Running(d):
            (env.inbox / "ola.txt").write_text("Olá, mundo.")
            (env.inbox / "bad.xyz").write_text("?")
            wait_for(lambda: seen.exists() and bool(_log(env, "hook_failed")), 120)
    finally:
        hooks.close()
    record = json.loads(seen.read_text().splitlines()[0])
    assert record["summary"]["event"] == "job.done" and record["summary"]["job"]["name"] == "ola"
    assert record["env"]["OMAD_EVENT"] == "job.done" and record["env"]["OMAD_ROUTE"] == "narrate"
    assert record["env"]["OMAD_OUTPUTS"].splitlines() and all(
        Path(p).exists() for p in record["env"]["OMAD_OUTPUTS"].splitlines())
    done = _log(env, "hook_done")[0]
    assert done["stdout"].strip() == f"hook saw {record['env']['OMAD_JOB_ID']}"
    failed = _log(env, "hook_failed")[0]
    assert failed["returncode"] == 3 and failed["stdout"].strip() == "nope" and failed["hook_event"] == "job.failed"
    assert "not affected" in failed["message"]
    assert (env.outbox / "failed" / "bad.xyz" / "error.json").exists() or any((env.outbox / "failed").iterdir())


def test_a_hook_past_its_timeout_is_stopped_with_its_children(make_env: Callable[..., Env], tmp_path: Path) -> None:
    import psutil

    pidfile = tmp_path / "child.pid"
    env = make_env(hooks={"timeout_seconds": 0.5,
                          "after_publish": ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"]})
    hooks = Hooks(env.config.hooks)
    from omad.journal import Job, JobStatus

    job = Job(id="j1", content_id="j1", route="narrate", name="n", status=JobStatus.DONE, stage=None, progress=1.0,
              attempts=1, next_attempt_at=None, dropped_at=0, created_at=0, updated_at=0, started_at=0, finished_at=1,
              inputs=[], options={}, error=None, result={"outputs": {}})
    assert hooks.run(env.config.hooks.after_publish, "job.done", job) is None
    child = int(pidfile.read_text())
    wait_for(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, 10)


# -- Apprise ------------------------------------------------------------------------------------------


def test_apprise_sends_the_template_message_with_the_poster_and_retries(
        make_env: Callable[..., Env], receiver: Callable[..., Receiver]) -> None:
    """GIVEN notify.apprise with a json:// target on loopback that fails its first answer
    WHEN an image becomes a video
    THEN the pt-BR message arrives on the second attempt with the poster attached; both attempts are
    logged with the URL masked and counted."""
    r = receiver(fail_first=1)
    url = f"json://hookuser:hook-secret-pw@127.0.0.1:{r.port}/omad"
    env = make_env(notify={"apprise": [{"url": url, "events": ["job.done"]}], "backoff_seconds": 0.1})
    d = env.daemon()
    registry = CollectorRegistry()
    notifier = AppriseNotifier(env.config.notify, registry).attach(d)
    try:
        with Running(d):
            make_image(env.root / "aside" / "foto.png")
            (env.root / "aside" / "foto.png").rename(env.inbox / "foto.png")
            wait_for(lambda: bool(r.posts), 180)
    finally:
        notifier.close()
    body = r.posts[0]["body"]
    assert body["title"] == "omad: foto está pronto"
    assert "foi concluído" in body["message"] and "foto.mp4" in body["message"]
    attachments = body.get("attachments") or []
    assert len(attachments) == 1 and base64.b64decode(attachments[0]["base64"])[:3] in (b"\xff\xd8\xff", b"\x89PN")
    logged = _log(env, "notify_delivery")
    assert [x["outcome"] for x in logged] == ["retry", "ok"]
    assert all(x["target"] == "json://127.0.0.1" for x in logged)
    text = "".join(f.read_text() for f in (env.outbox / "logs").iterdir())
    assert "hook-secret-pw" not in text and "hookuser" not in text
    assert registry.get_sample_value("omad_apprise_deliveries_total", {"event": "job.done", "outcome": "retry"}) == 1
    assert registry.get_sample_value("omad_apprise_deliveries_total", {"event": "job.done", "outcome": "ok"}) == 1


def test_templates_can_be_overridden_and_english_is_shipped(tmp_path: Path, receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    own = tmp_path / "templates"
    own.mkdir()
    (own / "job.failed.en.txt").write_text("FAILED {{ job.name }}\n{{ job.error.message }} ({{ event }})\n")
    cfg = NotifyConfig.model_validate({"apprise": [{"url": f"json://127.0.0.1:{r.port}/x"}], "language": "en",
                                       "templates_dir": str(own)})
    notifier = AppriseNotifier(cfg)
    [(_, failed)] = list(notifier.send_test("job.failed"))
    [(_, done)] = list(notifier.send_test("job.done"))
    assert failed.ok and done.ok
    assert r.posts[0]["body"]["title"] == "FAILED sample"
    assert r.posts[0]["body"]["message"] == "sample.srt: a sample error (job.failed)"
    assert r.posts[1]["body"]["title"] == "omad: sample is ready"


def test_omad_notify_test_reaches_apprise_targets(make_env: Callable[..., Env], receiver: Callable[..., Receiver],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    r = receiver()
    env = make_env(notify={"apprise": [{"url": f"form://127.0.0.1:{r.port}/t"}]})
    assert cli_main(["notify", "test", "--config", str(env.root / "omad.yaml")]) == 0
    assert "ok  form://127.0.0.1  delivered" in capsys.readouterr().out
    assert r.posts and b"sample" in r.posts[0]["body"]


def test_the_status_page_shows_apprise_targets_masked(make_env: Callable[..., Env]) -> None:
    import httpx

    env = make_env(notify={"apprise": [{"url": "tgram://123456789:ABCdefGHIjklMNOpqr/987654",
                                        "events": ["job.failed"]}]})
    d = env.daemon()
    with Running(d, serve=True) as run:
        page = httpx.get(run.server.url + "/", headers={"Accept": "text/html"}, timeout=10).text
        api = httpx.get(run.server.url + "/api/queue", timeout=10).json()
    assert "tgram://1...r (job.failed)" in page and "ABCdef" not in page and "987654" not in page
    assert api["notify"] == [{"target": "tgram://1...r", "events": ["job.failed"]}]


def test_urls_are_masked_to_scheme_and_host() -> None:
    assert mask_url("tgram://123456789:ABCdefGHIjklMNOpqr/987654") == "tgram://1...r"
    assert mask_url("mailto://user:pass@example.com") == "mailto://example.com"
    assert mask_url("json://u:p@127.0.0.1:8080/a") == "json://127.0.0.1"
    assert mask_url("nonsense") == "(not an Apprise URL)"
