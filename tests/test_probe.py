"""The in-process probe: what ffprobe would say, without starting ffprobe, and the same refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ffmpeg, make_audio, make_video
from PIL import Image

import omad.media.ffmpeg as ff
import omad.procs
from omad.errors import InputError


def _ffprobe(path: Path) -> dict[str, object]:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], check=True, capture_output=True, text=True).stdout
    data: dict[str, object] = json.loads(out)
    return data


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any child process started while probing fails the test."""
    def _refuse(*a: object, **k: object) -> None:
        pytest.fail("probe started a process")

    monkeypatch.setattr(omad.procs, "spawn", _refuse)
    monkeypatch.setattr(ff, "run_tool", _refuse)
    monkeypatch.setattr(ff, "spawn", _refuse)


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv", "voice.wav", "voice.mp3", "voice.flac", "voice.m4a"])
def test_probe_agrees_with_ffprobe(tmp_path: Path, name: str, no_tools: None) -> None:
    """GIVEN videos and recordings of each accepted kind THEN the in-process probe reports what ffprobe does
    (demuxer, codecs, size, frame rate, duration) and starts no process."""
    path = tmp_path / name
    if name.startswith("clip"):
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
               "-t", "1.2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries",
               "bt709", "-color_trc", "bt709", "-color_range", "tv", "-c:a", "aac", str(path))
    elif name.endswith(".m4a"):
        ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=44100", "-t", "1.5", "-c:a", "aac", str(path))
    else:
        make_audio(path, seconds=1.5)
    info = ff.probe(path)
    ref = _ffprobe(path)
    fmt = ref["format"]
    assert isinstance(fmt, dict)
    assert info.format_name == fmt["format_name"]
    assert info.duration == pytest.approx(float(fmt["duration"]), abs=0.05)
    streams = ref["streams"]
    assert isinstance(streams, list)
    assert [s["codec_type"] for s in info.streams] == [s["codec_type"] for s in streams]
    assert [s["codec_name"] for s in info.streams] == [s["codec_name"] for s in streams]
    ref_video = next((s for s in streams if s["codec_type"] == "video"), None)
    if ref_video is not None:
        assert (info.width, info.height) == (ref_video["width"], ref_video["height"])
        assert info.fps == pytest.approx(25.0) and info.video is not None
        assert info.video["pix_fmt"] == ref_video["pix_fmt"]
        for key in ("color_range", "color_space", "color_primaries", "color_transfer"):
            assert info.video.get(key) == ref_video.get(key), key
    ref_audio = next(s for s in streams if s["codec_type"] == "audio")
    assert info.audio is not None and info.audio["sample_rate"] == ref_audio["sample_rate"]


def test_a_phone_video_shot_upright_reports_its_rotation(tmp_path: Path, no_tools: None) -> None:
    """GIVEN an MP4 whose display matrix turns it 90 degrees THEN probe says 90, as ffprobe does."""
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((180, 320, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    ref = _ffprobe(path)["streams"]
    assert isinstance(ref, list)
    assert ff.probe(path).rotation == int(ref[0]["side_data_list"][0]["rotation"]) % 360 == 90
    plain = make_video(tmp_path / "plain.mp4", seconds=0.4, audio=False)
    assert ff.probe(plain).rotation == 0


@pytest.mark.parametrize("content", [
    "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
    "ffconcat version 1.0\nfile /etc/passwd\n",
    '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period><AdaptationSet>'
    '<Representation><BaseURL>file:///etc/passwd</BaseURL></Representation></AdaptationSet></Period></MPD>',
], ids=["hls", "concat", "dash"])
def test_playlists_and_lists_of_files_are_refused_before_they_are_read(tmp_path: Path, content: str) -> None:
    """GIVEN a playlist, a concat list or a DASH manifest named .mp4 THEN probe refuses it, naming the file."""
    path = tmp_path / "evil.mp4"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        ff.probe(path, file_label="inbox/evil.mp4")
    assert str(info.value).startswith("inbox/evil.mp4: ")


def test_a_cut_short_video_is_unreadable_so_a_copy_under_way_gets_another_look(tmp_path: Path) -> None:
    """GIVEN the first third of an MP4 (its index at the end, not yet written) THEN an InputError marked unreadable."""
    whole = make_video(tmp_path / "whole.mkv", seconds=1.0)
    ffmpeg("-i", str(whole), "-c", "copy", str(tmp_path / "whole.mp4"))
    data = (tmp_path / "whole.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError) as info:
        ff.probe(cut)
    assert info.value.details.get("unreadable") is True


def test_a_picture_name_with_a_pattern_is_read_as_one_file(tmp_path: Path, no_tools: None) -> None:
    """GIVEN a picture named like an image sequence ("foto%d.png") beside foto1.png THEN only it is read."""
    Image.new("RGB", (64, 48), "red").save(tmp_path / "foto%d.png")
    Image.new("RGB", (128, 96), "blue").save(tmp_path / "foto1.png")
    named = tmp_path / "foto%d.png"
    assert (ff.probe(named).width, ff.probe(named).height) == (64, 48)


def test_every_accepted_demuxer_is_one_probe_may_open() -> None:
    """The probe's allow-list covers what the routes accept, and nothing that reads other files."""
    names = set(ff.PROBE_DEMUXERS)
    for group in (ff.VIDEO_DEMUXERS, ff.AUDIO_DEMUXERS):
        for demuxer in group:
            assert set(demuxer.split(",")) <= names
    assert not names & {"hls", "concat", "dash", "lavfi", "tee", "image2pipe", "ffmetadata", "sdp", "rtsp"}


def test_no_pyav_error_is_left_unmapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN each error class PyAV defines, raised while opening THEN probe turns it into an omad error naming
    the file: the test breaks when PyAV adds a class omad does not map, not only when omad forgets one."""
    import av.error

    from omad.errors import OmadError

    path = tmp_path / "x.mp4"
    path.write_bytes(b"\0" * 64)
    classes = [c for c in vars(av.error).values() if isinstance(c, type) and issubclass(c, av.error.FFmpegError)]
    assert len(classes) > 20
    unmapped = []
    for cls in classes:
        def _raise(*a: object, _cls: type = cls, **k: object) -> None:
            raise _cls(1, "simulated")

        monkeypatch.setattr(av, "open", _raise)
        try:
            ff.probe(path, file_label="inbox/x.mp4")
        except OmadError as e:
            assert str(e).startswith("inbox/x.mp4: ")
        except BaseException:  # collected and reported below
            unmapped.append(cls.__name__)
    assert not unmapped, f"Unmapped PyAV exceptions: {unmapped}"
