"""Subtitles: omad's caption cues, SRT output, and ASS files for burning.

Reading dropped subtitle files (any format, any encoding) lives in
``omad.media.subtitle_files``; this module owns what omad writes: SRTs next to a
narration, and the ASS that libass burns. SRT/VTT captions get omad's
caption style (``caption.*`` in config) with their inline styling kept; an
ASS/SSA file is burned with its own styles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pysubs2

from ..config import CaptionConfig
from ..errors import InputError, StageFailed
from ..outbox import atomic_write_text
from ..text.encodings import decode_text as _detect
from .subtitle_files import SubtitleFile, read_subtitles

__all__ = [
    "Cue",
    "read_srt",
    "decode_text",
    "write_srt",
    "build_ass",
    "build_karaoke_ass",
    "karaoke_text",
    "burnable_ass",
    "escape_ass_text",
    "omad_style",
    "srt_timestamp",
    "check_cost",
]


@dataclass(frozen=True)
class Cue:
    """One caption: seconds from the start of the media and its plain text (lines split by ``\\n``)."""

    start: float
    end: float
    text: str


def decode_text(raw: bytes, label: str) -> tuple[str, str]:
    """Decode a dropped text file in whatever encoding it is in; returns (text, encoding)."""
    decoded = _detect(raw)
    return decoded.text, decoded.encoding


def read_srt(path: Path, label: str, max_bytes: int | None = None) -> tuple[list[Cue], str]:
    """A subtitle file's cues as plain text (styling dropped) and its encoding."""
    sub = read_subtitles(path, label, max_bytes)
    cues = [Cue(ev.start / 1000, ev.end / 1000, ev.plaintext) for ev in sub.subs.events]
    return cues, sub.encoding


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm`` for an SRT cue."""
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms:03d}"


def write_srt(cues: Sequence[Cue], path: Path) -> Path:
    """Write ``cues`` as an SRT file (UTF-8). Cues are kept in order and never overlap, even after rounding.

    A cue's line breaks are kept (captions laid out on two lines stay so);
    blank lines inside a cue, which would end it in SRT, are dropped.
    """
    blocks: list[str] = []
    last_end_ms = 0
    for cue in cues:
        text = "\n".join(" ".join(line.split()) for line in cue.text.split("\n") if line.split())
        if not text:
            continue
        start_ms = max(round(cue.start * 1000), last_end_ms)
        end_ms = max(round(cue.end * 1000), start_ms + 1)
        last_end_ms = end_ms
        blocks.append(
            f"{len(blocks) + 1}\n{srt_timestamp(start_ms / 1000)} --> {srt_timestamp(end_ms / 1000)}\n{text}\n"
        )
    path = Path(path)
    try:
        atomic_write_text(path, "\n".join(blocks))
    except OSError as e:
        raise StageFailed(f"cannot write the captions ({e.strerror or e}).", file=path) from e
    return path


def _colour(hex_rgb: str) -> pysubs2.Color:
    h = hex_rgb.lstrip("#")
    return pysubs2.Color(int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 0)


def omad_style(width: int, height: int, style: CaptionConfig) -> pysubs2.SSAStyle:
    """omad's caption style for a ``width`` x ``height`` video: sizes scale with the height."""
    size = max(8, round(height * style.size_ratio))
    return pysubs2.SSAStyle(
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


def _styled_file(width: int, height: int, style: CaptionConfig) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"] = str(width)
    subs.info["PlayResY"] = str(height)
    subs.info["WrapStyle"] = "0"
    subs.info["ScaledBorderAndShadow"] = "yes"
    subs.styles["Default"] = omad_style(width, height, style)
    return subs


_OVERRIDE = re.compile(r"<[^>]+>|\{\\[^}]*\}")


def escape_ass_text(text: str) -> str:
    """Plain text as ASS event text: tags dropped, characters libass would obey escaped, line breaks kept."""
    clean = _OVERRIDE.sub("", text)
    clean = clean.replace("\\", "\u2216").replace("{", "(").replace("}", ")")
    return clean.replace("\n", "\\N")


def build_ass(cues: Sequence[Cue], width: int, height: int, style: CaptionConfig, out: Path) -> None:
    """Write an ASS file of plain-text ``cues`` in omad's caption style."""
    subs = _styled_file(width, height, style)
    for c in cues:
        subs.append(pysubs2.SSAEvent(start=int(c.start * 1000), end=int(c.end * 1000), text=escape_ass_text(c.text)))
    subs.save(str(out), encoding="utf-8", format_="ass")


def karaoke_text(cue: Cue, words: Sequence[tuple[float, float, str]]) -> str | None:
    """ASS karaoke text for ``cue``: each word carries a ``\\k`` as long as it is spoken.

    ``words`` are (start, end, text) in seconds, the cue's words in order; the
    cue's line breaks are kept. None when they are not the cue's words (then
    the caption is drawn plain).
    """
    lines = [line.split() for line in cue.text.split("\n")]
    flat = [w for line in lines for w in line]
    if [w[2] for w in words] != flat or not words:
        return None
    parts: list[str] = []
    at = round(cue.start * 100)  # centiseconds: the unit of \k
    lead = max(0, round(words[0][0] * 100) - at)
    if lead:
        parts.append(f"{{\\k{lead}}}")
        at += lead
    i = 0
    for n, line in enumerate(lines):
        for k in range(len(line)):
            start, end, text = words[i]
            nxt = round(words[i + 1][0] * 100) if i + 1 < len(words) else max(round(end * 100), at + 1)
            length = max(1, nxt - at)
            sep = "\\N" if k == 0 and n > 0 else (" " if k > 0 else "")
            parts.append(f"{sep}{{\\k{length}}}{escape_ass_text(text)}")
            at += length
            i += 1
    return "".join(parts)


def build_karaoke_ass(cues: Sequence[Cue], words: Sequence[tuple[float, float, str]], width: int, height: int,
                      style: CaptionConfig, out: Path) -> int:
    """Write ``cues`` as karaoke captions: the spoken word turns ``caption.highlight_colour`` (ASS ``\\k``).

    ``words`` are all the narration's words (start, end, text); each cue takes
    the ones spoken inside it. Returns how many cues were highlighted word by
    word (the others, whose words could not be matched, are drawn plain).
    """
    subs = _styled_file(width, height, style)
    default = subs.styles["Default"]
    # \k shows a word in SecondaryColour until its time, then in PrimaryColour.
    default.secondarycolor = default.primarycolor
    default.primarycolor = _colour(style.highlight_colour)
    highlighted = 0
    pool = sorted(words)
    for c in cues:
        mine = [w for w in pool if c.start - 1e-6 <= w[0] < c.end - 1e-6]
        text = karaoke_text(c, mine)
        count = len(c.text.split())
        if text is None and len(mine) > count:
            # A caption held on for reading speed can reach into the next scene's first words: not its own.
            text = karaoke_text(c, mine[:count])
        if text is None:
            text = "{\\1c" + _ass_bgr(style.primary_colour) + "}" + escape_ass_text(c.text)
        else:
            highlighted += 1
        subs.append(pysubs2.SSAEvent(start=int(c.start * 1000), end=int(c.end * 1000), text=text))
    subs.save(str(out), encoding="utf-8", format_="ass")
    return highlighted


def _ass_bgr(hex_rgb: str) -> str:
    h = hex_rgb.lstrip("#")
    return f"&H{h[4:6]}{h[2:4]}{h[0:2]}&".upper()


def burnable_ass(sub: SubtitleFile, width: int, height: int, style: CaptionConfig) -> pysubs2.SSAFile:
    """The ASS to burn for a dropped subtitle file.

    An ASS/SSA file keeps its own styles, play resolution and positioning;
    SRT/VTT events (inline tags such as ``{\\i1}`` and ``{\\an8}`` kept) get
    omad's style, sized for this video.
    """
    if sub.own_styles:
        return sub.subs
    subs = _styled_file(width, height, style)
    for ev in sub.subs.events:
        subs.append(pysubs2.SSAEvent(start=ev.start, end=ev.end, text=ev.text))
    return subs


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
