"""Scoped tokens: read, submit and admin are separate; tokens from before scopes keep full rights."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Env, Running

from omad.cli import main as cli_main
from omad.web.auth import TokenStore
from omad.web.scopes import Scope


@pytest.fixture
def served(make_env: Callable[..., Env]) -> Iterator[tuple[Env, str]]:
    env = make_env(web={"enabled": True, "port": 0, "require_token": True, "submit_wait_seconds": 0})
    with Running(env.daemon(), serve=True) as run:
        yield env, run.server.url


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_each_scope_opens_only_its_own_doors(served: tuple[Env, str]) -> None:
    """GIVEN tokens limited to read, to submit and to admin, and one made before scopes existed
    THEN reading, submitting and acting on jobs (and failed originals and logs) each need their own scope,
    a refusal names the scope that is missing, and the old token may do everything."""
    env, url = served
    store = TokenStore(env.state / "tokens.json")
    reader, submitter, admin = (store.add(n, [s]) for n, s in
                                (("r", Scope.READ), ("s", Scope.SUBMIT), ("a", Scope.ADMIN)))
    legacy = store.add("old")
    data = json.loads((env.state / "tokens.json").read_text())
    assert "scopes" not in next(t for t in data["tokens"] if t["name"] == "old")  # as tokens were written before
    (env.outbox / "logs").mkdir(parents=True, exist_ok=True)
    log = next((env.outbox / "logs").iterdir(), None) or (env.outbox / "logs" / "x.log")
    log.touch()
    (env.outbox / "failed" / "f").mkdir(parents=True)
    (env.outbox / "failed" / "f" / "f.srt").write_text("x")
    brief = {"kind": "narrate", "text": "Bom dia."}
    with _client(url, reader) as c:
        assert c.get("/api/jobs").status_code == 200 and c.get("/").status_code == 200
        r = c.post("/api/jobs", json=brief)
        assert r.status_code == 403 and "'submit' scope" in r.json()["error"]
        assert c.post("/api/jobs/0123456789abcdef/cancel").status_code == 403
        assert c.get("/outbox/failed/f/f.srt").status_code == 403
        assert c.get(f"/outbox/logs/{log.name}").status_code == 403
    with _client(url, submitter) as c:
        assert c.post("/api/jobs", json=brief).status_code in (200, 201, 202)
        assert c.get("/api/jobs").status_code == 403
        assert c.post("/api/jobs/0123456789abcdef/retry").status_code == 403
    with _client(url, admin) as c:
        assert c.post("/api/jobs/0123456789abcdef/cancel").status_code not in (401, 403)
        assert c.get("/outbox/failed/f/f.srt").status_code == 200
        assert c.get(f"/outbox/logs/{log.name}").status_code == 200
        assert c.post("/api/jobs", json=brief).status_code == 403
    with _client(url, legacy) as c:
        assert c.get("/api/jobs").status_code == 200 and c.get("/outbox/failed/f/f.srt").status_code == 200
        assert c.post("/api/jobs/0123456789abcdef/cancel").status_code not in (401, 403)


def test_token_add_takes_several_scopes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "omad.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n")
    assert cli_main(["token", "new", "ci", "--scope", "read", "--scope", "submit", "--config", str(cfg)]) == 0
    token = capsys.readouterr().out.strip()
    store = TokenStore(tmp_path / "state" / "tokens.json")
    assert store.check(token) == ("ok", "ci") and store.scopes("ci") == {Scope.READ, Scope.SUBMIT}
    assert cli_main(["token", "list", "--config", str(cfg)]) == 0
    assert "read,submit" in capsys.readouterr().out
