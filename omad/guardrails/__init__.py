"""Guardrails: PII redaction, blocked topics and words, and an optional content-safety model.

The package owns the rules file (``rules``: ``config/guardrails.yaml``'s schema), the
matching (``matching``: CPF and CNPJ validated by their check digits, e-mail,
Brazilian phone numbers, card numbers validated by Luhn, blocked topics and words,
case- and accent-insensitive) and the safety model (``safety``). For each finding
``block`` raises :class:`~omad.errors.GuardrailBlocked`, ``redact`` replaces the match,
``warn`` only reports it.

It must never keep, log or return a detected value: a :class:`Finding` carries only
a masked sample, so findings go into sidecars, logs and metrics as they are. It never
calls a model by itself: the safety model runs only when the rules enable it, and
only through the Ollama client the caller passes (the caller owns the host, the
timeouts and the GPU lane).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config, GuardrailsConfig
from .matching import Finding, GuardResult, Matching, raise_if_blocked
from .pii import cnpj_valid, cpf_valid, luhn_valid
from .rules import (
    DEFAULT_REPLACEMENTS,
    LLAMA_GUARD_CATEGORIES,
    PII_TYPES,
    Action,
    BlockedWords,
    Detector,
    GuardrailsFile,
    PiiRules,
    SafetyModel,
    TopicRule,
    read_rules,
)
from .safety import SafetyVerdict, host_of, parse_llama_guard, safety_call, safety_request, safety_result

if TYPE_CHECKING:
    import ollama  # the safety model's client is imported where it is used: omad starts faster


__all__ = [
    "Action",
    "Detector",
    "PiiRules",
    "TopicRule",
    "BlockedWords",
    "SafetyModel",
    "GuardrailsFile",
    "Finding",
    "GuardResult",
    "SafetyVerdict",
    "Guardrails",
    "load_guardrails",
    "guardrails_for",
    "parse_llama_guard",
    "cpf_valid",
    "cnpj_valid",
    "luhn_valid",
    "PII_TYPES",
    "DEFAULT_REPLACEMENTS",
    "LLAMA_GUARD_CATEGORIES",
]


def load_guardrails(path: Path) -> Guardrails:
    """Read and validate a rules file; any problem is a ConfigError naming the file and key."""
    return Guardrails(read_rules(Path(path)), source=Path(path))


class Guardrails:
    """Compiled rules. ``check`` is pure and fast; ``check_safety`` talks to Ollama."""

    def __init__(self, rules: GuardrailsFile | None = None, *, source: Path | None = None) -> None:
        self.rules = rules or GuardrailsFile()
        self.source = source
        self._matching = Matching(self.rules)

    @property
    def safety_enabled(self) -> bool:
        return self.rules.safety_model.enabled

    def _where_rules(self) -> str:
        return str(self.source) if self.source else "the guardrails file"

    def check(self, text: str, where: str, *, file: str | Path | None = None) -> GuardResult:
        """Apply PII detectors, topics and words to ``text``; raise GuardrailBlocked on a block."""
        result = self._matching.scan(text, where)
        raise_if_blocked(result.findings, file, self._where_rules())
        return result

    def check_many(
        self, items: Mapping[str, str], *, file: str | Path | None = None
    ) -> tuple[dict[str, str], list[Finding]]:
        """Check several texts keyed by where they come from; all are scanned before a block is raised."""
        texts: dict[str, str] = {}
        findings: list[Finding] = []
        for where, text in items.items():
            r = self._matching.scan(text, where)
            texts[where] = r.text
            findings.extend(r.findings)
        raise_if_blocked(findings, file, self._where_rules())
        return texts, findings

    def check_safety(
        self,
        text: str,
        where: str,
        client: ollama.Client,
        *,
        file: str | Path | None = None,
        keep_alive: str | float | None = None,
    ) -> GuardResult:
        """Ask the safety model about ``text`` (only when enabled); raise GuardrailBlocked on a block."""
        if not self.safety_enabled or not text.strip():
            return GuardResult(text, [])
        rules, where_rules = self.rules.safety_model, self._where_rules()
        with safety_call(rules, where_rules, host_of(client)):
            response = client.chat(**safety_request(rules, text, keep_alive))
        return safety_result(rules, where_rules, text, response.message.content or "", where, file)

    async def acheck_safety(
        self,
        text: str,
        where: str,
        client: ollama.AsyncClient,
        *,
        file: str | Path | None = None,
        keep_alive: str | float | None = None,
    ) -> GuardResult:
        """``check_safety`` for the async client."""
        if not self.safety_enabled or not text.strip():
            return GuardResult(text, [])
        rules, where_rules = self.rules.safety_model, self._where_rules()
        with safety_call(rules, where_rules, host_of(client)):
            response = await client.chat(**safety_request(rules, text, keep_alive))
        return safety_result(rules, where_rules, text, response.message.content or "", where, file)


_CACHE: dict[Path, tuple[tuple[int, int], Guardrails]] = {}
_CACHE_LOCK = threading.Lock()


def guardrails_for(config: Config) -> Guardrails:
    """The rules named by ``guardrails.file``; the built-in defaults when the default file is absent.

    Running omad outside its install folder (no ``config/guardrails.yaml`` beside it)
    still redacts PII with the defaults; a file the user named explicitly must exist.
    The file is parsed again only when it changes: parsing costs more than checking a text.
    """
    path = config.resolve(config.guardrails.file)
    try:
        st = path.stat()
    except OSError:
        if config.guardrails.file == GuardrailsConfig().file:
            return Guardrails()
        return load_guardrails(path)  # a ConfigError naming the missing file
    stamp = (st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    guard = load_guardrails(path)
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, guard)
    return guard
