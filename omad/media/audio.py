"""Audio helpers shared by routes: checking audio inputs, ducking, and loudness.

Loudness is measured as EBU R128 (BS.1770) measures it and brought to
``audio.loudness_lufs`` with one gain, a look-ahead limiter keeping the true
peak under ``audio.true_peak_db`` only where the gain needs it: in numpy
(``omad.media.r128``) for every narration, voice preview and soundtrack up to
ten minutes at 48 kHz. Longer ones use loudnorm's two passes (measure with its
JSON report, then apply the measured values with ``linear=true``), so the
published loudness lands on the target within a fraction of a LU, which a
single pass does not manage on short clips.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import AudioConfig
from ..errors import InputError
from . import loudness, r128
from .ffmpeg import AUDIO_DEMUXERS, Probe, probe

if TYPE_CHECKING:
    from .ffmpeg_run import Ffmpeg

__all__ = ["check_audio", "measure_loudness", "loudnorm_filter", "gain_filter", "gain_db", "apply_gain_wav",
           "normalise_short_wav", "normalise_wav", "normalise_narration", "normalise_soundtrack", "duck_filter",
           "FINAL_AUDIO_FORMAT"]

# Before apad and muxing: a fixed layout avoids loudnorm/apad negotiation failures (docs/field-notes.md).
FINAL_AUDIO_FORMAT = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"


def check_audio(path: Path, label: str, max_seconds: float) -> Probe:
    """Probe an audio input; refuse non-audio and audio longer than ``intake.max_audio_seconds``."""
    info = probe(path, file_label=label)
    if info.audio is None or info.format_name not in AUDIO_DEMUXERS:
        raise InputError(
            f"has no audio omad can read (format '{info.format_name}'). Drop a .wav, .mp3, .m4a or .flac file.",
            file=label,
        )
    if not info.duration or info.duration <= 0.05:
        raise InputError("is empty or too short to use. Drop a longer recording.", file=label)
    if info.duration > max_seconds:
        raise InputError(
            f"is {info.duration / 60:.1f} minutes long; the limit is {max_seconds / 60:.1f} minutes "
            "(intake.max_audio_seconds). Cut it or raise the limit.",
            file=label,
        )
    return info


def measure_loudness(path: Path, *, ff: Ffmpeg, label: str, audio_cfg: AudioConfig) -> dict[str, Any]:
    """First loudnorm pass: the file's measured loudness, as loudnorm reports it.

    Run in-process (``omad.media.loudness``: the same filter, no ffmpeg start), stopped as ``ff``'s runs are:
    by its cancel event or after its timeout.
    """
    return loudness.measure(path, audio_cfg, label=label, timeout=ff.timeout, cancel=ff.cancel)


def loudnorm_filter(measured: dict[str, Any], audio_cfg: AudioConfig) -> str:
    """Second loudnorm pass with the measured values (linear gain where possible), as an ffmpeg filter."""
    return f"loudnorm={loudness.linear_spec(measured, audio_cfg)}"


def gain_filter(measured: dict[str, Any], audio_cfg: AudioConfig) -> str:
    """The second pass as a plain ``volume`` gain when loudnorm's linear mode would be one; else loudnorm.

    With ``linear=true`` loudnorm applies exactly ``target - measured`` dB when
    the true peak stays under the limit (ffmpeg's af_loudnorm), but it still
    resamples everything to 192 kHz and back: ~4 s of CPU for a minute of
    stereo here, against ~0.1 s for ``volume``. Where the gain would push the
    peak over the limit, loudnorm's limiter is needed and used.
    """
    try:
        measured_i = float(measured["input_i"])
        measured_tp = float(measured["input_tp"])
        thresh = float(measured["input_thresh"])
    except (KeyError, TypeError, ValueError):
        return loudnorm_filter(measured, audio_cfg)
    finite = all(abs(v) != float("inf") for v in (measured_i, measured_tp, thresh))
    gain = audio_cfg.loudness_lufs - measured_i
    if finite and measured_tp != 99 and thresh != -70 and measured_tp + gain <= audio_cfg.true_peak_db:
        return f"volume={gain:.2f}dB"
    return loudnorm_filter(measured, audio_cfg)


def gain_db(measured: dict[str, Any], audio_cfg: AudioConfig) -> float | None:
    """The plain gain in dB that the second pass amounts to, or None where loudnorm's limiter is needed."""
    f = gain_filter(measured, audio_cfg)
    return float(f[len("volume="):-len("dB")]) if f.startswith("volume=") else None


def apply_gain_wav(src: Path, dst: Path, gain: float, *, rate: int | None = None, channels: int | None = None) -> bool:
    """``src`` (16-bit PCM WAV) times ``gain`` dB into ``dst``, same rate, channels and length, without ffmpeg.

    What ffmpeg's ``volume`` filter does to 16-bit samples (to float, scale,
    round, clip), in-process: for a short narration, starting ffmpeg costs more
    than the whole gain. False (and nothing written) for any other format, or
    a rate or channel count other than the ones asked for, so the caller runs
    ffmpeg instead.
    """
    import numpy as np

    try:
        with wave.open(str(src), "rb") as r:
            if (r.getsampwidth() != 2 or r.getcomptype() != "NONE" or rate not in (None, r.getframerate())
                    or channels not in (None, r.getnchannels())):
                return False
            params = r.getparams()
            data = np.frombuffer(r.readframes(r.getnframes()), dtype="<i2")
    except (wave.Error, EOFError):
        return False
    scaled = np.rint(data.astype(np.float32) * np.float32(10.0 ** (gain / 20.0)))
    out = np.clip(scaled, -32768, 32767).astype("<i2")
    part = dst.with_name(f".{dst.name}.part")
    with wave.open(str(part), "wb") as w:
        w.setparams(params)
        w.writeframes(out.tobytes())
    part.replace(dst)
    return True


def normalise_short_wav(src: Path, dst: Path, audio_cfg: AudioConfig) -> r128.Measured | None:
    """``src`` (16-bit mono PCM WAV) at the loudness target into ``dst`` (same rate, length and format), in
    numpy at its own rate (``omad.media.r128``); what was measured of it.

    None (and nothing written) for a WAV in another format, or longer than ``r128.MAX_SAMPLES``: the caller uses
    loudnorm.
    """
    return normalise_wav(src, dst, audio_cfg, channels=1, max_frames=r128.MAX_SAMPLES)


def normalise_wav(src: Path, dst: Path, audio_cfg: AudioConfig, *, channels: int | None = None,
                  max_frames: int | None = None) -> r128.Measured | None:
    """``src`` (16-bit PCM WAV, mono or stereo) at the loudness target, its true peak under the ceiling, into
    ``dst`` (same rate, channels, length and format), in numpy (``omad.media.r128``); what was measured of it.

    None (and nothing written) for a WAV in another format, with more than two channels or other than
    ``channels``, or longer than ``max_frames``: the caller uses loudnorm.
    """
    import numpy as np

    try:
        with wave.open(str(src), "rb") as r:
            if (r.getsampwidth() != 2 or r.getcomptype() != "NONE" or r.getnchannels() > 2
                    or channels not in (None, r.getnchannels())
                    or (max_frames is not None and r.getnframes() > max_frames)):
                return None
            params = r.getparams()
            pcm = np.frombuffer(r.readframes(r.getnframes()), dtype="<i2")
    except (wave.Error, EOFError):
        return None
    if params.nchannels == 2:
        pcm = pcm.reshape(-1, 2)
    out, measured = r128.normalise(pcm, params.framerate, audio_cfg.loudness_lufs, audio_cfg.true_peak_db)
    part = dst.with_name(f".{dst.name}.part")
    with wave.open(str(part), "wb") as w:
        w.setparams(params)
        w.writeframes(np.ascontiguousarray(out, dtype="<i2").data)  # its own buffer: no third copy in memory
    part.replace(dst)
    return measured


def normalise_narration(src: Path, dst: Path, audio_cfg: AudioConfig, *, rate: int, ff: Ffmpeg,
                        label: str) -> dict[str, Any]:
    """A narration (16-bit mono WAV at ``rate``) at the loudness target into ``dst``, same rate and length,
    in-process; the measurement, as loudnorm's first pass reports it. The narrate stage and voice previews both
    use it, so a preview sounds as the narration it stands for.

    Up to ``r128.MAX_SAMPLES`` (~22 minutes at 22.05 kHz) in numpy at its own rate: a gain, and a look-ahead
    limiter where the gain would pass the true-peak ceiling (``omad.media.r128``; ~12 ms for a sentence where
    loudnorm's two passes at 192 kHz took ~95 ms). A longer one goes through loudnorm's two passes
    (``omad.media.loudness``: ffmpeg's filter, no ffmpeg process), the second a plain gain on the 16-bit samples
    where loudnorm's linear mode would be one.
    """
    short = normalise_short_wav(src, dst, audio_cfg)
    if short is not None:
        return short.report()
    measured = measure_loudness(src, ff=ff, label=label, audio_cfg=audio_cfg)
    gain = gain_db(measured, audio_cfg)
    if gain is None or not apply_gain_wav(src, dst, gain, rate=rate, channels=1):
        loudness.normalise(src, dst, measured, audio_cfg, rate=rate, channels=1, label=label, timeout=ff.timeout,
                           cancel=ff.cancel)
    return measured


#: The longest soundtrack normalised in numpy: 10 minutes at 48 kHz (~230 MB of stereo samples in and out).
SOUNDTRACK_MAX_FRAMES = r128.MAX_SAMPLES


def normalise_soundtrack(src: Path, dst: Path, audio_cfg: AudioConfig, *, ff: Ffmpeg,
                         label: str) -> tuple[Path, str, dict[str, Any]]:
    """``src`` (a 16-bit PCM WAV omad's ffmpeg wrote: a mix, a decoded track) brought to the loudness target, its
    true peak under the ceiling: the WAV to encode, the audio filter to encode it with, and the measurement (as
    loudnorm's first pass reports it).

    In numpy (``normalise_wav``) into ``dst``, encoded with ``FINAL_AUDIO_FORMAT`` alone: ~0.2 CPU-s for 20 s of
    48 kHz stereo, where loudnorm's two passes, both at 192 kHz, took ~1.0. The samples are held in memory, in
    and out (~23 MB a minute): a recording longer than ``SOUNDTRACK_MAX_FRAMES``, or one numpy cannot read (not
    expected of omad's own WAVs), is measured by loudnorm in-process and ``src`` itself is encoded through a
    plain gain or loudnorm's second pass, as before (nothing more written to disk).
    """
    done = normalise_wav(src, dst, audio_cfg, max_frames=SOUNDTRACK_MAX_FRAMES)
    if done is not None:
        return dst, FINAL_AUDIO_FORMAT, done.report()
    measured = measure_loudness(src, ff=ff, label=label, audio_cfg=audio_cfg)
    return src, f"{gain_filter(measured, audio_cfg)},{FINAL_AUDIO_FORMAT}", measured


def duck_filter(bed: str, voice: str, out: str, duck_db: float) -> str:
    """A filtergraph fragment: ``bed`` lowered by ``duck_db`` and pushed down further while ``voice`` speaks."""
    return (
        f"[{bed}]aformat=sample_rates=48000:channel_layouts=stereo,volume={duck_db}dB[_bedq];"
        f"[{voice}]aformat=sample_rates=48000:channel_layouts=stereo,asplit=2[_v1][_v2];"
        f"[_bedq][_v1]sidechaincompress=threshold=0.03:ratio=6:attack=10:release=400[_bedd];"
        f"[_bedd][_v2]amix=inputs=2:duration=longest:normalize=0[{out}]"
    )
