"""The queue's buttons in real headless Chromium: a logged-in session pauses, resumes and sets a priority."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Env, Running, wait_for
from test_web_browser import CHROMEDRIVER, CHROMIUM, _wait, make_browser  # noqa: F401

from omad.web.auth import TokenStore

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed (make test installs them)"),
]


def test_pause_resume_and_priority_buttons_with_a_session(make_env: Callable[..., Env],
                                                          make_browser: Callable[..., Any]) -> None:  # noqa: F811
    """GIVEN a server that requires a token, and a person logged in
    WHEN they press Pause on the status page
    THEN the queue is paused (the form carried its CSRF token) and the page offers Resume; a drop waits;
    on its job page they set its priority to high; Resume runs it."""
    env = make_env(web={"enabled": True, "port": 0, "require_token": True}, lanes={"cpu": 1})
    token = TokenStore(env.state / "tokens.json").add("ana")
    browser = make_browser(javascript=False)
    d = env.daemon()
    with Running(d, serve=True) as run:
        browser.get(run.server.url + "/")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        _wait(browser, 10, "the status page", lambda drv: drv.title == "omad status")
        browser.find_element(By.ID, "pause").click()
        _wait(browser, 10, "the Resume button", lambda drv: drv.find_elements(By.ID, "resume"))
        assert d.controls.paused and d.controls.state.by == "web:ana"
        (env.inbox / "espera.txt").write_text("Um texto que espera.")
        wait_for(lambda: bool(d.queue_reasons), 60)
        job_id = next(iter(d.queue_reasons))
        browser.get(run.server.url + f"/jobs/{job_id}")
        assert "paused" in browser.find_element(By.ID, "waiting-for").text
        Select(browser.find_element(By.ID, "priority")).select_by_value("high")
        browser.find_element(By.ID, "set-priority").click()
        _wait(browser, 10, "the new priority", lambda drv: drv.find_element(By.ID, "job-priority").text == "high")
        assert d.journal.get(job_id).priority == 10  # type: ignore[union-attr]
        browser.get(run.server.url + "/")
        browser.find_element(By.ID, "resume").click()
        _wait(browser, 10, "the Pause button", lambda drv: drv.find_elements(By.ID, "pause"))
        wait_for(lambda: (env.outbox / "espera.wav").exists(), 120)
