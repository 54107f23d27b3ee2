"""Grouping timed words into captions people can read.

The rules are the ones subtitlers use (and broadcasters publish): at most
``max_lines`` lines of at most ``max_line_chars`` characters; a caption ends
at the end of a sentence or at a long pause; when it must end mid-sentence it
ends after a comma, semicolon or colon, else before a conjunction or
preposition, rather than between any two words; it stays on screen at least
``min_seconds`` and at most ``max_seconds``, and long enough to read at
``max_cps`` characters per second when the gap before the next caption
allows. A caption starts exactly when its first word is heard.

This module only arranges words; timing them is ``omad.tts.wordtiming``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LayoutRules", "TimedWord", "Caption", "group_words", "split_lines"]

_SENTENCE_END = (".", "!", "?", "…", ".\"", "!\"", "?\"", ".”", "!”", "?”", ".»", "!»", "?»")
_CLAUSE_END = (",", ";", ":", "—", "–", ")")
# Words a phrase starts with (pt-BR first, some English): a line or caption may break before them.
_PHRASE_STARTERS = frozenset({
    "e", "ou", "mas", "porém", "que", "de", "do", "da", "dos", "das", "em", "no", "na", "nos", "nas", "para",
    "pra", "por", "pelo", "pela", "pelos", "pelas", "com", "sem", "como", "quando", "porque", "pois", "se",
    "onde", "enquanto", "até", "após", "sobre", "entre", "contra", "desde", "ao", "aos", "à", "às", "nem",
    "também", "and", "or", "but", "that", "which", "who", "of", "to", "in", "on", "at", "with", "for", "from",
    "by", "as", "when", "because", "if", "while"
})
_LONG_PAUSE = 0.9  # seconds of silence that end a caption even mid-sentence
_MIN_GAP = 0.04  # seconds between one caption's end and the next one's start


@dataclass(frozen=True)
class LayoutRules:
    max_line_chars: int = 42
    max_lines: int = 2
    min_seconds: float = 1.0
    max_seconds: float = 6.0
    max_cps: float = 17.0


@dataclass(frozen=True)
class TimedWord:
    """A word as written, and when it is spoken (seconds).

    ``ends_sentence``: None lets punctuation decide; callers that know the
    sentence boundaries (narration chunks) say so, so "Sr." ends nothing.
    """

    start: float
    end: float
    text: str
    ends_sentence: bool | None = None

    @property
    def is_sentence_end(self) -> bool:
        return self.text.endswith(_SENTENCE_END) if self.ends_sentence is None else self.ends_sentence


@dataclass(frozen=True)
class Caption:
    """One caption: its display time and its words, line by line."""

    start: float
    end: float
    lines: tuple[tuple[TimedWord, ...], ...]

    @property
    def text(self) -> str:
        return "\n".join(" ".join(w.text for w in line) for line in self.lines)

    @property
    def words(self) -> list[TimedWord]:
        return [w for line in self.lines for w in line]


def _chars(words: Sequence[TimedWord]) -> int:
    return sum(len(w.text) for w in words) + max(0, len(words) - 1)


def _break_bonus(before: TimedWord, after: TimedWord | None) -> int:
    """How good a place the gap after ``before`` is to break a line or caption (higher is better)."""
    if before.is_sentence_end:
        return 30
    if before.text.endswith(_CLAUSE_END):
        return 20
    if after is not None and after.text.lower().strip("\"'“«(") in _PHRASE_STARTERS:
        return 10
    return 0


def split_lines(words: Sequence[TimedWord], max_chars: int, max_lines: int) -> list[list[TimedWord]] | None:
    """``words`` on at most ``max_lines`` lines of ``max_chars``, balanced and broken at phrase boundaries.

    None when they do not fit. Two lines are chosen by score (length balance,
    punctuation, phrase starts); more lines are filled greedily.
    """
    if not words:
        return []
    if _chars(words) <= max_chars:
        return [list(words)]
    if max_lines < 2:
        return None
    if max_lines == 2:
        best: tuple[float, int] | None = None
        for k in range(1, len(words)):
            top, bottom = words[:k], words[k:]
            if _chars(top) > max_chars or _chars(bottom) > max_chars:
                continue
            score = abs(_chars(top) - _chars(bottom)) - _break_bonus(words[k - 1], words[k])
            if best is None or score < best[0]:
                best = (score, k)
        if best is None:
            return None
        return [list(words[: best[1]]), list(words[best[1]:])]
    lines: list[list[TimedWord]] = [[]]
    for w in words:
        if lines[-1] and _chars([*lines[-1], w]) > max_chars:
            lines.append([])
        lines[-1].append(w)
    return lines if len(lines) <= max_lines and all(_chars(line) <= max_chars for line in lines) else None


def _fits(words: Sequence[TimedWord], rules: LayoutRules) -> bool:
    if words[-1].end - words[0].start > rules.max_seconds:
        return len(words) == 1
    return split_lines(words, rules.max_line_chars, rules.max_lines) is not None or len(words) == 1


def _cut(words: list[TimedWord]) -> int:
    """Where to end a caption that cannot take the next word: the best break that keeps a fair first part."""
    total = _chars(words)
    best_k, best_score = len(words), 0.0
    for k in range(1, len(words)):
        bonus = _break_bonus(words[k - 1], words[k])
        if bonus and _chars(words[:k]) >= total / 3:
            score = bonus + 10 * k / len(words)  # later breaks fill the screen better
            if score > best_score:
                best_k, best_score = k, score
    return best_k


def group_words(words: Sequence[TimedWord], rules: LayoutRules | None = None) -> list[Caption]:
    """Captions for ``words`` (in spoken order), following ``rules``."""
    rules = rules or LayoutRules()
    groups: list[list[TimedWord]] = []
    current: list[TimedWord] = []
    for i, w in enumerate(words):
        if current and w.start - current[-1].end > _LONG_PAUSE:
            groups.append(current)
            current = []
        while current and not _fits([*current, w], rules):
            k = _cut(current)
            groups.append(current[:k])
            current = current[k:]
        current.append(w)
        if w.is_sentence_end and i + 1 < len(words):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    captions: list[Caption] = []
    for n, group in enumerate(groups):
        lines = split_lines(group, rules.max_line_chars, rules.max_lines) or [group]  # one over-long word
        start = group[0].start
        next_start = groups[n + 1][0].start if n + 1 < len(groups) else float("inf")
        wanted = max(group[-1].end, start + rules.min_seconds, start + _chars(group) / rules.max_cps)
        end = min(wanted, start + max(rules.max_seconds, group[-1].end - start), next_start - _MIN_GAP)
        end = max(end, group[-1].end if group[-1].end <= next_start else next_start, start + 0.001)
        captions.append(Caption(start=start, end=end, lines=tuple(tuple(line) for line in lines)))
    return captions
