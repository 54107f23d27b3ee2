"""The optional content-safety model (Llama Guard on Ollama): the request, and reading its verdict.

It never calls a model by itself: only through the Ollama client the caller
passes (the caller owns the host, the timeouts and the GPU lane), and an
answer it cannot read is never taken as safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StageFailed
from .matching import Finding, GuardResult, raise_if_blocked
from .rules import LLAMA_GUARD_CATEGORIES, SafetyModel

if TYPE_CHECKING:
    import ollama  # imported where it is used: omad starts faster

__all__ = ["SafetyVerdict", "parse_llama_guard", "host_of", "safety_call", "safety_request", "safety_result"]


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    safe: bool
    categories: tuple[str, ...] = ()


def parse_llama_guard(answer: str) -> SafetyVerdict:
    """Read a Llama Guard answer: ``safe``, or ``unsafe`` followed by categories like ``S1,S10``.

    Raises ValueError for anything else, so an unreadable verdict is never taken as safe.
    """
    m = re.match(r"\s*(safe|unsafe)\b(.*)\Z", answer, re.IGNORECASE | re.DOTALL)
    if not m:
        raise ValueError(f"expected 'safe' or 'unsafe', got {answer.strip()[:80]!r}")
    if m.group(1).lower() == "safe":
        if re.search(r"\bS\d{1,2}\b", m.group(2)):
            raise ValueError(f"'safe' followed by categories: {answer.strip()[:80]!r}")
        return SafetyVerdict(True)
    cats: list[str] = []
    for n in re.findall(r"\bS(\d{1,2})\b", m.group(2), re.IGNORECASE):
        cat = f"S{int(n)}"
        if cat not in cats:
            cats.append(cat)
    return SafetyVerdict(False, tuple(cats))


def host_of(client: ollama.Client | ollama.AsyncClient) -> str:
    # The ollama client keeps its URL on the httpx client it wraps; only used in messages.
    inner = getattr(client, "_client", None)
    return str(getattr(inner, "base_url", "the configured Ollama host"))


def safety_call(rules: SafetyModel, where_rules: str, host: str) -> Any:
    """The Ollama boundary for the safety model (``omad.agents.ollama_errors``)."""
    from ..agents.ollama_errors import Call, ollama_call

    model = rules.model
    return ollama_call(Call(host, model, f"the safety model '{model}'", 300.0, stage="guardrails",
                            missing_hint=f"or set safety_model.enabled: false in {where_rules}"))


def safety_result(rules: SafetyModel, where_rules: str, text: str, answer: str, where: str,
                  file: str | Path | None) -> GuardResult:
    """What the model's ``answer`` means for ``text``; raises GuardrailBlocked on a block."""
    try:
        verdict = parse_llama_guard(answer)
    except ValueError as e:
        raise StageFailed(
            f"the safety model '{rules.model}' gave an answer omad cannot read for {where}: {e}. "
            "Use a Llama Guard model, or disable safety_model.",
            stage="guardrails",
            details={"model": rules.model, "where": where},
        ) from e
    if verdict.safe:
        return GuardResult(text, [])
    cats = [c for c in verdict.categories if c not in rules.ignore_categories]
    if verdict.categories and not cats:
        return GuardResult(text, [])
    findings = [
        Finding(f"safety:{c}", rules.action, where, f"{c} {LLAMA_GUARD_CATEGORIES.get(c, 'unknown')}", rules.model)
        for c in cats
    ] or [Finding("safety:unsafe", rules.action, where, "unsafe (no category given)", rules.model)]
    raise_if_blocked(findings, file, where_rules)
    return GuardResult(text, findings)


def safety_request(rules: SafetyModel, text: str, keep_alive: str | float | None) -> dict[str, Any]:
    """The chat request both clients send to the safety model."""
    return {"model": rules.model, "messages": [{"role": "user", "content": text}],
            "options": {"temperature": 0}, "keep_alive": keep_alive, "stream": False}
