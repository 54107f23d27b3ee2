"""Loading an F5-TTS checkpoint, its vocab and a local Vocos vocoder, offline.

Owns reading the three files the ``f5`` engine is configured with, inferring
the DiT's hyper-parameters from the checkpoint's tensor shapes (so a user never
types them), checking them against the vocab and the vocoder, and reporting
every disagreement in one message. ``infer_model_shape`` works on anything with
a ``.shape`` (meta tensors, safetensors slices), so it needs no RAM.

It never reaches a model hub: every file comes from a configured local path,
and f5-tts's own loaders (which download when a path is empty) are not used.
torch and f5-tts are imported inside functions only.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, ToolMissing
from .imports import require_f5

__all__ = [
    "EMA_PREFIX",
    "ModelShape",
    "LoadedF5",
    "infer_model_shape",
    "read_vocab",
    "read_state_dict",
    "check_compatible",
    "load_f5",
    "MEL",
]

EMA_PREFIX = "ema_model."
# Keys an EMA wrapper or an old f5-tts version saves next to the weights; not part of the model.
_IGNORED_KEYS = {"initted", "step", "mel_spec.mel_stft.mel_scale.fb", "mel_spec.mel_stft.spectrogram.window"}

# The mel front end every F5/Vocos 24 kHz checkpoint is trained with.
MEL = {"target_sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mel_channels": 100}

# When a checkpoint lacks the rotary buffer, heads are counted assuming F5's default head size.
DEFAULT_DIM_HEAD = 64

_T = "transformer."
_BLOCK_RE = re.compile(r"^transformer\.transformer_blocks\.(\d+)\.")
_TEXT_BLOCK_RE = re.compile(r"^transformer\.text_embed\.text_blocks\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    """The DiT hyper-parameters a checkpoint was trained with (as ``f5_tts.model.DiT`` takes them)."""

    dim: int
    depth: int
    heads: int
    dim_head: int
    ff_mult: int
    mel_dim: int
    text_num_embeds: int
    text_dim: int
    conv_layers: int
    qk_norm: str | None = None
    long_skip_connection: bool = False

    def dit_kwargs(self) -> dict[str, Any]:
        # text_mask_padding/pe_attn_head leave no trace in the weights: F5TTS_v1 values are assumed.
        return {**asdict(self), "text_mask_padding": True, "pe_attn_head": None}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shape(value: Any) -> tuple[int, ...]:
    shape = value.shape if hasattr(value, "shape") else value.get_shape()
    return tuple(int(x) for x in shape)


def infer_model_shape(state: Mapping[str, Any], *, source: str = "checkpoint") -> ModelShape:
    """Read the DiT's hyper-parameters off the tensor shapes of a model state dict (keys without ``ema_model.``).

    ``dim_head`` comes from the rotary embedding's ``inv_freq`` (dim_head / 2
    entries); if that buffer is absent it is taken to be 64, F5's default.
    The text embedding has one row more than the vocab: row 0 is F5's filler
    token, so ``text_num_embeds`` is rows - 1.
    """

    def get(key: str) -> tuple[int, ...]:
        if key not in state:
            raise ConfigError(
                f"{source} is not an F5-TTS DiT checkpoint: it has no '{key}' tensor. "
                "Point tts.f5.checkpoint at a model_*.safetensors or model_*.pt trained with F5-TTS.",
                details={"missing_key": key},
            )
        return _shape(state[key])

    text_rows, text_dim = get(_T + "text_embed.text_embed.weight")
    dim, proj_in = get(_T + "input_embed.proj.weight")
    mel_dim = get(_T + "proj_out.weight")[0]
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK_RE.match(k))}
    if not blocks:
        get(_T + "transformer_blocks.0.attn.to_q.weight")
    depth = max(blocks) + 1
    inner = get(_T + "transformer_blocks.0.attn.to_q.weight")[0]
    rotary = _T + "rotary_embed.inv_freq"
    dim_head = 2 * _shape(state[rotary])[0] if rotary in state else DEFAULT_DIM_HEAD
    ff_inner = get(_T + "transformer_blocks.0.ff.ff.0.0.weight")[0]
    conv_layers = len({int(m.group(1)) for k in state if (m := _TEXT_BLOCK_RE.match(k))})
    shape = ModelShape(
        dim=dim,
        depth=depth,
        heads=inner // dim_head if dim_head else 0,
        dim_head=dim_head,
        ff_mult=ff_inner // dim if dim else 0,
        mel_dim=mel_dim,
        text_num_embeds=text_rows - 1,
        text_dim=text_dim,
        conv_layers=conv_layers,
        qk_norm="rms_norm" if (_T + "transformer_blocks.0.attn.q_norm.weight") in state else None,
        long_skip_connection=(_T + "long_skip_connection.weight") in state,
    )
    problems = []
    if sorted(blocks) != list(range(depth)):
        problems.append(f"transformer blocks are numbered {sorted(blocks)}, expected 0..{depth - 1}")
    if inner % dim_head:
        problems.append(f"attention width {inner} is not a multiple of the head size {dim_head}")
    if ff_inner % dim:
        problems.append(f"feed-forward width {ff_inner} is not a multiple of dim {dim}")
    if proj_in != 2 * mel_dim + text_dim:
        problems.append(
            f"input projection takes {proj_in} features, expected 2*mel_dim+text_dim = {2 * mel_dim + text_dim}"
        )
    if problems:
        raise ConfigError(
            f"{source} has inconsistent tensor shapes: " + "; ".join(problems) + ". The file may be damaged.",
            details={"problems": problems},
        )
    return shape


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt as F5 reads it: one token per line, the line number is its id, line 0 a space."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the vocab file ({e.strerror}) (tts.f5.vocab).", file=path) from e
    except UnicodeDecodeError as e:
        raise ConfigError("the vocab file is not UTF-8 text (tts.f5.vocab).", file=path) from e
    if not text:
        raise ConfigError("the vocab file is empty (tts.f5.vocab).", file=path)
    if not text.endswith("\n"):
        # F5 drops each line's last character as its newline: without one the last token would be cut.
        raise ConfigError("the vocab file must end with a newline (tts.f5.vocab); add one.", file=path)
    vocab: dict[str, int] = {}
    for i, line in enumerate(text.split("\n")[:-1]):
        vocab[line] = i
    if text.split("\n", 1)[0] != " ":
        raise ConfigError(
            "the vocab file's first line must be a single space (F5's id 0 for word breaks) (tts.f5.vocab).",
            file=path,
        )
    return vocab


def read_state_dict(path: Path, *, device: str = "cpu") -> dict[str, Any]:
    """The model weights of a checkpoint, without the ``ema_model.`` prefix.

    ``.safetensors`` is an EMA state dict (as F5 saves ``model_last.safetensors``);
    ``.pt`` holds ``ema_model_state_dict`` (preferred) or ``model_state_dict``.
    """
    require_f5()
    import torch

    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device=device)
        elif suffix in (".pt", ".pth", ".ckpt"):
            raw = torch.load(str(path), map_location=device, weights_only=True, mmap=True)
        else:
            raise ConfigError(
                f"unknown checkpoint type '{suffix}' (tts.f5.checkpoint): use .safetensors or .pt.", file=path
            )
    except ConfigError:
        raise
    except MemoryError as e:
        raise ConfigError("there is not enough memory to read the checkpoint (tts.f5.checkpoint).", file=path) from e
    except Exception as e:  # safetensors/pickle raise many types for a truncated or foreign file
        raise ConfigError(
            f"is not a readable F5-TTS checkpoint ({type(e).__name__}: {str(e)[:200]}). The file may be "
            "damaged or incomplete; copy it again (tts.f5.checkpoint).",
            file=path,
        ) from e
    if suffix != ".safetensors":
        if not isinstance(raw, dict):
            raise ConfigError("the .pt checkpoint does not hold a dictionary (tts.f5.checkpoint).", file=path)
        if isinstance(raw.get("ema_model_state_dict"), dict):
            raw = raw["ema_model_state_dict"]
        elif isinstance(raw.get("model_state_dict"), dict):
            raw = raw["model_state_dict"]
        else:
            raise ConfigError(
                "the .pt checkpoint has neither 'ema_model_state_dict' nor 'model_state_dict' "
                f"(found keys: {', '.join(sorted(map(str, raw))[:8]) or 'none'}) (tts.f5.checkpoint).",
                file=path,
            )
    state = {k.removeprefix(EMA_PREFIX): v for k, v in raw.items() if k.removeprefix(EMA_PREFIX) not in _IGNORED_KEYS}
    return state


def _vocoder_n_mels(vocoder_dir: Path) -> int | None:
    import yaml

    try:
        conf = yaml.safe_load((vocoder_dir / "config.yaml").read_text(encoding="utf-8"))
        value = conf["feature_extractor"]["init_args"]["n_mels"]
        return int(value)
    except Exception:  # an unusual but loadable config: Vocos itself will judge it
        return None


def check_compatible(
    shape: ModelShape, vocab: Mapping[str, int], *, vocoder_n_mels: int | None, checkpoint: Path
) -> None:
    """Raise one ConfigError listing every expected/found disagreement between the three files."""
    found: list[tuple[str, object, object]] = []
    if len(vocab) != shape.text_num_embeds:
        found.append(("vocab size (tts.f5.vocab lines)", shape.text_num_embeds, len(vocab)))
    if shape.mel_dim != MEL["n_mel_channels"]:
        found.append(("mel channels of the checkpoint", MEL["n_mel_channels"], shape.mel_dim))
    if vocoder_n_mels is not None and vocoder_n_mels != shape.mel_dim:
        found.append(("mel channels of the vocoder (tts.f5.vocoder)", shape.mel_dim, vocoder_n_mels))
    if not found:
        return
    listing = "; ".join(f"{what}: expected {exp}, found {got}" for what, exp, got in found)
    raise ConfigError(
        f"the F5 files do not belong together: {listing}. The checkpoint's text embedding has "
        f"{shape.text_num_embeds + 1} rows (vocab + 1 filler). Use the vocab.txt and vocoder the checkpoint "
        "was trained with.",
        file=checkpoint,
        details={
            "mismatches": [{"what": w, "expected": e, "found": g} for w, e, g in found],
            "inferred": shape.as_dict(),
        },
    )


class LoadedF5:
    """A model + vocoder on one device. ``release()`` drops them and returns CUDA memory to the driver."""

    def __init__(
        self,
        model: Any,
        vocoder: Any,
        shape: ModelShape,
        vocab: dict[str, int],
        device: str,
        dtype: str,
        load_seconds: float,
    ) -> None:
        self.model: Any = model
        self.vocoder: Any = vocoder
        self.shape = shape
        self.vocab = vocab
        self.device = device
        self.dtype = dtype
        self.load_seconds = load_seconds

    @property
    def released(self) -> bool:
        return self.model is None

    def release(self) -> None:
        self.model = None
        self.vocoder = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def load_f5(checkpoint: Path, vocab_file: Path, vocoder_dir: Path, *, device: str, dtype: str) -> LoadedF5:
    """Load and check everything; ``dtype`` is ``fp32``, ``fp16`` or ``bf16`` for the DiT (Vocos stays fp32).

    ``bf16`` keeps fp32 weights and is applied as autocast at synthesis time.

    Paths must already exist (the engine names the config key when they do
    not). Raises ConfigError for files that do not fit together or cannot be
    read, ToolMissing without the extra.
    """
    require_f5()
    from f5_tts.model import CFM, DiT

    started = time.monotonic()
    vocab = read_vocab(vocab_file)
    state = read_state_dict(checkpoint)
    shape = infer_model_shape(state, source=f"{checkpoint.name}")
    check_compatible(shape, vocab, vocoder_n_mels=_vocoder_n_mels(vocoder_dir), checkpoint=checkpoint)

    model = CFM(
        transformer=DiT(**shape.dit_kwargs()),
        mel_spec_kwargs={**MEL, "mel_spec_type": "vocos"},
        odeint_kwargs={"method": "euler"},
        vocab_char_map=vocab,
    )
    # assign: the checkpoint's tensors become the parameters, so the weights are not held twice in RAM.
    result = model.load_state_dict(state, strict=False, assign=True)
    del state
    missing = [k for k in result.missing_keys if k not in _IGNORED_KEYS]
    if missing or result.unexpected_keys:
        raise ConfigError(
            "the checkpoint does not fit the F5 DiT inferred from it: "
            f"missing {len(missing)} tensor(s) (e.g. {', '.join(missing[:3]) or '-'}), "
            f"unexpected {len(result.unexpected_keys)} (e.g. {', '.join(result.unexpected_keys[:3]) or '-'}). "
            "It may come from another F5 architecture or be damaged (tts.f5.checkpoint).",
            file=checkpoint,
            details={
                "missing": missing[:20],
                "unexpected": list(result.unexpected_keys)[:20],
                "inferred": shape.as_dict(),
            },
        )
    # bf16 runs under autocast with fp32 weights (see synthesize_chunk): cast outright, F5's ODE time grid
    # would be bf16 too, and 7 mantissa bits make neighbouring steps equal.
    model = model.to(_torch_dtype("fp32" if dtype == "bf16" else dtype))
    # The mel front end (STFT) stays fp32: bf16/fp16 STFT is unsupported on the CPU and imprecise anywhere.
    model.mel_spec.float()
    model = model.to(device).eval()
    vocoder = _load_vocoder(vocoder_dir, device)
    return LoadedF5(model, vocoder, shape, vocab, device, dtype, time.monotonic() - started)


def _load_vocoder(vocoder_dir: Path, device: str) -> Any:
    import torch

    try:
        from vocos import Vocos
        from vocos.feature_extractors import EncodecFeatures
    except ImportError as e:  # pragma: no cover - require_f5 checked this
        raise ToolMissing(f"vocos is not installed ({e}).") from e
    config_path = vocoder_dir / "config.yaml"
    weights = vocoder_dir / "pytorch_model.bin"
    try:
        vocoder = Vocos.from_hparams(str(config_path))
    except Exception as e:
        raise ConfigError(
            f"the Vocos config.yaml cannot be used ({type(e).__name__}: {str(e)[:200]}) (tts.f5.vocoder).",
            file=config_path,
        ) from e
    if isinstance(vocoder.feature_extractor, EncodecFeatures):
        raise ConfigError(
            "an Encodec Vocos cannot decode F5's mel spectrograms; use a mel Vocos (tts.f5.vocoder).", file=config_path
        )
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        vocoder.load_state_dict(state)
    except Exception as e:
        raise ConfigError(
            f"the Vocos weights cannot be loaded ({type(e).__name__}: {str(e)[:200]}). The file may be damaged or "
            "belong to another config.yaml (tts.f5.vocoder).",
            file=weights,
        ) from e
    return vocoder.eval().to(device)
