"""The scene video's one-pass render: the timeline, crossfades, on-screen titles, and one encoder for everything."""

from __future__ import annotations

import itertools
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Env
from PIL import Image

import omad.media.ffmpeg
from omad.media.ffmpeg import probe
from omad.media.kenburns import StillFrames, prepare_still
from omad.media.scenes import SceneSpec, Timeline, TitleOverlay, layout

W, H = 320, 180
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _flat(rgb: tuple[int, int, int]) -> Callable[[int], StillFrames]:
    def _prepare(frames: int) -> StillFrames:
        img = Image.new("RGB", (64, 36), rgb)
        return prepare_still(img, width=W, height=H, frames=frames, motion="none", fit="cover", zoom=1.0,
                             seed="s", label="flat")[0]

    return _prepare


def test_layout_starts_each_scene_a_crossfade_before_the_last_ends() -> None:
    """GIVEN scenes of 30, 45 and 20 frames and a 6-frame fade THEN they start at 0, 24, 63 and end at 83."""
    assert layout([30, 45, 20], 6) == ([0, 24, 63], 83)
    assert layout([30], 0) == ([0], 30)


def test_timeline_shows_each_scene_then_blends_them_during_the_fade() -> None:
    """GIVEN a red and a blue scene with a 4-frame crossfade
    THEN red alone, then four frames that move steadily from red to blue, then blue alone."""
    timeline = Timeline([SceneSpec(_flat((220, 20, 20)), 10), SceneSpec(_flat((20, 20, 220)), 10)], 4)
    try:
        assert timeline.count == 16
        cr = [float(timeline(n)[2].mean()) for n in range(timeline.count)]  # Cr: high for red, low for blue
    finally:
        timeline.close()
    assert len(set(np.round(cr[:6], 3))) == 1 and len(set(np.round(cr[10:], 3))) == 1
    fade = cr[5:11]
    steps = np.diff(fade)
    assert np.all(steps < 0), fade  # monotonic, red to blue
    assert np.max(np.abs(steps)) / np.min(np.abs(steps)) < 1.3  # and steady
    with pytest.raises(IndexError):
        timeline(16)


def test_prefetch_prepares_the_first_two_scenes_before_any_frame_is_asked() -> None:
    """GIVEN three scenes WHEN the timeline is told to prefetch (the render does it while the sound is mixed)
    THEN the first two scenes are prepared in the background, the third not yet, and frames come out the same."""
    prepared: list[int] = []
    done = threading.Event()

    def _tracked(i: int, rgb: tuple[int, int, int]) -> Callable[[int], StillFrames]:
        def _prepare(frames: int) -> StillFrames:
            prepared.append(i)
            if len(prepared) == 2:
                done.set()
            return _flat(rgb)(frames)

        return _prepare

    timeline = Timeline([SceneSpec(_tracked(i, (40 * i, 20, 20)), 10) for i in range(3)], 2)
    try:
        timeline.prefetch()
        assert done.wait(30)
        assert prepared == [0, 1]
        first = timeline(0)
    finally:
        timeline.close()
    reference = _flat((0, 20, 20))(10)(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, reference, strict=True))


def test_a_crossfade_longer_than_half_a_scene_is_refused() -> None:
    with pytest.raises(ValueError, match="half the shortest scene"):
        Timeline([SceneSpec(_flat((0, 0, 0)), 6), SceneSpec(_flat((9, 9, 9)), 20)], 4)


def test_title_overlay_sits_top_centre_and_leaves_the_cached_still_alone() -> None:
    """GIVEN a still scene with an on-screen title THEN the title's box is in the top fifth, centred,
    white text on a darkened box, the rest of the frame unchanged, and the still itself not drawn on."""
    still = _flat((40, 90, 160))(10)
    before = [p.copy() for p in still(0)]
    title = TitleOverlay("Paisagem", W, H, FONT)
    y, cb, cr = title.over(still(3))
    assert [np.array_equal(a, b) for a, b in zip(still(0), before, strict=True)] == [True, True, True]
    x0, y0, x1, y1 = title.box
    assert y1 < H * 0.3 and abs((x0 + x1) / 2 - W / 2) <= 2
    base = before[0]
    region = y[y0:y1, x0:x1]
    assert region.max() > 220  # the white text
    assert np.median(region) < base[0, 0] - 10  # on a darker box
    assert np.array_equal(y[y1 + 2 :], base[y1 + 2 :])  # nothing drawn below it
    assert abs(int(cb[y0 // 2 + 1, (x0 + x1) // 4]) - 128) < abs(int(before[1][0, 0]) - 128)  # greyer box


def _white(frame: np.ndarray) -> int:
    return int((frame > 200).sum())


def test_scene_video_is_drawn_once_and_encoded_once(make_env: Callable[..., Env], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN an image scene with a title and a title-card scene, captions on
    WHEN omad renders the video THEN exactly one ffmpeg encodes video: it reads omad's raw frames and burns
    the captions; the sound is normalised in-process and encoded once on its own and both are muxed by copying,
    nothing encoded twice;
    the title and the captions are in the published frames."""
    env = make_env(video={"preset": "custom", "width": W, "height": H, "fps": 15, "x264_preset": "ultrafast"})
    started: list[list[str]] = []
    real_spawn = omad.media.ffmpeg.spawn

    def _spawn(cmd: Any, **kw: Any) -> Any:
        started.append([str(a) for a in cmd])
        return real_spawn(cmd, **kw)

    monkeypatch.setattr(omad.media.ffmpeg, "spawn", _spawn)
    folder = tmp_path / "staging" / "noite"
    folder.mkdir(parents=True)
    Image.new("RGB", (640, 360), (20, 30, 70)).save(folder / "ceu.png")
    (folder / "brief.yaml").write_text(
        "version: 1\nkind: video\nscenes:\n"
        "  - image: ceu.png\n    title: Noite\n    motion: zoom_in\n    narration: \"Uma noite escura.\"\n"
        "  - title: Fim\n    narration: \"Até logo.\"\n",
        encoding="utf-8",
    )
    folder.rename(env.inbox / "noite")
    assert env.once(max_wait=120) == 0
    out = env.outbox / "noite.mp4"
    encoders = [c for c in started if "-c:v" in c]
    assert len(encoders) == 1, [" ".join(c) for c in encoders]
    argv = encoders[0]
    assert argv[argv.index("-f") + 1] == "rawvideo" and any(a.startswith("ass=") for a in argv)
    assert "-an" in argv or not any(a.startswith("-c:a") for a in argv)
    [sound] = [c for c in started if "aac" in c]
    assert sound[sound.index("-i") + 1].endswith("soundtrack.normalised.wav") and sound[-1].endswith("soundtrack.m4a")
    # The soundtrack's loudness is measured and reached in numpy (omad.media.r128): no loudnorm pass at 192 kHz.
    assert not any("loudnorm" in a for c in started for a in c), [c for c in started if "loudnorm" in " ".join(c)]
    [mux] = [c for c in started if c[-1].endswith("video.mp4")]
    assert mux[mux.index("-c") + 1] == "copy" and any(a.endswith("pictures.mp4") for a in mux)
    facts = next(s for s in env.sidecar("noite")["stages"] if s["name"] == "render")["facts"]
    assert facts["render"] == "one pass" and facts["encoder"] == "libx264"
    info = probe(out)
    video = info.video
    assert video is not None and info.audio is not None
    assert int(video["nb_frames"]) == facts["frames"]
    assert video.get("color_space") == "bt709"
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", "0.5", "-i", str(out), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout
    frame = np.frombuffer(raw, np.uint8).reshape(H, W)
    assert _white(frame[: H // 4]) > 30  # the on-screen title, top
    assert _white(frame[H * 3 // 4 :]) > 30  # the burned caption, bottom
    assert _white(frame[H // 3 : H * 2 // 3]) == 0  # the dark sky between them
    # The cover is drawn from the scene pictures already prepared (omad.media.cover): nothing decodes the video
    # again, and no second ffmpeg grabs a frame.
    assert not [c for c in started if any(a == "-i" and b.endswith("video.mp4") for a, b in itertools.pairwise(c))]
    cover = np.asarray(Image.open(env.outbox / "noite.jpg").convert("L"))
    assert cover.shape == (H, W) and facts["cover"]["scene"] == 0


def test_a_picture_that_breaks_mid_render_fails_the_job_naming_it(make_env: Callable[..., Env],
                                                                   tmp_path: Path) -> None:
    """GIVEN a second scene whose JPEG has a valid header but is cut short
    WHEN the one pass reaches it (the first scene already encoding) THEN the job fails as an input error
    naming that picture, and no half-made video is published."""
    env = make_env(video={"preset": "custom", "width": W, "height": H, "fps": 15, "x264_preset": "ultrafast"})
    folder = tmp_path / "staging" / "quebrada"
    folder.mkdir(parents=True)
    Image.new("RGB", (640, 360), (200, 120, 40)).save(folder / "boa.jpg")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)).save(folder / "ruim.jpg", quality=95)
    data = (folder / "ruim.jpg").read_bytes()
    (folder / "ruim.jpg").write_bytes(data[: len(data) // 2])
    _fails_as_input_naming(env, folder, "ruim.jpg", "version: 1\nkind: video\nscenes:\n"
                           "  - image: boa.jpg\n    narration: \"Primeira cena.\"\n"
                           "  - image: ruim.jpg\n    narration: \"Segunda cena.\"\n")


def _fails_as_input_naming(env: Env, folder: Path, named: str, brief: str) -> None:
    """``folder`` with ``brief`` dropped: the job fails as an input error naming ``named``; no video published."""
    (folder / "brief.yaml").write_text(brief, encoding="utf-8")
    folder.rename(env.inbox / folder.name)
    assert env.once(max_wait=120) == 1
    err = env.failed_error(folder.name)
    assert named in err["message"] and err["error"]["kind"] == "input", err
    assert not (env.outbox / f"{folder.name}.mp4").exists()


def test_a_sound_that_fails_during_the_encode_stops_the_drawing_and_fails_the_job_naming_it(
        make_env: Callable[..., Env], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN music that passes the up-front check but cannot be decoded when it is fitted (on the sound's
    thread, beside the picture encode) WHEN the video renders THEN the drawing stops early instead of
    encoding a video nothing can be muxed with, the job fails as an input error naming the music, and no
    video is published."""
    import omad.stages.video
    from omad.errors import InputError

    env = make_env(video={"preset": "custom", "width": W, "height": H, "fps": 15, "x264_preset": "ultrafast"})
    failed = threading.Event()

    def broken_fit(music: Path, *_a: Any, label: str, **_k: Any) -> Any:
        failed.set()
        raise InputError("could not be decoded past its first second. Drop a complete copy.", file=label)

    drawn: list[int] = []
    real_call = Timeline.__call__

    def counted(self: Timeline, n: int) -> Any:
        if n == 10:
            failed.wait(120)  # the sound has failed by now; from the next frames on, the drawing must stop
        drawn.append(n)
        return real_call(self, n)

    monkeypatch.setattr(omad.stages.video, "fit_track", broken_fit)
    monkeypatch.setattr(Timeline, "__call__", counted)
    folder = tmp_path / "staging" / "trilha"
    folder.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=330:duration=6", "-c:a",
                    "libmp3lame", str(folder / "musica.mp3")], check=True)
    _fails_as_input_naming(env, folder, "musica.mp3", "version: 1\nkind: video\nmusic: musica.mp3\nscenes:\n"
                           "  - title: Um\n    narration: \"Primeira cena, com música.\"\n"
                           "  - title: Dois\n    narration: \"Segunda cena, com música também.\"\n")
    # Frames up to the 11th at most (the drawing may run ahead until the failure is seen), of ~75.
    assert len(drawn) <= 11, f"{len(drawn)} frames drawn after the sound failed"
