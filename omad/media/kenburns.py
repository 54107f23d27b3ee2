"""Ken Burns image-to-video: one still image becomes a smoothly moving H.264 clip.

Owns reading an untrusted image (a format allow-list, EXIF orientation,
bounded memory), framing it to the output (``cover`` crops to fill, ``fit``
sits it on a blurred, darkened copy of itself), the motion presets with their
deterministic ``auto`` choice, and encoding the frames. It never chooses the
output format (the caller passes the config's size, fps and encoder settings),
never touches the inbox or outbox, and never runs ffmpeg except through
``omad.media.ffmpeg.run_ffmpeg``.

How the frames are made, chosen by measuring on a 2-core box (figures in
docs/benchmarks.md): ffmpeg's ``zoompan`` and a whole-pixel ``crop`` put the
window on whole pixels, so a slow zoom shakes (2.4 px at the centre measured,
0.4-0.6 px even on a 4x upscale); ``perspective`` is smooth but ~2.7x the
floor; ``scale`` with ``eval=frame`` feeding ``crop`` silently crops the corner
(docs/field-notes.md). So omad draws the frames itself: the image is decoded once at
reduced size (JPEG DCT scaling, then integer ``reduce``), framed onto a canvas
of output size x zoom x a small oversample, converted once to BT.709
limited-range Y'CbCr planes (chroma at half size), and each frame is an
OpenCV ``warpAffine`` (bilinear, SIMD: ~3 ms a 1080p frame here, against
~25 ms for Pillow's ``resize``) of a floating-point box of each plane, so the
window moves by exact fractions of a pixel; the oversample makes every frame
a reduction, so detail does not pulse in sharpness as the window moves. The
planes are written as raw yuv420p into the encoder (``omad.media.pipe``), so
ffmpeg does no scaling or colour conversion, only x264.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from ..errors import ConfigError, InputError
from .audio import FINAL_AUDIO_FORMAT
from .encoder import VideoOutput
from .ffmpeg import AUDIO_DEMUXERS, SAFE_INPUT_ARGS, probe
from .ffmpeg_run import Ffmpeg
from .framing import Subject, centering
from .pipe import Plane, Planes, encode_piped

__all__ = [
    "Motion",
    "MOVING_MOTIONS",
    "OVERSAMPLE",
    "canvas_size",
    "check_image",
    "StillFrames",
    "pick_motion",
    "prepare_still",
    "render_still",
    "resolve_motion",
]


class Motion(StrEnum):
    """Where the camera goes. ``pan_right`` moves the view rightwards, so the picture slides left."""

    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    NONE = "none"
    AUTO = "auto"


MOVING_MOTIONS: tuple[Motion, ...] = (
    Motion.ZOOM_IN,
    Motion.ZOOM_OUT,
    Motion.PAN_LEFT,
    Motion.PAN_RIGHT,
    Motion.PAN_UP,
    Motion.PAN_DOWN,
)

# The canvas is this much larger than the most magnified view needs, so every
# frame is a reduction by at least this factor: the triangle filter then spans
# more than one source pixel and a frame's sharpness does not pulse with the
# fractional part of its position. 1.25 costs ~20% more per frame than 1.0.
OVERSAMPLE = 1.25

# Measured on a noise pattern: 0.5 gives Pillow's antialiased sharpness and pulsing; 0.4 aliases visibly.
_PREFILTER_SIGMA = 0.5

_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")
_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the stored pixels upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# BT.709 luma weights; HD output is tagged bt709 so players convert it back correctly.
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def pick_motion(seed: str) -> Motion:
    """The motion ``auto`` means for this seed (the content hash): same seed, same motion."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return MOVING_MOTIONS[int.from_bytes(digest[:8], "big") % len(MOVING_MOTIONS)]


def resolve_motion(motion: str, seed: str, label: str) -> Motion:
    try:
        chosen = Motion(motion)
    except ValueError as e:
        allowed = ", ".join(m.value for m in Motion)
        raise ConfigError(f"unknown motion '{motion}'; use one of: {allowed}.", file=label) from e
    return pick_motion(seed) if chosen is Motion.AUTO else chosen


def canvas_size(width: int, height: int, motion: Motion | str, zoom: float) -> tuple[int, int]:
    """The size of the prepared canvas for an output of ``width`` x ``height`` and ``motion``.

    Larger than the output by the zoom and ``OVERSAMPLE`` (a still ``none``
    needs neither), even in both directions so the chroma planes are exactly
    half. Callers that draw their own still (title cards) draw it this size
    so it is never enlarged.
    """
    m = Motion(motion)
    scale = 1.0 if m is Motion.NONE else zoom * OVERSAMPLE
    return 2 * max(1, round(width * scale / 2)), 2 * max(1, round(height * scale / 2))


def _window(motion: Motion, t: float, zoom: float, cw: float, ch: float) -> tuple[float, float, float, float]:
    """The canvas box (left, top, right, bottom) shown at progress ``t`` in [0, 1].

    Zooms change the magnification geometrically (a constant rate to the eye)
    about the exact canvas centre; pans hold ``zoom`` and move at a constant
    speed from one edge to the other, so every frame steps by the same amount.
    """
    if motion is Motion.ZOOM_IN:
        z = zoom**t
    elif motion is Motion.ZOOM_OUT:
        z = zoom ** (1.0 - t)
    elif motion is Motion.NONE:
        z = 1.0
    else:
        z = zoom
    w, h = cw / z, ch / z
    cx, cy = cw / 2.0, ch / 2.0
    if motion is Motion.PAN_RIGHT:
        cx = w / 2.0 + (cw - w) * t
    elif motion is Motion.PAN_LEFT:
        cx = cw - w / 2.0 - (cw - w) * t
    elif motion is Motion.PAN_DOWN:
        cy = h / 2.0 + (ch - h) * t
    elif motion is Motion.PAN_UP:
        cy = ch - h / 2.0 - (ch - h) * t
    return cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0


def _not_an_image(label: str, why: str) -> InputError:
    return InputError(
        f"is not an image omad can read ({why}). Drop a JPEG/PNG/WebP picture with this name instead.",
        file=label,
        details={"reason": why},
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparency is laid over black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or float(arr.max(initial=0.0)) > 255.0 else 255.0
        img = Image.fromarray(np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _open_image(path: Path, label: str, max_megapixels: float) -> Image.Image:
    """Open ``path`` lazily (header only) as one of the allowed formats, within the size limit."""
    try:
        im = Image.open(path, formats=_FORMATS)
    except FileNotFoundError as e:
        raise InputError("disappeared before omad could read it. Drop it again.", file=label) from e
    except Image.DecompressionBombError as e:
        raise InputError(
            f"is too large to be a picture omad will open ({e}). Scale it down and drop it again.",
            file=label,
        ) from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise _not_an_image(label, "its content is not JPEG, PNG, WebP, BMP, TIFF or GIF") from e
    stored = im.size
    if stored[0] * stored[1] > max_megapixels * 1_000_000:
        im.close()
        raise InputError(
            f"is {stored[0]}x{stored[1]} pixels ({stored[0] * stored[1] / 1e6:.0f} MP); omad takes pictures "
            f"up to {max_megapixels:g} MP (intake.max_image_megapixels). Scale it down and drop it again.",
            file=label,
        )
    return im


def check_image(path: Path, label: str, max_megapixels: float = 100.0) -> None:
    """Refuse ``path`` now, from its header, if it is not a picture omad will draw (before any encoding starts)."""
    _open_image(path, label, max_megapixels).close()


def _load_image(
    path: Path, cw: int, ch: int, label: str, max_megapixels: float = 100.0
) -> tuple[Image.Image, dict[str, Any]]:
    """Decode ``path`` upright, no larger than needed to cover a ``cw`` x ``ch`` canvas.

    JPEGs decode straight at 1/2, 1/4 or 1/8 size (DCT scaling), so a 50 MP
    photo never exists in memory at full size; other formats are decoded whole
    and reduced by an integer factor at once.
    """
    im = _open_image(path, label, max_megapixels)
    with im:
        try:
            stored = im.size
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            fmt = im.format or "unknown"
            sideways = orientation in (5, 6, 7, 8)
            upright_w, upright_h = (stored[1], stored[0]) if sideways else stored
            cover = max(cw / upright_w, ch / upright_h)
            need_w, need_h = math.ceil(upright_w * cover), math.ceil(upright_h * cover)
            if fmt == "JPEG":
                im.draft("RGB", (need_h, need_w) if sideways else (need_w, need_h))
            im.load()
            img: Image.Image = im
            # Integer reduction first: a box average in one pass, cheap and memory-bounded.
            factor = min(img.width // (need_h if sideways else need_w), img.height // (need_w if sideways else need_h))
            if factor >= 2:
                img = img.reduce(factor)
            decoded = img.size
            if orientation in _UPRIGHT:
                # By the tag read above, not ImageOps.exif_transpose: the reduced copy need not carry the EXIF.
                img = img.transpose(_UPRIGHT[orientation])
            img = _to_rgb(img)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise _not_an_image(label, f"decoding failed: {e}") from e
    facts = {
        "source_format": fmt,
        "source_size": [upright_w, upright_h],
        "stored_size": list(stored),
        "decoded_size": list(decoded),
        "exif_orientation": orientation,
        "orientation_applied": orientation in _UPRIGHT,
    }
    return img, facts


def _canvas(img: Image.Image, cw: int, ch: int, fit: str,
            centre: tuple[float, float] = (0.5, 0.5)) -> Image.Image:
    """The image framed to the output's aspect at the canvas size (``centre``: where ``cover`` crops)."""
    cover = ImageOps.fit(img, (cw, ch), Image.Resampling.LANCZOS, centering=centre)
    if fit == "cover":
        return cover
    # The backdrop is blurred at 1/8 size and enlarged: the same look as a
    # big Gaussian blur at a fraction of the cost.
    small = cover.resize((max(1, cw // 8), max(1, ch // 8)), Image.Resampling.BOX)
    small = small.filter(ImageFilter.GaussianBlur(radius=max(2.0, min(small.size) / 30.0)))
    backdrop = small.resize((cw, ch), Image.Resampling.BICUBIC).point(lambda v: int(v * 0.45))
    front = ImageOps.contain(img, (cw, ch), Image.Resampling.LANCZOS)
    backdrop.paste(front, ((cw - front.width) // 2, (ch - front.height) // 2))
    return backdrop


#: Rows of the canvas converted to floats at a time for the chroma's 2x2 means (even; ~1.8 MB at 2400 wide).
_STRIP_ROWS = 64


def _planes(canvas: Image.Image) -> Planes:
    """BT.709 limited-range Y' (full size), Cb and Cr (half size, 2x2 averaged), as uint8 arrays.

    Three SIMD passes in OpenCV (Y' from the 8-bit RGB; the RGB averaged 2x2 in floats, then Cb and Cr from
    it, which is the same as averaging them since they are linear): ~5x faster than the same arithmetic as
    numpy expressions over float planes, within one level of it where a value sits on a rounding tie.
    """
    cv2 = _cv2()
    rgb = np.asarray(canvas if canvas.mode == "RGB" else canvas.convert("RGB"))
    h, w = rgb.shape[:2]
    s = 219.0 / 255.0
    luma: Plane = cv2.transform(rgb, np.array([[_KR * s, _KG * s, _KB * s, 16.0]], dtype=np.float32))
    if w % 2 or h % 2:
        half = cv2.resize(rgb.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    else:
        # In strips of rows: each 2x2 mean is the same, but no canvas-sized float copy (40 MB at 2400x1350,
        # mapped and zeroed afresh on every call) is made.
        half = np.empty((h // 2, w // 2, 3), np.float32)
        for top in range(0, h, _STRIP_ROWS):
            strip = rgb[top:top + _STRIP_ROWS].astype(np.float32)
            cv2.resize(strip, (w // 2, len(strip) // 2), dst=half[top // 2:(top + len(strip)) // 2],
                       interpolation=cv2.INTER_AREA)
    kb = 224.0 / (2.0 * (1.0 - _KB)) / 255.0
    kr = 224.0 / (2.0 * (1.0 - _KR)) / 255.0
    chroma = cv2.convertScaleAbs(cv2.transform(half, np.array(
        [[-_KR * kb, -_KG * kb, (1.0 - _KB) * kb, 128.0],
         [(1.0 - _KR) * kr, -_KG * kr, -_KB * kr, 128.0]], dtype=np.float32)))
    return (np.ascontiguousarray(luma.reshape(h, w)), np.ascontiguousarray(chroma[..., 0]),
            np.ascontiguousarray(chroma[..., 1]))


def _cv2() -> Any:
    """OpenCV, imported on first use: ~0.1 s of import that only frame drawing needs.

    One thread: frames are drawn beside the encoder, which has the other
    cores; OpenCV's own thread pool cost ~15 % more CPU per frame here.
    """
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    return cv2


def _warp(cv2: Any, plane: Plane, box: tuple[float, float, float, float], size: tuple[int, int]) -> Plane:
    """The floating-point ``box`` of ``plane`` resampled to ``size`` (bilinear, SIMD).

    Output pixel centre ``i + 0.5`` maps to ``left + (i + 0.5) * step`` in the
    plane's continuous coordinates, the same mapping as Pillow's ``box``: the
    window moves by exact fractions of a pixel (OpenCV rounds the position to
    1/32 px, far below what a viewer or the centroid test can see).
    """
    left, top, right, bottom = box
    sx, sy = (right - left) / size[0], (bottom - top) / size[1]
    m = np.array([[sx, 0.0, left + 0.5 * sx - 0.5], [0.0, sy, top + 0.5 * sy - 0.5]], dtype=np.float64)
    out: Plane = cv2.warpAffine(
        plane, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    return out


def _prefilter(cv2: Any, plane: Plane) -> Plane:
    """The plane blurred just enough that bilinear sampling at a 1.25x+ reduction does not alias.

    OpenCV's bilinear filter does not widen with the reduction as Pillow's
    does, so fine detail aliases and its sharpness pulses as the window moves;
    one Gaussian pass on the canvas (done once, not per frame) brings both
    back to Pillow's level (measured in tests/test_kenburns.py).
    """
    out: Plane = cv2.GaussianBlur(plane, (0, 0), _PREFILTER_SIGMA)
    return out


class StillFrames:
    """Frame ``i`` of ``count`` of a Ken Burns move over one prepared canvas, as yuv420p planes.

    The canvas is at least ``OVERSAMPLE`` times the output in every frame, so
    each frame is a reduction and its sharpness does not pulse with the
    fractional part of the window's position (tests/test_kenburns.py measures
    it). OpenCV releases the GIL, so frames are drawn in a worker thread while
    the previous one is written to the encoder.
    """

    def __init__(self, planes: Planes, motion: Motion, zoom: float, width: int, height: int, count: int) -> None:
        self.planes = planes
        self.motion = motion
        self.zoom = zoom
        self.size = (width, height)
        self.count = count
        self._still: Planes | None = None

    def __call__(self, i: int) -> Planes:
        if self._still is not None:
            return self._still
        cv2 = _cv2()
        luma, cb, cr = self.planes
        t = min(max(i, 0), self.count - 1) / (self.count - 1) if self.count > 1 else 0.0
        box = _window(self.motion, t, self.zoom, float(luma.shape[1]), float(luma.shape[0]))
        half = (box[0] / 2.0, box[1] / 2.0, box[2] / 2.0, box[3] / 2.0)
        width, height = self.size
        chroma = (width // 2, height // 2)
        frame = (_warp(cv2, luma, box, self.size), _warp(cv2, cb, half, chroma), _warp(cv2, cr, half, chroma))
        if self.motion is Motion.NONE:
            self._still = frame  # every frame is the same: draw it once
        return frame

    def close(self) -> None:
        """Nothing to release: the canvas is plain memory, dropped with the object."""


def _check_frame(width: int, height: int, fit: str, zoom: float, label: str) -> None:
    if width % 2 or height % 2:
        raise ConfigError(f"video size {width}x{height} must be even in both directions for H.264 yuv420p.")
    if fit not in ("cover", "fit"):
        raise ConfigError(f"img2vid fit '{fit}' is not cover or fit.", file=label)
    if not 1.0 <= zoom <= 4.0:
        raise ConfigError(f"img2vid zoom {zoom} is outside 1.0-4.0.", file=label)


def prepare_still(
    source: Path | Image.Image,
    *,
    width: int,
    height: int,
    frames: int,
    motion: str,
    fit: str,
    zoom: float,
    seed: str,
    label: str,
    max_megapixels: float = 100.0,
    subject: Callable[[Image.Image], Subject] | None = None,
) -> tuple[StillFrames, dict[str, Any]]:
    """Read ``source`` (an untrusted file, or a picture omad drew) once and return its frames and facts.

    The facts say what was read (format, sizes, EXIF orientation) and the
    motion chosen; ``frames`` is how many frames the move spans. With
    ``subject`` (``omad.media.framing``), ``cover`` crops around what it
    finds in the picture instead of its centre.
    """
    _check_frame(width, height, fit, zoom, label)
    chosen = resolve_motion(motion, seed, label)
    cw, ch = canvas_size(width, height, chosen, zoom)
    if isinstance(source, Path):
        img, facts = _load_image(source, cw, ch, label, max_megapixels)
    else:
        img, facts = _to_rgb(source.copy()), {}
    centre = (0.5, 0.5)
    if subject is not None and fit == "cover":
        found = subject(img)
        centre = centering(found, img.size, (cw, ch))
        facts["subject"] = found.to_dict()
    with img:
        canvas = _canvas(img, cw, ch, fit, centre)
    with canvas:
        planes = _planes(canvas)
    if chosen is not Motion.NONE:
        cv2 = _cv2()
        planes = (_prefilter(cv2, planes[0]), _prefilter(cv2, planes[1]), _prefilter(cv2, planes[2]))
    facts.update({"motion": chosen.value, "motion_requested": motion, "fit": fit, "zoom": zoom,
                  "canvas_size": [cw, ch]})
    return StillFrames(planes, chosen, zoom, width, height, max(1, frames)), facts


def render_still(
    image: Path | Image.Image,
    out: Path,
    *,
    video: VideoOutput,
    seconds: float,
    motion: str,
    fit: str,
    zoom: float,
    seed: str,
    ff: Ffmpeg,
    label: str,
    audio: Path | None = None,
    audio_filter: str = FINAL_AUDIO_FORMAT,
    max_megapixels: float = 100.0,
) -> dict[str, Any]:
    """Render ``image`` as a ``seconds`` long H.264 clip with Ken Burns ``motion``; return the facts.

    The clip is exactly ``video.width`` x ``video.height`` at ``video.fps`` with
    ``round(seconds * fps)`` frames, yuv420p, ``+faststart``, encoded as
    ``video`` says. With ``audio`` it is muxed as AAC through ``audio_filter``
    (ending in ``FINAL_AUDIO_FORMAT``: a fixed layout before ``apad``), padded
    with silence or cut to the video's length (the caller passes the audio's
    duration as ``seconds``). ffmpeg runs under ``ff`` (timeout, cancel; its progress is
    all of ``ff``'s). ``out`` appears only when complete.
    """
    width, height, fps = video.width, video.height, video.fps
    started = time.monotonic()
    if seconds <= 0 or fps <= 0:
        raise ConfigError(f"cannot render {seconds}s at {fps} fps.", file=label)
    _check_frame(width, height, fit, zoom, label)
    frames = max(1, round(seconds * fps))
    duration = frames / fps

    audio_args: list[str] = []
    if audio is not None:
        info = probe(audio, file_label=audio.name)
        if info.audio is None or info.format_name not in AUDIO_DEMUXERS:
            raise InputError(
                f"has no audio omad can use (format '{info.format_name}'). Drop a WAV, MP3, M4A or FLAC file.",
                file=audio.name,
            )
        audio_args = [*SAFE_INPUT_ARGS, "-i", str(audio)]

    chosen = video.chosen
    make, facts = prepare_still(image, width=width, height=height, frames=frames, motion=motion, fit=fit,
                                zoom=zoom, seed=seed, label=label, max_megapixels=max_megapixels)
    prepared = time.monotonic()

    part = out.with_name(f".{out.stem}.part{out.suffix or '.mp4'}")

    def _args(fifo: Path) -> list[str]:
        args = [
            *SAFE_INPUT_ARGS,
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(fps),
            "-i", str(fifo),
            *audio_args,
            "-map", "0:v:0",
        ]  # fmt: skip
        if audio is not None:
            args += [
                "-map", "1:a:0",
                # aformat before apad: apad alone cannot negotiate a layout (docs/field-notes.md).
                "-af", f"{audio_filter},apad",
                "-c:a", "aac", "-b:a", video.audio_bitrate,
            ]  # fmt: skip
        args += [
            *chosen.args,
            # Not -frames:v: reaching it ends the audio stream too, early (ffmpeg 5.1).
            "-t", f"{duration:.6f}",
            "-movflags", "+faststart",
            str(part),
        ]  # fmt: skip
        return args

    try:
        encode_piped(make, frames, _args, ff=ff, duration=duration, label=label)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    facts.update(
        {
            "width": width,
            "height": height,
            "fps": fps,
            "frames": frames,
            "seconds": duration,
            **chosen.facts(),
            "crf": video.crf,
            "x264_preset": video.preset,
            "pix_fmt": "yuv420p",
            "colorspace": "bt709",
            "audio": audio is not None,
            "prepare_seconds": round(prepared - started, 3),
            "render_seconds": round(time.monotonic() - started, 3),
        }
    )
    return facts
