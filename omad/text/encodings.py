"""Text encodings of dropped files (subtitles, narration text): detect, decode, name.

Files reach omad from Windows Notepad ("Unicode" = UTF-16 with a BOM),
old subtitle editors (cp1252, cp1250, ISO-8859-x) and everything in between.
The order of evidence, strongest first:

1. a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32) — certain;
2. UTF-16 without a BOM — plain text in it has a NUL in every other byte;
3. strict UTF-8 — non-ASCII text that is not UTF-8 almost never decodes as it;
4. a single-byte code page, chosen by which *language's* letters the decoded
   text is made of. Statistical detectors (charset-normalizer) read short
   pt-BR cp1252 as cp1250 ("Coraçăo, năo"), because both decodings are valid
   Latin letters; asking "is there one language whose alphabet holds every
   letter here?" separates them, and ties go to cp1252, the Windows default
   for pt-BR;
5. charset-normalizer for what no profile explains (CJK, Hebrew, Arabic...).

This module never guesses silently: the encoding it used is returned so the
caller records it in the job's sidecar.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Decoded", "decode_text"]


@dataclass(frozen=True)
class Decoded:
    """Text and how it was read: ``encoding`` is a Python codec name, ``how`` the evidence for it."""

    text: str
    encoding: str
    how: str  # "bom", "utf-16 pattern", "utf-8", "language profile", "charset-normalizer", "fallback"


# Lower-case letters beyond ASCII that each language writes; a decoding whose
# letters all fit one profile is a plausible reading of the bytes.
_PROFILES: dict[str, str] = {
    "pt": "áàâãçéêíóôõúü",
    "es": "áéíñóúü",
    "fr": "àâæçéèêëîïôœùûüÿ",
    "de": "äöüß",
    "it": "àèéìíîòóùú",
    "ca": "àçèéíïòóúü",
    "nl": "áéëïóöü",
    "nordic": "åäæöøéáð",
    "is": "áæðéíóöúýþ",
    "cs": "áčďéěíňóřšťúůýž",
    "sk": "áäčďéíĺľňóôŕšťúýž",
    "pl": "ąćęłńóśźż",
    "hu": "áéíóöőúüű",
    "sl_hr": "čćđšž",
    "ro": "ăâîșțşţ",
    "ru": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "uk": "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",
    "bg": "абвгдежзийклмнопрстуфхцчшщъьюя",
    "el": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώϊϋΐΰς",
}
# A file may mix languages of one region (a French word in a pt-BR caption): each region is a profile too.
_PROFILES["western"] = "".join(_PROFILES[k] for k in ("pt", "es", "fr", "de", "it", "ca", "nl", "nordic", "is"))
_PROFILES["central"] = "".join(_PROFILES[k] for k in ("cs", "sk", "pl", "hu", "sl_hr", "ro"))
_LANGUAGE_SETS = [set(p) for k, p in _PROFILES.items() if k not in ("western", "central")]
_REGION_SETS = [set(_PROFILES["western"]), set(_PROFILES["central"])]
# Code pages to try, in order of preference when two read the bytes equally well.
_CANDIDATES = ("cp1252", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r", "iso8859_5", "cp1253", "iso8859_7")
# Punctuation and symbols that real text uses; anything else non-ASCII and not a letter is suspect.
_COMMON_SYMBOLS = set("€“”‘’‚„–—…«»¡¿°ºª·•×÷§©®™±²³½¼¾¹\u00a0\u200e\u200f")
_WORD = re.compile(r"[^\W\d_]+")


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split(" ", 1)[0]  # LATIN, CYRILLIC, GREEK, ...


def _score(text: str) -> float:
    """How plausible ``text`` is as a human language: higher is better, negative is garbage."""
    score = 0.0
    for ch in text:
        if ord(ch) < 128:
            continue
        cat = unicodedata.category(ch)
        if cat == "Cc" or cat == "Co" or cat == "Cn":
            score -= 10  # C1 controls and undefined bytes: not this code page
        elif not cat.startswith("L") and ch not in _COMMON_SYMBOLS:
            score -= 2  # ¤ ¦ ¨ ¸ and friends: what a wrong code page looks like
    letters = {ch.lower() for ch in text if ord(ch) >= 128 and unicodedata.category(ch).startswith("L")}
    if not letters:
        return score
    # One language explaining every letter beats a region's union of alphabets: Hungarian "őű" read
    # as cp1252 is "õû", letters that only the union of pt and fr has.
    best = max(max(len(letters & p) - 3 * len(letters - p) for p in _LANGUAGE_SETS) + 1,
               max(len(letters & p) - 3 * len(letters - p) for p in _REGION_SETS))
    for word in _WORD.findall(text):
        if len({_script(ch) for ch in word}) > 1:
            score -= 5  # "Pĺíliš": Czech read as Cyrillic mixes scripts inside a word
        run = 0
        for ch in word:
            # Three accented Latin letters in a row is how Cyrillic or Greek read in a Latin code page.
            run = run + 1 if ord(ch) >= 128 and _script(ch) == "LATIN" else 0
            if run >= 3:
                score -= 3
                break
    count = sum(1 for ch in text if ord(ch) >= 128 and unicodedata.category(ch).startswith("L"))
    return score + best * (1 + count / max(1, len(letters))) / 2


def _utf16_without_bom(raw: bytes) -> str | None:
    if len(raw) < 4 or len(raw) % 2:
        return None
    even, odd = raw[0::2], raw[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def decode_text(raw: bytes) -> Decoded:
    """Decode a dropped text file; see the module docstring for the order of evidence."""
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                return Decoded(raw.decode(enc), enc, "bom")
            except UnicodeDecodeError:
                break  # a BOM followed by garbage: let the other rules judge the bytes
    wide = _utf16_without_bom(raw)
    if wide is not None:
        try:
            return Decoded(raw.decode(wide), wide, "utf-16 pattern")
        except UnicodeDecodeError:
            pass
    try:
        return Decoded(raw.decode("utf-8"), "utf-8", "utf-8")
    except UnicodeDecodeError:
        pass
    best: tuple[float, int, str, str] | None = None
    for i, enc in enumerate(_CANDIDATES):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        key = (_score(text), -i, enc, text)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is not None and best[0] > 0:
        return Decoded(best[3], best[2], "language profile")
    from charset_normalizer import from_bytes  # only for the rare file no profile explains

    match = from_bytes(raw).best()
    if match is not None:
        return Decoded(str(match), match.encoding, "charset-normalizer")
    if best is not None:
        return Decoded(best[3], best[2], "fallback")
    return Decoded(raw.decode("latin-1"), "latin-1", "fallback")
