"""The pages in Portuguese and in English, in real headless Chromium.

The browser asks for a language (Chromium's ``--lang`` sets its Accept-Language)
or the server is told one (``web.language``); the status page, the Create form
and a finished job's page then speak it, while ids, data attributes and the
API stay the same in both.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env, Running

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian's chromium and chromium-driver are not installed (make test installs them)"),
]


@pytest.fixture
def make_browser(tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    drivers: list[Any] = []

    def _make(accept_language: str) -> Any:
        assert CHROMIUM is not None and CHROMEDRIVER is not None
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000", f"--lang={accept_language.split(',')[0]}",
                     f"--user-data-dir={tmp_path / f'chromium-{len(drivers)}'}"):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {"intl.accept_languages": accept_language})
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


def _narrated(run: Running, name: str) -> str:
    with httpx.Client(base_url=run.server.url, timeout=60) as c:
        r = c.post("/api/jobs", json={"kind": "narrate", "text": "Bom dia! São 10 horas.", "name": name})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


# What each language shows: (status page, Create form, job page) phrases.
SEEN = {
    "pt-BR": {"title": "omad: situação", "nav": ["Situação", "Criar", "Análises"], "h2": "Trabalhos",
              "create_title": "omad: criar", "submit": "Enviar", "kind": "deixar o omad decidir pelos arquivos",
              "status": "concluído", "facts": "Detalhes", "inputs": "Entradas"},
    "en": {"title": "omad status", "nav": ["Status", "Create", "Analytics"], "h2": "Jobs",
           "create_title": "omad create", "submit": "Submit", "kind": "let omad decide from the files",
           "status": "done", "facts": "Facts", "inputs": "Inputs"},
}


@pytest.mark.parametrize(("setting", "accept", "expected"), [
    ("auto", "pt-BR,pt", "pt-BR"), ("pt-BR", "en-US,en", "pt-BR"), ("auto", "en-US,en", "en"),
], ids=["accept-language-pt-BR", "web.language-pt-BR", "english"])
def test_status_create_and_job_pages_speak_the_language(make_env: Callable[..., Env],
                                                        make_browser: Callable[[str], Any],
                                                        setting: str, accept: str, expected: str) -> None:
    """GIVEN a browser asking for ``accept`` and a server with web.language ``setting``
    WHEN a person opens the status page, the Create form and a finished narration's page
    THEN every one of them is in ``expected``, with the job's inputs listed with their sizes and
    its facts as labelled values, never raw JSON."""
    seen = SEEN[expected]
    env = make_env(web={"enabled": True, "port": 0, "submit_wait_seconds": 20, "language": setting},
                   lanes={"cpu": 1})
    browser = make_browser(accept)
    with Running(env.daemon(), serve=True) as run:
        job_id = _narrated(run, "bomdia")
        browser.get(run.server.url + "/?refresh=0")
        assert browser.title == seen["title"]
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == expected
        nav = browser.find_element(By.TAG_NAME, "nav").text
        assert all(word in nav for word in seen["nav"]), nav
        assert seen["h2"] in [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        browser.get(run.server.url + "/create")
        assert browser.title == seen["create_title"]
        assert browser.find_element(By.ID, "submit").text == seen["submit"]
        assert browser.find_element(By.CSS_SELECTOR, "#kind option[value='']").text == seen["kind"]
        browser.get(f"{run.server.url}/jobs/{job_id}")
        _wait(browser, 90, "the narration done",
              lambda d: d.find_element(By.ID, "job-head").get_attribute("data-status") == "done")
        _wait(browser, 30, "the facts", lambda d: d.find_elements(By.CSS_SELECTOR, "#job-facts dl.facts"))
        assert browser.find_element(By.ID, "job-status").text == seen["status"]
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        assert seen["facts"] in headings and seen["inputs"] in headings
        facts = browser.find_element(By.ID, "job-facts").text
        assert "{" not in facts and "narrate" in facts
        inputs = browser.find_element(By.ID, "job-inputs").text
        assert "bomdia.yaml" in inputs and " B" in inputs
