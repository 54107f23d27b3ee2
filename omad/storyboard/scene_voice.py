"""A scene's voice from the cache when what determines it is unchanged: the voice stage's and the preview's lookup.

The guardrails run on every lookup, hit or miss, so a cached voice never
skips a check the text would get today; the key is made from the checked
text, so a rule that now redacts a word makes the voice again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..tts.speech import voice_from_options
from .voice_cache import VoiceCache, engine_version, voice_key

if TYPE_CHECKING:
    from pathlib import Path

    from ..stage import StageContext
    from ..text.caption_layout import LayoutRules
    from ..tts import TtsEngine, Voice

__all__ = ["Lookup", "lookup", "ENTRY_KEYS"]

#: What a scene's entry in ``voice.json`` holds beside its index: all of it is cached.
ENTRY_KEYS = ("wav", "duration", "sample_rate", "cues", "words")


@dataclass
class Lookup:
    key: str
    #: the cached entry (its WAV already copied to the scene's file), None on a miss
    entry: dict[str, Any] | None
    #: guardrail findings of a hit (a miss leaves them to the synthesis, which checks again)
    findings: list[dict[str, Any]] = field(default_factory=list)
    engine: str = ""


def lookup(ctx: StageContext, cache: VoiceCache, said: str, written: str, own: tuple[TtsEngine, Voice] | None,
           rules: LayoutRules, frame: tuple[int, int], out: Path, label: str, where: str) -> Lookup:
    """The scene's cached voice for ``said`` (its captions from ``written``), copied to ``out``, if there is one."""
    guard = ctx.guard()
    checked = guard.check(said, where, file=label)
    engine = own[0].name if own is not None else ctx.engine_name()
    who = own[1] if own is not None else voice_from_options(ctx)
    language = str(ctx.options.get("language") or ctx.config.tts.language)
    key = voice_key(spoken=checked.text, written=written, engine=engine, version=engine_version(engine, ctx.config),
                    voice=who, language=language, config=ctx.config, layout=rules, frame=frame)
    entry = cache.get(key, out)
    if entry is None:
        return Lookup(key, None, engine=engine)
    findings = [f.to_dict() for f in checked.findings]
    if said != written.strip():
        for f in guard.check(written, where).findings:
            if f.to_dict() not in findings:
                findings.append(f.to_dict())
    return Lookup(key, {**entry, "wav": out.name}, findings, engine)
