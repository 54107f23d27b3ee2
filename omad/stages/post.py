"""The post stage: the words to publish a finished scene video with, into ``X.post.json`` and the sidecar.

Runs after the render. Reads the scene brief (what the video says) and the
dropped brief (its prompt or topic), asks the ``publisher`` role
(``omad.agents.publisher``) and writes ``post.json``: a title of at most
100 characters, a description and hashtags, with the source of the words.
Without Ollama the title comes from the brief and nothing is invented. Like
the plan stage it runs on the CPU lane and takes the GPU lane only for the
Ollama call. It never renders and never writes outside the work directory.
"""

from __future__ import annotations

import json
from typing import Any

from ..agents.publisher import write_post
from ..brief import VideoBrief, load_brief
from ..errors import InputError, OmadError, TransientError
from ..outbox import atomic_write_text
from ..stage import Stage, StageContext, StageResult
from .video import cover_title, scene_brief

__all__ = ["PostStage", "POST_FILE"]

POST_FILE = "post.json"
#: Narration handed to the publisher, at most (a long video's words are plenty at this length).
_MAX_NARRATION_CHARS = 6000


def _redacted(video: dict[str, Any], ctx: StageContext, label: str) -> dict[str, Any]:
    """What the model reads, after the guardrails: personal data in the brief never reaches it.

    The findings were recorded where these texts were first checked (the plan, the voice); here only the
    redacted text is kept.
    """
    guard = ctx.guard()
    out: dict[str, Any] = {}
    for key, value in video.items():
        if isinstance(value, list):
            out[key] = [guard.check(str(v), f"post.{key}[{i}]", file=label).text for i, v in enumerate(value)]
        else:
            out[key] = guard.check(str(value), f"post.{key}", file=label).text
    return out


class PostStage(Stage):
    name = "post"
    needs = ("brief",)
    makes = ("post",)

    def run(self, ctx: StageContext) -> StageResult:
        brief = scene_brief(ctx)
        label = ctx.label("brief")
        dropped: VideoBrief | None = None
        try:
            loaded = load_brief(ctx.inputs["brief"], ctx.config.intake.max_brief_bytes, label,
                                ctx.config.intake.max_brief_depth)
            dropped = loaded if isinstance(loaded, VideoBrief) else None
        except (InputError, KeyError):
            dropped = None
        narration = [s.narration.strip() for s in brief.scenes or [] if s.narration.strip()]
        while sum(len(n) for n in narration) > _MAX_NARRATION_CHARS and len(narration) > 1:
            narration.pop()
        video: dict[str, Any] = {"title": brief.title, "scenes": narration,
                                 "on_screen": [s.title for s in brief.scenes or [] if s.title]}
        if dropped is not None:
            video.update({k: v for k, v in {"prompt": dropped.prompt, "topic": dropped.topic,
                                            "audience": dropped.audience, "tone": dropped.tone}.items() if v})
        video = _redacted({k: v for k, v in video.items() if v}, ctx, label)
        fallback = cover_title(brief) or (dropped.title if dropped else None) or ctx.name
        try:
            post = write_post(video, fallback, config=ctx.config, guard=ctx.guard(), lanes=ctx.lanes,
                              holder=ctx.job_id, label=label, language=brief.language or "pt-BR",
                              cancel=ctx.cancel, timeout=ctx.timeout)
        except OmadError as e:
            e.stage = e.stage or ctx.stage or self.name
            raise
        if post.why:
            ctx.warn(f"{label}: {post.why}.")
        try:
            atomic_write_text(ctx.work / POST_FILE, json.dumps(post.to_dict(), ensure_ascii=False, indent=2) + "\n")
        except OSError as e:
            raise TransientError(f"cannot write {POST_FILE} in the work directory ({e.strerror}).", file=label) from e
        return StageResult(
            artifacts={"post": POST_FILE},
            publish={".post.json": "post"},
            facts={"post": post.to_dict()},
            llm_calls=[r.to_dict() for r in post.records],
            guardrail_findings=post.findings,
        )
