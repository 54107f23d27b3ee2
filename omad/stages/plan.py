"""The plan stage: a prompt brief becomes a scene brief written by the agents.

Reads the ``brief`` input (a ``video`` brief with a prompt), loads the
guardrails, runs the agent pipeline and writes ``scenes.yaml`` (kind
``video`` with scenes) for the scene-video stages, which render it as if a
user had written it. Image paths in it are relative to the brief's folder
(the bundle). It runs on the CPU lane and takes the GPU lane only for each
Ollama call, so it never holds the card while it waits on its own work.

It never renders media and never writes outside the work directory.
"""

from __future__ import annotations

from pathlib import Path

from ..agents.pipeline import plan_agent_video
from ..brief import VideoBrief, load_brief
from ..errors import InputError, OmadError, TransientError
from ..outbox import atomic_write_text
from ..stage import Stage, StageContext, StageResult

__all__ = ["PlanStage", "SCENE_BRIEF"]

SCENE_BRIEF = "scenes.yaml"


class PlanStage(Stage):
    name = "plan"
    needs = ("brief",)
    makes = ("scene_brief",)

    def run(self, ctx: StageContext) -> StageResult:
        brief_path = ctx.inputs["brief"]
        label = ctx.label("brief")
        brief = load_brief(brief_path, ctx.config.intake.max_brief_bytes, label=label,
                           max_depth=ctx.config.intake.max_brief_depth)
        if not isinstance(brief, VideoBrief) or not brief.is_agent:
            raise InputError(
                "the agents need a 'video' brief with a 'prompt' (and no 'scenes'; scenes are rendered as written).",
                file=label,
            )
        guard = ctx.guard()
        try:
            plan = plan_agent_video(
                brief,
                bundle=brief_path.parent,
                config=ctx.config,
                guard=guard,
                lanes=ctx.lanes,
                holder=ctx.job_id,
                label=label,
                cancel=ctx.cancel,
                timeout=ctx.timeout,
            )
        except OmadError as e:
            e.stage = e.stage or ctx.stage or self.name
            raise
        for message in plan.warnings:
            ctx.warn(message)
        _write_atomically(ctx.work / SCENE_BRIEF, plan.scene_brief_yaml(), label)
        return StageResult(
            artifacts={"scene_brief": SCENE_BRIEF},
            publish={".scenes.yaml": "scene_brief"},
            facts={"agent_plan": plan.summary},
            llm_calls=[r.to_dict() for r in plan.records],  # one record per role
            guardrail_findings=list(plan.findings),  # masked
        )


def _write_atomically(path: Path, text: str, label: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise TransientError(f"cannot write {path.name} in the work directory ({e.strerror}).", file=label) from e
