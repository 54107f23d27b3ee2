"""Scene videos: pictures from the library, stock and generators, the agents' models and guardrails."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import HOST, Section, from_env


class SceneConfig(Section):
    padding_seconds: float = Field(0.6, ge=0, description="silence added after each scene's narration")
    crossfade_seconds: float = Field(0.5, ge=0, description="crossfade between scenes")
    title_font_file: str = Field(
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", description="font file for title cards",
        json_schema_extra=HOST)
    title_background: str = Field("#1d2b53", description="default title card background, #RRGGBB")
    music_db: float = Field(-20.0, le=0, description="background music level under the voice, in dB")
    fit: Literal["cover", "fit"] = Field(
        "cover", description="a clip of another aspect: cover (crop to fill) or fit (letterboxed on black)"
    )
    clip_audio_db: float = Field(-18.0, le=0, description="a scene clip's own sound under the voice (clip_audio: duck)")
    voice_cache_mb: float = Field(
        256.0, ge=0, description="scene voices kept in the state dir for re-drops of an edited storyboard, MB "
        "(least recently used out first; 0: only the job folder's)", json_schema_extra=HOST)


class GenerateConfig(Section):
    model_path: str = Field(
        "", description="local diffusers text-to-image model (a save_pretrained folder); empty: no generated images",
        json_schema_extra=HOST)
    steps: int = Field(1, ge=1, le=100, description="denoising steps (1 for SD-Turbo/SDXL-Turbo class models)")
    guidance_scale: float = Field(0.0, ge=0, description="classifier-free guidance (0 for turbo models)")
    width: int = Field(1024, ge=32, le=2048, description="generated image width, landscape (portrait swaps the two)")
    height: int = Field(576, ge=32, le=2048, description="generated image height, landscape (both rounded to 8s)")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="auto uses CUDA when available (fp16), else CPU",
                                                   json_schema_extra=HOST)
    vram_gb: float = Field(
        0.0, ge=0, description="VRAM the model is budgeted at in the GPU lane; 0 estimates it from its weights",
        json_schema_extra=HOST)
    negative_prompt: str = Field("", description="what generated images should not show (ignored at guidance 0)")


class StabilityConfig(Section):
    api_key: str = Field("", description="Stability AI API key; empty: $STABILITY_API_KEY, and without one it is off",
                         json_schema_extra=HOST)
    url: str = Field(
        "https://api.stability.ai/v2beta/stable-image/generate/core", pattern=r"^https?://",
        description="the generation endpoint (Stable Image Core)", json_schema_extra=HOST)
    timeout_seconds: float = Field(90.0, gt=0, description="one image request, seconds")
    max_download_mb: float = Field(25.0, gt=0, description="largest image accepted from the service")


SourceName = Literal["library", "stock", "pexels", "pixabay", "generate", "stability", "title"]


def _default_sources() -> list[SourceName]:
    return ["library", "stock", "generate", "title"]


def _default_providers() -> list[Literal["pexels", "pixabay"]]:
    return ["pexels", "pixabay"]


class LibraryConfig(Section):
    folders: list[str] = Field(
        default_factory=list, description="folders of your own photos and clips, searched by file/folder names and tags"
    )
    index: str = Field("", description="the library's SQLite index; empty: assets/library.sqlite in the state dir")
    max_files: int = Field(50000, ge=1, description="most files indexed across all folders")


class MusicConfig(Section):
    folders: list[str] = Field(
        default_factory=list, description="folders of your own music, chosen by mood, genre and comment tags and "
                                          "folder names (music: {mood: alegre} in a brief)"
    )
    index: str = Field("", description="the music SQLite index; empty: assets/music.sqlite in the state dir")
    max_files: int = Field(20000, ge=1, description="most tracks indexed across all folders")


class StockConfig(Section):
    pexels_key: str = Field("", description="Pexels API key (or $OMAD_PEXELS_KEY); never logged or recorded",
                            json_schema_extra=HOST)
    pixabay_key: str = Field("", description="Pixabay API key (or $OMAD_PIXABAY_KEY); never logged or recorded",
                             json_schema_extra=HOST)
    pexels_url: str = Field("https://api.pexels.com", pattern=r"^https?://", description="Pexels API base URL",
                            json_schema_extra=HOST)
    pixabay_url: str = Field("https://pixabay.com", pattern=r"^https?://", description="Pixabay API base URL",
                             json_schema_extra=HOST)
    providers: list[Literal["pexels", "pixabay"]] = Field(
        default_factory=_default_providers, description="the stock sites 'stock' asks, in order"
    )
    timeout_seconds: float = Field(15.0, gt=0, description="per request to a stock site")
    max_download_mb: float = Field(60.0, gt=0, description="largest photo or clip downloaded")
    videos: bool = Field(True, description="also search stock video clips (scenes then show a clip)")


class AssetsConfig(Section):
    sources: list[SourceName] = Field(
        default_factory=_default_sources,
        description="where scene pictures come from, in order (a title card is always the last resort)",
    )
    privacy: Literal["auto", "local_only", "allow_remote"] = Field(
        "auto", description="local_only sends nothing out; auto = allow_remote when a stock or Stability key is set, "
                            "else local_only"
    )
    allow_hosts: list[str] = Field(
        default_factory=list, description="hosts picture requests may reach although they are on a loopback, "
                                          "link-local or private address, and that redirects may lead to from "
                                          "another site (a local mirror); empty: public addresses, same-site "
                                          "redirects only", json_schema_extra=HOST)
    cache_dir: str = Field("", description="stock downloads, by site and id; empty: assets/cache in the state dir",
                           json_schema_extra=HOST)
    cache_max_mb: float = Field(2048.0, gt=0, description="the download cache is trimmed (oldest first) past this",
                                json_schema_extra=HOST)
    min_score: int = Field(1, ge=1, description="library: least number of a scene's keywords a file must match")
    library: LibraryConfig = Field(default_factory=LibraryConfig, description="your own photos and clips",
                                   json_schema_extra=HOST)
    music: MusicConfig = Field(default_factory=MusicConfig, description="your own music tracks, chosen by mood",
                               json_schema_extra=HOST)
    stock: StockConfig = Field(default_factory=StockConfig, description="Pexels and Pixabay")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="images generated on the GPU lane")
    stability: StabilityConfig = Field(
        default_factory=StabilityConfig, description="images generated remotely by Stability AI (sends the prompt out)"
    )

    def stability_key_value(self) -> str:
        return from_env(self.stability.api_key, "assets.stability.api_key")

    def pexels_key_value(self) -> str:
        return from_env(self.stock.pexels_key, "assets.stock.pexels_key")

    def pixabay_key_value(self) -> str:
        return from_env(self.stock.pixabay_key, "assets.stock.pixabay_key")

    def effective_privacy(self) -> Literal["local_only", "allow_remote"]:
        """``privacy`` with ``auto`` decided: remote only when a stock or Stability key is set (config or env)."""
        if self.privacy != "auto":
            return self.privacy
        keys = self.pexels_key_value() or self.pixabay_key_value() or self.stability_key_value()
        return "allow_remote" if keys else "local_only"


class LlmRole(Section):
    model: str = Field(..., description="Ollama model")
    fallback: str = Field("", description="model tried when the first one keeps failing")


def _role(model: str, fallback: str) -> Any:
    return Field(default_factory=lambda: LlmRole(model=model, fallback=fallback), description=f"default {model}")


class LlmRoles(Section):
    supervisor: LlmRole = _role("qwen2.5:3b-instruct", "qwen2:1.5b")
    script_writer: LlmRole = _role("phi3.5:3.8b-mini", "qwen2.5:3b-instruct")
    visual_planner: LlmRole = _role("gemma2:2b", "qwen2:1.5b")
    audio_producer: LlmRole = _role("mistral:7b-instruct", "qwen2.5:3b-instruct")
    editor: LlmRole = _role("qwen2:1.5b", "qwen2.5:3b-instruct")
    publisher: LlmRole = _role("qwen2.5:3b-instruct", "qwen2:1.5b")


class LlmConfig(Section):
    host: str = Field("", description="Ollama URL; empty uses $OLLAMA_HOST or http://127.0.0.1:11434",
                      json_schema_extra=HOST)
    remote: bool = Field(False, description="Ollama runs on another machine: its calls skip the GPU lane",
                         json_schema_extra=HOST)
    timeout_seconds: float = Field(300.0, gt=0, description="per request", json_schema_extra=HOST)
    keep_alive: str = Field("5m", description="how long Ollama keeps a model loaded after a call",
                            json_schema_extra=HOST)
    retries: int = Field(2, ge=0, description="re-asks of the same model after an invalid answer")
    connect_retries: int = Field(4, ge=0, description="retries with backoff when Ollama is unreachable",
                                 json_schema_extra=HOST)
    connect_backoff_seconds: float = Field(
        1.0, ge=0, description="first wait before re-trying an unreachable Ollama; doubles each time (max 30 s)",
        json_schema_extra=HOST)
    words_per_second: float = Field(
        2.5, gt=0, le=6, description="spoken words per second used to size narration to the target duration"
    )
    temperature: float = Field(0.2, ge=0, description="sampling temperature")
    model_vram_gb: dict[str, float] = Field(
        default_factory=dict, description="VRAM per model for the GPU lane; unknown models are estimated from the tag",
        json_schema_extra=HOST)
    roles: LlmRoles = Field(default_factory=LlmRoles, description="model and fallback per role")
    review: bool = Field(False, description="stop every agent video after planning and pictures, waiting for review "
                         "on its storyboard page (a brief's 'review' overrides)", json_schema_extra=HOST)


class GuardrailsConfig(Section):
    file: str = Field("config/guardrails.yaml", description="guardrail rules file")
