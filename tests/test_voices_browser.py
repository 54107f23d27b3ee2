"""The Voices page in real headless Chromium: a preview of each installed voice plays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import Env, Running
from piper_tiny import install_voice
from test_web_browser import CHROMEDRIVER, CHROMIUM, _screenshot, _wait, make_browser  # noqa: F401  (the fixture)

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
pytest.importorskip("piper", reason="the omad[piper] extra is not installed")
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed (make test installs them)"),
]


def test_the_voices_page_plays_a_preview_of_each_voice(make_env: Callable[..., Env],
                                                        make_browser: Callable[..., Any]) -> None:  # noqa: F811
    """GIVEN a Piper voice installed and the status page open
    WHEN a person follows the Voices link and plays the Piper voice's preview
    THEN the browser loads a sample synthesised on demand (audio.duration > 0) and it plays."""
    env = make_env(web={"enabled": True, "port": 0}, lanes={"cpu": 1})
    install_voice(env.config.models_dir(), "pt_BR-tiny-medium")
    browser = make_browser()
    with Running(env.daemon(), serve=True) as run:
        browser.get(run.server.url + "/")
        browser.find_element(By.ID, "nav-voices").click()
        _wait(browser, 30, "the Voices page", lambda d: d.title == "omad voices")
        rows = browser.find_elements(By.CSS_SELECTOR, "#voices tr.voice")
        assert [r.get_attribute("data-voice") for r in rows] == ["pt_BR-tiny-medium", "espeak:pt-br"]
        audio = rows[0].find_element(By.CSS_SELECTOR, "audio.preview")
        browser.execute_script("arguments[0].load(); arguments[0].play();", audio)
        duration = _wait(browser, 60, "the preview's metadata", lambda d: d.execute_script(
            "return arguments[0].readyState >= 1 && arguments[0].duration", audio))
        assert float(duration) > 1.0
        _wait(browser, 30, "the preview playing", lambda d: d.execute_script(
            "return arguments[0].currentTime > 0 || arguments[0].ended", audio))
        _screenshot(browser, "voices-page")
        assert browser.execute_script("return arguments[0].error", audio) is None
