"""The cover: the best scene picture by sharpness and faces, with the title large and legible in the safe area."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data as skdata

from omad.media.cover import best_frame, draw_cover, rgb_of, scored_scenes
from omad.media.framing import SAFE_AREAS, FrameShape, detect_faces
from omad.media.kenburns import StillFrames, _planes, prepare_still
from omad.media.pipe import Planes
from omad.media.scenes import SceneSpec, Timeline

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
W, H = 270, 480


def _spec(img: Image.Image) -> SceneSpec:
    def _prepare(frames: int) -> StillFrames:
        return prepare_still(img, width=W, height=H, frames=frames, motion="none", fit="cover", zoom=1.0,
                             seed="s", label="pic")[0]

    return SceneSpec(prepare=_prepare, frames=10)


def _blurred() -> Image.Image:
    noise = np.random.default_rng(3).integers(0, 255, (480, 270, 3), dtype=np.uint8)
    return Image.fromarray(noise).filter(ImageFilter.GaussianBlur(12))


def _astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut()).resize((270, 480))


def _prepared_middle(specs: list[SceneSpec]) -> Callable[[int], Planes]:
    """Each scene's middle frame, prepared on its own (what the timeline draws at that frame)."""
    def middle(i: int) -> Planes:
        frames = specs[i].prepare(specs[i].frames)
        return frames(specs[i].frames // 2)

    return middle


def test_the_face_wins_over_a_blur_and_a_title_card_is_the_last_resort() -> None:
    """GIVEN a blurred scene, a scene with a face and a (sharp) title card WHEN the cover is chosen
    THEN the face's scene wins; the card only when it is alone."""
    card = Image.new("RGB", (270, 480), (20, 20, 90))
    specs = [_spec(_blurred()), _spec(_astronaut()), _spec(card)]
    best, scored = best_frame(specs, [False, False, True], _prepared_middle(specs))
    assert best.scene == 1 and best.faces >= 1, [c.facts() for c in scored]
    assert scored[0].sharpness < scored[1].sharpness
    alone, _ = best_frame([_spec(card)], [True], _prepared_middle([_spec(card)]))
    assert alone.scene == 0


def test_the_cover_takes_the_middle_frames_the_timeline_drew_without_preparing_a_scene_again() -> None:
    """GIVEN a timeline of three scenes (the last a title card) WHEN the encode draws every frame and the cover
    is chosen from the timeline's middle frames THEN the choice is the one made by preparing each scene again,
    each scene was prepared once, and a title card's frame is neither asked for nor kept."""
    prepared: list[int] = []
    card = Image.new("RGB", (270, 480), (20, 20, 90))

    def counted(i: int, img: Image.Image) -> SceneSpec:
        spec = _spec(img)
        inner = spec.prepare

        def _prepare(frames: int) -> StillFrames:
            prepared.append(i)
            return inner(frames)

        return SceneSpec(prepare=_prepare, frames=spec.frames)

    specs = [counted(0, _blurred()), counted(1, _astronaut()), counted(2, card)]
    cards = [False, False, True]
    again, scored_again = best_frame(specs, cards, _prepared_middle(specs))
    prepared.clear()
    timeline = Timeline(specs, crossfade=2)
    timeline.keep_middles(scored_scenes(cards))
    for n in range(timeline.count):
        timeline(n)
    try:
        best, scored = best_frame(specs, cards, timeline.middle)
    finally:
        timeline.close()
    with pytest.raises(RuntimeError):
        timeline.middle(2)  # the title card's frame was never kept: the cover does not score it
    assert sorted(prepared) == [0, 1, 2]
    assert best.scene == again.scene == 1
    assert [c.facts() for c in scored] == [c.facts() for c in scored_again]


def test_a_cover_waiting_for_a_middle_frame_wakes_when_the_encode_stops() -> None:
    """GIVEN a cover waiting for scene 1's middle frame WHEN the timeline is closed before drawing it (the
    encode failed) THEN the wait ends with an error instead of holding the render forever."""
    timeline = Timeline([_spec(_blurred()), _spec(_blurred())], crossfade=0)
    timeline(0)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            timeline.middle(1)
        except RuntimeError as e:
            errors.append(e)

    waiter = threading.Thread(target=wait)
    waiter.start()
    timeline.close()
    waiter.join()
    assert errors and "closed before scene 1" in str(errors[0])
    with pytest.raises(RuntimeError):
        timeline.middle(0)  # not drawn yet either (scene 0's middle is frame 5)


def test_frames_come_back_to_rgb_as_they_were_drawn() -> None:
    img = Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)).filter(
        ImageFilter.GaussianBlur(2))
    back = np.asarray(rgb_of(_planes(img)), dtype=np.int16)
    assert np.abs(back - np.asarray(img, dtype=np.int16)).mean() < 4


def _white_rows(img: Image.Image) -> np.ndarray:
    grey = np.asarray(img.convert("L"))
    return np.nonzero((grey > 235).sum(axis=1) > 3)[0]


def test_the_title_is_large_inside_the_safe_area_and_wrapped() -> None:
    """GIVEN a long title WHEN it is drawn on a vertical and a landscape cover THEN it is wrapped to at most three
    lines across the width, sits above the format's bottom safe margin, and each line is tall (legible)."""
    title = "Abelhas nativas do Brasil: como elas salvam as nossas florestas"
    for (w, h), shape in (((270, 480), FrameShape.VERTICAL), ((480, 270), FrameShape.LANDSCAPE)):
        picture = Image.new("RGB", (w, h), (40, 60, 40))
        safe = SAFE_AREAS[shape]
        cover = draw_cover(picture, title, FONT, safe)
        rows = _white_rows(cover)
        assert len(rows) > 0
        assert rows.max() <= h * (1 - safe.bottom) + 2, (shape, rows.max())
        assert rows.min() >= h * 0.3, (shape, rows.min())  # the lower part: the picture stays visible
        grey = np.asarray(cover.convert("L"))
        cols = np.nonzero((grey > 235).sum(axis=0) > 0)[0]
        assert cols.min() > 0 and cols.max() < w - 1  # nothing cut at the edges
        lines = np.split(rows, np.nonzero(np.diff(rows) > 1)[0] + 1)
        assert 1 < len(lines) <= 3, len(lines)
        assert min(len(line) for line in lines) >= h * 0.025  # still legible on a phone when long
        short = _white_rows(draw_cover(picture, "Abelhas", FONT, safe))
        assert short.max() - short.min() >= min(w, h) * 0.07  # a short title is large
    # No title: the picture as it was.
    plain = Image.new("RGB", (100, 100), (1, 2, 3))
    assert np.array_equal(np.asarray(draw_cover(plain, None, FONT, None)), np.asarray(plain))


def test_a_face_stays_detectable_on_the_cover(tmp_path: Callable[..., object]) -> None:
    cover = draw_cover(_astronaut(), "Astronauta", FONT, SAFE_AREAS[FrameShape.VERTICAL])
    assert detect_faces(cover)
