"""Numbers in pt-BR words: cardinals, ordinals and written number tokens ("1.234,5").

Pure functions, used by the text normaliser; gender agreement where pt-BR
needs it ("duas", "duzentas", "primeira").
"""

from __future__ import annotations

import re

__all__ = ["number_to_words", "ordinal_to_words", "number_phrase", "parse_number", "digits_words", "NUMBER_TOKEN"]


# ---------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------

_UNITS_M = ["zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove"]
_TEENS = ["dez", "onze", "doze", "treze", "quatorze", "quinze", "dezesseis", "dezessete", "dezoito", "dezenove"]
_TENS = ["", "", "vinte", "trinta", "quarenta", "cinquenta", "sessenta", "setenta", "oitenta", "noventa"]
_HUNDREDS_M = [
    "",
    "cento",
    "duzentos",
    "trezentos",
    "quatrocentos",
    "quinhentos",
    "seiscentos",
    "setecentos",
    "oitocentos",
    "novecentos",
]
# (singular, plural) for 10^6, 10^9, 10^12; "mil" is invariable and handled apart.
_SCALES = [("milhão", "milhões"), ("bilhão", "bilhões"), ("trilhão", "trilhões")]
_MAX_CARDINAL = 10**15 - 1


def _unit_word(n: int, feminine: bool) -> str:
    if feminine and n == 1:
        return "uma"
    if feminine and n == 2:
        return "duas"
    return _UNITS_M[n]


def _below_thousand(n: int, feminine: bool) -> str:
    if n == 100:
        return "cem"
    parts: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        word = _HUNDREDS_M[hundreds]
        # The feminine only changes the plural hundreds: duzentas, trezentas...
        if feminine and hundreds > 1:
            word = word[:-2] + "as"
        parts.append(word)
    if rest:
        if rest < 10:
            parts.append(_unit_word(rest, feminine))
        elif rest < 20:
            parts.append(_TEENS[rest - 10])
        else:
            tens, units = divmod(rest, 10)
            parts.append(_TENS[tens] if not units else f"{_TENS[tens]} e {_unit_word(units, feminine)}")
    return " e ".join(parts)


def digits_words(digits: str) -> str:
    return " ".join(_UNITS_M[int(d)] for d in digits if d.isdigit())


def number_to_words(n: int, *, feminine: bool = False) -> str:
    """A whole number in Brazilian Portuguese words: 1234 → "mil duzentos e trinta e quatro".

    ``feminine`` agrees units and hundreds below a million ("duas mil e duzentas");
    millions and above stay masculine ("dois milhões"). Numbers of 16 digits or
    more are read digit by digit.
    """
    if n < 0:
        return "menos " + number_to_words(-n, feminine=feminine)
    if n == 0:
        return "zero"
    if n > _MAX_CARDINAL:
        return digits_words(str(n))
    groups: list[int] = []
    while n:
        n, g = divmod(n, 1000)
        groups.append(g)
    # groups[0] = units, groups[1] = thousands, groups[2] = millions...
    words: list[tuple[int, str]] = []
    for idx in range(len(groups) - 1, -1, -1):
        g = groups[idx]
        if not g:
            continue
        if idx == 0:
            words.append((g, _below_thousand(g, feminine)))
        elif idx == 1:
            words.append((g, "mil" if g == 1 else f"{_below_thousand(g, feminine)} mil"))
        else:
            sing, plur = _SCALES[idx - 2]
            words.append((g, f"{_below_thousand(g, False)} {sing if g == 1 else plur}"))
    out = words[0][1]
    for pos in range(1, len(words)):
        g, text = words[pos]
        # "e" joins the last group when it is below a hundred or a round hundred:
        # mil e cem, dois mil e vinte e quatro, but mil duzentos e trinta e quatro.
        last = pos == len(words) - 1
        out += (" e " if last and (g < 100 or g % 100 == 0) else " ") + text
    return out


_ORD_UNITS = ["", "primeiro", "segundo", "terceiro", "quarto", "quinto", "sexto", "sétimo", "oitavo", "nono"]
_ORD_TENS = [
    "",
    "décimo",
    "vigésimo",
    "trigésimo",
    "quadragésimo",
    "quinquagésimo",
    "sexagésimo",
    "septuagésimo",
    "octogésimo",
    "nonagésimo",
]
_ORD_HUNDREDS = [
    "",
    "centésimo",
    "ducentésimo",
    "trecentésimo",
    "quadringentésimo",
    "quingentésimo",
    "sexcentésimo",
    "septingentésimo",
    "octingentésimo",
    "noningentésimo",
]


def ordinal_to_words(n: int, *, feminine: bool = False) -> str:
    """An ordinal in words: 1 → "primeiro", 23 (feminine) → "vigésima terceira".

    Up to 9999; larger values fall back to the cardinal, which is how people read them.
    """
    if n <= 0 or n > 9999:
        return number_to_words(n, feminine=feminine)
    parts: list[str] = []
    thousands, rest = divmod(n, 1000)
    if thousands:
        parts.append("milésimo" if thousands == 1 else f"{number_to_words(thousands)} milésimo")
    hundreds, rest = divmod(rest, 100)
    tens, units = divmod(rest, 10)
    if hundreds:
        parts.append(_ORD_HUNDREDS[hundreds])
    if tens:
        parts.append(_ORD_TENS[tens])
    if units:
        parts.append(_ORD_UNITS[units])
    words = " ".join(parts)
    if feminine:
        words = " ".join(w[:-1] + "a" if w.endswith("o") else w for w in words.split())
    return words


# A written number as one token: digits with . and , between digit runs.
NUMBER_TOKEN = r"\d+(?:[.,]\d+)*"
_THOUSANDS_RE = re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d+)?$")
_PLAIN_RE = re.compile(r"^\d+(?:,\d+)?$")
_DOTTED_RE = re.compile(r"^\d+(?:\.\d+)+$")


def parse_number(token: str) -> tuple[int, str | None] | None:
    """(integer part, decimal digits) for a pt-BR written number, None when it is not one."""
    if _THOUSANDS_RE.match(token) or _PLAIN_RE.match(token):
        whole, _, frac = token.partition(",")
        digits = whole.replace(".", "")
        if len(digits) > len(str(_MAX_CARDINAL)):
            return None  # too long to be a quantity: read digit by digit by the caller
        return int(digits), (frac or None)
    return None


def _int_words(digits: str, feminine: bool) -> str:
    # int() of a huge digit run is slow (and refused past 4300 digits): such runs are codes, not amounts.
    if len(digits) > len(str(_MAX_CARDINAL)):
        return digits_words(digits)
    return number_to_words(int(digits), feminine=feminine)


def _fraction_words(frac: str) -> str:
    if len(frac) > 3:
        return digits_words(frac)
    stripped = frac.lstrip("0")
    zeros = ["zero"] * (len(frac) - len(stripped))
    return " ".join([*zeros, number_to_words(int(stripped))] if stripped else zeros)


def number_phrase(token: str, *, feminine: bool = False) -> tuple[str, bool]:
    """Words for a written number token, and whether it means exactly one (for singular nouns)."""
    parsed = parse_number(token)
    if parsed is not None:
        whole, frac = parsed
        if frac is None:
            return number_to_words(whole, feminine=feminine), whole == 1
        return f"{number_to_words(whole, feminine=feminine)} vírgula {_fraction_words(frac)}", False
    if _DOTTED_RE.match(token):
        # Not a thousands group: a version number or an English decimal ("2.5"), read with "ponto".
        first, *rest = token.split(".")
        pieces = [_int_words(first, feminine)] + [_fraction_words(p) for p in rest]
        return " ponto ".join(pieces), False
    # Anything else (e.g. "1,2,3" written without spaces): read each run with its separator.
    out: list[str] = []
    for piece in re.split(r"([.,])", token):
        if piece == ",":
            out.append("vírgula")
        elif piece == ".":
            out.append("ponto")
        elif piece:
            out.append(_int_words(piece, False))
    return " ".join(out), False
