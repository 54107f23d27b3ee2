"""Intake: turning settled inbox entries into job specs, or rejections a person can act on.

Files pair by stem within their folder (``talk.mp4`` + ``talk.srt`` is a
caption job). A file that needs a partner waits ``intake.pair_timeout_seconds``
and is then rejected with a message naming the partner it expected; a file that
may have a partner (an image that may get audio) waits the short
``intake.partner_grace_seconds``. Briefs (a YAML/JSON file, or ``brief.yaml`` in
a bundle folder) are parsed here so that a bad brief or a missing asset is
refused before any work starts. Intake decides; it never moves files.

Each entry is decided behind its own boundary: whatever goes wrong while one
drop is looked at (an unreadable brief, a name that is not UTF-8, a bug)
becomes that drop's :class:`Rejection`, never an exception out of ``decide``,
so one bad file cannot stop the others.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .brief import (
    AddAudioBrief,
    CaptionBrief,
    Img2VidBrief,
    NarrateBrief,
    TranscribeBrief,
    VideoBrief,
    load_brief,
    resolve_asset,
)
from .config import Config
from .errors import InputError, OmadError
from .log import get_logger
from .names import display, problem
from .routes import ROUTE_FOLDERS, ROUTES
from .watcher import Entry

__all__ = ["Intake", "JobSpec", "Rejection", "Waiting", "classify", "ACCEPTED", "ROUTES_ACCEPTED"]

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".m4v"}
SRT_EXT = {".srt", ".vtt", ".ass", ".ssa"}  # subtitle files: the "srt" role, whatever the format
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp"}
AUDIO_EXT = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac"}
TEXT_EXT = {".txt"}
BRIEF_EXT = {".yaml", ".yml", ".json"}
BRIEF_NAMES = ("brief.yaml", "brief.yml", "brief.json")

ACCEPTED = (
    "a video (.mp4 .mov .mkv .webm) with a same-name .srt/.vtt/.ass/.ssa (burned captions) "
    "or audio file (new soundtrack); "
    "an image (.jpg .png .webp), alone or with a same-name audio file; "
    "a .txt (narration); a video or recording alone (transcribed); a brief (.yaml/.json); "
    "or a folder holding brief.yaml and its assets"
)
ROUTES_ACCEPTED = ROUTES


def classify(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in VIDEO_EXT:
        return "video"
    if ext in SRT_EXT:
        return "srt"
    if ext in IMAGE_EXT:
        return "image"
    if ext in AUDIO_EXT:
        return "audio"
    if ext in TEXT_EXT:
        return "text"
    if ext in BRIEF_EXT:
        return "brief"
    return "other"


@dataclass
class JobSpec:
    """A drop that is ready to become a job."""

    route: str
    name: str
    inputs: dict[str, Path]  # role -> path in the inbox
    claim: list[Entry]  # what to take out of the inbox
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped_at(self) -> float:
        first = min(e.first_seen for e in self.claim)
        return time.time() - (time.monotonic() - first)


@dataclass
class Rejection:
    """A drop that cannot become a job: it goes to outbox/failed/ with the error."""

    route: str
    name: str
    claim: list[Entry]
    error: InputError

    @property
    def dropped_at(self) -> float:
        first = min(e.first_seen for e in self.claim)
        return time.time() - (time.monotonic() - first)


@dataclass
class Waiting:
    entry: Entry
    reason: str


_PARTNERS = {
    "video": "a same-name .srt/.vtt/.ass/.ssa (for captions) or audio file (.wav/.mp3/.m4a/.flac, for new sound)",
    "srt": "a same-name video (.mp4/.mov/.mkv/.webm)",
    "audio": "a same-name image (.jpg/.png/.webp) or video (.mp4/.mov/.mkv/.webm)",
}

_FORCED_ROLES: dict[str, set[str]] = {
    "caption": {"video", "srt"},
    "resync": {"video", "srt"},
    "addaudio": {"video", "audio"},
    "img2vid": {"image"},
    "narrate": {"text"},
}
#: What ``inbox/transcribe/`` takes: one video or one recording a name.
_TRANSCRIBE_KINDS = ({"video"}, {"audio"})


def _name_problem(path: Path) -> tuple[str, str] | None:
    """The first name in a drop (itself, or anything inside a bundle) omad cannot take: (name, why)."""
    why = problem(path.name)
    if why:
        return path.name, why
    if path.is_dir() and not path.is_symlink():
        for _root, dirs, files in os.walk(path):
            for n in [*dirs, *files]:
                why = problem(n)
                if why:
                    return n, why
    return None


def _has_link(path: Path) -> bool:
    if path.is_symlink():
        return True
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            if any((Path(root) / n).is_symlink() for n in [*dirs, *files]):
                return True
    return False


class Intake:
    def __init__(self, config: Config, inbox: Path, *, once: bool = False) -> None:
        self.config = config
        self.inbox = inbox
        self.once = once

    def _rel(self, p: Path) -> str:
        try:
            return display(p.relative_to(self.inbox))
        except ValueError:
            return display(p.name)

    def _guarded(self, entries: list[Entry], decide: Callable[[], JobSpec | Rejection | Waiting | None]
                 ) -> JobSpec | Rejection | Waiting | None:
        """``decide()``, with anything it raises turned into a rejection of ``entries`` (and a logged traceback)."""
        try:
            return decide()
        except InputError as err:
            return Rejection("unknown", entries[0].stem, entries, err)
        except (OmadError, OSError) as err:
            get_logger("omad.intake").warning("intake_unreadable", file=self._rel(entries[0].path), error=str(err))
            return Rejection("unknown", entries[0].stem, entries, InputError(
                f"could not be read ({err}). Check the file and drop it again.", file=self._rel(entries[0].path)))
        except Exception as exc:  # a bug: this drop is quarantined, the others go on
            get_logger("omad.intake").error("intake_bug", file=self._rel(entries[0].path),
                                            error=traceback.format_exc())
            return Rejection("unknown", entries[0].stem, entries, InputError(
                f"omad could not take this drop because of an internal error ({type(exc).__name__}: {exc}). "
                "The files are kept here; please report the log (outbox/logs/) and drop them again after "
                "an update.", file=self._rel(entries[0].path), details={"bug": True}))

    def _refused(self, e: Entry, briefs: set[Path]) -> Rejection | None:
        if e.kind == "file" and classify(e.path) == "brief":
            briefs.add(e.path)
        if e.ready_at is None:
            return None
        err = self._refusal(e)
        return Rejection("unknown", e.stem, [e], err) if err is not None else None

    def _refusal(self, e: Entry) -> InputError | None:
        """Why an entry is refused before anything reads it: a link, a bad name, or unreadable when settling."""
        if e.error:
            return InputError(f"could not be read ({e.error}). Check the file and drop it again.",
                              file=self._rel(e.path))
        if _has_link(e.path):
            return InputError("is or contains a symbolic link; omad never follows links out of the inbox. "
                              "Copy the file itself into the inbox.", file=self._rel(e.path))
        bad = _name_problem(e.path)
        if bad is not None:
            name, why = bad
            return InputError(f"cannot be processed: {why} ('{display(name)}'). Rename it using letters, digits, "
                              "spaces and ordinary punctuation, then drop it again.", file=self._rel(e.path))
        return None

    # -- the decision -----------------------------------------------------------

    def decide(
        self, entries: dict[Path, Entry], now: float
    ) -> tuple[list[JobSpec | Rejection], list[Waiting]]:
        decided: list[JobSpec | Rejection] = []
        waiting: list[Waiting] = []
        taken: set[Path] = set()

        # Links and bad names are refused before anything reads through them; a file whose type
        # cannot even be told is refused too, so nothing below can trip over it.
        briefs: set[Path] = set()
        for e in sorted(entries.values(), key=lambda x: str(x.path)):
            refused = self._guarded([e], partial(self._refused, e, briefs))
            if isinstance(refused, Rejection) and e.ready_at is not None:
                decided.append(refused)
            if refused is not None:
                taken.add(e.path)
        # Bundles and briefs first: they claim the files they name.
        for e in sorted(entries.values(), key=lambda x: str(x.path)):
            if e.path in taken:
                continue
            if e.kind == "bundle":
                if e.ready_at is None:
                    continue
                bundle = self._guarded([e], partial(self._bundle, e))
                if isinstance(bundle, JobSpec | Rejection):
                    decided.append(bundle)
                taken.add(e.path)
            elif e.path in briefs:
                result = self._guarded([e], partial(self._file_brief, e, entries))
                if isinstance(result, Waiting):
                    waiting.append(result)
                    taken.add(e.path)
                    taken.update(self._brief_refs_guess(e, entries))
                elif result is not None:
                    decided.append(result)
                    taken.update(x.path for x in result.claim)

        groups: dict[tuple[Path, str], list[Entry]] = {}
        for e in entries.values():
            if e.kind != "file" or e.path in taken or e.path in briefs:
                continue
            groups.setdefault((e.path.parent, e.path.stem.lower()), []).append(e)

        grace = 0.0 if self.once else self.config.intake.partner_grace_seconds
        timeout = float("inf") if self.once else self.config.intake.pair_timeout_seconds
        for (_folder, _stem), members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if any(m.ready_at is None for m in members):
                continue  # a member is still being copied
            ready_for = now - max(m.ready_at or now for m in members)
            result = self._guarded(members, partial(self._group, members, ready_for, grace, timeout))
            if isinstance(result, Waiting):
                waiting.append(result)
            elif result is not None:
                decided.append(result)
        return decided, waiting

    def _group(
        self, members: list[Entry], ready_for: float, grace: float, timeout: float
    ) -> JobSpec | Rejection | Waiting | None:
        by_kind: dict[str, list[Entry]] = {}
        for m in members:
            by_kind.setdefault(classify(m.path), []).append(m)
        first = members[0]
        name = first.path.stem
        # A folder of intake.priorities that is not a route's gives a priority, not a route (see claim).
        forced = first.route_folder if first.route_folder in ROUTE_FOLDERS else None

        others = by_kind.get("other", [])
        if others:
            bad = others[0]
            return Rejection(
                "unknown",
                bad.path.name,
                [bad],
                InputError(f"is not a file type omad accepts. omad accepts {ACCEPTED}.", file=self._rel(bad.path)),
            )
        for kind, items in by_kind.items():
            if len(items) > 1:
                names = ", ".join(sorted(i.path.name for i in items))
                return Rejection(
                    forced or "unknown",
                    name,
                    members,
                    InputError(
                        f"{names} are two {kind} files with the same name; omad cannot tell which to use. "
                        "Rename one or use a brief.",
                        file=self._rel(first.path.parent / name),
                    ),
                )
        kinds = set(by_kind)
        get = {k: v[0] for k, v in by_kind.items()}

        def spec(route: str, roles: dict[str, Entry]) -> JobSpec:
            return JobSpec(route, name, {r: e.path for r, e in roles.items()}, list(roles.values()))

        if forced == "transcribe":
            if kinds in _TRANSCRIBE_KINDS:
                return spec("transcribe", {k: get[k] for k in kinds})
            return Rejection(forced, name, members, InputError(
                f"the transcribe/ folder takes one video or one recording per name; "
                f"{', '.join(sorted(m.path.name for m in members))} do not belong there together.",
                file=self._rel(first.path)))
        if forced is not None:
            needed = _FORCED_ROLES.get(forced)
            if needed is None:  # inbox/video/ takes briefs only
                return Rejection(
                    forced,
                    name,
                    members,
                    InputError(
                        f"the {forced}/ folder takes briefs (.yaml/.json) or bundle folders; "
                        f"move {', '.join(m.path.name for m in members)} to the inbox root.",
                        file=self._rel(first.path),
                    ),
                )
            allowed = needed | ({"audio"} if forced == "img2vid" else set())
            extra = kinds - allowed
            if extra:
                return Rejection(
                    forced,
                    name,
                    members,
                    InputError(
                        f"the {forced}/ folder expects {' + '.join(sorted(needed))} files; "
                        f"{', '.join(get[k].path.name for k in sorted(extra))} does not belong there.",
                        file=self._rel(first.path),
                    ),
                )
            missing = needed - kinds
            if missing:
                return self._wait_or_reject(forced, name, members, sorted(missing)[0], ready_for, timeout)
            if forced == "img2vid" and "audio" not in kinds and ready_for < grace:
                return Waiting(get["image"], "may get a same-name audio file")
            return spec(forced, {k: get[k] for k in kinds})

        if kinds == {"video", "srt"}:
            return spec("caption", {"video": get["video"], "srt": get["srt"]})
        if kinds == {"video", "audio"}:
            return spec("addaudio", {"video": get["video"], "audio": get["audio"]})
        if kinds == {"image", "audio"}:
            return spec("img2vid", {"image": get["image"], "audio": get["audio"]})
        if kinds == {"image"}:
            if ready_for < grace:
                return Waiting(get["image"], "may get a same-name audio file")
            return spec("img2vid", {"image": get["image"]})
        if kinds == {"text"}:
            return spec("narrate", {"text": get["text"]})
        if kinds in _TRANSCRIBE_KINDS and self.config.intake.lone_video == "transcribe":
            kind = next(iter(kinds))
            wait = self.config.intake.lone_video_grace_seconds or grace
            if ready_for < (0.0 if self.once else wait):
                return Waiting(get[kind], f"may get {_PARTNERS[kind]}; transcribed if none comes")
            return spec("transcribe", {kind: get[kind]})
        if len(kinds) == 1 and next(iter(kinds)) in _PARTNERS:
            kind = next(iter(kinds))
            return self._wait_or_reject(
                {"video": "caption", "srt": "caption", "audio": "addaudio"}[kind], name, members, kind, ready_for,
                timeout, lone=True,
            )
        names = ", ".join(sorted(m.path.name for m in members))
        return Rejection(
            "unknown",
            name,
            members,
            InputError(
                f"{names} share a name but do not make a drop omad knows. omad accepts {ACCEPTED}. "
                "Use a brief to say what you want.",
                file=self._rel(first.path.parent / name),
            ),
        )

    def _wait_or_reject(
        self, route: str, name: str, members: list[Entry], kind: str, ready_for: float, timeout: float,
        lone: bool = False,
    ) -> Waiting | Rejection:
        entry = members[0]
        if lone:
            expected = _PARTNERS[kind]
        else:
            expected = {"video": "a same-name video", "srt": "a same-name subtitle", "audio": "a same-name audio file",
                        "image": "a same-name image", "text": "a .txt"}.get(kind, kind)
        if ready_for < timeout:
            return Waiting(entry, f"waiting for {expected}")
        return Rejection(
            route,
            name,
            members,
            InputError(
                f"waited {timeout:.0f}s for {expected} and none arrived. Drop both files together "
                f"(e.g. {name}.mp4 and {name}.srt).",
                file=self._rel(entry.path),
            ),
        )

    # -- briefs -------------------------------------------------------------------

    def _brief_refs_guess(self, e: Entry, entries: dict[Path, Entry]) -> set[Path]:
        # While a brief waits for its assets, keep same-folder files it may name out of other jobs.
        try:
            text = e.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
        return {p for p in entries if p.parent == e.path.parent and p.name in text}

    def _file_brief(self, e: Entry, entries: dict[Path, Entry]) -> JobSpec | Rejection | Waiting | None:
        if e.ready_at is None:
            return Waiting(e, "still being copied")
        label = self._rel(e.path)
        try:
            brief = load_brief(e.path, self.config.intake.max_brief_bytes, label, self.config.intake.max_brief_depth)
            refs = self._brief_paths(brief, e.path.parent, label)
        except InputError as err:
            return Rejection("unknown", e.path.stem, [e], err)
        claim = [e]
        for path in refs.values():
            ref = entries.get(path)
            if ref is None or ref.kind != "file":
                return Rejection(
                    "unknown",
                    e.path.stem,
                    [e],
                    InputError(f"names '{path.name}', which must sit beside the brief in the same folder.",
                               file=label),
                )
            if ref.ready_at is None:
                return Waiting(e, f"waiting for {path.name} to finish copying")
            if ref not in claim:
                claim.append(ref)
        return self._brief_spec(brief, e.path, refs, claim, brief.name or e.path.stem)

    def _bundle(self, e: Entry) -> JobSpec | Rejection:
        label = self._rel(e.path)
        brief_path = next((e.path / n for n in BRIEF_NAMES if (e.path / n).is_file()), None)
        if brief_path is None:
            return Rejection(
                "unknown",
                e.path.name,
                [e],
                InputError(
                    "is a folder without brief.yaml. A folder drop needs a brief.yaml that says what to make "
                    "(see examples/ in the omad README); single files go in the inbox root.",
                    file=label,
                ),
            )
        blabel = self._rel(brief_path)
        try:
            limits = self.config.intake
            brief = load_brief(brief_path, limits.max_brief_bytes, blabel, limits.max_brief_depth)
            refs = self._brief_paths(brief, e.path, blabel)
        except InputError as err:
            return Rejection("unknown", e.path.name, [e], err)
        return self._brief_spec(brief, brief_path, refs, [e], brief.name or e.path.name)

    def _brief_paths(self, brief: Any, base: Path, label: str) -> dict[str, Path]:
        """Every file a brief names, by role, resolved and checked to stay in its folder."""
        refs: dict[str, Path] = {}

        def add(role: str, rel: str | None, key: str) -> None:
            if rel:
                refs[role] = resolve_asset(base, rel, label, key)

        if isinstance(brief, CaptionBrief):
            add("video", brief.video, "video")
            add("srt", brief.subtitles, "subtitles")
        elif isinstance(brief, Img2VidBrief):
            add("image", brief.image, "image")
            add("audio", brief.audio, "audio")
        elif isinstance(brief, AddAudioBrief | TranscribeBrief):
            add("video", brief.video, "video")
            add("audio", brief.audio, "audio")
        elif isinstance(brief, NarrateBrief):
            add("text", brief.text_file, "text_file")
            if brief.voice:
                add("reference", brief.voice.reference_audio, "voice.reference_audio")
        elif isinstance(brief, VideoBrief):
            for i, scene in enumerate(brief.scenes or []):
                # A picture omad chose earlier (an 'asset' record) is fetched back by the asset stage when
                # the bundle does not carry it; a file of that name in the bundle wins.
                if scene.asset is None or (scene.image and (base / scene.image).is_file()):
                    add(f"scene{i}_image", scene.image, f"scenes[{i}].image")
            for i, asset in enumerate(brief.assets):
                add(f"asset{i}", asset.file, f"assets[{i}].file")
            add("music", brief.music_file, "music")
            if brief.voice:
                add("reference", brief.voice.reference_audio, "voice.reference_audio")
        return refs

    def _brief_spec(
        self, brief: Any, brief_path: Path, refs: dict[str, Path], claim: list[Entry], name: str
    ) -> JobSpec:
        route = brief.kind
        if isinstance(brief, VideoBrief) and brief.is_agent:
            route = "agent-video"
        if isinstance(brief, CaptionBrief) and brief.resync:
            route = "resync"
        inputs = {"brief": brief_path, **refs}
        options = brief.model_dump(mode="json", exclude_none=True)
        return JobSpec(route, name, inputs, claim, options)
