"""Guardrails: PII redaction, blocked topics and words, and an optional content-safety model.

This module owns the rules file (``config/guardrails.yaml``), the detectors (CPF and
CNPJ validated by their check digits, e-mail, Brazilian phone numbers, card numbers
validated by Luhn), the matching of blocked topics and words (case- and
accent-insensitive), and the decision for each finding: ``block`` raises
:class:`~omad.errors.GuardrailBlocked`, ``redact`` replaces the match, ``warn`` only
reports it.

It must never keep, log or return a detected value: a :class:`Finding` carries only
a masked sample, so findings go into sidecars, logs and metrics as they are. It never
calls a model by itself: the safety model runs only when the rules enable it, and
only through the Ollama client the caller passes (the caller owns the host, the
timeouts and the GPU lane).
"""

from __future__ import annotations

import bisect
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import Config, GuardrailsConfig
from ..errors import ConfigError, GuardrailBlocked, StageFailed
from .pii import PII_DETECTORS, cnpj_valid, cpf_valid, luhn_valid, mask_word, pii_sample

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

_SEVERITY: dict[str, int] = {"block": 2, "redact": 1, "warn": 0}


# --------------------------------------------------------------------------- rules file


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
        if not _fold(v)[0].strip(" *"):
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


def load_guardrails(path: Path) -> Guardrails:
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
    return Guardrails(rules, source=path)


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a guardrail found. ``sample`` is masked: the raw value is never kept."""

    type: str
    action: Action
    where: str
    sample: str
    rule: str | None = None

    def __str__(self) -> str:
        rule = f", rule {self.rule!r}" if self.rule else ""
        return f"{self.type} ({self.sample}{rule}) in {self.where}: {self.action}"

    def to_dict(self) -> dict[str, str | None]:
        return {"type": self.type, "action": self.action, "where": self.where, "sample": self.sample, "rule": self.rule}


@dataclass(frozen=True, slots=True)
class GuardResult:
    """The checked text (with redactions applied) and what was found in it."""

    text: str
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    safe: bool
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    finding: Finding
    replacement: str


# --------------------------------------------------------------------------- words and topics


def _fold(text: str) -> tuple[str, list[int]]:
    """Lowercased text without accents, and for each of its characters the index it came from."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKD", ch):
            if unicodedata.combining(c):
                continue
            for f in c.casefold():
                out.append(f)
                index.append(i)
    return "".join(out), index


def _keyword_regex(word: str) -> str:
    folded = _fold(word)[0].strip()
    head = r"\w*" if folded.startswith("*") else ""
    tail = r"\w*" if folded.endswith("*") else ""
    parts = [re.escape(p) for p in folded.strip("*").split()]
    return r"(?<!\w)" + head + r"\s+".join(parts) + tail + r"(?!\w)"


@dataclass(frozen=True, slots=True)
class _Matcher:
    type: str
    action: Action
    replacement: str
    rules: tuple[tuple[str, re.Pattern[str]], ...]  # (rule as written, compiled)


def _matchers(rules: GuardrailsFile) -> list[_Matcher]:
    out = []
    for t in rules.blocked_topics:
        compiled = [(k, re.compile(_keyword_regex(k))) for k in t.keywords]
        compiled += [(p, re.compile(p, re.IGNORECASE)) for p in t.patterns]
        out.append(_Matcher(f"topic:{t.name}", t.action, t.replacement, tuple(compiled)))
    w = rules.blocked_words
    if w.words:
        words = tuple((k, re.compile(_keyword_regex(k))) for k in w.words)
        out.append(_Matcher("blocked_word", w.action, w.replacement, words))
    return out


class _Claimed:
    """Disjoint spans already given to a finding, kept sorted so a lookup is a bisection."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def claim(self, start: int, end: int) -> bool:
        """Take [start, end) unless it overlaps a claimed span; say whether it was taken."""
        i = bisect.bisect_left(self._starts, end)
        if i > 0 and self._ends[i - 1] > start:
            return False
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        return True


# --------------------------------------------------------------------------- the checker


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


def _host_of(client: ollama.Client | ollama.AsyncClient) -> str:
    # The ollama client keeps its URL on the httpx client it wraps; only used in messages.
    inner = getattr(client, "_client", None)
    return str(getattr(inner, "base_url", "the configured Ollama host"))


class Guardrails:
    """Compiled rules. ``check`` is pure and fast; ``check_safety`` talks to Ollama."""

    def __init__(self, rules: GuardrailsFile | None = None, *, source: Path | None = None) -> None:
        self.rules = rules or GuardrailsFile()
        self.source = source
        self._matchers = _matchers(self.rules)

    @property
    def safety_enabled(self) -> bool:
        return self.rules.safety_model.enabled

    def _where_rules(self) -> str:
        return str(self.source) if self.source else "the guardrails file"

    # ---- text rules

    def _pii_hits(self, text: str, where: str, claimed: _Claimed) -> list[_Hit]:
        hits: list[_Hit] = []
        for kind, detect in PII_DETECTORS:
            det: Detector = getattr(self.rules.pii, kind)
            for span in detect(text):
                if not claimed.claim(*span) or not det.enabled:
                    continue
                sample = pii_sample(kind, text[span[0] : span[1]])
                replacement = DEFAULT_REPLACEMENTS[kind] if det.replacement is None else det.replacement
                hits.append(_Hit(span[0], span[1], Finding(kind, det.action, where, sample), replacement))
        return hits

    def _rule_hits(self, text: str, where: str, claimed: _Claimed) -> list[_Hit]:
        if not self._matchers:
            return []
        folded, index = _fold(text)
        candidates: list[tuple[int, int, _Matcher, str]] = []
        for matcher in self._matchers:
            for rule, rx in matcher.rules:
                for m in rx.finditer(folded):
                    if m.end() > m.start():
                        candidates.append((index[m.start()], index[m.end() - 1] + 1, matcher, rule))
        # Where rules overlap, the strictest action wins so a block is never hidden by a warn.
        candidates.sort(key=lambda c: (-_SEVERITY[c[2].action], c[0]))
        hits = []
        for start, end, matcher, rule in candidates:
            if not claimed.claim(start, end):
                continue
            sample = mask_word(text[start:end])
            finding = Finding(
                matcher.type, matcher.action, where, sample, rule if matcher.type != "blocked_word" else None
            )
            hits.append(_Hit(start, end, finding, matcher.replacement))
        return hits

    def _scan(self, text: str, where: str) -> GuardResult:
        claimed = _Claimed()
        pii = self._pii_hits(text, where, claimed)
        hits = sorted(pii + self._rule_hits(text, where, claimed), key=lambda h: h.start)
        out: list[str] = []
        pos = 0
        for h in hits:
            if h.finding.action != "redact":
                continue
            out.append(text[pos : h.start])
            if h.replacement:
                out.append(h.replacement)
            elif out and out[-1].endswith(" ") and text[h.end : h.end + 1] in (" ", ""):
                # A removed word must not leave a double space behind in captions.
                out[-1] = out[-1][:-1]
            pos = h.end
        out.append(text[pos:])
        return GuardResult("".join(out), [h.finding for h in hits])

    def _raise_if_blocked(self, findings: list[Finding], file: str | Path | None) -> None:
        blocked = next((f for f in findings if f.action == "block"), None)
        if blocked is None:
            return
        if blocked.type in PII_TYPES:
            rule = f"pii.{blocked.type}.action"
        elif blocked.type.startswith("topic:"):
            rule = f"the action of blocked topic '{blocked.type[6:]}'"
        elif blocked.type.startswith("safety:"):
            rule = "safety_model.action"
        else:
            rule = "blocked_words.action"
        raise GuardrailBlocked(
            f"guardrail blocked {blocked.where}: {blocked.type} found ({blocked.sample}). "
            f"Remove it and drop the file again, or change {rule} in {self._where_rules()}.",
            file=file,
            stage="guardrails",
            details={"finding": blocked.to_dict(), "findings": [f.to_dict() for f in findings]},
        )

    def check(self, text: str, where: str, *, file: str | Path | None = None) -> GuardResult:
        """Apply PII detectors, topics and words to ``text``; raise GuardrailBlocked on a block."""
        result = self._scan(text, where)
        self._raise_if_blocked(result.findings, file)
        return result

    def check_many(
        self, items: Mapping[str, str], *, file: str | Path | None = None
    ) -> tuple[dict[str, str], list[Finding]]:
        """Check several texts keyed by where they come from; all are scanned before a block is raised."""
        texts: dict[str, str] = {}
        findings: list[Finding] = []
        for where, text in items.items():
            r = self._scan(text, where)
            texts[where] = r.text
            findings.extend(r.findings)
        self._raise_if_blocked(findings, file)
        return texts, findings

    # ---- safety model

    def _safety_call(self, host: str) -> Any:
        """The Ollama boundary for the safety model (``omad.agents.ollama_errors``)."""
        from ..agents.ollama_errors import Call, ollama_call

        model = self.rules.safety_model.model
        return ollama_call(Call(host, model, f"the safety model '{model}'", 300.0, stage="guardrails",
                                missing_hint=f"or set safety_model.enabled: false in {self._where_rules()}"))

    def _safety_result(self, text: str, answer: str, where: str, file: str | Path | None) -> GuardResult:
        rules = self.rules.safety_model
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
        self._raise_if_blocked(findings, file)
        return GuardResult(text, findings)

    def _safety_request(self, text: str, keep_alive: str | float | None) -> dict[str, Any]:
        """The chat request both clients send to the safety model."""
        return {"model": self.rules.safety_model.model, "messages": [{"role": "user", "content": text}],
                "options": {"temperature": 0}, "keep_alive": keep_alive, "stream": False}

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
        with self._safety_call(_host_of(client)):
            response = client.chat(**self._safety_request(text, keep_alive))
        return self._safety_result(text, response.message.content or "", where, file)

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
        with self._safety_call(_host_of(client)):
            response = await client.chat(**self._safety_request(text, keep_alive))
        return self._safety_result(text, response.message.content or "", where, file)


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
