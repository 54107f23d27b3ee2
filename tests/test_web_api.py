"""The web side through its HTTP API, with httpx: config, tokens, the job cycle, limits.

Real daemon loop, real uvicorn on 127.0.0.1, real ffmpeg behind the jobs.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import SRT_PT, Env, Running, make_video, wait_for

import omad.runner as runner_mod
from omad.cli import main as cli_main
from omad.config import Config, is_loopback, load_config
from omad.errors import TransientError
from omad.routes import stages_for
from omad.stage import Stage, StageContext, StageResult
from omad.web.auth import TokenStore

# -- config ------------------------------------------------------------------------------------------


def test_old_metrics_host_and_port_still_work_with_a_deprecation_warning(tmp_path: Path) -> None:
    """GIVEN a config written before the web: section existed
    THEN it loads, warns once per moved option, and the values land in web:."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"metrics": {"host": "0.0.0.0", "port": 9999, "currency": "BRL"}}))
    with pytest.warns(FutureWarning) as warned:
        cfg = load_config(path)
    assert sorted(str(w.message) for w in warned) == [
        "the option metrics.host is deprecated: write it as web.host",
        "the option metrics.port is deprecated: write it as web.port",
    ]
    assert (cfg.web.host, cfg.web.port, cfg.metrics.currency) == ("0.0.0.0", 9999, "BRL")
    assert cfg.web.token_required  # beyond loopback, whatever require_token says
    with pytest.warns(FutureWarning, match="wins"):
        both = Config.model_validate({"metrics": {"port": 1}, "web": {"port": 2}})
    assert both.web.port == 2


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "omad.lan", ""))
    assert not Config().web.token_required and Config.model_validate({"web": {"require_token": True}}
                                                                       ).web.token_required


# -- tokens ------------------------------------------------------------------------------------------


def test_token_cli_prints_once_and_stores_only_the_hash(make_env: Callable[..., Env],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    env = make_env()
    cfg = ["--config", str(env.root / "omad.yaml")]
    assert cli_main(["token", "add", "ci", *cfg]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("omad_") and len(token) > 40
    stored = (env.state / "tokens.json").read_text()
    assert token not in stored and json.loads(stored)["tokens"][0]["name"] == "ci"
    assert (env.state / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert cli_main(["token", "add", "ci", *cfg]) == 2  # the name is taken
    assert "exists" in capsys.readouterr().err
    assert cli_main(["token", "list", *cfg]) == 0
    listed = capsys.readouterr().out
    assert "ci" in listed and "live" in listed
    store = TokenStore(env.state / "tokens.json")
    assert store.check(token) == ("ok", "ci") and store.check(token + "x") == ("unknown", None)
    assert cli_main(["token", "revoke", "ci", *cfg]) == 0
    assert store.check(token) == ("revoked", "ci")
    assert cli_main(["token", "revoke", "ci", *cfg]) == 2


# -- a served daemon -----------------------------------------------------------------------------------


class Served:
    def __init__(self, env: Env, run: Running) -> None:
        self.env = env
        self.run = run
        self.url = run.server.url

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def token(self, name: str) -> str:
        return TokenStore(self.env.state / "tokens.json").add(name)


@pytest.fixture
def served(make_env: Callable[..., Env], request: pytest.FixtureRequest) -> Iterator[Served]:
    web: dict[str, Any] = {"enabled": True, "port": 0, "submit_wait_seconds": 20}
    web.update(getattr(request, "param", {}))
    env = make_env(web=web, lanes={"cpu": 1})
    with Running(env.daemon(), serve=True) as run:
        yield Served(env, run)


def _caption_files(tmp: Path, stem: str, seconds: float = 0.5) -> list[tuple[str, tuple[str, bytes, str]]]:
    video = make_video(tmp / f"{stem}.mp4", seconds=seconds, size="160x90")
    return [("files", (f"{stem}.mp4", video.read_bytes(), "video/mp4")),
            ("files", (f"{stem}.srt", SRT_PT.encode(), "text/plain"))]


def _final(c: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def ended() -> bool:
        seen.update(c.get(f"/api/jobs/{job_id}").json())
        return seen["status"] in ("done", "failed")

    wait_for(ended, timeout, every=0.2, what=f"job {job_id} finished")
    return seen


@pytest.mark.parametrize("served", [{"require_token": True}], indirect=True)
def test_without_a_token_everything_but_healthz_is_refused(served: Served) -> None:
    with served.client() as anon:
        assert anon.get("/healthz").status_code == 200
        for path in ("/", "/api/jobs", "/api/status", "/metrics", "/readyz", "/outbox/x.mp4", "/create"):
            r = anon.get(path)
            assert r.status_code == 401, path
            assert "token" in r.text and r.headers["www-authenticate"].startswith("Bearer")
        # A browser asking for a page is sent to the login form instead.
        r = anon.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
        assert anon.post("/api/jobs", json={"kind": "narrate", "text": "oi"}).status_code == 401
        assert anon.get("/api/jobs", headers={"Authorization": "Basic eDp5"}).status_code == 401
    with served.client("omad_not-a-token") as wrong:
        assert wrong.get("/api/jobs").status_code == 401
    token = served.token("alice")
    with served.client(token) as alice:
        assert alice.get("/api/jobs").json() == {"jobs": []}
        assert alice.get("/metrics").status_code == 200
        TokenStore(served.env.state / "tokens.json").revoke("alice")
        r = alice.get("/api/jobs")
        assert r.status_code == 403 and "revoked" in r.json()["error"]
    metrics = served.run.server.metrics.render().decode()
    assert 'omad_web_auth_failures_total{reason="missing"}' in metrics
    assert 'omad_web_auth_failures_total{reason="revoked"} 1.0' in metrics
    assert 'omad_web_auth_failures_total{reason="unknown"} 1.0' in metrics


@pytest.mark.parametrize("served", [{"require_token": True, "metrics_public": True}], indirect=True)
def test_metrics_can_be_left_open_for_a_lan_prometheus(served: Served) -> None:
    with served.client() as anon:
        assert anon.get("/metrics").status_code == 200
        assert anon.get("/api/status").status_code == 401


def test_the_whole_job_cycle_through_the_api(served: Served, tmp_path: Path) -> None:
    """GIVEN an open (loopback) server
    WHEN a video and its SRT are posted to /api/jobs
    THEN the answer is 202 with the job's id, the job runs through the normal intake, and
    GET /api/jobs/{id} shows its stages with timings and an output URL that serves the video;
    the same upload again gives the same job."""
    files = _caption_files(tmp_path, "aula")
    with served.client() as c:
        r = c.post("/api/jobs", files=files)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["id"] and body["duplicate"] is False and r.headers["location"] == f"/api/jobs/{body['id']}"
        job = _final(c, body["id"])
        assert job["status"] == "done" and job["route"] == "caption" and job["inputs"] == ["aula.mp4", "aula.srt"]
        assert [s["name"] for s in job["stages"]] == ["caption"] and job["stages"][0]["seconds"] > 0
        video = next(o for o in job["outputs"] if o["name"] == "aula.mp4")
        assert c.get(video["url"]).content == (served.env.outbox / "aula.mp4").read_bytes()
        assert job["facts"]["route"] == "caption"
        again = c.post("/api/jobs", files=files)
        assert again.status_code == 202 and again.json()["id"] == body["id"] and again.json()["duplicate"]
        assert not list(served.env.inbox.iterdir())  # nothing written twice
        listed = c.get("/api/jobs", params={"status": "done", "route": "caption"}).json()["jobs"]
        assert [j["id"] for j in listed] == [body["id"]]
        assert c.get("/api/jobs", params={"route": "narrate"}).json()["jobs"] == []
        assert c.get("/api/jobs", params={"since": "2999-01-01T00:00:00Z"}).json()["jobs"] == []
        schema = c.get("/api/openapi.json").json()
        assert schema["openapi"].startswith("3.") and "/api/jobs/{job_id}/retry" in schema["paths"]


def test_a_brief_as_json_and_a_failed_job_retried(served: Served, tmp_path: Path) -> None:
    """GIVEN a caption upload whose SRT is broken
    THEN it fails with a message and what to do; the originals are not served without a token;
    after the SRT is fixed in failed/, POST /retry runs it again."""
    video = make_video(tmp_path / "ruim.mp4", seconds=0.6, size="160x90").read_bytes()
    with served.client() as c:
        r = c.post("/api/jobs", files=[("files", ("ruim.mp4", video, "video/mp4")),
                                       ("files", ("ruim.srt", b"1\nbroken\n", "text/plain"))])
        assert r.status_code == 202
        job = _final(c, r.json()["id"])
        assert job["status"] == "failed" and "ruim.srt" in job["error"]["message"]
        assert "omad retry" in job["error"]["what_to_do"] and job["retryable"]
        original = next(o for o in job["originals"] if o["name"].endswith("ruim.srt"))
        assert c.get(original["url"]).status_code == 401  # even on loopback with tokens off
        error_json = next(o for o in job["outputs"] if o["kind"] == "error")
        assert c.get(error_json["url"]).json()["job_id"] == job["id"]
        with served.client(served.token("ops")) as ops:
            assert ops.get(original["url"]).content == b"1\nbroken\n"
        (served.env.outbox / "peek.srt").symlink_to(served.env.outbox / "failed" / "ruim" / "ruim.srt")
        assert c.get("/outbox/peek.srt").status_code == 401  # nor through a link inside the outbox
        (served.env.outbox / "failed" / "ruim" / "ruim.srt").write_text(SRT_PT)
        r = c.post(f"/api/jobs/{job['id']}/retry")
        assert r.status_code == 202 and "back in the inbox" in r.json()["message"]
        wait_for(lambda: (served.env.outbox / "ruim.mp4").exists(), timeout=60)
        old = c.get(f"/api/jobs/{job['id']}").json()
        assert old["status"] == "failed" and old["retried"] and not old["retryable"]
        assert c.get(f"/api/jobs/{old['retried_as']}").json()["status"] == "done"
        assert c.post(f"/api/jobs/{job['id']}/retry").status_code == 409
        assert c.post("/api/jobs/ffffffffffffffff/retry").status_code == 404

        r = c.post("/api/jobs", json={"kind": "narrate", "text": "Olá, mundo.", "name": "ola"})
        assert r.status_code == 202
        narrated = _final(c, r.json()["id"])
        assert narrated["status"] == "done" and narrated["route"] == "narrate"
        assert {o["name"] for o in narrated["outputs"]} >= {"ola.wav", "ola.srt"}


def test_bad_requests_get_a_4xx_naming_the_field(served: Served) -> None:
    with served.client() as c:
        def err(r: httpx.Response, status: int, field: str) -> str:
            assert r.status_code == status, r.text
            body = r.json()
            assert body["field"] == field
            return str(body["error"])

        assert "kind" in err(c.post("/api/jobs", json={"kind": "podcast"}), 400, "brief")
        assert "txt" in err(c.post("/api/jobs", json={"kind": "narrate", "txt": "x"}), 400, "brief")
        err(c.post("/api/jobs", content=b"{", headers={"content-type": "application/json"}), 400, "brief")
        err(c.post("/api/jobs", json=[1, 2]), 400, "brief")
        err(c.post("/api/jobs", content=b"x", headers={"content-type": "text/plain"}), 415, "content-type")
        err(c.post("/api/jobs", files=[("files", (".hidden", b"x", "text/plain"))]), 400, "files")
        err(c.post("/api/jobs", files=[("files", ("a.txt", b"x", "text/plain")),
                                       ("files", ("a.txt", b"y", "text/plain"))]), 400, "files")
        err(c.post("/api/jobs", files=[("upload", ("a.txt", b"x", "text/plain"))]), 400, "upload")
        assert "among the uploaded" in err(c.post("/api/jobs", data={"brief": json.dumps(
            {"kind": "caption", "video": "v.mp4", "subtitles": "v.srt"})}, files=[
            ("files", ("v.mp4", b"x", "video/mp4"))]), 400, "brief")
        err(c.post("/api/jobs", files=[]), 415, "content-type")
        chunked = c.post("/api/jobs", content=iter([b'{"kind": "narrate", "text": "x"}']),
                         headers={"content-type": "application/json"})
        err(chunked, 411, "content-length")
        err(c.get("/api/jobs", params={"status": "lost"}), 400, "status")
        err(c.get("/api/jobs", params={"route": "podcast"}), 400, "route")
        err(c.get("/api/jobs", params={"since": "yesterday"}), 400, "since")
        err(c.get("/api/jobs/ffffffffffffffff"), 404, "id")
    assert not [p for p in served.env.inbox.iterdir()]  # nothing refused reached the inbox


@pytest.mark.parametrize("served", [{"max_upload_mb": 0.05, "max_files": 2, "submit_per_minute": 2}],
                         indirect=True)
def test_upload_limits_and_the_rate_limit(served: Served) -> None:
    with served.client() as c:
        big = c.post("/api/jobs", files=[("files", ("big.txt", b"a" * 80_000, "text/plain"))])
        assert big.status_code == 413 and big.json()["field"] == "files" and "max_upload_mb" in big.json()["error"]
        many = c.post("/api/jobs", files=[("files", (f"{i}.txt", b"x", "text/plain")) for i in range(3)])
        assert many.status_code == 400 and "max_files" in many.json()["error"]
        limited = c.post("/api/jobs", json={"kind": "narrate", "text": "três"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "submit_per_minute" in limited.json()["error"]
    assert not list(served.env.inbox.iterdir())
    assert "omad_web_rate_limited_total 1.0" in served.run.server.metrics.render().decode()


def test_uploads_never_overwrite_a_waiting_file_nor_use_an_ignored_name(served: Served) -> None:
    waiting = served.env.inbox / "fala.txt"
    with served.client() as c:
        r = c.post("/api/jobs", files=[("files", ("fala.part", b"x", "text/plain"))])
        assert r.status_code == 400 and "watch.ignore" in r.json()["error"]
        served.run.d.stop_event.set()  # hold intake still, so the file below stays waiting
        served.run.thread.join(timeout=30)
        waiting.write_text("a person's own drop")
        r = c.post("/api/jobs", files=[("files", ("fala.txt", b"from the web", "text/plain"))])
        assert r.status_code == 409 and "already waiting" in r.json()["error"]
    assert waiting.read_text() == "a person's own drop"
    assert sorted(p.name for p in served.env.inbox.iterdir()) == ["fala.txt"]


def test_cross_site_posts_and_foreign_host_names_are_refused(served: Served) -> None:
    """An open loopback server refuses posts from other sites, and any Host but its loopback names
    (a rebinding attacker's domain pointed at 127.0.0.1)."""
    with served.client() as c:
        assert c.get("/api/status", headers={"Host": "evil.example:9464"}).status_code == 421
        assert c.get("/healthz", headers={"Host": "evil.example"}).status_code == 200
        assert c.get("/api/status", headers={"Host": f"localhost:{served.run.server.port}"}).status_code == 200
        r = c.post("/api/jobs", json={"kind": "narrate", "text": "x"}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and "cross-site" in r.json()["error"]
        r = c.post("/api/jobs", json={"kind": "narrate", "text": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
    assert not list(served.env.inbox.iterdir())


@pytest.mark.parametrize("served", [{"require_token": True}], indirect=True)
def test_a_login_cookie_needs_the_csrf_token_to_change_anything(served: Served) -> None:
    """GIVEN a browser session made at /login
    THEN reading works with the cookie alone, but a submission or a logout needs the page's
    CSRF token; a revoked token ends the session with 403."""
    token = served.token("bob")
    with served.client() as browser:
        r = browser.post("/login", data={"token": "omad_wrong", "next": "/"})
        assert r.status_code == 401 and "not valid" in r.text
        r = browser.post("/login", data={"token": token, "next": "https://evil.example/"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"  # never an open redirect
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        page = browser.get("/create").text
        csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page)
        assert csrf and "signed in as bob" in page
        brief = {"kind": "narrate", "text": "Olá.", "name": "csrf"}
        r = browser.post("/api/jobs", json=brief)
        assert r.status_code == 403 and r.json()["field"] == "csrf"
        r = browser.post("/api/jobs", json=brief, headers={"X-CSRF-Token": csrf.group(1)})
        assert r.status_code == 202, r.text
        assert browser.post("/logout", data={}).status_code == 403
        TokenStore(served.env.state / "tokens.json").revoke("bob")
        r = browser.get("/api/jobs")
        assert r.status_code == 403 and "revoked" in r.json()["error"]


class _Held(Stage):
    """A first stage that holds the job until released or cancelled, as a long encode would."""

    name = "held"

    def __init__(self, release: threading.Event, fail_first: bool = False) -> None:
        self.release = release
        self.fail_first = fail_first

    def run(self, ctx: StageContext) -> StageResult:
        if self.fail_first:
            self.fail_first = False
            raise TransientError("the disk is full (a test's stand-in for a temporary fault).", stage=self.name)
        while not self.release.wait(0.1) and not ctx.cancel.is_set():
            ctx.progress(0.5)
        return StageResult()


def test_cancel_a_running_job_then_retry_it(make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """GIVEN a caption job held in a long first stage
    WHEN POST /api/jobs/{id}/cancel
    THEN it fails as cancelled with its inputs kept in failed/; a second cancel is a 409;
    a retry runs it to the end."""
    release = threading.Event()
    held = _Held(release)
    monkeypatch.setattr(runner_mod, "stages_for", lambda route: [held, *stages_for(route)])
    env = make_env(web={"enabled": True, "port": 0, "submit_wait_seconds": 20}, lanes={"cpu": 1})
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        job_id = c.post("/api/jobs", files=_caption_files(tmp_path, "longo")).json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{job_id}").json()["stage"] == "held", timeout=30)
        r = c.post(f"/api/jobs/{job_id}/cancel")
        assert r.status_code == 202 and "cancelling" in r.json()["message"]
        job = _final(c, job_id)
        assert job["status"] == "failed" and job["error"]["kind"] == "cancelled"
        assert "cancelled during stage" in job["error"]["message"]
        assert sorted(p.name for p in (env.outbox / "failed" / "longo").iterdir()) == [
            "error.json", "longo.mp4", "longo.srt"]
        assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 409
        release.set()
        assert c.post(f"/api/jobs/{job_id}/retry").status_code == 202
        wait_for(lambda: (env.outbox / "longo.mp4").exists(), timeout=60)


def test_cancel_a_job_waiting_for_its_retry(make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    held = _Held(threading.Event(), fail_first=True)
    monkeypatch.setattr(runner_mod, "stages_for", lambda route: [held, *stages_for(route)])
    env = make_env(web={"enabled": True, "port": 0, "submit_wait_seconds": 20},
                   jobs={"backoff_seconds": 600, "backoff_max_seconds": 600})
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        job_id = c.post("/api/jobs", files=_caption_files(tmp_path, "espera")).json()["id"]
        wait_for(lambda: c.get(f"/api/jobs/{job_id}").json()["status"] == "retry_wait", timeout=30)
        r = c.post(f"/api/jobs/{job_id}/cancel")
        assert r.status_code == 202 and r.json()["message"].endswith("cancelled")
        job = c.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "failed" and "cancelled before it ran" in job["error"]["message"]
        assert (env.outbox / "failed" / "espera" / "espera.srt").is_file()


def test_the_openapi_schema_documents_every_api_route(served: Served) -> None:
    """Every /api/ route the app serves is in the schema with its methods, and nothing else is."""
    from starlette.routing import Route

    from omad.web.openapi import OPENAPI

    served_routes: set[tuple[str, str]] = set()
    for route in served.run.server.app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/") and route.path != "/api/openapi.json":
            served_routes |= {(route.path, m.lower()) for m in (route.methods or ()) if m != "HEAD"}
    documented = {(path, method) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert served_routes == documented
    with served.client() as c:
        assert c.get("/api/openapi.json").json() == json.loads(json.dumps(OPENAPI))


def test_beyond_loopback_a_token_is_required_whatever_the_config_says(make_env: Callable[..., Env]) -> None:
    """GIVEN web.require_token: false but the server bound to every address
    THEN it still refuses requests without a token (and /healthz still answers)."""
    from omad.web import start_server

    env = make_env(web={"enabled": True, "host": "0.0.0.0", "port": 0, "require_token": False})
    d = env.daemon()
    server = start_server(d)
    try:
        assert server.auth.required
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as c:
            assert c.get("/api/status").status_code == 401
            assert c.get("/healthz").status_code == 200
    finally:
        server.shutdown()
        d.journal.close()


def test_a_brief_with_its_files_becomes_a_bundle_folder(served: Served, tmp_path: Path) -> None:
    """GIVEN an image and a brief naming it, in one multipart request
    THEN they reach the inbox as one bundle folder with brief.yaml, which intake runs as img2vid."""
    from conftest import make_image

    image = make_image(tmp_path / "foto.jpg", size="320x180").read_bytes()
    brief = {"kind": "img2vid", "image": "foto.jpg", "seconds": 1, "motion": "zoom_in", "name": "praia"}
    with served.client() as c:
        r = c.post("/api/jobs", data={"brief": json.dumps(brief)}, files=[("files", ("foto.jpg", image,
                                                                                     "image/jpeg"))])
        assert r.status_code == 202, r.text
        assert r.json()["placed"] == ["praia"]
        job = _final(c, r.json()["id"], timeout=120)
    assert job["status"] == "done" and job["route"] == "img2vid" and job["inputs"] == ["praia"]
    assert (served.env.outbox / "praia.mp4").is_file()
    assert served.env.sidecar("praia")["options"]["motion"] == "zoom_in"


def test_the_create_form_fields_make_a_brief() -> None:
    from omad.web.submit import UploadRefused, brief_from_fields

    names = ["aula.MP4", "aula.srt", "musica.mp3", "foto.png"]
    assert brief_from_fields({"kind": "caption"}, names) == {"kind": "caption", "video": "aula.MP4",
                                                             "subtitles": "aula.srt"}
    assert brief_from_fields({"kind": "video", "prompt": "um passeio", "format": "vertical", "voice": "pt-br",
                              "captions": "on"}, names) == {
        "kind": "video", "prompt": "um passeio", "format": "vertical", "music": "musica.mp3", "captions": True,
        "voice": {"name": "pt-br"}}
    assert brief_from_fields({"kind": "img2vid", "motion": "pan_left", "name": "x"}, names) == {
        "kind": "img2vid", "name": "x", "image": "foto.png", "audio": "musica.mp3", "motion": "pan_left"}
    assert brief_from_fields({"kind": "narrate", "text": " oi "}, [])["text"] == "oi"
    with pytest.raises(UploadRefused, match="'kind' must be"):
        brief_from_fields({"kind": "podcast"}, names)


def test_an_unknown_form_field_is_named(served: Served) -> None:
    with served.client() as c:
        r = c.post("/api/jobs", data={"breif": "{}"}, files=[("files", ("a.txt", b"x", "text/plain"))])
        assert r.status_code == 400 and r.json()["field"] == "breif"
    assert not list(served.env.inbox.iterdir())


def test_doctor_says_when_the_web_side_needs_a_token_and_has_none(make_env: Callable[..., Env],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    env = make_env(web={"enabled": True, "host": "0.0.0.0"})
    cfg = ["--config", str(env.root / "omad.yaml")]
    cli_main(["doctor", *cfg])
    line = next(x for x in capsys.readouterr().out.splitlines() if "web tokens" in x)
    assert line.startswith("FAIL") and "omad token add NAME" in line
    TokenStore(env.state / "tokens.json").add("ops")
    cli_main(["doctor", *cfg])
    line = next(x for x in capsys.readouterr().out.splitlines() if "web tokens" in x)
    assert line.startswith("ok") and "1 live token" in line


def test_a_video_and_its_webvtt_posted_together_are_captioned(served: Served, tmp_path: Path) -> None:
    """GIVEN a video and a same-name .vtt posted to /api/jobs THEN they pair like an .srt and are captioned;
    the Create form's caption kind takes a .vtt, .ass or .ssa as its subtitles too."""
    from omad.web.submit import brief_from_fields

    video = make_video(tmp_path / "aula.mp4", seconds=0.5, size="160x90")
    vtt = "WEBVTT\n\n00:00.000 --> 00:00.400 line:0\nOlá, <i>turma</i>\n"
    with served.client() as c:
        r = c.post("/api/jobs", files=[("files", ("aula.mp4", video.read_bytes(), "video/mp4")),
                                       ("files", ("aula.vtt", vtt.encode(), "text/vtt"))])
        assert r.status_code == 202, r.text
        job = _final(c, r.json()["id"])
    assert job["status"] == "done" and job["route"] == "caption" and job["inputs"] == ["aula.mp4", "aula.vtt"]
    assert served.env.sidecar("aula")["stages"][0]["facts"]["subtitle_format"] == "vtt"
    for ext in ("vtt", "ass", "ssa"):
        assert brief_from_fields({"kind": "caption"}, ["x.mp4", f"x.{ext}"])["subtitles"] == f"x.{ext}"
