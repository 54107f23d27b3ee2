"""Personal data detectors: CPF, CNPJ, e-mail, Brazilian phone numbers and card numbers.

Each detector yields the spans of *valid* values only (CPF and CNPJ by their
check digits, cards by Luhn), so an ordinary number is never taken for personal
data. Masking keeps a finding recognisable without keeping the value. This
module decides nothing: the guardrails apply the rules' actions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["PII_DETECTORS", "pii_sample", "mask_word", "cpf_valid", "cnpj_valid", "luhn_valid"]


# --------------------------------------------------------------------------- masking


def _mask_digits(raw: str, keep: int) -> str:
    """Every digit or letter becomes '*' except the last ``keep`` digits; punctuation stays."""
    total = sum(c.isdigit() for c in raw)
    seen = 0
    out = []
    for c in raw:
        if c.isdigit():
            seen += 1
            out.append(c if seen > total - keep else "*")
        else:
            out.append("*" if c.isalnum() else c)
    return "".join(out)


def _mask_email(raw: str) -> str:
    local, _, domain = raw.partition("@")
    tail = domain.split(".", 1)[1] if "." in domain else ""
    return f"{local[:1]}***@***.{tail}"


def mask_word(raw: str) -> str:
    if len(raw) < 4:
        return "*" * len(raw)
    return raw[0] + "*" * (len(raw) - 2) + raw[-1]


# --------------------------------------------------------------------------- validators


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def cpf_valid(value: str) -> bool:
    d = [int(c) for c in _digits(value)]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        r = sum(d[i] * (n + 1 - i) for i in range(n)) * 10 % 11
        if r % 10 != d[n]:
            return False
    return True


def cnpj_valid(value: str) -> bool:
    """Numeric and the alphanumeric CNPJ (letters in the first 12 places, value = ASCII - 48)."""
    chars = [c for c in value.upper() if c.isalnum()]
    if len(chars) != 14 or not all(c.isdigit() for c in chars[12:]) or len(set(chars)) == 1:
        return False
    v = [ord(c) - 48 for c in chars]
    for n in (12, 13):
        weights = [(i % 8) + 2 for i in range(n)][::-1]
        r = sum(a * b for a, b in zip(v[:n], weights, strict=True)) % 11
        if (0 if r < 2 else 11 - r) != v[n]:
            return False
    return True


def luhn_valid(value: str) -> bool:
    d = [int(c) for c in _digits(value)]
    if not d:
        return False
    total = 0
    for i, x in enumerate(reversed(d)):
        if i % 2:
            x *= 2
            if x > 9:
                x -= 9
        total += x
    return total % 10 == 0


# --------------------------------------------------------------------------- PII detectors

# A number is only itself when no digit (or digit behind a separator) touches it.
_NB = r"(?<![0-9])(?<![0-9][.\-/])"
_NA = r"(?![0-9]|[.\-/][0-9])"

_CPF_RE = re.compile(_NB + r"[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}" + _NA)
_CNPJ_RE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][.\-/])"
    r"[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?[0-9]{2}"
    r"(?![0-9A-Za-z]|[.\-/][0-9A-Za-z])"
)
_CNPJ_FORMATTED = re.compile(r"^[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-[0-9]{2}$")
_EMAIL_RE = re.compile(r"(?<![\w.%+\-])[\w%+\-](?:[\w.%+\-]{0,63})@(?:[\w\-]+\.)+[A-Za-z]{2,24}(?![\w\-])")
_PHONE_RE = re.compile(
    r"(?<![0-9+])(?<![0-9][.\-/])"
    r"(?:"
    r"(?P<cc>\+\s?55[\s.\-]?)?"
    r"(?:\(\s*0?(?P<pddd>[1-9][0-9])\s*\)\s?|0?(?P<ddd>[1-9][0-9])[\s.\-]?)"
    r"(?:9[\s.]?[0-9]{4}|[2-5][0-9]{3})[\s.\-]?[0-9]{4}"
    r"|0[3589]00[\s.\-]?[0-9]{3}[\s.\-]?[0-9]{4}"
    r"|9[\s.]?[0-9]{4}-[0-9]{4}"
    r")" + _NA
)
# Digit groups joined by single spaces or dashes: card candidates are cut from these.
_DIGIT_RUN_RE = re.compile(r"(?<![0-9])[0-9]+(?:[ \-][0-9]+)*")

# Area codes in use; a two-digit number outside them is not a phone's DDD.
_UNUSED_DDD = "20 23 25 26 29 30 36 39 40 50 52 56 57 58 59 60 70 72 76 78 80 90"
_DDD = frozenset(range(11, 100)) - {int(n) for n in _UNUSED_DDD.split()}


def _cpf(text: str) -> Iterator[tuple[int, int]]:
    for m in _CPF_RE.finditer(text):
        if cpf_valid(m.group()):
            yield m.span()


def _cnpj(text: str) -> Iterator[tuple[int, int]]:
    for m in _CNPJ_RE.finditer(text):
        raw = m.group()
        # Letters are only trusted in the punctuated form: a bare 14-character
        # uppercase token is too often a code that passes the check by chance.
        if not raw.isdigit() and any(c.isalpha() for c in raw) and not _CNPJ_FORMATTED.match(raw):
            continue
        if cnpj_valid(raw):
            yield m.span()


def _email(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL_RE.finditer(text):
        yield m.span()


def _phone(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE_RE.finditer(text):
        raw = m.group()
        ddd = m.group("pddd") or m.group("ddd")
        if ddd is not None:
            if int(ddd) not in _DDD:
                continue
            # Bare digits are too often an ID, a code or an invalid CPF: only an
            # 11-digit mobile (DDD + 9 + eight digits) is taken without +55 or ().
            if raw.isdigit() and not (len(raw) == 11 and raw[2] == "9" and len(set(raw)) > 1):
                continue
        yield m.span()


_CARD_SHAPES = ((4, 6, 5), (4, 6, 4))
_CARD_MAX_GROUPS = 5  # 4-4-4-4-3 is the longest grouping of 19 digits


def _card_shape_ok(groups: list[str]) -> bool:
    lengths = tuple(len(g) for g in groups)
    total = sum(lengths)
    if not 13 <= total <= 19:
        return False
    if len(groups) == 1 or lengths in _CARD_SHAPES:
        return True
    return len(groups) >= 4 and all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4


def _card(text: str) -> Iterator[tuple[int, int]]:
    for m in _DIGIT_RUN_RE.finditer(text):
        parts = re.split(r"([ \-])", m.group())
        groups, seps = parts[0::2], parts[1::2]
        offsets = [m.start()]
        for g, s in zip(groups, seps, strict=False):
            offsets.append(offsets[-1] + len(g) + len(s))
        i = 0
        while i < len(groups):
            found = None
            # The longest valid card starting at group i wins; a card followed by
            # an expiry date ("4111 1111 1111 1111 12/28") must still be found.
            for j in range(min(len(groups), i + _CARD_MAX_GROUPS), i, -1):
                cand = groups[i:j]
                if len(set(seps[i : j - 1])) > 1 or not _card_shape_ok(cand):
                    continue
                digits = "".join(cand)
                if digits[0] in "23456" and luhn_valid(digits):
                    found = j
                    break
            if found is None:
                i += 1
                continue
            yield offsets[i], offsets[found - 1] + len(groups[found - 1])
            i = found


# Order is precedence: an e-mail's digits are not a CPF, a CNPJ is not a card,
# and a CPF is not a phone.
PII_DETECTORS = (("email", _email), ("cnpj", _cnpj), ("cpf", _cpf), ("card", _card), ("phone_br", _phone))
_PII_KEEP = {"cpf": 2, "cnpj": 2, "phone_br": 2, "card": 4}


def pii_sample(kind: str, raw: str) -> str:
    return _mask_email(raw) if kind == "email" else _mask_digits(raw, _PII_KEEP[kind])
