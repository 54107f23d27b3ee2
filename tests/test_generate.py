"""The ``generate`` source: a scene's picture from the user's local diffusers model, on the GPU lane.

The model is a tiny, randomly initialised pipeline built with diffusers' own classes
(``tests/diffusers_tiny.py``), saved with ``save_pretrained`` and loaded through omad's real
loader on the CPU; its pictures are noise, but the files, the residency, the seeds, the VRAM
check, the guardrails and every refusal are the real ones.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

import omad.assets.generate as generate
from omad.assets.base import SourceUnavailable, Want
from omad.assets.generate import GenerateSource, estimate_vram_gb, image_size, model_licence, seed_for
from omad.config import Config, load_config
from omad.errors import GuardrailBlocked
from omad.guardrails import Guardrails, GuardrailsFile
from omad.lanes import Lanes
from omad.stage import StageContext

HAVE_IMAGES = all(importlib.util.find_spec(m) is not None for m in ("torch", "diffusers", "transformers"))
needs_images = [pytest.mark.images,
                pytest.mark.skipif(not HAVE_IMAGES, reason="omad[images] extra (torch, diffusers) not installed")]


def _config(model: Path | None, **generate_opts: object) -> Config:
    opts: dict[str, object] = {"width": 64, "height": 48, "device": "cpu", **generate_opts}
    if model is not None:
        opts["model_path"] = str(model)
    return load_config(None, {"assets": {"generate": opts}, "gpu": {"vram_budget_gb": 4.0}})


def _ctx(tmp_path: Path, config: Config, guardrails: Guardrails | None = None, job: str = "job-1") -> StageContext:
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    return StageContext(job_id=job, route="agent-video", name="x", work=work, inputs={}, options={}, config=config,
                        lanes=Lanes(1, config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds), stage="assets",
                        guardrails=guardrails or Guardrails())


def _want(scene: int = 0, orientation: str = "landscape", description: str = "a red sky over the sea") -> Want:
    return Want(scene=scene, description=description, keywords=("sky", "sea", "night"),
                orientation=orientation, min_width=320, min_height=180, seconds=3.0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_IMAGES:
        pytest.skip("omad[images] extra (torch, diffusers) not installed")
    from diffusers_tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-turbo")


def test_without_a_model_path_the_source_says_how_to_enable_it(tmp_path: Path) -> None:
    """GIVEN no assets.generate.model_path THEN SourceUnavailable names the option, the model kind and the extra."""
    with pytest.raises(SourceUnavailable, match=r"assets\.generate\.model_path") as err:
        GenerateSource().find(_want(), _ctx(tmp_path, _config(None)))
    assert "save_pretrained" in err.value.message and "omad[images]" in err.value.message
    assert "never downloads" in err.value.message


def test_a_folder_that_is_not_a_diffusers_model_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(SourceUnavailable, match="no model_index.json"):
        GenerateSource().find(_want(), _ctx(tmp_path, _config(tmp_path / "not-a-model")))


def test_a_want_for_video_only_is_not_for_this_source(tmp_path: Path) -> None:
    want = Want(scene=0, description="x", keywords=(), orientation="landscape", min_width=2, min_height=2,
                seconds=1.0, kinds=("video",))
    assert GenerateSource().find(want, _ctx(tmp_path, _config(None))) is None


def test_sizes_follow_the_orientation_in_multiples_of_eight_and_seeds_the_job_and_scene() -> None:
    opts = _config(None, width=1021, height=574).assets.generate
    assert image_size(opts, "landscape") == (1024, 576)
    assert image_size(opts, "portrait") == (576, 1024)
    assert seed_for("job-1", 0) == seed_for("job-1", 0) != seed_for("job-1", 1) != seed_for("job-2", 1)


class TestTinyModel:
    pytestmark = needs_images

    def test_a_picture_is_generated_on_the_cpu_through_the_residency(self, tiny_model: Path, tmp_path: Path) -> None:
        """GIVEN the tiny model WHEN two scenes ask for pictures (one portrait) THEN real PNGs of the configured
        size (swapped for portrait) come out under work/assets, the model was loaded once through the GPU
        residency, and the record names the source, the prompt, the model and its licence."""
        ctx = _ctx(tmp_path, _config(tiny_model))
        source = GenerateSource()
        found = source.find(_want(0), ctx)
        assert found is not None
        with Image.open(found.path) as img:
            assert img.format == "PNG" and img.size == (64, 48)
        assert found.path.parent == ctx.work / "assets"
        assert found.source == "generate" and found.kind == "photo"
        assert found.why == "a red sky over the sea, night"
        assert found.id == "tiny-turbo" and found.licence == "openrail++"
        assert found.extra["device"] == "cpu" and found.extra["dtype"] == "fp32" and found.extra["loaded"] is True
        portrait = source.find(_want(1, "portrait"), ctx)
        assert portrait is not None and portrait.extra["loaded"] is False
        with Image.open(portrait.path) as img:
            assert img.size == (48, 64)
        key = f"diffusers:{tiny_model}:cpu:fp32"
        assert ctx.lanes.residency.loads == {key: 1}
        assert [r["model"] for r in ctx.lanes.residency.snapshot()] == [key]
        assert ctx.lanes.gpu.take_seconds("job-1") > 0  # each image held the GPU lane, booked to the job

    def test_the_same_job_and_scene_give_the_same_picture(self, tiny_model: Path, tmp_path: Path) -> None:
        first = GenerateSource().find(_want(3), _ctx(tmp_path / "a", _config(tiny_model)))
        again = GenerateSource().find(_want(3), _ctx(tmp_path / "b", _config(tiny_model)))
        other = GenerateSource().find(_want(3), _ctx(tmp_path / "c", _config(tiny_model), job="job-2"))
        assert first is not None and again is not None and other is not None
        with Image.open(first.path) as a, Image.open(again.path) as b, Image.open(other.path) as c:
            assert a.tobytes() == b.tobytes() != c.tobytes()

    def test_a_model_over_the_vram_budget_is_unavailable_before_loading(self, tiny_model: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
        """GIVEN a CUDA device and a model estimated over gpu.vram_budget_gb THEN SourceUnavailable says so
        (need, budget, what to do) and nothing was loaded or put on the lane."""
        monkeypatch.setattr(generate, "_cuda_available", lambda: True)
        config = load_config(None, {"assets": {"generate": {"model_path": str(tiny_model), "device": "auto"}},
                                    "gpu": {"vram_budget_gb": 0.5}})
        ctx = _ctx(tmp_path, config)
        with pytest.raises(SourceUnavailable, match=r"gpu\.vram_budget_gb is 0\.5") as err:
            GenerateSource().find(_want(), ctx)
        assert err.value.details["vram_gb"] > 0.5 and "fp16" in err.value.message
        assert ctx.lanes.residency.loads == {} and ctx.lanes.gpu.take_seconds("job-1") == 0

    def test_the_vram_estimate_counts_the_weights(self, tiny_model: Path) -> None:
        from diffusers import AutoPipelineForText2Image

        pipe = AutoPipelineForText2Image.from_pretrained(str(tiny_model), local_files_only=True)
        params = sum(p.numel() for part in (pipe.unet, pipe.vae, pipe.text_encoder) for p in part.parameters())
        gb, counted = estimate_vram_gb(tiny_model, "fp16")
        assert counted == params
        assert gb == pytest.approx(params * 2 / 2**30 + generate.VRAM_MARGIN_GB)

    def test_the_prompt_passes_the_guardrails_first(self, tiny_model: Path, tmp_path: Path) -> None:
        """GIVEN a blocked topic in the scene's description THEN the job is stopped before any model loads;
        an e-mail address in it is redacted from the prompt the model gets."""
        guard = Guardrails(GuardrailsFile.model_validate(
            {"blocked_topics": [{"name": "violence", "keywords": ["violência"], "action": "block"}]}))
        ctx = _ctx(tmp_path, _config(tiny_model), guard)
        with pytest.raises(GuardrailBlocked, match="violence"):
            GenerateSource().find(_want(description="cena de violência na rua"), ctx)
        assert ctx.lanes.residency.loads == {}
        found = GenerateSource().find(_want(description="a sky over joao@example.com"), ctx)
        assert found is not None and "joao@example.com" not in found.why and "[e-mail removido]" in found.why
        assert found.extra["guardrail_findings"][0]["type"] == "email"


def test_the_licence_comes_from_the_model_card(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nlicense: other\nlicense_link: https://example.org/l\n---\n")
    assert model_licence(tmp_path) == "other (https://example.org/l)"
    (tmp_path / "README.md").write_text("# no front matter\n")
    assert model_licence(tmp_path) == "see the model's licence"
