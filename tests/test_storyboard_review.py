"""A video stops for review; its storyboard is edited through the API and rendered, remaking only what changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Env, Running, make_image, photo, wait_for

from omad.cli import main as cli_main
from omad.journal import JobStatus

SMALL = {"preset": "custom", "width": 160, "height": 90, "fps": 5, "x264_preset": "ultrafast"}
SCENES = [{"title": "Abelhas", "narration": "As abelhas fazem mel.", "image": "flor.jpg"},
          {"title": "Colmeia", "narration": "Elas vivem em colmeias."},
          {"title": "Fim", "narration": "Obrigado por assistir."}]


def drop_for_review(env: Env, name: str = "abelhas") -> None:
    staging = env.root / "staging" / name
    staging.mkdir(parents=True)
    make_image(staging / "flor.jpg", "320x180")
    brief = {"version": 1, "kind": "video", "review": True, "scenes": SCENES}
    (staging / "brief.yaml").write_text(yaml.safe_dump(brief, allow_unicode=True), encoding="utf-8")
    staging.rename(env.inbox / name)


def review_job(run: Running) -> str:
    """The id of the job waiting for review, once there is one."""
    wait_for(lambda: bool(run.d.journal.jobs([JobStatus.REVIEW])), timeout=120, what="a job waiting for review")
    return run.d.journal.jobs([JobStatus.REVIEW])[0].id


def unchanged_edit() -> dict[str, Any]:
    """An edit of the dropped storyboard that changes nothing yet: every scene, in order, as it was."""
    return {"scenes": [{"from": i, "narration": s["narration"], "title": s["title"]} for i, s in enumerate(SCENES)]}


def review_env(make_env: Callable[..., Env], tmp_path: Path) -> Env:
    photo(tmp_path / "lib" / "mel.jpg", (320, 180), keywords="mel;favo", colour=(200, 160, 20))
    return make_env(video=SMALL, web={"enabled": True, "port": 0}, lanes={"cpu": 1},
                    assets={"library": {"folders": [str(tmp_path / "lib")]}})


def _voice_runs(env: Env, name: str) -> list[dict[str, Any]]:
    return [s["facts"] for s in env.sidecar(name)["stages"] if s["name"] == "voice"]


def test_a_review_brief_waits_then_renders_the_edited_storyboard_through_the_api(
        make_env: Callable[..., Env], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GIVEN a scene video brief with review: true and a library with a picture of honey
    WHEN the daemon runs it
    THEN it stops in the journaled review state (status page, API, `omad status`), and through the API
    one sentence is edited, the last scene moves first, the first scene's picture is swapped from the library,
    a blocked edit is refused, and Render makes the video from the edited storyboard with one scene spoken again."""
    env = review_env(make_env, tmp_path)
    drop_for_review(env)
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        wait_for(lambda: any(j["status"] == "review" for j in c.get("/api/jobs").json()["jobs"]), timeout=120)
        job = next(j for j in c.get("/api/jobs").json()["jobs"] if j["status"] == "review")
        jid = job["id"]
        assert "waiting for review" in c.get("/").text
        assert cli_main(["status", "--config", str(env.root / "omad.yaml")]) == 0
        assert "waiting for review: 1" in capsys.readouterr().out

        board = c.get(f"/api/jobs/{jid}/storyboard").json()
        assert [s["narration"] for s in board["scenes"]] == [s["narration"] for s in SCENES]
        assert board["editable"] and board["scenes"][0]["picture"]["kind"] == "image"
        assert all(s["seconds_measured"] and s["seconds"] > 1.0 for s in board["scenes"])
        assert c.get(f"/api/jobs/{jid}").json()["links"]["storyboard"] == f"/api/jobs/{jid}/storyboard"
        hits = c.get(f"/api/jobs/{jid}/storyboard/library", params={"q": "mel"}).json()["hits"]
        assert [h["name"] for h in hits] == ["mel.jpg"]

        personal = {"scenes": [{"from": 0, "narration": "Meu CPF é 529.982.247-25."},
                               *({"from": i, "narration": SCENES[i]["narration"]} for i in (1, 2))]}
        r = c.put(f"/api/jobs/{jid}/storyboard", json=personal)
        assert r.status_code == 200  # personal data is redacted, as in generated text
        assert "529.982.247-25" not in r.text
        edit = {"scenes": [
            {"from": 2, "narration": "Obrigado por assistir.", "title": "Fim"},
            {"from": 0, "narration": "As abelhas fazem mel.", "title": "Abelhas",
             "picture": f"library:{hits[0]['path']}"},
            {"from": 1, "narration": "Elas vivem juntas em colmeias.", "title": "Colmeia"},
        ]}
        r = c.put(f"/api/jobs/{jid}/storyboard", json=edit)
        assert r.status_code == 200, r.text
        bad = c.put(f"/api/jobs/{jid}/storyboard", json={"scenes": [{"from": 9, "narration": "x"}]})
        assert bad.status_code == 422 and "from" in bad.json()["error"]
        assert c.put(f"/api/jobs/{jid}/storyboard", json={"scenes": []}).status_code == 400

        assert c.post(f"/api/jobs/{jid}/render").status_code == 202
        wait_for(lambda: c.get(f"/api/jobs/{jid}").json()["status"] in ("done", "failed"), timeout=120)
        assert c.get(f"/api/jobs/{jid}").json()["status"] == "done"
        assert c.post(f"/api/jobs/{jid}/render").status_code == 409
    side = env.sidecar("abelhas")
    assert [s["name"] for s in side["stages"]] == ["assets", "review", "voice", "render", "post"]
    voice = _voice_runs(env, "abelhas")[-1]
    assert voice["voice_cache"] == {"made": 1, "from_job": 2, "from_state": 0}
    published = yaml.safe_load((env.outbox / "abelhas.scenes.yaml").read_text(encoding="utf-8"))
    assert [s["title"] for s in published["scenes"]] == ["Fim", "Abelhas", "Colmeia"]
    assert published["scenes"][1]["asset"]["source"] == "library"
    srt = (env.outbox / "abelhas.srt").read_text(encoding="utf-8")
    assert srt.index("Obrigado") < srt.index("mel") < srt.index("juntas")


def test_the_review_state_survives_a_restart(make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a job stopped for review
    WHEN omad stops and starts again
    THEN the job is still waiting for review, and nothing ran meanwhile."""
    env = review_env(make_env, tmp_path)
    drop_for_review(env)
    assert env.once(max_wait=120) == 0  # `omad once` does not wait for a person
    d = env.daemon()
    jobs = d.journal.jobs([JobStatus.REVIEW])
    assert len(jobs) == 1 and jobs[0].stage == "review"
    d.journal.recover()
    assert d.journal.get(jobs[0].id).status is JobStatus.REVIEW  # type: ignore[union-attr]
    assert d.journal.runnable_keys(1e12) == []
    d.journal.close()
    assert not (env.outbox / "abelhas.mp4").exists()


def test_the_create_form_review_box_asks_for_a_review() -> None:
    """GIVEN the Create page's fields for a prompt video
    THEN the review box, ticked, puts review: true in the brief, and nothing when it is not."""
    from omad.web.submit import brief_from_fields

    ticked = brief_from_fields({"kind": "video", "prompt": "abelhas", "review": "on"}, [])
    assert ticked["review"] is True
    assert "review" not in brief_from_fields({"kind": "video", "prompt": "abelhas"}, [])


def test_a_prompt_video_stops_for_review_when_llm_review_is_on(make_env: Callable[..., Env]) -> None:
    """GIVEN llm.review: true and a prompt brief that says nothing about review
    WHEN the agents plan it (fake Ollama) THEN it waits for review after plan, assets and voice;
    Render (without edits) makes the video from the agents' scenes, speaking nothing again."""
    from fake_ollama import FakeOllama
    from test_agent_video import BRIEF, drop_bundle

    from omad.storyboard.review import approve
    from omad.web.storyboard import storyboard_view

    with FakeOllama() as fake:
        env = make_env(video=SMALL, llm={"host": fake.url, "remote": False, "review": True})
        drop_bundle(env, BRIEF)
        assert env.once(max_wait=120) == 0
        d = env.daemon()
        try:
            [job] = d.journal.jobs([JobStatus.REVIEW])
            assert job.route == "agent-video"
            assert {s["name"] for s in d.journal.stages(job.id) if s["status"] == "done"} == {"plan", "assets",
                                                                                              "voice"}
            from omad.web.storyboard import board_for

            state: Any = type("S", (), {"paths": d.paths, "journal": d.journal, "config": d.config})()
            board = board_for(state, job)
            view = storyboard_view(job, board)
            assert view["editable"] and len(view["scenes"]) >= 2
            board.save(board.load())
            assert approve(d.journal, job, board.path.name, {"scenes": len(view["scenes"])})
            assert not approve(d.journal, job, board.path.name, {})  # once only
        finally:
            d.journal.close()
        assert env.once(max_wait=120) == 0
    side = env.sidecar("abelhas")
    assert [s["name"] for s in side["stages"]] == ["plan", "assets", "review", "voice", "render", "post"]
    voice = next(s for s in side["stages"] if s["name"] == "voice")["facts"]["voice_cache"]
    assert voice["made"] == 0 and voice["from_job"] == len(view["scenes"])


def test_a_scene_preview_is_small_has_its_voice_and_feeds_the_render(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a video waiting for review, one of its sentences edited
    WHEN that scene's preview is asked for
    THEN a small video with sound as long as the scene comes back, kept for the next ask, and the render
    after it speaks nothing again (the preview's voice is in the job's cache)."""
    from omad.media.ffmpeg import probe

    env = review_env(make_env, tmp_path)
    drop_for_review(env)
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=120) as c:
        jid = review_job(run)
        edit = unchanged_edit()
        edit["scenes"][1]["narration"] = "Elas vivem juntas em colmeias."
        assert c.put(f"/api/jobs/{jid}/storyboard", json=edit).status_code == 200
        r = c.get(f"/jobs/{jid}/storyboard/preview/1")
        assert r.status_code == 200, r.text
        clip = tmp_path / "preview.mp4"
        clip.write_bytes(r.content)
        info = probe(clip)
        assert info.video is not None and info.audio is not None
        assert (info.width, info.height) == (384, 216)
        assert c.get(f"/jobs/{jid}/storyboard/preview/7").status_code == 422
        assert c.post(f"/api/jobs/{jid}/render").status_code == 202
        wait_for(lambda: run.d.journal.get(jid).status is JobStatus.DONE, timeout=120)  # type: ignore[union-attr]
    voice = _voice_runs(env, "abelhas")[-1]
    assert voice["voice_cache"] == {"made": 0, "from_job": 3, "from_state": 0}


def test_an_uploaded_picture_and_the_reviewed_storyboard_dropped_again(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a video waiting for review
    WHEN a picture is uploaded through the API for its second scene and it is rendered,
    and its published X.scenes.yaml is then edited (one sentence) and dropped again with the bundle
    THEN the new job renders without stopping, keeps the uploaded picture without a search,
    and speaks only the edited scene (the others come from the state dir's cache)."""
    from PIL import Image

    env = review_env(make_env, tmp_path)
    drop_for_review(env)
    picture = tmp_path / "minha.png"
    Image.new("RGB", (320, 180), (10, 120, 60)).save(picture)
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        jid = review_job(run)
        bad = c.post(f"/api/jobs/{jid}/storyboard/pictures", files={"file": ("x.gif", b"GIF89a", "image/gif")})
        assert bad.status_code == 422 and "x.gif" in bad.json()["error"]
        r = c.post(f"/api/jobs/{jid}/storyboard/pictures", files={"file": ("minha.png", picture.read_bytes(),
                                                                           "image/png")})
        assert r.status_code == 201, r.text
        edit = unchanged_edit()
        edit["scenes"][1]["picture"] = r.json()["picture"]
        assert c.put(f"/api/jobs/{jid}/storyboard", json=edit).status_code == 200
        assert c.get(f"/jobs/{jid}/storyboard/pictures/1").content == picture.read_bytes()
        assert c.post(f"/api/jobs/{jid}/render").status_code == 202
        wait_for(lambda: run.d.journal.get(jid).status is JobStatus.DONE, timeout=120)  # type: ignore[union-attr]
    published = yaml.safe_load((env.outbox / "abelhas.scenes.yaml").read_text(encoding="utf-8"))
    assert "review" not in published and published["scenes"][1]["asset"]["source"] == "upload"
    published["scenes"][2]["narration"] = "Até a próxima, e obrigado por assistir."
    staging = env.root / "staging2" / "abelhas-v2"
    staging.mkdir(parents=True)
    make_image(staging / "flor.jpg", "320x180")
    (staging / "brief.yaml").write_text(yaml.safe_dump(published, allow_unicode=True), encoding="utf-8")
    staging.rename(env.inbox / "abelhas-v2")
    assert env.once(max_wait=120) == 0
    side = env.sidecar("abelhas-v2")
    assert [s["name"] for s in side["stages"]] == ["assets", "voice", "render", "post"]
    assert not any("no longer has" in w for w in side.get("warnings") or [])
    render = next(s for s in side["stages"] if s["name"] == "render")["facts"]
    assert render["scenes"][1]["source"] == "upload"
    voice = next(s for s in side["stages"] if s["name"] == "voice")["facts"]["voice_cache"]
    assert voice == {"made": 1, "from_job": 0, "from_state": 2}


def test_a_stock_photo_swapped_in_through_the_api_keeps_its_credit(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a video waiting for review and a Pexels key (a fake Pexels on loopback)
    WHEN the storyboard's stock search is asked for 'praia' and its hit is used for the last scene
    THEN the video renders with that photo, credited to its author."""
    from fake_stock import FakeStock, StockItem

    with FakeStock() as fake:
        beach = photo(tmp_path / "stock" / "beach.jpg", (800, 450), colour=(20, 120, 200))
        fake.add(StockItem("pexels", "photo", 1001, {"praia", "beach"}, beach, 800, 450, "Ana Fotógrafa"))
        photo(tmp_path / "lib" / "mel.jpg", (320, 180), keywords="mel;favo")
        env = make_env(video=SMALL, web={"enabled": True, "port": 0}, lanes={"cpu": 1},
                       assets={"library": {"folders": [str(tmp_path / "lib")]}, "allow_hosts": ["127.0.0.1"],
                               "stock": {"pexels_url": f"{fake.url}/pexels", "pexels_key": "pexels-test-key",
                                         "providers": ["pexels"], "timeout_seconds": 5}})
        drop_for_review(env)
        with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
            jid = review_job(run)
            hits = c.get(f"/api/jobs/{jid}/storyboard/stock", params={"q": "praia"}).json()["hits"]
            assert [h["source"] for h in hits] == ["pexels"] and "Ana" in hits[0]["credit"]
            edit = unchanged_edit()
            edit["scenes"][2]["picture"] = f"stock:{hits[0]['path']}"
            r = c.put(f"/api/jobs/{jid}/storyboard", json=edit)
            assert r.status_code == 200, r.text
            forged = dict(edit)
            forged["scenes"] = [*edit["scenes"][:2], {**edit["scenes"][2], "picture": f"stock:{beach}"}]
            assert c.put(f"/api/jobs/{jid}/storyboard", json=forged).status_code == 422
            assert c.post(f"/api/jobs/{jid}/render").status_code == 202
            wait_for(lambda: run.d.journal.get(jid).status is JobStatus.DONE, timeout=120)  # type: ignore[union-attr]
    published = yaml.safe_load((env.outbox / "abelhas.scenes.yaml").read_text(encoding="utf-8"))
    asset = published["scenes"][2]["asset"]
    assert asset["source"] == "pexels" and asset["id"] == "1001" and "Ana" in asset["credit"]


def test_an_edit_with_a_blocked_word_is_refused_naming_the_scene(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN guardrails that block a word, and a video waiting for review
    WHEN an edit puts that word in the second scene's title
    THEN the edit is refused naming that scene, the storyboard is unchanged and the job still waits."""
    rules = tmp_path / "guardrails.yaml"
    rules.write_text("version: 1\nblocked_words:\n  words: [proibido]\n  action: block\n", encoding="utf-8")
    photo(tmp_path / "lib" / "mel.jpg", (320, 180), keywords="mel")
    env = make_env(video=SMALL, web={"enabled": True, "port": 0}, lanes={"cpu": 1},
                   guardrails={"file": str(rules)})
    drop_for_review(env)
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=60) as c:
        jid = review_job(run)
        edit = unchanged_edit()
        edit["scenes"][1]["title"] = "Um assunto proibido"
        r = c.put(f"/api/jobs/{jid}/storyboard", json=edit)
        assert r.status_code == 422 and "storyboard scene 2: title" in r.json()["error"]
        board = c.get(f"/api/jobs/{jid}/storyboard").json()
        assert [s["title"] for s in board["scenes"]] == [s["title"] for s in SCENES]
        assert run.d.journal.get(jid).status is JobStatus.REVIEW  # type: ignore[union-attr]
