"""Building F5-TTS checkpoints and Vocos vocoders with random weights, for tests and the speed bench.

Uses f5-tts's and vocos's own classes, so the files are laid out exactly as
real ones: ``model_last.safetensors`` (an EMA state dict, ``ema_model.``
prefix) or a training ``.pt`` (``ema_model_state_dict`` or
``model_state_dict``), and a Vocos folder with ``config.yaml`` +
``pytorch_model.bin``. Nothing here is downloaded; the voices are noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from omad.tts.f5.imports import require_f5
from omad.tts.f5.loader import EMA_PREFIX, MEL, ModelShape

Layout = Literal["safetensors", "pt-ema", "pt-model"]

# Enough characters for pt-BR text: accents, digits, punctuation.
PT_BR_CHARS = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789áàâãéêíóôõúüçÁÀÂÃÉÊÍÓÔÕÚÜÇ.,;:!?'\"-()%$"

FULL_SHAPE = ModelShape(
    dim=1024,
    depth=22,
    heads=16,
    dim_head=64,
    ff_mult=2,
    mel_dim=100,
    text_num_embeds=2545,
    text_dim=512,
    conv_layers=4,
)


def tiny_shape(vocab_size: int) -> ModelShape:
    return ModelShape(
        dim=64,
        depth=2,
        heads=2,
        dim_head=32,
        ff_mult=2,
        mel_dim=100,
        text_num_embeds=vocab_size,
        text_dim=32,
        conv_layers=1,
    )


def write_vocab(path: Path, chars: str = PT_BR_CHARS) -> int:
    """A vocab.txt as F5 expects it: one token a line, a space first, a trailing newline."""
    tokens = list(dict.fromkeys(chars))
    assert tokens[0] == " "
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return len(tokens)


def build_model(shape: ModelShape, vocab: dict[str, int] | None = None, *, seed: int = 0) -> Any:
    """A CFM(DiT) with random weights; F5's zero-initialised output layers get small random values too."""
    require_f5()
    import torch
    from f5_tts.model import CFM, DiT

    torch.manual_seed(seed)
    model = CFM(
        transformer=DiT(**shape.dit_kwargs()),
        mel_spec_kwargs={**MEL, "mel_spec_type": "vocos"},
        vocab_char_map=vocab,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.is_meta and not p.any():
                p.normal_(0.0, 0.02 if "weight" in name else 0.01)
    return model


def save_checkpoint(model: Any, path: Path, layout: Layout) -> Path:
    """Save ``model`` as F5's trainer would, in one of its file layouts."""
    import torch

    weights = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    ema = {EMA_PREFIX + k: v for k, v in weights.items()}
    # ema_pytorch keeps these two next to the weights; F5's loader skips them.
    ema["initted"] = torch.tensor([True])
    ema["step"] = torch.tensor([1000])
    if layout == "safetensors":
        from safetensors.torch import save_file

        save_file(ema, str(path))
    elif layout == "pt-ema":
        torch.save({"ema_model_state_dict": ema, "update": 1000}, str(path))
    else:
        torch.save({"model_state_dict": weights, "update": 1000}, str(path))
    return path


def write_checkpoint(path: Path, shape: ModelShape, layout: Layout, *, seed: int = 0) -> Path:
    return save_checkpoint(build_model(shape, seed=seed), path, layout)


VOCOS_FULL = {"dim": 512, "intermediate_dim": 1536, "num_layers": 8}
VOCOS_TINY = {"dim": 32, "intermediate_dim": 64, "num_layers": 1}


def write_vocos(folder: Path, size: dict[str, int] | None = None, *, n_mels: int = 100, seed: int = 0) -> Path:
    """A Vocos folder (config.yaml + pytorch_model.bin) with random weights, made by vocos itself."""
    require_f5()
    import torch
    import yaml
    from vocos import Vocos

    size = size or VOCOS_TINY
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "feature_extractor": {
            "class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
            "init_args": {
                "sample_rate": 24000,
                "n_fft": 1024,
                "hop_length": 256,
                "n_mels": n_mels,
                "padding": "center",
            },
        },
        "backbone": {
            "class_path": "vocos.models.VocosBackbone",
            "init_args": {"input_channels": n_mels, **size},
        },
        "head": {
            "class_path": "vocos.heads.ISTFTHead",
            "init_args": {"dim": size["dim"], "n_fft": 1024, "hop_length": 256, "padding": "center"},
        },
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    torch.manual_seed(seed)
    vocos = Vocos.from_hparams(str(folder / "config.yaml"))
    torch.save(vocos.state_dict(), str(folder / "pytorch_model.bin"))
    return folder
