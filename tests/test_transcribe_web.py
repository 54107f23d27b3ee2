"""The web side of transcription: POST /api/jobs and the Create form take a lone video or recording;
the job page shows the transcript with its times."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env, Running, ffmpeg, wait_for
from whisper_tiny import base_whisper, models_with, piper_speech  # noqa: F401  (session fixtures)

pytestmark = pytest.mark.slow


@pytest.fixture
def server(make_env: Callable[..., Env], tmp_path: Path, base_whisper: Path) -> Iterator[tuple[Env, str]]:  # noqa: F811
    models = models_with(tmp_path / "models", base=base_whisper)
    env = make_env(web={"enabled": True, "port": 0, "submit_wait_seconds": 5}, lanes={"cpu": 1},
                   models={"dir": str(models)}, asr={"language": "en"})
    with Running(env.daemon(), serve=True) as run:
        yield env, run.server.url


def final(c: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    job: dict[str, Any] = {}

    def ended() -> bool:
        job.update(c.get(f"/api/jobs/{job_id}").json())
        return job["status"] in ("done", "failed")

    wait_for(ended, timeout=timeout)
    return job


def test_a_lone_recording_posted_to_the_api_comes_back_transcribed(server: tuple[Env, str], tmp_path: Path) -> None:
    """GIVEN a recording of real speech posted alone to /api/jobs
    THEN it becomes a transcribe job whose API record and page show the transcript with its times."""
    env, url = server
    wav = piper_speech(tmp_path / "nota.wav", "Seven boats came back before noon.")
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/api/jobs", files=[("files", ("nota.wav", wav.read_bytes(), "audio/wav"))])
        assert r.status_code == 202, r.text
        job = final(c, r.json()["id"])
        assert job["status"] == "done" and job["route"] == "transcribe"
        [segment] = job["transcript"]
        # Whisper may write "Seven boats" or "7 Boats": the word is what is checked, not its case.
        assert "boats" in segment["text"].lower() and 0 <= segment["start"] < segment["end"] <= 3.5
        assert {o["name"] for o in job["outputs"]} >= {"nota.srt", "nota.vtt", "nota.txt"}
        page = c.get(f"/jobs/{job['id']}").text
        assert 'id="job-transcript"' in page and "boats" in page.lower()


def test_the_create_form_takes_a_video_to_transcribe(server: tuple[Env, str], tmp_path: Path) -> None:
    env, url = server
    wav = piper_speech(tmp_path / "fala.wav", "The harbor was quiet this morning.")
    video = tmp_path / "fala.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-i", str(wav), "-shortest", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(video))
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/api/jobs", data={"kind": "transcribe", "name": "fala"},
                   files=[("files", ("fala.mp4", video.read_bytes(), "video/mp4"))])
        assert r.status_code == 202, r.text
        job = final(c, r.json()["id"])
        assert job["status"] == "done" and job["route"] == "transcribe"
        assert "harbor" in " ".join(s["text"] for s in job["transcript"]).lower()
        assert "fala.mp4" in {o["name"] for o in job["outputs"]}
    assert "transcribe: captions from the speech" in httpx.get(f"{url}/create").text
