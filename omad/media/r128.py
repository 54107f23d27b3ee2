"""EBU R128 loudness of a recording (mono, or a stereo soundtrack), measured and normalised in numpy at its own rate.

For a short narration, loudnorm (``omad.media.loudness``) costs more than
everything else omad does for it: it only runs at 192 kHz, so each of its two
passes resamples the voice nearly nine-fold, runs its whole normaliser and, in
the first pass, throws the result away. espeak-ng's voice always needs a
limiter at the -16 LUFS target (its peaks sit ~2.5 dB under full scale at
~-20.5 LUFS), so every espeak narration paid for both passes: ~95 ms of CPU for
a one-sentence text that espeak-ng reads in ~10 ms. Here it is ~10 ms.

The measurement, at the voice's own rate:

- **Loudness** (ITU-R BS.1770-4, as EBU R128 uses it): K-weighting, mean
  square in 400 ms blocks every 100 ms, the absolute gate at -70 LUFS and the
  relative gate 10 LU under the first mean. The K-weighting filters are the
  standard's two biquads with libebur128's coefficients as designed for
  192 kHz (loudnorm's rate), applied by multiplying spectra: an FFT over the
  recording and a quarter second of silence, long enough that the filters'
  response has died out, gives the same samples as running the recursive
  filters, at a fraction of the cost in numpy.
- **True peak**: the recording oversampled four-fold (to at least 88.2 kHz)
  by band-limited (FFT) interpolation, from the same spectrum.

For a sentence (under 3 s) the figures are loudnorm's to within ~0.02 LU and
its true peak to ~0.01 dB (``tests/test_r128.py``). From 3 s on loudnorm's
first pass reads up to ~0.4 LU lower than ffmpeg's ebur128 meter and this
one, which agree.

Stereo is measured as BS.1770 does (both channels' K-weighted energy summed,
the true peak the larger of the two), and a long recording (a scene video's
soundtrack) piece by piece: pieces of ``_PIECE`` samples, each read with a
quarter second more on either side so that the filters have settled and the
interpolation has no edge within it, and only its middle kept. Memory then
stays near ~30 MB whatever the length, and the figures are the whole
recording's (``tests/test_r128.py`` checks pieces against one piece).

Normalising: one gain to the target; where that gain would put the true peak
over the ceiling, a look-ahead limiter lowers only the peaks (its gain ramps
down over ~17 ms before a peak, holds 30 ms, and ramps back). The limiter costs
a little loudness, so the gain is raised and the limiter run again until the
result measures on the target (searched on ~1 ms cells, ``_Grid``); the true
peak of the samples written is measured and must be under the ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["MAX_SAMPLES", "Measured", "measure", "normalise"]

#: The longest recording normalised here (samples a channel: 10 minutes at 48 kHz, ~22 at 22.05 kHz); its samples
#: are held in memory, in and out (~115 MB a channel at this length), and a longer one goes to loudnorm, streamed.
MAX_SAMPLES = 10 * 60 * 48000
#: A recording longer than this (samples a channel) is measured in pieces: the four-fold true peak needs ~100
#: bytes a sample at once (~26 MB for a piece), and a piece holds ~5.5 s at 48 kHz.
_PIECE = 1 << 18

#: The K-weighting filters' analogue parameters (BS.1770's 48 kHz coefficients, as libebur128 derives them).
_SHELF_F0, _SHELF_G, _SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
_HIGHPASS_F0, _HIGHPASS_Q = 38.13547087602444, 0.5003270373238773
_DESIGN_RATE = 192000
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE = 10.0
#: The limiter: ramp (samples over two boxes: 2 ms then 15 ms) and hold, in seconds.
_RAMP_A, _RAMP_B, _HOLD = 0.002, 0.015, 0.030


@dataclass(frozen=True)
class Measured:
    """Integrated loudness (LUFS), the relative gate's threshold (LUFS) and the true peak (dBTP)."""

    integrated: float
    threshold: float
    true_peak: float

    def report(self) -> dict[str, str]:
        """The figures as loudnorm's first pass reports them (strings with two decimals)."""
        def fmt(v: float) -> str:
            return f"{v:.2f}" if math.isfinite(v) else ("-inf" if v < 0 else "inf")

        return {"input_i": fmt(self.integrated), "input_tp": fmt(self.true_peak), "input_thresh": fmt(self.threshold)}


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (lengths the FFT handles fastest)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


@lru_cache(maxsize=16)
def _k_response(n: int, rate: int) -> np.ndarray:
    """The K-weighting filters' frequency response at the ``n``-point real FFT's bins of a ``rate`` Hz signal.

    The filters are the ones designed for 192 kHz, loudnorm's rate: for a voice below its Nyquist frequency
    that is what loudnorm's measurement does to it after resampling. (The design differs with the rate: the
    high-pass's pass band gains +0.09 dB when designed for 22.05 kHz, +0.01 dB for 192 kHz.)
    """
    design = _DESIGN_RATE
    k = math.tan(math.pi * _SHELF_F0 / design)
    vh = 10.0 ** (_SHELF_G / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf_b = [(vh + vb * k / _SHELF_Q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / _SHELF_Q + k * k) / a0]
    shelf_a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _SHELF_Q + k * k) / a0]
    k = math.tan(math.pi * _HIGHPASS_F0 / design)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    high_b = [1.0, -2.0, 1.0]
    high_a = [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0]
    z = np.exp(-2j * np.pi * (np.arange(n // 2 + 1) * rate / n) / design)  # z^-1 at each bin's frequency

    def biquad(b: list[float], a: list[float]) -> np.ndarray:
        h: np.ndarray = (b[0] + z * (b[1] + z * b[2])) / (a[0] + z * (a[1] + z * a[2]))
        return h

    response: np.ndarray = (biquad(shelf_b, shelf_a) * biquad(high_b, high_a)).astype(np.complex64)
    return response


class _Spectrum:
    """One recording's spectrum, padded so that filtering by multiplication equals the recursive filters.

    The inverse FFTs are in single precision (half the time of double here; ~1e-7 of full scale is far under a
    16-bit step and a thousandth of a LU); numpy's forward FFT is faster in double.
    """

    def __init__(self, x: np.ndarray, rate: int) -> None:
        self.rate, self.size = rate, len(x)
        self.n = _fast_len(len(x) + rate // 4)
        self.spectrum = np.fft.rfft(x, self.n).astype(np.complex64)

    def weighted(self) -> np.ndarray:
        """The K-weighted recording."""
        out: np.ndarray = np.fft.irfft(self.spectrum * _k_response(self.n, self.rate), self.n)[: self.size]
        return out

    def peaks(self) -> np.ndarray:
        """Per sample, the largest magnitude of the band-limited signal from that sample up to the next.

        Oversampled by FFT interpolation to at least 88.2 kHz (four-fold at 22.05 kHz and above, as BS.1770's
        true peak is at 48 kHz).
        """
        factor = max(4, math.ceil(88200 / self.rate))
        wide = np.zeros(self.n * factor // 2 + 1, dtype=np.complex64)
        half = self.n // 2 + 1
        wide[:half] = self.spectrum
        if self.n % 2 == 0:
            wide[half - 1] *= 0.5  # the short spectrum's Nyquist bin is split between +/- in the long one
        fine = np.abs(np.fft.irfft(wide, self.n * factor)[: self.size * factor])
        env = fine[0::factor]
        for phase in range(1, factor):
            env = np.maximum(env, fine[phase::factor])
        return env.astype(np.float64) * factor


def _gate(energy: np.ndarray) -> tuple[float, float]:
    """(integrated LUFS, relative gate LUFS) from the blocks' mean squares: BS.1770's two gates."""
    gated = energy[energy >= 10.0 ** ((_ABSOLUTE_GATE + 0.691) / 10.0)]
    if not len(gated):
        return float("-inf"), float("-inf")
    threshold = -0.691 + 10.0 * math.log10(float(gated.mean())) - _RELATIVE_GATE
    kept = gated[gated >= 10.0 ** ((threshold + 0.691) / 10.0)]
    return -0.691 + 10.0 * math.log10(float(kept.mean())), threshold


def _samples(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float64) / 32768.0


def _db(v: float) -> float:
    return 20.0 * math.log10(v) if v > 0 else float("-inf")


def _cell(rate: int) -> int:
    """The grid's cell (samples, about a millisecond): it divides the 100 ms step that loudness blocks start on."""
    step = round(rate / 10)
    return next(d for d in range(max(1, rate // 1100), step + 1) if step % d == 0)


def _channels(pcm: np.ndarray) -> np.ndarray:
    """``pcm`` as (samples, channels): mono, or stereo (BS.1770 weighs both at 1.0)."""
    frames = pcm.reshape(len(pcm), -1)
    if frames.shape[1] > 2:
        raise ValueError(f"{frames.shape[1]} channels: only mono and stereo are measured here")
    return frames


def _pieces(n: int, cell: int, rate: int) -> list[tuple[int, int, int, int]]:
    """(read from, keep from, keep to, read to) per piece of an ``n``-sample channel; pieces start on cells.

    A quarter second read on either side of what is kept: the K-weighting filters' response to the piece's
    sudden start has died out by then (the same reason ``_Spectrum`` pads a quarter second), and the band-limited
    interpolation of the kept samples is the whole recording's to well under a hundredth of a dB.
    """
    if n <= _PIECE:
        return [(0, 0, n, n)]
    size = _PIECE // cell * cell
    margin = rate // 4
    return [(max(0, a - margin), a, min(n, a + size), min(n, a + size + margin)) for a in range(0, n, size)]


def _analyse(frames: np.ndarray, rate: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of ``frames`` (samples, channels): the K-weighted energy summed over the channels, and the
    largest true peak of any channel."""
    n = len(frames)
    cells = -(-n // cell)
    energy = np.zeros(cells)
    peak = np.zeros(cells)
    for channel in frames.T:
        for lo, a, b, hi in _pieces(n, cell, rate):
            spec = _Spectrum(_samples(channel[lo:hi]), rate)
            starts = np.arange(0, b - a, cell)
            at = slice(a // cell, a // cell + len(starts))
            energy[at] += np.add.reduceat(spec.weighted()[a - lo:b - lo].astype(np.float64) ** 2, starts)
            np.maximum(peak[at], np.maximum.reduceat(spec.peaks()[a - lo:b - lo], starts), out=peak[at])
    return energy, peak


def _true_peak(frames: np.ndarray, rate: int) -> float:
    """The largest true peak (linear, 1.0 = full scale) of ``frames`` (samples, channels)."""
    n = len(frames)
    return max((float(_Spectrum(_samples(channel[lo:hi]), rate).peaks()[a - lo:b - lo].max())
                for channel in frames.T for lo, a, b, hi in _pieces(n, _cell(rate), rate)), default=0.0)


def measure(pcm: np.ndarray, rate: int) -> Measured:
    """The integrated loudness, relative gate and true peak of 16-bit ``pcm`` at ``rate`` Hz: mono samples, or
    (samples, 2) stereo frames."""
    if not len(pcm):
        return Measured(float("-inf"), float("-inf"), float("-inf"))
    grid = _Grid(*_analyse(_channels(pcm), rate, _cell(rate)), len(pcm), rate)
    integrated, threshold = grid.loudness()
    return Measured(integrated, threshold, _db(float(grid.peak.max())))


def _window_min(r: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[i] = min(r[i - before .. i + after])`` (edges: the part of the window inside ``r``).

    van Herk / Gil-Werman: minima running forward and backward within blocks of the window's length.
    """
    w = before + after + 1
    n = len(r)
    blocks = -(-(n + w - 1) // w) + 1
    flat = np.ones(blocks * w)
    flat[before:before + n] = r
    rows = flat.reshape(blocks, w)
    forward = np.minimum.accumulate(rows, axis=1).reshape(-1)
    backward = np.minimum.accumulate(rows[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    out: np.ndarray = np.minimum(backward[:n], forward[w - 1:w - 1 + n])
    return out


def _trailing_mean(x: np.ndarray, w: int) -> np.ndarray:
    """``out[i] = mean(x[i - w + 1 .. i])``, with ``x[0]`` repeated before the start.

    (The limiter's gain at the start: ``x[0]``, the minimum over the first window, is no more than any gain a
    peak there needs, as the minimum over a window each box covers must be.)
    """
    c = np.concatenate((np.zeros(1), np.cumsum(np.concatenate((np.full(w - 1, x[0]), x)))))
    out: np.ndarray = (c[w:] - c[:-w]) / w
    return out


class _Grid:
    """The recording in cells of about a millisecond: where the loudness is measured and the limiter's gain
    searched.

    Per cell, the K-weighted energy (of all channels) and the largest true peak (``_analyse``). The gain is
    smooth (its ramps are 17 cells), so it is found per cell and drawn between cell centres for the samples; the
    loudness of the limited recording is each cell's energy times its gain squared. The search then costs a few
    hundred operations a try where per-sample arrays took milliseconds.
    """

    def __init__(self, energy: np.ndarray, peak: np.ndarray, size: int, rate: int) -> None:
        self.cell = _cell(rate)
        self.size = size
        self.energy, self.peak = energy, peak
        self.hop = round(rate / 10) // self.cell
        seconds = self.cell / rate
        self.ramp_a, self.ramp_b, self.hold = (max(1, round(s / seconds)) for s in (_RAMP_A, _RAMP_B, _HOLD))

    def loudness(self, gain: np.ndarray | None = None) -> tuple[float, float]:
        """(integrated LUFS, relative gate LUFS) of the recording, with ``gain`` per cell if given.

        The blocks end on cell boundaries (a cell divides the 100 ms step), so without a gain this is the exact
        BS.1770 measurement. A recording shorter than one 400 ms block (a one-word narration) is measured as
        one block of its length.
        """
        energy = self.energy if gain is None else self.energy * gain * gain
        if self.size < 4 * self.hop * self.cell:
            return _gate(np.array([float(energy.sum()) / self.size]))
        cumulative = np.concatenate(([0.0], np.cumsum(energy)))
        ends = np.arange(4 * self.hop, self.size // self.cell + 1, self.hop)
        return _gate((cumulative[ends] - cumulative[ends - 4 * self.hop]) / (4 * self.hop * self.cell))

    def limiter(self, gain: float, ceiling: float) -> np.ndarray:
        """Per-cell gain (<= ``gain``) keeping every peak times the gain at any of its samples under ``ceiling``.

        Ramps of two boxes (2 ms, then 15 ms) down to the gain a peak needs, held 30 ms after it: each box's
        mean covers only cells whose window minimum includes the peak's cell and its neighbours, so the gain
        drawn between cell centres is no more than the peak's need anywhere in its cell.
        """
        with np.errstate(divide="ignore"):
            needed = np.minimum(1.0, ceiling / (gain * self.peak))
        if needed.min() >= 1.0:
            return np.full(len(needed), gain)
        held = _window_min(needed, self.hold + 1, self.ramp_a + self.ramp_b - 1)
        out: np.ndarray = _trailing_mean(_trailing_mean(held, self.ramp_a), self.ramp_b) * gain
        return out

    def samples(self, gain: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The per-cell gain at every sample from ``start`` to ``stop``, drawn straight between cell centres."""
        centres = np.arange(len(gain)) * self.cell + (self.cell - 1) / 2.0
        out: np.ndarray = np.interp(np.arange(start, self.size if stop is None else stop), centres, gain)
        return out


def normalise(pcm: np.ndarray, rate: int, target_lufs: float, ceiling_db: float) -> tuple[np.ndarray, Measured]:
    """16-bit ``pcm`` (mono samples, or (samples, 2) stereo frames) at ``target_lufs`` with its true peak under
    ``ceiling_db``; and what was measured of it.

    A silent recording (no block over the absolute gate) is returned unchanged. The gain is searched on a
    grid of ~1 ms cells (``_Grid``) and is the same for both channels; the samples written are then measured in
    full, and their true peak must be under the ceiling (else the search runs again under a lower one).
    """
    if not len(pcm):
        return pcm.copy(), measure(pcm, rate)
    frames = _channels(pcm)
    grid = _Grid(*_analyse(frames, rate, _cell(rate)), len(pcm), rate)
    integrated, threshold = grid.loudness()
    before = Measured(integrated, threshold, _db(float(grid.peak.max())))
    if not math.isfinite(integrated):
        return pcm.copy(), before
    # 0.05 dB under the ceiling: room for rounding to 16 bits and for the peaks between samples that the gain's
    # slope moves (without it, one narration in four needed the limiter run again).
    ceiling = 10.0 ** ((ceiling_db - 0.05) / 20.0)
    gain_db = target_lufs - integrated
    out = np.empty_like(frames, dtype=np.int16)
    for _ in range(4):
        gain = _converge(grid, gain_db, ceiling, target_lufs)
        for _lo, a, b, _hi in _pieces(len(frames), grid.cell, rate):
            envelope = grid.samples(gain, a, b)[:, None]
            out[a:b] = np.clip(np.rint(_samples(frames[a:b]) * envelope * 32768.0), -32768, 32767)
        over = _true_peak(out, rate) / 10.0 ** (ceiling_db / 20.0)
        if over <= 1.0:
            break
        ceiling /= over * (1.0 + 1.0 / 32768.0)
    return out.reshape(pcm.shape), before


def _converge(grid: _Grid, gain_db: float, ceiling: float, target_lufs: float) -> np.ndarray:
    """The limiter's per-cell gain whose result measures ``target_lufs`` (within 0.02 LU), or the nearest
    in 12 tries where the ceiling leaves no room to get there.

    The more the gain, the more the limiter takes back: each try steps along the line through the last two
    (secant), so a heavily limited voice needs three or four tries rather than dozens. A step is at most
    12 dB, and the search stops where more gain no longer makes it louder (clicks in silence, which the
    ceiling keeps far under the target): the best gain found is kept.
    """
    tried: list[tuple[float, float]] = []
    gain = grid.limiter(10.0 ** (gain_db / 20.0), ceiling)
    best = (float("inf"), gain)
    for _ in range(12):
        level, _ = grid.loudness(gain)
        if not math.isfinite(level):
            break
        if abs(level - target_lufs) < best[0]:
            best = (abs(level - target_lufs), gain)
        if abs(level - target_lufs) <= 0.02:
            break
        if tried and level <= tried[-1][1] + 0.01 and gain_db > tried[-1][0]:
            break  # louder is not possible under the ceiling
        tried.append((gain_db, level))
        slope = 0.5  # the first step: a limited voice gains about half of what it is given
        if len(tried) > 1:
            (g0, l0), (g1, l1) = tried[-2], tried[-1]
            slope = min(1.0, max(0.05, (l1 - l0) / (g1 - g0))) if g1 != g0 else 1.0
        gain_db += max(-12.0, min(12.0, (target_lufs - level) / slope))
        gain = grid.limiter(10.0 ** (gain_db / 20.0), ceiling)
    return best[1]
