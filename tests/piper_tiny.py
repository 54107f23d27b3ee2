"""A tiny Piper voice built with the ``onnx`` package, for tests and the timing corpus.

The model has Piper's own interface (inputs ``input`` int64 [1, N],
``input_lengths`` int64 [1], ``scales`` float32 [3] = noise, length,
noise_w, and ``sid`` int64 [1] for a multi-speaker voice; output ``output``
float32 [1, 1, T]) and, like a VITS export, its per-phoneme-id durations pass
through one ``Ceil`` node (``w_ceil``). With ``alignment=True`` that tensor is
a second graph output, as ``piper.patch_voice_with_alignment`` leaves it.

Every phoneme id lasts a known number of frames (``duration_frames(id)``,
times the length scale, rounded up) of ``hop_length`` samples, and sounds a
sine whose pitch depends on the id; the word separator, punctuation and
BOS/EOS are silent. So where each word starts is known exactly: the
reference for the timing tests. The voice speaks no words anyone would
recognise; nothing here is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

NUM_SYMBOLS = 256
HOP = 256
SILENT = {" ", "_", "^", "$", ",", ".", "!", "?", ":", ";", "-", "(", ")"}


def duration_frames(phoneme_id: int) -> int:
    """Frames each phoneme id lasts at length scale 1 (2 to 5 for sounds, 0 for the PAD)."""
    if phoneme_id == DEFAULT_PHONEME_ID_MAP["_"][0]:
        return 0
    if phoneme_id == DEFAULT_PHONEME_ID_MAP[" "][0]:
        return 3
    return 2 + phoneme_id % 4


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    silent_ids = {DEFAULT_PHONEME_ID_MAP[p][0] for p in SILENT}
    durations = np.array([duration_frames(i) for i in range(NUM_SYMBOLS)], dtype=np.float32)
    amplitude = np.array([0.0 if i in silent_ids else 0.5 for i in range(NUM_SYMBOLS)], dtype=np.float32)
    freq = np.array([120.0 + 7.0 * (i % 60) for i in range(NUM_SYMBOLS)], dtype=np.float32)
    return durations, amplitude, freq


def build_model(path: Path, *, sample_rate: int = 16000, speakers: int = 1, alignment: bool = False,
                ceil: bool = True) -> Path:
    """Write the tiny model to ``path`` (see the module docstring).

    ``ceil=False`` rounds the durations with ``Round`` instead: a voice whose
    alignment cannot be patched in (Piper finds no ``Ceil`` tensor).
    """
    durations, amplitude, freq = _tables()
    inits = [
        numpy_helper.from_array(durations, "dur_table"),
        numpy_helper.from_array(amplitude, "amp_table"),
        numpy_helper.from_array(freq, "freq_table"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one_i"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero_i"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_s"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_s"),
        numpy_helper.from_array(np.array(HOP, dtype=np.int64), "hop"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "col"),
        numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "row"),
        numpy_helper.from_array(np.array([1, 1, -1], dtype=np.int64), "out_shape"),
        numpy_helper.from_array(np.array(2 * np.pi / sample_rate, dtype=np.float32), "two_pi_over_sr"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one_f"),
    ]
    nodes = [
        helper.make_node("Gather", ["scales", "one_i"], ["length_scale"]),  # [1]
        helper.make_node("Gather", ["scales", "zero_i"], ["noise_scale"]),  # [1]
        helper.make_node("Squeeze", ["input", "zero_i"], ["ids"]),  # [N]
        helper.make_node("Gather", ["dur_table", "ids"], ["dur"]),  # [N]
        helper.make_node("Mul", ["dur", "length_scale"], ["dur_scaled"]),
        helper.make_node("Ceil" if ceil else "Round", ["dur_scaled"], ["w_ceil_flat"]),
        helper.make_node("Reshape", ["w_ceil_flat", "out_shape"], ["w_ceil"]),  # [1, 1, N] as VITS has it
        helper.make_node("Cast", ["w_ceil_flat"], ["frames"], to=TensorProto.INT64),
        helper.make_node("CumSum", ["frames", "zero_s"], ["ends"]),  # frame where each id ends
        helper.make_node("ReduceSum", ["frames"], ["total_frames"], keepdims=0),
        helper.make_node("Mul", ["total_frames", "hop"], ["total_samples"]),
        helper.make_node("Range", ["zero_s", "total_samples", "one_s"], ["n"]),  # [T]
        helper.make_node("Div", ["n", "hop"], ["frame_of_sample"]),
        helper.make_node("Reshape", ["frame_of_sample", "col"], ["f_col"]),  # [T, 1]
        helper.make_node("Reshape", ["ends", "row"], ["e_row"]),  # [1, N]
        helper.make_node("GreaterOrEqual", ["f_col", "e_row"], ["passed"]),
        helper.make_node("Cast", ["passed"], ["passed_i"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["passed_i", "axis1"], ["which"], keepdims=0),  # [T] index into ids
        helper.make_node("Gather", ["ids", "which"], ["sample_ids"]),
        helper.make_node("Gather", ["amp_table", "sample_ids"], ["amp"]),
        helper.make_node("Gather", ["freq_table", "sample_ids"], ["freq"]),
        helper.make_node("Cast", ["n"], ["n_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["n_f", "two_pi_over_sr"], ["t"]),
        helper.make_node("Mul", ["t", "freq"], ["phase0"]),
    ]
    inputs = [
        helper.make_tensor_value_info("input", TensorProto.INT64, [1, "N"]),
        helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
    ]
    if speakers > 1:
        # Each speaker an octave-ish apart: a two-speaker video is audibly two voices.
        inputs.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        nodes += [
            helper.make_node("Cast", ["sid"], ["sid_f"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["sid_f", "one_f"], ["pitch"]),
            helper.make_node("Mul", ["phase0", "pitch"], ["phase"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["phase0"], ["phase"]))
    nodes += [
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Mul", ["wave", "amp"], ["voiced"]),
        # noise_scale changes the loudness a little, so a test can see the option reached the model
        helper.make_node("Add", ["noise_scale", "one_f"], ["gain"]),
        helper.make_node("Mul", ["voiced", "gain"], ["audio_flat"]),
        helper.make_node("Reshape", ["audio_flat", "out_shape"], ["output"]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "T"])]
    if alignment:
        outputs.append(helper.make_tensor_value_info("w_ceil", TensorProto.FLOAT, [1, 1, "N"]))
    graph = helper.make_graph(nodes, "tiny_piper", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="omad-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_voice(folder: Path, name: str = "pt_BR-tiny-medium", *, sample_rate: int = 16000, speakers: int = 1,
                alignment: bool = False, ceil: bool = True, espeak_voice: str = "pt-br", language: str = "pt_BR",
                quality: str = "medium") -> Path:
    """A voice as ``omad models pull`` lays it out: ``<folder>/<name>.onnx`` and ``.onnx.json``; returns the .onnx."""
    onnx_path = build_model(folder / f"{name}.onnx", sample_rate=sample_rate, speakers=speakers, alignment=alignment,
                            ceil=ceil)
    family, _, speaker = language.partition("_")
    config = {
        "audio": {"sample_rate": sample_rate, "quality": quality},
        "espeak": {"voice": espeak_voice},
        "language": {"code": language, "family": family, "region": speaker, "name_native": "Português",
                     "name_english": "Portuguese"},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": DEFAULT_PHONEME_ID_MAP,
        "num_symbols": NUM_SYMBOLS,
        "num_speakers": speakers,
        "speaker_id_map": {f"speaker{i}": i for i in range(speakers)} if speakers > 1 else {},
        "piper_version": "1.0.0",
        "dataset": name,
    }
    (folder / f"{name}.onnx.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    (folder / "MODEL_CARD").write_text(f"# Model card for {name}\n\n* License: MIT (a test voice)\n", encoding="utf-8")
    return onnx_path


def install_voice(models_dir: Path, name: str = "pt_BR-tiny-medium", **options: object) -> Path:
    """The voice written where ``tts.piper.voice: <name>`` finds it: ``<models_dir>/piper/<name>/``."""
    return write_voice(models_dir / "piper" / name, name, **options)  # type: ignore[arg-type]


def expected_onsets(text: str, length_scale: float = 1.0, sample_rate: int = 16000) -> list[float]:
    """Where each word starts in the tiny voice's speech, from its known durations (the exact reference)."""
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP, phonemes_to_ids
    from piper.phonemize_espeak import EspeakPhonemizer

    onsets: list[float] = []
    offset = 0
    for phonemes in EspeakPhonemizer().phonemize("pt-br", text):
        ids = phonemes_to_ids(phonemes, DEFAULT_PHONEME_ID_MAP)
        frames = [int(np.ceil(np.float32(duration_frames(i)) * np.float32(length_scale))) for i in ids]
        position, at_word_start = 2, True  # after BOS and its PAD
        for p in phonemes:
            if at_word_start and p not in " ,.?!":
                onsets.append((offset + HOP * sum(frames[:position])) / sample_rate)
                at_word_start = False
            if p == " ":
                at_word_start = True
            position += 2
        offset += HOP * sum(frames)
    return onsets
