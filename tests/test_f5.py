"""The F5-TTS engine: a user's checkpoint, vocab, vocoder and voice turned into pt-BR narration.

Checkpoints and vocoders are built here with f5-tts's and vocos's own classes
and random weights (``tests/f5_tiny.py``), saved in the layouts F5 writes, and
loaded through omad's real loader; the reference voice is real espeak-ng
speech; ffmpeg prepares and finishes the audio. The voices are noise, but
every file, shape check, residency step and error path is the real one.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from whisper_tiny import base_whisper, models_with  # noqa: F401  (a session fixture)

from omad.config import Config
from omad.errors import ConfigError, InputError, StageFailed, ToolMissing, TransientError
from omad.lanes import Lanes
from omad.media.audio_prep import finish_speech, pause_cut, prepare_reference, read_wav, speech_bounds, write_wav
from omad.tts import Synthesis, TtsEngine, Voice, engine_for

pytestmark = pytest.mark.f5


def _f5_missing() -> str | None:
    from omad.tts.f5.imports import require_f5

    try:
        require_f5()
    except ToolMissing as e:
        return e.message
    return None


_MISSING = _f5_missing()
needs_f5 = pytest.mark.skipif(_MISSING is not None, reason=f"omad[f5] extra not importable: {_MISSING}")

REF_TEXT = "Olá, esta é a minha voz de referência para o teste."
SENTENCE = "Bom dia! O relatório de vendas de março está pronto para revisão."


def _espeak(text: str, out: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "pt-br", "-w", str(out), text], check=True, capture_output=True)
    return out


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """GIVEN a user's F5 files: tiny checkpoints in every layout, vocab, Vocos folder, a spoken reference."""
    if _MISSING is not None:
        pytest.skip(f"omad[f5] extra not importable: {_MISSING}")
    import f5_tiny as ft

    d = tmp_path_factory.mktemp("f5kit")
    n = ft.write_vocab(d / "vocab.txt")
    model = ft.build_model(ft.tiny_shape(n))
    files = {
        "vocab": d / "vocab.txt",
        "safetensors": ft.save_checkpoint(model, d / "model_last.safetensors", "safetensors"),
        "pt-ema": ft.save_checkpoint(model, d / "model_1000.pt", "pt-ema"),
        "pt-model": ft.save_checkpoint(model, d / "model_plain.pt", "pt-model"),
        "vocoder": ft.write_vocos(d / "vocos"),
        "reference": _espeak(REF_TEXT, d / "voz.wav"),
    }
    return files


def _config(kit: dict[str, Path], layout: str = "safetensors", **f5: Any) -> Config:
    cfg = Config()
    opts = cfg.tts.f5
    opts.checkpoint = str(kit[layout])
    opts.vocab = str(kit["vocab"])
    opts.vocoder = str(kit["vocoder"])
    opts.reference.audio = str(kit["reference"])
    opts.reference.text = REF_TEXT
    for key, value in f5.items():
        setattr(opts, key, value)
    return cfg


# -- the happy path ---------------------------------------------------------------------------------------


@needs_f5
@pytest.mark.parametrize("layout", ["safetensors", "pt-ema", "pt-model"])
def test_narrates_a_pt_br_sentence_from_each_checkpoint_layout(
    kit: dict[str, Path], tmp_path: Path, layout: str
) -> None:
    """GIVEN a checkpoint saved as F5 saves it (EMA .safetensors, or a .pt with ema/model state)
    WHEN a pt-BR sentence is narrated
    THEN a 24 kHz mono WAV of plausible length comes out, and the job record says how it ran."""
    from omad.tts.f5 import F5Engine

    engine = F5Engine(_config(kit, layout), None)
    out = tmp_path / "narracao.wav"
    result = engine.synthesize(SENTENCE, None, out)
    engine.close()

    assert isinstance(result, Synthesis) and result.path == out and result.sample_rate == 24000
    stream = _ffprobe(out)["streams"][0]
    assert (stream["codec_name"], stream["sample_rate"], stream["channels"]) == ("pcm_s16le", "24000", 1)
    # The reference speaks ~16 bytes/s; 68 bytes of text is about 4 s of speech.
    assert 2.0 < result.duration < 8.0
    assert math.isclose(float(_ffprobe(out)["format"]["duration"]), result.duration, abs_tol=0.01)
    facts = result.facts
    assert facts["device"] == "cpu" and facts["dtype"] == "fp32"
    assert facts["model"]["dim"] == 64 and facts["model"]["depth"] == 2 and facts["model"]["heads"] == 2
    assert facts["rtf"] > 0 and facts["synth_seconds"] > 0 and facts["peak_rss_mb"] > 0
    assert any("CPU: tens of times slower than real time" in w for w in facts["warnings"])
    samples, _ = read_wav(out)
    assert np.abs(samples).max() > 0.05  # loudness-normalised speech, not silence


@needs_f5
def test_engine_is_a_tts_engine_chosen_by_name(kit: dict[str, Path]) -> None:
    from omad.tts.f5 import F5Engine

    engine = engine_for(_config(kit), None, name="f5")
    assert isinstance(engine, F5Engine) and isinstance(engine, TtsEngine)
    assert (engine.name, engine.lane) == ("f5", "gpu")


@needs_f5
def test_a_brief_brings_its_own_reference_voice(kit: dict[str, Path], tmp_path: Path) -> None:
    """GIVEN no reference in the config, but a brief voice with a recording and its transcript
    THEN the brief's voice is used; without the transcript (and no Whisper model to write it) the error names
    both ways out."""
    from omad.tts.f5 import F5Engine

    cfg = _config(kit)
    cfg.tts.f5.reference.audio = ""
    cfg.tts.f5.reference.text = ""
    ref = _espeak("Eu sou outra voz, gravada no pacote.", tmp_path / "minha voz.wav")
    engine = F5Engine(cfg, None)
    result = engine.synthesize(
        "Tudo certo.",
        Voice(reference_audio=ref, reference_text="Eu sou outra voz, gravada no pacote."),
        tmp_path / "a.wav",
    )
    assert result.duration > 0.3
    cfg.models.dir = str(tmp_path / "no-models")
    with pytest.raises(ToolMissing, match=r"omad models pull whisper-base.*voice\.reference_text"):
        F5Engine(cfg, None).synthesize("Tudo certo.", Voice(reference_audio=ref), tmp_path / "b.wav")
    with pytest.raises(ConfigError, match=r"tts\.f5\.reference\.audio is not set"):
        engine.synthesize("Tudo certo.", None, tmp_path / "c.wav")
    engine.close()


@needs_f5
@pytest.mark.slow
def test_a_reference_without_text_is_transcribed_and_recorded(kit: dict[str, Path], tmp_path: Path,
                                                              base_whisper: Path) -> None:  # noqa: F811
    """GIVEN the config's reference recording with no transcript, and the real Whisper base installed
    THEN F5 narrates with the transcript Whisper wrote, and the job record says so (text, model, where it cut)."""
    from omad.tts.f5 import F5Engine

    cfg = _config(kit)
    cfg.tts.f5.reference.text = ""
    cfg.models.dir = str(models_with(tmp_path / "models", base=base_whisper))
    engine = F5Engine(cfg, None)
    result = engine.synthesize("Tudo certo.", None, tmp_path / "a.wav")
    ref = result.facts["reference"]
    assert ref["reference_text_from"] == "whisper" and ref["model"] == "base" and ref["language"] == "pt"
    assert ref["reference_text"].strip() and ref["cut_at_seconds"] <= 12.0
    engine.close()


# -- the GPU lane -----------------------------------------------------------------------------------------


@needs_f5
def test_model_stays_warm_between_syntheses_and_idle_unload_frees_it(kit: dict[str, Path], tmp_path: Path) -> None:
    """GIVEN the engine on the daemon's lanes
    WHEN it narrates twice THEN the model is loaded once;
    WHEN the model sits idle past gpu.idle_unload_seconds THEN it is unloaded and its memory freed."""
    from omad.tts.f5 import F5Engine
    from omad.tts.f5.loader import LoadedF5

    cfg = _config(kit)
    lanes = Lanes(1, vram_budget_gb=cfg.gpu.vram_budget_gb, idle_unload_seconds=cfg.gpu.idle_unload_seconds)
    engine = F5Engine(cfg, lanes)
    first = engine.synthesize("Primeira frase.", None, tmp_path / "1.wav")
    second = engine.synthesize("Segunda frase.", None, tmp_path / "2.wav")
    key = engine.residency_key("cpu", "fp32")
    assert lanes.residency.loads == {key: 1} and engine.loads == 1
    assert first.facts["model_loaded"] is True and second.facts["model_loaded"] is False
    assert [r["model"] for r in lanes.residency.snapshot()] == [key]

    def not_again() -> LoadedF5:
        raise AssertionError("the model should still be resident")

    with lanes.residency.acquire(key, 0.0, not_again, LoadedF5.release) as loaded:
        model_ref = weakref.ref(loaded.model)
    assert lanes.residency.unload_idle(now=time.monotonic() + cfg.gpu.idle_unload_seconds + 1) == [key]
    gc.collect()
    assert model_ref() is None, "the unloaded model is still referenced somewhere"
    assert lanes.residency.snapshot() == []

    third = engine.synthesize("Terceira frase.", None, tmp_path / "3.wav")
    assert third.facts["model_loaded"] is True and lanes.residency.loads == {key: 2}
    lanes.residency.close()


@needs_f5
def test_cuda_out_of_memory_retries_shorter_chunks_then_the_cpu(kit: dict[str, Path]) -> None:
    """GIVEN a GPU whose memory runs out for anything but short chunks (simulated: there is no GPU here)
    THEN the text is split further; when even the shortest chunk fails the rest runs on the CPU
    with cpu_fallback, and without it the job is a retryable error from the OOM."""
    import torch

    from omad.tts import f5
    from omad.tts.f5.loader import LoadedF5

    engine = f5.F5Engine(_config(kit), None)
    ref = engine._reference(None, kit["vocab"].parent, 60)
    gpu = LoadedF5(object(), object(), None, {}, "cuda", "fp16", 0.0)  # type: ignore[arg-type]
    attempts: list[tuple[str, str]] = []
    spoken: list[str] = []

    def chunk(self: Any, loaded: LoadedF5, text: str) -> np.ndarray:
        attempts.append((loaded.device, text))
        if loaded.device == "cuda" and len(text) > 30:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        spoken.append(text)
        return np.full(2400, 0.1, dtype=np.float32)

    text = "Uma frase longa, com vírgulas, que não cabe na memória da placa de vídeo de quatro gigas."
    mp = pytest.MonkeyPatch()
    mp.setattr(f5._ChunkRunner, "engine_chunk", chunk)
    try:
        runner = f5._ChunkRunner(engine, gpu, ref, time.monotonic() + 60, engine.options)
        waves, retries, fallback = runner.all([text])
        assert not fallback and retries >= 1 and len(waves) == len(spoken) >= 3
        assert " ".join(spoken) == text, "every word is spoken once, in order"
        assert all(len(t) <= 30 for t in spoken) and {d for d, _ in attempts} == {"cuda"}

        attempts.clear()
        spoken.clear()
        long_word = "Umapalavrasemespaçosquenãocabenada"
        waves, retries, fallback = f5._ChunkRunner(engine, gpu, ref, time.monotonic() + 60, engine.options).all(
            [f"{long_word} em nada"]
        )
        assert fallback and len(waves) == 2 and spoken == [long_word, "em nada"]
        assert attempts[-2:] == [("cpu", long_word), ("cpu", "em nada")]

        engine.options.cpu_fallback = False
        with pytest.raises(TransientError, match="out of memory") as err:
            f5._ChunkRunner(engine, gpu, ref, time.monotonic() + 60, engine.options).all([long_word])
        assert isinstance(err.value.__cause__, torch.OutOfMemoryError)
    finally:
        mp.undo()
        engine.close()


@needs_f5
def test_torch_errors_during_synthesis_leave_as_omad_errors(
    kit: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from omad.tts import f5

    engine = f5.F5Engine(_config(kit), None)
    cases: list[tuple[BaseException, type[Exception]]] = [
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), StageFailed),
        (torch.OutOfMemoryError("out of memory"), TransientError),
        (MemoryError(), TransientError),
        (ValueError("odd"), StageFailed),
    ]
    for raised, expected in cases:

        def boom(*_: Any, exc: BaseException = raised) -> np.ndarray:
            raise exc

        monkeypatch.setattr(f5.synth, "synthesize_chunk", boom)  # where the chunk runner calls it
        with pytest.raises(expected) as err:
            engine.synthesize("Olá.", None, tmp_path / "x.wav")
        assert err.value.__cause__ is raised
    engine.close()


@needs_f5
def test_bf16_on_the_cpu_runs_under_autocast_with_a_full_precision_time_grid(kit: dict[str, Path]) -> None:
    """bf16 weights would make F5's ODE time steps collide (7 mantissa bits); autocast keeps them fp32."""
    import torch

    from omad.config import F5Config
    from omad.tts.f5 import F5Engine, synthesize_chunk
    from omad.tts.f5.loader import load_f5

    ref = F5Engine(_config(kit), None)._reference(None, kit["vocab"].parent, 60)
    lengths = []
    for dtype in ("fp32", "bf16"):
        loaded = load_f5(kit["safetensors"], kit["vocab"], kit["vocoder"], device="cpu", dtype=dtype)
        assert next(loaded.model.parameters()).dtype == torch.float32
        wave = synthesize_chunk(loaded, ref.samples, ref.text, "Bom dia a todos.", F5Config(nfe_step=32))
        assert np.isfinite(wave).all() and np.abs(wave).max() > 0
        lengths.append(len(wave))
        loaded.release()
    assert lengths[0] == lengths[1]


# -- the loader -------------------------------------------------------------------------------------------


@needs_f5
def test_full_size_shapes_are_inferred_from_meta_tensors() -> None:
    """GIVEN the state dict of the pt-BR F5TTS_v1_Base fine-tune, as meta tensors (no RAM)
    THEN the loader reads dim 1024, depth 22, heads 16 ... off the shapes."""
    import torch

    from omad.tts.f5.loader import EMA_PREFIX, infer_model_shape

    full = {
        "dim": 1024,
        "depth": 22,
        "heads": 16,
        "dim_head": 64,
        "ff_mult": 2,
        "mel_dim": 100,
        "text_num_embeds": 2545,
        "text_dim": 512,
        "conv_layers": 4,
    }
    state: dict[str, Any] = {
        "transformer.text_embed.text_embed.weight": torch.empty((2546, 512), device="meta"),
        "transformer.input_embed.proj.weight": torch.empty((1024, 712), device="meta"),
        "transformer.proj_out.weight": torch.empty((100, 1024), device="meta"),
        "transformer.rotary_embed.inv_freq": torch.empty((32,), device="meta"),
    }
    for i in range(22):
        for name, dims in (("attn.to_q.weight", (1024, 1024)), ("ff.ff.0.0.weight", (2048, 1024))):
            state[f"transformer.transformer_blocks.{i}.{name}"] = torch.empty(dims, device="meta")
    for i in range(4):
        state[f"transformer.text_embed.text_blocks.{i}.pwconv1.weight"] = torch.empty((1024, 512), device="meta")
    shape = infer_model_shape(state)
    assert {k: v for k, v in shape.as_dict().items() if k in full} == full
    assert shape.qk_norm is None and not shape.long_skip_connection

    # A checkpoint without the rotary buffer: heads counted with F5's 64-wide heads.
    del state["transformer.rotary_embed.inv_freq"]
    assert (infer_model_shape(state).heads, infer_model_shape(state).dim_head) == (16, 64)

    # And the real module's full state dict (every key F5 saves) on the meta device, EMA-prefixed.
    import f5_tiny as ft

    with torch.device("meta"):
        model = ft.build_model(ft.FULL_SHAPE)
    ema = {EMA_PREFIX + k: v for k, v in model.state_dict().items()}
    assert infer_model_shape({k.removeprefix(EMA_PREFIX): v for k, v in ema.items()}) == ft.FULL_SHAPE


@needs_f5
@pytest.mark.parametrize("layout", ["safetensors", "pt-ema", "pt-model"])
def test_state_dict_is_read_from_each_layout(kit: dict[str, Path], layout: str) -> None:
    import f5_tiny as ft

    from omad.tts.f5.loader import infer_model_shape, read_state_dict, read_vocab

    state = read_state_dict(kit[layout])
    assert not any(k.startswith("ema_model.") or k in ("initted", "step") for k in state)
    assert infer_model_shape(state) == ft.tiny_shape(len(read_vocab(kit["vocab"])))


@needs_f5
def test_files_that_do_not_belong_together_fail_with_one_message(kit: dict[str, Path], tmp_path: Path) -> None:
    """GIVEN a vocab with fewer tokens than the checkpoint's text embedding and an 80-band vocoder
    THEN loading fails once, listing each expected and found value."""
    import f5_tiny as ft

    from omad.tts.f5 import F5Engine

    vocab = tmp_path / "vocab.txt"
    ft.write_vocab(vocab, ft.PT_BR_CHARS[:80])
    vocoder = ft.write_vocos(tmp_path / "vocos80", n_mels=80)
    cfg = _config(kit, vocab=str(vocab), vocoder=str(vocoder))
    with pytest.raises(ConfigError) as err:
        F5Engine(cfg, None).synthesize(SENTENCE, None, tmp_path / "x.wav")
    message = str(err.value)
    n = len(dict.fromkeys(ft.PT_BR_CHARS))
    assert f"vocab size (tts.f5.vocab lines): expected {n}, found 80" in message
    assert "mel channels of the vocoder (tts.f5.vocoder): expected 100, found 80" in message
    assert f"{n + 1} rows (vocab + 1 filler)" in message
    assert err.value.file == str(kit["safetensors"])
    assert {m["found"] for m in err.value.details["mismatches"]} == {80}


@needs_f5
@pytest.mark.parametrize("key", ["checkpoint", "vocab", "vocoder", "reference.audio"])
def test_a_missing_file_names_its_path_and_config_key(kit: dict[str, Path], tmp_path: Path, key: str) -> None:
    from omad.tts.f5 import F5Engine

    cfg = _config(kit)
    missing = tmp_path / "não existe" / "arquivo"
    if key == "reference.audio":
        cfg.tts.f5.reference.audio = str(missing)
    else:
        setattr(cfg.tts.f5, key, str(missing))
    with pytest.raises(ConfigError) as err:
        F5Engine(cfg, None).synthesize(SENTENCE, None, tmp_path / "x.wav")
    assert f"tts.f5.{key}" in str(err.value) and str(missing) in str(err.value)
    assert "never downloads" in str(err.value)


@needs_f5
def test_a_vocoder_folder_without_weights_is_named(kit: dict[str, Path], tmp_path: Path) -> None:
    from omad.tts.f5 import F5Engine

    folder = tmp_path / "vocos"
    folder.mkdir()
    shutil.copy(kit["vocoder"] / "config.yaml", folder)
    with pytest.raises(ConfigError, match=r"no pytorch_model\.bin.*tts\.f5\.vocoder"):
        F5Engine(_config(kit, vocoder=str(folder)), None).synthesize(SENTENCE, None, tmp_path / "x.wav")


@needs_f5
@pytest.mark.parametrize("name", ["model_last.safetensors", "model_1000.pt"])
def test_a_damaged_checkpoint_is_a_clear_config_error(kit: dict[str, Path], tmp_path: Path, name: str) -> None:
    from omad.tts.f5 import F5Engine

    broken = tmp_path / name
    broken.write_bytes(kit["safetensors" if name.endswith("safetensors") else "pt-ema"].read_bytes()[:5000])
    with pytest.raises(ConfigError, match="not a readable F5-TTS checkpoint.*damaged") as err:
        F5Engine(_config(kit, checkpoint=str(broken)), None).synthesize(SENTENCE, None, tmp_path / "x.wav")
    assert err.value.file == str(broken) and err.value.__cause__ is not None


@needs_f5
def test_a_damaged_reference_is_an_input_error_for_a_brief_and_a_config_error_for_the_config(
    kit: dict[str, Path], tmp_path: Path
) -> None:
    from omad.tts.f5 import F5Engine

    junk = tmp_path / "voz.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8)
    engine = F5Engine(_config(kit), None)
    with pytest.raises(InputError):
        engine.synthesize(SENTENCE, Voice(reference_audio=junk, reference_text="Olá."), tmp_path / "x.wav")
    cfg = _config(kit)
    cfg.tts.f5.reference.audio = str(junk)
    with pytest.raises(ConfigError, match=r"tts\.f5\.reference\.audio") as err:
        F5Engine(cfg, None).synthesize(SENTENCE, None, tmp_path / "y.wav")
    assert isinstance(err.value.__cause__, InputError)


# -- without the extra ------------------------------------------------------------------------------------


def test_importing_the_engine_module_does_not_import_torch() -> None:
    code = "import sys, omad.tts.f5; assert 'torch' not in sys.modules and 'f5_tts' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("absent", ["f5_tts", "torch"])
def test_without_the_extra_choosing_f5_gives_one_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, absent: str
) -> None:
    """GIVEN omad installed without omad[f5] (simulated: the package cannot be imported)
    WHEN a narration asks for the f5 engine THEN one ToolMissing says how to install it."""
    from omad.tts.f5 import F5Engine, doctor_checks

    monkeypatch.setitem(sys.modules, absent, None)
    cfg = Config()
    cfg.tts.engine = "f5"
    engine = engine_for(cfg, None)
    assert isinstance(engine, F5Engine)
    with pytest.raises(ToolMissing) as err:
        engine.synthesize(SENTENCE, None, tmp_path / "x.wav")
    assert absent in str(err.value) and "pip install 'omad[f5]'" in str(err.value)
    assert ".venv/bin/pip install -e '.[f5]'" in str(err.value)
    checks = {name: (ok, msg) for name, ok, msg in doctor_checks(cfg)}
    assert checks["f5: extra installed"][0] is False and "omad[f5]" in checks["f5: extra installed"][1]


@needs_f5
def test_doctor_says_f5_runs_slowly_on_the_cpu_and_checks_the_files(kit: dict[str, Path]) -> None:
    from omad.tts.f5 import doctor_checks

    checks = {name: (ok, msg) for name, ok, msg in doctor_checks(_config(kit))}
    assert checks["f5: extra installed"][0] is True
    assert checks["f5: CUDA"] == (False, "no CUDA device: F5 will run on the CPU: tens of times slower than real time.")
    assert checks["f5: checkpoint, vocab, vocoder"][0] is True
    assert checks["f5: reference voice"][0] is True

    broken = _config(kit, checkpoint="/nowhere/model.safetensors")
    checks = {name: (ok, msg) for name, ok, msg in doctor_checks(broken)}
    assert checks["f5: checkpoint, vocab, vocoder"][0] is False
    assert "tts.f5.checkpoint" in checks["f5: checkpoint, vocab, vocoder"][1]


# -- reference and output audio ---------------------------------------------------------------------------


def _tone(seconds: float, rate: int = 24000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_a_long_reference_is_cut_at_a_pause_to_at_most_12_seconds(tmp_path: Path) -> None:
    """GIVEN a 44.1 kHz stereo recording of 16 s: speech bursts with pauses at 5 s, 9.5 s and 13 s
    THEN the reference becomes mono 24 kHz, cut in the pause near 9.5 s, loudness-normalised."""
    rate = 24000
    parts = [
        _tone(0.4) * 0,
        _tone(4.4),
        np.zeros(int(0.4 * rate), np.float32),
        _tone(4.1),
        np.zeros(int(0.5 * rate), np.float32),
        _tone(3.3),
        np.zeros(int(0.4 * rate), np.float32),
        _tone(2.5),
    ]
    mono = tmp_path / "mono.wav"
    write_wav(mono, np.concatenate(parts) * 0.2, rate)
    source = tmp_path / "long.flac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(mono), "-ac", "2", "-ar", "44100", str(source)], check=True
    )
    prepared = prepare_reference(source, tmp_path / "ref.wav")
    stream = _ffprobe(prepared.path)["streams"][0]
    assert (stream["sample_rate"], stream["channels"]) == ("24000", 1)
    assert prepared.cut_at_pause and prepared.cut_at is not None and 8.5 < prepared.cut_at < 9.3
    assert prepared.duration <= 12.0 and prepared.original_duration > 15.5
    assert prepared.warnings and "transcript should cover only that part" in prepared.warnings[0]
    samples, _ = read_wav(prepared.path)
    rms_db = 20 * np.log10(np.sqrt(np.mean(samples**2)))
    assert -24 < rms_db < -16  # raised from about -27 dBFS towards -20 LUFS


def test_a_short_reference_is_kept_whole_and_a_silent_one_refused(tmp_path: Path) -> None:
    ref = _espeak(REF_TEXT, tmp_path / "voz.wav")
    prepared = prepare_reference(ref, tmp_path / "ref.wav")
    assert prepared.cut_at is None and not prepared.warnings
    assert abs(prepared.duration - prepared.original_duration) < 0.5

    silent = tmp_path / "silencio.wav"
    write_wav(silent, np.zeros(48000, np.float32), 24000)
    with pytest.raises(InputError, match="silent"):
        prepare_reference(silent, tmp_path / "ref2.wav")


def test_pause_cut_falls_back_when_there_is_no_pause() -> None:
    assert pause_cut(_tone(15.0), 24000, 12.0) is None


def test_synthesised_speech_is_trimmed_and_normalised(tmp_path: Path) -> None:
    rate = 24000
    speech = np.concatenate([np.zeros(rate, np.float32), _tone(2.0) * 0.05, np.zeros(2 * rate, np.float32)])
    seconds = finish_speech(speech, rate, tmp_path / "out.wav", loudness_lufs=-16.0, true_peak_db=-1.5)
    assert 2.0 <= seconds <= 2.2
    samples, got_rate = read_wav(tmp_path / "out.wav")
    assert got_rate == rate and speech_bounds(samples, rate) is not None
    assert np.abs(samples).max() > 0.2  # raised from a peak of 0.015
    with pytest.raises(StageFailed, match="only silence"):
        finish_speech(np.zeros(rate, np.float32), rate, tmp_path / "s.wav", loudness_lufs=-16.0, true_peak_db=-1.5)
