"""Loudness in-process (omad.media.loudness): the same report and the same samples as the ffmpeg command line."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import ffmpeg

from omad.config import AudioConfig
from omad.errors import InputError, ToolTimeout, TransientError
from omad.media import loudness

_REPORT = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.S)


def _cli_report(path: Path, cfg: AudioConfig) -> dict[str, str]:
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-af",
                          f"loudnorm=I={cfg.loudness_lufs}:TP={cfg.true_peak_db}:LRA=11:print_format=json",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    m = _REPORT.search(err)
    assert m, err[-500:]
    report: dict[str, str] = json.loads(m.group(0))
    return report


def _samples(path: Path) -> tuple[int, int, np.ndarray]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _speech(tmp_path: Path) -> Path:
    """A loud, peaky mono 22.05 kHz recording, as espeak-ng writes: loudnorm's limiter is needed on it."""
    src = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "pt-br", "-w", str(src),
                    "Olá, este é um teste de narração em português do Brasil, com números: 1, 2 e 3."], check=True)
    return src


@pytest.mark.parametrize("kind", ["speech", "stereo music"])
def test_the_report_and_the_second_pass_are_ffmpegs_own(tmp_path: Path, kind: str) -> None:
    """GIVEN espeak-ng's speech (mono 22.05 kHz) or a stereo 48 kHz mix WHEN measured and normalised in-process
    THEN the report is the one the ffmpeg command prints, and the WAV has the same samples, sample for sample,
    as `ffmpeg -af loudnorm=... -ar R -ac C -c:a pcm_s16le` writes."""
    cfg = AudioConfig()
    if kind == "speech":
        src, rate, channels = _speech(tmp_path), 22050, 1
    else:
        src, rate, channels = tmp_path / "mix.wav", 48000, 2
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000", "-f", "lavfi", "-i",
               "anoisesrc=color=pink:sample_rate=48000:amplitude=0.3", "-filter_complex",
               "[0:a][1:a]amerge=inputs=2,volume=0.4", "-t", "5", "-c:a", "pcm_s16le", str(src))
    ours = loudness.measure(src, cfg, label=src.name, timeout=60)
    assert ours == _cli_report(src, cfg)

    mine, theirs = tmp_path / "ours.wav", tmp_path / "theirs.wav"
    loudness.normalise(src, mine, ours, cfg, rate=rate, channels=channels, label=src.name, timeout=60)
    ffmpeg("-i", str(src), "-af", f"loudnorm={loudness.linear_spec(ours, cfg)}", "-ar", str(rate), "-ac",
           str(channels), "-c:a", "pcm_s16le", str(theirs))
    r1, c1, a = _samples(mine)
    r2, c2, b = _samples(theirs)
    assert (r1, c1, len(a)) == (r2, c2, len(b)) == (rate, channels, len(b))
    assert np.array_equal(a, b)
    # Near the target (loudnorm's dynamic mode on a few seconds of speech lands within ~1 LU of it).
    assert float(loudness.measure(mine, cfg, label="out", timeout=60)["input_i"]) == pytest.approx(
        cfg.loudness_lufs, abs=1.5)


def test_two_threads_measure_at_once_each_getting_its_own_report(tmp_path: Path) -> None:
    """GIVEN two different files measured in two threads at the same time THEN each gets its own file's report."""
    cfg = AudioConfig()
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000,volume=0.5", "-t", "6", str(loud))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000,volume=0.05", "-t", "6", str(quiet))
    got: dict[str, list[str]] = {"loud": [], "quiet": []}

    def work(name: str, path: Path) -> None:
        for _ in range(3):
            got[name].append(loudness.measure(path, cfg, label=path.name, timeout=60)["input_i"])

    threads = [threading.Thread(target=work, args=("loud", loud)), threading.Thread(target=work, args=("quiet", quiet))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got["loud"] == [_cli_report(loud, cfg)["input_i"]] * 3
    assert got["quiet"] == [_cli_report(quiet, cfg)["input_i"]] * 3


def test_a_file_without_sound_a_cancel_and_a_timeout_are_omad_errors(tmp_path: Path) -> None:
    """GIVEN a video without an audio track THEN an InputError naming the file; GIVEN a set cancel event THEN a
    transient error (omad is shutting down); GIVEN no time left THEN a ToolTimeout, retried like ffmpeg's."""
    cfg = AudioConfig()
    silent = tmp_path / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=1", "-c:v", "libx264", str(silent))
    with pytest.raises(InputError, match="no sound") as e:
        loudness.measure(silent, cfg, label="clip.mp4", timeout=60)
    assert e.value.file == "clip.mp4"
    speech = _speech(tmp_path)
    stop = threading.Event()
    stop.set()
    with pytest.raises(TransientError, match="shutting down"):
        loudness.measure(speech, cfg, label="speech.wav", timeout=60, cancel=stop)
    with pytest.raises(ToolTimeout):
        loudness.measure(speech, cfg, label="speech.wav", timeout=-1)


@pytest.mark.parametrize("stopped", [False, True], ids=["a finished pass", "a pass stopped halfway"])
def test_a_pass_frees_its_graph_before_it_returns(tmp_path: Path, stopped: bool) -> None:
    """GIVEN a loudnorm pass that ends (or is stopped after its first frame) THEN its filter graph is already
    freed: a collection afterwards, in any thread, finds no graph left whose closing report would land there.

    PyAV from 18.1.1 links a graph and its filters both ways; left to the cyclic collector, a stopped pass's
    report could turn up inside another measurement's log and be read as that file's figures.
    """
    import gc

    import av.logging

    speech = _speech(tmp_path)
    stop = threading.Event()
    run = loudness._Run(speech, "speech.wav", 60, stop)
    chain = [("loudnorm", loudness.measure_spec(AudioConfig()))]
    gc.disable()
    try:
        with av.logging.Capture(local=True) as during:
            if stopped:
                with pytest.raises(TransientError):
                    run.through(chain, lambda frame: stop.set())
            else:
                run.through(chain, lambda frame: None)
        with av.logging.Capture(local=True) as after:
            gc.collect()
    finally:
        gc.enable()
    assert ["input_i" in str(line[2]) for line in during].count(True) == 1
    assert not [line for line in after if "input_i" in str(line[2])]


def test_a_graph_that_outlives_its_pass_is_collected_in_the_measuring_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a PyAV whose graph the cycle-breaking cannot free (simulated: ``_unlink`` does nothing) and the
    collector left to itself (off) THEN the pass still collects its own graph before it returns, and the
    report is the file's."""
    import gc

    cfg = AudioConfig()
    speech = _speech(tmp_path)
    monkeypatch.setattr(loudness, "_unlink", lambda graph: None)
    gc.disable()
    try:
        got = loudness.measure(speech, cfg, label=speech.name, timeout=60)
    finally:
        gc.enable()
    assert got["input_i"] == _cli_report(speech, cfg)["input_i"]


def test_a_log_with_two_reports_is_refused_not_guessed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN another pass's report landing in this measurement's log (a graph freed in this thread meanwhile) THEN
    a transient error (measured again), never one of the two figures; GIVEN one report THEN it is returned."""
    import av.logging

    reports = ['{\n\t"input_i" : "-20.00",\n\t"input_tp" : "-3.00"\n}', '{\n\t"input_i" : "-31.00"\n}']

    def through(self: object, chain: object, take: object) -> None:
        for report in reports:
            av.logging.log(av.logging.INFO, "loudnorm", report)

    monkeypatch.setattr(loudness._Run, "through", through)
    with pytest.raises(TransientError, match="another file's report") as e:
        loudness.measure(tmp_path / "a.wav", AudioConfig(), label="a.wav", timeout=60)
    assert e.value.file == "a.wav"
    reports.pop()
    assert loudness.measure(tmp_path / "a.wav", AudioConfig(), label="a.wav", timeout=60)["input_i"] == "-20.00"
