"""Ken Burns clips and title cards, checked with real ffmpeg/ffprobe on small frames.

Smoothness is measured, not eyeballed: the test pattern is a soft bright dot
on a flat background, and the intensity-weighted centroid of the dot in each
decoded frame locates it to a few hundredths of a pixel. The same measure is
run on the naive renders (ffmpeg ``zoompan``, a whole-pixel ``crop``) to show
that it catches the ±0.5 px shake it is meant to catch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omad.errors import ConfigError, InputError, StageFailed, ToolTimeout
from omad.media.encoder import VideoOutput
from omad.media.ffmpeg import probe
from omad.media.ffmpeg_run import Ffmpeg
from omad.media.kenburns import MOVING_MOTIONS, Motion, pick_motion, render_still
from omad.media.titlecard import render_title_card

W, H, FPS, SECONDS = 320, 180, 30, 2.0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _render(image: Path, out: Path, *, width: int = W, crf: int = 16, x264_preset: str = "veryfast",
            timeout: float = 60.0, **overrides: object) -> dict[str, object]:
    options: dict[str, object] = {
        "seconds": SECONDS,
        "motion": "zoom_in",
        "fit": "cover",
        "zoom": 1.15,
        "seed": "seed",
        "label": image.name,
    }
    options.update(overrides)
    video = VideoOutput(width=width, height=H, fps=FPS, crf=crf, preset=x264_preset)
    return render_still(image, out, video=video, ff=Ffmpeg(timeout=timeout), **options)  # type: ignore[arg-type]


def _decode(path: Path, pix_fmt: str = "gray") -> np.ndarray:
    """All frames as (frames, height, width[, 3]) floats."""
    info = probe(path)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True,
        capture_output=True,
    ).stdout
    channels = 3 if pix_fmt == "rgb24" else 1
    frames = np.frombuffer(raw, np.uint8).astype(np.float32)
    shape = (-1, info.height, info.width) + ((3,) if channels == 3 else ())
    return frames.reshape(shape)


def _dot_centroids(frames: np.ndarray) -> np.ndarray:
    """(x, y) of the bright dot in each frame, in pixel units with (0, 0) the top-left corner."""
    out = []
    for f in frames:
        weight = np.clip(f - (np.median(f) + 30.0), 0.0, None)
        total = weight.sum()
        ys, xs = np.indices(f.shape)
        out.append(((weight * (xs + 0.5)).sum() / total, (weight * (ys + 0.5)).sum() / total))
    return np.array(out)


def _zoom_drift(centroids: np.ndarray) -> float:
    """Largest movement of the dot between consecutive frames (a centred zoom should not move it)."""
    return float(np.max(np.hypot(*np.diff(centroids, axis=0).T)))


def _pan_is_smooth(positions: np.ndarray) -> tuple[bool, str]:
    """The issue's criterion: steps all the same sign and none over 1.5x the median step."""
    steps = np.diff(positions)
    sign = np.sign(np.median(steps))
    if sign == 0 or not np.all(np.sign(steps) == sign):
        return False, f"not monotonic: steps {np.round(steps, 3).tolist()}"
    ratio = float(np.max(np.abs(steps)) / np.median(np.abs(steps)))
    return ratio <= 1.5, f"largest step {ratio:.2f}x the median"


@pytest.fixture(scope="module")
def dot_pattern(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16:9 grey card with a soft white dot at its exact centre."""
    w, h = 1280, 720
    ys, xs = np.indices((h, w), dtype=np.float32)
    dot = np.exp(-(((xs + 0.5 - w / 2) ** 2 + (ys + 0.5 - h / 2) ** 2) / (2 * 24.0**2)))
    pixels = (50 + 190 * dot).astype(np.uint8)
    path = tmp_path_factory.mktemp("pattern") / "dot.png"
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(path)
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.mark.parametrize("motion", ["zoom_in", "zoom_out"])
def test_centred_zoom_holds_the_centre_to_a_tenth_of_a_pixel(dot_pattern: Path, tmp_path: Path, motion: str) -> None:
    """GIVEN a dot at the picture's centre WHEN omad zooms THEN the dot moves < 0.1 px per frame."""
    out = tmp_path / "zoom.mp4"
    _render(dot_pattern, out, motion=motion)
    centroids = _dot_centroids(_decode(out))
    assert len(centroids) == round(SECONDS * FPS)
    assert _zoom_drift(centroids) < 0.1
    # And it stays where it belongs: the frame's centre.
    assert np.max(np.abs(centroids - [W / 2, H / 2])) < 0.1


def test_zoom_geometry_is_exact_before_lossy_coding(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN a lossless encode THEN the centre does not move at all: what drift remains above is x264's."""
    out = tmp_path / "lossless.mp4"
    _render(dot_pattern, out, motion="zoom_in", crf=0)
    assert _zoom_drift(_dot_centroids(_decode(out))) < 0.01


def test_naive_zoompan_fails_the_zoom_criterion(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN the same zoom done with ffmpeg's zoompan THEN the measure sees it shake (so it can fail)."""
    out = tmp_path / "zoompan.mp4"
    frames = round(SECONDS * FPS)
    _ffmpeg(
        "-loop", "1", "-framerate", str(FPS), "-i", str(dot_pattern),
        "-vf", f"scale={W}:{H},zoompan=z='pow(1.15,on/{frames - 1})':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2'"
        f":d=1:s={W}x{H}:fps={FPS},format=yuv420p",
        "-frames:v", str(frames), "-c:v", "libx264", "-crf", "16", str(out),
    )  # fmt: skip
    assert _zoom_drift(_dot_centroids(_decode(out))) > 0.25


@pytest.mark.parametrize(("motion", "axis", "direction"), [("pan_right", 0, -1), ("pan_left", 0, 1), ("pan_up", 1, 1)])
def test_pan_moves_by_even_steps(dot_pattern: Path, tmp_path: Path, motion: str, axis: int, direction: int) -> None:
    """GIVEN a pan WHEN the dot is tracked THEN it moves one way with no step over 1.5x the median."""
    out = tmp_path / "pan.mp4"
    _render(dot_pattern, out, motion=motion)
    positions = _dot_centroids(_decode(out))[:, axis]
    smooth, why = _pan_is_smooth(positions)
    assert smooth, why
    # pan_right moves the view right, so the picture (and the dot) slides left.
    assert np.sign(positions[-1] - positions[0]) == direction
    travel = (W if axis == 0 else H) * 0.15
    assert abs(positions[-1] - positions[0]) == pytest.approx(travel, rel=0.03)


def test_whole_pixel_crop_fails_the_pan_criterion(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN the same pan done with a whole-pixel crop THEN the measure rejects it."""
    out = tmp_path / "crop.mp4"
    frames = round(SECONDS * FPS)
    cw, ch = round(W * 1.15), round(H * 1.15)
    _ffmpeg(
        "-loop", "1", "-framerate", str(FPS), "-i", str(dot_pattern),
        "-vf", f"scale={cw}:{ch},crop={W}:{H}:x='{cw - W}*n/{frames - 1}':y={(ch - H) // 2},format=yuv420p",
        "-frames:v", str(frames), "-c:v", "libx264", "-crf", "16", str(out),
    )  # fmt: skip
    smooth, _ = _pan_is_smooth(_dot_centroids(_decode(out))[:, 0])
    assert not smooth


def test_output_format_is_exact(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN 1.7 s at 30 fps WHEN rendered THEN H.264 yuv420p, exact size, 51 frames, moov up front."""
    out = tmp_path / "clip.mp4"
    facts = _render(dot_pattern, out, seconds=1.7, motion="pan_down")
    info = probe(out)
    video = info.video
    assert video is not None
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    assert int(video["nb_frames"]) == 51 == facts["frames"]
    assert info.duration == pytest.approx(1.7, abs=0.02)
    assert info.audio is None
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head
    assert not list(tmp_path.glob(".*part*"))


def test_audio_sets_the_length_and_is_muxed_as_aac(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN an image and a 1.3 s voice WHEN rendered with it THEN the clip lasts 1.3 s with AAC audio."""
    wav = tmp_path / "voice.wav"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1.3", "-ac", "1", "-ar", "22050", str(wav))
    out = tmp_path / "with_audio.mp4"
    facts = _render(dot_pattern, out, seconds=1.3, audio=wav)
    info = probe(out)
    assert info.audio is not None and info.audio["codec_name"] == "aac"
    assert facts["frames"] == 39
    assert float(info.video["duration"]) == pytest.approx(1.3, abs=0.034)  # type: ignore[index]
    assert float(info.audio["duration"]) == pytest.approx(1.3, abs=0.05)


def _bands_image(path: Path, size: tuple[int, int]) -> None:
    """Red middle, blue bands at the top and bottom 10%, green bands at the left and right 5%."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (220, 30, 30)
    img[: h // 10] = img[h - h // 10 :] = (30, 30, 220)
    img[:, : w // 20] = img[:, w - w // 20 :] = (30, 200, 30)
    Image.fromarray(img).save(path, quality=95)


def _first_frame_rgb(path: Path) -> np.ndarray:
    return np.asarray(_decode(path, "rgb24")[0])


@pytest.mark.parametrize("size", [(800, 600), (450, 800)], ids=["4:3", "portrait"])
def test_cover_fills_the_frame_and_fit_shows_it_whole_on_a_dark_blur(tmp_path: Path, size: tuple[int, int]) -> None:
    """GIVEN a 4:3 or portrait picture WHEN cover THEN it fills the frame; WHEN fit THEN it is whole on a backdrop."""
    image = tmp_path / "bands.jpg"
    _bands_image(image, size)
    cover, fit = tmp_path / "cover.mp4", tmp_path / "fit.mp4"
    _render(image, cover, motion="none", fit="cover", seconds=0.2)
    _render(image, fit, motion="none", fit="fit", seconds=0.2)
    c, f = _first_frame_rgb(cover), _first_frame_rgb(fit)
    assert c.shape == f.shape == (H, W, 3)
    # Cover: the top of the frame is cropped away (no blue), and the centre is the red middle.
    assert c[2, W // 2, 2] < 100 and c[2, W // 2, 0] > 150
    # Fit: the blue top band is visible at the top centre...
    assert f[3, W // 2, 2] > 150
    # ...and the sides are the darkened blur, well below the picture's brightness.
    side = f[:, :6].mean()
    assert side < 0.6 * f[H // 3 : 2 * H // 3, W // 2 - 10 : W // 2 + 10].mean()
    assert side > 3  # a blurred copy, not black bars


def test_exif_rotated_photo_comes_out_upright(tmp_path: Path) -> None:
    """GIVEN a phone JPEG stored sideways with EXIF orientation 6 THEN the clip is upright: red on top."""
    upright = np.zeros((360, 640, 3), np.uint8)
    upright[:180] = (220, 30, 30)
    upright[180:] = (30, 30, 220)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = tmp_path / "phone.jpg"
    stored.save(image, exif=exif, quality=95)
    out = tmp_path / "phone.mp4"
    facts = _render(image, out, motion="none", seconds=0.2)
    frame = _first_frame_rgb(out)
    assert facts["orientation_applied"] is True and facts["source_size"] == [640, 360]
    assert frame[10, W // 2, 0] > 150 and frame[10, W // 2, 2] < 100
    assert frame[H - 10, W // 2, 2] > 150 and frame[H - 10, W // 2, 0] < 100


def test_a_text_file_named_jpg_is_refused_with_its_name(tmp_path: Path) -> None:
    """GIVEN notes saved as holiday.jpg WHEN rendered THEN an InputError names the file and says what to drop."""
    fake = tmp_path / "holiday.jpg"
    fake.write_text("these are my notes, not a picture\n")
    with pytest.raises(InputError) as info:
        _render(fake, tmp_path / "out.mp4")
    assert "holiday.jpg" in str(info.value)
    assert "is not an image omad can read" in str(info.value) and "JPEG/PNG/WebP" in str(info.value)
    assert not (tmp_path / "out.mp4").exists()


def test_auto_picks_a_motion_from_the_content_hash(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN motion auto THEN the seed decides, the same seed always picks the same, and all six occur."""
    picked = {pick_motion(f"{i:064x}") for i in range(60)}
    assert picked == set(MOVING_MOTIONS)
    assert pick_motion("abc") is pick_motion("abc")
    facts = _render(dot_pattern, tmp_path / "auto.mp4", motion="auto", seed="abc", seconds=0.2)
    assert facts["motion"] == pick_motion("abc").value and facts["motion_requested"] == "auto"


def test_bad_options_are_config_errors(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN an unknown motion or an odd frame size THEN a ConfigError says what is allowed."""
    with pytest.raises(ConfigError, match="zoom_in"):
        _render(dot_pattern, tmp_path / "a.mp4", motion="spin")
    with pytest.raises(ConfigError, match="even"):
        _render(dot_pattern, tmp_path / "b.mp4", width=321)
    assert Motion("pan_up") is Motion.PAN_UP


def test_an_encoder_failure_is_mapped_and_leaves_no_file(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN an x264 preset that does not exist THEN ffmpeg's failure comes back as StageFailed, not a hang."""
    out = tmp_path / "bad.mp4"
    with pytest.raises(StageFailed):
        _render(dot_pattern, out, x264_preset="warp-speed")
    assert not out.exists() and not list(tmp_path.glob(".*part*"))


def test_a_render_past_its_timeout_is_stopped(dot_pattern: Path, tmp_path: Path) -> None:
    """GIVEN a 10-minute clip and a 1 s timeout THEN ffmpeg is killed and ToolTimeout raised."""
    out = tmp_path / "long.mp4"
    with pytest.raises(ToolTimeout):
        _render(dot_pattern, out, seconds=600.0, timeout=1.0)
    assert not out.exists()


def test_title_card_sets_portuguese_text_in_a_real_font(tmp_path: Path) -> None:
    """GIVEN "Ação, informação e coração" WHEN a card is rendered THEN the text is drawn, centred, inside 80%."""
    out = tmp_path / "card.mp4"
    facts = render_title_card(
        "Ação, informação e coração",
        out,
        video=VideoOutput(width=W, height=H, fps=FPS, crf=16, preset="veryfast"),
        seconds=1.0,
        background="#1d2b53",
        font_file=FONT,
        ff=Ffmpeg(timeout=60.0),
        label="scene 1",
    )
    info = probe(out)
    assert (info.width, info.height) == (W, H) and int(info.video["nb_frames"]) == 30  # type: ignore[index]
    title = facts["title"]
    assert isinstance(title, dict)
    assert "".join(title["lines"]).replace(" ", "") == "Ação,informaçãoecoração"
    first = _decode(out)[0]
    ink = np.argwhere(first > 200)
    assert first.std() > 10 and len(ink) > 200
    left, right = ink[:, 1].min(), ink[:, 1].max()
    assert left >= 0.08 * W and right <= 0.92 * W
    assert abs((left + right) / 2 - W / 2) < 0.05 * W


def test_title_card_with_a_bad_colour_is_an_input_error(tmp_path: Path) -> None:
    """GIVEN a brief whose title background is not a colour THEN the error says to use #RRGGBB."""
    with pytest.raises(InputError, match="#RRGGBB"):
        render_title_card(
            "Olá", tmp_path / "c.mp4", video=VideoOutput(width=W, height=H, fps=FPS, crf=16, preset="veryfast"),
            seconds=0.5, background="blurple", font_file=FONT, ff=Ffmpeg(timeout=60.0), label="brief.yaml",
        )  # fmt: skip


@pytest.mark.slow
def test_a_50_megapixel_photo_renders_in_under_1_gb(tmp_path: Path) -> None:
    """GIVEN an 8660x5774 JPEG WHEN a 1080p clip is made THEN omad and ffmpeg together stay under ~1 GB."""
    big = tmp_path / "big.jpg"
    ys = np.linspace(0, 255, 5774, dtype=np.float32)[:, None]
    xs = np.linspace(0, 255, 8660, dtype=np.float32)[None, :]
    rgb = np.empty((5774, 8660, 3), np.uint8)
    rgb[..., 0] = xs.astype(np.uint8)
    rgb[..., 1] = ys.astype(np.uint8)
    rgb[..., 2] = ((xs + ys) / 2).astype(np.uint8)
    Image.fromarray(rgb).save(big, quality=85)
    del rgb
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from omad.media.encoder import VideoOutput
        from omad.media.ffmpeg_run import Ffmpeg
        from omad.media.kenburns import render_still
        facts = render_still(Path({str(big)!r}), Path({str(tmp_path / "big.mp4")!r}),
            video=VideoOutput(width=1920, height=1080, fps=30, crf=20, preset="veryfast"), seconds=1.0,
            motion="zoom_in", fit="cover", zoom=1.15, seed="s", ff=Ffmpeg(timeout=120), label="big.jpg")
        print(json.dumps({{"decoded": facts["decoded_size"]}}))
        """
    )
    # Sampled from outside: ru_maxrss would count the pytest process's own peak, which a
    # forked child inherits at exec.
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    peak_kb = 0
    while True:  # sampled every 20 ms until the child exits
        peak_kb = max(peak_kb, _tree_rss_kb(child.pid))
        try:
            out, _ = child.communicate(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            continue
    assert child.returncode == 0
    decoded = json.loads(out.strip().splitlines()[-1])["decoded"]
    assert 100 * 1024 < peak_kb < 1024 * 1024, f"peak RSS of omad + ffmpeg: {peak_kb} kB"
    assert decoded[0] < 8660  # decoded at reduced size, never whole


def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants now, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total


def _sharpness(luma: np.ndarray) -> float:
    y = luma.astype(np.float32)
    return float(np.mean(np.diff(y, axis=1) ** 2) + np.mean(np.diff(y, axis=0) ** 2))


def _pulsing(values: list[float]) -> float:
    """Largest departure of per-frame sharpness from its smooth trend, as a share of the mean.

    A zoom's sharpness drifts as the magnification changes; that trend is
    taken out (a quadratic fit), what is left is the frame-to-frame pulsing.
    """
    s = np.array(values)
    x = np.arange(len(s))
    trend = np.polyval(np.polyfit(x, s, 2), x)
    return float(np.max(np.abs(s - trend)) / s.mean())


def _noise_frames(oversample: float, motion: Motion) -> list[float]:
    """Per-frame sharpness of a move over pure noise (the worst case for aliasing) drawn as omad draws it."""
    from omad.media.kenburns import StillFrames, _cv2, _planes, _prefilter

    zoom = 1.15
    cw, ch = 2 * round(W * zoom * oversample / 2), 2 * round(H * zoom * oversample / 2)
    noise = np.random.default_rng(7).integers(0, 256, (ch, cw), dtype=np.uint8)
    planes = _planes(Image.fromarray(np.stack([noise] * 3, axis=-1)))
    cv2 = _cv2()
    planes = (_prefilter(cv2, planes[0]), _prefilter(cv2, planes[1]), _prefilter(cv2, planes[2]))
    frames = StillFrames(planes, motion, zoom, W, H, 60)
    return [_sharpness(frames(i)[0]) for i in range(60)]


@pytest.mark.parametrize("motion", [Motion.PAN_RIGHT, Motion.PAN_DOWN, Motion.ZOOM_IN])
def test_sharpness_does_not_pulse_as_the_window_moves(motion: Motion) -> None:
    """GIVEN fine detail WHEN omad pans or zooms over it THEN each frame is as sharp as its neighbours (< 5 %)."""
    from omad.media.kenburns import OVERSAMPLE

    assert _pulsing(_noise_frames(OVERSAMPLE, motion)) < 0.05


def test_the_pulsing_measure_catches_a_pan_without_oversample() -> None:
    """GIVEN the same pan drawn from a canvas with no oversample THEN the measure sees the sharpness pulse."""
    assert _pulsing(_noise_frames(1.0, Motion.PAN_RIGHT)) > 0.3


def test_colour_is_bt709_limited_range_and_tagged(tmp_path: Path) -> None:
    """GIVEN a flat orange-red picture THEN the clip's Y'CbCr values are BT.709 limited range, and tagged so."""
    rgb = (200, 80, 40)
    image = tmp_path / "flat.png"
    Image.new("RGB", (640, 360), rgb).save(image)
    out = tmp_path / "flat.mp4"
    _render(image, out, motion="zoom_in", seconds=0.2)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "yuv420p", "-"], check=True, capture_output=True).stdout
    y = np.frombuffer(raw[: W * H], np.uint8).reshape(H, W)
    cb = np.frombuffer(raw[W * H : W * H * 5 // 4], np.uint8).reshape(H // 2, W // 2)
    cr = np.frombuffer(raw[W * H * 5 // 4 :], np.uint8).reshape(H // 2, W // 2)
    got = np.array([np.median(y), np.median(cb), np.median(cr)])

    def expected(kr: float, kb: float) -> np.ndarray:
        r, g, b = (c / 255.0 for c in rgb)
        luma = kr * r + (1 - kr - kb) * g + kb * b
        return np.array([16 + 219 * luma, 128 + 224 * (b - luma) / (2 * (1 - kb)),
                         128 + 224 * (r - luma) / (2 * (1 - kr))])

    assert np.max(np.abs(got - expected(0.2126, 0.0722))) <= 1.5, got
    assert np.max(np.abs(got - expected(0.299, 0.114))) > 4  # BT.601 would be told apart
    video = probe(out).video
    assert video is not None
    assert (video.get("color_space"), video.get("color_primaries"), video.get("color_transfer"),
            video.get("color_range")) == ("bt709", "bt709", "bt709", "tv")
