"""The second loudness pass: a plain gain where loudnorm's linear mode would be one, loudnorm's limiter otherwise."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import ffmpeg

from omad.config import AudioConfig
from omad.media.audio import gain_filter, measure_loudness
from omad.media.ffmpeg_run import Ffmpeg


def _integrated(path: Path) -> float:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", out)[-1])


def test_quiet_speech_gets_a_plain_gain_that_lands_on_the_target(tmp_path: Path) -> None:
    """GIVEN a quiet tone (room to raise it under the peak limit) THEN the filter is a volume gain,
    and applying it lands on audio.loudness_lufs as loudnorm's linear mode would."""
    cfg = AudioConfig()
    src = tmp_path / "quiet.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000,volume=0.05", "-t", "4", str(src))
    measured = measure_loudness(src, ff=Ffmpeg(timeout=30), label="quiet.wav", audio_cfg=cfg)
    chosen = gain_filter(measured, cfg)
    assert chosen.startswith("volume=") and chosen.endswith("dB")
    out = tmp_path / "out.wav"
    ffmpeg("-i", str(src), "-af", chosen, str(out))
    assert _integrated(out) == pytest.approx(cfg.loudness_lufs, abs=0.5)


def test_a_gain_that_would_clip_goes_through_loudnorm() -> None:
    """GIVEN audio whose peak would pass the true-peak limit after the gain THEN loudnorm (with its limiter) is used."""
    cfg = AudioConfig()
    measured = {"input_i": "-30.0", "input_tp": "-2.0", "input_lra": "3", "input_thresh": "-40", "target_offset": "0"}
    assert gain_filter(measured, cfg).startswith("loudnorm=")
    # And a report omad cannot read is no reason to guess: loudnorm decides.
    assert gain_filter({"input_i": "-inf"}, cfg).startswith("loudnorm=")
