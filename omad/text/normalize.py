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
from collections.abc import Callable

from .ptbr_numbers import NUMBER_TOKEN, digits_words, number_phrase, number_to_words, ordinal_to_words, parse_number

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


# ---------------------------------------------------------------------------
# Abbreviations
# ---------------------------------------------------------------------------

# (pattern without the final dot, expansion). Titles never end a sentence.
_TITLE_ABBREVIATIONS: list[tuple[str, str]] = [
    (r"Srta", "senhorita"),
    (r"Sras", "senhoras"),
    (r"Srs", "senhores"),
    (r"Sra", "senhora"),
    (r"Sr", "senhor"),
    (r"Dras", "doutoras"),
    (r"Drs", "doutores"),
    (r"Dra", "doutora"),
    (r"Dr", "doutor"),
    (r"Profas", "professoras"),
    (r"Profa", "professora"),
    (r"Profs", "professores"),
    (r"Prof", "professor"),
    (r"Enga", "engenheira"),
    (r"Eng", "engenheiro"),
    (r"Exma", "excelentíssima"),
    (r"Exmo", "excelentíssimo"),
    (r"Av", "avenida"),
    (r"Pça", "praça"),
    (r"Sto", "santo"),
    (r"Sta", "santa"),
    (r"Pe", "padre"),
    (r"aprox", "aproximadamente"),
    (r"tel", "telefone"),
    (r"págs", "páginas"),
    (r"pág", "página"),
    (r"séc", "século"),
    (r"vs", "versus"),
    (r"depto", "departamento"),
    (r"obs", "observação"),
    (r"máx", "máximo"),
    (r"mín", "mínimo"),
    (r"qtde", "quantidade"),
    (r"qtd", "quantidade"),
    (r"hab", "habitantes"),
]
# These may close a sentence: the dot is kept when a capital or the end follows.
_FINAL_ABBREVIATIONS: list[tuple[str, str]] = [
    (r"etc", "et cétera"),
    (r"Ltda", "limitada"),
    (r"Cia", "companhia"),
    (r"Jr", "júnior"),
]
_CASED_FINAL: list[tuple[str, str]] = [
    (r"a\.a", "ao ano"),
    (r"a\.m", "ao mês"),
    (r"a\.C", "antes de Cristo"),
    (r"d\.C", "depois de Cristo"),
    (r"S\.A", "esse a"),
]
# Informal writing common in pt-BR messages; whole words only.
_INFORMAL = {"vc": "você", "vcs": "vocês", "tb": "também", "tbm": "também", "pq": "porque", "hj": "hoje"}

_NEXT_STARTS_SENTENCE = re.compile(r"\s*(?:$|[\"'“(]*[A-ZÀ-Ý0-9])")


def _expand_abbreviations(text: str) -> str:
    text = re.sub(r"\bp\.\s?ex\.", "por exemplo", text, flags=re.IGNORECASE)
    text = re.sub(r"\bex\.:", "exemplo:", text, flags=re.IGNORECASE)
    text = re.sub(r"\b[Nn]\.?[º°]s(?=\s|$)", "números", text)
    text = re.sub(r"\b[Nn]\.?º|\b[Nn]°(?=\s*\d)", "número", text)
    text = re.sub(r"\bProf\.?ª", "professora", text)
    text = re.sub(r"\bDr\.?ª", "doutora", text)
    for abbr, words in _TITLE_ABBREVIATIONS:
        # "pe." in lower case is more likely a typo of "pé" than a priest.
        text = re.sub(rf"\b{abbr}\.", words, text, flags=0 if abbr == "Pe" else re.IGNORECASE)
    # "R." is a street only where an address reads naturally, never an initial in a name.
    text = re.sub(r"(^|(?:\b(?:na|da|à|a|pela|para|em)|,)\s+)R\.(?=\s+[A-ZÀ-Ý])", r"\1rua", text)

    def _final(words: str) -> Callable[[re.Match[str]], str]:
        def _sub(m: re.Match[str]) -> str:
            ends = _NEXT_STARTS_SENTENCE.match(m.string, m.end()) is not None
            return words + ("." if ends else "")

        return _sub

    for abbr, words in _FINAL_ABBREVIATIONS:
        text = re.sub(rf"\b{abbr}\.", _final(words), text, flags=re.IGNORECASE)
    for abbr, words in _CASED_FINAL:
        text = re.sub(rf"\b{abbr}\.", _final(words), text)
    text = re.sub(
        r"\b(" + "|".join(_INFORMAL) + r")\b", lambda m: _INFORMAL[m.group(1).lower()], text, flags=re.IGNORECASE
    )
    return text


# ---------------------------------------------------------------------------
# Dates, times, currency, percentages, units
# ---------------------------------------------------------------------------

_MONTHS = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
]
_MONTH_NAMES = "|".join(_MONTHS)


def _date_words(day: int, month: int, year: str | None) -> str | None:
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return None
    # Brazilians say "primeiro de maio", never "um de maio".
    spoken = ("primeiro" if day == 1 else number_to_words(day)) + " de " + _MONTHS[month - 1]
    if year:
        spoken += " de " + number_to_words(int(year))
    return spoken


def _expand_dates(text: str) -> str:
    def _dmy(m: re.Match[str]) -> str:
        spoken = _date_words(int(m.group(1)), int(m.group(3)), m.group(4))
        return m.group(0) if spoken is None else spoken

    def _iso(m: re.Match[str]) -> str:
        spoken = _date_words(int(m.group(3)), int(m.group(2)), m.group(1))
        return m.group(0) if spoken is None else spoken

    def _dm(m: re.Match[str]) -> str:
        spoken = _date_words(int(m.group(2)), int(m.group(3)), None)
        return m.group(0) if spoken is None else m.group(1) + spoken

    text = re.sub(r"(?<![\d/.,-])(\d{4})-(\d{2})-(\d{2})(?![\d-])", _iso, text)
    text = re.sub(r"(?<![\d/.,-])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.-]\d|\d)", _dmy, text)
    # A bare dd/mm is a fraction as often as a date: only after "dia" is it a date.
    text = re.sub(r"(\b[Dd]ia\s+)(\d{1,2})/(\d{1,2})(?![\d/])", _dm, text)
    text = re.sub(rf"\b1º?(?=\s+de\s+(?:{_MONTH_NAMES})\b)", "primeiro", text, flags=re.IGNORECASE)
    return text


def _hours_phrase(h: int, minutes: int | None, seconds: int | None) -> str:
    spoken = "zero hora" if h == 0 else f"{number_to_words(h, feminine=True)} {'hora' if h == 1 else 'horas'}"
    if minutes:
        spoken += f" e {number_to_words(minutes)} {'minuto' if minutes == 1 else 'minutos'}"
    if seconds:
        spoken += f" e {number_to_words(seconds)} {'segundo' if seconds == 1 else 'segundos'}"
    return spoken


def _expand_times(text: str) -> str:
    def _colon(m: re.Match[str]) -> str:
        sec = m.group(3)
        return _hours_phrase(int(m.group(1)), int(m.group(2)), int(sec) if sec else None)

    def _h(m: re.Match[str]) -> str:
        minutes = m.group(2)
        return _hours_phrase(int(m.group(1)), int(minutes) if minutes else None, None)

    text = re.sub(
        r"(?<![\d:,.])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?:\s?(?:h|hs|min)\b)?(?![\d:])",
        _colon,
        text,
    )
    text = re.sub(r"(?<![\d,.])([01]?\d|2[0-3])\s?h(?:([0-5]\d)\s?(?:min|m)?)?(?![\w])", _h, text)
    return text


# (symbol regex, singular, plural, feminine, cents singular, cents plural)
_CURRENCIES: list[tuple[str, str, str, bool, str, str]] = [
    (r"R\$", "real", "reais", False, "centavo", "centavos"),
    (r"US\$|U\$|\$", "dólar", "dólares", False, "centavo", "centavos"),
    (r"€", "euro", "euros", False, "centavo", "centavos"),
    (r"£", "libra", "libras", True, "centavo", "centavos"),
]
_SCALE_WORDS = r"mil|milhão|milhões|bilhão|bilhões|trilhão|trilhões"


def _money(token: str, scale: str | None, cur: tuple[str, str, str, bool, str, str]) -> str:
    _, sing, plur, fem, c_sing, c_plur = cur
    # "US$ 1.50" is an English decimal: two digits after the dot are cents, not thousands.
    if re.match(r"^\d+\.\d{1,2}$", token):
        token = token.replace(".", ",")
    if scale:
        words, _ = number_phrase(token, feminine=fem and scale == "mil")
        joiner = " " if scale == "mil" else " de "
        return f"{words} {scale}{joiner}{plur}"
    parsed = parse_number(token)
    if parsed is None:
        words, _ = number_phrase(token, feminine=fem)
        return f"{words} {plur}"
    whole, frac = parsed
    cents = int((frac or "0")[:2].ljust(2, "0"))
    parts: list[str] = []
    if whole or not cents:
        # Round millions take "de": um milhão de reais.
        de = "de " if whole >= 1_000_000 and whole % 1_000_000 == 0 else ""
        parts.append(f"{number_to_words(whole, feminine=fem)} {de}{sing if whole == 1 else plur}")
    if cents:
        parts.append(f"{number_to_words(cents)} {c_sing if cents == 1 else c_plur}")
    return " e ".join(parts)


def _expand_currency(text: str) -> str:
    for cur in _CURRENCIES:
        pattern = rf"(?:{cur[0]})\s?(-?)({NUMBER_TOKEN})(?:\s+({_SCALE_WORDS})\b)?"

        def _pre(m: re.Match[str], cur: tuple[str, str, str, bool, str, str] = cur) -> str:
            return ("menos " if m.group(1) else "") + _money(m.group(2), m.group(3), cur)

        text = re.sub(pattern, _pre, text)
    # Euro and pound are also written after the number: 12,50 €.
    for cur in _CURRENCIES[2:]:

        def _post(m: re.Match[str], cur: tuple[str, str, str, bool, str, str] = cur) -> str:
            return _money(m.group(1), None, cur)

        text = re.sub(rf"(?<![\d.,])({NUMBER_TOKEN})\s?(?:{cur[0]})", _post, text)
    return text


def _expand_percent(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        words, _ = number_phrase(m.group(2))
        return ("menos " if m.group(1) else "") + words + " por cento"

    return re.sub(rf"(?<![\w.,])(-?)({NUMBER_TOKEN})\s?%", _sub, text)


# (unit regex, singular, plural, feminine) — longest first so km/h wins over km.
_UNITS: list[tuple[str, str, str, bool]] = [
    (r"km/h", "quilômetro por hora", "quilômetros por hora", False),
    (r"m/s", "metro por segundo", "metros por segundo", False),
    (r"km²", "quilômetro quadrado", "quilômetros quadrados", False),
    (r"m²", "metro quadrado", "metros quadrados", False),
    (r"m³", "metro cúbico", "metros cúbicos", False),
    (r"[°º]\s?C", "grau Celsius", "graus Celsius", False),
    (r"[°º]\s?F", "grau Fahrenheit", "graus Fahrenheit", False),
    (r"°", "grau", "graus", False),
    (r"kWh", "quilowatt-hora", "quilowatts-hora", False),
    (r"kW", "quilowatt", "quilowatts", False),
    (r"GHz", "giga-hertz", "giga-hertz", False),
    (r"MHz", "mega-hertz", "mega-hertz", False),
    (r"Hz", "hertz", "hertz", False),
    (r"TB", "terabyte", "terabytes", False),
    (r"GB", "gigabyte", "gigabytes", False),
    (r"MB", "megabyte", "megabytes", False),
    (r"[kK]B", "kilobyte", "kilobytes", False),
    (r"km", "quilômetro", "quilômetros", False),
    (r"kg", "quilo", "quilos", False),
    (r"mg", "miligrama", "miligramas", False),
    (r"cm", "centímetro", "centímetros", False),
    (r"mm", "milímetro", "milímetros", False),
    (r"m[lL]", "mililitro", "mililitros", False),
    (r"min", "minuto", "minutos", False),
    (r"ms", "milissegundo", "milissegundos", False),
    (r"g", "grama", "gramas", False),
    (r"m", "metro", "metros", False),
    (r"[lL]", "litro", "litros", False),
    (r"h", "hora", "horas", True),
    (r"W", "watt", "watts", False),
]


def _expand_units(text: str) -> str:
    alternatives = "|".join(f"(?P<u{i}>{pattern})" for i, (pattern, *_rest) in enumerate(_UNITS))
    unit_re = re.compile(rf"(?<![\w.,])(-?)({NUMBER_TOKEN})\s?(?:{alternatives})(?![\wÀ-ÿ²³/])")

    def _sub(m: re.Match[str]) -> str:
        idx = next(i for i in range(len(_UNITS)) if m.group(f"u{i}") is not None)
        _, sing, plur, fem = _UNITS[idx]
        words, is_one = number_phrase(m.group(2), feminine=fem)
        sign = "menos " if m.group(1) else ""
        return f"{sign}{words} {sing if is_one else plur}"

    return unit_re.sub(_sub, text)


# Feminine nouns that often follow a count: "2 pessoas" → "duas pessoas".
_FEMININE_NOUNS = (
    r"horas?|pessoas?|vez(?:es)?|semanas?|páginas?|coisas?|casas?|crianças?|mulheres|mulher|cidades?|"
    r"empresas?|unidades?|toneladas?|libras?|famílias?|escolas?|aulas?|questões|questão|perguntas?|"
    r"respostas?|opções|opção|palavras?|frases?|linhas?|imagens?|fotos?|cenas?|partes?|etapas?|"
    r"noites?|manhãs?|tardes?|vagas?|vidas?|mortes?|doses?|garrafas?|xícaras?|colheres|colher"
)


def _expand_feminine_counts(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        words, _ = number_phrase(m.group(1), feminine=True)
        return f"{words}{m.group(2)}"

    pattern = rf"(?<![\w.,])({NUMBER_TOKEN})((?:\s+mil)?\s+(?:{_FEMININE_NOUNS})\b)"
    return re.sub(pattern, _sub, text, flags=re.IGNORECASE)


def _expand_ordinals(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        return ordinal_to_words(int(m.group(1)), feminine=m.group(2) in ("ª", "a"))

    return re.sub(r"(?<![\w.,])(\d{1,4})\.?(º|ª|o|a)(?![\wÀ-ÿ])", _sub, text)


def _expand_number_shapes(text: str) -> str:
    # Phone numbers and CEPs are read digit by digit, as people dictate them.
    text = re.sub(
        r"\((\d{2})\)\s?(\d{4,5})-(\d{4})\b",
        lambda m: " ".join(digits_words(g) for g in m.groups()),
        text,
    )
    text = re.sub(r"\b0[38]00[\s-]?\d{3}[\s-]?\d{4}\b", lambda m: digits_words(re.sub(r"\D", "", m.group(0))), text)

    def _phone(m: re.Match[str]) -> str:
        a, b = int(m.group(1)), int(m.group(2))
        if len(m.group(1)) == 4 and 1000 <= a < b <= 2999:
            return m.group(0)  # a span of years (2019-2021): the range rule below reads it
        return digits_words(m.group(1) + m.group(2))

    text = re.sub(r"(?<![\d.,-])(\d{4,5})-(\d{4})(?![\d-])", _phone, text)
    text = re.sub(r"(?<![\d.,-])(\d{5})-(\d{3})(?![\d-])", lambda m: digits_words(m.group(1) + m.group(2)), text)

    def _range(m: re.Match[str]) -> str:
        a, b = int(m.group(1)), int(m.group(2))
        return f"{number_to_words(a)} a {number_to_words(b)}" if a < b else m.group(0)

    return re.sub(r"(?<![\w.,-])(\d{1,4})\s?[-–]\s?(\d{1,4})(?![\w-]|[.,]\d)", _range, text)


def _expand_numbers(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        sign = "menos " if m.group(1) else ""
        words, _ = number_phrase(m.group(2))
        return f" {sign}{words} "

    # A hyphen between a word and a number ("COVID-19") is a pause, not a minus sign.
    text = re.sub(r"(?<=[^\W\d_])-(?=\d)|(?<=\d)-(?=[^\W\d_])", " ", text)
    return re.sub(rf"(?:(?<![\w.,])(-)(?=\d))?({NUMBER_TOKEN})", _sub, text)


def _expand_operators(text: str) -> str:
    text = re.sub(r"(?<=\d)\s-\s(?=\d)", " menos ", text)
    text = re.sub(r"(?<=\d)\s?[x×]\s?(?=\d)", " vezes ", text)
    text = re.sub(r"(?<=\d)\s?\+\s?(?=\d)", " mais ", text)
    text = re.sub(r"(?<=\d)\s?=\s?(?=[\d-])", " igual a ", text)
    text = re.sub(r"(?<=\d)/(?=\d)", " barra ", text)
    text = re.sub(r"\s[–—]\s|\s-\s", ", ", text)
    text = text.replace("&", " e ").replace("=", " igual a ").replace("+", " mais ")
    text = re.sub(r"\be/ou\b", "e ou", text)
    return text


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
    text = _expand_abbreviations(text)
    text = _expand_dates(text)
    text = _expand_times(text)
    text = _expand_currency(text)
    text = _expand_percent(text)
    text = _expand_units(text)
    text = _expand_ordinals(text)
    text = _expand_number_shapes(text)
    text = _expand_operators(text)
    text = _expand_feminine_counts(text)
    text = _expand_numbers(text)
    return _tidy(_keep_speakable(text))


def normalize_for_speech(text: str, language: str = "pt-BR") -> str:
    """``normalize_ptbr`` for Portuguese; other languages only lose emoji and symbols."""
    if language.lower().replace("_", "-").startswith("pt"):
        return normalize_ptbr(text)
    return strip_symbols(text)


# ---------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------

_NON_TERMINAL = {a.lower() for a, _ in _TITLE_ABBREVIATIONS} | {"p.ex", "ex", "n", "nº", "n.º", "r", "profª", "drª"}
_MAY_END = {a.lower() for a, _ in _FINAL_ABBREVIATIONS} | {"a.c", "d.c", "s.a", "a.a", "a.m"}
_BOUNDARY_RE = re.compile(r"([.!?…]+)([\"'”’»)\]]*)(\s+|$)")
_CLAUSE_RE = re.compile(r"(?<=[,;:])\s+|\s+(?=[–—]\s)")


def _is_boundary(text: str, m: re.Match[str]) -> bool:
    punct = m.group(1)
    rest = text[m.end() :]
    if not rest.strip():
        return True
    nxt = rest.lstrip()[0]
    if any(c in punct for c in "!?…") or punct.startswith(".."):
        return True
    # The word before the mark is all that matters; a bounded look-back keeps long texts linear.
    before = text[max(0, m.start() - 40) : m.start()]
    token = re.split(r"[\s(\"'“]", before)[-1].lower() if before else ""
    if token in _NON_TERMINAL:
        return False
    if re.fullmatch(r"[a-zà-ý]", token) and before[-1:].isupper():
        return False  # an initial: "J. R. Silva"
    if token in _MAY_END:
        return nxt.isupper()
    return not nxt.islower()


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    # A blank line always ends a sentence (titles, list items, paragraphs).
    for para in re.split(r"\n\s*\n", text):
        para = re.sub(r"\s+", " ", para).strip()
        start = 0
        for m in _BOUNDARY_RE.finditer(para):
            if _is_boundary(para, m):
                piece = para[start : m.end()].strip()
                if piece:
                    out.append(piece)
                start = m.end()
        tail = para[start:].strip()
        if tail:
            out.append(tail)
    return out


def pack(pieces: list[str], max_size: int, size: Callable[[str], int] = len) -> list[str]:
    """Join pieces with spaces, greedily, into chunks of at most ``max_size`` (a longer piece stays whole)."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current} {piece}" if current else piece
        if size(candidate) <= max_size:
            current = candidate
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    clauses = [c for c in _CLAUSE_RE.split(sentence) if c]
    out: list[str] = []
    for chunk in pack(clauses, max_chars):
        if len(chunk) <= max_chars:
            out.append(chunk)
            continue
        words: list[str] = []
        for word in chunk.split(" "):
            # A single word longer than a chunk (a long URL) is cut; nothing else can be done.
            words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
        out.extend(pack(words, max_chars))
    return out


def split_sentences(text: str, max_chars: int, *, merge: bool = True) -> list[str]:
    """Cut written text into chunks of at most ``max_chars`` characters at sentence boundaries.

    Dots of abbreviations ("Sr.", "etc." before a lowercase word), initials,
    decimals, URLs and e-mails are not boundaries; a blank line is. With
    ``merge``, consecutive short sentences share a chunk up to ``max_chars``.
    A sentence longer than ``max_chars`` is cut at commas, semicolons, colons
    and dashes, then between words.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    for sentence in _sentences(text):
        pieces.extend(_split_long(sentence, max_chars))
    return pack(pieces, max_chars) if merge else pieces
