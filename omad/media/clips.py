"""Video clips as scenes: an untrusted clip's frames, at the output's rate, framed to the output.

Owns checking a clip before anything is encoded (a video stream, a demuxer
on the allow-list, a length and frame size within ``intake`` limits, a start
inside the clip) and drawing its frames for the one-pass render
(``omad.media.scenes``). The clip is decoded in process with PyAV, opened
under the same restrictions as ``probe`` (plain files, allowed demuxers),
one frame at a time: memory is the decoder's own buffers and two frames,
whatever the clip's length. Each output frame shows the source frame on
screen at that moment (frames dropped or repeated to the output rate, as
ffmpeg's ``fps`` filter does), from ``clip_start`` to the scene's end; a
clip that runs out first starts again from its beginning (looped, as
``-stream_loop`` does). swscale scales each frame straight to BT.709
limited-range yuv420p, the Timeline's plane format; ``cover`` crops the
centre to fill the frame, ``fit`` letterboxes it on black. A phone clip's
display rotation is applied.

It never runs ffmpeg, never reads the brief and never touches the sound
(the render mixes a ducked clip's audio itself).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .ffmpeg import VIDEO_DEMUXERS, open_untrusted, probe
from .pipe import Plane, Planes

__all__ = ["ClipInfo", "ClipFrames", "check_clip", "frame_geometry"]

# Y', Cb, Cr of black in limited range.
_BLACK = (16, 128, 128)


@dataclass(frozen=True)
class ClipInfo:
    """What a checked clip is: its upright frame size, length, rate, display rotation and whether it has sound."""

    path: Path
    width: int
    height: int
    duration: float
    fps: float
    rotation: int
    has_audio: bool

    def plan(self, start: float, seconds: float) -> dict[str, Any]:
        """How ``seconds`` of the clip from ``start`` fill a scene: trimmed (the clip is longer) or looped."""
        left = self.duration - start
        return {"clip_seconds": round(self.duration, 3), "clip_start": round(start, 3),
                "looped": left + 1e-3 < seconds, "trimmed": left > seconds + 1e-3}


def check_clip(path: Path, label: str, key: str, *, start: float, max_seconds: float,
               max_megapixels: float) -> ClipInfo:
    """Refuse ``path`` now, before any encoding, unless it is a clip omad will draw; ``key`` names it in the brief."""
    where = f"'{key}' ('{path.name}')"
    info = probe(path, file_label=f"{label}: {path.name}")
    if info.video is None:
        raise InputError(
            f"{where} has no video stream (format '{info.format_name}'). Name an MP4, MOV, MKV or WebM video there, "
            "or put a picture under 'image' instead.",
            file=label,
        )
    if info.format_name not in VIDEO_DEMUXERS:
        raise InputError(
            f"{where} is a '{info.format_name}' file, not a video container omad reads. Convert it to MP4 or WebM.",
            file=label,
        )
    duration = info.duration or float((info.video or {}).get("duration") or 0.0)
    if duration <= 0.01:
        raise InputError(f"{where} has no length omad can read. Check that it plays and drop the bundle again.",
                         file=label)
    if duration > max_seconds:
        raise InputError(
            f"{where} is {duration / 60:.1f} minutes long; the limit is {max_seconds / 60:.1f} minutes "
            "(intake.max_clip_seconds). Cut it or raise the limit.",
            file=label,
        )
    width, height = info.width, info.height
    if width < 2 or height < 2:
        raise InputError(f"{where} has an unusable frame size {width}x{height}.", file=label)
    if width * height > max_megapixels * 1_000_000:
        raise InputError(
            f"{where} is {width}x{height} pixels; omad takes frames up to {max_megapixels:g} MP "
            "(intake.max_image_megapixels). Scale it down and drop the bundle again.",
            file=label,
        )
    if start >= duration:
        raise InputError(
            f"{where} is {duration:.2f}s long, so 'clip_start: {start:g}' is past its end. Give a start inside it.",
            file=label,
        )
    rotation = info.rotation if info.rotation in (90, 180, 270) else 0
    if rotation in (90, 270):
        width, height = height, width
    return ClipInfo(path=path, width=width, height=height, duration=duration, fps=info.fps or 30.0,
                    rotation=rotation, has_audio=info.audio is not None)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def frame_geometry(src_w: int, src_h: int, width: int, height: int, fit: str) -> tuple[int, int, int, int]:
    """The upright clip scaled for a ``width`` x ``height`` frame: (scaled w, scaled h, x, y), all even.

    ``cover`` scales to cover the frame and (x, y) is where the frame's window
    starts in the scaled picture; ``fit`` scales to fit inside and (x, y) is
    where the picture sits on the black frame.
    """
    if fit == "cover":
        scale = max(width / src_w, height / src_h)
        sw = max(width, _even(math.ceil(src_w * scale)))
        sh = max(height, _even(math.ceil(src_h * scale)))
        return sw, sh, 2 * ((sw - width) // 4), 2 * ((sh - height) // 4)
    scale = min(width / src_w, height / src_h)
    sw = min(width, _even(src_w * scale))
    sh = min(height, _even(src_h * scale))
    return sw, sh, 2 * ((width - sw) // 4), 2 * ((height - sh) // 4)


def _plane(frame: Any, index: int, width: int, height: int) -> Plane:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)
    return rows[:, :width]


class ClipFrames:
    """Frame ``i`` of a scene that shows a clip, as yuv420p planes; ``i`` only moves forward.

    Called from the one drawing thread in frame order (a crossfade asks for
    the same or the next frame); the container is opened on the first call
    and closed by :meth:`close` (the Timeline calls it when the scene is done).
    """

    def __init__(self, info: ClipInfo, *, width: int, height: int, fps: int, count: int, start: float, fit: str,
                 label: str) -> None:
        if fit not in ("cover", "fit"):
            raise ValueError(f"fit must be cover or fit, not {fit!r}")
        self.info = info
        self.size = (width, height)
        self.fps = fps
        self.count = count
        self.start = start
        self.fit = fit
        self.label = label
        sw, sh, self._x, self._y = frame_geometry(info.width, info.height, width, height, fit)
        # swscale works on the frame as stored: a sideways (phone) clip is scaled sideways, then turned.
        self._scaled = (sh, sw) if info.rotation in (90, 270) else (sw, sh)
        self._turns = (info.rotation // 90) % 4
        self._tolerance = 1e-3 + 0.5 / max(float(fps), info.fps)
        self._container: Any = None
        self._source: Iterator[tuple[float, Any]] | None = None
        self._current: tuple[float, Any] | None = None
        self._next: tuple[float, Any] | None = None
        self._drawn: tuple[Any, Planes] | None = None
        self._last = -1
        self.passes = 0

    # -- decoding ----------------------------------------------------------------------------------------

    def _open(self) -> Any:
        self.close()
        self._container = open_untrusted(self.info.path, file_label=f"{self.label}: {self.info.path.name}")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        return stream

    def _decode(self, stream: Any) -> Iterator[Any]:
        import av.error as av_error

        try:
            yield from self._container.decode(stream)
        except (av_error.FFmpegError, ValueError, OSError) as e:
            raise InputError(
                f"the clip '{self.info.path.name}' could not be decoded ({e}). Check that it plays, or replace it, "
                "and drop the bundle again.",
                file=self.label,
            ) from e

    def _frames(self) -> Iterator[tuple[float, Any]]:
        """(scene seconds, frame) for ever: from ``start`` to the clip's end, then again from its beginning."""
        offset = 0.0
        step = 1.0 / self.info.fps
        while True:
            stream = self._open()
            first_pass = self.passes == 0
            self.passes += 1
            # Timestamps count from the stream's own start (an MPEG-TS clip starts at 1.4 s, say).
            origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            if first_pass and self.start > 0:
                # Back to the keyframe before the start; frames before it are decoded and passed over.
                self._container.seek(int((origin + self.start) / stream.time_base), stream=stream)
            base: float | None = None
            last: float | None = None
            duration = step
            for frame in self._decode(stream):
                if frame.time is None:  # no timestamp: one source frame after the last
                    at = last + step if last is not None else (0.0 if first_pass else offset)
                elif first_pass:
                    at = float(frame.time) - origin - self.start
                else:
                    t = float(frame.time) - origin
                    base = t if base is None else base
                    at = offset + t - base
                if last is not None and at <= last:
                    continue  # a repeated or out-of-order timestamp: the frame before it stays on screen
                last = at
                if frame.duration and frame.time_base:
                    duration = float(frame.duration * frame.time_base)
                yield at, frame
            if last is None or last < -self._tolerance:
                raise InputError(
                    f"the clip '{self.info.path.name}' has no frames "
                    + (f"after {self.start:g}s (clip_start)." if first_pass else "to loop.")
                    + " Check that it plays, or choose another start, and drop the bundle again.",
                    file=self.label,
                )
            offset = max(last, 0.0) + duration

    def _advance(self, at: float) -> tuple[float, Any]:
        """The source frame on screen ``at`` seconds into the scene."""
        if self._source is None:
            self._source = self._frames()
            self._current = next(self._source)
        assert self._current is not None
        while True:
            if self._next is None:
                self._next = next(self._source)
            if self._next[0] > at + self._tolerance:
                return self._current
            self._current, self._next = self._next, None

    # -- drawing -----------------------------------------------------------------------------------------

    def _convert(self, frame: Any) -> Planes:
        from av.video.reformatter import ColorRange, Colorspace, Interpolation

        sw, sh = self._scaled
        interpolation = Interpolation.AREA if sw * sh < frame.width * frame.height else Interpolation.BICUBIC
        scaled = frame.reformat(width=sw, height=sh, format="yuv420p", dst_colorspace=Colorspace.ITU709,
                                dst_color_range=ColorRange.MPEG, interpolation=interpolation, threads=1)
        planes = [_plane(scaled, 0, sw, sh), _plane(scaled, 1, sw // 2, sh // 2), _plane(scaled, 2, sw // 2, sh // 2)]
        if self._turns:
            planes = [np.rot90(p, self._turns) for p in planes]
        width, height = self.size
        out: list[Plane] = []
        for p, black, div in zip(planes, _BLACK, (1, 2, 2), strict=True):
            w, h = width // div, height // div
            x, y = self._x // div, self._y // div
            if self.fit == "cover":
                out.append(np.ascontiguousarray(p[y:y + h, x:x + w]))
            else:
                canvas = np.full((h, w), black, np.uint8)
                canvas[y:y + p.shape[0], x:x + p.shape[1]] = p
                out.append(canvas)
        return out[0], out[1], out[2]

    def __call__(self, i: int) -> Planes:
        i = min(max(i, 0), self.count - 1)
        if i < self._last:
            raise ValueError(f"clip frames are drawn in order: frame {i} asked after frame {self._last}")
        self._last = i
        _at, frame = self._advance(i / self.fps)
        if self._drawn is not None and self._drawn[0] is frame:
            return self._drawn[1]  # the same source frame stays on screen (a clip slower than the output)
        planes = self._convert(frame)
        self._drawn = (frame, planes)
        return planes

    def close(self) -> None:
        """Close the clip (its decoder's buffers go with it)."""
        if self._container is not None:
            self._container.close()
            self._container = None
