"""A scene video's cover (``X.jpg``): its best picture, with the title large and legible.

For each format the render makes, the cover is drawn from the same scene
pictures the video shows (without captions or on-screen titles): the middle
frame of each picture or clip scene is scored by its sharpness (the variance
of its Laplacian) and the faces in it (``omad.media.framing``), title cards
only when nothing else is there; the best one gets the title in a bold font
sized to the frame, wrapped to at most three lines, white with a dark outline
over a dark gradient, inside the format's safe area.

It never reads the brief, never runs ffmpeg and prepares no scene: it takes
the middle frames the render's timeline drew and writes one JPEG.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import ToolMissing
from .framing import SafeArea, detect_faces
from .kenburns import _cv2
from .pipe import Planes
from .scenes import SceneSpec

__all__ = ["Candidate", "best_frame", "draw_cover", "rgb_of", "make_cover", "scored_scenes"]

# BT.709 limited range back to RGB (the inverse of omad.media.kenburns._planes).
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def rgb_of(planes: Planes) -> Image.Image:
    """A yuv420p frame (BT.709 limited range, as omad draws them) as an RGB picture.

    The chroma is repeated 2x2 and the three channels go through one affine transform in OpenCV (~12x faster
    than the same arithmetic in numpy float planes; within one level of it where a value rounds differently).
    """
    cv2 = _cv2()
    y, cb, cr = planes
    h, w = y.shape
    ycc = cv2.merge((y, cv2.resize(cb, (w, h), interpolation=cv2.INTER_NEAREST),
                     cv2.resize(cr, (w, h), interpolation=cv2.INTER_NEAREST)))
    ky, kc = 255.0 / 219.0, 255.0 / 224.0
    r_cr, b_cb = 2.0 * (1.0 - _KR) * kc, 2.0 * (1.0 - _KB) * kc
    g_cb, g_cr = -_KB * 2.0 * (1.0 - _KB) / _KG * kc, -_KR * 2.0 * (1.0 - _KR) / _KG * kc
    m = np.array([[ky, 0.0, r_cr, -16.0 * ky - 128.0 * r_cr],
                  [ky, g_cb, g_cr, -16.0 * ky - 128.0 * (g_cb + g_cr)],
                  [ky, b_cb, 0.0, -16.0 * ky - 128.0 * b_cb]], dtype=np.float32)
    return Image.fromarray(cv2.transform(ycc, m))


@dataclass
class Candidate:
    """One scene's middle frame and how good a cover it makes."""

    scene: int
    picture: Image.Image
    sharpness: float
    faces: int
    is_card: bool

    @property
    def score(self) -> float:
        # A face matters more than detail; a title card only when there is nothing else.
        return math.log1p(self.sharpness) + 2.0 * min(self.faces, 3) - (100.0 if self.is_card else 0.0)

    def facts(self) -> dict[str, Any]:
        return {"scene": self.scene, "sharpness": round(self.sharpness, 1), "faces": self.faces,
                "score": round(self.score, 3)}


def _sharpness(img: Image.Image) -> float:
    cv2 = _cv2()
    _mean, std = cv2.meanStdDev(cv2.Laplacian(np.asarray(img.convert("L")), cv2.CV_32F))
    return float(std[0, 0]) ** 2


def scored_scenes(cards: Sequence[bool]) -> list[int]:
    """The scenes whose middle frame the cover scores: every picture scene, or the title cards when all are."""
    return [i for i, card in enumerate(cards) if not card or all(cards)]


def best_frame(specs: Sequence[SceneSpec], cards: Sequence[bool],
               middle: Callable[[int], Planes]) -> tuple[Candidate, list[Candidate]]:
    """Each scene's middle frame scored; the best, and all that were drawn (for the record).

    ``middle(i)`` gives scene ``i``'s middle frame (the render's timeline hands over the one it drew:
    ``Timeline.middle``). Title cards are scored only when no scene has a picture (one always
    beats them). Faces are looked for in the frame unless framing already found none in the scene's whole
    picture: its middle frame is a crop of it.
    """
    found: list[Candidate] = []
    for i in scored_scenes(cards):
        spec, card = specs[i], cards[i]
        picture = rgb_of(middle(i))
        known = spec.faces() if spec.faces is not None else None
        faces = 0 if card or known == 0 else len(detect_faces(picture))
        found.append(Candidate(i, picture, _sharpness(picture), faces, card))
    if not found:
        raise ValueError("a video without scenes has no cover")
    return max(found, key=lambda c: (c.score, -c.scene)), found


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    words = " ".join(text.split())
    for chars in range(max(8, len(words)), 5, -1):
        lines = textwrap.wrap(words, chars)
        if all(font.getlength(line) <= width for line in lines):
            return lines
    return textwrap.wrap(words, 6)


def draw_cover(picture: Image.Image, title: str | None, font_file: str, safe: SafeArea | None) -> Image.Image:
    """``picture`` with ``title`` large at the bottom of the safe area (white, dark outline, over a gradient)."""
    out = picture.convert("RGB").copy()
    if not title or not title.strip():
        return out
    w, h = out.size
    bottom = (safe.bottom if safe else 0.06) * h
    size = max(14, round(min(w, h) * (0.11 if w <= h else 0.1)))
    try:
        font = ImageFont.truetype(font_file, size)
        while True:
            lines = _wrap(title, font, w * 0.88)
            if len(lines) <= 3 or size <= 14:
                break
            size = max(14, round(size * 0.85))
            font = ImageFont.truetype(font_file, size)
    except OSError as e:
        raise ToolMissing(
            f"the title font '{font_file}' cannot be opened ({e}). Install it with "
            "`sudo apt-get install fonts-dejavu-core`, or point scenes.title_font_file at a .ttf file."
        ) from e
    lines = lines[:3]
    spacing = size // 5
    line_h = size + spacing
    block = line_h * len(lines)
    top = h - bottom - block
    # A dark gradient under the text, so it reads on any picture.
    shade = np.clip((np.arange(h, dtype=np.float32) - (top - size * 1.5)) / (size * 1.5), 0.0, 1.0) * 0.7
    first = int(np.argmax(shade > 0)) if shade.any() else h  # rows above it keep their colours
    rgb = np.array(out)
    rgb[first:] = (rgb[first:].astype(np.float32) * (1.0 - shade[first:])[:, None, None]).astype(np.uint8)
    out = Image.fromarray(rgb)
    draw = ImageDraw.Draw(out)
    stroke = max(2, size // 14)
    for n, line in enumerate(lines):
        x = (w - font.getlength(line)) / 2
        draw.text((x, top + n * line_h), line, font=font, fill=(255, 255, 255), stroke_width=stroke,
                  stroke_fill=(0, 0, 0))
    return out


def make_cover(specs: Sequence[SceneSpec], cards: Sequence[bool], title: str | None, font_file: str,
               safe: SafeArea | None, out: Path, middle: Callable[[int], Planes]) -> dict[str, Any]:
    """Write ``out`` (JPEG): the best scene frame with the title; returns the facts of the choice."""
    best, scored = best_frame(specs, cards, middle)
    draw_cover(best.picture, title, font_file, safe).save(out, "JPEG", quality=90)
    return {"scene": best.scene, "title": bool(title and title.strip()), "candidates": [c.facts() for c in scored]}
