"""Agent video: small local models on Ollama turn a prompt brief into a scene brief.

``client`` talks to Ollama (structured answers, retries, fallbacks, the GPU
lane, error mapping), ``roles`` holds each role's prompt and answer model,
``pipeline`` runs the roles with guardrails and assembles the scene brief.
Nothing here renders media; ``omad.stages.plan`` is the stage that uses it.
"""

from __future__ import annotations

from .client import CallRecord, LlmClient, PromptRef, doctor_checks, estimate_vram_gb, ollama_host, unload_model
from .pipeline import AgentPlan, bundle_images, plan_agent_video, plan_agent_video_async

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
