"""pt-BR quantities for speech: dates, times, money, percentages, units, ordinals, counts and plain numbers.

Each ``expand_*`` pass turns one written shape into words; ``normalize_ptbr`` runs them in order.
"""

from __future__ import annotations

import re

from .ptbr_numbers import NUMBER_TOKEN, digits_words, number_phrase, number_to_words, ordinal_to_words, parse_number

__all__ = ["expand_dates", "expand_times", "expand_currency", "expand_percent", "expand_units", "expand_ordinals",
           "expand_number_shapes", "expand_operators", "expand_feminine_counts", "expand_numbers"]


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


def expand_dates(text: str) -> str:
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


def expand_times(text: str) -> str:
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


def expand_currency(text: str) -> str:
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


def expand_percent(text: str) -> str:
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


def expand_units(text: str) -> str:
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


def expand_feminine_counts(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        words, _ = number_phrase(m.group(1), feminine=True)
        return f"{words}{m.group(2)}"

    pattern = rf"(?<![\w.,])({NUMBER_TOKEN})((?:\s+mil)?\s+(?:{_FEMININE_NOUNS})\b)"
    return re.sub(pattern, _sub, text, flags=re.IGNORECASE)


def expand_ordinals(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        return ordinal_to_words(int(m.group(1)), feminine=m.group(2) in ("ª", "a"))

    return re.sub(r"(?<![\w.,])(\d{1,4})\.?(º|ª|o|a)(?![\wÀ-ÿ])", _sub, text)


def expand_number_shapes(text: str) -> str:
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


def expand_numbers(text: str) -> str:
    def _sub(m: re.Match[str]) -> str:
        sign = "menos " if m.group(1) else ""
        words, _ = number_phrase(m.group(2))
        return f" {sign}{words} "

    # A hyphen between a word and a number ("COVID-19") is a pause, not a minus sign.
    text = re.sub(r"(?<=[^\W\d_])-(?=\d)|(?<=\d)-(?=[^\W\d_])", " ", text)
    return re.sub(rf"(?:(?<![\w.,])(-)(?=\d))?({NUMBER_TOKEN})", _sub, text)


def expand_operators(text: str) -> str:
    text = re.sub(r"(?<=\d)\s-\s(?=\d)", " menos ", text)
    text = re.sub(r"(?<=\d)\s?[x×]\s?(?=\d)", " vezes ", text)
    text = re.sub(r"(?<=\d)\s?\+\s?(?=\d)", " mais ", text)
    text = re.sub(r"(?<=\d)\s?=\s?(?=[\d-])", " igual a ", text)
    text = re.sub(r"(?<=\d)/(?=\d)", " barra ", text)
    text = re.sub(r"\s[–—]\s|\s-\s", ", ", text)
    text = text.replace("&", " e ").replace("=", " igual a ").replace("+", " mais ")
    text = re.sub(r"\be/ou\b", "e ou", text)
    return text
