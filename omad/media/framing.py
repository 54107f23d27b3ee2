"""Framing: where a picture's subject is, and the crop of it that keeps the subject in each frame shape.

One picture serves several formats (landscape 16:9, vertical 9:16, square
1:1); a centred crop of a landscape photo for a vertical frame cuts away a
person standing on the left. This module finds the subject once per picture
and turns it into the ``centering`` Pillow's ``ImageOps.fit`` takes for each
frame shape.

How the subject is found, chosen by measuring here (docs/framing.md):

1. **Faces**, with scikit-image's LBP cascade (``skimage.feature.Cascade``
   and the trained frontal-face cascade file that ships inside the
   scikit-image wheel): no model file to fetch. OpenCV 5 (which omad uses
   for drawing) has no cascade classifier and its YuNet detector needs a
   model file; MediaPipe's wheel carries no face model either (its tasks
   download one) and pulls ``opencv-contrib-python`` beside omad's OpenCV.
2. Without a face, the **salient region** by the spectral-residual measure
   (Hou and Zhang, 2007), computed with NumPy on a 64-pixel-wide copy:
   where the picture differs from what its own spectrum predicts.

It never decodes an untrusted file itself (the caller hands a decoded
Pillow image) and never chooses a format.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["FrameShape", "Subject", "SafeArea", "SAFE_AREAS", "find_subject", "centering",
           "detect_faces", "Subjects"]


class FrameShape(StrEnum):
    """The shapes one video job can be published in."""

    #: 16:9, 1920x1080: YouTube, a TV, a laptop.
    LANDSCAPE = "landscape"
    #: 9:16, 1080x1920: Shorts, Reels, TikTok, Stories.
    VERTICAL = "vertical"
    #: 1:1, 1080x1080: a feed post.
    SQUARE = "square"


@dataclass(frozen=True)
class SafeArea:
    """Fractions of the frame's height kept clear of the platforms' own buttons and text.

    ``top`` is where an on-screen title starts; ``bottom`` is the captions' margin.
    A vertical video's lower fifth holds the app's caption, handle and buttons,
    its top the progress bar and account name.
    """

    top: float
    bottom: float


SAFE_AREAS: dict[FrameShape, SafeArea] = {
    FrameShape.LANDSCAPE: SafeArea(top=0.08, bottom=0.06),
    FrameShape.VERTICAL: SafeArea(top=0.12, bottom=0.22),
    FrameShape.SQUARE: SafeArea(top=0.08, bottom=0.10),
}

#: The long side the subject is looked for at: faces of a tenth of the picture are still 40+ pixels.
_DETECT_SIDE = 480
_SALIENCY_SIDE = 64


@dataclass(frozen=True)
class Subject:
    """What the picture is of, in fractions of its width and height: the box to keep in frame and how it was found."""

    #: (left, top, right, bottom), each 0..1.
    box: tuple[float, float, float, float]
    #: "faces", "saliency" or "centre" (a flat picture: nothing stands out).
    method: str
    faces: int = 0
    face_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def centre(self) -> tuple[float, float]:
        left, top, right, bottom = self.box
        return (left + right) / 2, (top + bottom) / 2

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "faces": self.faces, "box": [round(v, 3) for v in self.box]}


_lock = threading.Lock()


@cache
def _cascade() -> Any:
    from skimage import data
    from skimage.feature import Cascade

    return Cascade(data.lbp_frontal_face_cascade_filename())  # type: ignore[no-untyped-call]


def detect_faces(img: Image.Image) -> list[tuple[float, float, float, float]]:
    """Frontal faces in ``img`` as (left, top, right, bottom) fractions, largest first."""
    grey = img.convert("L")
    scale = min(1.0, _DETECT_SIDE / max(grey.size))
    if scale < 1.0:
        grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                           Image.Resampling.BOX)
    w, h = grey.size
    side = min(w, h)
    if side < 24:
        return []
    pixels = np.asarray(grey, dtype=np.float64) / 255.0
    with _lock:  # the cascade object keeps per-call state
        found = _cascade().detect_multi_scale(img=pixels, scale_factor=1.2, step_ratio=1, min_size=(20, 20),
                                              max_size=(side, side))
    boxes = [(d["c"] / w, d["r"] / h, (d["c"] + d["width"]) / w, (d["r"] + d["height"]) / h) for d in found]
    return sorted(_merge(boxes), key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def _merge(boxes: list[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """One box for the overlapping detections of one face (the cascade reports each face at several scales)."""
    merged: list[tuple[float, float, float, float]] = []
    for box in sorted(boxes, key=lambda b: -(b[2] - b[0])):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if not any(m[0] <= cx <= m[2] and m[1] <= cy <= m[3] for m in merged):
            merged.append(box)
    return merged


def _saliency(img: Image.Image) -> npt.NDArray[np.float64]:
    """The spectral-residual saliency map of a small grey copy of ``img`` (rows x columns, sums to 1)."""
    grey = img.convert("L")
    w = _SALIENCY_SIDE
    h = max(8, round(grey.height * w / grey.width))
    small = np.asarray(grey.resize((w, h), Image.Resampling.BOX), dtype=np.float64) / 255.0
    spectrum = np.fft.fft2(small)
    log_amp = np.log(np.abs(spectrum) + 1e-9)
    phase = np.angle(spectrum)
    # The residual: the log spectrum less its 3x3 local average (what is left is what is unexpected).
    padded = np.pad(log_amp, 1, mode="wrap")
    average = sum(padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0
    saliency = np.abs(np.fft.ifft2(np.exp(log_amp - average + 1j * phase))) ** 2
    # A light blur, as the method asks: a separable [1 2 1]^2 filter, twice.
    for _ in range(2):
        p = np.pad(saliency, 1, mode="edge")
        saliency = (p[:-2, 1:-1] + 2 * p[1:-1, 1:-1] + p[2:, 1:-1]) / 4
        p = np.pad(saliency, 1, mode="edge")
        saliency = (p[1:-1, :-2] + 2 * p[1:-1, 1:-1] + p[1:-1, 2:]) / 4
    total = float(saliency.sum())
    out: npt.NDArray[np.float64] = saliency / total if total > 0 else np.full_like(saliency, 1.0 / saliency.size)
    return out


def find_subject(img: Image.Image) -> Subject:
    """The part of ``img`` to keep in every frame shape: its faces, else its salient region, else the centre."""
    faces = detect_faces(img)
    if faces:
        left = min(b[0] for b in faces)
        top = min(b[1] for b in faces)
        right = max(b[2] for b in faces)
        bottom = max(b[3] for b in faces)
        return Subject((left, top, right, bottom), "faces", len(faces), faces)
    sal = _saliency(img)
    h, w = sal.shape
    if float(sal.max()) < 3.0 / sal.size:  # nothing stands out: a flat picture
        return Subject((0.25, 0.25, 0.75, 0.75), "centre")
    # The box around the strongest quarter of the saliency mass.
    cut = np.quantile(sal, 0.95)
    ys, xs = np.nonzero(sal >= cut)
    weights = sal[ys, xs]
    cx = float(np.average(xs + 0.5, weights=weights)) / w
    cy = float(np.average(ys + 0.5, weights=weights)) / h
    half_w = max(0.05, float(np.sqrt(np.average((xs + 0.5 - cx * w) ** 2, weights=weights))) / w)
    half_h = max(0.05, float(np.sqrt(np.average((ys + 0.5 - cy * h) ** 2, weights=weights))) / h)
    box = (max(0.0, cx - half_w), max(0.0, cy - half_h), min(1.0, cx + half_w), min(1.0, cy + half_h))
    return Subject(box, "saliency")


def centering(subject: Subject, size: tuple[int, int], frame: tuple[int, int]) -> tuple[float, float]:
    """``ImageOps.fit``'s ``centering`` for a picture of ``size`` cropped to ``frame``'s aspect around ``subject``.

    The crop window is centred on the subject, then slid back inside the
    picture; faces are kept with some headroom above them (the centre aims a
    little below the faces' middle, where the rest of the person is).
    """
    w, h = size
    fw, fh = frame
    aspect = fw / fh
    crop_w, crop_h = (h * aspect, float(h)) if w / h > aspect else (float(w), w / aspect)
    cx, cy = subject.centre
    if subject.method == "faces":
        left, top, right, bottom = subject.box
        cy = min(1.0, cy + (bottom - top) * 0.35)
    spare_w, spare_h = w - crop_w, h - crop_h
    x = 0.5 if spare_w < 1 else min(max(cx * w - crop_w / 2, 0.0), spare_w) / spare_w
    y = 0.5 if spare_h < 1 else min(max(cy * h - crop_h / 2, 0.0), spare_h) / spare_h
    return x, y


class Subjects:
    """Each picture's subject, found once for every format a job renders (keyed by the caller, e.g. the path)."""

    def __init__(self) -> None:
        self._found: dict[str, Subject] = {}
        self._lock = threading.Lock()

    def finder(self, key: str) -> Callable[[Image.Image], Subject]:
        """A ``subject`` callable for ``prepare_still``: finds the subject of the first picture it is handed."""
        def find(img: Image.Image) -> Subject:
            with self._lock:
                hit = self._found.get(key)
            if hit is None:
                hit = find_subject(img)
                with self._lock:
                    self._found.setdefault(key, hit)
            return hit

        return find

    def get(self, key: str) -> Subject | None:
        with self._lock:
            return self._found.get(key)

    def faces(self, key: str) -> Callable[[], int | None]:
        """The number of faces found in ``key``'s picture, once its subject has been looked for (else None)."""
        def count() -> int | None:
            found = self.get(key)
            return None if found is None else found.faces

        return count
