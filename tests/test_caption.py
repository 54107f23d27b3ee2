"""The caption route end to end: a video and its SRT become a captioned video."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Env, make_video, write_srt

from omad.errors import InputError
from omad.media.ffmpeg import escape_filter_path, probe
from omad.media.subtitle_files import parse_subtitles
from omad.media.subtitles import read_srt

NASTY = "my talk: 'ação' [1], final; v2"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_caption_pair_becomes_captioned_video(env: Env, encoding: str) -> None:
    """GIVEN a video and an SRT with a name full of quotes, colons and brackets, in a pt-BR encoding
    WHEN omad once runs
    THEN the outbox holds the captioned mp4 (same size and rate, audio kept) and a sidecar,
    the inbox is empty and the inputs are archived."""
    make_video(env.inbox / f"{NASTY}.mp4", seconds=2.0, size="320x180", rate=25)
    write_srt(env.inbox / f"{NASTY}.srt", encoding=encoding)

    assert env.once() == 0

    out = env.outbox / f"{NASTY}.mp4"
    info = probe(out)
    assert (info.width, info.height) == (320, 180)
    assert info.fps == pytest.approx(25.0, abs=0.01)
    assert info.audio is not None and info.audio["codec_name"] == "aac"
    assert info.video is not None and info.video["codec_name"] == "h264"
    assert info.duration == pytest.approx(2.0, abs=0.15)
    side = env.sidecar(NASTY)
    assert side["route"] == "caption"
    assert side["stages"][0]["name"] == "caption"
    assert side["stages"][0]["facts"]["captions"] == 2
    facts = side["stages"][0]["facts"]
    assert facts["subtitle_encoding"] == {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "cp1252": "cp1252"}[encoding]
    assert facts["subtitle_format"] == "srt" and facts["subtitle_styles"] == "omad"
    assert {i["role"] for i in side["inputs"]} == {"video", "srt"}
    assert side["tools"]["ffmpeg"]
    assert list(env.inbox.iterdir()) == []
    archived = sorted(p.name for p in (env.state / "archive").rglob("*") if p.is_file())
    assert archived == sorted([f"{NASTY}.mp4", f"{NASTY}.srt"])
    # The moov atom comes first (+faststart): 'moov' appears before 'mdat'.
    head = out.read_bytes()[:4096]
    assert b"moov" in head


def test_caption_text_is_visible_in_frames(env: Env) -> None:
    """Burned captions change the pixels of the bottom of the frame while a caption is shown."""
    import subprocess

    import numpy as np

    make_video(env.inbox / "clip.mp4", seconds=2.0, audio=False)
    write_srt(env.inbox / "clip.srt", "1\n00:00:00,000 --> 00:00:01,000\nÁÉÍÓÚ ção\n")
    assert env.once() == 0

    def frame(path: Path, t: float) -> np.ndarray:
        raw = subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-ss", str(t), "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
             "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
        return np.frombuffer(raw, dtype=np.uint8).reshape(180, 320).astype(float)

    src = env.state / "archive"
    original = next(src.rglob("clip.mp4"))

    def changed(t: float) -> int:
        diff = np.abs(frame(env.outbox / "clip.mp4", t)[120:, :] - frame(original, t)[120:, :])
        return int((diff > 80).sum())

    assert changed(0.5) > 150  # glyphs with outline
    assert changed(1.5) < 20  # no caption: only re-encoding noise


def test_srt_with_nothing_usable_is_quarantined_with_the_line(env: Env) -> None:
    """GIVEN an SRT in which no caption has a timing line
    THEN the pair lands in outbox/failed/ with an error naming the file and the first unreadable line."""
    make_video(env.inbox / "talk.mp4", seconds=1.0)
    write_srt(env.inbox / "talk.srt", "1\nsem tempo aqui\n\n2\nnem aqui\n")
    assert env.once() == 1
    err = env.failed_error("talk")
    assert "talk.srt" in err["message"] and "line 2" in err["message"] and "-->" in err["message"]
    assert err["error"]["kind"] == "input"
    assert sorted(p.name for p in (env.outbox / "failed" / "talk").iterdir()) == ["error.json", "talk.mp4", "talk.srt"]
    assert not (env.outbox / "talk.mp4").exists()


def test_srt_with_one_bad_block_is_burned_with_a_warning(env: Env) -> None:
    """GIVEN an SRT whose second caption has no timestamp
    THEN the first caption is burned and the sidecar warns that line 6 was left out."""
    make_video(env.inbox / "talk.mp4", seconds=1.0)
    write_srt(env.inbox / "talk.srt", "1\n00:00:00,000 --> 00:00:01,000\nOi\n\n2\nsem tempo aqui\n")
    assert env.once() == 0
    side = env.sidecar("talk")
    assert side["stages"][0]["facts"]["captions"] == 1
    assert any("talk.srt" in w and "line 6" in w and "sem tempo aqui" in w for w in side["warnings"])


def test_not_a_video_is_an_input_error(env: Env) -> None:
    (env.inbox / "fake.mp4").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\nfile:///etc/passwd\n")
    write_srt(env.inbox / "fake.srt")
    assert env.once() == 1
    err = env.failed_error("fake")
    assert "fake.mp4" in err["message"]
    assert err["error"]["retryable"] is False


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "no captions"),
        ("1\n00:00:02,000 --> 00:00:01,000\nAo contrário\n", "empty or end when they start"),
        ("1\nSem tempo\n", "line 2 could not be read (found 'Sem tempo')"),
        ("[Script Info]\nScriptType: v4.00+\n", "no captions"),
    ],
)
def test_subtitle_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_subtitles(text, "x.srt")
    assert fragment in str(exc.value)
    assert str(exc.value).startswith("x.srt: ")


def test_srt_parser_reads_cp1252_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "a.srt"
    p.write_bytes("1\r\n00:00:01,5 --> 00:00:02,250\r\nCoração\r\nsegunda linha\r\n".encode("cp1252"))
    cues, enc = read_srt(p, "a.srt")
    assert enc == "cp1252"
    assert cues[0].start == pytest.approx(1.5) and cues[0].end == pytest.approx(2.25)
    assert cues[0].text == "Coração\nsegunda linha"


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/a/b.ass", "/a/b.ass"),
        ("/a/it's.ass", "/a/it\\\\\\'s.ass"),
        ("/a/x:y.ass", "/a/x\\\\:y.ass"),
        ("/a/[1],;.ass", "/a/\\[1\\]\\,\\;.ass"),
    ],
)
def test_filter_path_escaping(path: str, expected: str) -> None:
    assert escape_filter_path(path) == expected


def test_captions_pass_the_guardrails(env: Env) -> None:
    """PII in an SRT is redacted from the burned captions; the sidecar names the finding, masked."""
    make_video(env.inbox / "g.mp4", seconds=1.0, audio=False)
    write_srt(env.inbox / "g.srt", "1\n00:00:00,000 --> 00:00:01,000\nEscreva para ana@exemplo.com\n")
    assert env.once() == 0
    side = env.sidecar("g")
    assert side["guardrail_findings"][0]["type"] == "email"
    assert "ana@exemplo.com" not in (env.outbox / "g.json").read_text()
