"""Word onsets from Piper's own alignment: how many samples each phoneme id took.

Piper phonemizes a sentence with espeak-ng into a list of phonemes (IPA
characters, with ``" "`` between words and punctuation kept), then turns it
into ids the way ``piper.phoneme_ids.phonemes_to_ids`` does: BOS, PAD, then
each phoneme's ids followed by a PAD, then EOS (a phoneme missing from the
voice's map is skipped). A voice whose duration tensor is exposed reports
``phoneme_id_samples``, one count per id. Walking the phonemes and the ids
together, a word starts at the sum of the samples of every id before its
first phoneme and ends after its last sounding one (punctuation and the
PAD that follows are not the word).

When the phonetic words do not match the text's whitespace tokens one to one
(espeak sometimes joins or splits words), this gives up and the caller falls
back to the aligner: a wrong word is worse than an aligned one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .wordtiming import WordTime

__all__ = ["SentenceAlignment", "words_from_alignment"]

_BOS, _EOS, _PAD, _SPACE = "^", "$", "_", " "
_PUNCTUATION = set(".,;:!?¡¿—–-…\"'()[]«»")


@dataclass(frozen=True)
class SentenceAlignment:
    """One of Piper's audio chunks (a sentence): its phonemes, ids, samples per id, and where it starts."""

    phonemes: Sequence[str]
    phoneme_ids: Sequence[int]
    phoneme_id_samples: Sequence[int] | np.ndarray
    offset: int  # samples before this chunk in the engine's output


def _phonetic_words(sentence: SentenceAlignment, id_map: Mapping[str, Sequence[int]]) -> list[tuple[int, int]] | None:
    """(start, end) sample of each phonetic word of one sentence, or None when the ids do not match."""
    samples = [int(x) for x in np.asarray(sentence.phoneme_id_samples).reshape(-1)]
    ids = list(sentence.phoneme_ids)
    if len(samples) != len(ids):
        return None
    pad = list(id_map.get(_PAD, []))
    cumulative = np.concatenate([[0], np.cumsum(samples)])
    index = len(id_map.get(_BOS, [])) + len(pad)
    words: list[tuple[int, int]] = []
    current: list[int] | None = None  # [start, end] of the word being read
    for phoneme in sentence.phonemes:
        expected = id_map.get(phoneme)
        if expected is None:
            continue  # phonemes_to_ids skips it too
        width = len(expected) + len(pad)
        if ids[index:index + len(expected)] != list(expected):
            return None
        start, end = int(cumulative[index]), int(cumulative[index + len(expected)])
        index += width
        if phoneme == _SPACE:
            current = None
            continue
        if phoneme in _PUNCTUATION:
            continue
        if current is None:
            current = [start, end]
            words.append((start, end))
        else:
            current[1] = end
            words[-1] = (current[0], end)
    return [(a + sentence.offset, b + sentence.offset) for a, b in words]


def words_from_alignment(text: str, sentences: Sequence[SentenceAlignment], id_map: Mapping[str, Sequence[int]],
                         sample_rate: int) -> list[WordTime] | None:
    """Every whitespace token of ``text`` timed from Piper's alignment, or None when it cannot be trusted."""
    tokens = text.split()
    spans: list[tuple[int, int]] = []
    for sentence in sentences:
        found = _phonetic_words(sentence, id_map)
        if found is None:
            return None
        spans.extend(found)
    if not tokens or len(spans) != len(tokens):
        return None
    return [WordTime(start=a / sample_rate, end=max(a, b) / sample_rate, text=tok)
            for (a, b), tok in zip(spans, tokens, strict=True)]
