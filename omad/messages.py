"""Texts for people that code (not a template) builds: what a failed job's record says, in both languages.

An error's ``message`` is written in English where it is raised, with the
file, the values found and the fix; it stays English in logs, the journal and
``error.json`` for machines and searches. Records add ``message_local`` and
``what_to_do_local`` in the configured language: the error's kind said in
that language ahead of the specific message, and the advice translated whole.
"""

from __future__ import annotations

from typing import Any

from .i18n import N_, Language, translations

__all__ = ["WHAT_TO_DO_FAILED", "WHAT_TO_DO_RETRYING", "KIND_LEADS", "what_to_do", "localised_error"]

#: The advice of every failed job's record (``%(job)s`` is its id).
WHAT_TO_DO_FAILED = N_("Fix the problem the message names, then drop the files again, or run `omad retry %(job)s` "
                       "to put them back in the inbox.")
#: The advice while a job waits to be tried again by itself.
WHAT_TO_DO_RETRYING = N_("omad will try again by itself; nothing to do unless it keeps failing.")

#: One line per error kind (:mod:`omad.errors`), said before the specific message in a person's language.
KIND_LEADS = {
    "input": N_("The drop itself has a problem."),
    "guardrail": N_("A guardrail stopped this job."),
    "transient": N_("Something outside the drop failed; it may work later."),
    "timeout": N_("A tool ran past its time limit."),
    "config": N_("omad's configuration is wrong."),
    "tool_missing": N_("A program, package or model omad needs is not installed."),
    "stage": N_("A tool failed."),
    "cancelled": N_("Someone cancelled this job."),
    "error": N_("The job failed."),
}


def what_to_do(job_id: str, lang: Language, retrying: bool = False) -> str:
    """The advice for a failed (or retrying) job, in ``lang``."""
    _ = translations(lang).gettext
    return _(WHAT_TO_DO_RETRYING) if retrying else _(WHAT_TO_DO_FAILED) % {"job": job_id}


def localised_error(error: dict[str, Any], lang: Language) -> str:
    """An error record's message for a person reading ``lang``: its kind in that language, then the message."""
    message = str(error.get("message") or "")
    if lang == Language.EN:
        return message
    lead = KIND_LEADS.get(str(error.get("kind") or "error"), KIND_LEADS["error"])
    return f"{translations(lang).gettext(lead)} {message}".strip()
