"""The agent pipeline: a prompt brief in, a scene brief (``VideoBrief`` with scenes) out.

Owns the order of the roles (supervisor -> script writer -> visual planner and
audio producer concurrently -> editor), guardrails on the brief before any
model runs and on every generated text after, the choice of bundle images
(only files that exist in the bundle; anything else becomes a title card
with a warning), and the assembly of the final scenes.

It never renders, never writes files (the plan stage writes ``scenes.yaml``)
and never logs or records a text that has not been through the guardrails.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from ..assets.soundtrack import music_moods
from ..brief import MOTIONS, AssetSpec, Scene, VideoBrief, resolve_asset
from ..errors import InputError, OmadError, ToolTimeout, TransientError
from .client import CallRecord, LlmClient
from .roles import (
    MAX_SCENES,
    AudioAnswer,
    EditorAnswer,
    ScriptAnswer,
    SupervisorAnswer,
    VisualAnswer,
    run_audio_producer,
    run_editor,
    run_script_writer,
    run_supervisor,
    run_visual_planner,
    spoken_seconds,
)

if TYPE_CHECKING:
    from ..config import Config
    from ..guardrails import Guardrails
    from ..lanes import Lanes

__all__ = [
    "IMAGE_SUFFIXES",
    "AgentPlan",
    "bundle_images",
    "plan_agent_video",
    "plan_agent_video_async",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
MIN_SECONDS_PER_SCENE = 3.0
MAX_BUNDLE_ENTRIES = 500
# Scene gains a separate text for the voice (respellings) once the scene-video
# route supports it; until then captions and voice share ``narration``, which
# keeps the written form (respellings would show up in the captions).
_SCENE_HAS_SPOKEN = "spoken" in Scene.model_fields

T = TypeVar("T")


@dataclass
class AgentPlan:
    """The pipeline's result: the scene brief and what it took to write it."""

    scene_brief: VideoBrief
    records: list[CallRecord]
    findings: list[dict[str, Any]]
    warnings: list[str]
    summary: dict[str, Any]

    def scene_brief_yaml(self) -> str:
        data = self.scene_brief.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
        header = "# Scene brief written by omad's agents. Edit it and drop it again to re-render as written.\n"
        return header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


@dataclass
class _Planned:
    narration: str
    on_screen_text: str
    image: str | None = None
    motion: str | None = None
    spoken: str | None = None
    #: what a picture for the scene should show, and words to search one by (the asset stage's input)
    description: str = ""
    keywords: list[str] = field(default_factory=list)


@dataclass
class _Run:
    guard: Guardrails
    llm: LlmClient
    label: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)
    _unvetted: list[str] = field(default_factory=list)

    def clean(self, text: str, where: str) -> str:
        """The text after the rules: redacted, findings kept (masked); a block raises GuardrailBlocked."""
        if not text.strip():
            return text
        outcome = self.guard.check(text, where, file=self.label)
        self.findings.extend(f.to_dict() for f in outcome.findings)
        self._unvetted.append(outcome.text)
        return outcome.text

    async def vet(self, where: str) -> None:
        """The safety model (when enabled) on everything cleaned since the last call: one request per step."""
        texts, self._unvetted = self._unvetted, []
        if texts and self.guard.safety_enabled:
            findings = await self.llm.safety_check(self.guard, "\n\n".join(texts), where, file=self.label)
            self.findings.extend(findings)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def bundle_images(brief: VideoBrief, bundle: Path, label: str, warn: Callable[[str], None]) -> list[dict[str, str]]:
    """Images the visual planner may use: the brief's image assets (with descriptions), then other bundle images."""
    images: list[dict[str, str]] = []
    seen: set[str] = set()
    for asset in brief.assets:
        if Path(asset.file).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            resolve_asset(bundle, asset.file, label, "assets")
        except InputError as e:
            warn(f"{e.message} It is left out of the video.")
            continue
        images.append({"file": asset.file, "description": asset.description})
        seen.add(asset.file)
    try:
        entries = sorted(bundle.iterdir())[:MAX_BUNDLE_ENTRIES]
    except OSError:
        entries = []
    for p in entries:
        if p.name in seen or p.name.startswith(".") or p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        images.append({"file": p.name, "description": ""})
    return images


def _match_asset(choice: str, images: list[dict[str, str]]) -> str | None:
    """The bundle file a planner's pick names (small models change case or drop folders), else None."""
    wanted = choice.strip()
    if not wanted:
        return None
    for img in images:
        if img["file"] == wanted:
            return img["file"]
    lowered = wanted.lower()
    for img in images:
        if img["file"].lower() == lowered or Path(img["file"]).name.lower() == Path(lowered).name:
            return img["file"]
    return None


def _redacted_brief(brief: VideoBrief, run: _Run) -> VideoBrief:
    update: dict[str, Any] = {}
    for key in ("prompt", "topic", "audience", "tone", "title"):
        value = getattr(brief, key)
        if value:
            update[key] = run.clean(value, f"brief.{key}")
    update["assets"] = [
        AssetSpec.model_validate(
            {"file": a.file, "description": run.clean(a.description, f"brief.assets[{i}].description")}
        )
        for i, a in enumerate(brief.assets)
    ]
    return brief.model_copy(update=update)


def _brief_for_models(brief: VideoBrief, images: list[dict[str, str]]) -> dict[str, Any]:
    data = {
        "prompt": brief.prompt,
        "topic": brief.topic,
        "audience": brief.audience,
        "tone": brief.tone,
        "title": brief.title,
        "duration_seconds": brief.duration_seconds,
        "language": brief.language,
        "format": brief.format,
        "images": images,
        "has_music": bool(brief.music),
    }
    return {k: v for k, v in data.items() if v not in (None, "")}


async def _maybe(flag: bool, make: Callable[[], Coroutine[Any, Any, T]]) -> T | None:
    return await make() if flag else None


async def _plan(
    brief: VideoBrief, bundle: Path, config: Config, guard: Guardrails, lanes: Lanes | None, holder: str, label: str
) -> AgentPlan:
    llm_cfg = config.llm
    language = brief.language or "pt-BR"
    wps = llm_cfg.words_per_second
    padding = config.scenes.padding_seconds
    async with LlmClient(llm_cfg, lanes, holder=holder) as llm:
        run = _Run(guard, llm, label)
        # Guardrails see the brief before any model does.
        brief = _redacted_brief(brief, run)
        await run.vet("brief")
        images = bundle_images(brief, bundle, label, run.warn)
        brief_in = _brief_for_models(brief, images)

        analysis, rec = await run_supervisor(llm, llm_cfg, language, brief_in)
        run.records.append(rec)
        analysis = _clean_analysis(analysis, run)
        await run.vet("supervisor")
        target = float(brief.duration_seconds or analysis.target_duration_seconds)
        scene_count = max(1, min(analysis.scene_count, MAX_SCENES, int(target // MIN_SECONDS_PER_SCENE) or 1))
        requested = list(dict.fromkeys(analysis.workers))

        script, rec = await run_script_writer(
            llm, llm_cfg, language, brief_in, analysis.model_dump(exclude={"workers"}), target, scene_count
        )
        run.records.append(rec)
        planned = _clean_script(script, run)
        await run.vet("script")
        script_in = [
            {"scene": i + 1, "narration": p.narration, "on_screen_text": p.on_screen_text}
            for i, p in enumerate(planned)
        ]

        # Without music in the brief, the audio producer picks a mood from those the user's folders offer.
        moods = [] if brief.music else music_moods(config)
        # Asked even without bundle images: its description and keywords let the asset stage find pictures.
        run_visual = "visual_planner" in requested
        run_audio = "audio_producer" in requested
        results = await asyncio.gather(
            _maybe(run_visual, lambda: run_visual_planner(llm, llm_cfg, language, script_in, images)),
            _maybe(run_audio, lambda: run_audio_producer(llm, llm_cfg, language, script_in,
                                                         bool(brief.music) or bool(moods), moods)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        visual_result, audio_result = results
        visual: VisualAnswer | None = None
        audio: AudioAnswer | None = None
        if isinstance(visual_result, tuple):
            visual, rec = visual_result
            run.records.append(rec)
        if isinstance(audio_result, tuple):
            audio, rec = audio_result
            run.records.append(rec)
        _apply_visuals(planned, visual, images, run)
        _apply_audio(planned, audio, run)
        await run.vet("audio")

        speed = audio.speed if audio is not None else (brief.voice.speed if brief.voice and brief.voice.speed else 1.0)
        seconds = [round(spoken_seconds(p.narration, wps, speed) + padding, 1) for p in planned]
        plan_in = [
            {
                "scene": i + 1,
                "narration": p.narration,
                "on_screen_text": p.on_screen_text,
                "image": p.image or "title card",
                "estimated_seconds": seconds[i],
            }
            for i, p in enumerate(planned)
        ]
        estimated = sum(seconds)
        edit, rec = await run_editor(llm, llm_cfg, language, plan_in, target, estimated)
        run.records.append(rec)
        scenes = _final_scenes(edit, planned, run)
        notes = run.clean(edit.notes, "editor.notes")
        await run.vet("editor")

    final_seconds = sum(spoken_seconds(s.narration, wps, speed) + padding for s in scenes)
    scene_brief = _scene_brief(brief, scenes, audio, moods)
    summary = {
        "language": language,
        "target_duration_seconds": round(target, 1),
        "estimated_duration_seconds": round(final_seconds, 1),
        "scenes_planned": len(planned),
        "scenes_final": len(scenes),
        "workers_requested": requested,
        "workers_run": [r.role for r in run.records],
        "editor_decision": edit.decision,
        "editor_notes": notes,
        "images_offered": [i["file"] for i in images],
        "images_used": [s.image for s in scenes if s.image],
    }
    return AgentPlan(scene_brief, run.records, run.findings, run.warnings, summary)


def _clean_analysis(analysis: SupervisorAnswer, run: _Run) -> SupervisorAnswer:
    return analysis.model_copy(
        update={k: run.clean(getattr(analysis, k), f"supervisor.{k}") for k in ("objective", "audience", "tone")}
    )


def _clean_script(script: ScriptAnswer, run: _Run) -> list[_Planned]:
    hook = run.clean(script.hook, "script.hook").strip()
    cta = run.clean(script.call_to_action, "script.call_to_action").strip()
    planned = [
        _Planned(
            narration=run.clean(s.narration, f"script.scene[{i + 1}].narration").strip(),
            on_screen_text=run.clean(s.on_screen_text, f"script.scene[{i + 1}].on_screen_text").strip(),
        )
        for i, s in enumerate(script.scenes)
    ]
    # The hook opens the first scene and the call to action closes the last, unless the writer already did so.
    if hook and _words(hook) not in _words(planned[0].narration):
        planned[0].narration = f"{hook} {planned[0].narration}"
    if cta and _words(cta) not in _words(planned[-1].narration):
        planned[-1].narration = f"{planned[-1].narration} {cta}"
    return planned


def _apply_visuals(
    planned: list[_Planned], visual: VisualAnswer | None, images: list[dict[str, str]], run: _Run
) -> None:
    if visual is None:
        # No planner (no images, or the supervisor skipped it): bundle images in order, then title cards.
        for p, img in zip(planned, images, strict=False):
            p.image, p.motion = img["file"], "auto"
        return
    for choice in visual.scenes:
        p = planned[choice.scene - 1]
        picked = _match_asset(choice.asset, images)
        if choice.asset.strip() and picked is None:
            run.warn(
                f"the visual planner picked '{choice.asset[:80]}' for scene {choice.scene}, which is not an image "
                "in the bundle; that scene gets a title card."
            )
        p.image = picked
        p.motion = choice.motion if picked and choice.motion in MOTIONS else None
        where = f"visual.scene[{choice.scene}]"
        p.description = run.clean(choice.description, f"{where}.description").strip()
        words = [run.clean(k, f"{where}.keywords[{n}]").strip() for n, k in enumerate(choice.keywords)]
        # A keyword the guardrails changed held something they redact: it is left out, not searched for.
        p.keywords = list(dict.fromkeys(w for w, k in zip(words, choice.keywords, strict=True) if w and w == k.strip()))


def _apply_audio(planned: list[_Planned], audio: AudioAnswer | None, run: _Run) -> None:
    if audio is None:
        return
    for s in audio.scenes:
        planned[s.scene - 1].spoken = run.clean(s.narration, f"audio.scene[{s.scene}].narration").strip()


def _final_scenes(edit: EditorAnswer, planned: list[_Planned], run: _Run) -> list[Scene]:
    scenes = []
    for i, es in enumerate(edit.scenes, start=1):
        src = planned[es.from_scenes[0] - 1]
        narration = run.clean(es.narration, f"editor.scene[{i}].narration").strip()
        title = run.clean(es.on_screen_text, f"editor.scene[{i}].on_screen_text").strip()
        data: dict[str, Any] = {
            "narration": narration,
            "image": src.image,
            "title": title or None,
            "motion": src.motion if src.image else None,
        }
        if not src.image:  # what the asset stage searches a picture by
            data["description"] = src.description[:500] or None
            data["keywords"] = src.keywords[:20] or None
        # The voice's respelled text only still fits when the editor left the scene's words alone.
        unchanged = len(es.from_scenes) == 1 and _words(narration) == _words(src.narration)
        if _SCENE_HAS_SPOKEN and unchanged and src.spoken and src.spoken != narration:
            data["spoken"] = src.spoken
        scenes.append(Scene.model_validate(data))
    return scenes


def _scene_brief(brief: VideoBrief, scenes: list[Scene], audio: AudioAnswer | None,
                 moods: list[str] | None = None) -> VideoBrief:
    voice = brief.voice.model_dump(exclude_none=True) if brief.voice else None
    if audio is not None and (voice is None or "speed" not in voice):
        voice = {**(voice or {}), "speed": audio.speed}
    music: Any = brief.music
    if music is None and audio is not None and audio.mood.strip().lower() in (moods or []):
        music = {"mood": audio.mood.strip().lower()}
    music_db = brief.music_db
    if music and music_db is None and audio is not None:
        music_db = audio.music_db
    data = {
        "version": 1,
        "kind": "video",
        "name": brief.name,
        "title": brief.title,
        "format": brief.format,
        "formats": brief.formats,
        "scenes": [s.model_dump(exclude_none=True) for s in scenes],
        "language": brief.language,
        "assets": [a.model_dump() for a in brief.assets],
        "music": music,
        "music_db": music_db,
        "captions": brief.captions,
        "caption": brief.caption.model_dump(exclude_none=True) if brief.caption else None,
        "voice": voice,
        "picture_sources": brief.picture_sources,
    }
    # Validated like a user's brief, so what the video route reads back is exactly what was checked here.
    return VideoBrief.model_validate({k: v for k, v in data.items() if v is not None})


async def plan_agent_video_async(
    brief: VideoBrief,
    *,
    bundle: Path,
    config: Config,
    guard: Guardrails,
    lanes: Lanes | None = None,
    holder: str = "agents",
    label: str = "brief",
) -> AgentPlan:
    """Run the roles on ``brief`` (a prompt brief) and return the scene brief; bundle images are in ``bundle``."""
    try:
        return await _plan(brief, bundle, config, guard, lanes, holder, label)
    except OmadError as e:
        if e.file is None:
            e.file = label
        raise


def plan_agent_video(
    brief: VideoBrief,
    *,
    bundle: Path,
    config: Config,
    guard: Guardrails,
    lanes: Lanes | None = None,
    holder: str = "agents",
    label: str = "brief",
    cancel: threading.Event | None = None,
    timeout: float | None = None,
) -> AgentPlan:
    """Blocking form for a stage's worker thread: runs the pipeline with ``asyncio.run``.

    ``cancel`` (set by the daemon on shutdown) stops it mid-call with a
    TransientError so the job resumes later; past ``timeout`` seconds it stops
    with a ToolTimeout.
    """

    async def main() -> AgentPlan:
        task = asyncio.ensure_future(
            plan_agent_video_async(
                brief, bundle=bundle, config=config, guard=guard, lanes=lanes, holder=holder, label=label
            )
        )
        watchers: set[asyncio.Future[Any]] = set()
        if cancel is not None:
            watchers.add(asyncio.ensure_future(_wait_event(cancel)))
        done, _ = await asyncio.wait({task, *watchers}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in watchers:
            w.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if cancel is not None and cancel.is_set():
            raise TransientError("the agent plan was stopped (omad is shutting down); it resumes later.", file=label)
        raise ToolTimeout(
            f"the agents did not finish within {timeout:g} s (jobs.stage_timeouts.plan). Use smaller models, "
            "a shorter video, or raise the timeout.",
            file=label,
        )

    return asyncio.run(main())


async def _wait_event(event: threading.Event, poll: float = 0.2) -> None:
    while not event.is_set():
        await asyncio.sleep(poll)
