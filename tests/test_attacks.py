"""The attacker's side: someone who can write to Redis (or the shared folder) tries to steer omad.

A real redis-server, real `omad worker` processes and the daemon's real loop.
Every attack must be refused, logged, and leave nothing read or written
outside the job folders: a "secret" file beside the state dir stays where it
is, unread into any output, and the outbox holds only what the real stage made.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_kit import SIGNING_KEY, RedisServer
from conftest import Env, Running, wait_for
from test_cluster import Cluster, drop_caption, outputs, wait_done

from omad.cluster.task import StageTask, run_dir, task_id
from omad.cluster.wire import accept_reply, accept_task
from omad.errors import ConfigError, Refused
from omad.trust import Purpose, sign, signing_key

pytestmark = pytest.mark.slow

SECRET = "top-secret-contents-do-not-publish"


@pytest.fixture
def attack_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password="attack-pw").start()
    yield server
    server.stop()


@pytest.fixture
def attack_cluster(tmp_path: Path, attack_redis: RedisServer,
                   make_env: Callable[..., Env]) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def _make(**overrides: Any) -> Cluster:
        c = Cluster(tmp_path, attack_redis, make_env, **overrides)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.stop()


def daemon_events(env: Env, event: str) -> list[dict[str, Any]]:
    out = []
    for path in (env.outbox / "logs").glob("*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("event") == event:
                    out.append(rec)
    return out


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    return secret


def _untouched(tmp_path: Path, secret: Path, before: float, outbox: Path) -> None:
    """The secret is where it was, unchanged and unread into any output."""
    assert secret.read_text() == SECRET and secret.stat().st_mtime == before
    for p in outbox.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p


def _dispatched(c: Cluster) -> tuple[Path, dict[str, Any]]:
    """The one message the daemon sent (its dispatch file), once it is there."""
    found: list[Path] = []

    def sent() -> bool:
        found[:] = [p for p in c.env.paths.jobs.glob("*/dispatch/omad-*.json")]
        return bool(found)

    wait_for(sent, timeout=60)
    path = found[0]
    return path.parent.parent, json.loads(path.read_text())


def test_forged_and_altered_messages_and_forged_results_are_refused(attack_cluster: Callable[..., Cluster],
                                                                    tmp_path: Path) -> None:
    """GIVEN a daemon in celery mode and an attacker with the Redis password
    WHEN the attacker stores a forged SUCCESS result for the stage's predictable task id (its artifact the
    secret file, by absolute path and by '..'), queues an unsigned message that reads the secret as input,
    queues the daemon's own signed message with its input altered, and replays it under another job's task id
    THEN the daemon ignores the forged result and the worker refuses all three messages; the real stage runs
    once and publishes the real video; the secret is untouched and in no output."""
    secret = _secret(tmp_path)
    before = secret.stat().st_mtime
    c = attack_cluster()
    drop_caption(c.env.inbox)
    with Running(c.env.daemon()) as running:
        job_dir, message = _dispatched(c)
        app = running.d.executor.app
        tid = message["task_id"]
        # 1. a forged result in the broker, unsigned and signed with a guessed key
        escape = {"video": str(secret)}
        climb = {"video": "../" * 8 + str(secret).lstrip("/")}
        for artifacts, key in ((escape, None), (climb, b"guessed-key-guessed-key-guessed-key!")):
            forged = {"status": "done", "task_id": tid, "attempt": message["attempt"], "worker": "evil",
                      "result": {"artifacts": artifacts, "publish": {".mp4": "video"}}, "lane_seconds": {}}
            app.backend.store_result(tid, sign(forged, key, Purpose.REPLY) if key else forged, "SUCCESS")
            wait_for(lambda: bool(daemon_events(c.env, "forged_result")), timeout=30)
        app.backend.forget(tid)
        # 2. an unsigned message that reads the secret as the stage's input
        unsigned = {**message, "inputs": {"video": str(secret), "srt": str(secret)}}
        unsigned.pop("sig")
        bad_id = task_id(message["instance"], "0" * 16, "caption", 1)
        app.send_task("omad.stage", args=[unsigned], task_id=bad_id, queue="omad.cpu")
        # 3. the daemon's signed message, its input altered to climb out (the signature no longer matches)
        altered = {**message, "inputs": {"video": "../" * 8 + str(secret).lstrip("/")}}
        app.send_task("omad.stage", args=[altered], task_id=tid, queue="omad.cpu")
        # 4. the genuine message replayed for another job's task
        other = task_id(message["instance"], "f" * 16, "caption", 1)
        app.send_task("omad.stage", args=[message], task_id=other, queue="omad.cpu")
        w = c.worker("w1", queues="cpu")
        wait_for(lambda: len(w.events("task_refused")) >= 3, timeout=90)
        wait_done(c.env, 1, timeout=120)
    reasons = " | ".join(e["reason"] for e in w.events("task_refused"))
    assert "no signature" in reasons and "not signed with this machine's key" in reasons and "replay" in reasons
    assert outputs(c.env.outbox) == ["c.json", "c.mp4"]
    assert len(w.events("stage_started")) == 1
    assert not (c.env.paths.jobs / ("0" * 16)).exists() and not (c.env.paths.jobs / ("f" * 16)).exists()
    _untouched(tmp_path, secret, before, c.env.outbox)
    assert "attack-pw" not in "".join(p.read_text() for p in (c.env.outbox / "logs").iterdir())


def test_a_forged_result_file_in_the_job_folder_fails_the_attempt_as_a_bug(attack_cluster: Callable[..., Cluster],
                                                                            tmp_path: Path) -> None:
    """GIVEN an attacker who can write the shared folder but lacks the key
    WHEN they commit a result.json for the dispatched attempt before any worker runs it, naming the secret
    THEN the daemon refuses it (the reason logged), the job fails with the inputs kept, nothing is published
    and the secret is untouched."""
    secret = _secret(tmp_path)
    before = secret.stat().st_mtime
    c = attack_cluster(jobs={"max_attempts": 1})
    drop_caption(c.env.inbox)
    with Running(c.env.daemon()):
        job_dir, message = _dispatched(c)
        folder = run_dir(job_dir, message["stage"], message["attempt"])
        folder.mkdir(parents=True, exist_ok=True)
        forged = {"status": "done", "task_id": message["task_id"], "attempt": message["attempt"],
                  "result": {"artifacts": {"video": str(secret)}, "publish": {".mp4": "video"}}, "lane_seconds": {}}
        (folder / "result.json").write_text(json.dumps(forged))
        wait_for(lambda: (c.env.outbox / "failed" / "c" / "error.json").exists(), timeout=60)
    refused = daemon_events(c.env, "reply_refused")
    assert refused and "no signature" in refused[0]["reason"]
    error = c.env.failed_error("c")
    assert "refused" in error["message"]
    assert outputs(c.env.outbox) == []
    _untouched(tmp_path, secret, before, c.env.outbox)


# -- the checks themselves, without a broker ---------------------------------------------------------------

def _message(**over: Any) -> StageTask:
    base: dict[str, Any] = dict(task_id=task_id("abc123", "0123456789abcdef", "caption", 1), job="0123456789abcdef",
                                route="caption", name="c", stage="caption", attempt=1, lane="cpu",
                                work="/srv/omad/jobs/0123456789abcdef", inputs={"video": "inputs/c.mp4"},
                                artifacts={}, options={}, timeout=60.0, settings={}, guardrails={},
                                instance="abc123")
    base.update(over)
    return StageTask(**base)


KEY = SIGNING_KEY.encode()


@pytest.mark.parametrize("change,fragment", [
    ({"inputs": {"video": "/etc/passwd"}}, "absolute"),
    ({"inputs": {"video": "inputs/../../../etc/passwd"}}, "climbs"),
    ({"inputs": {"video": "inputs/a\x00b"}}, "NUL"),
    ({"work": "/srv/omad/jobs/fedcba9876543210"}, "not the folder of job"),
    ({"stage": "render"}, "does not have"),
    ({"attempt": 0}, "whole number"),
    ({"attempt": True}, "whole number"),
    ({"task_id": "omad-abc123-0123456789abcdef-caption-2"}, "does not match"),
    ({"job": "../../x"}, "not a job id"),
    ({"files": {"inputs/c.mp4": "../../etc"}}, "sha256"),
])
def test_signed_messages_with_bad_names_are_still_refused(change: dict[str, Any], fragment: str) -> None:
    signed = sign({**_message().to_dict(), **change}, KEY, Purpose.TASK)
    with pytest.raises(Refused, match=fragment):
        accept_task(signed, KEY, None)


def test_a_reply_cannot_stand_in_for_a_message_nor_a_message_for_a_reply() -> None:
    desc = _message()
    as_reply = sign(desc.to_dict(), KEY, Purpose.REPLY)
    with pytest.raises(Refused, match="not signed"):
        accept_task(as_reply, KEY, desc.task_id)
    assert accept_task(sign(desc.to_dict(), KEY, Purpose.TASK), KEY, desc.task_id).job == desc.job


@pytest.mark.parametrize("result,fragment", [
    ({"artifacts": {"video": "/etc/passwd"}}, "absolute"),
    ({"artifacts": {"video": "inputs/c.mp4"}}, "outside the attempt's folder"),
    ({"artifacts": {"video": "runs/caption.1/../../../../tokens.json"}}, "climbs"),
    ({"artifacts": {"video": "runs/caption.1/v.mp4"}, "publish": {"/../../x": "video"}}, "publish suffix"),
    ({"artifacts": {"video": "runs/caption.1/v.mp4"}, "publish": {".mp4": "../v"}}, "role"),
])
def test_replies_naming_files_outside_the_attempt_are_refused(result: dict[str, Any], fragment: str,
                                                              tmp_path: Path) -> None:
    desc = _message()
    reply = {"status": "done", "task_id": desc.task_id, "attempt": 1, "result": result, "lane_seconds": {}}
    with pytest.raises(Refused, match=fragment):
        accept_reply(sign(reply, KEY, Purpose.REPLY), KEY, desc, tmp_path)


def test_a_reply_for_another_attempt_or_through_a_link_is_refused(tmp_path: Path) -> None:
    desc = _message()
    good = {"status": "done", "task_id": desc.task_id, "attempt": 1,
            "result": {"artifacts": {"video": "runs/caption.1/v.mp4"}, "publish": {".mp4": "video"}}}
    assert accept_reply(sign(good, KEY, Purpose.REPLY), KEY, desc, tmp_path)["status"] == "done"
    with pytest.raises(Refused, match="not the task"):
        accept_reply(sign({**good, "attempt": 2}, KEY, Purpose.REPLY), KEY, desc, tmp_path)
    (tmp_path / "runs" / "caption.1").mkdir(parents=True)
    (tmp_path / "runs" / "caption.1" / "v.mp4").symlink_to("/etc/hostname")
    with pytest.raises(Refused, match="through a link"):
        accept_reply(sign(good, KEY, Purpose.REPLY), KEY, desc, tmp_path)


def test_the_celery_executor_and_the_worker_refuse_to_start_without_a_key(
        make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """GIVEN celery mode and no signing key anywhere THEN the daemon does not start, and says how to make one."""
    monkeypatch.delenv("OMAD_SIGNING_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    env = make_env(executor={"kind": "celery", "broker_url": "redis://127.0.0.1:9/0"})
    with pytest.raises(ConfigError, match="omad key new"):
        env.daemon()
    with pytest.raises(ConfigError, match="too short"):
        signing_key(env.config.model_copy(update={"executor": env.config.executor.model_copy(
            update={"signing_key": "short"})}))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "omad-signing-key").write_text(SIGNING_KEY + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert signing_key(env.config) == KEY
    monkeypatch.setenv("OMAD_SIGNING_KEY", "k" * 40)
    assert signing_key(env.config) == b"k" * 40


# -- secrets stay secret -----------------------------------------------------------------------------------

class _Receiver:
    """A webhook receiver on loopback that keeps what it got."""

    def __init__(self) -> None:
        import http.server
        import threading

        got: list[bytes] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                got.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.got = got
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_no_configured_secret_reaches_logs_sidecars_metrics_payloads_or_pages(
        attack_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    """GIVEN a celery deployment with every kind of secret configured (the broker password, the signing key, a
    webhook whose URL path is its secret and its HMAC secret, stock and Stability keys, a web token)
    WHEN a job runs through a worker, its webhook is delivered and every page is fetched
    THEN no secret is in the daemon's or worker's logs, the sidecar, /metrics, the task messages as sent
    (dispatch files), anything left in Redis, or any page."""
    import threading

    import httpx

    from omad.web.auth import TokenStore
    from omad.webhooks import Notifier

    receiver = _Receiver()
    secrets_ = {"attack-pw", SIGNING_KEY, "hook-path-secret-123", "hook-hmac-secret-456", "pexels-key-secret-789",
                "stability-key-secret-012"}
    c = attack_cluster(
        notify={"webhooks": [{"url": f"{receiver.url}/hooks/hook-path-secret-123", "secret": "hook-hmac-secret-456"}],
                "backoff_seconds": 0.2},
        assets={"stock": {"pexels_key": "pexels-key-secret-789"}, "stability": {"api_key": "stability-key-secret-012"},
                "privacy": "local_only"},
        web={"enabled": True, "port": 0, "require_token": True})
    token = TokenStore(c.env.state / "tokens.json").add("scan")
    secrets_.add(token)
    c.worker("w1")
    sent: dict[str, str] = {}
    stop = threading.Event()

    def keep_dispatch() -> None:  # the job folder goes once it is published: keep each message as it was sent
        while not stop.is_set():
            for p in c.env.paths.jobs.glob("*/dispatch/*.json"):
                with contextlib.suppress(OSError):
                    sent[p.name] = p.read_text()
            stop.wait(0.05)

    copier = threading.Thread(target=keep_dispatch, daemon=True)
    copier.start()
    drop_caption(c.env.inbox)
    try:
        with Running(c.env.daemon(), serve=True) as running:
            notifier = Notifier(c.env.config.notify).attach(running.d)
            wait_done(c.env, 1)
            wait_for(lambda: bool(receiver.got), timeout=30)
            job = running.d.journal.jobs()[0]
            pages = []
            with httpx.Client(base_url=running.server.url, headers={"Authorization": f"Bearer {token}"},
                              timeout=30) as web:
                for path in ("/", "/api/jobs", f"/api/jobs/{job.id}", f"/jobs/{job.id}", "/api/status", "/metrics",
                             "/analytics", "/api/analytics", "/create", "/outbox/c.json"):
                    r = web.get(path)
                    assert r.status_code == 200, path
                    pages.append(r.text)
            notifier.close()
    finally:
        stop.set()
        copier.join(5)
        receiver.close()
    assert any(name.startswith("omad-") for name in sent) and any(name == "caption.json" for name in sent)
    redis_dump = []
    client = c.redis.client()
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            redis_dump.append(repr(client.get(key)))
        elif kind == b"hash":
            redis_dump.append(repr(client.hgetall(key)))
        elif kind == b"list":
            redis_dump.append(repr(client.lrange(key, 0, -1)))
    logs = "".join(p.read_text(errors="replace") for p in (c.env.outbox / "logs").iterdir())
    assert "webhook_delivery" in logs and "127.0.0.1" in logs  # the hook is logged, as scheme and host
    places = {"daemon logs": logs, "worker log": c.workers[0].tail(10**8),
              "sidecar": (c.env.outbox / "c.json").read_text(),
              "dispatch files": "".join(sent.values()), "redis": "".join(redis_dump), "pages": "".join(pages),
              "webhook body": b"".join(receiver.got).decode()}
    for where, text in places.items():
        for secret in secrets_:
            assert secret not in text, f"{secret!r} found in the {where}"


# -- the Redis ACL the README gives ------------------------------------------------------------------------

#: The README's ACL user for omad, as redis-server arguments (keys and channels checked by the test below).
ACL = ["omad", "on", ">omad-acl-pw", "resetkeys", "~omad*", "~celery*", "~_kombu*", "~unacked*",
       "~*.reply.celery.pidbox", "resetchannels", "&/0.celery.pidbox", "&/0.celeryev/*", "&celery-task-meta-*",
       "-@all", "+@read", "+@write", "+@keyspace", "+@pubsub", "+@transaction", "+@scripting", "+@connection",
       "-@dangerous", "+info", "+time"]


class AclRedis(RedisServer):
    """redis-server with the default user off, omad's ACL user, and an admin to read the ACL log."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)

    @property
    def url(self) -> str:
        return f"redis://omad:omad-acl-pw@127.0.0.1:{self.port}/0"

    def start(self) -> AclRedis:
        import subprocess

        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--user", "default", "off", "--user", *ACL,
             "--user", "admin", "on", ">admin-pw", "~*", "&*", "+@all"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()
        return self

    def denied(self) -> list[Any]:
        import redis

        admin = redis.Redis.from_url(f"redis://admin:admin-pw@127.0.0.1:{self.port}/0", socket_timeout=5)
        return list(admin.acl_log())


def test_the_readme_acl_user_is_enough_for_a_whole_run(tmp_path: Path, make_env: Callable[..., Env]) -> None:
    """GIVEN Redis with the default user off and omad's ACL user limited to the keys and channels the README
    lists WHEN a job runs through a worker (dispatch, heartbeats, results, the worker's record, a revoke)
    THEN it completes and Redis denied nothing."""
    server = AclRedis(tmp_path / "redis").start()
    try:
        c = Cluster(tmp_path, server, make_env)
        try:
            c.worker("w1")
            drop_caption(c.env.inbox)
            with Running(c.env.daemon()) as running:
                wait_done(c.env, 1)
                running.d.executor.app.control.revoke("omad-none")  # a broadcast, as a lost lease sends
                running.d.executor.status()
            assert outputs(c.env.outbox) == ["c.json", "c.mp4"]
        finally:
            c.stop()
        assert server.denied() == []
    finally:
        server.stop()


def test_a_worker_with_another_key_refuses_and_the_job_ends_with_a_message(
        attack_cluster: Callable[..., Cluster]) -> None:
    """GIVEN a worker whose signing key differs from the daemon's WHEN a job is sent THEN the worker refuses the
    message (task_refused) and the daemon, after a lease without a signed result, fails the job with a message
    that names the signing key: no hang."""
    c = attack_cluster(jobs={"max_attempts": 1})
    other = json.loads(json.dumps(c.data))
    other["executor"]["signing_key"] = "another-key-another-key-another-key-0123"
    w = c.worker("w1", config=other)
    drop_caption(c.env.inbox)
    with Running(c.env.daemon()):
        wait_for(lambda: (c.env.outbox / "failed" / "c" / "error.json").exists(), timeout=90)
    assert "not signed with this machine's key" in w.events("task_refused")[0]["reason"]
    assert "signing key" in c.env.failed_error("c")["message"]


def test_no_configured_secret_leaks_in_a_local_run(make_env: Callable[..., Env]) -> None:
    """The same scan without a broker: logs, sidecar, /metrics, every page and the webhook body after a local
    run, with a webhook whose URL path is its secret, stock and Stability keys and a web token configured."""
    import httpx

    from omad.web.auth import TokenStore
    from omad.webhooks import Notifier

    receiver = _Receiver()
    secrets_ = {"hook-path-secret-123", "hook-hmac-secret-456", "pexels-key-secret-789", "stability-key-secret-012"}
    env = make_env(
        notify={"webhooks": [{"url": f"{receiver.url}/hooks/hook-path-secret-123", "secret": "hook-hmac-secret-456"}],
                "backoff_seconds": 0.2},
        assets={"stock": {"pexels_key": "pexels-key-secret-789"}, "stability": {"api_key": "stability-key-secret-012"},
                "privacy": "local_only"},
        web={"enabled": True, "port": 0, "require_token": True})
    token = TokenStore(env.state / "tokens.json").add("scan")
    secrets_.add(token)
    drop_caption(env.inbox)
    try:
        with Running(env.daemon(), serve=True) as running:
            notifier = Notifier(env.config.notify).attach(running.d)
            wait_for(lambda: (env.outbox / "c.json").exists(), timeout=60)
            wait_for(lambda: bool(receiver.got), timeout=30)
            job = running.d.journal.jobs()[0]
            pages = []
            with httpx.Client(base_url=running.server.url, headers={"Authorization": f"Bearer {token}"},
                              timeout=30) as web:
                for path in ("/", "/api/jobs", f"/api/jobs/{job.id}", f"/jobs/{job.id}", "/api/status", "/metrics",
                             "/analytics", "/create", "/outbox/c.json"):
                    r = web.get(path)
                    assert r.status_code == 200, path
                    pages.append(r.text)
            notifier.close()
    finally:
        receiver.close()
    logs = "".join(p.read_text(errors="replace") for p in (env.outbox / "logs").iterdir())
    assert "webhook_delivery" in logs
    places = {"logs": logs, "sidecar": (env.outbox / "c.json").read_text(), "pages": "".join(pages),
              "webhook body": b"".join(receiver.got).decode()}
    for where, text in places.items():
        for secret in secrets_:
            assert secret not in text, f"{secret!r} found in the {where}"


def test_bad_worker_records_in_redis_never_break_the_status_page(attack_redis: RedisServer) -> None:
    """GIVEN worker records in Redis that are not what a worker writes (a list, wrong types, not JSON, deep JSON)
    THEN the status page's worker table still renders, with each field of its type."""
    from omad.executors.celery import read_workers
    from omad.i18n import Language
    from omad.web.templating import Pages

    client = attack_redis.client()
    client.set("omad:worker:a", "[1, 2]")
    client.set("omad:worker:b", json.dumps({"name": ["<script>"], "queues": "omad.cpu", "concurrency": "many",
                                            "running": [{"x": 1}], "residents": [1, {"model": {"m": 1}}],
                                            "seen_at": "soon"}))
    client.set("omad:worker:c", "not json")
    client.set("omad:worker:d", "[" * 100000)
    workers = read_workers(client)
    assert len(workers) == 1 and workers[0]["queues"] == [] and workers[0]["concurrency"] == 0
    html = Pages("en").render("_workers.html", Language.EN,
                              view={"executor": {"broker": "redis://x", "queues": {"omad.cpu": 0}, "workers": workers}})
    assert "&lt;script&gt;" in html and "<script>" not in html
