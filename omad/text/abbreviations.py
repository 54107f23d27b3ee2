"""pt-BR abbreviations for speech: what "Sr.", "Dra.", "etc." and "vc" are read as, and which may end a sentence.

Shared by the normaliser (which expands them) and the sentence splitter (which must not cut after a title).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["expand_abbreviations", "TITLE_ABBREVIATIONS", "FINAL_ABBREVIATIONS"]


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


def expand_abbreviations(text: str) -> str:
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


TITLE_ABBREVIATIONS = _TITLE_ABBREVIATIONS
FINAL_ABBREVIATIONS = _FINAL_ABBREVIATIONS
