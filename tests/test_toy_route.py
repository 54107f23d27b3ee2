"""A new route in three places: a stage module, a table entry and a brief model (tests/toy_stage.py, toy_route.py).

GIVEN the toy route "shout" (a .txt and a same-name .srt -> the text in capitals, its captions counted),
registered from a module named in ``intake.route_modules``, THEN it is taken from a plain drop, its route
folder, a brief, the web Create form, the API, and by a celery worker, with no other edit to omad.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env, Running, wait_for, write_srt

from omad import brief, pairing, routes
from omad.brief import parse_brief
from omad.errors import InputError
from omad.stage import Stage, StageContext, StageResult


@pytest.fixture
def toy() -> Iterator[Any]:
    """The toy route registered (by importing its module, as the daemon does), and taken out again after."""
    module = importlib.import_module("toy_route")
    yield module
    module.unregister()
    sys.modules.pop("toy_route", None)
    assert "shout" not in routes.ROUTES and "shout" not in brief.brief_models()


@pytest.fixture
def toy_env(toy: Any, make_env: Callable[..., Env]) -> Callable[..., Env]:
    def _make(**overrides: Any) -> Env:
        return make_env(intake={"partner_grace_seconds": 0.5, "pair_timeout_seconds": 3.0,
                                "route_modules": ["toy_route"]}, **overrides)

    return _make


def drop_pair(folder: Path, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_srt(folder / f"{stem}.srt")
    (folder / f"{stem}.txt").write_text(f"olá, {stem}", encoding="utf-8")


def shouted(env: Env, name: str, stem: str | None = None, marks: int = 1) -> None:
    """``name``'s result is the text of ``stem``'s drop in capitals, with its two captions counted."""
    got = (env.outbox / f"{name}.shout.txt").read_text(encoding="utf-8")
    assert got == f"OLÁ, {(stem or name).upper()}{'!' * marks}\n2 captions\n"
    side = env.sidecar(name)
    assert side["route"] == "shout" and [s["name"] for s in side["stages"]] == ["shout"]


# -- the table ---------------------------------------------------------------------------------------------


def test_registering_derives_the_folder_the_accepted_text_and_the_partners(toy: Any) -> None:
    assert routes.ROUTE_STAGES["shout"] == ("shout",) and "shout" in routes.ROUTE_FOLDERS
    assert "subtitle file + text file (shout)" in pairing.accepted()
    assert "text file (.txt, to shout)" in pairing.partners("srt")
    assert parse_brief({"kind": "shout", "text_file": "a.txt", "subtitles": "a.srt"}, "b.yaml").route() == "shout"


def test_a_stage_needing_what_nothing_supplies_is_a_type_error_when_the_route_is_built(toy: Any) -> None:
    class Lost(Stage):
        name = "lost"
        needs = ("scene_brief",)

        def run(self, ctx: StageContext) -> StageResult:
            return StageResult()

    with pytest.raises(TypeError, match="stage 'lost' needs 'scene_brief'"):
        routes.register(routes.Route("lost", ("shout", "lost"), "nothing", drops=(routes.drop("text", "srt"),)),
                        {"lost": Lost})
    assert "lost" not in routes.ROUTES and "lost" not in routes.STAGES
    # An earlier stage that makes it is enough: the chain is checked in order.
    with pytest.raises(TypeError, match="stage 'shout' needs 'srt'"):
        routes.register(routes.Route("half", ("shout",), "nothing", drops=(routes.drop("text"),)))


def test_the_built_in_routes_chain_and_every_stage_declares_what_the_table_says() -> None:
    for route in routes.TABLE:
        routes.check_chain(route)
        for name in route.stages:
            stage = routes.stage_named(name)  # TypeError if the class and the table disagree
            assert stage.needs == routes.STAGES[name].needs and stage.makes == routes.STAGES[name].makes


def test_a_brief_of_the_toy_kind_is_checked_by_its_model(toy: Any) -> None:
    with pytest.raises(InputError, match="unknown key 'shout'"):
        parse_brief({"kind": "shout", "text_file": "a.txt", "subtitles": "a.srt", "shout": True}, "b.yaml")
    brief.unregister("shout")
    with pytest.raises(InputError, match="'kind' must be one of: caption"):
        parse_brief({"kind": "shout", "text_file": "a.txt", "subtitles": "a.srt"}, "b.yaml")
    brief.register(toy.ShoutBrief)


# -- drops -------------------------------------------------------------------------------------------------


def test_a_plain_drop_its_folder_and_a_brief_take_the_toy_route(toy_env: Callable[..., Env]) -> None:
    env = toy_env()
    drop_pair(env.inbox, "plain")
    drop_pair(env.inbox / "shout", "forced")
    drop_pair(env.inbox / "pedido", "files")
    (env.inbox / "pedido" / "brief.yaml").write_text(
        "version: 1\nkind: shout\ntext_file: files.txt\nsubtitles: files.srt\nexclaim: 3\n", encoding="utf-8")
    assert env.once() == 0
    shouted(env, "plain")
    shouted(env, "forced")
    shouted(env, "pedido", "files", marks=3)
    assert env.sidecar("pedido")["options"]["exclaim"] == 3


def test_a_lone_subtitle_file_names_the_toy_partner_when_it_times_out(toy_env: Callable[..., Env]) -> None:
    env = toy_env()
    write_srt(env.inbox / "so.srt")
    d = env.daemon()
    with Running(d):
        from conftest import wait_for

        wait_for(lambda: (env.outbox / "failed" / "so" / "error.json").exists(), timeout=60)
    assert "text file (.txt, to shout)" in env.failed_error("so")["message"]


# -- the web side ------------------------------------------------------------------------------------------


def _final(c: httpx.Client, url: str, timeout: float = 60) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def ended() -> bool:
        body: dict[str, Any] = c.get(url).json()
        seen.update(c.get(f"/api/jobs/{body['id']}").json() if body.get("id") and "route" not in body else body)
        return seen.get("status") in ("done", "failed")

    wait_for(ended, timeout, every=0.2, what=f"{url} finished")
    return seen


def _files(stem: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    srt = "1\n00:00:00,000 --> 00:00:01,000\nUm\n\n2\n00:00:01,000 --> 00:00:02,000\nDois\n"
    return [("files", (f"{stem}.txt", f"olá, {stem}".encode(), "text/plain")),
            ("files", (f"{stem}.srt", srt.encode(), "text/plain"))]


def test_the_create_form_and_the_api_take_the_toy_route(toy_env: Callable[..., Env]) -> None:
    env = toy_env(web={"enabled": True, "port": 0, "submit_wait_seconds": 0}, lanes={"cpu": 1})
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        page = c.get("/create").text
        assert '<option value="shout">shout: a text in capitals' in page
        # The Create form, posted as a browser without JavaScript posts it.
        r = c.post("/create", data={"kind": "shout", "name": "pelo-form"}, files=_files("f"), follow_redirects=False)
        assert r.status_code == 303, r.text
        sid = re.search(r"/submissions/([0-9a-f]+)", r.headers["location"])
        url = f"/api/submissions/{sid.group(1)}" if sid else "/api" + r.headers["location"]
        assert _final(c, url)["status"] == "done"
        # The API: a brief as JSON beside the files, then the form's fields.
        r = c.post("/api/jobs", data={"brief": '{"kind": "shout", "name": "pela-api", "text_file": "a.txt", '
                                               '"subtitles": "a.srt", "exclaim": 2}'}, files=_files("a"))
        assert r.status_code == 202, r.text
        assert _final(c, r.json()["url"])["route"] == "shout"
        r = c.post("/api/jobs", data={"kind": "shout", "name": "campos"}, files=_files("k"))
        assert r.status_code == 202 and _final(c, r.json()["url"])["status"] == "done"
        # The API's validation is the brief model's, and the schema shows the route and the brief.
        r = c.post("/api/jobs", data={"brief": '{"kind": "shout", "text_file": "x.txt", "subtitles": "a.srt"}'},
                   files=_files("a"))
        assert r.status_code == 400 and "'text_file' names 'x.txt'" in r.json()["error"]
        schema = c.get("/api/openapi.json").json()
        assert "ShoutBrief" in schema["components"]["schemas"]
        assert "shout" in schema["paths"]["/api/jobs"]["get"]["parameters"][1]["schema"]["enum"]
        assert c.get("/api/jobs", params={"route": "shout"}).json()["jobs"]
    shouted(env, "pelo-form", "f")
    shouted(env, "pela-api", "a", marks=2)
    shouted(env, "campos", "k")


# -- a celery worker ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_celery_worker_runs_the_toy_route(toy: Any, tmp_path: Path, make_env: Callable[..., Env]) -> None:
    from cluster_kit import REPO, SIGNING_KEY, RedisServer, Worker
    from test_cluster import wait_done

    redis = RedisServer(tmp_path / "redis", password="s3cret-pw").start()
    worker: Worker | None = None
    try:
        env = make_env(intake={"route_modules": ["toy_route"]}, executor={
            "kind": "celery", "broker_url": redis.url, "signing_key": SIGNING_KEY, "heartbeat_seconds": 0.5,
            "lease_seconds": 4.0, "worker_state_dir": str(tmp_path / "daemon-worker-state")})
        import yaml

        data = yaml.safe_load((tmp_path / "omad.yaml").read_text())
        worker = Worker(tmp_path, "toy", data).start(
            redis, env={"PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
        drop_pair(env.inbox, "remoto")
        with Running(env.daemon()):
            wait_done(env, 1)
        assert worker.events("stage_started") and worker.events("stage_started")[0]["stage"] == "shout"
        shouted(env, "remoto")
        assert env.sidecar("remoto")["stages"][0]["facts"]["worker"] == worker.node
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
