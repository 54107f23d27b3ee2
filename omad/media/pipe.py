"""Raw frames drawn by omad, piped into one ffmpeg encoder.

Owns the FIFO between the frame drawer and ffmpeg: ffmpeg runs through
``omad.media.ffmpeg.run_ffmpeg`` (so it is started with ``procs.spawn``, its
timeout, cancel and error mapping apply), and the frames are drawn in a worker
thread a few frames ahead of the write, so drawing (OpenCV and numpy release
the GIL) overlaps with x264 on the other core. It never decides what a frame
looks like or how ffmpeg encodes; callers pass both.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import fcntl
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import StageFailed
from .encoder import COLOUR_TAGS

if TYPE_CHECKING:
    from .ffmpeg_run import Ffmpeg, Span

__all__ = ["Plane", "Planes", "FrameSource", "encode_piped", "COLOUR_TAGS"]

Plane = npt.NDArray[np.uint8]
#: One yuv420p frame: Y' at full size, Cb and Cr at half size, each C-contiguous.
Planes = tuple[Plane, Plane, Plane]
#: Draws frame ``i``.
FrameSource = Callable[[int], Sequence[Any]]


# Frames drawn ahead of the one being written: enough to ride out a slow frame (a crossfade draws two).
_AHEAD = 3


def _open_writer(fifo: Path, reader: threading.Thread) -> int | None:
    """Open the FIFO for writing once ffmpeg opens it; None if ffmpeg ended first.

    A plain blocking open would hang forever if ffmpeg failed before opening
    its input, so poll a non-blocking open while the ffmpeg thread lives.
    """
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            if not reader.is_alive():
                return None
            time.sleep(0.005)
            continue
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        # A 1 MiB pipe lets us run a frame ahead of ffmpeg's reads (Linux only; harmless elsewhere).
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        return fd


def encode_piped(
    make: FrameSource,
    count: int,
    ffmpeg_args: Callable[[Path], list[str]],
    *,
    ff: Ffmpeg,
    duration: float,
    label: str,
    span: Span = (0.0, 1.0),
) -> None:
    """Feed ``count`` raw frames from ``make`` to ffmpeg (run under ``ff``) through a FIFO.

    ffmpeg's progress is reported as ``span`` of ``ff``'s.

    ``ffmpeg_args`` gets the FIFO's path and returns everything after the
    program name. ffmpeg runs in a thread; if it dies or is killed (timeout,
    cancel) our next write fails with a broken pipe and its own mapped error
    is raised. If drawing a frame fails, the FIFO is closed, ffmpeg finishes
    early and our error is raised instead of its truncated success.
    """
    with tempfile.TemporaryDirectory(prefix="omad-frames-") as tmp:
        fifo = Path(tmp) / "frames.yuv"
        os.mkfifo(fifo, 0o600)
        failure: list[BaseException] = []

        def _run() -> None:
            try:
                ff(ffmpeg_args(fifo), duration=duration, span=span, file_label=label)
            except BaseException as e:  # handed to the caller's thread below
                failure.append(e)

        # In the caller's context, so the encoder's trace span is a child of the stage's.
        runner = threading.Thread(target=contextvars.copy_context().run, args=(_run,), name="omad-ffmpeg-encoder",
                                  daemon=True)
        runner.start()
        fd = _open_writer(fifo, runner)
        if fd is not None:
            try:
                with open(fd, "wb", buffering=0) as pipe, ThreadPoolExecutor(1, "omad-draw") as pool:
                    ahead: deque[Future[Sequence[Any]]] = deque(
                        pool.submit(make, i) for i in range(min(_AHEAD, count))
                    )
                    for i in range(count):
                        frame = ahead.popleft().result()
                        if i + _AHEAD < count:
                            ahead.append(pool.submit(make, i + _AHEAD))
                        for plane in frame:
                            pipe.write(plane)
            except BrokenPipeError:
                pass  # ffmpeg stopped reading: its own error (below) says why
            except BaseException:
                runner.join()
                raise
        runner.join()
        if failure:
            raise failure[0]
        if fd is None:
            raise StageFailed("ffmpeg exited before reading the frames.", file=label, stage=ff.stage)
