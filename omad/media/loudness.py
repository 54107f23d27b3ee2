"""Loudness normalisation in-process: ffmpeg's own ``loudnorm`` filter, run through PyAV's libavfilter.

The two passes are the ones the ffmpeg command line does (measure, then
normalise with the measured values, ``linear=true``: a plain gain where it
keeps the true peak under the limit, else loudnorm's limiter), without
starting a process. For a one-sentence narration, each ffmpeg start cost more
(~65 ms of CPU: dynamic linking and mapping ~80 shared libraries) than the
filter's own work. The filter is the same code: for the same input and
settings the system ffmpeg and PyAV's libavfilter give the same report and
byte-identical samples (``tests/test_loudness.py`` compares them).

The first pass's figures exist only as the JSON report loudnorm writes to
libav's log when the filter is freed; it is captured from the log of the
thread that frees it.
"""

from __future__ import annotations

import gc
import json
import re
import threading
import time
import wave
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..config import AudioConfig
from ..errors import InputError, StageFailed, ToolTimeout, TransientError
from .ffmpeg import open_untrusted

__all__ = ["linear_spec", "measure", "measure_spec", "normalise", "read_report"]

_REPORT = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.S)
_LOG_SET = threading.Lock()
_log_ready = False


def _route_libav_log() -> None:
    """libav's log through PyAV (so one thread's lines can be captured), repeated lines kept; done once.

    PyAV starts with libav's log switched off, and then nothing can be captured. Lines nobody captures go to
    the ``libav`` Python logger, which omad keeps quiet as PyAV's default did: what matters of an ffmpeg
    failure reaches the user as the omad error raised from it.
    """
    global _log_ready
    with _LOG_SET:
        if _log_ready:
            return
        import logging

        import av.logging

        quiet = logging.getLogger("libav")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        av.logging.set_level(av.logging.INFO)
        av.logging.set_skip_repeated(False)  # two measurements with the same figures are two reports
        _log_ready = True


def linear_spec(measured: dict[str, Any], audio_cfg: AudioConfig) -> str:
    """loudnorm's options for the second pass with the first pass's figures (``linear=true``)."""
    def num(key: str, default: float) -> float:
        try:
            value = float(measured.get(key, default))
        except (TypeError, ValueError):
            return default
        return value if value not in (float("inf"), float("-inf")) else default

    return (
        f"I={audio_cfg.loudness_lufs}:TP={audio_cfg.true_peak_db}:LRA=11"
        f":measured_I={num('input_i', -24):.2f}:measured_TP={num('input_tp', -2):.2f}"
        f":measured_LRA={num('input_lra', 7):.2f}:measured_thresh={num('input_thresh', -34):.2f}"
        f":offset={num('target_offset', 0):.2f}:linear=true"
    )


class _Run:
    """One pass: the file decoded in-process into a filter chain; stopped by ``cancel`` or after ``timeout``."""

    def __init__(self, path: Path, label: str, timeout: float, cancel: threading.Event | None) -> None:
        self.path, self.label, self.timeout, self.cancel = path, label, timeout, cancel
        self.deadline = time.monotonic() + timeout

    def frames(self, container: Any) -> Iterator[Any]:
        import av.error as av_error

        if not container.streams.audio:
            raise InputError("has no sound to measure. Drop a recording with an audio track.", file=self.label)
        try:
            for frame in container.decode(container.streams.audio[0]):
                if self.cancel is not None and self.cancel.is_set():
                    raise TransientError("the loudness pass was stopped because omad is shutting down.",
                                         file=self.label)
                if time.monotonic() > self.deadline:
                    raise ToolTimeout(f"the loudness pass ran longer than the stage timeout ({self.timeout:.0f}s); "
                                      "it will be retried. Raise jobs.stage_timeouts if the input is very long.",
                                      file=self.label)
                yield frame
        except av_error.FFmpegError as e:
            raise InputError(f"could not be decoded for its loudness ({e}). Check that the file is complete and "
                             "drop it again.", file=self.label) from e

    def through(self, chain: list[tuple[str, str]], take: Callable[[Any], None]) -> None:
        """Every decoded frame through ``abuffer`` -> ``chain`` -> a sink, each frame out handed to ``take``.

        The graph is freed before this returns, also when a pass fails (see ``_unlink``), so the filters'
        closing reports are in this thread's log by then.
        """
        with open_untrusted(self.path, timeout=self.timeout, file_label=self.label) as container:
            frames = self.frames(container)
            first = next(frames, None)
            if first is None:
                raise InputError("has no sound to measure: its audio track is empty.", file=self.label)
            _pump(container.streams.audio[0], first, frames, chain, take)


def _pump(stream: Any, first: Any, frames: Iterator[Any], chain: list[tuple[str, str]],
          take: Callable[[Any], None]) -> None:
    import av
    import av.filter

    graph: Any = av.filter.Graph()
    node: Any = None
    step: Any = None
    try:
        node = graph.add_abuffer(template=stream)
        for name, options in chain:
            step = graph.add(name, options)
            node.link_to(step)
            node = step
        node.link_to(graph.add("abuffersink"))
        graph.configure()

        def drain() -> None:
            while True:
                try:
                    take(graph.pull())
                except (av.BlockingIOError, av.EOFError):
                    return

        graph.push(first)
        drain()
        for frame in frames:
            graph.push(frame)
            drain()
        graph.push(None)
        drain()
    finally:
        _unlink(graph)
        freed = weakref.ref(graph)
        graph = node = step = None  # the last references: the graph is freed here, in this thread
        if freed() is not None:
            # A PyAV whose graph still holds itself some other way: collect here, in this thread, so the
            # closing report still lands in this pass's log (``measure`` refuses a log with two reports).
            gc.collect()


def _unlink(graph: Any) -> None:
    """Break the cycle between a PyAV filter graph and its filter contexts, so the graph is freed by refcount.

    From PyAV 18.1.1 on, each filter context holds its graph (before, it held a weak reference), and the graph
    holds its contexts in dicts and lists. Such a cycle is freed by Python's cyclic collector, at a moment and in
    a thread of its own choosing: loudnorm's closing report would then go to whichever thread's log that is, or
    nowhere. Emptying the graph's containers of contexts (all it does with them is look them up while it runs)
    leaves nothing pointing back at it. Also when a pass fails: the traceback keeps this frame, not the graph.
    """
    for held in gc.get_referents(graph):
        if isinstance(held, (dict, list)):
            held.clear()


def measure(path: Path, audio_cfg: AudioConfig, *, label: str, timeout: float,
            cancel: threading.Event | None = None) -> dict[str, Any]:
    """loudnorm's first pass over ``path``'s first audio track: its JSON report (``input_i``, ``input_tp``...)."""
    import av.logging

    _route_libav_log()
    run = _Run(path, label, timeout, cancel)
    with av.logging.Capture(local=True) as logs:
        run.through([("loudnorm", measure_spec(audio_cfg))], lambda frame: None)
    text = "".join(str(line[2]) for line in logs)
    if len(_REPORT.findall(text)) > 1:
        # Another pass's graph was freed in this thread meanwhile: which report is this file's cannot be told.
        raise TransientError("the loudness measurement met another file's report; it will be measured again.",
                             file=label)
    return read_report(text, label)


def measure_spec(audio_cfg: AudioConfig) -> str:
    """loudnorm's options for the first pass (the measurement, reported as JSON when the filter is freed)."""
    return f"I={audio_cfg.loudness_lufs}:TP={audio_cfg.true_peak_db}:LRA=11:print_format=json"


def read_report(text: str, label: str) -> dict[str, Any]:
    """The first pass's JSON report out of a log (libav's, or an ffmpeg run's stderr at ``info``)."""
    m = _REPORT.search(text)
    if not m:
        raise StageFailed("the loudness measurement wrote no report.", file=label,
                          details={"log_tail": text[-1500:]})
    report: dict[str, Any] = json.loads(m.group(0))
    return report


def normalise(src: Path, dst: Path, measured: dict[str, Any], audio_cfg: AudioConfig, *, rate: int,
              channels: int, label: str, timeout: float, cancel: threading.Event | None = None) -> None:
    """loudnorm's second pass over ``src`` into ``dst``: 16-bit PCM WAV at ``rate`` Hz with ``channels``.

    What ``ffmpeg -i src -af loudnorm=<linear_spec> -ar rate -ac channels -c:a pcm_s16le dst`` writes.
    """
    import numpy as np

    layout = {1: "mono", 2: "stereo"}[channels]
    chunks: list[Any] = []
    run = _Run(src, label, timeout, cancel)
    run.through([("loudnorm", linear_spec(measured, audio_cfg)), ("aresample", str(rate)),
                 ("aformat", f"sample_fmts=s16:channel_layouts={layout}:sample_rates={rate}")],
                lambda frame: chunks.append(frame.to_ndarray().reshape(-1)))
    pcm = np.concatenate(chunks).astype("<i2") if chunks else np.zeros(0, "<i2")
    tmp = dst.with_name(dst.name + ".part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    tmp.replace(dst)
