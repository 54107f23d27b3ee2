"""The guardrails rules file: its schema, its defaults and how a bad file is reported.

Pure data: nothing here matches text or calls a model. Every key of
``config/guardrails.yaml`` is a field below with a default; an unknown key or a
bad value is a ConfigError that names the file, the key and the keys allowed there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from .folding import fold

__all__ = ["Action", "Detector", "PiiRules", "TopicRule", "BlockedWords", "SafetyModel", "GuardrailsFile",
           "PII_TYPES", "DEFAULT_REPLACEMENTS", "LLAMA_GUARD_CATEGORIES", "read_rules"]

Action = Literal["block", "redact", "warn"]

PII_TYPES = ("cpf", "cnpj", "email", "phone_br", "card")

# Bracketed pt-BR phrases: captions show that something was cut, and both TTS
# engines read the words while the brackets only cost a short pause (espeak-ng
# treats them as a pause; F5 maps characters outside its vocabulary to a space).
DEFAULT_REPLACEMENTS: dict[str, str] = {
    "cpf": "[CPF removido]",
    "cnpj": "[CNPJ removido]",
    "email": "[e-mail removido]",
    "phone_br": "[telefone removido]",
    "card": "[cartão removido]",
}

LLAMA_GUARD_CATEGORIES: dict[str, str] = {
    "S1": "violent crimes",
    "S2": "non-violent crimes",
    "S3": "sex-related crimes",
    "S4": "child sexual exploitation",
    "S5": "defamation",
    "S6": "specialized advice",
    "S7": "privacy",
    "S8": "intellectual property",
    "S9": "indiscriminate weapons",
    "S10": "hate",
    "S11": "suicide and self-harm",
    "S12": "sexual content",
    "S13": "elections",
    "S14": "code interpreter abuse",
}

class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Detector(_Rules):
    """One PII detector."""

    enabled: bool = Field(
        default=True, description="report this kind of value (a disabled detector still claims its span)"
    )
    action: Action = Field(default="redact", description="block | redact | warn")
    replacement: str | None = Field(default=None, description="text put in place of the value; empty removes it")


def _detector() -> Any:
    return Field(default_factory=Detector)


class PiiRules(_Rules):
    cpf: Detector = _detector()
    cnpj: Detector = _detector()
    email: Detector = _detector()
    phone_br: Detector = _detector()
    card: Detector = _detector()


def _check_patterns(values: list[str]) -> list[str]:
    for v in values:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"pattern {v!r} is not a valid regular expression: {e}") from e
    return values


def _check_words(values: list[str]) -> list[str]:
    for v in values:
        if not fold(v)[0].strip(" *"):
            raise ValueError("an entry is empty")
    return values


class TopicRule(_Rules):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_\-]*$", description="short name, reported as topic:<name>")
    keywords: list[str] = Field(default_factory=list, description="whole words or phrases; * at an end = any ending")
    patterns: list[str] = Field(default_factory=list, description="regular expressions, matched lowercased unaccented")
    action: Action = Field(default="block", description="block | redact | warn")
    replacement: str = Field(default="[trecho removido]", description="text put in place of a match when redacting")

    _kw = field_validator("keywords")(_check_words)
    _pat = field_validator("patterns")(_check_patterns)

    @model_validator(mode="after")
    def _has_something(self) -> TopicRule:
        if not self.keywords and not self.patterns:
            raise ValueError(f"topic {self.name!r} needs at least one keyword or pattern")
        return self


class BlockedWords(_Rules):
    words: list[str] = Field(default_factory=list, description="whole words; * at an end = any ending")
    action: Action = Field(default="redact", description="block | redact | warn")
    replacement: str = Field(default="", description="text put in place of a word; empty removes it")

    _w = field_validator("words")(_check_words)


class SafetyModel(_Rules):
    enabled: bool = Field(default=False, description="ask a safety classifier on Ollama about each text")
    model: str = Field(default="llama-guard3:1b", min_length=1, description="Ollama model answering safe / unsafe + Sx")
    action: Literal["block", "warn"] = Field(default="block", description="block | warn (a verdict cannot be redacted)")
    ignore_categories: list[str] = Field(default_factory=list, description="categories (S1..S14) that never count")

    @field_validator("ignore_categories")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c.upper() not in LLAMA_GUARD_CATEGORIES]
        if bad:
            raise ValueError(f"unknown categories {bad}; use S1..S14")
        return [c.upper() for c in v]


class GuardrailsFile(_Rules):
    """The whole rules file; every section has a default."""

    version: Literal[1] = 1
    pii: PiiRules = Field(default_factory=PiiRules)
    blocked_topics: list[TopicRule] = Field(default_factory=list)
    blocked_words: BlockedWords = Field(default_factory=BlockedWords)
    safety_model: SafetyModel = Field(default_factory=SafetyModel)

    @field_validator("blocked_topics")
    @classmethod
    def _unique(cls, v: list[TopicRule]) -> list[TopicRule]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"topic names must be unique; repeated: {', '.join(dup)}")
        return v


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where ``loc`` (a pydantic error location) points."""
    model: type[BaseModel] = GuardrailsFile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return []
        inner: Any = info.annotation
        if get_origin(inner) is list:
            inner = get_args(inner)[0]
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return list(model.model_fields)


def _format_errors(err: ValidationError, source: Path) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}' (allowed here: {', '.join(_allowed_keys(e['loc']))})")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            parts.append(f"'{loc or '(top level)'}': {msg}")
    return "; ".join(parts) + ". Fix the rules file; every key is described in omad's config/guardrails.yaml."


def read_rules(path: Path) -> GuardrailsFile:
    """Read and validate a rules file; any problem is a ConfigError naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            f"cannot read the guardrails file ({e.strerror}). Create it (omad ships a documented "
            "config/guardrails.yaml) or point guardrails.file in the config at it.",
            file=path,
        ) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"is not valid YAML: {e}", file=path) from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping with pii, blocked_topics, blocked_words and safety_model.", file=path)
    try:
        rules = GuardrailsFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, path), file=path) from e
    return rules
