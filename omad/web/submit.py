"""Submissions from the web: uploads and briefs written into the inbox, then found in the journal.

An upload is never a job by itself: it is written into the inbox under a hidden
name (``inbox/.omad-upload-*``, which the watcher ignores) and renamed into
place when complete, so the normal intake takes it with all its checks and
limits, exactly like a file copied into the share. Files alone land in the
inbox root (so ``talk.mp4`` + ``talk.srt`` pair by stem); a brief with files
becomes a bundle folder holding ``brief.yaml``; a brief alone becomes
``NAME.yaml``.

A submission's id is the hash of its file names, contents and brief, so the
same upload twice is recognised and answered with the same job instead of
being written again. This module never writes outside the inbox and never
touches the journal.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import yaml

from ..brief import brief_models, parse_brief
from ..errors import InputError
from ..journal import Job, JobStatus
from ..kinds import kind_of_name
from ..tts.voices import voice_spec
from ..watcher import is_ignored

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["Submissions", "Submission", "Staged", "UploadRefused", "check_file_name", "brief_from_fields",
           "validate_brief", "FORM_FIELDS", "form_fields"]

_STAGING_PREFIX = ".omad-upload-"


def form_fields() -> tuple[str, ...]:
    """The Create page's brief fields: ``kind``, then every field some brief model shows on the form."""
    return tuple(dict.fromkeys(["kind", *(f for m in brief_models().values() for f in (*m.form, *m.form_inputs))]))


#: The Create page's brief fields (``kind`` picks which of the others apply), as the brief models declare them.
FORM_FIELDS = form_fields()
_CHUNK = 1024 * 1024


class UploadRefused(InputError):
    """An upload the web side refuses before it reaches the inbox; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, field: str, status: int = 400) -> None:
        super().__init__(message, details={"field": field})
        self.field = field
        self.status = status


def check_file_name(name: str, field: str = "files") -> str:
    """``name`` as a plain file name for the inbox, or :class:`UploadRefused` saying why not."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in (".", "..") or base.startswith(".") or "\x00" in base:
        raise UploadRefused(f"'{name}' is not a usable file name (empty, hidden or a folder). Rename the file.",
                            field=field)
    if len(base.encode("utf-8", "surrogateescape")) > 200:
        raise UploadRefused(f"the file name '{base[:40]}...' is longer than 200 bytes. Shorten it.", field=field)
    if base.lower() in ("brief.yaml", "brief.yml", "brief.json"):
        raise UploadRefused("a file named brief.yaml is the brief itself: send it in the 'brief' field.", field=field)
    return base


@dataclass
class Staged:
    """One uploaded file, already on disk in the submission's hidden staging folder."""

    name: str
    path: Path
    sha256: str
    size: int


@dataclass
class Submission:
    id: str
    sources: list[str]  # what intake will claim, relative to the inbox
    hashes: dict[str, str]  # file name -> sha256 (files written at the inbox root)
    submitted_at: float
    job_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Staging:
    """A hidden folder in the inbox where one submission's files are written before they appear."""

    def __init__(self, inbox: Path, max_bytes: int, ignore: list[str]) -> None:
        self.inbox = inbox
        self.ignore = ignore
        self.dir = inbox / f"{_STAGING_PREFIX}{secrets.token_hex(8)}"
        self.max_bytes = max_bytes
        self.total = 0
        self.files: list[Staged] = []

    def __enter__(self) -> Staging:
        self.dir.mkdir(parents=True)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, name: str, stream: BinaryIO) -> Staged:
        name = check_file_name(name)
        if is_ignored(name, self.ignore):
            raise UploadRefused(f"omad ignores files named like '{name}' (a temporary or partial name in "
                                "watch.ignore), so it would never be taken. Rename the file.", field="files")
        if any(f.name == name for f in self.files):
            raise UploadRefused(f"two files are named '{name}'. Send each name once.", field="files")
        dst = self.dir / name
        h = hashlib.sha256()
        size = 0
        with open(dst, "wb") as out:
            for block in iter(lambda: stream.read(_CHUNK), b""):
                size += len(block)
                self.total += len(block)
                if self.total > self.max_bytes:
                    raise UploadRefused(
                        f"the upload is larger than web.max_upload_mb ({self.max_bytes / 2**20:.0f} MB) at "
                        f"'{name}'. Send fewer or smaller files, or raise web.max_upload_mb.", field="files",
                        status=413)
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        staged = Staged(name, dst, h.hexdigest(), size)
        self.files.append(staged)
        return staged


def _form_value(key: str, fields: dict[str, str]) -> Any:
    """A form input as the brief field of the same name wants it (None: left out)."""
    raw = fields.get(key, "")
    if key == "captions":
        return raw in ("on", "true", "1", "yes")
    if key == "review":  # a ticked box stops for the storyboard's review; unticked leaves the config's default
        return True if raw in ("on", "true", "1", "yes") else None
    value = raw.strip() if key in ("name", "text", "prompt", "voice") else raw
    if key == "prompt" and not value:
        value = fields.get("text", "").strip()  # one text box serves a prompt when JavaScript is off
    if key == "voice" and value:
        return voice_spec(value)
    return value if value not in (None, "") else None


def brief_from_fields(fields: dict[str, str], names: list[str]) -> dict[str, Any]:
    """The brief the Create page's form describes; uploaded files fill its file fields by their kind.

    Which fields apply, which are files, and which exclude each other is the brief model's declaration
    (``form``, ``files``/``uploads``, ``one_of``).
    """
    kind = fields.get("kind", "")
    models = brief_models()
    model = models.get(kind)
    if model is None:
        raise UploadRefused(f"'kind' must be {', '.join(models)}, not '{kind}'.", field="kind")
    brief: dict[str, Any] = {"kind": kind}

    def taken(key: str) -> bool:
        return any(key in group and any(other in brief for other in group if other != key)
                   for group in model.one_of)

    for key in (*model.form, *model.uploads):
        if taken(key):
            continue
        if key in model.uploads:
            want = model.files[key][1]
            value: Any = next((n for n in names if kind_of_name(n) == want), None)
        else:
            value = _form_value(key, fields)
        if value is not None:
            brief[key] = value
    model.from_form(fields, brief)
    return brief


def _place(src: Path, dst: Path, field: str) -> None:
    """Move ``src`` to ``dst`` in one step, never over a file already there (another upload, a drop)."""
    try:
        os.link(src, dst)  # fails if dst exists, unlike rename
    except FileExistsError as e:
        raise UploadRefused(f"'{dst.name}' is already waiting in the inbox. Wait for it to be taken, or rename "
                            "the file.", field=field, status=409) from e
    except OSError:  # a file system without hard links (some network shares): check, then rename
        if dst.exists():
            raise UploadRefused(f"'{dst.name}' is already waiting in the inbox. Wait for it to be taken.",
                                field=field, status=409) from None
        os.rename(src, dst)
        return
    src.unlink()


def _submission_id(files: list[Staged], brief: dict[str, Any] | None) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\0{f.sha256}\n".encode("utf-8", "surrogateescape"))
    h.update(json.dumps(brief, sort_keys=True, ensure_ascii=True).encode() if brief is not None else b"-")
    return h.hexdigest()[:16]


def validate_brief(data: Any, files: list[Staged]) -> dict[str, Any]:
    """The brief as it will be written, checked by omad's own brief models (400 naming the problem)."""
    if not isinstance(data, dict):
        raise UploadRefused("the brief must be a JSON object such as {\"kind\": \"narrate\", \"text\": \"...\"}.",
                            field="brief")
    name = data.get("name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise UploadRefused("the brief's 'name' must be text: the name of the result files.", field="name")
        if any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise UploadRefused("the brief's 'name' holds a slash or a control character (NUL, newline...). "
                                "Use a plain name such as 'my-video'.", field="name")
        check_file_name(name, field="name")  # hidden names, over 200 bytes
    try:
        parse_brief(data, "brief")
    except InputError as e:
        raise UploadRefused(e.message, field="brief") from e
    names = {f.name for f in files}
    model = brief_models()[str(data["kind"])]
    for key in (k for k in model.files if "." not in k and "[" not in k):
        value = data.get(key)
        if isinstance(value, str) and value not in names:
            raise UploadRefused(f"the brief's '{key}' names '{value}', which is not among the uploaded files "
                                f"({', '.join(sorted(names)) or 'none'}). Upload it with the brief.", field="brief")
    return data


#: Submissions remembered at once (older ones are still found through their jobs).
_MAX_SUBMISSIONS = 10000


class Submissions:
    """Places submissions in the inbox and finds the jobs intake made of them."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._by_id: dict[str, Submission] = {}
        self._lock = threading.Lock()

    @property
    def inbox(self) -> Path:
        return self.daemon.paths.inbox

    def staging(self) -> Staging:
        if not self.inbox.is_dir():
            raise UploadRefused(f"the inbox {self.inbox} is not there (an unmounted share?). Try again later.",
                                field="files", status=503)
        cfg = self.daemon.config
        return Staging(self.inbox, int(cfg.web.max_upload_mb * 2**20), cfg.watch.ignore)

    def get(self, sid: str) -> Submission | None:
        with self._lock:
            return self._by_id.get(sid)

    def place(self, staging: Staging, brief: dict[str, Any] | None) -> tuple[Submission, bool]:
        """Rename the staged files into the inbox; (submission, False) when the same one was placed before."""
        files = staging.files
        if not files and brief is None:
            raise UploadRefused("nothing to do: send files, a brief, or both.", field="files")
        sid = _submission_id(files, brief)
        with self._lock:
            earlier = self._by_id.get(sid)
            if earlier is not None:
                job = self.job_for(earlier)
                if job is None or job.status != JobStatus.FAILED:
                    return earlier, False
        if brief is None:
            earlier_job = self._same_files_done(files)
            if earlier_job is not None:
                sub = Submission(sid, [f.name for f in files], {f.name: f.sha256 for f in files}, time.time(),
                                 earlier_job.id)
                self._remember(sub)
                return sub, False
            sub = self._place_files(sid, files)
        else:
            sub = self._place_brief(sid, staging, brief)
        self._remember(sub)
        return sub, True

    def _remember(self, sub: Submission) -> None:
        """Keep ``sub`` for GET /api/submissions; the table is bounded (a day, 10,000 entries, oldest out)."""
        with self._lock:
            self._by_id.pop(sub.id, None)
            self._by_id[sub.id] = sub
            old = time.time() - 86400
            while self._by_id and (len(self._by_id) > _MAX_SUBMISSIONS
                                   or next(iter(self._by_id.values())).submitted_at < old):
                del self._by_id[next(iter(self._by_id))]

    def _place_files(self, sid: str, files: list[Staged]) -> Submission:
        for f in files:
            if (self.inbox / f.name).exists():
                raise UploadRefused(f"'{f.name}' is already waiting in the inbox. Wait for it to be taken, or "
                                    "rename the file.", field="files", status=409)
        submitted = time.time()
        for f in files:
            _place(f.path, self.inbox / f.name, "files")
        return Submission(sid, [f.name for f in files], {f.name: f.sha256 for f in files}, submitted)

    def _free_name(self, stem: str, suffix: str, sid: str) -> str:
        name = f"{stem}{suffix}"
        if (self.inbox / name).exists():
            name = f"{stem}-{sid[:8]}{suffix}"
        if (self.inbox / name).exists():
            raise UploadRefused(f"'{name}' is already waiting in the inbox. Wait for it to be taken.",
                                field="brief", status=409)
        return name

    def _place_brief(self, sid: str, staging: Staging, brief: dict[str, Any]) -> Submission:
        stem = str(brief.get("name") or (staging.files[0].path.stem if staging.files else f"web-{sid[:8]}"))
        text = yaml.safe_dump(brief, allow_unicode=True, sort_keys=False)
        submitted = time.time()
        if not staging.files:
            name = self._free_name(stem, ".yaml", sid)
            tmp = staging.dir / "brief.yaml"
            tmp.write_text(text, encoding="utf-8")
            _place(tmp, self.inbox / name, "brief")
            return Submission(sid, [name], {}, submitted)
        (staging.dir / "brief.yaml").write_text(text, encoding="utf-8")
        name = self._free_name(stem, "", sid)
        try:
            os.rename(staging.dir, self.inbox / name)
        except OSError as e:  # a folder of that name appeared meanwhile
            raise UploadRefused(f"'{name}' is already waiting in the inbox. Wait for it to be taken.",
                                field="brief", status=409) from e
        staging.dir.mkdir()  # so the context's cleanup has its folder; the bundle itself has moved
        return Submission(sid, [name], {}, submitted)

    def _same_files_done(self, files: list[Staged]) -> Job | None:
        wanted = {(f.name, f.sha256) for f in files}
        for job in self.daemon.journal.jobs(limit=500):
            claims = {(c.get("name"), c.get("sha256")) for c in job.inputs if c.get("claim")}
            if claims == wanted and job.status not in (JobStatus.FAILED, JobStatus.DUPLICATE):
                return job
        return None

    def job_for(self, sub: Submission) -> Job | None:
        """The job intake made of ``sub`` (the original when intake saw a duplicate), or None yet."""
        journal = self.daemon.journal
        job = journal.get(sub.job_id) if sub.job_id else None
        if job is None:
            wanted = set(sub.sources)
            for candidate in journal.jobs(limit=200):
                if candidate.created_at < sub.submitted_at - 1.0:
                    break
                claims = {str(c.get("source")): c.get("sha256") for c in candidate.inputs if c.get("claim")}
                if wanted <= set(claims) and all(claims[n] == h for n, h in sub.hashes.items()):
                    job = candidate
                    break
        if job is not None and job.status == JobStatus.DUPLICATE and job.duplicate_of:
            job = journal.get(job.duplicate_of) or job
        if job is not None:
            sub.job_id = job.id
        return job
