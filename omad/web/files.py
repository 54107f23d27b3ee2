"""Files the status server hands out: outbox paths made safe, byte ranges, job posters.

Owns the rules for what may be served from the outbox: never a path outside it
(``..``, absolute paths, dotfiles, symlinks that leave it), never a hidden or
temporary file. Posters are the only thing written, and only to their cache
folder under the state dir. Nothing here speaks HTTP.
"""

from __future__ import annotations

import mimetypes
import os
import re
import threading
from pathlib import Path
from urllib.parse import unquote

from ..errors import OmadError
from ..journal import Job
from ..log import get_logger
from ..media.ffmpeg import SAFE_INPUT_ARGS, run_ffmpeg

__all__ = [
    "PathRefused",
    "RangeNotSatisfiable",
    "resolve_outbox_path",
    "parse_range",
    "content_type",
    "PosterCache",
    "VISUAL_SUFFIXES",
    "IMAGE_SUFFIXES",
]

VISUAL_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".srt": "text/plain; charset=utf-8",
    ".ass": "text/plain; charset=utf-8",
    ".vtt": "text/vtt; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}


class PathRefused(Exception):
    """A requested outbox path that could leave the outbox or names a hidden file."""


def resolve_outbox_path(root: Path, raw: str) -> Path:
    """The real file for ``raw`` (the percent-encoded part of the URL after ``/outbox/``).

    Refuses (:class:`PathRefused`) empty, absolute, ``.``/``..`` and dot-named
    segments, backslashes and NUL, decoded or not, and any path whose real
    location (symlinks followed) is outside ``root`` or hidden. Raises
    ``FileNotFoundError`` when the path is acceptable but no such file exists.
    """
    try:
        text = unquote(raw, errors="strict")
    except UnicodeDecodeError as e:
        raise PathRefused("the path is not valid UTF-8") from e
    if not text or text.startswith("/") or "\\" in text or "\x00" in text:
        raise PathRefused("absolute, empty or malformed path")
    parts = text.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise PathRefused("dot segments and hidden files are not served")
    base = root.resolve()
    real = base.joinpath(*parts).resolve()
    if not real.is_relative_to(base):
        raise PathRefused("the path leaves the outbox")
    if any(p.startswith(".") for p in real.relative_to(base).parts):
        raise PathRefused("dot segments and hidden files are not served")
    if not real.is_file():
        raise FileNotFoundError(text)
    return real


class RangeNotSatisfiable(Exception):
    """A byte range that starts past the end of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks for, or None for the whole file.

    Only single ranges are honoured; several ranges or a malformed header get the
    whole file, which RFC 9110 allows. A range past the end raises
    :class:`RangeNotSatisfiable`.
    """
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(header)
    if end < start:
        return None
    return start, end


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


# -- posters ----------------------------------------------------------------------------------------


class PosterCache:
    """A job's poster: its published image, else one frame of its video, made once and cached."""

    def __init__(self, cache_dir: Path, outbox: Path) -> None:
        self.cache_dir = cache_dir
        self.outbox = outbox
        self._lock = threading.Lock()  # one ffmpeg at a time: page refreshes must not pile them up
        self._failed: set[tuple[str, int, int]] = set()
        self.log = get_logger("omad.web")

    def _published(self, job: Job) -> list[Path]:
        outputs = (job.result or {}).get("outputs")
        if not isinstance(outputs, dict):
            return []
        base = self.outbox.resolve()
        found = []
        for value in outputs.values():
            try:
                p = Path(str(value)).resolve()
            except (OSError, RuntimeError):
                continue
            if p.is_relative_to(base) and p.is_file():
                found.append(p)
        return found

    def has_visual(self, job: Job) -> bool:
        return any(p.suffix.lower() in VISUAL_SUFFIXES + IMAGE_SUFFIXES for p in self._published(job))

    def poster_for(self, job: Job) -> Path | None:
        files = self._published(job)
        image = next((p for p in files if p.suffix.lower() in IMAGE_SUFFIXES), None)
        if image is not None:
            return image
        video = next((p for p in files if p.suffix.lower() in VISUAL_SUFFIXES), None)
        if video is None:
            return None
        st = video.stat()
        key = (job.id, st.st_mtime_ns, st.st_size)
        dst = self.cache_dir / f"{job.id}.jpg"
        if key in self._failed:
            return None
        with self._lock:
            if dst.is_file() and dst.stat().st_mtime_ns >= st.st_mtime_ns:
                return dst
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{job.id}.{threading.get_ident()}.jpg"
            try:
                # thumbnail= picks a representative frame of the first 50, so a fade-in
                # or a short clip still gives a picture without seeking past the end.
                run_ffmpeg(
                    [*SAFE_INPUT_ARGS, "-i", str(video), "-an", "-sn",
                     "-vf", "thumbnail=n=50,scale=w='min(480,iw)':h=-2",
                     "-frames:v", "1", "-q:v", "5", str(tmp)],
                    timeout=60.0,
                    file_label=video.name,
                    stage="poster",
                )
                os.replace(tmp, dst)
            except OmadError as e:
                tmp.unlink(missing_ok=True)
                self._failed.add(key)
                self.log.warning("poster_failed", job=job.id, error=str(e))
                return None
            return dst
