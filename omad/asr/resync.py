"""Re-timing existing captions onto the speech: each cue's words matched to the recognised words.

The cue texts, read in order as one stream of words, are aligned with the
words Whisper heard (a longest-common-subsequence match on normalised words,
``difflib``'s), so a cue moves to where its own words were said even when the
file is off by a constant, drifts, or has cues the speaker skipped. A cue
with too few of its words found keeps its time and is listed; cues come out
in time order, each ending before the next starts. The text is never changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..media.subtitles import Cue
from . import Word
from .filters import normalise

__all__ = ["Resynced", "resync_cues", "MIN_MATCHED"]

#: The share of a cue's words that must be found in the speech for it to move.
MIN_MATCHED = 0.5
_GAP = 0.04  # seconds kept between a cue's end and the next one's start


@dataclass
class Resynced:
    cues: list[Cue]
    #: (cue number from 1, its text, its kept start) for each cue that matched nothing usable
    unmatched: list[tuple[int, str, float]] = field(default_factory=list)
    #: each moved cue's start shift, seconds (new - old)
    shifts: list[float] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        ordered = sorted(self.shifts)
        median = ordered[len(ordered) // 2] if ordered else 0.0
        return {"cues": len(self.cues), "moved": len(self.shifts), "median_shift_seconds": round(median, 3),
                "unmatched": [{"cue": n, "text": t, "start": round(s, 3)} for n, t, s in self.unmatched]}


def resync_cues(cues: Sequence[Cue], words: Sequence[Word], min_matched: float = MIN_MATCHED) -> Resynced:
    """``cues`` with their times moved onto the recognised ``words``."""
    tokens: list[tuple[int, str]] = []  # (cue index, normalised word)
    for i, c in enumerate(cues):
        tokens += [(i, t) for t in normalise(c.text).split()]
    heard = [(w, t) for w in words for t in normalise(w.text).split()]
    matcher = difflib.SequenceMatcher(None, [t for _, t in tokens], [t for _, t in heard], autojunk=False)
    found: dict[int, list[Word]] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            cue = tokens[block.a + k][0]
            found.setdefault(cue, []).append(heard[block.b + k][0])
    out: list[Cue] = []
    result = Resynced(out)
    for i, c in enumerate(cues):
        total = len(normalise(c.text).split())
        mine = found.get(i, [])
        if total == 0 or len(mine) < max(1, min_matched * total):
            out.append(Cue(c.start, c.end, c.text))
            result.unmatched.append((i + 1, c.text, c.start))
            continue
        start, end = mine[0].start, max(mine[-1].end, mine[0].start + 0.3)
        out.append(Cue(start, end, c.text))
        result.shifts.append(start - c.start)
    # In time order; a cue ends before the next begins (an unmatched cue may now sit among moved ones).
    out.sort(key=lambda c: c.start)
    for k in range(len(out) - 1):
        cur, nxt = out[k], out[k + 1]
        if cur.end > nxt.start - _GAP:
            out[k] = Cue(cur.start, max(nxt.start - _GAP, cur.start + 0.1), cur.text)
    return result
