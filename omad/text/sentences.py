"""Cutting written text into chunks at sentence boundaries, aware of pt-BR abbreviations.

Each chunk can be normalised and spoken on its own while captions keep the original wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .abbreviations import FINAL_ABBREVIATIONS, TITLE_ABBREVIATIONS

__all__ = ["split_sentences", "pack"]


_NON_TERMINAL = {a.lower() for a, _ in TITLE_ABBREVIATIONS} | {"p.ex", "ex", "n", "nº", "n.º", "r", "profª", "drª"}
_MAY_END = {a.lower() for a, _ in FINAL_ABBREVIATIONS} | {"a.c", "d.c", "s.a", "a.a", "a.m"}
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
