"""The five agent roles: what each is asked (a prompt file), what it must answer (a pydantic model).

supervisor -> script writer -> (visual planner | audio producer, concurrently) -> editor.
Each runner renders its prompt from ``omad/prompts/<role>.md`` (in the brief's
language), sends the role's inputs as JSON, and returns the validated answer
with its ``CallRecord``. Answers that parse but do not fit the request (a
scene number that does not exist) are refused here so the client re-asks.

This module knows nothing about files, guardrails or the scene brief: the
pipeline owns those. It must never trust a model's numbers without bounds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..brief import Motion
from ..config import LlmConfig, LlmRole
from .client import CallRecord, LlmClient, PromptRef

__all__ = [
    "MAX_SCENES",
    "WORKERS",
    "Prompt",
    "SupervisorAnswer",
    "ScriptScene",
    "ScriptAnswer",
    "VisualChoice",
    "VisualAnswer",
    "SpokenScene",
    "AudioAnswer",
    "EditedScene",
    "EditorAnswer",
    "load_prompt",
    "spoken_seconds",
    "word_count",
    "run_supervisor",
    "run_script_writer",
    "run_visual_planner",
    "run_audio_producer",
    "run_editor",
]

MAX_SCENES = 20
Worker = Literal["script_writer", "visual_planner", "audio_producer", "editor"]
WORKERS: tuple[str, ...] = ("script_writer", "visual_planner", "audio_producer", "editor")

A = TypeVar("A", bound=BaseModel)


class _Answer(BaseModel):
    # Small models add chatter keys; ignoring them beats failing a whole role on it.
    model_config = ConfigDict(extra="ignore")


class SupervisorAnswer(_Answer):
    """The supervisor's analysis of the brief and its task plan."""

    objective: str = Field(min_length=1, max_length=600, description="what the video must achieve")
    audience: str = Field(min_length=1, max_length=300, description="who it is for")
    tone: str = Field(min_length=1, max_length=200, description="tone of voice")
    target_duration_seconds: float = Field(gt=0, le=900, description="length of the finished video")
    scene_count: int = Field(ge=1, le=MAX_SCENES, description="how many scenes")
    workers: list[Worker] = Field(description="which workers to run")


class ScriptScene(_Answer):
    narration: str = Field(min_length=1, max_length=3000, description="what the narrator says")
    on_screen_text: str = Field(max_length=120, description="short text shown on screen, may be empty")


class ScriptAnswer(_Answer):
    """The script writer's script: a hook, the scenes, a closing call to action."""

    hook: str = Field(min_length=1, max_length=300, description="opening sentence that grabs attention")
    scenes: list[ScriptScene] = Field(min_length=1, max_length=MAX_SCENES)
    call_to_action: str = Field(min_length=1, max_length=300, description="closing call to action")


class VisualChoice(_Answer):
    scene: int = Field(ge=1, le=MAX_SCENES, description="scene number, from 1")
    asset: str = Field(max_length=255, description="an image file name from the bundle, or empty for a title card")
    motion: Motion = Field(description="camera motion over the image")
    description: str = Field("", max_length=300, description="what the scene's picture should show, one sentence")
    keywords: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=12, description="search words for the picture, in pt-BR and in English"
    )


class VisualAnswer(_Answer):
    """The visual planner's choice of image (or title card) and motion per scene, and what a picture should show."""

    scenes: list[VisualChoice] = Field(min_length=1, max_length=MAX_SCENES)


class SpokenScene(_Answer):
    scene: int = Field(ge=1, le=MAX_SCENES, description="scene number, from 1")
    narration: str = Field(min_length=1, max_length=3000, description="the narration as the voice should read it")


class AudioAnswer(_Answer):
    """The audio producer's narration made ready for TTS, speaking speed and music level."""

    scenes: list[SpokenScene] = Field(min_length=1, max_length=MAX_SCENES)
    speed: float = Field(ge=0.7, le=1.3, description="speaking speed factor, 1.0 = normal")
    music_db: float = Field(ge=-40, le=0, description="background music level under the voice, in dB")
    mood: str = Field("", max_length=40, description="the music's mood, one of music_moods (empty: no music)")


class PostAnswer(_Answer):
    """The publisher's words to post the video with (pt-BR)."""

    title: str = Field(min_length=1, max_length=100, description="the video's title, at most 100 characters")
    description: str = Field(max_length=2000, description="a short description of the video, from its narration")
    hashtags: list[Annotated[str, Field(max_length=40)]] = Field(
        max_length=12, description="hashtags without spaces, each starting with #")


class EditedScene(_Answer):
    from_scenes: list[int] = Field(min_length=1, max_length=MAX_SCENES, description="planned scenes it is made of")
    narration: str = Field(min_length=1, max_length=3000, description="final narration")
    on_screen_text: str = Field(max_length=120, description="final on-screen text, may be empty")


class EditorAnswer(_Answer):
    """The editor's final cut; its decision is final."""

    decision: Literal["keep", "trim", "merge", "trim_and_merge"]
    scenes: list[EditedScene] = Field(min_length=1, max_length=MAX_SCENES)
    notes: str = Field(max_length=600, description="why, in one or two sentences")


@dataclass(frozen=True)
class Prompt:
    """A role's prompt file: its raw text (hashed for the record) and its rendering."""

    file: str
    text: str

    @property
    def ref(self) -> PromptRef:
        return PromptRef.of(self.file, self.text)

    def render(self, **values: Any) -> str:
        return Template(self.text).safe_substitute({k: str(v) for k, v in values.items()})


def load_prompt(role: str) -> Prompt:
    """The packaged prompt for ``role`` (``omad/prompts/<role>.md``)."""
    name = f"{role}.md"
    text = (resources.files("omad") / "prompts" / name).read_text(encoding="utf-8")
    return Prompt(file=f"omad/prompts/{name}", text=text)


_WORD = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def spoken_seconds(text: str, words_per_second: float, speed: float = 1.0) -> float:
    """How long ``text`` takes to say at ``words_per_second`` (pt-BR narration: about 2.5)."""
    return word_count(text) / (words_per_second * speed)


def _messages(prompt: Prompt, language: str, wps: float, inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": prompt.render(language=language, words_per_second=f"{wps:g}")},
        {"role": "user", "content": json.dumps(inputs, ensure_ascii=False, indent=1)},
    ]


async def _ask(
    llm: LlmClient,
    role: str,
    spec: LlmRole,
    language: str,
    inputs: dict[str, Any],
    answer: type[A],
    check: Any = None,
) -> tuple[A, CallRecord]:
    prompt = load_prompt(role)
    messages = _messages(prompt, language, llm.config.words_per_second, inputs)
    return await llm.structured(role, spec.model, spec.fallback, messages, answer, prompt=prompt.ref, check=check)


def _check_scene_numbers(numbers: list[int], count: int, what: str) -> None:
    bad = sorted({n for n in numbers if not 1 <= n <= count})
    if bad:
        raise ValueError(f"{what} names scene(s) {bad}, but the script has scenes 1 to {count}")


async def run_supervisor(
    llm: LlmClient, cfg: LlmConfig, language: str, brief: dict[str, Any]
) -> tuple[SupervisorAnswer, CallRecord]:
    """Analysis (objective, audience, tone, duration, scene count) and which workers to run."""
    return await _ask(llm, "supervisor", cfg.roles.supervisor, language, {"brief": brief}, SupervisorAnswer)


async def run_script_writer(
    llm: LlmClient,
    cfg: LlmConfig,
    language: str,
    brief: dict[str, Any],
    analysis: dict[str, Any],
    target_seconds: float,
    scene_count: int,
) -> tuple[ScriptAnswer, CallRecord]:
    """Hook, scenes with narration sized to the target duration, on-screen text, call to action."""
    total_words = max(scene_count * 4, round(target_seconds * cfg.words_per_second))
    inputs = {
        "brief": brief,
        "analysis": analysis,
        "target_duration_seconds": round(target_seconds, 1),
        "scene_count": scene_count,
        "total_words": total_words,
        "words_per_scene": max(4, round(total_words / scene_count)),
    }
    return await _ask(llm, "script_writer", cfg.roles.script_writer, language, inputs, ScriptAnswer)


async def run_visual_planner(
    llm: LlmClient, cfg: LlmConfig, language: str, scenes: list[dict[str, Any]], assets: list[dict[str, str]]
) -> tuple[VisualAnswer, CallRecord]:
    """For each scene an image from the bundle (or a title card), a motion preset, and words to search a picture by."""
    count = len(scenes)

    def check(answer: VisualAnswer) -> None:
        _check_scene_numbers([c.scene for c in answer.scenes], count, "the visual plan")

    inputs = {"scenes": scenes, "assets": assets}
    return await _ask(llm, "visual_planner", cfg.roles.visual_planner, language, inputs, VisualAnswer, check)


async def run_audio_producer(
    llm: LlmClient, cfg: LlmConfig, language: str, scenes: list[dict[str, Any]], has_music: bool,
    moods: list[str] | None = None,
) -> tuple[AudioAnswer, CallRecord]:
    """Narration made ready for TTS (respellings, pauses), speaking speed and music level.

    With ``moods`` (those the user's music folders offer) it also picks the music's mood.
    """
    count = len(scenes)

    def check(answer: AudioAnswer) -> None:
        _check_scene_numbers([s.scene for s in answer.scenes], count, "the audio direction")

    inputs: dict[str, Any] = {"scenes": scenes, "has_music": has_music}
    if moods:
        inputs["music_moods"] = moods
    return await _ask(llm, "audio_producer", cfg.roles.audio_producer, language, inputs, AudioAnswer, check)


async def run_editor(
    llm: LlmClient,
    cfg: LlmConfig,
    language: str,
    plan: list[dict[str, Any]],
    target_seconds: float,
    estimated_seconds: float,
) -> tuple[EditorAnswer, CallRecord]:
    """The final cut against the target duration: keep, trim or merge scenes."""
    count = len(plan)

    def check(answer: EditorAnswer) -> None:
        used = [n for s in answer.scenes for n in s.from_scenes]
        _check_scene_numbers(used, count, "the edit")
        if len(used) != len(set(used)):
            raise ValueError("the edit uses a planned scene more than once")

    inputs = {
        "target_duration_seconds": round(target_seconds, 1),
        "estimated_duration_seconds": round(estimated_seconds, 1),
        "words_per_second": cfg.words_per_second,
        "scenes": plan,
    }
    return await _ask(llm, "editor", cfg.roles.editor, language, inputs, EditorAnswer, check)


async def run_publisher(
    llm: LlmClient, cfg: LlmConfig, language: str, video: dict[str, Any]
) -> tuple[PostAnswer, CallRecord]:
    """The title (at most 100 characters), description and hashtags to post the finished video with."""

    def check(answer: PostAnswer) -> None:
        if not answer.title.strip():
            raise ValueError("the title is empty")

    return await _ask(llm, "publisher", cfg.roles.publisher, language, {"video": video}, PostAnswer, check)
