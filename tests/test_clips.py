"""Video clips as scenes: trimmed from clip_start or looped, cropped (cover) or letterboxed (fit), muted or ducked,
drawn into the same one-pass render as stills; a clip that is not a video is refused before anything is encoded."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Env, ffmpeg, make_video

from omad.brief import parse_brief
from omad.errors import InputError
from omad.media.clips import ClipFrames, check_clip, frame_geometry
from omad.media.ffmpeg import probe

W, H = 320, 180
FPS = 10
VIDEO = {"preset": "custom", "width": W, "height": H, "fps": FPS, "x264_preset": "ultrafast"}


def _ramp(path: Path, seconds: float = 2.0, size: str = "64x48", rate: int = 10) -> Path:
    """A lossless clip whose frame N is a flat grey of luma 20 + 10 N: a frame's value says which one it is."""
    ffmpeg("-f", "lavfi", "-i", f"color=c=black:s={size}:r={rate}:d={seconds},format=yuv420p,"
           "geq=lum='20+10*N':cb=128:cr=128", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(path))
    return path


def _frame_numbers(frames: ClipFrames, count: int) -> list[int]:
    return [round((float(frames(i)[0].mean()) - 20) / 10) for i in range(count)]


def test_a_clip_longer_than_its_scene_is_trimmed_from_clip_start(tmp_path: Path) -> None:
    """GIVEN a 2 s clip at 10 fps and a 1 s scene from 0.5 s THEN the scene shows source frames 5 to 14, in order."""
    clip = _ramp(tmp_path / "ramp.mp4")
    info = check_clip(clip, "b.yaml", "scenes[0].clip", start=0.5, max_seconds=60, max_megapixels=10)
    assert (info.width, info.height, info.duration) == (64, 48, pytest.approx(2.0, abs=0.05))
    assert info.plan(0.5, 1.0) == {"clip_seconds": 2.0, "clip_start": 0.5, "looped": False, "trimmed": True}
    frames = ClipFrames(info, width=64, height=36, fps=10, count=10, start=0.5, fit="cover", label="b.yaml")
    try:
        assert _frame_numbers(frames, 10) == list(range(5, 15))
        assert frames.passes == 1
    finally:
        frames.close()


def test_a_clip_shorter_than_its_scene_loops_from_its_beginning(tmp_path: Path) -> None:
    """GIVEN a 2 s clip, a 3 s scene from 0.5 s THEN frames 5..19 play, then the clip again from frame 0."""
    clip = _ramp(tmp_path / "ramp.mp4")
    info = check_clip(clip, "b.yaml", "k", start=0.5, max_seconds=60, max_megapixels=10)
    assert info.plan(0.5, 3.0)["looped"] is True
    frames = ClipFrames(info, width=64, height=36, fps=10, count=30, start=0.5, fit="cover", label="b.yaml")
    try:
        assert _frame_numbers(frames, 30) == [*range(5, 20), *range(0, 15)]
        assert frames.passes == 2
    finally:
        frames.close()


def test_a_slower_clip_repeats_frames_to_the_output_rate(tmp_path: Path) -> None:
    """GIVEN a 10 fps clip in a 25 fps output THEN each source frame is shown for 2 or 3 output frames, on time."""
    clip = _ramp(tmp_path / "ramp.mp4")
    info = check_clip(clip, "b.yaml", "k", start=0.0, max_seconds=60, max_megapixels=10)
    frames = ClipFrames(info, width=64, height=48, fps=25, count=25, start=0.0, fit="cover", label="b.yaml")
    try:
        shown = _frame_numbers(frames, 25)
    finally:
        frames.close()
    assert shown == sorted(shown)
    assert shown[0] == 0 and shown[-1] == 9 and sorted(set(shown)) == list(range(10))
    # Output frame i (at i/25 s) shows the source frame on screen then (within half an output frame).
    assert all(n / 10 - 0.5 / 25 <= i / 25 < (n + 1) / 10 for i, n in enumerate(shown)), shown


def test_cover_crops_and_fit_letterboxes_a_portrait_clip(tmp_path: Path) -> None:
    """GIVEN a portrait (120x160) white clip in a landscape 320x180 frame
    THEN cover fills the frame with it, fit shows it centred between black bars (Y' 16, neutral chroma)."""
    clip = tmp_path / "retrato.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=white:s=120x160:r=10:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(clip))
    info = check_clip(clip, "b.yaml", "k", start=0.0, max_seconds=60, max_megapixels=10)
    cover = ClipFrames(info, width=W, height=H, fps=10, count=5, start=0.0, fit="cover", label="b.yaml")
    fit = ClipFrames(info, width=W, height=H, fps=10, count=5, start=0.0, fit="fit", label="b.yaml")
    try:
        y, cb, cr = cover(2)
        assert y.shape == (H, W) and cb.shape == cr.shape == (H // 2, W // 2)
        assert y.min() > 200
        y, cb, cr = fit(2)
    finally:
        cover.close()
        fit.close()
    sw, sh, x, _ = frame_geometry(120, 160, W, H, "fit")
    assert (sw, sh) == (136, 180) and x == 92
    assert y[:, : x - 1].max() == 16 and y[:, x + sw + 1 :].max() == 16  # the bars
    assert y[:, x + 2 : x + sw - 2].min() > 200  # the picture
    assert abs(int(cb[:, :10].mean()) - 128) <= 1 and abs(int(cr[:, -10:].mean()) - 128) <= 1


def test_a_phone_clip_is_turned_upright_as_ffmpeg_turns_it(tmp_path: Path) -> None:
    """GIVEN a 160x90 clip (white strip on its left) stored with a 90 degree display rotation
    THEN omad sees it 90x160 and draws the strip where ffmpeg's own autorotate puts it (the bottom)."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="writing a display rotation needs ffmpeg 6+")
    plain = tmp_path / "plain.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=10:d=1,drawbox=x=0:y=0:w=40:h=90:color=white:t=fill",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain))
    clip = tmp_path / "celular.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", str(clip)], check=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout
    upright = np.frombuffer(raw, np.uint8).reshape(160, 90)
    assert upright[-10:].mean() > 200 and upright[:10].mean() < 20  # ffmpeg: the strip at the bottom
    info = check_clip(clip, "b.yaml", "k", start=0.0, max_seconds=60, max_megapixels=10)
    assert (info.width, info.height, info.rotation) == (90, 160, 90)
    frames = ClipFrames(info, width=90, height=160, fps=10, count=2, start=0.0, fit="fit", label="b.yaml")
    try:
        y = frames(0)[0]
    finally:
        frames.close()
    assert y[-10:].mean() > 200 and y[:10].mean() < 30


def test_a_clip_without_a_video_stream_is_refused_naming_the_scene(tmp_path: Path) -> None:
    """GIVEN a scene whose clip is a sound file THEN an input error names scenes[1].clip and says what to name."""
    sound = tmp_path / "so_som.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac", str(sound))
    with pytest.raises(InputError, match=r"'scenes\[1\]\.clip' \('so_som\.m4a'\) has no video stream") as err:
        check_clip(sound, "brief.yaml", "scenes[1].clip", start=0.0, max_seconds=60, max_megapixels=10)
    assert str(err.value).startswith("brief.yaml: ")
    clip = _ramp(tmp_path / "ramp.mp4")
    with pytest.raises(InputError, match=r"past its end"):
        check_clip(clip, "brief.yaml", "scenes[0].clip", start=5.0, max_seconds=60, max_megapixels=10)
    with pytest.raises(InputError, match=r"intake\.max_clip_seconds"):
        check_clip(clip, "brief.yaml", "scenes[0].clip", start=0.0, max_seconds=1.0, max_megapixels=10)


def test_a_scene_with_both_an_image_and_a_clip_is_refused() -> None:
    with pytest.raises(InputError, match=r"scenes\.1.*both an image \('a\.png'\) and a clip \('b\.mp4'\)"):
        parse_brief({"kind": "video", "scenes": [{"narration": "x"}, {"image": "a.png", "clip": "b.mp4"}]}, "v.yaml")


# -- through the daemon's real render ---------------------------------------------------------------------------


def _gray_frame(video: Path, at: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W)


def _rms_db(video: Path, start: float, seconds: float) -> float:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{start:.3f}", "-t", f"{seconds:.3f}", "-i", str(video),
                          "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-"], check=True, capture_output=True).stdout
    samples = np.frombuffer(raw, np.int16).astype(np.float64) / 32768.0
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-9))


def _bundle(env: Env, tmp_path: Path, name: str, brief: str, files: dict[str, Callable[[Path], object]]) -> None:
    folder = tmp_path / "staging" / name
    folder.mkdir(parents=True)
    for file, make in files.items():
        make(folder / file)
    (folder / "brief.yaml").write_text(brief, encoding="utf-8")
    folder.rename(env.inbox / name)


@pytest.mark.slow
def test_clip_scenes_render_in_the_one_pass(make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN a bundle with a 4 s clip trimmed from 0.5 s to a 3 s (silent) scene, a 1 s clip looped over 3.5 s,
    a portrait clip letterboxed (fit) with a title over it, and a title card
    WHEN omad renders it THEN the video has every frame the timeline says, the clips' frames are where they
    should be (black bars beside the portrait clip), and the sidecar records each clip scene."""
    env = make_env(video=VIDEO, scenes={"crossfade_seconds": 0.2})
    _bundle(env, tmp_path, "clipes", (
        "version: 1\nkind: video\nscenes:\n"
        "  - clip: longo.mp4\n    clip_start: 0.5\n"
        "  - clip: curto.mp4\n    duration: 3.5\n"
        "  - clip: retrato.mp4\n    fit: fit\n    title: Retrato\n"
        "  - title: Fim\n    narration: \"Até logo.\"\n"
    ), {
        "longo.mp4": lambda p: make_video(p, seconds=4.0, size="320x180", rate=25),
        "curto.mp4": lambda p: _ramp(p, seconds=1.0, size="160x90"),
        "retrato.mp4": lambda p: ffmpeg("-f", "lavfi", "-i", "color=c=white:s=120x160:r=10:d=1", "-c:v", "libx264",
                                        "-pix_fmt", "yuv420p", str(p)),
    })
    assert env.once(max_wait=120) == 0, json.dumps(json.loads(
        next((env.outbox / "failed").rglob("error.json")).read_text()) if (env.outbox / "failed").exists() else {})
    out = env.outbox / "clipes.mp4"
    facts = next(st for st in env.sidecar("clipes")["stages"] if st["name"] == "render")["facts"]
    scenes = facts["scenes"]
    assert [s["kind"] for s in scenes] == ["clip", "clip", "clip", "title"]
    assert scenes[0]["trimmed"] and not scenes[0]["looped"] and scenes[0]["seconds"] == 3.0
    assert scenes[0]["clip_start"] == 0.5 and scenes[0]["fit"] == "cover" and scenes[0]["clip_audio"] == "mute"
    assert scenes[1]["looped"] and not scenes[1]["trimmed"] and scenes[1]["seconds"] == 3.5
    assert scenes[2]["fit"] == "fit" and scenes[2]["clip_size"] == [120, 160]
    info = probe(out)
    assert info.video is not None and int(info.video["nb_frames"]) == facts["frames"]
    assert (info.width, info.height) == (W, H)
    assert info.duration == pytest.approx(facts["seconds"], abs=0.1)
    # The looped 1 s ramp: scene 2's frames 3, 9, 10, 13 show ramp frames 3, 9, 0 (the loop), 3 again.
    start2 = scenes[0]["seconds"] - facts["crossfade_seconds"]
    lumas = [float(_gray_frame(out, start2 + (k - 0.5) / FPS).mean()) for k in (3, 9, 10, 13)]
    # (ffmpeg's gray output is full range: ramp frame n reads about (20 + 10 n - 16) x 255 / 219.)
    assert lumas[2] < 10 and 30 < lumas[0] < 50 and lumas[1] > 100 and abs(lumas[3] - lumas[0]) < 3, lumas
    # The portrait clip letterboxed: black bars left and right, white in the middle, the title on top.
    start3 = start2 + scenes[1]["seconds"] - facts["crossfade_seconds"]
    frame = _gray_frame(out, start3 + 0.7)
    assert frame[H // 2 :, :60].max() < 40 and frame[H // 2 :, -60:].max() < 40
    assert frame[H // 2 :, W // 2 - 40 : W // 2 + 40].min() > 200
    assert frame[: H // 4, W // 2 - 40 : W // 2 + 40].min() < 150  # the title's dark box over the white clip


@pytest.mark.slow
def test_a_ducked_clip_is_heard_where_the_narration_is_silent_and_a_muted_one_is_not(
        make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN two bundles alike but for clip_audio (duck, mute) on a silent scene showing a clip with a tone
    THEN the ducked video has the tone there (at about scenes.clip_audio_db under full scale), the muted one
    has silence there, and both keep the narration of the next scene."""
    env = make_env(video=VIDEO, scenes={"crossfade_seconds": 0.0, "clip_audio_db": -12.0})
    for name, mode in (("com_som", "duck"), ("sem_som", "mute")):
        _bundle(env, tmp_path, name, (
            "version: 1\nkind: video\ncaptions: false\nscenes:\n"
            f"  - clip: tom.mp4\n    clip_audio: {mode}\n"
            "  - title: Depois\n    narration: \"Uma frase dita.\"\n"
        ), {"tom.mp4": lambda p: make_video(p, seconds=3.0, size="160x90", rate=10)})
    assert env.once(max_wait=150) == 0
    ducked = env.outbox / "com_som.mp4"
    muted = env.outbox / "sem_som.mp4"
    assert next(st for st in env.sidecar("com_som")["stages"] if st["name"] == "render")["facts"]["clips_ducked"] == 1
    assert next(st for st in env.sidecar("sem_som")["stages"] if st["name"] == "render")["facts"]["clips_ducked"] == 0
    assert _rms_db(ducked, 0.3, 2.4) > -40
    assert _rms_db(muted, 0.3, 2.4) < -70
    assert _rms_db(muted, 3.2, 0.8) > -40  # the narration is there


def test_a_bundle_whose_clip_has_no_picture_fails_before_encoding(make_env: Callable[..., Env],
                                                                  tmp_path: Path) -> None:
    """GIVEN a scene whose clip is a sound file THEN the job fails as an input error naming scenes[0].clip."""
    env = make_env(video=VIDEO)
    _bundle(env, tmp_path, "sem_video", (
        "version: 1\nkind: video\nscenes:\n  - clip: musica.m4a\n    narration: \"Oi.\"\n"
    ), {"musica.m4a": lambda p: ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac", str(p))})
    assert env.once(max_wait=60) == 1
    err = env.failed_error("sem_video")
    assert err["error"]["kind"] == "input"
    assert "'scenes[0].clip' ('musica.m4a') has no video stream" in err["message"]
    assert not (env.outbox / "sem_video.mp4").exists()
