"""The job page's facts as a person reads them: labelled values, not JSON.

Turns a job's detail (:func:`omad.web.jobs.job_detail`) and its claimed inputs
into what ``job.html`` shows: the inputs with their sizes, the options and each
stage's facts as labelled values (durations, loudness, encoder, voice, pictures
and their credits), and the poster for the video player; the transcript has
its own table in ``job.html``. Labels of known keys are translated; unknown
keys are shown as they are, so a new fact is never hidden. Writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..i18n import N_
from ..journal import Job
from .templating import duration, money

__all__ = ["present_job", "LABELS"]

#: Labels of the keys the sidecar and the stages write (others are shown by their own name).
LABELS = {
    "route": N_("route"), "options": N_("options"), "tools": N_("tools"), "warnings": N_("warnings"),
    "guardrail_findings": N_("guardrail findings"), "cost": N_("cost"), "dropped_at": N_("dropped at"),
    "started_at": N_("started at"), "finished_at": N_("finished at"), "attempts": N_("attempts"),
    "seconds": N_("duration"), "duration": N_("duration"), "width": N_("width"), "height": N_("height"),
    "fps": N_("frames per second"), "frames": N_("frames"), "encoder": N_("encoder"), "loudness": N_("loudness"),
    "measured_lufs": N_("measured"), "target_lufs": N_("target"), "voice": N_("voice"), "engine": N_("engine"),
    "credits": N_("picture credits"), "pictures": N_("pictures"), "text": N_("text"), "prompt": N_("prompt"),
    "format": N_("format"), "motion": N_("motion"), "captions": N_("captions"), "name": N_("name"),
    "language": N_("language"), "model": N_("model"), "worker": N_("worker"), "cues": N_("captions"),
    "estimated": N_("estimated"), "cpu_seconds": N_("CPU seconds"), "gpu_seconds": N_("GPU seconds"),
    "currency": N_("currency"), "sample_rate": N_("sample rate"), "chars": N_("characters"),
}
# Shown as its own table from the job's detail, not among the facts.
_TRANSCRIPT_KEYS = ("transcript",)
_MAX_ITEMS = 40


def _label(key: str, gettext: Callable[[str], str]) -> str:
    known = LABELS.get(key)
    return gettext(known) if known is not None else key.replace("_", " ")


def _scalar(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, (int, float)):
        if key in ("seconds", "duration") or key.endswith("_seconds"):
            return duration(float(value))
        if key.endswith("_lufs"):
            return f"{float(value):.1f} LUFS"
        if key == "estimated":
            return money(float(value))
    return str(value)


def _one_line(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_one_line(v) if isinstance(v, (dict, list)) else _scalar(k, v)}"
                         for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_one_line(v) for v in value)
    return str(value)


def _items(data: dict[str, Any], gettext: Callable[[str], str], prefix: str = "") -> list[tuple[str, Any]]:
    """(label, text or list of texts) for each key; nested objects become "a › b" labels."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if key in _TRANSCRIPT_KEYS:
            continue
        label = f"{prefix}{_label(key, gettext)}"
        if isinstance(value, dict) and value and len(value) <= 8 and not prefix:
            out.extend(_items(value, gettext, f"{label} › "))
        elif isinstance(value, list):
            if not value:
                continue
            texts = [_one_line(v) for v in value[:_MAX_ITEMS]]
            if len(value) > _MAX_ITEMS:
                texts.append(f"… (+{len(value) - _MAX_ITEMS})")
            out.append((label, texts))
        elif isinstance(value, dict):
            out.append((label, _one_line(value) or "-"))
        else:
            out.append((label, _scalar(key, value)))
    return out


def present_job(detail: dict[str, Any], job: Job, gettext: Callable[[str], str],
                has_poster: bool) -> dict[str, Any]:
    """What the job page shows beside the detail: inputs with sizes, fact groups, transcript, poster."""
    inputs = [{"name": str(c.get("name")), "size": c.get("size"), "role": c.get("role")}
              for c in job.inputs if c.get("claim")]
    if not inputs:
        inputs = [{"name": Path(str(c.get("name"))).name, "size": c.get("size"), "role": c.get("role")}
                  for c in job.inputs]
    facts = detail.get("facts") or {}
    stage_facts: dict[str, Any] = facts.get("stages") or {}
    groups: list[dict[str, Any]] = []
    general = {k: v for k, v in facts.items() if k not in ("stages", "options", "inputs", "tools")}
    if general:
        groups.append({"title": None, "items": _items(general, gettext)})
    if facts.get("options"):
        groups.append({"title": gettext("Options"), "items": _items(facts["options"], gettext)})
    for name, values in stage_facts.items():
        if isinstance(values, dict) and values:
            groups.append({"title": gettext("Stage %(name)s") % {"name": name}, "items": _items(values, gettext)})
    if facts.get("tools"):
        tools = facts["tools"]
        groups.append({"title": gettext("Tools"), "items": [(str(k), v if isinstance(v, str) else
                                                             json.dumps(v, ensure_ascii=False, default=str))
                                                            for k, v in tools.items()]})
    return {
        "inputs": inputs,
        "facts": groups,
        "poster": f"/poster/{job.id}" if has_poster else None,
    }
