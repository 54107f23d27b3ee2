"""The ``generate`` source: a scene's picture made by a local text-to-image model on the GPU lane.

Owns turning a :class:`~omad.assets.base.Want` into a prompt (checked by the
job's guardrails first: PII redacted, a blocked topic stops the job), running
the user's diffusers pipeline from ``assets.generate.model_path`` (a folder
written by ``save_pretrained``, for example an SD-Turbo or SDXL-Turbo class
model) for one image at the frame's orientation, and recording the model,
prompt, seed and licence. The pipeline is loaded through the GPU residency,
so it shares ``gpu.vram_budget_gb`` with F5 and the Ollama models (evicting
idle ones, evicted in turn), and each image holds the GPU lane slot. fp16 on
CUDA, fp32 on the CPU when there is no GPU. Seeds come from the job and the
scene, so the same drop gives the same picture.

It must never download anything (``local_files_only``; a missing or broken
model is :class:`SourceUnavailable`, so the stage falls back), never import
torch or diffusers at module import, and never let their exceptions escape
untranslated.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import importlib.util
import json
import os
import re
import struct
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OmadError
from .base import Found, SourceUnavailable, Want, asset_dir

if TYPE_CHECKING:
    from ..config import GenerateConfig
    from ..stage import StageContext

__all__ = ["GenerateSource", "INSTALL_HINT", "estimate_vram_gb", "model_licence", "seed_for", "image_size"]

INSTALL_HINT = "pip install 'omad[images]' (in a checkout: .venv/bin/pip install -e '.[images]')"

#: Added to the weights: activations, the VAE decode at full size, CUDA's own context.
VRAM_MARGIN_GB = 0.75
_DTYPE_BYTES = {"fp16": 2, "fp32": 4}
# safetensors dtypes and their sizes, for counting parameters from the file headers alone.
_ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "F8_E4M3": 1, "F8_E5M2": 1}
_MAX_PROMPT_CHARS = 400
_load_lock = threading.Lock()


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def image_size(opts: GenerateConfig, orientation: str) -> tuple[int, int]:
    """The size to generate: ``width`` x ``height`` for landscape, swapped for portrait, in multiples of 8."""
    w, h = (opts.width, opts.height) if orientation == "landscape" else (opts.height, opts.width)
    return max(32, round(w / 8) * 8), max(32, round(h / 8) * 8)


def seed_for(job_id: str, scene: int) -> int:
    """The generator seed of one scene of one job: the same drop gives the same picture."""
    return int.from_bytes(hashlib.sha256(f"{job_id}:{scene}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def _safetensors_params(path: Path) -> tuple[int, int]:
    """(parameters, bytes) of the tensors in a .safetensors file, read from its header only."""
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("file too short for a safetensors header")
        (size,) = struct.unpack("<Q", head)
        if size > 100_000_000:
            raise ValueError("safetensors header is implausibly large")
        header = json.loads(f.read(size))
    params = stored = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= int(dim)
        params += count
        stored += count * _ST_BYTES.get(entry["dtype"], 4)
    return params, stored


def _weight_files(model: Path) -> list[Path]:
    """The pipeline's weights, one variant per component (fp16 files preferred where both are there)."""
    files: list[Path] = []
    for component in sorted(p for p in model.iterdir() if p.is_dir()):
        found = sorted(component.glob("*.safetensors"))
        plain = [f for f in found if ".fp16." not in f.name]
        files += plain or found
        if not found:
            files += sorted(component.glob("*.bin"))
    return files


def estimate_vram_gb(model: Path, dtype: str) -> tuple[float, int]:
    """(GB of VRAM, parameter count) the pipeline at ``model`` needs in ``dtype``: weights x dtype size + margin.

    Parameters are counted from the safetensors headers (no weight is read);
    pickled ``.bin`` weights are taken at their file size as fp32.
    """
    params = 0
    for path in _weight_files(model):
        if path.suffix == ".safetensors":
            try:
                params += _safetensors_params(path)[0]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise SourceUnavailable(
                    f"the image model's weights '{path.name}' are not readable safetensors ({e}). Save the model "
                    "again with save_pretrained.",
                    file=path,
                ) from e
        else:
            params += path.stat().st_size // 4
    return params * _DTYPE_BYTES[dtype] / 2**30 + VRAM_MARGIN_GB, params


def _front_matter(readme: Path) -> dict[str, str]:
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return {}
    m = re.match(r"---\s*\n(.*?)\n---\s*\n", text, re.S)
    if not m:
        return {}
    out: dict[str, str] = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not line.startswith((" ", "-")) and value.strip():
            out[key.strip().lower()] = value.strip().strip("'\"")
    return out


def model_licence(model: Path) -> str:
    """The model's licence as its card states it (README front matter, model_index.json), else where to look."""
    for name in ("README.md", "readme.md"):
        card = _front_matter(model / name)
        if card.get("license") or card.get("licence"):
            licence = card.get("license") or card.get("licence") or ""
            link = card.get("license_link")
            return f"{licence} ({link})" if link else licence
    try:
        index = json.loads((model / "model_index.json").read_text(encoding="utf-8"))
        if isinstance(index, dict) and isinstance(index.get("license"), str) and index["license"].strip():
            return str(index["license"]).strip()
    except (OSError, ValueError):
        pass
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt"):
        if (model / name).is_file():
            return f"see {name} in {model}"
    return "see the model's licence"


@dataclass
class _Loaded:
    """A pipeline on its device."""

    pipe: Any
    device: str
    dtype: str
    load_seconds: float


def _import_stack() -> None:
    """torch and diffusers, or SourceUnavailable saying how to install them."""
    missing = [name for name in ("torch", "diffusers", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        raise SourceUnavailable(
            f"generated images need the optional packages {', '.join(missing)}, which are not installed. Install "
            f"them with {INSTALL_HINT}, or take 'generate' out of assets.sources.",
            details={"missing": missing, "install": INSTALL_HINT},
        )
    try:
        import torch  # noqa: F401

        if importlib.util.find_spec("torchaudio") is not None:
            # diffusers imports torchaudio on the way; PyPI's CUDA torchaudio beside a CPU torch needs the F5 shim.
            from ..tts.f5.imports import import_torchaudio

            import_torchaudio()
        import diffusers  # noqa: F401
    except (ImportError, OSError) as e:
        raise SourceUnavailable(
            f"the image packages are installed but do not load ({e}). Reinstall them with {INSTALL_HINT}.",
            details={"install": INSTALL_HINT},
        ) from e


def _load(model: Path, device: str, dtype: str) -> _Loaded:
    import torch

    # As Any: diffusers is untyped, and may be absent where mypy runs.
    diffusers: Any = importlib.import_module("diffusers")
    started = time.monotonic()
    torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
    # diffusers renamed torch_dtype to dtype (0.3x, warning until 1.0); older releases know only torch_dtype.
    renamed = hasattr(importlib.import_module("diffusers.utils.deprecation_utils"), "_resolve_dtype")
    dtype_arg = {"dtype" if renamed else "torch_dtype": torch_dtype}
    try:
        with _load_lock:
            pipe = diffusers.AutoPipelineForText2Image.from_pretrained(str(model), local_files_only=True, **dtype_arg)
            pipe = pipe.to(device)
    except Exception as e:  # diffusers raises OSError, ValueError, EnvironmentError, torch errors...
        _free_cuda()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SourceUnavailable(
            f"the image model at {model} could not be loaded on {device} ({first}). Check that "
            "assets.generate.model_path is a folder written by a diffusers pipeline's save_pretrained.",
            file=model,
        ) from e
    pipe.set_progress_bar_config(disable=True)
    return _Loaded(pipe=pipe, device=device, dtype=dtype, load_seconds=round(time.monotonic() - started, 3))


def _unload(loaded: _Loaded) -> None:
    loaded.pipe = None
    gc.collect()
    _free_cuda()


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _is_oom(e: BaseException) -> bool:
    return type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower()


def _prompt(want: Want) -> str:
    words = [k.strip() for k in want.keywords if k.strip()]
    text = " ".join(want.description.split())
    extra = [w for w in words if w.lower() not in text.lower()]
    prompt = ", ".join(p for p in (text, *extra) if p)
    return prompt[:_MAX_PROMPT_CHARS]


class GenerateSource:
    """Pictures from the user's local text-to-image model (see the module docstring)."""

    name = "generate"

    def _model(self, ctx: StageContext) -> Path:
        opts = ctx.config.assets.generate
        if not opts.model_path.strip():
            raise SourceUnavailable(
                "no image model is configured: set assets.generate.model_path to a local diffusers model folder "
                "(one written by save_pretrained, e.g. an SD-Turbo class model; omad never downloads one) and "
                f"install {INSTALL_HINT}."
            )
        model = ctx.config.resolve(opts.model_path)
        if not (model / "model_index.json").is_file():
            raise SourceUnavailable(
                f"assets.generate.model_path ({model}) is not a diffusers model folder: it has no model_index.json. "
                "Point it at the folder a pipeline's save_pretrained wrote.",
                file=model,
            )
        return model

    def _placement(self, ctx: StageContext) -> tuple[str, str]:
        want = ctx.config.assets.generate.device
        cuda = want != "cpu" and _cuda_available()
        if want == "cuda" and not cuda:
            ctx.warn("assets.generate.device is 'cuda' but torch sees no CUDA device; images were made on the CPU.")
        return ("cuda", "fp16") if cuda else ("cpu", "fp32")

    def find(self, want: Want, ctx: StageContext) -> Found | None:
        """One generated picture for ``want`` (None when it asks for no photo or says nothing to draw)."""
        opts = ctx.config.assets.generate
        if "photo" not in want.kinds:
            return None
        model = self._model(ctx)
        raw = _prompt(want)
        if not raw:
            return None
        # Before any model runs: PII is redacted, a blocked topic stops the job (GuardrailBlocked).
        checked = ctx.guard().check(raw, f"scenes[{want.scene}].image_prompt", file=ctx.label("brief"))
        prompt = checked.text
        _import_stack()
        device, dtype = self._placement(ctx)
        vram, params = estimate_vram_gb(model, dtype)
        if opts.vram_gb:
            vram = opts.vram_gb
        budget = ctx.lanes.residency.budget_gb
        if device == "cuda" and vram > budget:
            raise SourceUnavailable(
                f"the image model needs about {vram:.1f} GB of VRAM ({params / 1e9:.2f} B parameters in {dtype} plus "
                f"{VRAM_MARGIN_GB} GB working room) but gpu.vram_budget_gb is {budget:g}. Raise the budget, use a "
                "smaller model, or set assets.generate.device: cpu.",
                file=model,
                details={"vram_gb": round(vram, 2), "budget_gb": budget, "parameters": params},
            )
        width, height = image_size(opts, want.orientation)
        seed = seed_for(ctx.job_id, want.scene)
        key = f"diffusers:{model}:{device}:{dtype}"
        loaded_now = False

        def load() -> _Loaded:
            nonlocal loaded_now
            loaded_now = True
            return _load(model, device, dtype)

        started = time.monotonic()
        with ctx.lanes.gpu.slot(f"{ctx.job_id}:generate"), \
                ctx.lanes.residency.acquire(key, vram if device == "cuda" else 0.0, load, _unload) as loaded:
            image = self._run(loaded, prompt, opts, width, height, seed, model)
        out = asset_dir(ctx) / f"scene{want.scene:02d}-generated.png"
        part = out.with_name(f".{out.name}.part")
        try:
            image.save(part, format="PNG")
            os.replace(part, out)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise SourceUnavailable(f"the generated picture could not be written ({e.strerror}).", file=out) from e
        return Found(
            path=out,
            kind="photo",
            source=self.name,
            why=prompt,
            id=model.name,
            licence=model_licence(model),
            extra={"seed": seed, "steps": opts.steps, "guidance_scale": opts.guidance_scale, "size": [width, height],
                   "device": device, "dtype": dtype, "vram_gb": round(vram, 2) if device == "cuda" else 0.0,
                   "loaded": loaded_now, "load_seconds": loaded.load_seconds if loaded_now else 0.0,
                   "seconds": round(time.monotonic() - started, 3),
                   "guardrail_findings": [f.to_dict() for f in checked.findings]},
        )

    @staticmethod
    def _run(loaded: _Loaded, prompt: str, opts: GenerateConfig, width: int, height: int, seed: int,
             model: Path) -> Any:
        import torch

        generator = torch.Generator(device=loaded.device).manual_seed(seed)
        kwargs: dict[str, Any] = {"num_inference_steps": opts.steps, "guidance_scale": opts.guidance_scale,
                                  "width": width, "height": height, "generator": generator}
        if opts.negative_prompt and opts.guidance_scale > 1.0:
            kwargs["negative_prompt"] = opts.negative_prompt
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # The stack warns about its own internals (numpy 2's copy keyword in diffusers' schedulers):
                # nothing a user of omad can act on, so not passed on.
                warnings.simplefilter("ignore", DeprecationWarning)
                result = loaded.pipe(prompt, **kwargs)
        except OmadError:
            raise
        except Exception as e:  # torch OOM, shape errors from an odd model...
            _free_cuda()
            if _is_oom(e):
                raise SourceUnavailable(
                    f"the GPU ran out of memory making a {width}x{height} image. Lower assets.generate.width/height, "
                    "raise assets.generate.vram_gb so other models are evicted first, or free the GPU.",
                    file=model,
                ) from e
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SourceUnavailable(f"the image model failed to make a picture ({first}).", file=model) from e
        return result.images[0]
