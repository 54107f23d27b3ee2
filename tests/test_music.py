"""Music by mood: the user's tagged tracks indexed with mutagen, chosen by mood, cut or looped at a phrase end."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from conftest import Env, ffmpeg
from mutagen.easyid3 import EasyID3
from mutagen.flac import FLAC
from mutagen.mp4 import MP4

from omad.assets.music import MusicIndex, fit_track, mood_words


def _tone(path: Path, seconds: float, expr: str = "0.4*sin(2*PI*330*t)") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{expr}':s=44100:d={seconds}", "-ac", "2", str(path))
    return path


def _library(root: Path) -> Path:
    """Three tagged tracks (ID3, Vorbis comment, MP4 atoms) and a broken one, in mood folders."""
    sol = _tone(root / "alegre" / "sol.mp3", 3.0)
    tags = EasyID3()
    tags.update({"title": "Sol de Verão", "artist": "Banda Azul", "genre": "Pop"})
    tags.save(sol)
    mar = _tone(root / "mar.flac", 4.0, "0.3*sin(2*PI*220*t)")
    flac = FLAC(mar)
    flac.update({"title": "Mar", "artist": "Ana", "mood": "Calmo", "comment": "piano"})
    flac.save()
    noite = _tone(root / "noite.m4a", 2.0, "0.3*sin(2*PI*180*t)")
    mp4 = MP4(noite)
    mp4["\xa9nam"] = ["Noite"]
    mp4["\xa9cmt"] = ["tense suspense strings"]
    mp4.save()
    (root / "quebrado.mp3").write_bytes(b"not music at all" * 50)
    return root


def test_tracks_are_indexed_by_tags_and_folders_and_chosen_by_mood(tmp_path: Path) -> None:
    """GIVEN a music folder with tagged tracks and a broken file WHEN it is indexed THEN each track carries its
    tags, folder and length; a mood finds its track in pt-BR or English; the broken file is named, never chosen."""
    root = _library(tmp_path / "musicas")
    with MusicIndex(tmp_path / "music.sqlite", [root]) as index:
        scan = index.scan()
        assert scan.files == 4 and scan.indexed == 4
        assert len(scan.broken) == 1 and "quebrado.mp3" in scan.broken[0]
        tracks = {t.path.name: t for t in index.tracks()}
        assert set(tracks) == {"sol.mp3", "mar.flac", "noite.m4a"}
        assert tracks["sol.mp3"].artist == "Banda Azul" and abs(tracks["sol.mp3"].seconds - 3.0) < 0.2
        assert tracks["mar.flac"].mood == "Calmo" and tracks["noite.m4a"].comment == "tense suspense strings"
        pick = index.choose("alegre", [], 10.0)
        assert pick is not None and pick[0].path.name == "sol.mp3"  # by its folder's name
        happy = index.choose("happy", [], 10.0)
        assert happy is not None and happy[0].path.name == "sol.mp3"  # a synonym of 'alegre'
        calm = index.choose("tranquilo", [], 10.0)
        assert calm is not None and calm[0].path.name == "mar.flac"
        tense = index.choose("suspense", [], 10.0)
        assert tense is not None and tense[0].path.name == "noite.m4a"
        assert index.choose("triste", [], 10.0) is None
        assert {"alegre", "calmo"} <= set(index.moods())
        # A rescan reads only what changed.
        assert index.scan().indexed == 0
        (root / "mar.flac").unlink()
        assert index.scan().removed == 1 and index.choose("calmo", [], 10.0) is None
    assert "upbeat" in mood_words("Alegre")


def _samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 48000)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(np.float64) / 32768.0


def test_a_short_track_loops_and_ends_on_a_beat(tmp_path: Path) -> None:
    """GIVEN a 3 s track with a pulse every half second and no silence WHEN it is fitted to 10 s THEN it loops,
    ends just before a beat within the last seconds, and fades in and out."""
    track = _tone(tmp_path / "pulse.wav", 3.0, "sin(2*PI*220*t)*(0.15+0.6*lt(mod(t,0.5),0.12))")
    report = fit_track(track, 10.0, tmp_path / "bed.wav", timeout=60, label="pulse.wav")
    assert report.loops >= 3 and report.cut == "beat", report
    assert 8.0 <= report.seconds <= 10.0
    beat_offset = (report.cut_at + 0.05) % 0.5
    assert min(beat_offset, 0.5 - beat_offset) < 0.1, report.cut_at
    audio = _samples(tmp_path / "bed.wav")
    assert abs(len(audio) / 48000 - report.seconds) < 0.01
    assert np.abs(audio[:200]).max() < 0.05 and np.abs(audio[-200:]).max() < 0.05  # faded in and out
    assert np.abs(audio[len(audio) // 2 - 24000: len(audio) // 2 + 24000]).max() > 0.3  # full level between


def test_a_long_track_is_cut_in_a_silence(tmp_path: Path) -> None:
    """GIVEN a 20 s track with a pause at 7.2-7.6 s WHEN it is fitted to 9 s THEN it is cut inside that pause."""
    track = _tone(tmp_path / "pausa.flac", 20.0, "0.4*sin(2*PI*330*t)*(1-between(t,7.2,7.6))")
    report = fit_track(track, 9.0, tmp_path / "bed.wav", timeout=60, label="pausa.flac")
    assert report.cut == "silence" and 7.2 <= report.cut_at <= 7.65 and report.loops == 0, report


def test_a_brief_gets_music_by_mood_with_its_credit(make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN music folders and a scene brief asking for music: {mood: alegre} WHEN omad makes the video
    THEN the 'alegre' track plays under it, and the choice and its credit are in the sidecar and X.scenes.yaml."""
    root = _library(tmp_path / "musicas")
    env = make_env(video={"preset": "custom", "width": 160, "height": 90, "fps": 10, "x264_preset": "ultrafast"},
                   assets={"music": {"folders": [str(root)]}})
    (env.inbox / "festa.yaml").write_text(
        "version: 1\nkind: video\nmusic: {mood: alegre}\nscenes:\n"
        "  - title: Festa\n    narration: \"Hoje tem festa.\"\n", encoding="utf-8")
    assert env.once(max_wait=120) == 0
    sidecar = env.sidecar("festa")
    stages = {s["name"]: s["facts"] for s in sidecar["stages"]}
    chosen = stages["assets"]["music"]["chosen"]
    assert chosen["title"] == "Sol de Verão" and chosen["credit"] == "\u201cSol de Verão\u201d by Banda Azul"
    track = stages["render"]["music_track"]
    assert track["credit"] == chosen["credit"] and stages["render"]["music"] is True
    assert track["seconds"] <= stages["render"]["seconds"]
    scenes = yaml.safe_load((env.outbox / "festa.scenes.yaml").read_text(encoding="utf-8"))
    assert scenes["music"]["mood"] == "alegre" and scenes["music"]["chosen"]["artist"] == "Banda Azul"
    assert "music: \u201cSol de Verão\u201d by Banda Azul" in (env.outbox / "festa.scenes.yaml").read_text()


def test_a_mood_without_folders_makes_the_video_without_music_and_says_so(make_env: Callable[..., Env]) -> None:
    env = make_env(video={"preset": "custom", "width": 160, "height": 90, "fps": 10, "x264_preset": "ultrafast"})
    (env.inbox / "calma.yaml").write_text(
        "version: 1\nkind: video\nmusic: {mood: calmo}\nscenes:\n  - title: Calma\n", encoding="utf-8")
    assert env.once(max_wait=120) == 0
    sidecar = env.sidecar("calma")
    assert any("assets.music.folders" in w for w in sidecar.get("warnings", [])), sidecar.get("warnings")
    render = next(s for s in sidecar["stages"] if s["name"] == "render")["facts"]
    assert render["music"] is False


def test_the_audio_producer_picks_a_mood_for_a_prompt_video(make_env: Callable[..., Env], tmp_path: Path) -> None:
    """GIVEN music folders and a prompt brief without music WHEN the agents plan it THEN the audio producer is
    offered the folders' moods, picks one, and a track of that mood plays under the video."""
    from fake_ollama import FakeOllama

    root = _library(tmp_path / "musicas")
    with FakeOllama() as fake:
        env = make_env(video={"preset": "custom", "width": 160, "height": 90, "fps": 10, "x264_preset": "ultrafast"},
                       llm={"host": fake.url, "remote": False}, assets={"music": {"folders": [str(root)]}})
        (env.inbox / "sol.yaml").write_text(
            "version: 1\nkind: video\nprompt: Um dia de sol na praia\nduration_seconds: 8\n", encoding="utf-8")
        assert env.once(max_wait=120) == 0
        assert "music_moods" in fake.sent_text()
    sidecar = env.sidecar("sol")
    stages = {s["name"]: s["facts"] for s in sidecar["stages"]}
    chosen = stages["assets"]["music"]["chosen"]
    assert stages["assets"]["music"]["mood"] and chosen["credit"]
    assert stages["render"]["music_track"]["credit"] == chosen["credit"]
    scenes = yaml.safe_load((env.outbox / "sol.scenes.yaml").read_text(encoding="utf-8"))
    assert scenes["music"]["chosen"]["id"] == chosen["id"]
