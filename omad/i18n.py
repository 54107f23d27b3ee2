"""The languages people read omad in: English (the source) and Brazilian Portuguese.

Strings shown to people are written in English in the code and the templates,
marked with ``_()`` (or ``{% trans %}``), and looked up in a gettext catalogue.
The catalogues' sources are the ``.po`` files under ``omad/locale/<lang>/
LC_MESSAGES/omad.po``; they are compiled in memory with Babel on first use, so a
plain ``pip install -e .`` needs no build step and a ``.mo`` can never be stale.
English needs no catalogue: a missing translation falls back to the English
source text, never to an empty string.

``web.language`` picks the language: ``auto`` follows the browser's
``Accept-Language`` on pages and ``$LANG`` (``$LC_ALL``, ``$LC_MESSAGES``) in
``omad status``. Logs, journal rows, metrics and the ``message`` of error
records stay in English for machines; records add the translated text beside it.
"""

from __future__ import annotations

import gettext
import io
import os
import threading
from enum import StrEnum
from importlib.resources import files as package_files

__all__ = ["Language", "LANGUAGES", "translations", "negotiate", "from_environment", "resolve", "catalogue_path",
           "N_"]

DOMAIN = "omad"


class Language(StrEnum):
    """The ``web.language`` setting."""

    #: pages follow the browser's Accept-Language; ``omad status`` follows $LANG
    AUTO = "auto"
    #: Brazilian Portuguese
    PT_BR = "pt-BR"
    #: English (the source language)
    EN = "en"


#: The languages omad speaks, as BCP 47 tags, the source language first.
LANGUAGES: tuple[Language, ...] = (Language.EN, Language.PT_BR)

_lock = threading.Lock()
_cache: dict[Language, gettext.NullTranslations] = {}


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue where it is defined; it is translated where it is shown."""
    return message


def catalogue_path(lang: Language) -> str:
    """The ``.po`` source of ``lang``'s catalogue, relative to the package (``locale/pt_BR/...``)."""
    return f"locale/{lang.value.replace('-', '_')}/LC_MESSAGES/{DOMAIN}.po"


def _compile(lang: Language) -> gettext.NullTranslations:
    # babel (~25 ms to import) only when a catalogue is first compiled, not at every start
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    source = package_files("omad").joinpath(catalogue_path(lang))
    with source.open("rb") as f:
        catalog = read_po(f, locale=lang.value.replace("-", "_"), domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def translations(lang: Language | str) -> gettext.NullTranslations:
    """The catalogue of ``lang`` (compiled once per process); English and ``auto`` get the source text."""
    lang = Language(lang)
    if lang in (Language.EN, Language.AUTO):
        return gettext.NullTranslations()
    with _lock:
        found = _cache.get(lang)
        if found is None:
            found = _cache[lang] = _compile(lang)
        return found


def _match(tag: str) -> Language | None:
    tag = tag.strip().lower().replace("_", "-").split(".", 1)[0].split("@", 1)[0]
    if tag.startswith("pt"):
        return Language.PT_BR  # pt-PT readers get Brazilian Portuguese rather than English
    if tag.startswith("en"):
        return Language.EN
    return None


def negotiate(accept_language: str | None) -> Language:
    """The best of omad's languages for an ``Accept-Language`` header; English when none fits."""
    ranked: list[tuple[float, int, Language]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        found = _match(tag)
        if found is not None and q > 0:
            ranked.append((-q, i, found))
    return min(ranked)[2] if ranked else Language.EN


def from_environment(environ: dict[str, str] | None = None) -> Language:
    """The language of the terminal: $LC_ALL, then $LC_MESSAGES, then $LANG (as gettext reads them)."""
    env = os.environ if environ is None else environ
    for key in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(key)
        if value:
            return _match(value) or Language.EN
    return Language.EN


def resolve(setting: Language | str, accept_language: str | None = None, *, terminal: bool = False) -> Language:
    """``web.language`` made concrete: a page's language (``accept_language``) or the terminal's."""
    setting = Language(setting)
    if setting != Language.AUTO:
        return setting
    return from_environment() if terminal else negotiate(accept_language)
