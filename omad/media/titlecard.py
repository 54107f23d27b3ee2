"""Title cards: a line of text set in a real TrueType font, rendered as a short clip.

Owns laying the text out (wrapped to ~80% of the frame width, the font size
scaled to the frame height and shrunk until every line fits, centred) on the
background colour with a subtle vertical gradient, and moving over the card
with the Ken Burns frames (``prepare_still``) so it moves like the picture
scenes around it. The
font is a file, never a family name looked up at run time: a TTF that covers
Portuguese (DejaVu, from the ``fonts-dejavu-core`` package) is what makes
"Ação" come out with its accents. It never decides the scene's length or
text; the caller passes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from ..errors import InputError, ToolMissing
from .encoder import VideoOutput
from .ffmpeg_run import Ffmpeg
from .kenburns import Motion, StillFrames, canvas_size, prepare_still, render_still

__all__ = ["check_colour", "draw_title_card", "prepare_title_card", "render_title_card"]

_WIDTH_SHARE = 0.8  # of the visible frame the text may span
_HEIGHT_SHARE = 0.8
_START_SIZE = 0.10  # first font size tried, as a share of the frame height
_MIN_SIZE_PX = 8
_LINE_SPACING = 1.2


def _colour(value: str, label: str) -> tuple[int, int, int]:
    try:
        rgb = ImageColor.getrgb(value)
    except ValueError as e:
        raise InputError(f"title background '{value}' is not a colour. Use #RRGGBB, e.g. #1d2b53.", file=label) from e
    return rgb[0], rgb[1], rgb[2]


def check_colour(value: str, label: str) -> None:
    """Refuse a background that is not a colour now, before any frame is drawn."""
    _colour(value, label)


def _font(font_file: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(font_file, size)
    except OSError as e:
        raise ToolMissing(
            f"the title font '{font_file}' cannot be opened ({e}). Install it with "
            "`sudo apt-get install fonts-dejavu-core`, or point scenes.title_font_file at a .ttf file."
        ) from e


def _wrap(words: list[str], font: ImageFont.FreeTypeFont, max_width: float) -> list[str] | None:
    """Greedy word wrap; None when a single word is wider than the line."""
    lines: list[str] = []
    current = ""
    for word in words:
        if font.getlength(word) > max_width:
            return None
        trial = f"{current} {word}" if current else word
        if font.getlength(trial) <= max_width:
            current = trial
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def _layout(
    paragraphs: list[list[str]], font_file: str, frame_height: float, max_width: float, max_height: float
) -> tuple[ImageFont.FreeTypeFont, list[str], float]:
    """The largest font size at which the wrapped text fits the box; the lines; the line pitch."""
    size = max(_MIN_SIZE_PX, round(frame_height * _START_SIZE))
    while True:
        font = _font(font_file, size)
        ascent, descent = font.getmetrics()
        pitch = (ascent + descent) * _LINE_SPACING
        lines: list[str] = []
        fits = True
        for words in paragraphs:
            wrapped = _wrap(words, font, max_width)
            if wrapped is None:
                fits = False
                break
            lines.extend(wrapped)
        if fits and pitch * (len(lines) - 1) + ascent + descent <= max_height:
            return font, lines, pitch
        if size <= _MIN_SIZE_PX:
            # A word too long for the line even at the smallest size: break it by characters.
            chars = [[c for c in "".join(words)] for words in paragraphs]
            lines = [line.replace(" ", "") for words in chars for line in (_wrap(words, font, max_width) or [])]
            return font, lines, pitch
        size = max(_MIN_SIZE_PX, int(size * 0.92))


def draw_title_card(
    text: str, size: tuple[int, int], *, visible: float, background: str, font_file: str, label: str
) -> tuple[Image.Image, dict[str, Any]]:
    """The card as an RGB image of ``size``; ``visible`` is the share of it the clip ever shows whole."""
    paragraphs = [line.split() for line in text.strip().splitlines() if line.strip()]
    if not paragraphs:
        raise InputError("has a title card with no text. Write the title, or remove the scene's title.", file=label)
    rgb = _colour(background, label)
    width, height = size
    # A gentle vertical gradient: a little lighter at the top, darker at the bottom.
    ramp = np.linspace(1.08, 0.82, height, dtype=np.float32)[:, None, None]
    base = np.clip(np.array(rgb, dtype=np.float32)[None, None, :] * ramp + 0.5, 0, 255).astype(np.uint8)
    card = Image.fromarray(np.ascontiguousarray(np.broadcast_to(base, (height, width, 3))))
    font, lines, pitch = _layout(
        paragraphs,
        font_file,
        frame_height=height * visible,
        max_width=width * visible * _WIDTH_SHARE,
        max_height=height * visible * _HEIGHT_SHARE,
    )
    luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255.0
    ink = (17, 17, 17) if luminance > 0.6 else (255, 255, 255)
    shadow = tuple(int(c * 0.5) for c in rgb)
    draw = ImageDraw.Draw(card)
    ascent, descent = font.getmetrics()
    block = pitch * (len(lines) - 1) + ascent + descent
    top = (height - block) / 2.0
    offset = max(1, round(font.size * 0.04))
    for i, line in enumerate(lines):
        baseline = top + ascent + i * pitch
        draw.text((width / 2 + offset, baseline + offset), line, font=font, fill=shadow, anchor="ms")
        draw.text((width / 2, baseline), line, font=font, fill=ink, anchor="ms")
    return card, {"lines": lines, "font_size": font.size, "font_file": font_file, "background": background}


def _card_visible(chosen: Motion, zoom: float) -> float:
    """The share of the card that stays in view in every frame.

    All of it for a still, the innermost 1/zoom for a zoom, less for a pan that slides across.
    """
    if chosen is Motion.NONE:
        return 1.0
    if chosen in (Motion.ZOOM_IN, Motion.ZOOM_OUT, Motion.AUTO):
        return 1.0 / zoom
    return max(0.2, 2.0 / zoom - 1.0)


def prepare_title_card(
    text: str,
    *,
    width: int,
    height: int,
    frames: int,
    background: str,
    font_file: str,
    label: str,
    motion: str = Motion.ZOOM_IN.value,
    zoom: float = 1.05,
) -> tuple[StillFrames, dict[str, Any]]:
    """The card's frames (a slow move over the drawn card) and its facts, without encoding anything."""
    chosen = Motion(motion)
    card_size = canvas_size(width, height, chosen, zoom)
    card, facts = draw_title_card(
        text, card_size, visible=_card_visible(chosen, zoom), background=background, font_file=font_file, label=label
    )
    with card:
        make, info = prepare_still(card, width=width, height=height, frames=frames, motion=chosen.value,
                                   fit="cover", zoom=zoom, seed=text, label=label)
    return make, {**info, "title": facts}


def render_title_card(
    text: str,
    out: Path,
    *,
    video: VideoOutput,
    seconds: float,
    background: str,
    font_file: str,
    ff: Ffmpeg,
    label: str,
    motion: str = Motion.ZOOM_IN.value,
    zoom: float = 1.05,
) -> dict[str, Any]:
    """Render ``text`` as a ``seconds`` long card clip at ``out`` (same format as ``render_still``)."""
    chosen = Motion(motion)
    card_size = canvas_size(video.width, video.height, chosen, zoom)
    card, facts = draw_title_card(
        text, card_size, visible=_card_visible(chosen, zoom), background=background, font_file=font_file, label=label
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with card:
        clip = render_still(card, out, video=video, seconds=seconds, motion=chosen.value, fit="cover", zoom=zoom,
                            seed=text, ff=ff, label=label)
    return {**clip, "title": facts}
