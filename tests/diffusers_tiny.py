"""A tiny, randomly initialised Stable-Diffusion-style pipeline built with diffusers' and transformers' own classes.

Saved with ``save_pretrained`` in the layout a real SD-Turbo download has (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/), so omad loads it through its real loader. The tokenizer's vocabulary
and merges are written here: nothing is downloaded. Its pictures are noise, but every file, residency step
and error path is the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["a", "photo", "of", "the", "sky", "sea", "cat", "red", "blue", "city", "night"]


def _tokenizer_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in sorted(set("".join(WORDS)) | set("abcdefghijklmnopqrstuvwxyz")):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    for word in WORDS:
        vocab.setdefault(word + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def build_tiny_pipeline(out: Path, *, readme_licence: str | None = "openrail++") -> Path:
    """Write a tiny text-to-image pipeline to ``out`` and return it."""
    import torch

    from omad.tts.f5.imports import import_torchaudio

    import_torchaudio()  # what omad does before diffusers: a CUDA torchaudio beside a CPU torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    vocab, merges = _tokenizer_files(out.parent / f"{out.name}-tokenizer-src")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=16)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=16, projection_dim=32, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=32, attention_head_dim=(2, 4))
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="trailing", steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(out))
    if readme_licence:
        (out / "README.md").write_text(f"---\nlicense: {readme_licence}\ntags:\n- text-to-image\n---\n# tiny\n",
                                       encoding="utf-8")
    return out
