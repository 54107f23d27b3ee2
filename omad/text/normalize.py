"""Text normalisation for speech: what a TTS engine should say for what was written.

``normalize_ptbr`` turns written Brazilian Portuguese into words a TTS engine
reads well: numbers, ordinals, currency, percentages, dates, times, units,
abbreviations, URLs and e-mails are spelled out; emoji and stray symbols are
removed. ``strip_symbols`` is the language-neutral part (emoji, symbols,
whitespace). ``split_sentences`` cuts *written* text into chunks at sentence
boundaries, aware of abbreviations, so each chunk can be normalised and
spoken on its own while captions keep the original wording.

This module is pure text in, text out: it never raises for empty results
(callers decide whether nothing-to-say is an error), never touches files and
never calls an engine.
"""

from __future__ import annotations

import re
import unicodedata

from .abbreviations import expand_abbreviations
from .ptbr_numbers import digits_words, number_to_words, ordinal_to_words
from .quantities import (
    expand_currency,
    expand_dates,
    expand_feminine_counts,
    expand_number_shapes,
    expand_numbers,
    expand_operators,
    expand_ordinals,
    expand_percent,
    expand_times,
    expand_units,
)
from .sentences import pack, split_sentences

__all__ = [
    "normalize_ptbr",
    "normalize_for_speech",
    "strip_symbols",
    "split_sentences",
    "number_to_words",
    "ordinal_to_words",
    "has_speech",
    "pack",
]

# ---------------------------------------------------------------------------
# Symbols
# ---------------------------------------------------------------------------

# Characters kept through symbol removal: the later passes give them words.
_KEEP_SYMBOLS = set("$€£°%&+=/@#-–—'\"()[].,;:!?…ºª")
_DROP_CATEGORIES = {"So", "Sk", "Cs", "Co", "Cn", "Me", "Cf"}


def _drop_symbols(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch in _KEEP_SYMBOLS:
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES or ch in "\ufe0e\ufe0f":
            # Emoji sequences leave spaces behind so that "oi🙂tudo" stays two words.
            out.append(" ")
        elif cat.startswith("Z") or ch in "\t\r\n\f\v" or cat == "Cc":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?…)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"^[\s,.;:]+", "", text)
    return text.strip()


def strip_symbols(text: str) -> str:
    """Language-neutral cleanup: emoji and other symbols removed, whitespace collapsed.

    Everything an engine may know how to read in its own language (digits,
    currency signs, ``@``, ``%``) is kept.
    """
    text = unicodedata.normalize("NFC", text)
    text = _drop_symbols(text)
    text = re.sub(r"[*_~|^`<>{}\\#•·]", " ", text)
    return _tidy(text)


_SPEAKABLE_PUNCT = set(".,;:!?…'()-")


def _keep_speakable(text: str) -> str:
    # After expansion, anything that is not a letter, a digit or prosody punctuation has no spoken form.
    return "".join(
        ch if ch in _SPEAKABLE_PUNCT or ch.isspace() or unicodedata.category(ch)[0] == "L" or ch.isdecimal() else " "
        for ch in text
    )


def has_speech(text: str) -> bool:
    """True when ``text`` holds something an engine can say (a letter or a digit)."""
    return any(ch.isalnum() for ch in text)


# ---------------------------------------------------------------------------
# URLs and e-mails
# ---------------------------------------------------------------------------

_TLDS = r"com|org|net|br|gov|edu|io|dev|app|info|pt|tv|me|ai|co|us|uk|de|fr|es|it|ly|xyz|online|site|tech"
_URL_RE = re.compile(
    rf"(?:https?://|www\.)[^\s<>\"']+|(?<![\w.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:{_TLDS})\b(?:/[^\s<>\"']*)?",
    re.IGNORECASE,
)
# The look-behinds make each pattern start only at the beginning of a run, keeping long runs linear.
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_TRAILING_PUNCT = ".,;:!?)]}'\""


def _spell_chars(part: str, *, hyphen: str = "hífen") -> str:
    out: list[str] = []
    for piece in re.split(r"(\d+|[._+-])", part):
        if not piece:
            continue
        if piece.isdigit():
            out.append(digits_words(piece))
        elif piece == ".":
            out.append("ponto")
        elif piece == "_":
            out.append("underline")
        elif piece == "-":
            out.append(hyphen)
        elif piece == "+":
            out.append("mais")
        else:
            out.append(piece)
    return " ".join(out)


def _speak_email(m: re.Match[str]) -> str:
    local, _, domain = m.group(0).partition("@")
    return f" {_spell_chars(local)} arroba {_spell_chars(domain)} "


def _speak_url(m: re.Match[str]) -> str:
    raw = m.group(0)
    tail = ""
    while raw and raw[-1] in _TRAILING_PUNCT:
        tail = raw[-1] + tail
        raw = raw[:-1]
    url = re.sub(r"^https?://", "", raw, flags=re.IGNORECASE)
    url = re.sub(r"^www\.", "", url, flags=re.IGNORECASE)
    url = re.split(r"[?#]", url, maxsplit=1)[0].rstrip("/")
    host, _, path = url.partition("/")
    spoken = _spell_chars(host.split(":")[0].lower())
    for seg in (s for s in path.split("/") if s):
        # Path words read better as words than as spelled punctuation.
        words = re.sub(r"[-_+.]+", " ", seg)
        words = re.sub(r"\d+", lambda d: " " + digits_words(d.group(0)) + " ", words)
        spoken += " barra " + " ".join(words.split())
    return f" {spoken}{tail} "


def normalize_ptbr(text: str) -> str:
    """Written Brazilian Portuguese → what a TTS engine should read.

    Order matters: URLs and e-mails go first (their dots and digits are not
    numbers), then abbreviations (so "nº 5" becomes "número 5"), then the
    shapes that contain numbers (dates, times, money, percent, units,
    ordinals), and plain numbers last.
    """
    text = unicodedata.normalize("NFC", text)
    text = _drop_symbols(text)
    text = _EMAIL_RE.sub(_speak_email, text)
    text = _URL_RE.sub(_speak_url, text)
    text = expand_abbreviations(text)
    text = expand_dates(text)
    text = expand_times(text)
    text = expand_currency(text)
    text = expand_percent(text)
    text = expand_units(text)
    text = expand_ordinals(text)
    text = expand_number_shapes(text)
    text = expand_operators(text)
    text = expand_feminine_counts(text)
    text = expand_numbers(text)
    return _tidy(_keep_speakable(text))


def normalize_for_speech(text: str, language: str = "pt-BR") -> str:
    """``normalize_ptbr`` for Portuguese; other languages only lose emoji and symbols."""
    if language.lower().replace("_", "-").startswith("pt"):
        return normalize_ptbr(text)
    return strip_symbols(text)
