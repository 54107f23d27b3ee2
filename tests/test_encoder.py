"""GPU encoding when it works, libx264 with a note when it does not (only the fallback can run here)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env, make_image

import omad.media.encoder as encoder_mod
from omad.config import VideoConfig
from omad.media.encoder import choose_encoder, nvenc_status

SMALL = {"preset": "custom", "width": 320, "height": 180, "fps": 15, "x264_preset": "ultrafast"}


def test_auto_uses_nvenc_only_when_the_trial_encode_worked(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN encoder auto WHEN the NVENC trial works THEN h264_nvenc at the same quality; WHEN it fails
    THEN libx264 with a note that says why, and an explicit libx264 needs no note."""
    monkeypatch.setattr(encoder_mod, "nvenc_status", lambda: (True, "h264_nvenc encodes on this machine's GPU"))
    gpu = choose_encoder(VideoConfig(crf=21, x264_preset="veryfast"))
    assert gpu.name == "h264_nvenc" and gpu.note is None
    args = list(gpu.args)
    assert args[args.index("-cq") + 1] == "21" and args[args.index("-preset") + 1] == "p2"
    assert args[args.index("-colorspace") + 1] == "bt709" and "yuv420p" in args

    monkeypatch.setattr(encoder_mod, "nvenc_status", lambda: (False, "this ffmpeg has no h264_nvenc encoder"))
    cpu = choose_encoder(VideoConfig())
    assert cpu.name == "libx264"
    assert cpu.facts() == {"encoder": "libx264",
                           "encoder_note": "this ffmpeg has no h264_nvenc encoder: encoded with libx264 on the CPU"}
    asked = choose_encoder(VideoConfig(encoder="h264_nvenc"))
    assert asked.note is not None and asked.note.startswith("video.encoder is h264_nvenc, but ")
    assert choose_encoder(VideoConfig(encoder="libx264")).facts() == {"encoder": "libx264"}


def test_the_trial_tells_a_listed_encoder_from_a_working_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN an ffmpeg that lists h264_nvenc but cannot open a GPU THEN nvenc_status says no, quoting ffmpeg."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "if '-encoders' in sys.argv:\n"
        "    print(' V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)')\n"
        "    sys.exit(0)\n"
        "print('Cannot load libcuda.so.1', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(encoder_mod, "FFMPEG", str(fake))
    monkeypatch.setattr(encoder_mod, "_nvidia_device", lambda: True)
    nvenc_status.cache_clear()
    try:
        ok, why = nvenc_status()
    finally:
        nvenc_status.cache_clear()
    assert not ok and "Cannot load libcuda.so.1" in why and "h264_nvenc" in why


def test_no_nvidia_device_is_told_without_starting_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a box with no NVIDIA device node THEN the answer is no, and no ffmpeg is started to find out."""
    monkeypatch.setattr(encoder_mod, "_nvidia_device", lambda: False)
    monkeypatch.setattr(encoder_mod, "run_tool", lambda *a, **k: pytest.fail("started a tool"))
    nvenc_status.cache_clear()
    try:
        assert nvenc_status() == (False, "no NVIDIA GPU here (no /dev/nvidia* device)")
    finally:
        nvenc_status.cache_clear()


def test_sidecar_names_the_encoder_and_why_the_gpu_was_not_used(make_env: Callable[..., Env]) -> None:
    """GIVEN this machine (GPU or not) WHEN an image becomes a clip THEN the sidecar's encoder agrees with
    what `nvenc_status` found, with a note whenever the GPU was not used."""
    env = make_env(video=SMALL, img2vid={"default_seconds": 1.0})
    make_image(env.inbox / "foto.jpg")
    assert env.once() == 0
    facts = env.sidecar("foto")["stages"][0]["facts"]
    ok, why = nvenc_status()
    if ok:
        assert facts["encoder"] == "h264_nvenc" and "encoder_note" not in facts
    else:
        assert facts["encoder"] == "libx264" and why in facts["encoder_note"]


def test_doctor_reports_gpu_encoding(make_env: Callable[..., Env]) -> None:
    """GIVEN `omad doctor` THEN one line says whether h264_nvenc encodes here and what renders use otherwise."""
    env = make_env()
    out = subprocess.run([sys.executable, "-m", "omad.cli", "doctor", "--config", str(env.root / "omad.yaml")],
                         capture_output=True, text=True, timeout=120).stdout
    line = next(line for line in out.splitlines() if "GPU encoding" in line)
    ok, why = nvenc_status()
    assert why in line and (ok or "libx264" in line)
