"""The subtitle reader's boundary: whatever bytes are dropped, omad either reads captions or says why.

pysubs2 and the codecs raise their own exceptions on odd input; none may
escape as anything but an ``InputError`` that names the file.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from omad.errors import InputError
from omad.media.subtitle_files import parse_subtitles, read_subtitles

_FRAGMENTS = [
    "1", "2", "", "   ", "00:00:01,000 --> 00:00:02,000", "00:00:01.000 -> 00:00:02.5", "00:01.000 --> 00:02.000",
    "99:99:99,999 --> 00:00:00,000", "00:00:02,000 --> 00:00:01,000 X1:0", "WEBVTT", "NOTE x", "STYLE",
    "<i>itálico</i>", "<b>", "</font>", '<font color="#zzzzzz">x', "<c.yellow.bg_blue>cor</c>", "{\\an8}topo",
    "{comentário}", "C:\\caminho\\p1", "&amp;&lt;&nbsp;", "<00:00:01.500>", "[Script Info]", "[Events]",
    "Format: Layer, Start, End, Style, Text", "Dialogue: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,Oi",
    "Dialogue: garbage", "Style: X", "line:0 align:start position:10%", "\x00\x01", "ação ñ ž 日本",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30), st.sampled_from(["srt", "vtt", "ass", "ssa"]),
       st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_mix_of_subtitle_lines_reads_or_fails_plainly(lines: list[str], ext: str, newline: str) -> None:
    try:
        sub = parse_subtitles(newline.join(lines), f"x.{ext}", ext)
    except InputError as e:
        assert str(e).startswith(f"x.{ext}: ")
        return
    assert sub.subs.events, "a file read without error has at least one caption"
    assert all(ev.end > ev.start and ev.plaintext.strip() for ev in sub.subs.events)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_read_or_fail_plainly(tmp_path_factory: object, raw: bytes) -> None:
    path = Path(str(tmp_path_factory.mktemp("fuzz"))) / "x.srt"  # type: ignore[attr-defined]
    path.write_bytes(raw)
    try:
        sub = read_subtitles(path, "x.srt")
    except InputError as e:
        assert str(e).startswith("x.srt: ")
        return
    assert sub.subs.events


def test_what_pysubs2_warns_about_goes_to_the_sidecar_not_up_the_stack() -> None:
    """GIVEN an ASS line with a field pysubs2 cannot parse (it warns and uses a default)
    THEN the caption is still read, and the warning is kept for the sidecar, naming the file."""
    text = ("[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
            "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
            "Dialogue: x,0:00:00.00,0:00:01.00,Default,,0,0,0,,Oi\n")
    sub = parse_subtitles(text, "x.ass", "ass")
    assert [ev.plaintext for ev in sub.subs.events] == ["Oi"]
    assert any(w.startswith("x.ass: ") and "layer" in w and "pysubs2" in w for w in sub.warnings)
