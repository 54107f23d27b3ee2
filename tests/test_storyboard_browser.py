"""The storyboard page in a real headless Chromium with JavaScript off: plain forms only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Env, Running, wait_for
from test_storyboard_review import drop_for_review, review_env
from test_web_browser import CHROMEDRIVER, CHROMIUM, _wait, make_browser  # noqa: F401 (the fixture)

from omad.journal import JobStatus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed (make test installs them)"),
]


def test_edit_a_sentence_swap_a_picture_move_a_scene_and_render(
        make_env: Callable[..., Env], make_browser: Callable[..., Any], tmp_path: Path) -> None:  # noqa: F811
    """GIVEN a video waiting for review and a library with a picture of honey
    WHEN a person, with JavaScript off, edits one sentence, searches the library and uses its picture for the
    first scene, plays the edited scene's preview, moves the last scene up one place and presses Render
    THEN the job is done with those scenes, and only the edited scene was spoken (once, for its preview)."""
    from selenium.webdriver.common.by import By

    env = review_env(make_env, tmp_path)
    drop_for_review(env)
    browser = make_browser(javascript=False)
    with Running(env.daemon(), serve=True) as run:
        journal = run.d.journal
        wait_for(lambda: bool(journal.jobs([JobStatus.REVIEW])), timeout=120)
        jid = journal.jobs([JobStatus.REVIEW])[0].id
        browser.get(f"{run.server.url}/jobs/{jid}")
        browser.find_element(By.CSS_SELECTOR, "#review-link a").click()
        _wait(browser, 30, "the storyboard", lambda d: d.find_elements(By.CSS_SELECTOR, "fieldset.scene"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "fieldset.scene")) == 3

        text = browser.find_element(By.NAME, "narration_1")
        text.clear()
        text.send_keys("Elas vivem juntas em colmeias.")
        browser.find_element(By.NAME, "q_0").send_keys("mel")
        browser.find_element(By.CSS_SELECTOR, "#scene-0 button.search").click()
        pick = _wait(browser, 30, "a library hit", lambda d: d.find_elements(By.CSS_SELECTOR, "#scene-0 button.pick"))
        assert pick[0].get_attribute("data-name") == "mel.jpg"
        # The edited sentence was saved by the search button.
        assert "juntas" in browser.find_element(By.NAME, "narration_1").get_attribute("value")
        pick[0].click()
        _wait(browser, 30, "the new picture", lambda d: "mel" in d.find_element(
            By.CSS_SELECTOR, "#scene-0 .picture-name").text)
        thumb = browser.find_element(By.CSS_SELECTOR, "#scene-0 img.thumb")
        assert browser.execute_script("return arguments[0].naturalWidth", thumb) > 0
        browser.find_element(By.CSS_SELECTOR, "#scene-1 button.preview").click()
        player = _wait(browser, 60, "the scene's preview", lambda d: d.find_elements(By.CSS_SELECTOR,
                                                                                    "#scene-1 video.scene-preview"))
        _wait(browser, 60, "the preview loaded", lambda d: d.execute_script(
            "return arguments[0].readyState >= 1 && arguments[0].duration > 1", player[0]))
        browser.find_element(By.CSS_SELECTOR, "#scene-2 button.up").click()
        _wait(browser, 30, "the moved scene", lambda d: d.find_element(By.NAME, "narration_1").get_attribute(
            "value") == "Obrigado por assistir.")
        browser.find_element(By.ID, "render").click()
        _wait(browser, 30, "the job page", lambda d: d.current_url.endswith(f"/jobs/{jid}"))
        wait_for(lambda: journal.get(jid).status in (JobStatus.DONE, JobStatus.FAILED), timeout=120)  # type: ignore[union-attr]
        assert journal.get(jid).status is JobStatus.DONE  # type: ignore[union-attr]
    voice = [s["facts"] for s in env.sidecar("abelhas")["stages"] if s["name"] == "voice"][-1]
    assert voice["voice_cache"] == {"made": 0, "from_job": 3, "from_state": 0}  # the preview spoke the edit
    # Three scenes spoken before the review, one more for the edited sentence, nothing else (the bounded cache).
    assert len(list((env.state / "cache" / "voice").glob("*.json"))) == 4
    scenes = yaml.safe_load((env.outbox / "abelhas.scenes.yaml").read_text(encoding="utf-8"))["scenes"]
    assert [s["narration"] for s in scenes] == ["As abelhas fazem mel.", "Obrigado por assistir.",
                                                "Elas vivem juntas em colmeias."]
    assert scenes[0]["asset"]["source"] == "library"
