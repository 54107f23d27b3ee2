"""The stage contract: what every stage provides and receives.

A stage is a subclass of :class:`Stage` with a ``name``, ``lane(ctx) -> Lane``
(the lane it runs on; an unknown lane is an error), ``run(ctx) -> StageResult``
and ``cleanup(ctx)``, which the runner SHALL always call after ``run``, in a
``finally``, whether ``run`` returned or raised (paperless-ngx's plugin rule).

A stage reads its inputs and earlier artifacts through ``ctx.path(role)`` and
writes its outputs under ``ctx.work`` (paths relative to it in the result: the
attempt's own run folder, the same wherever the stage runs); it
never touches the inbox, the outbox, the journal or any module-global state:
everything it needs comes in the :class:`StageContext` (settings, guardrails,
TTS engine, folders, cancel, progress, log; ffmpeg through ``ctx.ffmpeg``, its
timeout, cancel and progress given once), so the same code can run in
another process from a serialisable description. Stages share helpers through
``media/``, ``narration``, ``text`` and friends, never by importing each other.
Errors leave a stage only as ``OmadError``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .lanes import Lane

if TYPE_CHECKING:
    from .config import Config
    from .executors.layout import JobFolder
    from .guardrails import Guardrails
    from .lanes import Lanes
    from .media.ffmpeg_run import Ffmpeg
    from .tts import TtsEngine
    from .tts.choice import EngineChoice

__all__ = ["Stage", "StageContext", "StageResult", "Lane"]

#: Keys older journals kept inside ``facts``; read into the typed fields when such a row is loaded.
_LEGACY_KEYS = ("guardrail_findings", "tools", "warnings", "tts", "agents")


@dataclass
class StageResult:
    """What a finished stage leaves behind.

    ``artifacts`` maps a role (``"video"``, ``"srt"``, ``"poster"``...) to a
    path relative to the work dir; later stages see the union of all earlier
    artifacts. ``publish`` maps an outbox suffix (``".mp4"``, ``".srt"``) to an
    artifact role: the outbox publishes the union over all stages, later
    stages winning. ``facts`` go into the sidecar as the stage's own record.

    The typed fields are the side channels the sidecar, the metrics and the
    status page read: guardrail findings (``Finding.to_dict()``), tool versions,
    warnings for the user, TTS records (``engine``, ``rtf``, ``vram_peak_gb``...),
    LLM call records (``CallRecord.to_dict()``), and the seconds the attempt
    held each lane (set by the runner).
    """

    artifacts: dict[str, str] = field(default_factory=dict)
    publish: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    guardrail_findings: list[dict[str, Any]] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tts: list[dict[str, Any]] = field(default_factory=list)
    llm_calls: list[dict[str, Any]] = field(default_factory=list)
    lane_seconds: dict[str, float] = field(default_factory=dict)
    #: the worker that ran the stage (celery executor); empty when it ran in the daemon
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"artifacts": self.artifacts, "publish": self.publish, "facts": self.facts,
                "guardrail_findings": self.guardrail_findings, "tools": self.tools, "warnings": self.warnings,
                "tts": self.tts, "llm_calls": self.llm_calls, "lane_seconds": self.lane_seconds,
                **({"worker": self.worker} if self.worker else {})}

    def sidecar_facts(self) -> dict[str, Any]:
        """The stage's entry in the sidecar: its facts, plus the TTS and LLM records and warnings when present."""
        out = dict(self.facts)
        if self.tts:
            out["tts"] = self.tts if len(self.tts) > 1 else self.tts[0]
        if self.llm_calls:
            out["agents"] = self.llm_calls
        if self.warnings:
            out["warnings"] = self.warnings
        if self.worker:
            out["worker"] = self.worker
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        facts = dict(data.get("facts") or {})
        legacy = {k: facts.pop(k) for k in _LEGACY_KEYS if k in facts}  # a journal row from before the fields
        tts = data.get("tts", legacy.get("tts")) or []
        return cls(
            artifacts=dict(data.get("artifacts") or {}),
            publish=dict(data.get("publish") or {}),
            facts=facts,
            guardrail_findings=list(data.get("guardrail_findings", legacy.get("guardrail_findings")) or []),
            tools=dict(data.get("tools", legacy.get("tools")) or {}),
            warnings=list(data.get("warnings", legacy.get("warnings")) or []),
            tts=[tts] if isinstance(tts, dict) else list(tts),
            llm_calls=list(data.get("llm_calls", legacy.get("agents")) or []),
            lane_seconds={str(k): float(v) for k, v in (data.get("lane_seconds") or {}).items()},
            worker=str(data.get("worker") or ""),
        )


@dataclass
class StageContext:
    """Everything a stage may use. Built by the daemon for each stage run."""

    job_id: str
    route: str
    name: str  # the drop's stem: outputs are named after it
    work: Path  # the job's work directory (inputs/ inside it)
    inputs: dict[str, Path]  # role -> absolute path of a claimed input
    options: dict[str, Any]  # the brief's options (empty for plain drops)
    config: Config
    lanes: Lanes
    artifacts: dict[str, str] = field(default_factory=dict)  # from earlier stages
    stage: str = ""
    timeout: float = 3600.0
    progress: Callable[[float], None] = lambda fraction: None
    cancel: threading.Event = field(default_factory=threading.Event)
    warnings: list[str] = field(default_factory=list)
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger("omad.stage"))
    attempt: int = 1
    guardrails: Guardrails | None = None  # the rules in force for this job (None: read from config)
    engines: dict[str, TtsEngine] = field(default_factory=dict)  # TTS engines made for this stage, by name
    #: the job folder that holds the inputs and earlier artifacts; ``work`` is this attempt's run folder in it
    #: (``runs/<stage>.<attempt>``, whichever executor runs the stage). None: ``work`` itself
    base: Path | None = None

    @property
    def job_folder(self) -> JobFolder:
        """The job folder's layout (inputs, run folders, scratch), as every executor uses it."""
        from .executors.layout import JobFolder

        return JobFolder(self.base or self.work)

    @property
    def ffmpeg(self) -> Ffmpeg:
        """ffmpeg for this stage: its timeout (as scaled so far), cancel and progress given once.

        ``ctx.ffmpeg(args, duration=..., span=(0.3, 0.9), file_label=...)``; ``ctx.ffmpeg.within(span)`` for a
        media helper that reports 0..1 of its own.
        """
        from .media.ffmpeg_run import Ffmpeg

        return Ffmpeg(timeout=self.timeout, cancel=self.cancel, progress=self.progress, stage=self.stage)

    @property
    def scratch(self) -> Path:
        """This attempt's own folder for temporary files (removed after the stage; never shared by attempts)."""
        path = self.job_folder.scratch(self.attempt, self.stage)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def guard(self) -> Guardrails:
        """The guardrails for this job."""
        if self.guardrails is None:
            from .guardrails import guardrails_for

            self.guardrails = guardrails_for(self.config)
        return self.guardrails

    def engine_name(self) -> str:
        """The TTS engine this job's narration uses: the brief's ``voice.engine``, else ``tts.engine``."""
        return self.engine_choice().engine

    def engine_choice(self) -> EngineChoice:
        """The engine (``auto`` resolved on this machine) and why it was chosen, for the sidecar."""
        from .tts.choice import choose_engine

        voice = self.options.get("voice") or {}
        return choose_engine(self.config, str(voice.get("engine") or "") or None, str(voice.get("name") or ""))

    def tts(self) -> TtsEngine:
        """The TTS engine for this job (made once per stage run)."""
        name = self.engine_name()
        if name not in self.engines:
            from .tts import engine_for

            self.engines[name] = engine_for(self.config, self.lanes, name)
        return self.engines[name]

    def tts_lane(self) -> Lane:
        """The lane this job's TTS engine runs on, known without loading the engine."""
        from .tts import lane_of

        return lane_of(self.engine_name())

    def path(self, role: str) -> Path:
        """Absolute path of an earlier artifact, else of an input, by role."""
        if role in self.artifacts:
            return (self.base or self.work) / self.artifacts[role]
        return self.inputs[role]

    def has(self, role: str) -> bool:
        return role in self.artifacts or role in self.inputs

    def label(self, role: str) -> str:
        """The name to show a user for an input (the file they dropped)."""
        p = self.inputs.get(role)
        return p.name if p is not None else role

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def scale_timeout(self, media_seconds: float | None) -> float:
        """Size this stage's timeout to the media it works on, once that length is known.

        ``jobs.timeout_base_seconds + jobs.timeout_per_media_second x seconds``,
        unless ``jobs.stage_timeouts`` names this stage explicitly.
        """
        jobs = self.config.jobs
        if media_seconds and media_seconds > 0 and self.stage not in jobs.stage_timeouts:
            self.timeout = jobs.timeout_base_seconds + jobs.timeout_per_media_second * media_seconds
        return self.timeout


class Stage:
    """The base of every stage. Subclasses set ``name`` and override ``run``, and ``lane`` when not the CPU."""

    name: str = ""
    #: the artifact kinds (input roles or earlier stages' artifacts) ``run`` reads; ``"a|b"``: one of them.
    #: :mod:`omad.routes` checks every route's chain against these before any job runs.
    needs: tuple[str, ...] = ()
    #: the artifact roles ``run`` may leave in its result, for the stages after it
    makes: tuple[str, ...] = ()

    def lane(self, ctx: StageContext) -> Lane:
        """The lane this stage runs on for this job."""
        return Lane.CPU

    def light(self, ctx: StageContext) -> bool:
        """Whether this job's run is cheap enough (well under a second of one core) to take a CPU core the lane's
        slots leave idle (``lanes.cpu.lend_idle_cores``) instead of queueing behind a render."""
        return False

    def run(self, ctx: StageContext) -> StageResult:
        raise NotImplementedError(f"stage {self.name!r} has no run()")

    def cleanup(self, ctx: StageContext) -> None:
        """Always called after ``run``, whether it returned or raised; the default removes the attempt's scratch."""
        shutil.rmtree(ctx.job_folder.scratch(ctx.attempt, self.name), ignore_errors=True)

    def lane_checked(self, ctx: StageContext) -> Lane:
        """``lane(ctx)`` as a :class:`Lane`; anything else is a configuration error, never a silent CPU."""
        lane = self.lane(ctx)
        try:
            return Lane(lane)
        except ValueError as e:
            raise ConfigError(f"stage {self.name!r} asked for lane {lane!r}; lanes are "
                              f"{', '.join(m.value for m in Lane)}.") from e
