"""ffmpeg under one caller's supervision (``ctx.ffmpeg``) and the video-output value, with real ffmpeg."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from omad.config import Config, VideoConfig
from omad.errors import TransientError
from omad.lanes import Lanes
from omad.media.encoder import VideoOutput
from omad.media.ffmpeg import probe
from omad.media.ffmpeg_run import Ffmpeg
from omad.stage import StageContext

_TONE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "pcm_s16le"]


def test_a_stage_context_gives_its_timeout_cancel_progress_and_stage_once(tmp_path: Path) -> None:
    """GIVEN a stage context WHEN a stage calls ctx.ffmpeg with a span of its progress
    THEN ffmpeg runs, and only that span of the stage's progress is reported, ending at its top."""
    seen: list[float] = []
    ctx = StageContext(job_id="j", route="narrate", name="t", work=tmp_path, inputs={}, options={}, config=Config(),
                       lanes=Lanes(1), stage="narrate", timeout=120.0, progress=seen.append)
    ctx.scale_timeout(10.0)
    ff = ctx.ffmpeg
    assert (ff.timeout, ff.stage, ff.cancel) == (ctx.timeout, "narrate", ctx.cancel)  # the scaled timeout
    ctx.ffmpeg([*_TONE, str(tmp_path / "a.wav")], duration=2.0, span=(0.5, 0.8), file_label="a.wav")
    assert probe(tmp_path / "a.wav").duration == pytest.approx(2.0, abs=0.05)
    assert seen and all(0.5 <= f <= 0.8 + 1e-9 for f in seen) and seen[-1] == pytest.approx(0.8)


def test_a_call_without_a_span_reports_nothing(tmp_path: Path) -> None:
    seen: list[float] = []
    Ffmpeg(timeout=60.0, progress=seen.append)([*_TONE, str(tmp_path / "a.wav")], duration=2.0)
    assert seen == []


def test_within_maps_a_helpers_own_progress_onto_a_span() -> None:
    seen: list[float] = []
    inner = Ffmpeg(timeout=1.0, progress=seen.append).within((0.2, 0.6))
    assert inner.progress is not None
    inner.progress(0.5)
    assert seen == [pytest.approx(0.4)]


def test_a_cancelled_caller_stops_its_ffmpeg_as_transient() -> None:
    """GIVEN a caller already cancelled WHEN it runs a ten-hour encode THEN ffmpeg is stopped: a transient error."""
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TransientError) as err:
        Ffmpeg(timeout=600.0, cancel=cancel, stage="narrate")(
            ["-f", "lavfi", "-i", "sine=frequency=440:duration=36000", "-f", "null", "-"], file_label="tone")
    assert err.value.stage == "narrate"


def test_the_video_output_is_the_video_settings_as_one_value() -> None:
    video = VideoConfig(crf=23, x264_preset="fast", x264_threads=1, audio_bitrate="128k", encoder="libx264", fps=25)
    out = VideoOutput.from_config(video, (720, 1280))
    assert (out.width, out.height, out.fps, out.crf, out.preset, out.threads, out.audio_bitrate) == \
        (720, 1280, 25, 23, "fast", 1, "128k")
    assert out.chosen.name == "libx264" and "-crf" in out.chosen.args and "23" in out.chosen.args
    plain = VideoOutput(width=64, height=36, fps=10, crf=30, preset="ultrafast", threads=1)
    assert plain.chosen.args[:6] == ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "30")
