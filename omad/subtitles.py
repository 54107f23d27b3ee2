"""Subtitles: reading SRT files strictly, and styling them as ASS for burning.

SRTs made on Windows for pt-BR are often cp1252; UTF-8 (with or without BOM)
is tried first, then cp1252 (a superset of Latin-1 for printable text). The
parser is strict on purpose: a malformed block is an error that names the line,
not a caption silently dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pysubs2

from .config import CaptionConfig
from .errors import InputError, StageFailed

__all__ = ["Cue", "read_srt", "parse_srt", "decode_text", "write_srt", "build_ass", "srt_timestamp", "check_cost"]

_TS = r"(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})"
_TS_LINE = re.compile(rf"^\s*{_TS}\s*-->\s*{_TS}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]+>|\{\\[^}]*\}")


@dataclass(frozen=True)
class Cue:
    """One caption: seconds from the start of the media and its text."""

    start: float
    end: float
    text: str


def decode_text(raw: bytes, label: str) -> tuple[str, str]:
    """Decode text as UTF-8 (BOM or not), else cp1252; returns (text, encoding)."""
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_srt(text: str, label: str) -> list[Cue]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[Cue] = []
    i = 0
    n = len(lines)
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        block_start = i
        if lines[i].strip().isdigit():
            i += 1
            if i >= n or not lines[i].strip():
                raise InputError(
                    f"line {block_start + 1}: caption number {lines[block_start].strip()} has no "
                    "'00:00:01,000 --> 00:00:02,000' timestamp after it. Fix the line and drop the file again.",
                    file=label,
                )
        m = _TS_LINE.match(lines[i])
        if not m:
            raise InputError(
                f"line {i + 1} has no `-->` timestamp (found {lines[i].strip()[:60]!r}). "
                "Each caption needs a line like '00:00:01,000 --> 00:00:02,500'. Fix the line and drop the file again.",
                file=label,
            )
        g = m.groups()
        start, end = _seconds(*g[:4]), _seconds(*g[4:])
        if end <= start:
            raise InputError(
                f"line {i + 1}: the caption ends ({lines[i].strip()}) before it starts. "
                "Fix the timestamps and drop the file again.",
                file=label,
            )
        i += 1
        body: list[str] = []
        while i < n and lines[i].strip():
            body.append(lines[i].rstrip())
            i += 1
        cues.append(Cue(start, end, "\n".join(body)))
    if not cues:
        raise InputError("has no captions in it. Check that it is an SRT file and drop it again.", file=label)
    return cues


def read_srt(path: Path, label: str, max_bytes: int | None = None) -> tuple[list[Cue], str]:
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise InputError(
                f"is {size / 1e6:.1f} MB; subtitle files are limited to {max_bytes / 1e6:.1f} MB "
                "(intake.max_subtitle_bytes). Check that it is really a subtitle file.",
                file=label,
            )
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot be read ({e.strerror}).", file=label) from e
    text, enc = decode_text(raw, label)
    return parse_srt(text, label), enc


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm`` for an SRT cue."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def write_srt(cues: Sequence[Cue], path: Path) -> Path:
    """Write ``cues`` as an SRT file (UTF-8). Cues are kept in order and never overlap, even after rounding."""
    blocks: list[str] = []
    last_end_ms = 0
    for cue in cues:
        text = " ".join(cue.text.split())
        if not text:
            continue
        start_ms = max(round(cue.start * 1000), last_end_ms)
        end_ms = max(round(cue.end * 1000), start_ms + 1)
        last_end_ms = end_ms
        blocks.append(
            f"{len(blocks) + 1}\n{srt_timestamp(start_ms / 1000)} --> {srt_timestamp(end_ms / 1000)}\n{text}\n"
        )
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text("\n".join(blocks), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StageFailed(f"cannot write the captions ({e.strerror or e}).", file=path) from e
    return path


def _colour(hex_rgb: str) -> pysubs2.Color:
    h = hex_rgb.lstrip("#")
    return pysubs2.Color(int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 0)


def build_ass(cues: list[Cue], width: int, height: int, style: CaptionConfig, out: Path) -> None:
    """Write an ASS file whose style scales with the video height."""
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"] = str(width)
    subs.info["PlayResY"] = str(height)
    subs.info["WrapStyle"] = "0"
    subs.info["ScaledBorderAndShadow"] = "yes"
    size = max(8, round(height * style.size_ratio))
    st = pysubs2.SSAStyle(
        fontname=style.font,
        fontsize=size,
        primarycolor=_colour(style.primary_colour),
        outlinecolor=_colour(style.outline_colour),
        backcolor=pysubs2.Color(0, 0, 0, 128),
        bold=style.bold,
        outline=max(1.0, round(size * style.outline_ratio, 1)),
        shadow=0,
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=round(width * 0.05),
        marginr=round(width * 0.05),
        marginv=round(height * style.margin_ratio),
    )
    subs.styles["Default"] = st
    for c in cues:
        clean = _TAG.sub("", c.text)
        # Escape characters ASS would read as override blocks; keep line breaks.
        clean = clean.replace("\\", "\u2216").replace("{", "(").replace("}", ")")
        subs.append(
            pysubs2.SSAEvent(start=int(c.start * 1000), end=int(c.end * 1000), text=clean.replace("\n", "\\N"))
        )
    subs.save(str(out), encoding="utf-8", format_="ass")


def check_cost(cues: Sequence[Cue], label: str, *, max_cues: int, max_on_screen: int) -> None:
    """Refuse subtitles whose rendering cost is out of proportion (``intake.max_cues``, ``max_cues_on_screen``).

    libass draws every cue on screen for each frame: thousands at once keep ffmpeg
    busy for minutes per frame, deaf to SIGTERM, so such a file is refused up front.
    """
    if len(cues) > max_cues:
        raise InputError(
            f"has {len(cues)} captions; omad takes up to {max_cues} in one file (intake.max_cues). "
            "Split the video and its subtitles, or raise the limit.",
            file=label,
        )
    edges = sorted([(c.start, 1) for c in cues] + [(c.end, -1) for c in cues], key=lambda e: (e[0], e[1]))
    shown = peak = 0
    at = 0.0
    for t, step in edges:
        shown += step
        if shown > peak:
            peak, at = shown, t
    if peak > max_on_screen:
        raise InputError(
            f"shows {peak} captions at the same moment (at {srt_timestamp(at)}); omad draws at most "
            f"{max_on_screen} at once (intake.max_cues_on_screen). Check the timestamps: overlapping captions "
            "are usually a broken file.",
            file=label,
        )
