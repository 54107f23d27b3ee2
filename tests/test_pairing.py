"""Intake's pairing, derived from the routes table, decides every built-in drop as the hand-written rules did."""

from __future__ import annotations

import pytest

from omad.config import IntakeConfig
from omad.pairing import Go, Hold, Partner, Refuse, accepted, pair, partners

EXT = {"video": "x.mp4", "srt": "x.srt", "image": "x.jpg", "audio": "x.wav", "text": "x.txt"}
INTAKE = IntakeConfig(partner_grace_seconds=10, pair_timeout_seconds=300)


def decide(kinds: str, forced: str | None = None, ready_for: float = 1000.0, once: bool = False,
           intake: IntakeConfig = INTAKE) -> object:
    files = {k: EXT[k] for k in kinds.split("+")}
    return pair(files, list(files.values()), forced, intake, ready_for, once)


@pytest.mark.parametrize("kinds,route", [
    ("video+srt", "caption"), ("video+audio", "addaudio"), ("image+audio", "img2vid"), ("image", "img2vid"),
    ("text", "narrate"), ("video", "transcribe"), ("audio", "transcribe"),
])
def test_a_root_drop_takes_the_route_it_always_took(kinds: str, route: str) -> None:
    assert decide(kinds) == Go(route)


@pytest.mark.parametrize("kinds,held,reason", [
    ("image", "image", "may get a same-name audio file"),
    ("video", "video", "may get a same-name subtitle file (.srt/.vtt/.ass/.ssa, for captions) or audio file "
                       "(.wav/.mp3/.m4a/.flac, for new sound); transcribed if none comes"),
    ("audio", "audio", "may get a same-name video (.mp4/.mov/.mkv/.webm, for new sound) or image "
                       "(.jpg/.png/.webp); transcribed if none comes"),
])
def test_a_drop_that_may_get_a_partner_waits_its_grace_first(kinds: str, held: str, reason: str) -> None:
    assert decide(kinds, ready_for=1.0) == Hold(held, reason)
    assert decide(kinds, ready_for=1.0, once=True) != Hold(held, reason)  # `omad once` never waits


def test_the_lone_video_grace_has_its_own_key_falling_back_to_the_partner_grace() -> None:
    own = IntakeConfig(partner_grace_seconds=10, lone_video_grace_seconds=30)
    assert isinstance(decide("video", ready_for=20, intake=own), Hold)
    assert decide("video", ready_for=20) == Go("transcribe")
    assert isinstance(decide("image", ready_for=20, intake=own), Go)


def test_with_lone_video_wait_a_lone_file_waits_for_a_partner_then_is_refused_on_its_route() -> None:
    wait = IntakeConfig(lone_video="wait")
    assert decide("video", intake=wait) == Partner("caption", "video", "pair_timeout_seconds", lone=True)
    assert decide("audio", intake=wait) == Partner("addaudio", "audio", "pair_timeout_seconds", lone=True)
    assert decide("srt") == Partner("caption", "srt", "pair_timeout_seconds", lone=True)
    assert partners("srt") == "a same-name video (.mp4/.mov/.mkv/.webm, for captions)"


def test_files_that_make_no_drop_are_refused_naming_what_omad_accepts() -> None:
    refused = decide("video+image")
    assert isinstance(refused, Refuse) and refused.whole and refused.route == "unknown"
    assert "x.jpg, x.mp4 share a name but do not make a drop omad knows" in refused.message
    assert "video + subtitle file (caption)" in accepted() and "image (+ audio file) (img2vid)" in accepted()


@pytest.mark.parametrize("forced,kinds,expected", [
    ("caption", "video+srt", Go("caption")),
    ("resync", "video+srt", Go("resync")),
    ("addaudio", "video+audio", Go("addaudio")),
    ("narrate", "text", Go("narrate")),
    ("img2vid", "image+audio", Go("img2vid")),
    ("transcribe", "video", Go("transcribe")),
    ("transcribe", "audio", Go("transcribe")),
    ("caption", "video", Partner("caption", "srt", "pair_timeout_seconds", lone=False)),
    ("addaudio", "audio", Partner("addaudio", "video", "pair_timeout_seconds", lone=False)),
])
def test_a_route_folder_forces_its_route(forced: str, kinds: str, expected: object) -> None:
    assert decide(kinds, forced=forced) == expected


def test_a_route_folder_refuses_what_does_not_belong_there() -> None:
    assert decide("image", forced="img2vid", ready_for=1.0) == Hold("image", "may get a same-name audio file")
    extra = decide("video+audio", forced="caption")
    assert isinstance(extra, Refuse) and extra.message == (
        "the caption/ folder expects srt + video files; x.wav does not belong there.")
    pair_in_transcribe = decide("video+srt", forced="transcribe")
    assert isinstance(pair_in_transcribe, Refuse)
    assert "transcribe/ folder takes one video or one recording per name" in pair_in_transcribe.message
    briefs_only = decide("text", forced="video")
    assert isinstance(briefs_only, Refuse) and briefs_only.message.startswith(
        "the video/ folder takes briefs (.yaml/.json) or bundle folders; move x.txt")
