"""A scene video's picture as one stream of frames: scenes in a row, crossfaded, with on-screen titles.

Owns the timeline in whole frames (where each scene starts and how long the
crossfades are), laying a scene's on-screen title over its moving picture,
and blending neighbours during a crossfade. Every frame is drawn here in
memory and encoded once by the caller's single encoder (which also burns the
captions): no scene is encoded, decoded and encoded again. A scene is a still
(Ken Burns or title card: ``omad.media.kenburns``) or a video clip
(``omad.media.clips``), both drawing yuv420p planes. Scenes
are prepared (image decoded, canvas built, clip opened) one scene ahead in a
worker thread and closed and dropped when done, so memory stays at about two
scenes whatever their number. It never reads the brief and never runs ffmpeg.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import ToolMissing
from .kenburns import _cv2, _planes
from .pipe import Plane, Planes

__all__ = ["TitleOverlay", "Timeline", "SceneSpec", "SceneFrames", "layout"]


class SceneFrames(Protocol):
    """One scene's moving picture: frame ``i`` of its own frames, asked in order; ``close`` frees what it holds."""

    def __call__(self, i: int) -> Planes: ...

    def close(self) -> None: ...


class TitleOverlay:
    """An on-screen title (white text on a translucent black box, top centre), ready to lay over frames.

    ``top`` is where it starts, as a fraction of the height (the format's safe area).

    Drawn once with Pillow in a real TrueType font and kept as premultiplied
    Y'CbCr planes of its bounding box only, so laying it over a frame is a few
    integer array operations on that box.
    """

    def __init__(self, text: str, width: int, height: int, font_file: str, top: float = 0.08) -> None:
        size = max(12, round(height * 0.06))
        try:
            font = ImageFont.truetype(font_file, size)
        except OSError as e:
            raise ToolMissing(
                f"the title font '{font_file}' cannot be opened ({e}). Install it with "
                "`sudo apt-get install fonts-dejavu-core`, or point scenes.title_font_file at a .ttf file."
            ) from e
        spacing, border = size // 4, size // 2
        text_mask = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(text_mask)
        left, top_px, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=spacing,
                                                              align="center")
        x = (width - (right - left)) / 2 - left
        y = height * top - top_px
        draw.multiline_text((x, y), text, font=font, fill=255, spacing=spacing, align="center")
        box_mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(box_mask).rectangle(
            (x + left - border, y + top_px - border, x + right + border, y + bottom + border), fill=255
        )
        m = np.asarray(text_mask, dtype=np.float32) / 255.0
        b = np.asarray(box_mask, dtype=np.float32) / 255.0 * 0.45
        alpha = m + b * (1.0 - m)  # white text over the box
        # Straight (not premultiplied) colour: white where the text is, black in the box around it.
        grey = np.divide(m, alpha, out=np.zeros_like(m), where=alpha > 0)
        rgb = np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
        luma, cb, cr = _planes(Image.fromarray(np.stack([rgb] * 3, axis=-1)))
        ys, xs = np.nonzero(alpha > 0)
        if len(ys) == 0:
            self.box = (0, 0, 0, 0)
            self._planes: list[tuple[np.ndarray, np.ndarray]] = []
            return
        y0, y1 = (int(ys.min()) // 2) * 2, min(height, (int(ys.max()) // 2 + 1) * 2)
        x0, x1 = (int(xs.min()) // 2) * 2, min(width, (int(xs.max()) // 2 + 1) * 2)
        self.box = (x0, y0, x1, y1)
        a = alpha[y0:y1, x0:x1]
        h, w = a.shape
        ah = a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        self._planes = []
        for plane, weight, (px0, py0, px1, py1) in (
            (luma, a, (x0, y0, x1, y1)),
            (cb, ah, (x0 // 2, y0 // 2, x1 // 2, y1 // 2)),
            (cr, ah, (x0 // 2, y0 // 2, x1 // 2, y1 // 2)),
        ):
            a255 = np.round(weight * 255.0).astype(np.uint16)
            # The overlay is grey (white text, black box), so its chroma is neutral and a plain
            # 2x2 alpha average is exact for the half-size planes.
            fg = plane[py0:py1, px0:px1].astype(np.float32)
            premult = np.round(fg * a255).astype(np.uint16)
            self._planes.append((255 - a255, premult))

    def over(self, frame: Planes) -> Planes:
        """A copy of ``frame`` with the title laid over it (``frame`` itself may be a cached still)."""
        if not self._planes:
            return frame
        x0, y0, x1, y1 = self.box
        out: list[Plane] = []
        for plane, (keep, premult), (px0, py0, px1, py1) in zip(
            frame,
            self._planes,
            ((x0, y0, x1, y1), (x0 // 2, y0 // 2, x1 // 2, y1 // 2), (x0 // 2, y0 // 2, x1 // 2, y1 // 2)),
            strict=True,
        ):
            copy = plane.copy()
            region = copy[py0:py1, px0:px1].astype(np.uint16)
            copy[py0:py1, px0:px1] = ((region * keep + premult + 127) // 255).astype(np.uint8)
            out.append(copy)
        return out[0], out[1], out[2]


@dataclass
class SceneSpec:
    """One scene on the timeline: how to prepare its frames, for how many frames, and its title if any."""

    prepare: Callable[[int], SceneFrames]
    frames: int
    title: Callable[[], TitleOverlay] | None = None
    #: the faces framing found in the scene's whole picture once it was prepared (None: not looked for)
    faces: Callable[[], int | None] | None = None


def layout(frame_counts: Sequence[int], crossfade: int) -> tuple[list[int], int]:
    """Each scene's first frame and the total: each scene starts ``crossfade`` frames before the last one ends."""
    starts: list[int] = []
    at = 0
    for count in frame_counts:
        starts.append(at)
        at += count - crossfade
    return starts, (starts[-1] + frame_counts[-1]) if starts else 0


class Timeline:
    """Frame ``n`` of the whole video: the scene on screen, or two scenes blended during a crossfade.

    Called from one drawing thread in frame order (``omad.media.pipe``).
    Preparing scene ``i + 1`` starts in the background when scene ``i``
    shows its first frame; a scene's canvas is dropped after its last frame.
    A scene's middle frame, as drawn (before its title and any crossfade), can
    be waited for from another thread (:meth:`middle`): the cover is chosen
    from those without preparing any scene a second time.
    """

    def __init__(self, scenes: Sequence[SceneSpec], crossfade: int) -> None:
        if len(scenes) > 1 and crossfade * 2 > min(s.frames for s in scenes):
            raise ValueError("a crossfade may not be longer than half the shortest scene")
        self.scenes = list(scenes)
        self.crossfade = crossfade if len(scenes) > 1 else 0
        self.starts, self.count = layout([s.frames for s in scenes], self.crossfade)
        self._pool = ThreadPoolExecutor(1, "omad-scene-prep")
        self._ready: dict[int, Future[tuple[SceneFrames, TitleOverlay | None]]] = {}
        self._lock = threading.Lock()
        self._middles: dict[int, Planes] = {}
        self._wanted: set[int] | None = None  # None: every scene's middle frame is kept
        self._drawn = threading.Condition()
        self._closed = False

    def prefetch(self) -> None:
        """Start preparing the first scenes now (image decode, canvas), while the encoder starts.

        Without it the first frame waits for scene 0's preparation with the encoder idle.
        """
        with self._lock:
            for i in range(min(2, len(self.scenes))):
                if i not in self._ready:
                    self._ready[i] = self._pool.submit(self._prepare, i)

    def _prepare(self, i: int) -> tuple[SceneFrames, TitleOverlay | None]:
        spec = self.scenes[i]
        return spec.prepare(spec.frames), spec.title() if spec.title else None

    def _scene(self, i: int) -> tuple[SceneFrames, TitleOverlay | None]:
        with self._lock:
            if i not in self._ready:
                self._ready[i] = self._pool.submit(self._prepare, i)
            if i + 1 < len(self.scenes) and i + 1 not in self._ready:
                self._ready[i + 1] = self._pool.submit(self._prepare, i + 1)
            for done in [k for k in self._ready if k < i - 1]:
                _release(self._ready.pop(done))
            future = self._ready[i]
        return future.result()

    def _draw(self, i: int, local: int) -> Planes:
        frames, title = self._scene(i)
        frame = frames(local)
        if local == self.scenes[i].frames // 2 and (self._wanted is None or i in self._wanted):
            # Kept for the cover (a copy: a still hands out the same planes frame after frame).
            kept = (frame[0].copy(), frame[1].copy(), frame[2].copy())
            with self._drawn:
                self._middles[i] = kept
                self._drawn.notify_all()
        return title.over(frame) if title is not None else frame

    def keep_middles(self, scenes: Iterable[int]) -> None:
        """Keep only these scenes' middle frames (set before the first frame is drawn): no other is asked for."""
        self._wanted = set(scenes)

    def middle(self, i: int) -> Planes:
        """Scene ``i``'s middle frame (``frames // 2``) as drawn, without its title; waits until it is drawn.

        Handed over once (the timeline lets go of it). ``RuntimeError`` if the timeline is closed before it was
        drawn (the encode failed or was stopped).
        """
        with self._drawn:
            self._drawn.wait_for(lambda: i in self._middles or self._closed)
            if i not in self._middles:
                raise RuntimeError(f"the timeline closed before scene {i}'s middle frame was drawn")
            return self._middles.pop(i)

    def __call__(self, n: int) -> Planes:
        on = [i for i, start in enumerate(self.starts) if start <= n < start + self.scenes[i].frames]
        if not on:
            raise IndexError(f"frame {n} is outside the timeline of {self.count} frames")
        if len(on) == 1:
            return self._draw(on[0], n - self.starts[on[0]])
        prev, nxt = on[0], on[-1]
        k = n - self.starts[nxt]
        # (k + 1) / (fade + 1): neither end of the fade repeats a frame of one scene alone.
        alpha = (k + 1) / (self.crossfade + 1)
        a = self._draw(prev, n - self.starts[prev])
        b = self._draw(nxt, k)
        cv2 = _cv2()
        blended = [cv2.addWeighted(pa, 1.0 - alpha, pb, alpha, 0.0) for pa, pb in zip(a, b, strict=True)]
        return blended[0], blended[1], blended[2]

    def close(self) -> None:
        """Stop preparing scenes (after the encode, or when it failed); whoever waits for a middle frame wakes."""
        with self._drawn:
            self._closed = True
            self._drawn.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for future in self._ready.values():
            _release(future)
        self._ready.clear()


def _release(future: Future[tuple[SceneFrames, TitleOverlay | None]]) -> None:
    """Close a prepared scene's frames (a clip's decoder); one that failed or never ran holds nothing."""
    if future.done() and not future.cancelled() and future.exception() is None:
        future.result()[0].close()
