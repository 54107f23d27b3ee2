"""When each spoken word starts and ends, with no model to download.

Two sources, both built on espeak-ng, which is always installed:

- **espeak's own word events.** libespeak-ng reports, for every word, the
  audio position where it begins. Spoken through the library with the same
  voice, rate and pitch as the ``espeak-ng`` program, the recording is the
  program's to within tens of milliseconds (the library keeps some state
  between texts), so the events are carried onto the program's recording by
  the alignment below, which between two near-identical recordings is
  nearly exact.
- **forced alignment for any other voice (F5).** The known text is spoken by
  espeak as a reference whose word onsets are known; both recordings become
  MFCC frames (10 ms, mean and variance normalised per recording so that the
  voices' timbres cancel) and dynamic time warping maps reference frames to
  target frames. Each reference onset, carried through the warp path, is the
  target's onset (the approach of aeneas, without its dependencies).

An event marks where espeak *starts* a word, pause included; onsets are
moved past leading silence so a caption appears with the voice, not with the
breath before it.

libespeak-ng is not thread-safe: every call goes through one lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ToolMissing

__all__ = ["WordTime", "espeak_words", "align_words", "EspeakLibrary", "espeak_library", "frame_energy", "mfcc",
           "dtw_path"]

_FRAME = 0.010  # seconds per analysis frame
_LOCK = threading.Lock()
_TOKEN = re.compile(r"\S+")
_SILENCE = 0.04  # frames quieter than this fraction of the loudest frame are silence
_MAX_CELLS = 4_000_000  # DTW matrix cells before frames are pooled


@dataclass(frozen=True)
class WordTime:
    """One whitespace-separated token of the spoken text, and when it is heard (seconds)."""

    start: float
    end: float
    text: str


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1
_RATE, _PITCH = 1, 3
_POS_CHARACTER, _CHARS_UTF8 = 1, 1


class EspeakLibrary:
    """libespeak-ng through ctypes: audio and word events for a text."""

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = int(self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None, 0))
        if self.sample_rate <= 0:
            raise ToolMissing("libespeak-ng did not initialise (is espeak-ng-data installed?). "
                              "Install it with `sudo apt-get install espeak-ng`.")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept on self: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes.Array[ctypes.c_short], n: int, events: ctypes.Array[_Event]) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self._events.append((e.text_position - 1, e.length, e.sample))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """16-bit samples at ``sample_rate`` and word events (character offset, length, sample offset)."""
        with _LOCK:
            self._chunks, self._events = [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ToolMissing(f"libespeak-ng has no voice '{voice}'. Run `espeak-ng --voices` to list voices.")
            self._lib.espeak_SetParameter(_RATE, rate, 0)
            self._lib.espeak_SetParameter(_PITCH, pitch, 0)
            data = text.encode("utf-8")
            buf = ctypes.create_string_buffer(data)
            self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
            return audio.astype(np.int16), list(self._events)


@lru_cache(maxsize=1)
def espeak_library() -> EspeakLibrary:
    """The process's one libespeak-ng instance."""
    path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        return EspeakLibrary(path)
    except OSError as e:
        raise ToolMissing(f"libespeak-ng cannot be loaded ({e}); word-timed captions need it. "
                          "Install it with `sudo apt-get install espeak-ng`.") from e


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


def _words_from_onsets(text: str, onsets: list[float | None], audio: np.ndarray, rate: int) -> list[WordTime]:
    """Tokens with onsets (None: unknown, interpolated), moved past leading silence; ends before the next word."""
    duration = len(audio) / rate if rate else 0.0
    tokens = _tokens(text)
    known = [(i, t) for i, t in enumerate(onsets) if t is not None]
    if not tokens:
        return []
    if not known:
        known = [(0, 0.0)]
    filled: list[float] = []
    for i in range(len(tokens)):
        if onsets[i] is not None:
            filled.append(float(onsets[i]))  # type: ignore[arg-type]
            continue
        before = [(j, t) for j, t in known if j < i]
        after = [(j, t) for j, t in known if j > i]
        if before and after:
            (j0, t0), (j1, t1) = before[-1], after[0]
            filled.append(t0 + (t1 - t0) * (i - j0) / (j1 - j0))
        else:
            filled.append(before[-1][1] if before else after[0][1])
    energy = frame_energy(audio, rate)
    loud = energy > (_SILENCE * energy.max() if energy.size else 0.0)
    words: list[WordTime] = []
    for i, (_a, _b, tok) in enumerate(tokens):
        start = filled[i]
        nxt = filled[i + 1] if i + 1 < len(tokens) else duration
        f, last = int(start / _FRAME), int(nxt / _FRAME)
        while f < min(last, len(loud)) and not loud[f]:
            f += 1  # the event sits where the pause before the word begins
        if f < min(last, len(loud)):
            start = max(start, f * _FRAME)
        words.append(WordTime(start=start, end=max(start, nxt), text=tok))
    # A word ends where the voice stops, not after the pause that follows it.
    out: list[WordTime] = []
    for w in words:
        f = min(int(w.end / _FRAME), len(loud)) - 1
        while f > int(w.start / _FRAME) and not loud[f]:
            f -= 1
        out.append(WordTime(w.start, max(w.start + _FRAME, min(w.end, (f + 1) * _FRAME)), w.text))
    return out


def espeak_words(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int, list[WordTime]]:
    """Speak ``text`` with libespeak-ng: samples, sample rate and every token's timing from espeak's events."""
    lib = espeak_library()
    audio, events = lib.synthesize(text, voice, rate, pitch)
    tokens = _tokens(text)
    onsets: list[float | None] = [None] * len(tokens)
    for pos, _length, sample in events:
        for i, (a, b, _tok) in enumerate(tokens):
            if a <= pos < b:
                if onsets[i] is None:
                    onsets[i] = sample / lib.sample_rate
                break
    return audio, lib.sample_rate, _words_from_onsets(text, onsets, audio, lib.sample_rate)


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
    feats = np.concatenate([c[:, 1:], np.gradient(c[:, 1:], axis=0)], axis=1)  # c0 is loudness: voices differ
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


def align_words(text: str, audio: np.ndarray, rate: int, voice: str = "pt-br", ref_rate: int = 160,
                ref_pitch: int = 50) -> list[WordTime]:
    """Every token of ``text`` timed in ``audio`` (any voice), by DTW against espeak speaking the same text."""
    ref_audio, ref_sr, ref_words = espeak_words(text, voice, ref_rate, ref_pitch)
    if not ref_words or len(audio) == 0 or len(ref_audio) == 0:
        return []
    ref, target = mfcc(ref_audio, ref_sr), mfcc(audio, rate)
    # The warp needs len(ref) x len(target) cells: past ~2000 x 2000 (three 32 MB matrices) frames
    # are merged, trading 10 ms of resolution per step for memory on modest machines.
    step = max(1, math.ceil(math.sqrt(len(ref) * len(target) / _MAX_CELLS)))
    path = dtw_path(_pool(ref, step), _pool(target, step))
    # For each (pooled) reference frame, the first target frame it maps to.
    first = np.full(path[:, 0].max() + 1, -1)
    for r, t in path[::-1]:
        first[r] = t
    onsets: list[float | None] = []
    for w in ref_words:
        f = min(int(round(w.start / (_FRAME * step))), len(first) - 1)
        onsets.append(float(first[f]) * _FRAME * step)
    return _words_from_onsets(text, onsets, audio, rate)
