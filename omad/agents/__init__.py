"""Agent video: small local models on Ollama turn a prompt brief into a scene brief.

``client`` talks to Ollama (structured answers, retries, fallbacks, the GPU
lane, error mapping), ``roles`` holds each role's prompt and answer model,
``pipeline`` runs the roles with guardrails and assembles the scene brief.
Nothing here renders media; ``omad.stages.plan`` is the stage that uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import CallRecord, LlmClient, PromptRef, doctor_checks, estimate_vram_gb, ollama_host, unload_model
    from .pipeline import AgentPlan, bundle_images, plan_agent_video, plan_agent_video_async

# Imported on first use: the ollama client and httpx cost ~0.3 s to import, which a job that only needs the
# post's reachability look (omad.agents.publisher, omad.agents.host) should not pay.
_WHERE = {name: ".client" for name in ("CallRecord", "LlmClient", "PromptRef", "doctor_checks", "estimate_vram_gb",
                                        "ollama_host", "unload_model")}
_WHERE.update({name: ".pipeline" for name in ("AgentPlan", "bundle_images", "plan_agent_video",
                                              "plan_agent_video_async")})


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "AgentPlan",
    "CallRecord",
    "LlmClient",
    "PromptRef",
    "bundle_images",
    "doctor_checks",
    "estimate_vram_gb",
    "ollama_host",
    "plan_agent_video",
    "plan_agent_video_async",
    "unload_model",
]
