"""Every format from one job: landscape, vertical and square from the same voice and pictures, framed on the subject."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Env
from PIL import Image
from skimage import data as skdata

from omad.brief import parse_brief
from omad.errors import InputError
from omad.media.ffmpeg import probe
from omad.media.framing import Subject, centering, detect_faces, find_subject

CANVAS = (1600, 900)


def _astronaut_right(path: Path | None = None) -> Image.Image:
    """scikit-image's astronaut photo (it ships inside the wheel) on the right of a wide, plain canvas."""
    canvas = Image.new("RGB", CANVAS, (70, 90, 120))
    canvas.paste(Image.fromarray(skdata.astronaut()).resize((420, 420)), (1130, 260))
    if path is not None:
        canvas.save(path)
    return canvas


def _crop_box(size: tuple[int, int], frame: tuple[int, int], centre: tuple[float, float]) -> tuple[float, float]:
    """The horizontal span (fractions) that ImageOps.fit keeps for ``centre``."""
    w, h = size
    crop_w = min(w, h * frame[0] / frame[1])
    left = centre[0] * (w - crop_w)
    return left / w, (left + crop_w) / w


def test_the_face_detector_finds_an_off_centre_face() -> None:
    """GIVEN a photo with one face on the right of a wide canvas WHEN omad looks for its subject
    THEN it finds that face (from the cascade inside the scikit-image wheel)."""
    subject = find_subject(_astronaut_right())
    assert subject.method == "faces" and subject.faces == 1
    cx, cy = subject.centre
    assert 0.78 < cx < 0.90 and 0.3 < cy < 0.5, subject


def test_a_vertical_crop_keeps_the_face_a_centred_crop_would_cut() -> None:
    """GIVEN the off-centre face WHEN it is cropped for 9:16 and 1:1 THEN the face is inside the kept window,
    where a centred crop would have cut it away."""
    img = _astronaut_right()
    subject = find_subject(img)
    face_left, _, face_right, _ = subject.face_boxes[0]
    for frame in ((1080, 1920), (1080, 1080)):
        left, right = _crop_box(img.size, frame, centering(subject, img.size, frame))
        assert left <= face_left and face_right <= right, (frame, left, right)
        c_left, c_right = _crop_box(img.size, frame, (0.5, 0.5))
        assert face_right > c_right  # the centre crop loses it: this test can fail
    # A landscape frame of a landscape picture has nothing to crop: centred.
    assert centering(subject, img.size, (1600, 900)) == (0.5, 0.5)


def test_without_a_face_the_salient_region_leads() -> None:
    """GIVEN a dark picture with one bright, detailed patch on the left WHEN no face is found
    THEN the spectral-residual saliency puts the subject on that patch; a flat picture stays centred."""
    rng = np.random.default_rng(1)
    pixels = np.full((900, 1600, 3), 30, np.uint8)
    pixels[350:550, 150:350] = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    subject = find_subject(Image.fromarray(pixels))
    assert subject.method == "saliency" and subject.centre[0] < 0.3, subject
    assert find_subject(Image.new("RGB", (800, 450), (40, 40, 40))).method == "centre"
    assert detect_faces(Image.new("RGB", (10, 10))) == []


def test_centering_slides_the_window_back_inside_the_picture() -> None:
    subject = Subject((0.97, 0.4, 0.99, 0.5), "saliency")
    assert centering(subject, (1600, 900), (1080, 1920)) == (1.0, 0.5)
    assert centering(Subject((0.01, 0.4, 0.03, 0.5), "saliency"), (1600, 900), (1080, 1920)) == (0.0, 0.5)


def test_a_brief_names_each_format_once() -> None:
    brief = parse_brief({"kind": "video", "formats": ["vertical", "landscape"], "scenes": [{"title": "a"}]}, "b")
    assert brief.frame_shapes() == ["vertical", "landscape"]  # type: ignore[union-attr]
    with pytest.raises(InputError, match="names a format twice"):
        parse_brief({"kind": "video", "formats": ["square", "square"], "scenes": [{"title": "a"}]}, "b.yaml")
    with pytest.raises(InputError, match="formats"):
        parse_brief({"kind": "video", "formats": ["cinema"], "scenes": [{"title": "a"}]}, "b.yaml")


def _frame(path: Path, at: float, w: int, h: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at}", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


@pytest.mark.slow
def test_three_formats_come_from_one_job_with_the_face_in_frame(make_env: Callable[..., Env],
                                                                tmp_path: Path) -> None:
    """GIVEN a video brief with formats [landscape, vertical, square] and a photo whose face is off-centre
    WHEN omad renders it THEN X.mp4 (landscape), X.vertical.mp4 and X.square.mp4 are published with a cover
    each, all as long as the one narration, the sidecar lists them, and the face is in every frame."""
    env = make_env(video={"long_side": 480, "fps": 10, "x264_preset": "ultrafast"})
    folder = tmp_path / "staging" / "astro"
    folder.mkdir(parents=True)
    _astronaut_right(folder / "foto.png")
    (folder / "brief.yaml").write_text(
        "version: 1\nkind: video\nformats: [landscape, vertical, square]\nscenes:\n"
        "  - image: foto.png\n    title: Astronauta\n    motion: none\n    narration: \"Uma foto no espaço.\"\n",
        encoding="utf-8",
    )
    folder.rename(env.inbox / "astro")
    assert env.once(max_wait=240) == 0
    sizes = {"astro.mp4": (480, 270), "astro.vertical.mp4": (270, 480), "astro.square.mp4": (270, 270)}
    durations = set()
    for name, (w, h) in sizes.items():
        info = probe(env.outbox / name)
        assert info.video is not None and info.audio is not None
        assert (int(info.video["width"]), int(info.video["height"])) == (w, h), name
        durations.add(round(float(info.duration or 0), 1))
        cover = env.outbox / name.replace(".mp4", ".jpg")
        with Image.open(cover) as im:
            assert im.size == (w, h)
            assert detect_faces(im.convert("RGB")), f"no face on {cover.name}"  # the designed cover
        frame = Image.fromarray(_frame(env.outbox / name, 0.5, w, h))
        assert detect_faces(frame), f"no face in {name}'s frame"
    assert len(durations) == 1  # one narration, one timeline
    sidecar = env.sidecar("astro")
    assert {".mp4", ".vertical.mp4", ".square.mp4", ".jpg", ".vertical.jpg", ".square.jpg"} <= set(sidecar["outputs"])
    facts = next(s for s in sidecar["stages"] if s["name"] == "render")["facts"]
    assert [f["format"] for f in facts["formats"]] == ["landscape", "vertical", "square"]
    assert facts["scenes"][0]["subject"]["method"] == "faces"
    assert facts["cover"]["title"] is True and all(f["cover_title"] for f in facts["formats"])


def test_the_create_form_asks_for_more_formats_and_a_music_mood() -> None:
    """GIVEN the Create form with 'vertical' chosen, 'also landscape' and 'also square' ticked and a music mood
    WHEN it becomes a brief THEN the brief renders vertical first, then the others, with music by that mood."""
    from omad.web.submit import brief_from_fields

    fields = {"kind": "video", "prompt": "abelhas", "format": "vertical", "also_landscape": "on",
              "also_vertical": "on", "also_square": "on", "music_mood": "alegre"}
    data = brief_from_fields(fields, [])
    assert data["formats"] == ["vertical", "landscape", "square"] and data["music"] == {"mood": "alegre"}
    brief = parse_brief(data, "form")
    assert brief.frame_shapes() == ["vertical", "landscape", "square"]  # type: ignore[union-attr]
    # An uploaded track wins over the mood; no box ticked: one format as before.
    plain = brief_from_fields({"kind": "video", "prompt": "x", "music_mood": "calmo"}, ["trilha.mp3"])
    assert plain["music"] == "trilha.mp3" and "formats" not in plain
