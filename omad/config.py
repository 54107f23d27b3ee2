"""omad's configuration: one typed model, every option with a default and a description.

``config/omad.yaml`` is generated from this model (``omad config --dump``) and a
test checks that the two never drift. Loading never guesses: an unknown key is
an error that lists the allowed ones.

Two rules hold for every option:

- **The file wins; the environment fills what it leaves empty.** The options in
  :data:`ENV_FALLBACK` may be left empty in the file and given by an environment
  variable instead (a password or key kept out of the file, a systemd
  ``EnvironmentFile=``). A value written in the file is always the one used.
- **Relative paths are taken from the working directory** (as ``inbox`` and
  ``outbox`` are), never from the config file's folder: the systemd units set
  ``WorkingDirectory=``, and ``--state-dir`` moves everything kept under it.
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = ["Config", "AsrConfig", "Reach", "HOST", "TRAVELS", "reach_of", "ExecutorConfig", "longest_stage_timeout",
           "WebConfig", "NotifyConfig", "WebhookConfig",
           "load_config", "dump_config_yaml", "is_loopback", "ENV_FALLBACK", "from_env",
           "DEFAULT_IGNORE"]


DEFAULT_IGNORE = [
    ".*",
    "*.part",
    "*.crdownload",
    "*.tmp",
    "~syncthing~*",
    ".syncthing.*.tmp",
    ".~lock.*",
    "*.sync-conflict-*",
    "*~",
    "Thumbs.db",
    "desktop.ini",
]


_MOVED_TO_WEB = ("enabled", "host", "port")

#: Options that an environment variable fills when the file leaves them empty (see the module doc).
ENV_FALLBACK: dict[str, str] = {
    "executor.broker_url": "OMAD_BROKER_URL",
    "executor.result_backend": "OMAD_RESULT_BACKEND",
    "executor.signing_key": "OMAD_SIGNING_KEY",
    "llm.host": "OLLAMA_HOST",
    "assets.stability.api_key": "STABILITY_API_KEY",
    "assets.stock.pexels_key": "OMAD_PEXELS_KEY",
    "assets.stock.pixabay_key": "OMAD_PIXABAY_KEY",
}


def from_env(value: str, option: str) -> str:
    """``value`` as written in the file, else the environment variable of ``option`` (:data:`ENV_FALLBACK`)."""
    return value.strip() or os.environ.get(ENV_FALLBACK[option], "").strip()


class Reach(StrEnum):
    """Whether an option goes with a stage task to a worker (``executor.kind: celery``).

    Each top-level section is marked; an option inside it takes its section's mark unless it has its own.
    """

    #: shapes a stage's output: sent with every task and laid over the worker's own config
    TRAVELS = "travels"
    #: belongs to the machine (paths, hosts, URLs, keys, secrets, budgets): never sent; a worker uses its own
    HOST = "host"


#: ``json_schema_extra`` of an option that travels with stage tasks
TRAVELS: dict[str, Any] = {"reach": Reach.TRAVELS.value}
#: ``json_schema_extra`` of an option that never leaves its machine
HOST: dict[str, Any] = {"reach": Reach.HOST.value}


def reach_of(field: Any, inherited: Reach | None) -> Reach | None:
    """A field's own mark, else the one it inherits from its section (None: unmarked)."""
    extra = field.json_schema_extra
    mark = extra.get("reach") if isinstance(extra, dict) else None
    return Reach(mark) if isinstance(mark, str) else inherited


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class WatchConfig(_Section):
    mode: Literal["auto", "inotify", "polling"] = Field(
        "auto", description="auto: polling when the inbox is a network mount (NFS, SMB, FUSE, 9p), else inotify; "
                            "inotify or polling force one"
    )
    settle_seconds: float = Field(5.0, ge=0, description="a file is ready when size and mtime are unchanged this long")
    rescan_seconds: float = Field(300.0, gt=0, description="full rescan period, even in inotify mode (events get lost)")
    poll_interval_seconds: float = Field(2.0, gt=0, description="how often the polling observer looks (polling mode)")
    ignore: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IGNORE),
        description="glob patterns of temporary/partial names never picked up",
    )
    open_writer_max_seconds: float = Field(
        3600.0, gt=0, description="a file still open for writing is taken anyway after being quiet this long"
    )


class IntakeConfig(_Section):
    pair_timeout_seconds: float = Field(
        300.0, ge=0, description="how long a file that needs a partner (an SRT without its video) waits"
    )
    partner_grace_seconds: float = Field(
        10.0, ge=0, description="how long a file that may have a partner (an image, maybe with audio) waits"
    )
    on_duplicate: Literal["skip", "reprocess"] = Field(
        "skip", description="what to do when the same content is dropped again"
    )
    inputs_after: Literal["archive", "delete", "keep"] = Field(
        "archive",
        description="consumed inputs: archive under the state dir, delete, or keep them in the inbox",
    )
    max_brief_bytes: int = Field(262144, gt=0, description="largest brief (YAML/JSON) accepted")
    max_audio_seconds: float = Field(3600.0, gt=0, description="longest audio input accepted")
    max_brief_depth: int = Field(12, ge=2, description="deepest nesting of lists/mappings accepted in a brief")
    max_subtitle_bytes: int = Field(4_000_000, gt=0, description="largest subtitle file accepted")
    max_cues: int = Field(20000, gt=0, description="most captions in one subtitle file")
    max_cues_on_screen: int = Field(8, gt=0, description="most captions shown at the same moment")
    max_image_megapixels: float = Field(100.0, gt=0, description="largest image accepted (width x height)")
    max_clip_seconds: float = Field(3600.0, gt=0, description="longest video clip a scene may show")
    priorities: dict[str, int | str] = Field(
        default_factory=dict, description="inbox folder -> priority of its drops (low, normal, high or an integer), "
                                          "e.g. {urgente: high} for inbox/urgente/"
    )

    @field_validator("priorities")
    @classmethod
    def _priorities(cls, value: dict[str, int | str]) -> dict[str, int | str]:
        from .controls import parse_priority

        for folder, priority in value.items():
            if not folder or "/" in folder or folder.startswith("."):
                raise ValueError(f"{folder!r} is not a folder name directly in the inbox")
            parse_priority(priority)
        return value
    lone_video: Literal["transcribe", "wait"] = Field(
        "transcribe", description="a lone video or recording: transcribed after a grace, or wait for a partner"
    )
    lone_video_grace_seconds: float = Field(
        0.0, ge=0, description="how long a lone video or recording waits for a partner first; 0: partner_grace_seconds"
    )


class JobsConfig(_Section):
    max_attempts: int = Field(3, ge=1, description="attempts for transient failures (disk full, killed tool, timeout)")
    max_restarts: int = Field(
        3, ge=0, description="omad's own restarts (a crash, kill -9) in a row during one job, not charged as "
                             "attempts; one more fails the job, so a crash loop stays bounded")
    backoff_seconds: float = Field(10.0, ge=0, description="first retry delay; doubles each attempt")
    backoff_max_seconds: float = Field(600.0, ge=0, description="longest retry delay")
    stage_timeout_seconds: float = Field(
        3600.0, gt=0, description="per-stage timeout when the length of the media is not known"
    )
    timeout_base_seconds: float = Field(
        120.0, gt=0, description="stage timeout for media of known length: this base ..."
    )
    timeout_per_media_second: float = Field(
        6.0, gt=0, description="... plus this many seconds per second of media (a 2 s clip cannot hold a lane)"
    )
    stage_timeouts: dict[str, float] = Field(
        default_factory=dict, description="per-stage timeout overrides, e.g. {caption: 1800}"
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="on SIGTERM, running stages get this long to finish before they are stopped"
    )


class LaneConfig(_Section):
    slots: int = Field(0, ge=0, description="slots (cpu: 0 means max(1, cores-1); gpu: always 1)")
    windows: list[str] = Field(
        default_factory=list, description="when the lane may start stages, local time: ['00:00-07:00'] or "
                                          "['mon-fri 22:00-06:00']; empty: always"
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        from .windows import parse_window

        for text in value:
            parse_window(text)
        return value


def _lane(default_slots: int) -> Any:
    return Field(default_factory=lambda: LaneConfig(slots=default_slots),
                 description="a number (its slots, as before) or {slots, windows}")


class LanesConfig(_Section):
    cpu: LaneConfig = _lane(0)
    gpu: LaneConfig = _lane(1)

    @field_validator("cpu", "gpu", mode="before")
    @classmethod
    def _slots_alone(cls, value: Any) -> Any:
        # ``lanes: {cpu: 2}`` (the form before windows) is still a valid config.
        return {"slots": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("gpu")
    @classmethod
    def _one_gpu_slot(cls, value: LaneConfig) -> LaneConfig:
        if value.slots not in (0, 1):
            raise ValueError("the GPU lane has exactly one slot (slots: 1)")
        value.slots = 1
        return value

    def cpu_slots(self) -> int:
        return self.cpu.slots or max(1, (os.cpu_count() or 2) - 1)


class QueueConfig(_Section):
    aging_seconds: float = Field(
        60.0, gt=0, description="a waiting job's priority rises by one every this many seconds (low -10 overtakes "
                                "a fresh high +10 after 20 of them): nothing starves"
    )


class GpuConfig(_Section):
    vram_budget_gb: float = Field(4.0, gt=0, description="VRAM the GPU lane may fill with resident models")
    idle_unload_seconds: float = Field(300.0, ge=0, description="unload a resident model idle this long")


class OutboxConfig(_Section):
    on_conflict: Literal["rename", "replace"] = Field(
        "rename", description="an output name already taken by another job: add -2, -3... or replace it"
    )


class VideoConfig(_Section):
    preset: Literal["landscape", "vertical", "custom"] = Field(
        "landscape", description="landscape 1920x1080 or vertical 1080x1920; custom uses width/height"
    )
    width: int = Field(1920, ge=16, description="output width when preset is custom")
    height: int = Field(1080, ge=16, description="output height when preset is custom")
    fps: int = Field(30, ge=1, le=120, description="output frame rate for generated video")
    crf: int = Field(20, ge=0, le=51, description="libx264 quality (lower is better and larger)")
    x264_preset: str = Field("veryfast", description="libx264 speed preset")
    x264_threads: int = Field(
        0, ge=0, le=64, description="libx264 threads (0: auto); 1 gives byte-identical output on every run, slower"
    )
    encoder: Literal["auto", "libx264", "h264_nvenc"] = Field(
        "auto", description="H.264 encoder: auto uses h264_nvenc when an NVIDIA GPU can encode, else libx264"
    )
    audio_bitrate: str = Field("160k", description="AAC bitrate")

    def size(self, fmt: str | None = None) -> tuple[int, int]:
        """The output frame: a brief's ``format`` (landscape or vertical) when given, else the preset."""
        preset = fmt if fmt in ("landscape", "vertical") else self.preset
        if preset == "landscape":
            return 1920, 1080
        if preset == "vertical":
            return 1080, 1920
        return self.width - self.width % 2, self.height - self.height % 2


class CaptionConfig(_Section):
    font: str = Field("DejaVu Sans", description="font family for burned captions (must cover accents)")
    size_ratio: float = Field(0.055, gt=0, lt=0.5, description="font size as a fraction of video height")
    outline_ratio: float = Field(0.08, ge=0, description="outline width as a fraction of the font size")
    margin_ratio: float = Field(0.06, ge=0, lt=0.5, description="bottom margin as a fraction of video height")
    primary_colour: str = Field("#FFFFFF", description="text colour, #RRGGBB")
    outline_colour: str = Field("#000000", description="outline colour, #RRGGBB")
    bold: bool = Field(True, description="bold captions")
    style: Literal["plain", "word_highlight"] = Field(
        "plain", description="narration captions: plain, or word_highlight (karaoke: the spoken word lights up)"
    )
    highlight_colour: str = Field(
        "#FFD400", pattern=r"^#[0-9A-Fa-f]{6}$", description="word_highlight: colour of the spoken word, #RRGGBB"
    )
    max_line_chars: int = Field(42, ge=10, le=120, description="narration captions: characters per line at most")
    max_lines: int = Field(2, ge=1, le=4, description="narration captions: lines per caption at most")
    min_seconds: float = Field(1.0, ge=0.1, description="narration captions: least time on screen")
    max_seconds: float = Field(6.0, ge=1.0, description="narration captions: most time on screen")
    max_cps: float = Field(17.0, gt=0, description="narration captions: reading speed, characters per second")


class Img2VidConfig(_Section):
    default_seconds: float = Field(8.0, gt=0, description="clip length for an image without audio")
    motion: str = Field("auto", description="zoom_in, zoom_out, pan_left, pan_right, pan_up, pan_down or auto")
    fit: Literal["cover", "fit"] = Field(
        "cover", description="another aspect: cover (crop to fill) or fit (on a blurred copy of itself)"
    )
    zoom: float = Field(1.15, ge=1.0, le=2.0, description="how far a zoom goes (1.15 = 15%)")


class AudioConfig(_Section):
    loudness_lufs: float = Field(-16.0, le=0, description="integrated loudness target for published audio")
    true_peak_db: float = Field(-1.5, le=0, description="true-peak ceiling")
    addaudio_mode: Literal["replace", "mix"] = Field(
        "replace", description="addaudio: replace or mix over the original"
    )
    length: Literal["shortest", "pad", "loop"] = Field(
        "pad", description="addaudio when lengths differ: cut to shortest, pad video with last frame, or loop video"
    )
    duck_db: float = Field(-14.0, le=0, description="level of the original/music under a voice, in dB")


class EspeakConfig(_Section):
    voice: str = Field("pt-br", description="espeak-ng voice")
    rate: int = Field(160, ge=80, le=450, description="words per minute")
    pitch: int = Field(50, ge=0, le=99, description="0-99")


class F5Reference(_Section):
    audio: str = Field("", description="reference voice recording (wav/mp3/flac), a few seconds of clean speech")
    text: str = Field("", description="exact transcript of the reference recording (empty: Whisper writes it)")


class F5Config(_Section):
    checkpoint: str = Field("", description="F5-TTS checkpoint: .safetensors (EMA) or .pt", json_schema_extra=HOST)
    vocab: str = Field("", description="vocab.txt matching the checkpoint", json_schema_extra=HOST)
    vocoder: str = Field("", description="folder with a local Vocos vocoder (config.yaml + pytorch_model.bin)",
                         json_schema_extra=HOST)
    reference: F5Reference = Field(default_factory=F5Reference, description="default reference voice",
                                   json_schema_extra=HOST)
    nfe_step: int = Field(16, ge=2, le=128, description="flow-matching steps (quality vs speed)")
    cfg_strength: float = Field(2.0, ge=0, description="classifier-free guidance strength")
    sway_sampling_coef: float = Field(-1.0, description="sway sampling coefficient")
    speed: float = Field(1.0, gt=0.3, lt=3.0, description="speaking speed")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="auto uses CUDA when available",
                                                   json_schema_extra=HOST)
    fp16: Literal["auto", "true", "false"] = Field("auto", description="half precision: auto = on CUDA only")
    cpu_fallback: bool = Field(True, description="after CUDA out-of-memory with short chunks, run on the CPU",
                               json_schema_extra=HOST)
    cpu_bf16: bool = Field(
        False, description="on the CPU, run in bf16 autocast: about 1.9x faster here (see docs/benchmarks.md)"
    )
    vram_gb: float = Field(2.5, gt=0, description="VRAM the F5 model is budgeted at in the GPU lane",
                           json_schema_extra=HOST)


class PiperTtsConfig(_Section):
    voice: str = Field(
        "", description="Piper voice: a name in <models.dir>/piper/ (pt_BR-faber-medium) or a path to its .onnx; "
        "empty: the first installed voice of tts.language", json_schema_extra=HOST)
    speaker: str = Field("", description="multi-speaker voices: a speaker name or number; empty: the voice's default")
    speed: float = Field(1.0, gt=0.3, lt=3.0, description="speaking speed (the voice's length scale is divided by it)")
    noise_scale: float | None = Field(
        None, ge=0, le=2, description="voice variation (Piper's noise_scale); null: the voice's own")
    noise_w_scale: float | None = Field(
        None, ge=0, le=2, description="rhythm variation (Piper's noise_w); null: the voice's own")
    idle_unload_seconds: float = Field(
        300.0, ge=0, description="a loaded voice stays in memory between jobs until idle this long",
        json_schema_extra=HOST)


class TtsConfig(_Section):
    engine: Literal["auto", "espeak", "piper", "f5"] = Field(
        "auto", description="narration engine; auto: F5 with a GPU and a checkpoint, else Piper with a voice "
        "installed, else espeak")
    max_chunk_chars: int = Field(300, ge=40, description="long text is split at sentence boundaries into chunks")
    sentence_pause_seconds: float = Field(0.25, ge=0, description="silence between chunks")
    language: str = Field(
        "pt-BR", description="language of narrated text: pt* spells out numbers, money, dates; others drop emoji only"
    )
    merge_sentences: bool = Field(
        False, description="join short sentences into one chunk and caption (max_chunk_chars)"
    )
    espeak: EspeakConfig = Field(default_factory=EspeakConfig, description="espeak-ng engine")
    f5: F5Config = Field(default_factory=F5Config, description="F5-TTS engine")
    piper: PiperTtsConfig = Field(default_factory=PiperTtsConfig, description="Piper engine (the omad[piper] extra)")


class SceneConfig(_Section):
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


class GenerateConfig(_Section):
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


class StabilityConfig(_Section):
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


class LibraryConfig(_Section):
    folders: list[str] = Field(
        default_factory=list, description="folders of your own photos and clips, searched by file/folder names and tags"
    )
    index: str = Field("", description="the library's SQLite index; empty: assets/library.sqlite in the state dir")
    max_files: int = Field(50000, ge=1, description="most files indexed across all folders")


class StockConfig(_Section):
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


class AssetsConfig(_Section):
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


class LlmRole(_Section):
    model: str = Field(..., description="Ollama model")
    fallback: str = Field("", description="model tried when the first one keeps failing")


def _role(model: str, fallback: str) -> Any:
    return Field(default_factory=lambda: LlmRole(model=model, fallback=fallback), description=f"default {model}")


class LlmRoles(_Section):
    supervisor: LlmRole = _role("qwen2.5:3b-instruct", "qwen2:1.5b")
    script_writer: LlmRole = _role("phi3.5:3.8b-mini", "qwen2.5:3b-instruct")
    visual_planner: LlmRole = _role("gemma2:2b", "qwen2:1.5b")
    audio_producer: LlmRole = _role("mistral:7b-instruct", "qwen2.5:3b-instruct")
    editor: LlmRole = _role("qwen2:1.5b", "qwen2.5:3b-instruct")


class LlmConfig(_Section):
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


class GuardrailsConfig(_Section):
    file: str = Field("config/guardrails.yaml", description="guardrail rules file")


class MetricsConfig(_Section):
    gpu_hour_price: float = Field(0.50, ge=0, description="price of one GPU-hour for cost estimates")
    cpu_hour_price: float = Field(0.05, ge=0, description="price of one CPU-hour for cost estimates")
    currency: str = Field("USD", description="currency of the prices")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so it is not loopback
        return False


class WebConfig(_Section):
    enabled: bool = Field(True, description="serve the web UI, the REST API, /metrics, /healthz and /readyz")
    host: str = Field("127.0.0.1", description="bind address; anything but loopback forces require_token on")
    port: int = Field(9464, ge=0, le=65535, description="port (0 picks a free one)")
    require_token: bool = Field(
        False, description="every endpoint but /healthz needs a token (`omad token add`); forced on beyond loopback"
    )
    metrics_public: bool = Field(False, description="leave /metrics open without a token (a Prometheus on the LAN)")
    tokens_file: str = Field("", description="where token hashes are kept; empty: tokens.json in the state dir")
    session_hours: float = Field(12.0, gt=0, description="how long a browser login lasts")
    max_upload_mb: float = Field(2048.0, gt=0, description="largest upload (all files of one submission together)")
    max_files: int = Field(32, ge=1, description="most files in one submission")
    submit_per_minute: int = Field(30, ge=1, description="submissions allowed per token (or client) per minute")
    submit_wait_seconds: float = Field(
        15.0, ge=0, description="how long POST /api/jobs waits for the job to be journaled before answering"
    )
    public_url: str = Field(
        "", description="the address people use (https://omad.example/): with https, the session cookie is Secure "
                        "even when a TLS proxy talks plain HTTP to omad; empty: taken from each request")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses or networks of reverse proxies whose X-Forwarded-For and "
                                          "X-Forwarded-Proto are believed; empty: nobody's")
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="a connection must send a request's headers within this (slow-header floods)")
    body_idle_seconds: float = Field(
        60.0, gt=0, description="a request body may pause this long between bytes before its connection is closed")
    max_connections: int = Field(
        1000, ge=1, description="open connections in all; past it the oldest still sending headers is dropped "
                                "(keep it under the unit's LimitNOFILE)")
    max_connections_per_client: int = Field(
        32, ge=1, description="open connections from one address (trusted proxies are not limited)")
    max_requests: int = Field(
        64, ge=1, description="requests handled at once; more are answered 503 (never /healthz)")
    max_sessions: int = Field(10000, ge=1, description="browser logins kept at once; the oldest go first")
    language: Literal["auto", "pt-BR", "en"] = Field(
        "auto", description="pages, error records and `omad status` in pt-BR or en; auto: the browser's "
                            "Accept-Language on pages, $LANG in the terminal"
    )

    @property
    def token_required(self) -> bool:
        return self.require_token or not is_loopback(self.host)


Event = Literal["job.done", "job.failed"]


def _all_events() -> list[Event]:
    return ["job.done", "job.failed"]


class WebhookConfig(_Section):
    url: str = Field(..., pattern=r"^https?://", description="where to POST the job summary")
    events: list[Event] = Field(default_factory=_all_events, description="events this hook wants")
    secret: str = Field("", description="HMAC-SHA256 key for the X-Omad-Signature header; empty: unsigned")


class AppriseConfig(_Section):
    url: str = Field(..., min_length=3, description="an Apprise URL: tgram://, discord://, ntfy://, matrix://, "
                                                    "slack://, mailto://... (it holds the service's secrets)")
    events: list[Event] = Field(default_factory=_all_events, description="events this target wants")
    attach_poster: bool = Field(True, description="attach the job's poster where the service takes attachments")


class NotifyConfig(_Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list, description="URLs told when a job ends")
    apprise: list[AppriseConfig] = Field(
        default_factory=list, description="chat and e-mail targets told when a job ends, through Apprise")
    language: Literal["pt-BR", "en"] = Field("pt-BR", description="language of the Apprise messages")
    templates_dir: str = Field(
        "", description="a folder with your own message templates (job.done.<lang>.txt, job.failed.<lang>.txt; "
                        "Jinja2, first line the title); empty: the shipped ones")
    timeout_seconds: float = Field(10.0, gt=0, description="seconds one delivery may take")
    max_attempts: int = Field(5, ge=1, description="deliveries tried before giving up on one event")
    backoff_seconds: float = Field(2.0, gt=0, description="wait before the first retry; doubles each time")


class ExecutorConfig(_Section):
    kind: Literal["local", "celery"] = Field(
        "local", description="local: stages run in this process (no broker); celery: on omad workers over Redis"
    )
    broker_url: str = Field(
        "", description="celery: the Redis URL (redis://user:password@host:6379/0, rediss:// for TLS); "
                        "empty: $OMAD_BROKER_URL, so the password can stay out of this file"
    )
    signing_key: str = Field(
        "", description="celery: the key that signs task messages and results (`omad key new`), the same on the "
                        "daemon and every worker; empty: $OMAD_SIGNING_KEY, else the systemd credential "
                        "omad-signing-key. Never sent anywhere"
    )
    result_backend: str = Field("", description="celery: where task states are kept; empty: "
                                                "$OMAD_RESULT_BACKEND, else the broker URL")
    shared_dir: str = Field(
        "", description="celery: a folder on storage the workers also mount (NFS/SMB); job work folders go in "
                        "its jobs/. Empty: the state dir. The journal always stays in state_dir"
    )
    files: Literal["shared", "s3"] = Field(
        "shared", description="celery: how job files reach workers: a shared folder (NFS/SMB), or an "
                              "S3-compatible object store keyed by sha256 (workers keep a cache)"
    )
    s3_endpoint_url: str = Field("", description="files: s3: the store's URL (MinIO, Garage...); empty: AWS")
    s3_bucket: str = Field("", description="files: s3: the bucket (credentials: the AWS_* environment)")
    s3_prefix: str = Field("omad/", description="files: s3: the prefix of every key")
    s3_region: str = Field("", description="files: s3: the region, when the store needs one")
    worker_cache_mb: float = Field(10240.0, gt=0, description="files: s3: a worker's cache of fetched files is "
                                                               "trimmed (least recently used first) past this")
    path_map: dict[str, str] = Field(
        default_factory=dict, description="worker: the daemon's path prefix -> this machine's path, "
                                          "e.g. {/srv/omad/jobs: /mnt/nas/omad/jobs}"
    )
    queue_prefix: str = Field("omad", pattern=r"^[A-Za-z0-9_-]+$",
                              description="celery: queues are <prefix>.cpu and <prefix>.gpu")
    max_in_flight: int = Field(16, ge=1, description="celery: most jobs the daemon has on workers at once")
    heartbeat_seconds: float = Field(5.0, gt=0, description="celery: how often a worker reports a running stage")
    lease_seconds: float = Field(
        60.0, gt=0, description="celery: a running stage not heard of this long is taken as lost and runs again"
    )
    visibility_timeout_seconds: float = Field(
        0.0, ge=0, description="celery: Redis redelivers a task unacknowledged this long; must exceed the longest "
                               "stage timeout (0: the longest stage timeout x 1.25 + 60)"
    )
    worker_state_dir: str = Field(
        "", description="worker: its own folder (metrics, caches, mirrors); empty: worker/ in the state dir")
    worker_metrics_port: int = Field(9465, ge=0, le=65535, description="worker: /metrics port (0: off)")
    worker_metrics_host: str = Field("127.0.0.1", description="worker: /metrics bind address")
    wake_seconds: float = Field(
        300.0, gt=0, description="celery: GPU-lane work waits and no worker serves the GPU queue: wake one at most "
                                 "once per this many seconds (doubling after each try that brings none)")
    wake_mac: str = Field("", pattern=r"^([0-9A-Fa-f]{2}([:-]?)){5}[0-9A-Fa-f]{2}$|^$",
                          description="celery: the GPU box's MAC address for a Wake-on-LAN packet; empty: none sent")
    wake_address: str = Field("255.255.255.255", description="celery: where the Wake-on-LAN packet goes (a "
                                                             "broadcast address or the box's address)")
    wake_port: int = Field(9, ge=1, le=65535, description="celery: the Wake-on-LAN UDP port (9 or 7)")
    wake_command: list[str] = Field(
        default_factory=list, description="celery: a program that starts a GPU worker (a cloud CLI, an ssh call), "
                                          "as a list: [ssh, gpu-box, systemctl, start, omad-worker]; empty: none")
    wake_timeout_seconds: float = Field(120.0, gt=0, description="celery: how long the wake command may run")

    def broker(self) -> str:
        """The broker URL: broker_url, else $OMAD_BROKER_URL, with the password from the systemd credential
        ``omad-redis-password`` put in when the URL has none."""
        url = from_env(self.broker_url, "executor.broker_url")
        creds = os.environ.get("CREDENTIALS_DIRECTORY", "")
        if not url or not creds or not url.startswith(("redis://", "rediss://")):
            return url
        try:
            password = (Path(creds) / "omad-redis-password").read_text(encoding="utf-8").strip()
        except OSError:
            return url
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(url)
        if not password or parts.password is not None:
            return url
        user = quote(parts.username or "", safe="")
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))

    def backend(self) -> str:
        return from_env(self.result_backend, "executor.result_backend") or self.broker()

    def visibility_timeout(self, jobs: JobsConfig, intake: IntakeConfig) -> float:
        """The visibility timeout in force: the configured one, else one above the longest stage timeout."""
        return self.visibility_timeout_seconds or longest_stage_timeout(jobs, intake) * 1.25 + 60


def longest_stage_timeout(jobs: JobsConfig, intake: IntakeConfig) -> float:
    """The longest any stage may run: the fixed timeouts, and the media-scaled one for the longest media taken."""
    scaled = jobs.timeout_base_seconds + jobs.timeout_per_media_second * intake.max_audio_seconds
    return max([jobs.stage_timeout_seconds, scaled, *jobs.stage_timeouts.values()])


class HooksConfig(_Section):
    after_publish: list[str] = Field(
        default_factory=list, description="a program run after a job is published, as a list: [/usr/local/bin/x, "
                                          "--flag]; the job's summary as JSON on stdin; empty: none")
    after_fail: list[str] = Field(default_factory=list, description="the same, after a job failed")
    timeout_seconds: float = Field(60.0, gt=0, description="a hook still running after this long is stopped")

    @field_validator("after_publish", "after_fail", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        import shlex

        return shlex.split(value) if isinstance(value, str) else value


DEFAULT_HALLUCINATIONS = [
    "Legendas pela comunidade Amara.org",
    "Obrigado por assistir",
    "Inscreva-se no canal",
]


class AsrConfig(_Section):
    model: str = Field(
        "base", description="Whisper model: a size (base, small, large-v3-turbo...) in models.dir/whisper/, or a "
                            "folder",
        json_schema_extra=HOST)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when CTranslate2 sees a GPU, else CPU", json_schema_extra=HOST)
    compute_type: Literal["auto", "int8", "int8_float16", "int8_float32", "int16", "float16", "bfloat16", "float32"] = (
        Field("auto", description="auto: int8 on the CPU lane, float16 on the GPU lane", json_schema_extra=HOST))
    cpu_threads: int = Field(0, ge=0, description="CPU threads for one transcription; 0: CTranslate2's default",
                             json_schema_extra=HOST)
    language: str = Field("pt", description="spoken language (ISO code, e.g. pt, en); auto detects it")
    beam_size: int = Field(5, ge=1, le=20, description="beam search width (1: greedy, faster)")
    vad: bool = Field(True, description="skip silence and music with Silero VAD before Whisper hears it")
    vad_min_silence_ms: int = Field(500, ge=0, description="VAD: silence this long splits speech")
    no_speech_threshold: float = Field(
        0.6, ge=0, le=1, description="a segment Whisper thinks is not speech above this probability is dropped"
    )
    compression_ratio_threshold: float = Field(
        2.4, gt=0, description="a segment whose text compresses better than this (a loop) is dropped"
    )
    log_prob_threshold: float = Field(-1.0, description="with no_speech: a segment below this mean log-prob is dropped")
    low_confidence: float = Field(
        0.5, ge=0, le=1, description="segments whose mean word probability is below this are listed in the sidecar"
    )
    hallucinations: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HALLUCINATIONS),
        description="phrases Whisper invents on silence or music: a segment that is only one of them is dropped",
    )
    output: Literal["burn", "soft", "both"] = Field(
        "burn", description="a transcribed video: captions burned in, a soft mov_text track, or both"
    )
    vram_gb: float = Field(1.0, gt=0, description="VRAM the Whisper model is budgeted at in the GPU lane",
                           json_schema_extra=HOST)


class ModelsConfig(_Section):
    dir: str = Field(
        "", description="speech and voice models (`omad models pull` puts them here); empty: models/ in the state dir")


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")


class Config(_Section):
    """The whole configuration. Paths are relative to the working directory."""

    inbox: str = Field("inbox", description="watched folder", json_schema_extra=HOST)
    outbox: str = Field("outbox", description="results, failed/ and logs/", json_schema_extra=HOST)
    state_dir: str = Field(".omad", description="journal, work directories and archive", json_schema_extra=HOST)
    watch: WatchConfig = Field(default_factory=WatchConfig, description="watcher and settle", json_schema_extra=HOST)
    intake: IntakeConfig = Field(default_factory=IntakeConfig, description="turning files into jobs",
                                 json_schema_extra=TRAVELS)
    jobs: JobsConfig = Field(default_factory=JobsConfig, description="attempts, backoff and timeouts",
                             json_schema_extra=TRAVELS)
    lanes: LanesConfig = Field(default_factory=LanesConfig, description="concurrency", json_schema_extra=HOST)
    gpu: GpuConfig = Field(default_factory=GpuConfig, description="GPU lane residency", json_schema_extra=HOST)
    outbox_options: OutboxConfig = Field(default_factory=OutboxConfig, alias="publish", description="publishing",
                                         json_schema_extra=HOST)
    video: VideoConfig = Field(default_factory=VideoConfig, description="generated video format",
                               json_schema_extra=TRAVELS)
    caption: CaptionConfig = Field(default_factory=CaptionConfig, description="burned caption style",
                                   json_schema_extra=TRAVELS)
    img2vid: Img2VidConfig = Field(default_factory=Img2VidConfig, description="image to video",
                                   json_schema_extra=TRAVELS)
    audio: AudioConfig = Field(default_factory=AudioConfig, description="loudness and mixing",
                               json_schema_extra=TRAVELS)
    tts: TtsConfig = Field(default_factory=TtsConfig, description="narration", json_schema_extra=TRAVELS)
    scenes: SceneConfig = Field(default_factory=SceneConfig, description="scene videos", json_schema_extra=TRAVELS)
    llm: LlmConfig = Field(default_factory=LlmConfig, description="Ollama and agent roles", json_schema_extra=TRAVELS)
    assets: AssetsConfig = Field(default_factory=AssetsConfig, description="pictures for scenes without one",
                                 json_schema_extra=TRAVELS)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig, description="guardrails",
                                         json_schema_extra=HOST)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="cost prices for metrics and pages",
                                   json_schema_extra=HOST)
    web: WebConfig = Field(default_factory=WebConfig, description="web UI, REST API, health and metrics endpoints",
                           json_schema_extra=HOST)
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="webhooks when a job ends",
                                 json_schema_extra=HOST)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="where stages run (scaling out)",
                                     json_schema_extra=HOST)
    queue: QueueConfig = Field(default_factory=QueueConfig, description="priorities (pause and windows: omad pause, "
                                                                         "lanes.*.windows)", json_schema_extra=HOST)
    hooks: HooksConfig = Field(default_factory=HooksConfig, description="programs run when a job ends",
                               json_schema_extra=HOST)
    asr: AsrConfig = Field(default_factory=AsrConfig, description="speech recognition (faster-whisper)",
                           json_schema_extra=TRAVELS)
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="speech recognition models and voices",
                                 json_schema_extra=HOST)
    log: LogConfig = Field(default_factory=LogConfig, description="logging", json_schema_extra=HOST)

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    # Where the config file was read from (shown in messages; relative paths still resolve against the
    # working directory, see the module doc).
    source: Path | None = Field(None, exclude=True, description="(internal)")

    @model_validator(mode="before")
    @classmethod
    def _moved_options(cls, data: Any) -> Any:
        # metrics.enabled/host/port were the web server's options before it had its own section.
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
            return data
        metrics = dict(data["metrics"])
        moved = {k: metrics.pop(k) for k in _MOVED_TO_WEB if k in metrics}
        if not moved:
            return data
        web = dict(data.get("web") or {})
        for key, value in moved.items():
            warnings.warn(f"the option metrics.{key} is deprecated: write it as web.{key}"
                          + (" (web." + key + " is set too and wins)" if key in web else ""),
                          FutureWarning, stacklevel=2)
            web.setdefault(key, value)
        return {**data, "metrics": metrics, "web": web}

    @model_validator(mode="after")
    def _celery_settings(self) -> Config:
        ex = self.executor
        if ex.kind == "celery":
            longest = longest_stage_timeout(self.jobs, self.intake)
            if ex.visibility_timeout_seconds and ex.visibility_timeout_seconds <= longest:
                raise ValueError(
                    f"executor.visibility_timeout_seconds ({ex.visibility_timeout_seconds:g}) must exceed the longest "
                    f"stage timeout ({longest:g} s, from jobs.* and intake.max_audio_seconds): Redis would hand a "
                    "running stage to a second worker. Raise it, or set 0 to have it computed")
            if ex.lease_seconds <= 2 * ex.heartbeat_seconds:
                raise ValueError(f"executor.lease_seconds ({ex.lease_seconds:g}) must exceed two heartbeats "
                                 f"(executor.heartbeat_seconds = {ex.heartbeat_seconds:g})")
        return self

    def models_dir(self) -> Path:
        """Where models and voices are kept on this machine (``models.dir``, else ``<state_dir>/models``)."""
        return self.resolve(self.models.dir) if self.models.dir else self.resolve(self.state_dir) / "models"

    def worker_dir(self) -> Path:
        """A worker's own folder (``executor.worker_state_dir``, else ``<state_dir>/worker``)."""
        own = self.executor.worker_state_dir
        return self.resolve(own) if own else self.resolve(self.state_dir) / "worker"

    def resolve(self, value: str) -> Path:
        """A path option; relative paths are taken from the working directory, like inbox and outbox."""
        return Path(value).expanduser()


def _format_validation(err: ValidationError, where: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown option '{loc}'")
        else:
            lines.append(f"'{loc}': {e['msg']}")
    return f"{where}: " + "; ".join(lines) + ". See config/omad.yaml for every option with its description."


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a config file (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source: Path | None = None
    if path is not None:
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read the config file ({e.strerror}).", file=source) from e
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"is not valid YAML: {e}", file=source) from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("must be a mapping of options.", file=source)
        data = loaded or {}
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, str(source or "configuration"))) from e
    cfg.source = source.resolve() if source is not None else None
    return cfg


def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text.removesuffix("...").strip()


def _dump_model(model: BaseModel, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        key = field.alias or name
        value = getattr(model, name)
        if field.description:
            out.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            out.append(f"{pad}{key}:")
            _dump_model(value, indent + 1, out)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            items = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
            out.append(f"{pad}{key}: {_yaml_scalar(items)}")
        else:
            out.append(f"{pad}{key}: {_yaml_scalar(value)}")


def dump_config_yaml(cfg: Config | None = None) -> str:
    """The documented YAML form of a configuration (defaults when ``cfg`` is None)."""
    cfg = cfg or Config()
    out = [
        "# omad configuration. Generated by `omad config --dump`; every option is shown",
        "# with its default and a one-line description. Relative paths are taken from",
        "# the working directory (systemd: WorkingDirectory=).",
    ]
    _dump_model(cfg, 0, out)
    return "\n".join(out) + "\n"
