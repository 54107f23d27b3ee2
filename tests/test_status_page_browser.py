"""The status page in a real browser: a running job's progress bar, then its poster.

Headless Debian Chromium driven by Selenium through Debian's chromedriver; nothing
is downloaded (no Selenium Manager, no browser download) and the page loads no
script, so what the test sees is what a person with JavaScript off sees.
"""

from __future__ import annotations

import shutil
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, make_video, write_srt

import omad.daemon as daemon_mod
from omad.routes import stages_for
from omad.stage import StageContext, StageResult
from omad.web import StatusServer, start_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed (make test installs them)"),
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as e:
        pytest.fail(f"headless chromium did not start: {e.msg}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class _Paced:
    """Holds the job in its first stage for a few seconds, reporting progress like an encoder does."""

    name = "paced"

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def lane_for(self, ctx: StageContext) -> str:
        return "cpu"

    def run(self, ctx: StageContext) -> StageResult:
        step = 0
        while not self.release.wait(0.25) and not ctx.cancel.is_set() and step < 240:
            step += 1
            ctx.progress(min(0.9, step / 40))
        return StageResult()


def _wait(driver: Any, timeout: float, what: str, check: Callable[[Any], Any]) -> Any:
    # The page reloads itself every 2 s: an element found just before a reload goes stale.
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,),
                         ).until(check, message=f"the status page never showed {what}")


def test_status_page_shows_progress_while_running_then_the_poster(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    """GIVEN a caption drop held in a paced first stage, then burned for real
    WHEN a person watches the status page
    THEN they see the job running with a progress bar, and once it is done its poster
    (a real frame of the result) and a link that serves the video."""
    release = threading.Event()
    monkeypatch.setattr(daemon_mod, "stages_for", lambda route: [_Paced(release), *stages_for(route)])
    env = make_env(web={"enabled": True, "port": 0}, lanes={"cpu": 1})
    make_video(env.root / "staging" / "aula.mp4", seconds=1.0, size="320x180")
    write_srt(env.root / "staging" / "aula.srt")
    d = env.daemon()
    server: StatusServer = start_server(d)
    loop = threading.Thread(target=d.run, kwargs={"tick_seconds": 0.1}, daemon=True)
    loop.start()
    try:
        browser.get(server.url + "/")
        assert browser.title == "omad status"
        assert browser.find_elements(By.CSS_SELECTOR, "#lanes tr.lane[data-lane='gpu']")
        for p in sorted((env.root / "staging").iterdir()):
            p.rename(env.inbox / p.name)

        def running_bar(drv: Any) -> Any:
            rows = drv.find_elements(By.CSS_SELECTOR, "tr.job[data-status='running']")
            if not rows:
                return False
            bar = rows[0].find_element(By.CSS_SELECTOR, "progress.job-progress")
            value = float(bar.get_attribute("value"))
            return (value, bar.get_attribute("max"), rows[0].text) if value > 0 else False

        value, maximum, text = _wait(browser, 30, "a running job with a moving progress bar", running_bar)
        assert 0 < value < 100 and maximum == "100"
        assert "aula" in text and "caption" in text and "paced" in text
        release.set()

        def poster(drv: Any) -> Any:
            imgs = drv.find_elements(By.CSS_SELECTOR, "tr.job[data-status='done'] img.poster")
            if not imgs:
                return False
            loaded = drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth", imgs[0])
            return imgs[0] if loaded else False

        _wait(browser, 60, "the finished job's poster, by its own refresh", poster)
        browser.get(server.url + "/?refresh=0")  # hold the page still for a closer look
        img = _wait(browser, 10, "the poster on a still page", poster)
        assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [
            320, 180]
        done_row = browser.find_element(By.CSS_SELECTOR, "tr.job[data-status='done']")
        assert float(done_row.find_element(By.CSS_SELECTOR, "progress.job-progress").get_attribute("value")) == 100
        link = done_row.find_element(By.CSS_SELECTOR, "a.output[href$='.mp4']")
        assert link.get_attribute("href") == server.url + "/outbox/aula.mp4"
        # The link serves the published video itself.
        with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as resp:
            assert resp.headers["Content-Type"] == "video/mp4"
            assert resp.read() == (env.outbox / "aula.mp4").read_bytes()
    finally:
        release.set()
        d.stop_event.set()
        d.wake.set()
        loop.join(timeout=30)
        server.shutdown()
        d.journal.close()
