"""Watching, intake, jobs, lanes and publishing: how drops become jobs and run."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import DEFAULT_IGNORE, HOST, Section


class WatchConfig(Section):
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


class IntakeConfig(Section):
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
        from ..controls import parse_priority

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
    route_modules: list[str] = Field(
        default_factory=list, json_schema_extra=HOST,
        description="Python modules the daemon and each worker import at start to add routes and briefs "
                    "(omad.routes.register); each host names its own, never sent with a task",
    )


class JobsConfig(Section):
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


class LaneConfig(Section):
    slots: int = Field(0, ge=0, description="slots (cpu: 0 means max(1, cores-1); gpu: always 1)")
    lend_idle_cores: bool = Field(
        True, description="cpu: light stages (a narration of a few sentences) may also run on the cores the slots "
                          "leave idle, so they do not queue behind a render; gpu: unused")
    windows: list[str] = Field(
        default_factory=list, description="when the lane may start stages, local time: ['00:00-07:00'] or "
                                          "['mon-fri 22:00-06:00']; empty: always"
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        from ..windows import parse_window

        for text in value:
            parse_window(text)
        return value


def _lane(default_slots: int) -> Any:
    return Field(default_factory=lambda: LaneConfig(slots=default_slots),
                 description="a number (its slots, as before) or {slots, windows}")


class LanesConfig(Section):
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

    def cpu_lent(self) -> int:
        """Slots on the CPU lane that only light stages may take: the cores ``cpu_slots`` leaves idle."""
        return max(0, (os.cpu_count() or 2) - self.cpu_slots()) if self.cpu.lend_idle_cores else 0


class QueueConfig(Section):
    aging_seconds: float = Field(
        60.0, gt=0, description="a waiting job's priority rises by one every this many seconds (low -10 overtakes "
                                "a fresh high +10 after 20 of them): nothing starves"
    )


class GpuConfig(Section):
    vram_budget_gb: float = Field(4.0, gt=0, description="VRAM the GPU lane may fill with resident models")
    idle_unload_seconds: float = Field(300.0, ge=0, description="unload a resident model idle this long")


class OutboxConfig(Section):
    on_conflict: Literal["rename", "replace"] = Field(
        "rename", description="an output name already taken by another job: add -2, -3... or replace it"
    )
