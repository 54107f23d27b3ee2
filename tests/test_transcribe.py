"""The transcribe route: a video or recording dropped alone comes back captioned from its speech."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Env, Running, ffmpeg, make_video, wait_for, write_srt
from whisper_tiny import base_whisper, models_with, piper_speech, tiny_whisper  # noqa: F401  (session fixtures)

SPOKEN = ("The harbor was quiet this morning. Seven boats came back before noon, and the fishermen sold "
          "everything at the market. Captain Moreira said the weather would turn by Friday.")


def streams(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    found: list[dict[str, Any]] = json.loads(out)["streams"]
    return found


def speech_video(path: Path, wav: Path, size: str = "320x180") -> Path:
    """A video whose sound is ``wav`` (real speech), as long as it."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-i", str(wav), "-shortest", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


@pytest.fixture
def tiny_env(make_env: Callable[..., Env], tmp_path: Path, tiny_whisper: Path) -> Env:  # noqa: F811
    models = models_with(tmp_path / "models", **{"tiny-test": tiny_whisper})
    return make_env(models={"dir": str(models)}, asr={"model": "tiny-test", "vad": False, "beam_size": 1})


def test_a_lone_video_is_captioned_from_its_speech(tiny_env: Env) -> None:
    """GIVEN a video dropped alone (and a tiny Whisper installed)
    WHEN omad runs
    THEN it is transcribed: X.mp4 with the captions burned in and X.srt and X.vtt beside it, and the sidecar
    records the language, the model, the share of speech, the real-time factor and the low-confidence segments."""
    make_video(tiny_env.inbox / "aula.mp4", seconds=3.0)
    assert tiny_env.once() == 0
    side = tiny_env.sidecar("aula")
    assert side["route"] == "transcribe"
    facts = side["stages"]["transcribe"]["facts"] if "stages" in side and isinstance(side["stages"], dict) else None
    facts = facts or next(s for s in side["stages"] if s["name"] == "transcribe")["facts"]
    assert facts["model"] == "tiny-test" and facts["language"] == "pt" and facts["input"] == "video"
    assert facts["speech_share"] == 1.0 and facts["rtf"] > 0 and isinstance(facts["low_confidence"], list)
    assert (tiny_env.outbox / "aula.mp4").is_file()
    kinds = [s["codec_type"] for s in streams(tiny_env.outbox / "aula.mp4")]
    assert kinds == ["video", "audio"]
    if facts["captions"]:
        srt = (tiny_env.outbox / "aula.srt").read_text()
        assert srt.startswith("1\n00:00:") and (tiny_env.outbox / "aula.vtt").read_text().startswith("WEBVTT")
    else:
        assert any("no speech" in w for w in side["warnings"])


def test_a_silent_video_is_published_without_captions_and_a_warning(tiny_env: Env) -> None:
    make_video(tiny_env.inbox / "mudo.mp4", seconds=1.0, audio=False)
    assert tiny_env.once() == 0
    side = tiny_env.sidecar("mudo")
    assert any("no speech was found (the video has no sound)" in w for w in side["warnings"])
    assert (tiny_env.outbox / "mudo.mp4").is_file() and not (tiny_env.outbox / "mudo.srt").exists()


def test_the_transcribe_folder_forces_the_route_and_refuses_pairs(tiny_env: Env) -> None:
    (tiny_env.inbox / "transcribe").mkdir()
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=1:a=0.1", str(tiny_env.inbox / "transcribe" / "voz.wav"))
    make_video(tiny_env.inbox / "transcribe" / "par.mp4", seconds=1.0)
    (tiny_env.inbox / "transcribe" / "par.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nOi\n")
    assert tiny_env.once() == 1
    assert tiny_env.sidecar("voz")["route"] == "transcribe" and (tiny_env.outbox / "voz.txt").exists()
    err = tiny_env.failed_error("par")
    assert "transcribe/ folder takes one video or one recording" in err["message"]


def test_lone_video_wait_keeps_the_old_behaviour(make_env: Callable[..., Env], capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    env = make_env(intake={"lone_video": "wait"})
    make_video(env.inbox / "espera.mp4", seconds=1.0)
    assert env.once(max_wait=3) == 0
    assert (env.inbox / "espera.mp4").exists()
    assert "waiting: espera.mp4" in capsys.readouterr().err


def test_without_a_model_the_job_fails_naming_the_pull_command(make_env: Callable[..., Env], tmp_path: Path) -> None:
    env = make_env(models={"dir": str(tmp_path / "empty")})
    make_video(env.inbox / "sem.mp4", seconds=1.0)
    assert env.once() == 1
    err = env.failed_error("sem")
    assert "omad models pull whisper-base" in err["message"]
    assert (env.outbox / "failed" / "sem" / "sem.mp4").exists()


@pytest.mark.slow
def test_a_recording_and_a_video_with_real_speech(make_env: Callable[..., Env], tmp_path: Path,
                                                  base_whisper: Path) -> None:  # noqa: F811
    """GIVEN real speech (the Piper joe voice) as a lone recording, and as a video in a bundle with a transcribe
    brief, and the real Whisper base
    THEN the recording gives X.srt, X.vtt and X.txt with the words said; the video comes back with the captions
    burned in and, asked by a transcribe brief, as a soft mov_text track too, with the brief's names spelled right."""
    models = models_with(tmp_path / "models", base=base_whisper)
    env = make_env(models={"dir": str(models)}, asr={"language": "en"})
    wav = piper_speech(tmp_path / "src" / "porto.wav", SPOKEN)
    (env.inbox / "porto.wav").write_bytes(wav.read_bytes())
    speech_video(tmp_path / "src" / "cais.mp4", wav)
    (env.inbox / "cais").mkdir()
    (env.inbox / "cais" / "cais.mp4").write_bytes((tmp_path / "src" / "cais.mp4").read_bytes())
    (env.inbox / "cais" / "brief.yaml").write_text(yaml.safe_dump({
        "kind": "transcribe", "video": "cais.mp4", "output": "both", "caption_style": "word_highlight",
        "vocabulary": ["Moreira"]}))
    assert env.once(max_wait=120) == 0
    text = (env.outbox / "porto.txt").read_text().lower()
    for word in ("harbor", "boats", "noon", "fishermen", "market", "captain", "friday"):
        assert word in text
    srt = (env.outbox / "porto.srt").read_text()
    assert "-->" in srt and (env.outbox / "porto.vtt").read_text().startswith("WEBVTT")
    side = env.sidecar("porto")
    facts = next(s for s in side["stages"] if s["name"] == "transcribe")["facts"]
    assert facts["language"] == "en" and facts["model"] == "base" and facts["speech_share"] > 0.5
    kinds = [(s["codec_type"], s["codec_name"]) for s in streams(env.outbox / "cais.mp4")]
    assert ("subtitle", "mov_text") in kinds and kinds[0][0] == "video"
    vfacts = next(s for s in env.sidecar("cais")["stages"] if s["name"] == "transcribe")["facts"]
    assert vfacts["output"] == "both" and vfacts["caption_style"] == "word_highlight" and vfacts["highlighted"] > 0
    assert "Moreira" in (env.outbox / "cais.srt").read_text()  # the brief's vocabulary steers the spelling


def test_subtitles_that_arrive_after_the_video_was_transcribed_win(tiny_env: Env) -> None:
    """GIVEN a video dropped alone, taken for transcription after its grace
    WHEN its subtitle file arrives afterwards (a slow share)
    THEN the subtitle is not left to time out: the video is put back beside it and the two make a caption
    job whose video has the person's own captions burned in; the transcription's outputs stay published."""
    make_video(tiny_env.inbox / "tarde.mp4", seconds=2.0)
    with Running(tiny_env.daemon()) as r:
        d = r.d
        wait_for(lambda: [j.status.value for j in d.journal.jobs()] == ["done"], timeout=60)
        write_srt(tiny_env.inbox / "tarde.srt")
        wait_for(lambda: sorted(j.status.value for j in d.journal.jobs()) == ["done", "done"], timeout=60)
        routes = sorted(j.route for j in d.journal.jobs())
    assert routes == ["caption", "transcribe"]
    assert not (tiny_env.outbox / "failed").exists() or not any((tiny_env.outbox / "failed").iterdir())
    captioned = [p for p in tiny_env.outbox.glob("tarde*.json") if json.loads(p.read_text())["route"] == "caption"]
    assert len(captioned) == 1 and captioned[0].with_suffix(".mp4").is_file()
    assert not (tiny_env.inbox / "tarde.srt").exists() and not (tiny_env.inbox / "tarde.mp4").exists()


@pytest.mark.slow
def test_kill_9_mid_transcription_resumes_the_job(make_env: Callable[..., Env], tmp_path: Path,
                                                  tiny_whisper: Path) -> None:  # noqa: F811
    """GIVEN omad run transcribing a recording WHEN it is killed with SIGKILL mid-transcription and started again
    THEN the journaled stage runs again and the job finishes once, with its outputs published once."""
    import os
    import signal
    import sqlite3
    import sys

    models = models_with(tmp_path / "models", **{"tiny-test": tiny_whisper})
    env = make_env(models={"dir": str(models)}, asr={"model": "tiny-test", "vad": False, "beam_size": 1})
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=40:c=pink:a=0.2", "-ar", "16000", str(tmp_path / "longa.wav"))

    def jobs() -> list[tuple[str, str | None]]:
        path = env.state / "journal.sqlite"
        if not path.exists():
            return []
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT status, stage, progress > 0 FROM jobs")
            return [(r[0], f"{r[1]}+" if r[2] else r[1]) for r in rows]
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def start() -> subprocess.Popen[str]:
        root = Path(__file__).resolve().parent.parent
        return subprocess.Popen([sys.executable, "-m", "omad.cli", "run", "--config", str(env.root / "omad.yaml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "PYTHONPATH": str(root)})

    proc = start()
    try:
        (tmp_path / "longa.wav").rename(env.inbox / "longa.wav")
        # killed once the transcription itself has reported progress ("+": progress above 0)
        wait_for(lambda: ("running", "transcribe+") in jobs(), timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (env.outbox / "longa.json").exists()
    proc = start()
    try:
        wait_for(lambda: (env.outbox / "longa.json").exists(), timeout=240)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [s for s, _ in jobs()] == ["done"]
    side = env.sidecar("longa")
    assert side["attempts"] >= 1 and side["route"] == "transcribe"
    assert sorted(p.name for p in env.outbox.iterdir() if p.is_file() and p.name.startswith("longa")) == sorted(
        ["longa.json", "longa.txt", *(["longa.srt", "longa.vtt"] if (env.outbox / "longa.srt").exists() else [])])


@pytest.mark.slow
def test_a_soft_track_only_copies_the_picture(make_env: Callable[..., Env], tmp_path: Path,
                                              base_whisper: Path) -> None:  # noqa: F811
    """GIVEN a transcribe brief with output: soft THEN the video comes back with its picture copied, not
    re-encoded, and the captions as a mov_text track tagged with the language."""
    models = models_with(tmp_path / "models", base=base_whisper)
    env = make_env(models={"dir": str(models)})
    wav = piper_speech(tmp_path / "src" / "mole.wav", "Seven boats came back before noon.")
    speech_video(env.inbox / "mole.mp4", wav)
    (env.inbox / "mole.yaml").write_text(yaml.safe_dump({"kind": "transcribe", "video": "mole.mp4",
                                                         "output": "soft", "language": "en"}))
    assert env.once(max_wait=120) == 0
    found = streams(env.outbox / "mole.mp4")
    sub = next(s for s in found if s["codec_type"] == "subtitle")
    assert sub["codec_name"] == "mov_text" and sub["tags"]["language"] == "eng"
    facts = next(s for s in env.sidecar("mole")["stages"] if s["name"] == "transcribe")["facts"]
    assert facts["output"] == "soft" and facts["video"] == "copied"
