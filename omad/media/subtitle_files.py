"""Reading dropped subtitle files (SRT, WebVTT, ASS, SSA) as players do: leniently.

A subtitle that VLC or mpv plays must not be refused here. pysubs2 does the
parsing; this module adds what a burner needs on top of it:

- the encoding is detected (``omad.text.encodings``) and recorded, never assumed;
- SRT/VTT styling becomes ASS override tags: ``<i> <b> <u> <s>`` (pysubs2),
  ``<font color>`` and VTT colour classes (here), ``{\\an8}`` kept as written,
  VTT cue settings (``line:0``, ``align:start``) as ``{\\anN}``;
- text that is not a caption (a block with no timestamp, a NOTE) is cut off
  the caption pysubs2 glued it to, with a warning naming its line;
- empty and zero-length cues are left out with a warning, never an error;
- only a file with *nothing* usable left is refused, naming the first line
  that could not be read and what a good one looks like.

It never renders or styles for burning (``omad.media.subtitles`` does that).
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pysubs2

from ..errors import InputError
from ..text.encodings import decode_text

__all__ = ["SUBTITLE_EXTENSIONS", "SubtitleFile", "parse_subtitles", "read_subtitles"]

#: File extensions omad reads as subtitles, with the format each usually holds.
SUBTITLE_EXTENSIONS = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa"}

_GOOD_LINE = {
    "srt": "'00:00:01,000 --> 00:00:02,500'",
    "vtt": "'00:00:01.000 --> 00:00:02.500'",
    "ass": "'Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,Text'",
    "ssa": "'Dialogue: Marked=0,0:00:01.00,0:00:02.50,Default,,0,0,0,,Text'",
}
_NAMED_COLOURS = {
    "white": "FFFFFF", "black": "000000", "red": "FF0000", "lime": "00FF00", "green": "008000", "blue": "0000FF",
    "yellow": "FFFF00", "cyan": "00FFFF", "aqua": "00FFFF", "magenta": "FF00FF", "fuchsia": "FF00FF",
    "silver": "C0C0C0", "gray": "808080", "grey": "808080", "orange": "FFA500", "purple": "800080",
    "maroon": "800000", "navy": "000080", "olive": "808000", "teal": "008080",
}
_FONT_OPEN = re.compile(r"<\s*font\b([^>]*)>", re.IGNORECASE)
_FONT_COLOUR = re.compile(r"""color\s*=\s*["']?\s*(#?[0-9A-Za-z]+)""", re.IGNORECASE)
_FONT_CLOSE = re.compile(r"<\s*/\s*font\s*>", re.IGNORECASE)
_VTT_CLASS_OPEN = re.compile(r"<c((?:\.[\w-]+)+)>")
_VTT_CLASS_CLOSE = re.compile(r"</c>")
_VTT_TIMETAG = re.compile(r"<\d[\d:.]*>")  # karaoke-style inner timestamps: players ignore them in plain cues
_BRACES = re.compile(r"\{([^\\}][^}]*)?\}")  # a {block} that is not an override ({\i1}): literal text
_STRAY_BACKSLASH = re.compile(r"\\(?![Nnh])")


@dataclass
class SubtitleFile:
    """A readable subtitle file: usable events (ASS markup), where they came from, what was left out."""

    subs: pysubs2.SSAFile
    format: str  # "srt", "vtt", "ass" or "ssa" (by content, not by extension)
    encoding: str
    warnings: list[str] = field(default_factory=list)
    encoding_from: str = "given"  # the evidence for ``encoding``: "bom", "utf-8", "language profile", ...

    @property
    def own_styles(self) -> bool:
        """ASS/SSA files carry their own styles and are burned with them; SRT/VTT get omad's caption style."""
        return self.format in ("ass", "ssa")


def _ass_colour(value: str) -> str | None:
    v = value.strip().lstrip("#").lower()
    hex_rgb = _NAMED_COLOURS.get(v, v.upper())
    if len(hex_rgb) == 3:
        hex_rgb = "".join(c * 2 for c in hex_rgb)
    if not re.fullmatch(r"[0-9A-F]{6}", hex_rgb):
        return None
    return f"&H{hex_rgb[4:6]}{hex_rgb[2:4]}{hex_rgb[0:2]}&"  # ASS colours are BGR


def _font_tag(m: re.Match[str]) -> str:
    colour = _FONT_COLOUR.search(m.group(1))
    code = _ass_colour(colour.group(1)) if colour else None
    return f"{{\\c{code}}}" if code else ""


def _vtt_class_tag(m: re.Match[str]) -> str:
    for cls in m.group(1).split(".")[1:]:
        if cls.startswith("bg_"):
            continue
        code = _ass_colour(cls)
        if code:
            return f"{{\\c{code}}}"
    return ""


def _escape_literal(line: str) -> str:
    """Backslashes and braces that are text, not ASS tags, so libass draws them instead of obeying them."""
    line = _BRACES.sub(lambda m: f"({m.group(1) or ''})", line)
    out: list[str] = []
    depth = 0
    for i, ch in enumerate(line):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == "\\" and depth == 0 and _STRAY_BACKSLASH.match(line, i):
            ch = "\u2216"  # SET MINUS looks like a backslash and means nothing to libass
        out.append(ch)
    return "".join(out)


def _prepare_text_lines(text: str, fmt: str) -> str:
    """SRT/VTT body lines with styling turned into ASS tags that pysubs2 leaves alone."""
    lines = []
    for line in text.split("\n"):
        line = _escape_literal(line)
        line = _FONT_CLOSE.sub("{\\\\c}", _FONT_OPEN.sub(_font_tag, line))
        if fmt == "vtt":
            line = _VTT_TIMETAG.sub("", line)
            line = _VTT_CLASS_CLOSE.sub("{\\\\c}", _VTT_CLASS_OPEN.sub(_vtt_class_tag, line))
        lines.append(line)
    return "\n".join(lines)


def _vtt_alignment(settings: str) -> int | None:
    """``{\\anN}`` for WebVTT cue settings that move a cue: ``line:`` near the top, ``align:`` to a side."""
    values = dict(s.split(":", 1) for s in settings.split() if ":" in s)
    if not values.keys() & {"line", "align", "position"}:
        return None
    top = False
    line = values.get("line", "").split(",")[0]
    if line.endswith("%"):
        try:
            top = float(line[:-1]) < 50
        except ValueError:
            top = False
    elif re.fullmatch(r"-?\d+", line):
        top = int(line) >= 0  # line numbers count from the top when positive, from the bottom when negative
    column = {"start": 0, "left": 0, "end": 2, "right": 2}.get(values.get("align", ""), 1)
    return (7 if top else 1) + column


@dataclass
class _Scan:
    """What a line-by-line look at an SRT/VTT finds: each cue's timing line, and text outside any cue."""

    timing_lines: list[int]
    settings: list[str]
    unreadable: list[tuple[int, str]]


def _scan(lines: list[str], fmt: str, stamp: re.Pattern[str]) -> _Scan:
    scan = _Scan([], [], [])
    block: list[tuple[int, str]] = []

    def close() -> None:
        if not block:
            return
        has_timing = any(len(stamp.findall(t)) == 2 for _, t in block)
        first = block[0][1].strip()
        if has_timing:
            return
        if fmt == "vtt" and first.split(" ", 1)[0] in ("WEBVTT", "NOTE", "STYLE", "REGION"):
            return
        rest = [(n, t) for n, t in block if not t.strip().isdigit()]
        if rest:
            scan.unreadable.append(rest[0])

    for n, line in enumerate(lines, start=1):
        if not line.strip():
            close()
            block = []
            continue
        block.append((n, line))
        stamps = list(stamp.finditer(line))
        if len(stamps) == 2:  # pysubs2's own rule for a timing line, so both count the same cues
            scan.timing_lines.append(n)
            scan.settings.append(line[stamps[1].end():].strip())  # VTT cue settings follow the end time
    close()
    return scan


def _detect_format(text: str, ext_hint: str) -> str:
    head = text.lstrip()
    if head.startswith("WEBVTT"):
        return "vtt"
    if "[Script Info]" in text[:10000] or "[V4+ Styles]" in text[:10000] or "[V4 Styles]" in text[:10000]:
        try:
            return pysubs2.formats.autodetect_format(text[:10000])
        except pysubs2.exceptions.Pysubs2Error:
            return "ass"
    return "vtt" if ext_hint == "vtt" else "srt"


def _fail(label: str, fmt: str, unreadable: list[tuple[int, str]], dropped: int) -> InputError:
    good = _GOOD_LINE[fmt]
    if unreadable:
        n, found = unreadable[0]
        return InputError(
            f"has no caption omad can use: line {n} could not be read (found {found.strip()[:60]!r}). "
            f"Each caption needs a timing line like {good}. Fix the line and drop the file again.",
            file=label,
        )
    if dropped:
        return InputError(
            f"has no caption omad can use: all {dropped} captions are empty or end when they start. "
            "Give the captions text and an end time after their start, then drop the file again.",
            file=label,
        )
    return InputError(
        f"has no captions in it. Check that it is a subtitle file (SRT, WebVTT, ASS or SSA) with timing lines "
        f"like {good}, and drop it again.",
        file=label,
    )


def _clean_events(subs: pysubs2.SSAFile, fmt: str, lines_of: list[int] | None, label: str,
                  unreadable: list[tuple[int, str]]) -> list[str]:
    """Drop what cannot be shown; warnings say which lines were left out and why."""
    empty: list[str] = []
    backwards: list[str] = []
    kept: list[pysubs2.SSAEvent] = []
    for i, ev in enumerate(subs.events):
        where = f"line {lines_of[i]}" if lines_of is not None else f"caption {i + 1}"
        if ev.is_comment:
            continue
        if not ev.plaintext.strip():
            empty.append(where)
        elif ev.end <= ev.start:
            (empty if ev.end == ev.start else backwards).append(where)
        else:
            kept.append(ev)
    subs.events = kept
    told: list[str] = []
    if unreadable:
        shown = ", ".join(f"line {n} ({t.strip()[:40]!r})" for n, t in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        told.append(f"{label}: text with no timing line before it was left out: {shown}{more}.")
    if empty:
        told.append(f"{label}: {len(empty)} empty or zero-length caption(s) left out ({', '.join(empty[:10])}).")
    if backwards:
        told.append(
            f"{label}: {len(backwards)} caption(s) that end before they start left out ({', '.join(backwards[:10])})."
        )
    return told


def _quietly(read: Callable[[], pysubs2.SSAFile]) -> tuple[pysubs2.SSAFile, list[str]]:
    """Run a pysubs2 read, keeping what it warns about ("Failed to parse layer") for the sidecar."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subs = read()
    notes: list[str] = []
    for w in caught:
        note = f"{w.message} (pysubs2)"
        if note not in notes:
            notes.append(note)
    return subs, notes


def parse_subtitles(text: str, label: str, ext_hint: str = "srt", encoding: str = "utf-8") -> SubtitleFile:
    """Parse decoded subtitle ``text``; ``ext_hint`` ("srt", "vtt", ...) decides only what content cannot."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    fmt = _detect_format(text, ext_hint)
    lines = text.split("\n")
    if fmt in ("ass", "ssa"):
        try:
            subs, notes = _quietly(lambda: pysubs2.SSAFile.from_string(text, format_=fmt))
        except (pysubs2.exceptions.Pysubs2Error, ValueError, KeyError, IndexError) as e:
            raise InputError(
                f"is not an {fmt.upper()} file omad can read ({e}). Open it in Aegisub, save it again and drop it "
                "again.",
                file=label,
            ) from e
        dialogue = [n for n, t in enumerate(lines, start=1) if re.match(r"\s*(Dialogue|Comment)\s*:", t)]
        lines_of = dialogue if len(dialogue) == len(subs.events) else None
        unreadable: list[tuple[int, str]] = []
    else:
        stamp = (pysubs2.formats.webvtt.WebVTTFormat if fmt == "vtt" else pysubs2.formats.subrip.SubripFormat).TIMESTAMP
        scan = _scan(lines, fmt, stamp)
        prepared = _prepare_text_lines(text, fmt)
        subs, notes = _quietly(lambda: pysubs2.SSAFile.from_string(prepared, format_=fmt))
        lines_of = scan.timing_lines if len(scan.timing_lines) == len(subs.events) else None
        for i, ev in enumerate(subs.events):
            # A blank line ends a cue: whatever pysubs2 glued on after one is not caption text.
            body = ev.text.split("\\N\\N", 1)[0]
            body = re.sub(r"(\\N)+$", "", body)
            if fmt == "vtt":
                body = html.unescape(body)
                align = _vtt_alignment(scan.settings[i]) if lines_of is not None else None
                if align is not None and "\\an" not in body:
                    body = f"{{\\an{align}}}{body}"
            ev.text = body
        unreadable = scan.unreadable
    count = sum(1 for ev in subs.events if not ev.is_comment)
    told = _clean_events(subs, fmt, lines_of, label, unreadable) + [f"{label}: {note}" for note in notes]
    if not subs.events:
        raise _fail(label, fmt, unreadable, count)
    return SubtitleFile(subs=subs, format=fmt, encoding=encoding, warnings=told)


def read_subtitles(path: Path, label: str, max_bytes: int | None = None) -> SubtitleFile:
    """Read a dropped subtitle file in whatever encoding it is in (refused past ``max_bytes``)."""
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
        raise InputError(f"cannot be read ({e.strerror}). Check its permissions and drop it again.", file=label) from e
    decoded = decode_text(raw)
    ext = SUBTITLE_EXTENSIONS.get(path.suffix.lower(), "srt")
    sub = parse_subtitles(decoded.text, label, ext, decoded.encoding)
    sub.encoding_from = decoded.how
    return sub
