"""Matching text against the rules: PII detectors, blocked topics and words, and what each finding does.

Pure and fast: no I/O, no model. A match never keeps the value it found: a
:class:`Finding` carries only a masked sample. Where rules overlap, the
strictest action wins, so a block is never hidden by a warn.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GuardrailBlocked
from .folding import fold, keyword_regex
from .pii import PII_DETECTORS, mask_word, pii_sample
from .rules import DEFAULT_REPLACEMENTS, PII_TYPES, Action, GuardrailsFile

__all__ = ["Finding", "GuardResult", "Matching", "raise_if_blocked"]

_SEVERITY: dict[str, int] = {"block": 2, "redact": 1, "warn": 0}


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
class _Hit:
    start: int
    end: int
    finding: Finding
    replacement: str


@dataclass(frozen=True, slots=True)
class _Matcher:
    type: str
    action: Action
    replacement: str
    rules: tuple[tuple[str, re.Pattern[str]], ...]  # (rule as written, compiled)


def _matchers(rules: GuardrailsFile) -> list[_Matcher]:
    out = []
    for t in rules.blocked_topics:
        compiled = [(k, re.compile(keyword_regex(k))) for k in t.keywords]
        compiled += [(p, re.compile(p, re.IGNORECASE)) for p in t.patterns]
        out.append(_Matcher(f"topic:{t.name}", t.action, t.replacement, tuple(compiled)))
    w = rules.blocked_words
    if w.words:
        words = tuple((k, re.compile(keyword_regex(k))) for k in w.words)
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


class Matching:
    """The text rules of one rules file, compiled once."""

    def __init__(self, rules: GuardrailsFile) -> None:
        self.rules = rules
        self._matchers = _matchers(rules)

    def _pii_hits(self, text: str, where: str, claimed: _Claimed) -> list[_Hit]:
        hits: list[_Hit] = []
        for kind, detect in PII_DETECTORS:
            det = getattr(self.rules.pii, kind)
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
        folded, index = fold(text)
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

    def scan(self, text: str, where: str) -> GuardResult:
        """``text`` with redactions applied, and every finding (blocks are raised by the caller)."""
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


def raise_if_blocked(findings: list[Finding], file: str | Path | None, where_rules: str) -> None:
    """GuardrailBlocked for the first block among ``findings``, naming the rule to change in ``where_rules``."""
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
        f"Remove it and drop the file again, or change {rule} in {where_rules}.",
        file=file,
        stage="guardrails",
        details={"finding": blocked.to_dict(), "findings": [f.to_dict() for f in findings]},
    )
