"""`omad models pull|list` against a local stand-in for the Hugging Face Hub, through the real client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_hub import COMMIT, FakeHub
from whisper_tiny import tiny_whisper  # noqa: F401  (a session fixture)

from omad.asr import AsrRequest, engine_for
from omad.config import Config
from omad.errors import ConfigError
from omad.models import MANIFEST, parse_name

ROOT = Path(__file__).resolve().parent.parent
VOICE = "pt/pt_BR/faber/medium"


def omad(tmp_path: Path, hub: FakeHub | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    cfg = tmp_path / "omad.yaml"
    if not cfg.exists():
        cfg.write_text(f"state_dir: {tmp_path / 'state'}\ninbox: {tmp_path / 'inbox'}\noutbox: {tmp_path / 'out'}\n")
    return subprocess.run([sys.executable, "-m", "omad.cli", *args, "--config", str(cfg)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)


def whisper_repo(model: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    files["README.md"] = b"# not part of the model\n"
    files[".gitattributes"] = b"*.bin filter=lfs\n"
    return files


def voice_repo() -> dict[str, bytes]:
    return {f"{VOICE}/pt_BR-faber-medium.onnx": b"\x08\x07onnx-bytes" * 500,
            f"{VOICE}/pt_BR-faber-medium.onnx.json": json.dumps({"audio": {"sample_rate": 22050}}).encode(),
            f"{VOICE}/MODEL_CARD": b"# Model card for faber\nLicense: CC BY 4.0\n",
            "en/en_US/joe/medium/en_US-joe-medium.onnx": b"other voice"}


def test_pull_a_whisper_model_from_the_hub_then_transcribe_with_it(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    """GIVEN a Hub (stand-in) serving Systran/faster-whisper-base
    WHEN `omad models pull whisper-base` runs
    THEN the model's files (and nothing else from the repo) sit in models/whisper/base with a manifest
    of their sizes, sha256 and source commit; `omad models list` shows it; and the engine loads it."""
    repo = whisper_repo(tiny_whisper)
    with FakeHub({"Systran/faster-whisper-base": repo}) as hub:
        done = omad(tmp_path, hub, "models", "pull", "whisper-base")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "state" / "models" / "whisper" / "base"
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, *(p.name for p in tiny_whisper.iterdir())])
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["source"] == f"hf:Systran/faster-whisper-base@{COMMIT}"
    assert manifest["files"]["model.bin"] == {"size": len(repo["model.bin"]),
                                              "sha256": hashlib.sha256(repo["model.bin"]).hexdigest()}
    assert not (tmp_path / "state" / "models" / ".downloads" / "whisper" / "base").exists()
    listed = omad(tmp_path, None, "models", "list")
    assert listed.returncode == 0
    line = next(x for x in listed.stdout.splitlines() if " base " in x)
    assert line.startswith("* whisper") and hashlib.sha256(repo["model.bin"]).hexdigest()[:12] in line
    cfg = Config.model_validate({"state_dir": str(tmp_path / "state"), "asr": {"vad": False, "beam_size": 1}})
    wav = tmp_path / "s.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "anoisesrc=d=1:a=0.1", "-ar", "16000",
                    "-ac", "1", str(wav)], check=True)
    assert engine_for(cfg).transcribe(wav, AsrRequest(language="pt")).duration == 1.0


def test_pull_a_piper_voice_into_its_layout(tmp_path: Path) -> None:
    repo = voice_repo()
    with FakeHub({"rhasspy/piper-voices": repo}) as hub:
        done = omad(tmp_path, hub, "models", "pull", "piper:pt_BR-faber-medium")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "state" / "models" / "piper" / "pt_BR-faber-medium"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST, "MODEL_CARD", "pt_BR-faber-medium.onnx", "pt_BR-faber-medium.onnx.json"])
    assert (folder / "pt_BR-faber-medium.onnx").read_bytes() == repo[f"{VOICE}/pt_BR-faber-medium.onnx"]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["source"] == f"hf:rhasspy/piper-voices@{COMMIT}"


def test_an_interrupted_download_resumes(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    """GIVEN a Hub whose first download of a 24 MB model.bin stops half-way
    THEN the pull (run again if it failed) finishes with a ranged request for the rest, and the file is whole.
    (huggingface_hub counts what it kept in 10 MB chunks: a smaller file would simply be fetched again.)"""
    repo = whisper_repo(tiny_whisper)
    repo["model.bin"] = os.urandom(24 * 1024 * 1024)
    with FakeHub({"Systran/faster-whisper-base": repo}) as hub:
        hub.cut_once.add("model.bin")
        first = omad(tmp_path, hub, "models", "pull", "whisper-base")
        if first.returncode != 0:
            assert "run the pull again" in first.stderr.lower() or "pull again" in first.stderr.lower()
            assert omad(tmp_path, hub, "models", "pull", "whisper-base").returncode == 0
        ranged = [r for m, p, r in hub.requests if m == "GET" and p.endswith("/model.bin") and r]
    assert ranged and int(ranged[-1].split("=")[1].rstrip("-")) > 0
    got = tmp_path / "state" / "models" / "whisper" / "base" / "model.bin"
    assert got.read_bytes() == repo["model.bin"]


def test_a_file_that_does_not_match_its_listed_hash_is_refused(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    with FakeHub({"Systran/faster-whisper-base": whisper_repo(tiny_whisper)}) as hub:
        hub.lie_about.add("model.bin")
        done = omad(tmp_path, hub, "models", "pull", "whisper-base")
    assert done.returncode == 2
    assert "model.bin of base does not match the sha256" in done.stderr
    assert not (tmp_path / "state" / "models" / "whisper" / "base").exists()


def test_unknown_repositories_and_names_say_what_to_do(tmp_path: Path) -> None:
    with FakeHub({}) as hub:
        done = omad(tmp_path, hub, "models", "pull", "whisper-small")
    assert done.returncode == 2 and "Systran/faster-whisper-small" in done.stderr
    with pytest.raises(ConfigError, match="whisper-<size>"):
        parse_name("base")
    with pytest.raises(ConfigError, match="lang_REGION"):
        parse_name("piper:faber")


def test_pull_from_a_local_folder_and_doctor_names_missing_models(tmp_path: Path, tiny_whisper: Path) -> None:  # noqa: F811
    done = omad(tmp_path, None, "models", "pull", "whisper-base", "--from", str(tiny_whisper))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "state" / "models" / "whisper" / "base" / MANIFEST).read_text())
    assert manifest["source"] == f"path:{tiny_whisper.resolve()}"
    assert (tiny_whisper / "model.bin").is_file()  # a person's own files are copied, never moved
    (tmp_path / "omad.yaml").write_text((tmp_path / "omad.yaml").read_text() + "asr:\n  model: small\n")
    doctor = omad(tmp_path, None, "doctor")
    line = next(x for x in doctor.stdout.splitlines() if "whisper model" in x)
    assert line.startswith("warn") and "omad models pull whisper-small" in line
    listed = omad(tmp_path, None, "models", "list").stdout
    assert "! whisper small" in " ".join(listed.split()) and "base" in listed


def test_every_hub_error_class_maps_to_an_omad_error_that_says_what_to_do() -> None:
    """Walks huggingface_hub.errors (httpx's idea): an error class the library adds still maps, by kind."""
    import inspect

    import httpx
    from huggingface_hub import errors as hf

    from omad.errors import OmadError, TransientError
    from omad.models import _hub_error

    response = httpx.Response(404, request=httpx.Request("GET", "http://hub/x"))
    checked = 0
    for _name, cls in inspect.getmembers(hf, inspect.isclass):
        if not issubclass(cls, Exception) or cls.__module__ != hf.__name__:
            continue
        try:
            err = cls("boom", response=response) if issubclass(cls, hf.HfHubHTTPError) else cls("boom")
        except TypeError:
            continue  # needs arguments of its own (inference-side errors, never raised by a download)
        mapped = _hub_error(err, "Systran/faster-whisper-base", "whisper-base")
        assert isinstance(mapped, OmadError) and mapped.message
        if isinstance(err, hf.RepositoryNotFoundError):
            assert isinstance(mapped, ConfigError) and "Systran/faster-whisper-base" in mapped.message
        if isinstance(err, hf.LocalEntryNotFoundError | hf.OfflineModeIsEnabled):
            assert isinstance(mapped, TransientError) and "resumes" in mapped.message
        checked += 1
    assert checked >= 10
