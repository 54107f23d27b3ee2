"""When each spoken word starts and ends, with no model to download.

Two sources, both built on espeak-ng, which is always installed:

- **espeak's own word events.** libespeak-ng reports, for every word, the
  audio position where it begins. The espeak engine speaks a chunk of
  ordinary length through the library, so its words are timed by these
  events exactly (``spoken_words``). A chunk too long to speak in-process is
  spoken by the ``espeak-ng`` program; the library's recording of the same
  text is the program's to within a few hundredths of a second (the library
  keeps some state between texts), so the events are carried onto the
  program's recording by the alignment below, which between two
  near-identical recordings is nearly exact.
- **forced alignment for any other voice (F5, Piper).** The known text is
  spoken by espeak as a reference whose word onsets are known; both
  recordings become MFCC frames (10 ms, mean and variance normalised per
  recording so that the voices' timbres cancel) and dynamic time warping maps
  reference frames to target frames. Each reference onset, carried through
  the warp path, is the target's onset (the approach of aeneas, without its
  dependencies). Pauses either side has and the other lacks, and a speaker
  much slower or faster than the reference, are handled before the warp (see
  ``align_words``).

A word event marks where espeak *starts* a word, pause included; with the
phoneme events, a word that espeak opens with a pause (after a comma) starts
at its first sounding phoneme, so a caption appears with the voice, not with
the breath before it. A stop consonant's silent closure inside a phrase
("comprou pão") is part of its word and is never taken for a pause.

libespeak-ng itself is reached through ``omad.tts._espeak_lib`` (one lock for
every call: it is not thread-safe).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ._espeak_lib import EspeakLibrary, Spoken, espeak_library

__all__ = ["WordTime", "espeak_words", "spoken_words", "align_words", "EspeakLibrary", "Spoken", "espeak_library",
           "frame_energy", "mfcc", "dtw_path"]

_FRAME = 0.010  # seconds per analysis frame
_TOKEN = re.compile(r"\S+")
_QUIET_BELOW_LOUD_DB = 35.0  # a frame this far under the loud frames (95th percentile) is quiet...
_QUIET_OVER_FLOOR_DB = 6.0  # ...unless that is inside the recording's noise floor: then this over it
_FLOOR_PERCENTILE = 1.0  # the floor: a sentence's stop closures alone fill 1 % of its frames; weak consonants 5 %
_MIN_PAUSE = 0.15  # seconds of quiet that make a pause; a stop consonant's closure is shorter
_KEEP_PAUSE = 3  # frames of each pause the warp still sees
_PAUSE_TO_BOUNDARY = 0.15  # seconds between where the warp puts a pause and the word boundary it is taken for
_TEMPO_SPAN = (0.85, 1.18)  # speech-length ratios (target / reference) the warp absorbs without a new reference
_MIN_RATE, _MAX_RATE = 80, 450  # espeak-ng's words-per-minute range
_MAX_CELLS = 4_000_000  # DTW matrix cells before frames are pooled


@dataclass(frozen=True)
class WordTime:
    """One whitespace-separated token of the spoken text, and when it is heard (seconds)."""

    start: float
    end: float
    text: str


def frame_energy(audio: np.ndarray, rate: int) -> np.ndarray:
    """RMS loudness of each 10 ms frame."""
    hop = max(1, round(rate * _FRAME))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0)
    frames = audio[: n * hop].astype(np.float64).reshape(n, hop)
    energy: np.ndarray = np.sqrt((frames**2).mean(axis=1))
    return energy


def _tokens(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]


def _fill(onsets: list[float | None], n: int) -> list[float]:
    """``n`` onsets with the unknown ones (None) interpolated between their known neighbours."""
    known = [(i, float(t)) for i, t in enumerate(onsets) if t is not None] or [(0, 0.0)]
    filled: list[float] = []
    for i in range(n):
        t = onsets[i] if i < len(onsets) else None
        if t is not None:
            filled.append(float(t))
            continue
        before = [(j, u) for j, u in known if j < i]
        after = [(j, u) for j, u in known if j > i]
        if before and after:
            (j0, t0), (j1, t1) = before[-1], after[0]
            filled.append(t0 + (t1 - t0) * (i - j0) / (j1 - j0))
        else:
            filled.append(before[-1][1] if before else after[0][1])
    return filled


def _words_from_onsets(text: str, onsets: list[float | None], audio: np.ndarray, rate: int) -> list[WordTime]:
    """Tokens starting at their onsets (None: unknown, interpolated); a word ends where the voice stops."""
    duration = len(audio) / rate if rate else 0.0
    tokens = _tokens(text)
    if not tokens:
        return []
    filled = _fill(onsets, len(tokens))
    for i in range(1, len(filled)):
        filled[i] = max(filled[i], filled[i - 1])  # spoken in order
    quiet = _quiet_frames(audio, rate)
    out: list[WordTime] = []
    for i, (_a, _b, tok) in enumerate(tokens):
        start = filled[i]
        nxt = max(start, filled[i + 1] if i + 1 < len(tokens) else duration)
        # A word ends where the voice stops, not after the pause that follows it.
        f = min(int(nxt / _FRAME), len(quiet)) - 1
        while f > int(start / _FRAME) and quiet[f]:
            f -= 1
        out.append(WordTime(start, max(start + _FRAME, min(nxt, (f + 1) * _FRAME)), tok))
    return out


def _event_onsets(text: str, spoken: Spoken, sample_rate: int) -> list[float | None]:
    """Each token's onset from espeak's events: its word event, or its first sound when a pause opens it.

    espeak puts the pause after a comma at the start of the next word. Only
    there is the word's onset moved, to its first phoneme that is not a pause;
    a stop consonant's silent closure inside a phrase belongs to its word.
    """
    tokens = _tokens(text)
    onsets: list[float | None] = [None] * len(tokens)
    pauses = {sample for sample, name in spoken.phonemes if name.startswith("_")}
    sounds = sorted(sample for sample, name in spoken.phonemes if not name.startswith("_"))
    for pos, _length, sample in spoken.words:
        for i, (a, b, _tok) in enumerate(tokens):
            if a <= pos < b:
                if onsets[i] is None:
                    at = sample
                    if sample in pauses:
                        k = int(np.searchsorted(sounds, sample))
                        at = sounds[k] if k < len(sounds) else sample
                    onsets[i] = at / sample_rate
                break
    return onsets


def spoken_words(text: str, spoken: Spoken, sample_rate: int) -> list[WordTime]:
    """Every token of ``text`` timed in what libespeak-ng made of it, from its events."""
    return _words_from_onsets(text, _event_onsets(text, spoken, sample_rate), spoken.audio, sample_rate)


def espeak_words(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int, list[WordTime]]:
    """Speak ``text`` with libespeak-ng: samples, sample rate and every token's timing from espeak's events."""
    lib = espeak_library()
    spoken = lib.speak(text, voice, rate, pitch)
    return spoken.audio, lib.sample_rate, spoken_words(text, spoken, lib.sample_rate)


# -- forced alignment --------------------------------------------------------------------------------


def _mel_filters(rate: int, n_fft: int, n_mels: int = 26) -> np.ndarray:
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    top = min(rate / 2, 8000.0)
    mels = np.linspace(hz_to_mel(np.array(60.0)), hz_to_mel(np.array(top)), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.floor((n_fft + 1) * hz / rate).astype(int)
    filters = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(1, n_mels + 1):
        lo, mid, hi = bins[m - 1], bins[m], bins[m + 1]
        for k in range(lo, mid):
            filters[m - 1, k] = (k - lo) / max(1, mid - lo)
        for k in range(mid, hi):
            filters[m - 1, k] = (hi - k) / max(1, hi - mid)
    return filters


def mfcc(audio: np.ndarray, rate: int, n_coeffs: int = 13) -> np.ndarray:
    """MFCC frames (10 ms hop, 25 ms window), each coefficient normalised to zero mean, unit variance."""
    x = audio.astype(np.float64)
    if x.size and np.abs(x).max() > 0:
        x = x / np.abs(x).max()
    x = np.append(x[0] if x.size else 0.0, x[1:] - 0.97 * x[:-1])  # pre-emphasis
    hop, win = round(rate * _FRAME), round(rate * 0.025)
    n_fft = 1 << (win - 1).bit_length()
    n = max(1, 1 + (len(x) - win) // hop) if len(x) >= win else 1
    x = np.pad(x, (0, max(0, (n - 1) * hop + win - len(x))))
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hamming(win)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft
    mel = np.log(power @ _mel_filters(rate, n_fft).T + 1e-10)
    k = np.arange(mel.shape[1])
    dct = np.cos(np.pi / mel.shape[1] * (k[None, :] + 0.5) * np.arange(n_coeffs)[:, None])
    c = mel @ dct.T
    slope = np.gradient(c[:, 1:], axis=0) if len(c) > 1 else np.zeros_like(c[:, 1:])  # one frame: no slope
    feats = np.concatenate([c[:, 1:], slope], axis=1)  # c0 is loudness: voices differ
    normalised: np.ndarray = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-8)
    return normalised


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The warp path (pairs of frame indices) between feature sequences ``a`` and ``b``."""
    # Euclidean distances without an (n, m, features) intermediate: long chunks stay small in memory.
    sq = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    cost = np.sqrt(np.maximum(sq, 0.0))
    n, m = cost.shape
    acc = np.empty((n, m))
    # Row by row: with horizontal steps allowed, a row is a running minimum over prefix sums.
    s = np.cumsum(cost[0])
    acc[0] = s
    for i in range(1, n):
        diag = np.concatenate([[np.inf], acc[i - 1, :-1]])
        a_row = cost[i] + np.minimum(acc[i - 1], diag)
        s = np.cumsum(cost[i])
        acc[i] = s + np.minimum.accumulate(a_row - s)
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
            if step == 0:
                i, j = i - 1, j - 1
            elif step == 1:
                i -= 1
            else:
                j -= 1
        path.append((i, j))
    return np.array(path[::-1])


def _pool(feats: np.ndarray, step: int) -> np.ndarray:
    """Mean of every ``step`` consecutive frames."""
    if step == 1:
        return feats
    n = len(feats) // step * step
    pooled: np.ndarray = feats[:n].reshape(-1, step, feats.shape[1]).mean(axis=1) if n else feats[:1]
    return pooled


def _levels(audio: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Each 10 ms frame's level in dB under the loud frames (95th percentile), and the quiet line on that
    scale: far under the loud frames, but above the recording's own noise floor."""
    energy = frame_energy(audio, rate)
    if not energy.size:
        return np.zeros(0), 0.0
    db = 20.0 * np.log10(energy + 1e-3)
    loud = float(np.percentile(db, 95))
    floor = float(np.percentile(db, _FLOOR_PERCENTILE))
    level: np.ndarray = db - loud
    if loud - floor < 2 * _QUIET_OVER_FLOOR_DB:
        return level, -math.inf  # as loud throughout (noise, or silence): nothing to call a pause
    return level, max(floor + _QUIET_OVER_FLOOR_DB, loud - _QUIET_BELOW_LOUD_DB) - loud


def _quiet_frames(audio: np.ndarray, rate: int) -> np.ndarray:
    """Which 10 ms frames are quiet (under the quiet line of ``_levels``)."""
    level, line = _levels(audio, rate)
    quiet: np.ndarray = level < line
    return quiet


def _pauses(quiet: np.ndarray) -> list[tuple[int, int]]:
    """Runs [a, b) of quiet frames long enough to be pauses (a closure inside a word is not one)."""
    runs: list[tuple[int, int]] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    least = round(_MIN_PAUSE / _FRAME)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= least:
            runs.append((int(a), int(b)))
    return runs


def _kept(n: int, pauses: list[tuple[int, int]]) -> np.ndarray:
    """Frame indices the warp sees: every frame but the bulk of each pause (its last frames stay)."""
    keep = np.ones(n, dtype=bool)
    for a, b in pauses:
        keep[a: max(a, min(n, b) - _KEEP_PAUSE)] = False
    kept: np.ndarray = np.flatnonzero(keep)
    return kept if kept.size else np.arange(n)


def _normalised(feats: np.ndarray) -> np.ndarray:
    out: np.ndarray = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-8)
    return out


@dataclass
class _Side:
    """One recording as the warp sees it: features of its kept frames, its quiet frames and pauses."""

    feats: np.ndarray
    kept: np.ndarray
    quiet: np.ndarray
    pauses: list[tuple[int, int]]
    level: np.ndarray  # dB under the loud frames
    line: float  # the quiet line on that scale

    @classmethod
    def of(cls, audio: np.ndarray, rate: int) -> _Side:
        feats = mfcc(audio, rate)
        level, line = _levels(audio, rate)
        quiet: np.ndarray = level < line
        pauses = _pauses(quiet)
        kept = _kept(len(feats), pauses)
        return cls(_normalised(feats[kept]), kept, quiet, pauses, level, line)


def _reference(text: str, voice: str, rate: int, pitch: int) -> tuple[_Side, list[float | None]]:
    lib = espeak_library()
    spoken = lib.speak(text, voice, rate, pitch)
    return _Side.of(spoken.audio, lib.sample_rate), _event_onsets(text, spoken, lib.sample_rate)


def align_words(text: str, audio: np.ndarray, rate: int, voice: str = "pt-br", ref_rate: int = 160,
                ref_pitch: int = 50) -> list[WordTime]:
    """Every token of ``text`` timed in ``audio`` (any voice), by DTW against espeak speaking the same text.

    Where a natural voice differs from espeak the warp is helped three ways:
    pauses (leading silence, a breath in mid-sentence) are cut down to a few
    frames on both sides before warping, so neither has to absorb a pause the
    other lacks; when the speech lengths differ by more than the warp takes
    well, the reference is spoken again at the target's tempo; and the word
    after each of the target's pauses (the word found inside it, or the one
    whose reference boundary the warp puts the pause at) starts where the
    pause ends, less the silent closure its first consonant has in the
    reference. A quiet stretch shorter than a pause (a closure) moves nothing.
    """
    if not _tokens(text) or len(audio) == 0:
        return []
    target = _Side.of(audio, rate)
    ref, ref_onsets = _reference(text, voice, ref_rate, ref_pitch)
    if not ref.kept.size or all(t is None for t in ref_onsets):
        return []
    ratio = len(target.kept) / len(ref.kept)
    if not _TEMPO_SPAN[0] <= ratio <= _TEMPO_SPAN[1]:
        tempo = max(_MIN_RATE, min(_MAX_RATE, round(ref_rate / ratio)))
        if tempo != ref_rate:
            ref, ref_onsets = _reference(text, voice, tempo, ref_pitch)
    # The warp needs len(ref) x len(target) cells: past ~2000 x 2000 (three 32 MB matrices) frames
    # are merged, trading 10 ms of resolution per step for memory on modest machines.
    step = max(1, math.ceil(math.sqrt(len(ref.kept) * len(target.kept) / _MAX_CELLS)))
    path = dtw_path(_pool(ref.feats, step), _pool(target.feats, step))
    # For each (pooled) reference frame, the first target frame it maps to.
    first = np.full(path[:, 0].max() + 1, -1)
    for r, t in path[::-1]:
        first[r] = t
    onsets: list[float | None] = []
    for t in ref_onsets:
        if t is None:
            onsets.append(None)
            continue
        f = int(round(t / _FRAME))
        kept_index = min(int(np.searchsorted(ref.kept, f)), len(ref.kept) - 1)
        pooled = min(kept_index // step, len(first) - 1)
        frame = int(target.kept[min(int(first[pooled]) * step, len(target.kept) - 1)])
        onsets.append(_out_of_pause(frame, target, _closure(f, ref, target)) * _FRAME)
    after = _words_after_pauses(path, step, target, ref, ref_onsets)
    for (a, b), word in zip(target.pauses, after, strict=True):
        if word is not None and (onsets[word] or 0.0) < b * _FRAME:
            onsets[word] = max(a, b - _closure(round((ref_onsets[word] or 0.0) / _FRAME), ref, target)) * _FRAME
    return _words_from_onsets(text, onsets, audio, rate)


def _words_after_pauses(path: np.ndarray, step: int, target: _Side, ref: _Side,
                        ref_onsets: list[float | None]) -> list[int | None]:
    """For each of the target's pauses, the word it comes before (None: none near, or the end).

    People pause between words. The warp says where in the reference each
    pause falls; the reference's word boundary nearest to that place, within
    a syllable or so, is the one the pause precedes. This holds the word after
    a pause on its side of it even when the warp, off by a few frames, put its
    start on the end of the word before (a few frames that the cut-down pause
    turns into the whole pause's length).
    """
    known = [(i, t) for i, t in enumerate(ref_onsets) if t is not None]
    out: list[int | None] = []
    for a, b in target.pauses:
        if b >= len(target.quiet):  # silence to the end: no word after it
            out.append(None)
            continue
        kept = np.flatnonzero((target.kept >= a) & (target.kept < b)) // step
        paired = path[np.isin(path[:, 1], kept), 0] * step
        if not paired.size or not known:
            out.append(None)
            continue
        at = float(np.mean(ref.kept[np.minimum(paired, len(ref.kept) - 1)])) * _FRAME
        word, onset = min(known, key=lambda it: abs(it[1] - at))
        out.append(word if abs(onset - at) <= _PAUSE_TO_BOUNDARY else None)
    return out


def _closure(frame: int, ref: _Side, target: _Side) -> int:
    """Frames from a reference word's onset ``frame`` that would be under the target's quiet line.

    The onset is exact and past any pause, so they belong to the word: a
    stop's closure, or a weak consonant ("f" said slowly) that the target's
    noise floor hides. Where the target's pause seems to end, the word began
    this much earlier.
    """
    f = frame
    while f < len(ref.level) and ref.level[f] < target.line:
        f += 1
    return f - frame


def _out_of_pause(frame: int, side: _Side, closure: int) -> int:
    """``frame``, or where speech resumes (less the word's closure) when it lies inside one of ``side``'s pauses.

    The warp sees a pause as a few frames, so a word just after a pause the
    reference lacks can land a frame or two before it (the reference's closure
    matched the pause): a word does not start in the last few frames before a
    pause, it starts after it.
    """
    for a, b in side.pauses:
        if a - _KEEP_PAUSE <= frame < b:
            return max(a, b - closure)
    return frame
