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

import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from .base import _MOVED_TO_WEB, DEFAULT_IGNORE, ENV_FALLBACK, HOST, TRAVELS, Reach, Section, from_env, reach_of
from .jobs import GpuConfig, IntakeConfig, JobsConfig, LaneConfig, LanesConfig, OutboxConfig, QueueConfig, WatchConfig
from .media import AudioConfig, CaptionConfig, Img2VidConfig, VideoConfig
from .scenes import (
    AssetsConfig,
    GenerateConfig,
    GuardrailsConfig,
    LibraryConfig,
    LlmConfig,
    LlmRole,
    LlmRoles,
    SceneConfig,
    StabilityConfig,
    StockConfig,
)
from .service import (
    AppriseConfig,
    ExecutorConfig,
    HooksConfig,
    LogConfig,
    MetricsConfig,
    NotifyConfig,
    WebConfig,
    WebhookConfig,
    is_loopback,
    longest_stage_timeout,
)
from .voices import (
    DEFAULT_HALLUCINATIONS,
    AsrConfig,
    EspeakConfig,
    F5Config,
    F5Reference,
    ModelsConfig,
    PiperTtsConfig,
    TtsConfig,
)

__all__ = ["AppriseConfig", "AsrConfig", "AssetsConfig", "AudioConfig", "CaptionConfig", "Config",
           "DEFAULT_HALLUCINATIONS", "DEFAULT_IGNORE", "ENV_FALLBACK", "EspeakConfig", "ExecutorConfig",
           "F5Config", "F5Reference", "GenerateConfig", "GpuConfig", "GuardrailsConfig", "HOST", "HooksConfig",
           "Img2VidConfig", "IntakeConfig", "JobsConfig", "LaneConfig", "LanesConfig", "LibraryConfig",
           "LlmConfig", "LlmRole", "LlmRoles", "LogConfig", "MetricsConfig", "ModelsConfig", "NotifyConfig",
           "OutboxConfig", "PiperTtsConfig", "QueueConfig", "Reach", "SceneConfig", "Section",
           "StabilityConfig", "StockConfig", "TRAVELS", "TtsConfig", "VideoConfig", "WatchConfig", "WebConfig",
           "WebhookConfig", "dump_config_yaml", "from_env", "is_loopback", "load_config",
           "longest_stage_timeout", "reach_of"]


class Config(Section):
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

