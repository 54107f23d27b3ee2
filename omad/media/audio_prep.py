"""Preparing a voice reference for cloning, and finishing synthesised speech.

Owns two jobs around a TTS model: turning a user's reference recording into
what F5-TTS expects (mono, 24 kHz, edges trimmed, cut at a pause to at most
12 s, loudness normalised) and turning raw model output into a publishable
WAV (leading/trailing silence trimmed, loudness normalised). ffmpeg does the
decoding, cutting and loudness work through ``omad.media.ffmpeg``; the silence
analysis is done here on the decoded samples so that cut points are exact
and testable.

It never loads a model and never calls ffmpeg except through ``run_ffmpeg``.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import InputError, StageFailed
from .ffmpeg import SAFE_INPUT_ARGS, probe, run_ffmpeg

__all__ = [
    "REFERENCE_LUFS",
    "PreparedReference",
    "prepare_reference",
    "finish_speech",
    "write_wav",
    "read_wav",
    "speech_bounds",
    "pause_cut",
]

# F5 scales a quiet reference up to an RMS of 0.1 (about -20 dBFS) and the
# output back down; a reference already near that level keeps both steps small.
REFERENCE_LUFS = -20.0

_FRAME_SECONDS = 0.02
_SILENCE_DB = -45.0


@dataclass
class PreparedReference:
    """A reference recording ready for F5, with what was done to it."""

    path: Path
    duration: float
    original_duration: float
    cut_at: float | None = None
    cut_at_pause: bool = False
    warnings: list[str] = field(default_factory=list)

    def facts(self) -> dict[str, object]:
        return {
            "duration": round(self.duration, 3),
            "original_duration": round(self.original_duration, 3),
            "cut_at": None if self.cut_at is None else round(self.cut_at, 3),
            "cut_at_pause": self.cut_at_pause,
        }


def write_wav(path: Path, samples: npt.NDArray[np.floating], sample_rate: int) -> None:
    """Write mono float samples in [-1, 1] as 16-bit PCM."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def read_wav(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Read a 16-bit PCM WAV (as written by ffmpeg or ``write_wav``) as mono float32."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise StageFailed(f"could not read the intermediate WAV file ({e}).", file=path) from e
    if width != 2:
        raise StageFailed(f"expected 16-bit PCM, found {8 * width}-bit samples.", file=path)
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate


def _frame_db(samples: npt.NDArray[np.float32], sample_rate: int) -> npt.NDArray[np.float64]:
    hop = max(1, int(sample_rate * _FRAME_SECONDS))
    n = len(samples) // hop
    if n == 0:
        return np.zeros(0)
    frames = samples[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-10)), dtype=np.float64)


def speech_bounds(
    samples: npt.NDArray[np.float32], sample_rate: int, *, threshold_db: float = _SILENCE_DB, margin: float = 0.05
) -> tuple[int, int] | None:
    """First and last sample of sound above ``threshold_db`` (with ``margin`` seconds kept), or None if silent."""
    db = _frame_db(samples, sample_rate)
    loud = np.flatnonzero(db > threshold_db)
    if loud.size == 0:
        return None
    hop = max(1, int(sample_rate * _FRAME_SECONDS))
    pad = int(margin * sample_rate)
    start = max(0, int(loud[0]) * hop - pad)
    end = min(len(samples), (int(loud[-1]) + 1) * hop + pad)
    return start, end


def pause_cut(
    samples: npt.NDArray[np.float32],
    sample_rate: int,
    max_seconds: float,
    *,
    min_pause: float = 0.2,
    min_keep: float = 3.0,
    threshold_db: float = _SILENCE_DB + 5.0,
) -> float | None:
    """Where to cut a too-long recording: the middle of the last pause that ends by ``max_seconds``.

    A pause is at least ``min_pause`` seconds below ``threshold_db``; a cut
    that would keep less than ``min_keep`` seconds is not taken. None when no
    such pause exists (the caller then cuts hard at ``max_seconds``).
    """
    db = _frame_db(samples, sample_rate)
    quiet = db <= threshold_db
    need = max(1, int(round(min_pause / _FRAME_SECONDS)))
    best: float | None = None
    run_start: int | None = None
    for i, q in enumerate([*quiet.tolist(), False]):
        if q and run_start is None:
            run_start = i
        elif not q and run_start is not None:
            if i - run_start >= need:
                middle = (run_start + i) / 2 * _FRAME_SECONDS
                if min_keep <= middle <= max_seconds:
                    best = middle
            run_start = None
    return best


def prepare_reference(
    source: Path,
    dest: Path,
    *,
    max_seconds: float = 12.0,
    sample_rate: int = 24000,
    loudness_lufs: float = REFERENCE_LUFS,
    timeout: float = 120.0,
    label: str | None = None,
) -> PreparedReference:
    """Make ``source`` a clean F5 reference at ``dest`` (16-bit mono WAV).

    Raises InputError when the file is not audio, is silent, or is shorter
    than half a second; the caller re-labels it when the reference came from
    the configuration rather than a drop.
    """
    name = label or source.name
    info = probe(source, timeout=min(timeout, 60.0), file_label=name)
    if info.audio is None:
        raise InputError("has no audio stream; the reference voice must be a recording (wav, mp3, flac).", file=name)
    decoded = dest.with_name(dest.stem + ".decoded.wav")
    try:
        run_ffmpeg(
            [
                *SAFE_INPUT_ARGS,
                "-i",
                str(source),
                "-vn",
                "-ac",
                "1",
                "-ar",
                str(sample_rate),
                "-c:a",
                "pcm_s16le",
                "-f",
                "wav",
                str(decoded),
            ],
            timeout=timeout,
            file_label=name,
        )
        samples, rate = read_wav(decoded)
    finally:
        decoded.unlink(missing_ok=True)
    original = len(samples) / rate
    bounds = speech_bounds(samples, rate)
    if bounds is None:
        raise InputError("the reference recording is silent. Record a few seconds of clear speech.", file=name)
    start, end = bounds
    speech = samples[start:end]
    warnings: list[str] = []
    cut_at: float | None = None
    at_pause = False
    if len(speech) / rate > max_seconds:
        cut_at = pause_cut(speech, rate, max_seconds)
        at_pause = cut_at is not None
        if cut_at is None:
            cut_at = max_seconds
        speech = speech[: int(cut_at * rate)]
        warnings.append(
            f"the reference recording ({original:.1f} s) was cut to {cut_at:.1f} s"
            f"{' at a pause' if at_pause else ' (no pause found)'}; its transcript should cover only that part. "
            f"A recording of at most {max_seconds:.0f} s gives the best voice."
        )
    if len(speech) / rate < 0.5:
        raise InputError(
            f"the reference recording has only {len(speech) / rate:.2f} s of sound; give 3 to {max_seconds:.0f} s "
            "of clear speech.",
            file=name,
        )
    trimmed = dest.with_name(dest.stem + ".trimmed.wav")
    write_wav(trimmed, speech, rate)
    try:
        # A short tail of silence marks where the reference ends (as F5's own preprocessing does).
        _loudnorm_mono(trimmed, dest, sample_rate, loudness_lufs, -1.5, timeout, name, tail="apad=pad_dur=0.05")
    finally:
        trimmed.unlink(missing_ok=True)
    final, _ = read_wav(dest)
    return PreparedReference(
        path=dest,
        duration=len(final) / sample_rate,
        original_duration=original,
        cut_at=cut_at,
        cut_at_pause=at_pause,
        warnings=warnings,
    )


def finish_speech(
    samples: npt.NDArray[np.floating],
    sample_rate: int,
    dest: Path,
    *,
    loudness_lufs: float,
    true_peak_db: float,
    timeout: float = 120.0,
) -> float:
    """Trim silence at both ends of synthesised ``samples``, normalise loudness, write ``dest``; return seconds.

    Raises StageFailed when the model produced nothing but silence.
    """
    data = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(data)):
        raise StageFailed("the TTS model produced invalid samples (NaN or infinity).", file=dest.name)
    bounds = speech_bounds(data, sample_rate)
    if bounds is None:
        raise StageFailed("the TTS model produced only silence.", file=dest.name)
    start, end = bounds
    raw = dest.with_name(dest.stem + ".raw.wav")
    write_wav(raw, data[start:end], sample_rate)
    try:
        _loudnorm_mono(raw, dest, sample_rate, loudness_lufs, true_peak_db, timeout, dest.name)
    finally:
        raw.unlink(missing_ok=True)
    final, rate = read_wav(dest)
    return len(final) / rate


def _loudnorm_mono(src: Path, dest: Path, sample_rate: int, lufs: float, true_peak: float, timeout: float,
                   label: str, tail: str = "") -> None:
    """Loudness-normalise ``src`` into a mono 16-bit WAV at ``sample_rate`` (one pass: short clips, speech only)."""
    chain = (f"loudnorm=I={lufs}:TP={true_peak}:LRA=11,"
             f"aformat=sample_fmts=s16:sample_rates={sample_rate}:channel_layouts=mono" + (f",{tail}" if tail else ""))
    run_ffmpeg(
        [*SAFE_INPUT_ARGS, "-i", str(src), "-af", chain, "-ar", str(sample_rate), "-ac", "1", "-c:a", "pcm_s16le",
         str(dest)],
        timeout=timeout,
        file_label=label,
    )
