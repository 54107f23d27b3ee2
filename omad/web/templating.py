"""Pages from Jinja2 templates, in the reader's language.

One Jinja2 environment per language (``templates/`` in this package, autoescape
on for every template, Jinja2's ``i18n`` extension with that language's gettext
catalogue installed, new-style so a translation's ``%(name)s`` values are
escaped too), each served through Starlette's :class:`Jinja2Templates`. Nothing
here builds HTML by hand: user-derived text reaches markup only through a
template's autoescape. Every page answer carries the strict CSP (no inline
script; the one vendored script) and ``Content-Language``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..controls import PRIORITY_NAMES, priority_label
from ..i18n import LANGUAGES, N_, Language, resolve, translations
from .files import VISUAL_SUFFIXES

__all__ = ["Pages", "STATUS_LABELS", "PRIORITY_LABELS", "duration", "money", "filesize", "clock"]

#: How a job or stage status reads on a page (the raw value stays in ``data-status`` for scripts and tests).
STATUS_LABELS = {"claiming": N_("claiming"), "queued": N_("queued"), "running": N_("running"),
                 "retry_wait": N_("waiting to retry"), "done": N_("done"), "failed": N_("failed"),
                 "duplicate": N_("duplicate"), "review": N_("waiting for review")}


#: How the named priorities read on a page.
PRIORITY_LABELS = {"low": N_("low"), "normal": N_("normal"), "high": N_("high")}


#: The queue's reasons for not starting (``Controls.blocked``, ``Windows.waiting_reason``), as they read on a page.
#: The controls say them in English for logs and the API; a page shows them in its own language.
_PAUSED = "paused"
_WINDOW = "waiting for the window at "
QUEUE_REASONS = {_PAUSED: N_("paused"), _WINDOW: N_("waiting for the window at %(when)s")}


def queue_reason(reason: str, gettext: Callable[[str], str]) -> str:
    """A lane's or a job's reason for waiting in ``gettext``'s language (an unknown one as it is)."""
    if reason == _PAUSED:
        return gettext(QUEUE_REASONS[_PAUSED])
    if reason.startswith(_WINDOW):
        return gettext(QUEUE_REASONS[_WINDOW]) % {"when": reason[len(_WINDOW):]}
    return reason


def clock(ts: float | None) -> str:
    """A time of today as the box's clock shows it (HH:MM)."""
    return time.strftime("%H:%M", time.localtime(ts or 0))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def money(amount: float) -> str:
    # A caption job costs fractions of a cent: show enough digits to compare routes.
    return f"{amount:.4f}" if amount >= 0.01 or amount == 0 else f"{amount:.6f}"


def filesize(size: float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _visual_link(outputs: list[dict[str, str]], default: str) -> str:
    """Where a poster links: the job's first picture or video output, else the poster itself."""
    return next((o["url"] for o in outputs if o["name"].lower().endswith(VISUAL_SUFFIXES)), default)


def _environment(lang: Language) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("omad.web", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
    )
    catalogue = translations(lang)
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    gettext = catalogue.gettext

    def status_label(status: str) -> str:
        known = STATUS_LABELS.get(str(status))
        return gettext(known) if known is not None else str(status)

    def job_link(job_id: str) -> Markup:
        return Markup('<a href="/jobs/{0}" id="retried-as">{1}</a>').format(
            job_id, gettext("job %(id)s") % {"id": job_id})

    def priority_text(value: int) -> str:
        name = priority_label(value)
        known = PRIORITY_LABELS.get(name)
        return gettext(known) if known is not None else name

    env.filters.update(duration=duration, money=money, filesize=filesize, visual_link=_visual_link, clock=clock,
                       reason=lambda r: queue_reason(str(r or ""), gettext),
                       secs=lambda v: "-" if v is None else f"{v:.1f} s")
    env.globals.update(status_label=status_label, job_link=job_link, lang=lang.value, priority_label=priority_text,
                       priorities=tuple(PRIORITY_NAMES.items()))
    return env


class Pages:
    """The page renderer of one server: a template environment per language, picked per request."""

    def __init__(self, setting: Language | str) -> None:
        self.setting = Language(setting)
        self._templates = {lang: Jinja2Templates(env=_environment(lang)) for lang in LANGUAGES}

    def language(self, request: Request | None) -> Language:
        """``web.language``, or with ``auto`` the best of the request's Accept-Language."""
        header = request.headers.get("accept-language") if request is not None else None
        return resolve(self.setting, header)

    def gettext(self, lang: Language) -> Callable[[str], str]:
        return translations(lang).gettext

    def render(self, name: str, lang: Language, **context: Any) -> str:
        """Template ``name`` in ``lang`` as a string (pages, and fragments for tests and tools)."""
        context.setdefault("nav", {})
        context.setdefault("refresh", 0)
        context.setdefault("now", time.time())
        return self._templates[lang].get_template(name).render(**context)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """A whole page in the request's language, with the page headers (CSP, no caching)."""
        from .responses import page_headers

        lang = self.language(request)
        context.setdefault("nav", {})
        context.setdefault("refresh", 0)
        context.setdefault("now", time.time())
        headers = {**page_headers(), "Content-Language": lang.value, "Vary": "Accept-Language"}
        return self._templates[lang].TemplateResponse(request, name, context, status_code=status, headers=headers)

