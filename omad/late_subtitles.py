"""A subtitle file that arrives after its video was taken for transcription: it wins.

A slow share or Syncthing's order can deliver ``talk.mp4`` first; after its
grace the video goes to the ``transcribe`` route, and ``talk.srt`` lands in
the inbox with no video left to pair with. Rather than let the subtitle wait
out ``intake.pair_timeout_seconds`` and be quarantined, the person's own
subtitles win: a copy of the video that transcription took (from the job's
work folder, or from the archive once it finished) is put back beside the
subtitle file, and intake pairs the two into a ``caption`` job like any drop.
The transcription is not interrupted; its outputs stay published (the
caption job's video is then named by the outbox's ``publish.on_conflict``).
Transcriptions made within :data:`WINDOW_SECONDS` (or ``intake.pair_timeout_seconds``
when longer) before the subtitle file is seen are considered.

This module only looks up the journal and copies one file into the inbox,
atomically (under a hidden name, then renamed); it never moves or deletes
anything of the transcribe job.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path, PurePosixPath

from .config import IntakeConfig
from .intake import Waiting, classify
from .journal import InputRecord, Journal
from .paths import Paths

__all__ = ["restore_videos", "WINDOW_SECONDS"]

#: How far back a transcription of the same name counts as the subtitle's video (a slow share, a long job).
WINDOW_SECONDS = 3600.0


def _stored_copy(paths: Paths, job_id: str, claim: InputRecord) -> Path | None:
    """Where the transcribe job's copy of the video is now: its work folder, else the archive."""
    work = paths.jobs / job_id / str(claim["stored"])
    if work.is_file():
        return work
    if paths.archive.is_dir():
        for day in sorted(paths.archive.iterdir(), reverse=True):
            candidate = day / job_id / str(claim["name"])
            if candidate.is_file():
                return candidate
    return None


def restore_videos(journal: Journal, paths: Paths, waiting: list[Waiting], intake: IntakeConfig) -> list[str]:
    """For each subtitle file waiting for its video: put back the video a recent transcribe job took.

    Returns the inbox-relative names of the videos put back (for the log).
    """
    lone = [w.entry.path for w in waiting if classify(w.entry.path) == "srt"]
    if not lone:
        return []
    window = max(WINDOW_SECONDS, intake.pair_timeout_seconds)
    recent = [j for j in journal.jobs_since(time.time() - window) if j.route == "transcribe"]
    restored: list[str] = []
    for srt in lone:
        try:
            rel = PurePosixPath(srt.relative_to(paths.inbox).as_posix())
        except ValueError:
            continue
        for job in reversed(recent):  # the newest transcription of that name
            claim = next((c for c in job.inputs if c.get("claim") and classify(Path(str(c["name"]))) == "video"),
                         None)
            if claim is None:
                continue
            source = PurePosixPath(str(claim["source"]))
            if source.parent != rel.parent or source.stem.lower() != rel.stem.lower():
                continue
            dest = paths.inbox / source
            if dest.exists():
                break  # already put back (or dropped again): intake pairs it
            found = _stored_copy(paths, job.id, claim)
            if found is None:
                break  # deleted after the job (intake.inputs_after: delete): the subtitle waits as before
            tmp = dest.parent / f".{dest.name}.omad-restoring"
            shutil.copy2(found, tmp)
            os.replace(tmp, dest)
            restored.append(str(source))
            break
    return restored
