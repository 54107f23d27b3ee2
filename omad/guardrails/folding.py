"""Folding text for matching: lowercased, without accents, with a map back to the original characters."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold", "keyword_regex"]


def fold(text: str) -> tuple[str, list[int]]:
    """Lowercased text without accents, and for each of its characters the index it came from."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKD", ch):
            if unicodedata.combining(c):
                continue
            for f in c.casefold():
                out.append(f)
                index.append(i)
    return "".join(out), index


def keyword_regex(word: str) -> str:
    folded = fold(word)[0].strip()
    head = r"\w*" if folded.startswith("*") else ""
    tail = r"\w*" if folded.endswith("*") else ""
    parts = [re.escape(p) for p in folded.strip("*").split()]
    return r"(?<!\w)" + head + r"\s+".join(parts) + tail + r"(?!\w)"
