"""Pages and messages in pt-BR and English: catalogues complete, languages negotiated, records in both.

The catalogue test extracts every string shown to people (``_()``, ``N_()``,
``gettext``/``ngettext`` in code, ``_()``/``{% trans %}`` in templates) with
Babel's own extractors, as ``make messages`` does, and fails on any that the
pt-BR catalogue lacks or leaves untranslated.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from conftest import Env, Running, make_video, wait_for

import omad
from omad.i18n import Language, catalogue_path, from_environment, negotiate, resolve, translations
from omad.web.templating import Pages

PACKAGE = Path(omad.__file__).parent
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
METHODS = [("omad/**.py", "python"), ("omad/web/templates/**.html", "jinja2")]


def _extracted() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(PACKAGE.parent), METHODS, options_map={"omad/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords=KEYWORDS,
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_string_shown_to_people_is_in_the_pt_br_catalogue() -> None:
    """GIVEN the code and the templates
    THEN every string marked for people has a non-empty pt-BR translation (plural forms included)."""
    extracted = _extracted()
    # The extractors found both the code and the pages.
    assert {"Create", "Retry", "What to do:", "Jobs", "no jobs yet."} <= extracted
    with (PACKAGE / catalogue_path(Language.PT_BR)).open("rb") as f:
        catalogue = read_po(f)
    translated = {(m.id[0] if isinstance(m.id, tuple) else m.id): m.string for m in catalogue if m.id}
    missing = sorted(s for s in extracted if s not in translated)
    assert not missing, f"strings missing from the pt-BR catalogue (run `make messages`): {missing}"
    empty = sorted(k for k, v in translated.items() if not (all(v) if isinstance(v, tuple) else v))
    assert not empty, f"untranslated in pt-BR: {empty}"
    stale = sorted(k for k in translated if k not in extracted)
    assert not stale, f"pt-BR entries no longer used anywhere: {stale}"


def test_translations_keep_their_placeholders() -> None:
    """A translation that loses or renames a %(name)s would raise when shown: none does."""
    with (PACKAGE / catalogue_path(Language.PT_BR)).open("rb") as f:
        catalogue = read_po(f)
    import re

    names = re.compile(r"%\((\w+)\)[sd]")
    for m in catalogue:
        if not m.id:
            continue
        source = m.id[0] if isinstance(m.id, tuple) else m.id
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strings:
            assert set(names.findall(s)) == set(names.findall(source)), (source, s)


@pytest.mark.parametrize(("header", "expected"), [
    ("pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7", Language.PT_BR), ("en-US,en;q=0.9,pt-BR;q=0.8", Language.EN),
    ("fr-FR, pt;q=0.5", Language.PT_BR), ("de", Language.EN), ("", Language.EN), (None, Language.EN),
    ("pt-BR;q=0, en;q=0.1", Language.EN), ("en;q=0.2, pt-PT;q=0.9", Language.PT_BR), ("pt_BR;q=abc, en", Language.EN),
])
def test_accept_language_picks_the_best_of_the_two(header: str | None, expected: Language) -> None:
    assert negotiate(header) == expected


def test_the_terminal_follows_lang_and_a_setting_wins() -> None:
    assert from_environment({"LANG": "pt_BR.UTF-8"}) == Language.PT_BR
    assert from_environment({"LC_ALL": "C", "LANG": "pt_BR.UTF-8"}) == Language.EN
    assert from_environment({}) == Language.EN
    assert resolve("en", "pt-BR") == Language.EN and resolve("pt-BR", "en") == Language.PT_BR
    assert resolve("auto", "pt-BR,pt;q=0.9") == Language.PT_BR


def test_pages_escape_user_text_in_both_languages() -> None:
    """A file name with markup stays text in every language, also inside a translated sentence."""
    pages = Pages("auto")
    for lang in (Language.EN, Language.PT_BR):
        html = pages.render("submitted.html", lang, sources=["<script>alert(1)</script>.mp4"])
        assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;.mp4" in html
    assert '<html lang="pt-BR">' in pages.render("login.html", Language.PT_BR, next_path="/", error=None,
                                                   required=True)


def test_omad_status_speaks_the_configured_language(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN no journal yet
    THEN `omad status` says so in pt-BR with web.language: pt-BR, and in English under LANG=en_US with auto."""
    from omad.cli import main

    for lang, expected in (("pt-BR", "nenhum trabalho ainda"), ("auto", "no jobs yet")):
        cfg = tmp_path / f"{lang}.yaml"
        cfg.write_text(f"inbox: {tmp_path / 'in'}\noutbox: {tmp_path / 'out'}\nstate_dir: {tmp_path / 'state'}\n"
                       f"web:\n  language: {lang}\n  port: 1\n")
        monkeypatch.setenv("LANG", "en_US.UTF-8")
        assert main(["status", "--config", str(cfg)]) == 0
        assert expected in capsys.readouterr().out


def test_a_failed_job_record_keeps_english_and_adds_portuguese(make_env: Callable[..., Env]) -> None:
    """GIVEN web.language: pt-BR and a caption drop whose SRT is broken
    THEN error.json keeps the English message and advice, and adds both in Portuguese."""
    env = make_env(web={"language": "pt-BR"})
    make_video(env.inbox / "ruim.mp4", seconds=0.5, size="160x90")
    (env.inbox / "ruim.srt").write_text("1\nbroken\n", encoding="utf-8")
    with Running(env.daemon()):
        wait_for(lambda: (env.outbox / "failed" / "ruim" / "error.json").is_file(), timeout=60)
    record = json.loads((env.outbox / "failed" / "ruim" / "error.json").read_text(encoding="utf-8"))
    assert record["language"] == "pt-BR"
    assert record["message"] in record["message_local"] and record["message_local"].startswith("O próprio envio")
    assert record["what_to_do"].startswith("Fix the problem")
    assert record["what_to_do_local"].startswith("Corrija o problema") and record["job_id"] in record[
        "what_to_do_local"]
    assert translations("pt-BR").gettext("Retry") == "Tentar de novo"


def test_every_page_answers_in_the_asked_language(make_env: Callable[..., Env]) -> None:
    """GIVEN a served daemon with web.language: auto
    THEN each page answers in Portuguese to Accept-Language pt-BR and in English to en (or to none),
    with Content-Language saying which, and the strict CSP on every one."""
    import httpx

    env = make_env(web={"enabled": True, "port": 0})
    with Running(env.daemon(), serve=True) as run, httpx.Client(base_url=run.server.url, timeout=30) as c:
        for path, pt, en in (("/", "Trabalhos", "Jobs"), ("/create", "Enviar", "Submit"),
                             ("/analytics?days=3", "Por rota", "By route"), ("/login", "Entrar no omad", "Log in")):
            for header, lang, word in (("pt-BR,pt;q=0.9", "pt-BR", pt), ("en-US", "en", en), (None, "en", en)):
                r = c.get(path, headers={"Accept-Language": header} if header else {})
                assert r.status_code == 200, (path, r.text)
                assert r.headers["content-language"] == lang and word in r.text, (path, header)
                assert "script-src 'self'" in r.headers["content-security-policy"]
                assert "<script>" not in r.text


def test_the_queue_s_reasons_read_in_the_page_s_language() -> None:
    """GIVEN a lane outside its window (the reason the controls really give) and a paused queue
    THEN the status page's queue part says both in Portuguese, and in English as the controls wrote them."""
    import datetime as dt

    from omad.windows import Windows

    reason = Windows(["00:00-07:00"]).waiting_reason(dt.datetime(2026, 12, 7, 14, 0))
    assert reason == "waiting for the window at 00:00"
    view = {"queue": {"paused": True, "paused_now": False, "paused_since": 0, "paused_by": "web:maria",
                      "lanes": {"gpu": {"windows": ["00:00-07:00"], "open": False, "reason": reason}},
                      "waiting": [{"id": "abc", "reason": "paused"}],
                      "watch": {"mode": "inotify", "requested": "auto", "reason": "a local disk"}}}
    pages = Pages("auto")
    pt = pages.render("_queue.html", Language.PT_BR, view=view, nav={"csrf": "t"})
    assert "aguardando a janela das 00:00" in pt and "fila pausada" in pt and "por web:maria" in pt
    assert 'id="resume"' in pt and "Retomar" in pt
    en = pages.render("_queue.html", Language.EN, view=view, nav={"csrf": "t"})
    assert reason in en and ">abc</a>: paused<" in en and "Resume" in en
