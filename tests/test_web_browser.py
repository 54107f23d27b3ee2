"""The web UI in real headless Chromium: Create, job pages, login and logout, analytics.

Debian's chromium driven by Selenium through Debian's chromedriver; nothing is
downloaded. Uploads go through the Create page into the inbox and the normal
intake, and real ffmpeg and espeak-ng make the results the job page then plays.
With ``OMAD_SCREENSHOT_DIR`` set, the pages are saved there as PNG (the README's
pictures come from this).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, Running, make_video, write_srt

from omad.web.auth import TokenStore

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed (make test installs them)"),
]


@pytest.fixture
def make_browser(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    drivers: list[Any] = []

    def _make(javascript: bool = True) -> Any:
        assert CHROMIUM is not None and CHROMEDRIVER is not None
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        profile = tmp_path / f"chromium-{len(drivers)}"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required",
                     f"--user-data-dir={profile}"):
            options.add_argument(flag)
        if not javascript:
            options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
        try:
            driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        except WebDriverException as e:
            pytest.fail(f"headless chromium did not start: {e.msg}")
        driver.set_page_load_timeout(60)
        drivers.append(driver)
        return driver

    try:
        yield _make
    finally:
        for d in drivers:
            d.quit()


def _wait(driver: Any, timeout: float, what: str, check: Callable[[Any], Any]) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,),
                         ).until(check, message=f"the page never showed {what}")


def _screenshot(driver: Any, name: str) -> None:
    where = os.environ.get("OMAD_SCREENSHOT_DIR")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(where) / f"{name}.png"))


def _status(drv: Any) -> Any:
    found = drv.find_elements(By.ID, "job-status")
    return found[0].text if found else False


def _served(make_env: Callable[..., Env], **web: Any) -> Env:
    return make_env(web={"enabled": True, "port": 0, "submit_wait_seconds": 20, **web}, lanes={"cpu": 1})


def test_upload_a_video_and_its_srt_on_the_create_page_then_play_the_result(
    make_env: Callable[..., Env], make_browser: Callable[..., Any]
) -> None:
    """GIVEN the Create page
    WHEN a person chooses a video and its SRT and submits
    THEN an upload progress bar runs, the browser lands on the job's page, which turns
    'done' by itself and plays the captioned video, with the stage timeline and facts."""
    env = _served(make_env)
    video = make_video(env.root / "files" / "aula.mp4", seconds=1.0, size="320x180")
    srt = write_srt(env.root / "files" / "aula.srt")
    browser = make_browser()
    with Running(env.daemon(), serve=True) as run:
        browser.get(run.server.url + "/create")
        assert browser.title == "omad create"
        browser.find_element(By.ID, "files").send_keys(f"{video}\n{srt}")
        assert browser.find_element(By.CSS_SELECTOR, "#dropzone .chosen").text == "aula.mp4, aula.srt"
        browser.find_element(By.ID, "submit").click()
        _wait(browser, 60, "the job page", lambda d: "/jobs/" in d.current_url)
        _wait(browser, 60, "the job done", lambda d: _status(d) == "done")
        player = _wait(browser, 30, "a video player", lambda d: d.find_elements(By.CSS_SELECTOR, "video.player"))[0]
        assert player.get_attribute("src") == run.server.url + "/outbox/aula.mp4"
        duration = _wait(browser, 30, "the video's metadata", lambda d: d.execute_script(
            "return arguments[0].readyState >= 1 && arguments[0].duration", player))
        assert 0.8 < float(duration) < 1.3
        stage = browser.find_element(By.CSS_SELECTOR, "#job-stages li.stage[data-stage='caption']")
        assert "done" in stage.text and " s" in stage.find_element(By.CLASS_NAME, "seconds").text
        assert "caption" in browser.find_element(By.ID, "job-facts").text
        assert "stage_done" in browser.find_element(By.ID, "job-log").text
        _screenshot(browser, "job-page")
    assert (env.outbox / "aula.mp4").is_file() and not list(env.inbox.iterdir())


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_narrate_brief_written_in_the_form(make_env: Callable[..., Env], make_browser: Callable[..., Any],
                                            javascript: bool) -> None:
    """GIVEN the Create page, with JavaScript on and off
    WHEN a person picks 'narrate', types a text and submits
    THEN the job page shows the narration done (by live updates, or by its own refresh
    without JavaScript) with an audio player for the WAV."""
    env = _served(make_env)
    browser = make_browser(javascript=javascript)
    with Running(env.daemon(), serve=True) as run:
        browser.get(run.server.url + "/create")
        Select(browser.find_element(By.ID, "kind")).select_by_value("narrate")
        browser.find_element(By.ID, "name").send_keys("saudacao")
        browser.find_element(By.ID, "text").send_keys("Bom dia! Hoje são 3 de maio.")
        Select(browser.find_element(By.ID, "voice")).select_by_value("espeak:pt-br")
        if javascript:
            _screenshot(browser, "create-page")
        browser.find_element(By.ID, "submit").click()
        _wait(browser, 60, "the job page", lambda d: "/jobs/" in d.current_url)
        _wait(browser, 90, "the narration done", lambda d: _status(d) == "done")
        audio = _wait(browser, 30, "an audio player", lambda d: d.find_elements(By.CSS_SELECTOR, "audio.player"))
        assert audio[0].get_attribute("src") == run.server.url + "/outbox/saudacao.wav"
    brief = env.sidecar("saudacao")
    assert brief["route"] == "narrate" and brief["options"]["text"] == "Bom dia! Hoje são 3 de maio."
    assert brief["options"]["voice"] == {"engine": "espeak", "name": "pt-br"}


def test_log_in_and_out(make_env: Callable[..., Env], make_browser: Callable[..., Any]) -> None:
    """GIVEN a server that requires a token
    THEN a browser is sent to the login page, a wrong token is refused, the right one opens
    the status page (an HttpOnly, SameSite=Strict cookie), and logging out closes it again."""
    env = _served(make_env, require_token=True)
    token = TokenStore(env.state / "tokens.json").add("maria")
    browser = make_browser()
    with Running(env.daemon(), serve=True) as run:
        browser.get(run.server.url + "/")
        assert browser.current_url == run.server.url + "/login?next=/"
        browser.find_element(By.ID, "token").send_keys("omad_wrong")
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        assert "not valid" in _wait(browser, 10, "the refusal", lambda d: d.find_element(By.ID, "login-error")).text
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        _wait(browser, 10, "the status page", lambda d: d.title == "omad status")
        assert "signed in as maria" in browser.find_element(By.TAG_NAME, "nav").text
        cookie = browser.get_cookie("omad_session")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert browser.execute_script("return document.cookie") == ""
        browser.get(run.server.url + "/create")
        assert browser.title == "omad create"
        browser.find_element(By.ID, "logout").click()
        _wait(browser, 10, "the login page", lambda d: d.title == "omad login")
        browser.get(run.server.url + "/")
        assert browser.title == "omad login"


def _seed(journal: Any, now: float) -> None:
    """Three days of history through the journal's own API: (days ago, route, status, seconds, cpu s, gpu s)."""
    history = [(2, "caption", "done", 10, 60, 0), (2, "caption", "done", 20, 60, 0), (2, "caption", "done", 30, 60, 0),
               (2, "caption", "failed", 5, 5, 0), (1, "narrate", "done", 4, 4, 0), (1, "narrate", "done", 6, 6, 0),
               (1, "img2vid", "failed", 3, 3, 0), (0, "caption", "done", 40, 3600, 1800)]
    for i, (ago, route, status, seconds, cpu, gpu) in enumerate(history):
        created = now - ago * 86400
        job = journal.create(cid=f"{i:016x}", route=route, name=f"job{i}", inputs=[], options={},
                             dropped_at=created)
        journal.update(job.id, status=status, created_at=created, started_at=created + 1,
                       finished_at=created + 1 + seconds, cpu_seconds=cpu, gpu_seconds=gpu)


def test_analytics_charts_are_drawn_with_the_right_counts(make_env: Callable[..., Env],
                                                           make_browser: Callable[..., Any]) -> None:
    """GIVEN three days of jobs in the journal
    THEN the analytics page draws jobs per day by outcome, the failure rate, p50/p95 per route
    and lane seconds per day as SVG bars whose figures match the journal."""
    import time as _time

    env = _served(make_env)
    now = _time.time()
    browser = make_browser()
    daemon = env.daemon()
    _seed(daemon.journal, now)  # before the loop runs: a job seeded while it runs could be started as queued
    with Running(daemon, serve=True) as run:
        browser.get(run.server.url + "/analytics?days=7")
        assert browser.title == "omad analytics"

        def bars(chart: str) -> dict[tuple[str, str], float]:
            found = browser.find_elements(By.CSS_SELECTOR, f"svg#{chart} rect.bar")
            return {(b.get_attribute("data-label"), b.get_attribute("data-key")): float(b.get_attribute("data-value"))
                    for b in found}

        day = [_time.strftime("%Y-%m-%d", _time.gmtime(now - ago * 86400)) for ago in (2, 1, 0)]
        assert bars("jobs-per-day") == {(day[0], "done"): 3, (day[0], "failed"): 1, (day[1], "done"): 2,
                                        (day[1], "failed"): 1, (day[2], "done"): 1}
        assert bars("jobs-per-day-by-route") == {(day[0], "caption"): 4, (day[1], "img2vid"): 1,
                                                 (day[1], "narrate"): 2, (day[2], "caption"): 1}
        assert bars("failure-rate") == {(day[0], "rate"): 25.0, (day[1], "rate"): 33.33, (day[2], "rate"): 0.0}
        assert bars("duration-per-route") == {("caption", "p50"): 25.0, ("caption", "p95"): 38.5,
                                              ("narrate", "p50"): 5.0, ("narrate", "p95"): 5.9}
        lanes = bars("lane-seconds-per-day")
        assert lanes[(day[0], "cpu")] == 185 and lanes[(day[2], "cpu")] == 3600 and lanes[(day[2], "gpu")] == 1800
        assert bars("cost-per-day")[(day[2], "cost")] == 0.3  # 1 cpu-hour at 0.05 + half a gpu-hour at 0.50
        assert "8 jobs, 6 done, 2 failed, failure rate 25.0 %" in browser.find_element(By.ID, "totals").text
        # Really drawn, not just in the markup: on screen, three done jobs stand three times as tall as one.
        heights = browser.execute_script(
            "return Array.from(document.querySelectorAll('svg#jobs-per-day rect.bar'))"
            ".map(r => [r.dataset.label, r.dataset.key, r.getBoundingClientRect().height])")
        drawn = {(label, key): h for label, key, h in heights}
        assert drawn[(day[0], "done")] == pytest.approx(3 * drawn[(day[2], "done")], rel=0.02)
        assert drawn[(day[2], "done")] > 20
        _screenshot(browser, "analytics-page")


def test_a_failed_job_page_says_what_to_do_and_its_retry_button_runs_it_again(
    make_env: Callable[..., Env], make_browser: Callable[..., Any]
) -> None:
    """GIVEN a caption job that failed on a broken SRT
    THEN its page shows the error and what to do; once the SRT is fixed in outbox/failed/, the
    Retry button sends the inputs back and the page links to the new job, which is done."""
    import httpx

    env = _served(make_env)
    video = make_video(env.root / "files" / "ruim.mp4", seconds=0.6, size="160x90").read_bytes()
    browser = make_browser()
    with Running(env.daemon(), serve=True) as run:
        with httpx.Client(base_url=run.server.url, timeout=60) as c:
            job_id = c.post("/api/jobs", files=[("files", ("ruim.mp4", video, "video/mp4")),
                                                ("files", ("ruim.srt", b"1\nbroken\n", "text/plain"))]).json()["id"]
        browser.get(f"{run.server.url}/jobs/{job_id}")
        _wait(browser, 60, "the job failed", lambda d: _status(d) == "failed")
        error = browser.find_element(By.ID, "job-error")
        assert "ruim.srt" in error.find_element(By.CLASS_NAME, "message").text
        assert "omad retry" in error.find_element(By.CLASS_NAME, "what-to-do").text
        write_srt(env.outbox / "failed" / "ruim" / "ruim.srt")
        browser.find_element(By.ID, "retry").click()
        link = _wait(browser, 60, "a link to the retried job", lambda d: d.find_elements(By.ID, "retried-as"))[0]
        link.click()
        _wait(browser, 60, "the retried job done", lambda d: _status(d) == "done")
    assert (env.outbox / "ruim.mp4").is_file()


def test_drag_and_drop_a_file_onto_the_create_page_with_a_progress_bar(
    make_env: Callable[..., Env], make_browser: Callable[..., Any]
) -> None:
    """GIVEN the Create page
    WHEN a person drops a .txt onto the drop zone and submits
    THEN the zone names it, the upload progress bar shows and reaches 100 %, and the job page
    shows the narration done."""
    env = _served(make_env)
    browser = make_browser()
    with Running(env.daemon(), serve=True) as run:
        browser.get(run.server.url + "/create")
        # What a drop delivers: a DataTransfer holding the file, dispatched as drag events on the zone.
        browser.execute_script("""
            const dt = new DataTransfer();
            dt.items.add(new File(["Olá! Esta fala veio arrastada."], "arrastada.txt", {type: "text/plain"}));
            const zone = document.getElementById("dropzone");
            for (const type of ["dragenter", "dragover", "drop"]) {
              zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
            }
            // Note the bar at each progress event; sessionStorage outlives the move to the job page.
            const send = XMLHttpRequest.prototype.send;
            XMLHttpRequest.prototype.send = function (body) {
              this.upload.addEventListener("progress", () => {
                const bar = document.getElementById("upload-progress");
                sessionStorage.setItem("bar", JSON.stringify([bar.hidden, bar.value]));
              });
              return send.call(this, body);
            };
        """)
        assert browser.find_element(By.CSS_SELECTOR, "#dropzone .chosen").text == "arrastada.txt"
        browser.find_element(By.ID, "submit").click()
        _wait(browser, 60, "the job page", lambda d: "/jobs/" in d.current_url)
        assert browser.execute_script("return JSON.parse(sessionStorage.getItem('bar'))") == [False, 100]
        _wait(browser, 90, "the narration done", lambda d: _status(d) == "done")
    assert (env.outbox / "arrastada.wav").is_file()
