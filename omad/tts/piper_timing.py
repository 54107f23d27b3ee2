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

espeak sometimes joins words ("for a" becomes one phonetic word, "fɚɹə") or
splits one. Then each token is phonemized on its own and the two sequences
are matched by dynamic programming on phoneme counts (a token group to a
phonetic-word group, up to three to one either way); a phonetic word that
holds several tokens is shared between them by their phoneme counts. When
even that cannot match, this gives up and the caller falls back to the
aligner: a wrong word is worse than an aligned one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .wordtiming import WordTime

__all__ = ["SentenceAlignment", "words_from_alignment"]

_BOS, _EOS, _PAD, _SPACE = "^", "$", "_", " "
_PUNCTUATION = set(".,;:!?¡¿—–-…\"'()[]«»")
_MARKS = set("ˈˌːˑ") | {"\u0303", "\u0329", "\u032f", "\u0361"}  # stress, length, nasal and tie marks: no time
_GROUP = 3  # at most this many tokens in one phonetic word, or phonetic words in one token


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


def _weight(phonemes: Sequence[str]) -> int:
    return sum(1 for p in phonemes if p not in _MARKS and p not in _PUNCTUATION and p != _SPACE)


def _match(tokens: Sequence[int], words: Sequence[int]) -> list[tuple[int, int, int, int]] | None:
    """Groups (token i, token j, word k, word l) pairing tokens[i:j] with words[k:l], by least phoneme mismatch."""
    n, m = len(tokens), len(words)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for k in range(m + 1):
            if cost[i][k] == inf:
                continue
            for a, b in [(1, 1)] + [(g, 1) for g in range(2, _GROUP + 1)] + [(1, g) for g in range(2, _GROUP + 1)]:
                if i + a > n or k + b > m:
                    continue
                # a merge or split costs a little more than a match, so one-to-one wins a tie
                c = cost[i][k] + abs(sum(tokens[i:i + a]) - sum(words[k:k + b])) + 0.5 * (a + b - 2)
                if c < cost[i + a][k + b]:
                    cost[i + a][k + b] = c
                    back[i + a][k + b] = (i, k)
    if cost[n][m] == inf:
        return None
    groups: list[tuple[int, int, int, int]] = []
    i, k = n, m
    while i or k:
        prev = back[i][k]
        if prev is None:
            return None
        groups.append((prev[0], i, prev[1], k))
        i, k = prev
    return groups[::-1]


def words_from_alignment(text: str, sentences: Sequence[SentenceAlignment], id_map: Mapping[str, Sequence[int]],
                         sample_rate: int, phonemize: Callable[[str], Sequence[str]] | None = None,
                         ) -> list[WordTime] | None:
    """Every whitespace token of ``text`` timed from Piper's alignment, or None when it cannot be trusted.

    ``phonemize`` (a token's phonemes, as the voice makes them) lets words
    espeak joined or split be matched; without it only a one-to-one match counts.
    """
    tokens = text.split()
    spans: list[tuple[int, int]] = []
    weights: list[int] = []
    for sentence in sentences:
        found = _phonetic_words(sentence, id_map)
        if found is None:
            return None
        spans.extend(found)
        weights.extend(_sentence_weights(sentence, id_map))
    if not tokens or not spans or len(weights) != len(spans):
        return None
    if len(spans) == len(tokens):
        return [WordTime(start=a / sample_rate, end=max(a, b) / sample_rate, text=tok)
                for (a, b), tok in zip(spans, tokens, strict=True)]
    if phonemize is None:
        return None
    token_weights = [max(1, _weight(phonemize(tok))) for tok in tokens]
    groups = _match(token_weights, weights)
    if groups is None:
        return None
    out: list[WordTime] = []
    for i, j, k, last in groups:
        start, end = spans[k][0], spans[last - 1][1]
        total = sum(token_weights[i:j])
        at = float(start)
        for t in range(i, j):
            share = (end - start) * token_weights[t] / total
            out.append(WordTime(start=at / sample_rate, end=(at + share) / sample_rate, text=tokens[t]))
            at += share
    return out


def _sentence_weights(sentence: SentenceAlignment, id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """The phoneme count of each phonetic word of one sentence (in the order ``_phonetic_words`` gives them)."""
    weights: list[int] = []
    current: list[str] = []
    for phoneme in [*sentence.phonemes, _SPACE]:
        if phoneme not in id_map and phoneme != _SPACE:
            continue
        if phoneme == _SPACE:
            if any(p not in _PUNCTUATION for p in current):
                weights.append(max(1, _weight(current)))
            current = []
        else:
            current.append(phoneme)
    return weights
