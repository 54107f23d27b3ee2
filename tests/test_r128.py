"""Loudness of a narration measured and normalised in numpy (omad.media.r128), checked against ffmpeg's meters."""

from __future__ import annotations

import re
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ffmpeg
from hypothesis import given, settings
from hypothesis import strategies as st

from omad.config import AudioConfig
from omad.media import audio, loudness, r128
from omad.media.audio import normalise_narration, normalise_short_wav, normalise_soundtrack, normalise_wav
from omad.media.ffmpeg_run import Ffmpeg


def _read(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _write(path: Path, rate: int, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def _ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBFS) as ffmpeg's own R128 meter (the ebur128 filter, at 48 kHz) reports them."""
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    return (float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1]),
            float(re.findall(r"Peak:\s+(-?[\d.]+) dBFS", err)[-1]))


def _sentence(tmp_path: Path, text: str, name: str = "speech.wav") -> Path:
    """espeak-ng's voice: ~-20.5 LUFS with peaks ~2.5 dB under full scale, so the -16 target needs the limiter."""
    out = tmp_path / name
    subprocess.run(["espeak-ng", "-v", "pt-br", "-w", str(out), "--stdin"], input=text.encode(), check=True)
    return out


SENTENCES = ["A casa perto do rio tem o número 7.", "Olá, tudo bem? Hoje, não.",
             "O Sol nasce no mar, e a porta é azul."]


@pytest.mark.parametrize("text", SENTENCES)
def test_the_figures_are_loudnorms(tmp_path: Path, text: str) -> None:
    """GIVEN a spoken sentence (under 3 s, where loudnorm measures the whole of it) THEN the integrated loudness, the
    relative gate and the true peak are loudnorm's (the same filter ffmpeg runs) to within a few hundredths."""
    cfg = AudioConfig()
    src = _sentence(tmp_path, text)
    rate, pcm = _read(src)
    assert len(pcm) < 3 * rate
    theirs = loudness.measure(src, cfg, label=src.name, timeout=60)
    ours = r128.measure(pcm, rate)
    assert ours.integrated == pytest.approx(float(theirs["input_i"]), abs=0.04)
    assert ours.threshold == pytest.approx(float(theirs["input_thresh"]), abs=0.04)
    assert ours.true_peak == pytest.approx(float(theirs["input_tp"]), abs=0.03)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 48000])
def test_a_long_recording_measures_as_ffmpegs_r128_meter_says(tmp_path: Path, rate: int) -> None:
    """GIVEN 8 s of a tone and pink noise, at the rates narrations come in THEN the loudness and true peak are what
    ffmpeg's ebur128 meter reports (it prints one decimal)."""
    src = tmp_path / "mix.wav"
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}", "-f", "lavfi", "-i",
           f"anoisesrc=color=pink:sample_rate={rate}:amplitude=0.2:seed=7", "-filter_complex",
           "[0:a][1:a]amix=inputs=2,volume=0.6", "-t", "8", "-ac", "1", "-c:a", "pcm_s16le", str(src))
    rate_read, pcm = _read(src)
    ours = r128.measure(pcm, rate_read)
    integrated, peak = _ebur128(src)
    assert ours.integrated == pytest.approx(integrated, abs=0.15)
    assert ours.true_peak == pytest.approx(peak, abs=0.15)


@pytest.mark.parametrize("text", SENTENCES)
def test_a_sentence_lands_on_the_target_under_the_ceiling(tmp_path: Path, text: str) -> None:
    """GIVEN espeak-ng's sentence, which a plain gain to -16 LUFS would push over the -1.5 dBTP ceiling WHEN
    normalised THEN ffmpeg's meter reads the target and a true peak under the ceiling; same rate and length."""
    cfg = AudioConfig()
    src = _sentence(tmp_path, text)
    rate, pcm = _read(src)
    before = r128.measure(pcm, rate)
    assert before.true_peak + (cfg.loudness_lufs - before.integrated) > cfg.true_peak_db  # the limiter is needed
    out, measured = r128.normalise(pcm, rate, cfg.loudness_lufs, cfg.true_peak_db)
    assert measured == before and out.dtype == np.int16 and len(out) == len(pcm)
    dst = _write(tmp_path / "out.wav", rate, out)
    integrated, peak = _ebur128(dst)
    assert integrated == pytest.approx(cfg.loudness_lufs, abs=0.15)
    assert peak <= cfg.true_peak_db + 0.05
    again = r128.measure(out, rate)
    assert again.integrated == pytest.approx(cfg.loudness_lufs, abs=0.03)
    assert again.true_peak <= cfg.true_peak_db


def test_a_quiet_recording_gets_a_plain_gain_and_a_limiter_touches_only_the_peaks(tmp_path: Path) -> None:
    """GIVEN a quiet tone THEN it is only scaled (every sample within one step of the exact gain). GIVEN the same
    tone with one loud burst in the middle THEN samples a tenth of a second away from the burst are scaled by that
    same gain, and the burst is limited under the ceiling."""
    rate = 22050
    t = np.arange(4 * rate) / rate
    quiet = np.rint(0.05 * 32767 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    out, measured = r128.normalise(quiet, rate, -16.0, -1.5)
    gain = 10 ** ((-16.0 - measured.integrated) / 20)
    assert np.abs(out.astype(float) - quiet * gain).max() <= 1.0
    assert r128.measure(out, rate).integrated == pytest.approx(-16.0, abs=0.02)

    burst = quiet.copy()
    mid = slice(2 * rate, 2 * rate + rate // 50)  # 20 ms at full scale
    burst[mid] = np.rint(0.99 * 32767 * np.sin(2 * np.pi * 300 * t[mid])).astype(np.int16)
    out, measured = r128.normalise(burst, rate, -16.0, -1.5)
    far = np.r_[0:2 * rate - rate // 10, 2 * rate + rate // 10:4 * rate]
    loud = far[np.abs(burst[far]) > 200]
    ratio = out[loud].astype(float) / burst[loud]
    assert np.allclose(ratio, np.median(ratio), rtol=0.01)  # one gain away from the burst...
    assert np.median(ratio) >= 10 ** ((-16.0 - measured.integrated) / 20)  # ...raised for what the limiter took
    assert r128.measure(out, rate).true_peak <= -1.5
    assert r128.measure(out, rate).integrated == pytest.approx(-16.0, abs=0.03)


def test_silence_is_left_alone_and_one_short_word_is_measured_as_one_block(tmp_path: Path) -> None:
    """GIVEN silence THEN nothing to measure, the samples unchanged. GIVEN a recording shorter than one 400 ms
    block THEN it is measured over its length and still brought to the target."""
    rate = 22050
    silence = np.zeros(rate, np.int16)
    out, measured = r128.normalise(silence, rate, -16.0, -1.5)
    assert measured.integrated == float("-inf") and np.array_equal(out, silence)
    t = np.arange(rate // 4) / rate
    short = np.rint(0.05 * 32767 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    out, measured = r128.normalise(short, rate, -16.0, -1.5)
    assert np.isfinite(measured.integrated)
    assert r128.measure(out, rate).integrated == pytest.approx(-16.0, abs=0.02)


def test_clicks_in_silence_get_as_loud_as_the_ceiling_allows() -> None:
    """GIVEN a quiet click every half second in silence, which no gain brings to -16 LUFS under a -1.5 dBTP
    ceiling THEN the search stops where more gain adds nothing: finite samples, louder than before, the true peak
    at the ceiling and not over it."""
    rate = 22050
    clicks = np.zeros(rate * 3, np.int16)
    clicks[:: rate // 2] = 3000
    out, measured = r128.normalise(clicks, rate, -16.0, -1.5)
    after = r128.measure(out, rate)
    assert np.isfinite(after.integrated) and measured.integrated < after.integrated < -16.0
    assert -2.0 < after.true_peak <= -1.5


def test_a_narration_too_long_to_hold_is_left_to_loudnorm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a WAV longer than r128.MAX_SAMPLES, or not 16-bit mono THEN normalise_short_wav writes nothing and says
    so (None): the narrate stage then runs loudnorm's two passes."""
    cfg = AudioConfig()
    src = _sentence(tmp_path, SENTENCES[0])
    dst = tmp_path / "out.wav"
    measured = normalise_short_wav(src, dst, cfg)
    assert measured is not None and dst.exists()
    dst.unlink()
    monkeypatch.setattr(r128, "MAX_SAMPLES", 1000)
    assert normalise_short_wav(src, dst, cfg) is None and not dst.exists()
    monkeypatch.undo()
    stereo = tmp_path / "stereo.wav"
    ffmpeg("-i", str(src), "-ac", "2", str(stereo))
    assert normalise_short_wav(stereo, dst, cfg) is None and not dst.exists()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300), st.integers(0, 40), st.integers(0, 40))
def test_the_window_minimum_is_the_minimum_of_each_window(values: list[float], before: int, after: int) -> None:
    r = np.array(values)
    want = np.array([r[max(0, i - before):i + after + 1].min() for i in range(len(r))])
    assert np.array_equal(r128._window_min(r, before, after), want)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300), st.integers(1, 40))
def test_the_trailing_mean_is_the_mean_of_each_window_with_the_first_value_before_it(values: list[float],
                                                                                     w: int) -> None:
    r = np.array(values)
    padded = np.concatenate((np.full(w - 1, r[0]), r))
    want = np.array([padded[i:i + w].mean() for i in range(len(r))])
    assert np.allclose(r128._trailing_mean(r, w), want)


def test_the_limiter_never_leaves_a_peak_over_the_ceiling() -> None:
    """GIVEN random peaks and gains, at the rates narrations come in THEN the gain drawn at every sample keeps that
    sample's peak under the ceiling (the ramps start before a peak's cell and hold after it, and the window the
    minimum is taken over covers both boxes and the neighbouring cells the drawing passes through)."""
    rng = np.random.default_rng(3)
    for rate in (16000, 22050, 24000, 44100, 48000):
        for _ in range(10):
            n = int(rng.integers(100, 20000))
            peaks = np.abs(rng.normal(0, 0.3, n)) + rng.choice([0, 0.8], n, p=[0.99, 0.01])
            gain = float(rng.uniform(1, 4))
            starts = np.arange(0, n, r128._cell(rate))
            grid = r128._Grid(np.zeros(len(starts)), np.maximum.reduceat(peaks, starts), n, rate)
            envelope = grid.samples(grid.limiter(gain, 0.84))
            assert len(envelope) == n and (envelope <= gain + 1e-12).all()
            assert (peaks * envelope <= 0.84 * (1 + 1e-9)).all()


def _stereo_mix(tmp_path: Path, seconds: int = 20) -> Path:
    """A scene video's soundtrack in miniature: 48 kHz stereo, a voice-like tone on the left whose level swells
    and falls, noise in both channels, and one loud 20 ms burst on the right at 9 s (so the limiter is needed)."""
    rate = 48000
    t = np.arange(seconds * rate) / rate
    noise = np.random.default_rng(11).normal(0, 0.02, (len(t), 2))
    left = 0.12 * (1.2 + np.sin(0.9 * t)) * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2.5 * t) > -0.3)
    right = np.where((t >= 9) & (t < 9.02), 0.95 * np.sin(2 * np.pi * 440 * t), 0.0)
    pcm = np.rint(np.clip(np.stack([left, right], axis=1) + noise, -1, 1) * 32767).astype("<i2")
    src = tmp_path / "soundtrack.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return src


def test_a_stereo_soundtrack_measures_and_lands_as_ffmpegs_r128_meter_says(tmp_path: Path) -> None:
    """GIVEN 20 s of 48 kHz stereo (longer than one piece, the channels different) THEN its loudness and true peak
    are what ffmpeg's ebur128 meter reports for the two channels together; WHEN normalised THEN the meter reads the
    target and a true peak under the ceiling, the same length, rate and channels."""
    cfg = AudioConfig()
    src = _stereo_mix(tmp_path)
    with wave.open(str(src)) as w:
        assert w.getnchannels() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert len(pcm) > r128._PIECE
    ours = r128.measure(pcm, 48000)
    assert ours.true_peak + (cfg.loudness_lufs - ours.integrated) > cfg.true_peak_db  # the limiter is needed
    integrated, peak = _ebur128(src)
    assert ours.integrated == pytest.approx(integrated, abs=0.1)
    assert ours.true_peak == pytest.approx(peak, abs=0.1)
    dst = tmp_path / "normalised.wav"
    measured = normalise_wav(src, dst, cfg)
    assert measured == ours
    with wave.open(str(dst)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 48000, len(pcm))
    integrated, peak = _ebur128(dst)
    assert integrated == pytest.approx(cfg.loudness_lufs, abs=0.1)
    assert peak <= cfg.true_peak_db + 0.05


def test_a_recording_measured_in_pieces_is_the_recording_measured_whole(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a stereo recording WHEN measured and normalised in pieces of ~0.7 s THEN the figures are those of one
    piece holding all of it (to a thousandth of a LU, the true peak to 0.005 dB), and the samples written are the
    same to within the search's 0.02 LU (a gain 0.25 % apart) and a 16-bit step."""
    src = _stereo_mix(tmp_path, seconds=10)
    with wave.open(str(src)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    monkeypatch.setattr(r128, "_PIECE", len(pcm))
    whole = r128.measure(pcm, 48000)
    out_whole, _ = r128.normalise(pcm, 48000, -16.0, -1.5)
    monkeypatch.setattr(r128, "_PIECE", 1 << 15)
    assert len(r128._pieces(len(pcm), r128._cell(48000), 48000)) > 10
    pieces = r128.measure(pcm, 48000)
    out_pieces, _ = r128.normalise(pcm, 48000, -16.0, -1.5)
    assert pieces.integrated == pytest.approx(whole.integrated, abs=1e-3)
    assert pieces.threshold == pytest.approx(whole.threshold, abs=1e-3)
    assert pieces.true_peak == pytest.approx(whole.true_peak, abs=5e-3)
    assert (np.abs(out_pieces.astype(float) - out_whole) <= 1 + 0.0025 * np.abs(out_whole)).all()
    assert r128.measure(out_pieces, 48000).integrated == pytest.approx(-16.0, abs=0.02)


def test_more_than_two_channels_are_left_to_loudnorm(tmp_path: Path) -> None:
    """GIVEN a 5.1 WAV THEN normalise_wav writes nothing and says so (None): BS.1770 weighs surround channels
    differently, and omad's soundtracks are stereo."""
    src = tmp_path / "surround.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1", "-ac", "6", "-c:a", "pcm_s16le",
           str(src))
    dst = tmp_path / "out.wav"
    assert normalise_wav(src, dst, AudioConfig()) is None and not dst.exists()


@dataclass(frozen=True)
class _CountingFfmpeg(Ffmpeg):
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, args: Sequence[str], **kw: Any) -> str:
        self.calls.append(list(args))
        return super().__call__(args, **kw)


def test_a_soundtrack_is_normalised_in_numpy_and_one_too_long_to_hold_by_loudnorm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a mixed stereo soundtrack THEN it is brought to the target without running ffmpeg (the caller encodes
    the WAV written, with no gain), and the measurement is reported as loudnorm's first pass reports it; GIVEN one
    longer than audio.SOUNDTRACK_MAX_FRAMES THEN loudnorm measures it and the caller encodes the soundtrack itself
    through loudnorm's second pass (its limiter), as before: nothing more written, and it lands on the target."""
    cfg = AudioConfig()
    src = _stereo_mix(tmp_path, seconds=10)  # with the burst that needs the limiter
    ff = _CountingFfmpeg(timeout=60)
    wav, afilter, measured = normalise_soundtrack(src, tmp_path / "numpy.wav", cfg, ff=ff, label="soundtrack.wav")
    assert ff.calls == [] and wav == tmp_path / "numpy.wav" and afilter == audio.FINAL_AUDIO_FORMAT
    with wave.open(str(src)) as w:
        ours = r128.measure(np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2), 48000)
    assert measured == ours.report()
    assert _ebur128(wav)[0] == pytest.approx(cfg.loudness_lufs, abs=0.1)

    monkeypatch.setattr(audio, "SOUNDTRACK_MAX_FRAMES", 1000)
    wav, afilter, measured = normalise_soundtrack(src, tmp_path / "loudnorm.wav", cfg, ff=ff, label="soundtrack.wav")
    assert ff.calls == [] and wav == src and not (tmp_path / "loudnorm.wav").exists()
    assert afilter.startswith("loudnorm=") and afilter.endswith(audio.FINAL_AUDIO_FORMAT)
    assert float(measured["input_i"]) == pytest.approx(ours.integrated, abs=1.0)  # loudnorm's meter reads apart
    out = tmp_path / "encoded.wav"
    ffmpeg("-i", str(wav), "-af", afilter, "-c:a", "pcm_s16le", str(out))
    integrated, peak = _ebur128(out)
    assert integrated == pytest.approx(cfg.loudness_lufs, abs=1.0) and peak <= cfg.true_peak_db + 0.1


def test_a_long_narration_is_normalised_in_numpy_piece_by_piece(tmp_path: Path) -> None:
    """GIVEN a minute of espeak-ng's voice (more than one piece, and more than the 2^20 samples once held whole)
    WHEN normalised THEN in numpy (no loudnorm), on the target and under the ceiling by ffmpeg's meter."""
    cfg = AudioConfig()
    rate, one = _read(_sentence(tmp_path, " ".join(SENTENCES)))
    pcm = np.tile(one, -(-60 * rate // len(one)))
    assert len(pcm) > max(1 << 20, r128._PIECE)
    src = _write(tmp_path / "long.wav", rate, pcm)
    dst = tmp_path / "out.wav"
    measured = normalise_short_wav(src, dst, cfg)
    assert measured is not None
    integrated, peak = _ebur128(dst)
    assert integrated == pytest.approx(cfg.loudness_lufs, abs=0.1)
    assert peak <= cfg.true_peak_db + 0.05


def test_a_narration_is_normalised_in_numpy_and_one_too_long_to_hold_by_loudnorm_in_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN espeak-ng's sentence THEN normalise_narration (the narrate stage's and the voice previews') brings it to
    the target in numpy and reports numpy's measurement; GIVEN one longer than r128.MAX_SAMPLES THEN loudnorm's
    two passes do it in-process (no ffmpeg started), the same rate and length, on the target. (Eight seconds: under
    three, loudnorm cannot limit, and lowers its gain instead of reaching the target.)"""
    cfg = AudioConfig()
    rate, one = _read(_sentence(tmp_path, SENTENCES[0]))
    pcm = np.tile(one, -(-8 * rate // len(one)))
    src = _write(tmp_path / "speech8.wav", rate, pcm)
    ff = _CountingFfmpeg(timeout=60)
    measured = normalise_narration(src, tmp_path / "numpy.wav", cfg, rate=rate, ff=ff, label="speech.wav")
    assert measured == r128.measure(pcm, rate).report()
    monkeypatch.setattr(r128, "MAX_SAMPLES", 1000)
    measured = normalise_narration(src, tmp_path / "loudnorm.wav", cfg, rate=rate, ff=ff, label="speech.wav")
    # loudnorm's meter reads up to ~0.4 LU under BS.1770 from 3 s on (this module's docstring)
    assert ff.calls == [] and float(measured["input_i"]) == pytest.approx(r128.measure(pcm, rate).integrated, abs=0.5)
    for name in ("numpy.wav", "loudnorm.wav"):
        out_rate, out = _read(tmp_path / name)
        assert out_rate == rate and len(out) == len(pcm)
        assert _ebur128(tmp_path / name)[0] == pytest.approx(cfg.loudness_lufs, abs=0.5)
