"""Noticing drops: watchdog events, full scans, and the settle rule.

The watcher only says *where to look*; the truth is always a fresh ``stat``.
Events (inotify, or polling for network mounts) and periodic full scans both
feed candidate paths to the :class:`Settler`, which reports an entry ready once
its size and mtime have not changed for ``settle_seconds`` and it can be opened
for reading. A bundle folder is one entry whose signature covers every file in
it. A missing or unreadable inbox (an unmounted share) is reported and waited
for: it never reads as "all files gone", because nothing here decides job state.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

__all__ = ["Entry", "Settler", "InboxWatcher", "ROUTE_FOLDERS", "is_ignored", "scan_inbox"]

# Subfolders of the inbox that force a route instead of being bundles.
ROUTE_FOLDERS = ("caption", "img2vid", "addaudio", "narrate", "video")


def is_ignored(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass
class Entry:
    """A candidate drop: one file, or one bundle folder."""

    path: Path
    kind: str  # "file" or "bundle"
    route_folder: str | None  # set when the entry sits in inbox/<route>/
    signature: tuple[int, int, str]  # size, mtime_ns, listing hash (bundles)
    first_seen: float
    stable_since: float
    ready_at: float | None = None  # when it first became ready
    busy: bool = False

    @property
    def stem(self) -> str:
        return self.path.stem if self.kind == "file" else self.path.name

    @property
    def size(self) -> int:
        return self.signature[0]

    @property
    def mtime_ns(self) -> int:
        return self.signature[1]


def _file_signature(path: Path) -> tuple[int, int, str] | None:
    try:
        st = path.lstat()  # a link is judged (and refused) as itself, never by its target
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, ""


def _bundle_signature(path: Path, ignore: list[str]) -> tuple[int, int, str] | None:
    total = 0
    newest = 0
    h = hashlib.sha1()
    try:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                st = p.lstat()
                total += st.st_size
                newest = max(newest, st.st_mtime_ns)
                h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        newest = max(newest, path.stat().st_mtime_ns)
    except OSError:
        return None
    return total, newest, h.hexdigest()


def _openable(path: Path) -> bool:
    """Readable now, and not held under an exclusive lock by a writer."""
    if path.is_symlink():
        return True  # intake refuses it without reading through it
    try:
        with open(path, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.read(1)
        return True
    except OSError:
        return False


def _bundle_openable(path: Path) -> bool:
    try:
        return all(_openable(Path(root) / n) for root, _d, files in os.walk(path) for n in files)  # links: True
    except OSError:
        return False


def scan_inbox(inbox: Path, ignore: list[str]) -> list[tuple[Path, str, str | None]] | None:
    """Every candidate in the inbox as (path, kind, route_folder); None if the inbox is unreadable."""
    try:
        top = sorted(inbox.iterdir())
    except OSError:
        return None
    out: list[tuple[Path, str, str | None]] = []
    for p in top:
        if is_ignored(p.name, ignore):
            continue
        try:
            if p.is_symlink():
                out.append((p, "file", None))  # refused by intake, never followed
            elif p.is_dir():
                if p.name in ROUTE_FOLDERS:
                    for q in sorted(p.iterdir()):
                        if is_ignored(q.name, ignore):
                            continue
                        kind = "bundle" if q.is_dir() and not q.is_symlink() else "file"
                        out.append((q, kind, p.name))
                else:
                    out.append((p, "bundle", None))
            elif p.is_file():
                out.append((p, "file", None))
        except OSError:
            continue
    return out


class Settler:
    """Tracks candidates and says which have settled."""

    def __init__(self, inbox: Path, settle_seconds: float, ignore: list[str]) -> None:
        self.inbox = inbox
        self.settle_seconds = settle_seconds
        self.ignore = ignore
        self.entries: dict[Path, Entry] = {}

    def candidate_for(self, path: Path) -> tuple[Path, str, str | None] | None:
        """Map any path under the inbox to its top-level candidate (file or bundle)."""
        try:
            rel = path.relative_to(self.inbox)
        except ValueError:
            return None
        parts = rel.parts
        if not parts or any(is_ignored(part, self.ignore) for part in parts):
            return None
        if parts[0] in ROUTE_FOLDERS:
            if len(parts) == 1:
                return None
            cand = self.inbox / parts[0] / parts[1]
            kind = "file" if len(parts) == 2 and (cand.is_symlink() or not cand.is_dir()) else "bundle"
            return cand, kind, parts[0]
        cand = self.inbox / parts[0]
        if cand.is_symlink():
            return cand, "file", None
        kind = "file" if len(parts) == 1 and not cand.is_dir() else "bundle"
        return cand, kind, None

    def observe(self, path: Path, kind: str, route_folder: str | None, now: float) -> None:
        if path not in self.entries:
            sig = self._signature(path, kind)
            if sig is None:
                return
            self.entries[path] = Entry(path, kind, route_folder, sig, first_seen=now, stable_since=now)

    def _signature(self, path: Path, kind: str) -> tuple[int, int, str] | None:
        return _bundle_signature(path, self.ignore) if kind == "bundle" else _file_signature(path)

    def refresh(self, now: float) -> list[Entry]:
        """Re-stat every entry; return those ready (settled and openable)."""
        ready = []
        for path, e in list(self.entries.items()):
            sig = self._signature(path, e.kind)
            if sig is None:
                del self.entries[path]  # gone before it settled: nothing was claimed
                continue
            if sig != e.signature:
                e.signature = sig
                e.stable_since = now
                e.ready_at = None
                continue
            if now - e.stable_since < self.settle_seconds:
                continue
            if e.ready_at is None:
                ok = _bundle_openable(path) if e.kind == "bundle" else _openable(path)
                e.busy = not ok
                if not ok:
                    continue
                e.ready_at = now
            ready.append(e)
        return ready

    def forget(self, path: Path) -> None:
        self.entries.pop(path, None)

    def next_deadline(self) -> float | None:
        """When the earliest unsettled entry will have been still for ``settle_seconds`` (monotonic)."""
        pending = [e.stable_since + self.settle_seconds for e in self.entries.values() if e.ready_at is None]
        return min(pending) if pending else None

    def waiting(self) -> int:
        return sum(1 for e in self.entries.values() if e.ready_at is None)


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: set[Path], lock: threading.Lock, wake: threading.Event) -> None:
        self.sink = sink
        self.lock = lock
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        with self.lock:
            for p in paths:
                if p:
                    self.sink.add(Path(os.fsdecode(p)))
        self.wake.set()


class InboxWatcher:
    """A watchdog observer on the inbox that survives the inbox going away."""

    def __init__(self, inbox: Path, mode: str, poll_interval: float, wake: threading.Event) -> None:
        self.inbox = inbox
        self.mode = mode
        self.poll_interval = poll_interval
        self.wake = wake
        self._lock = threading.Lock()
        self._pending: set[Path] = set()
        self._observer: BaseObserver | None = None
        self.watching = False

    def ensure(self) -> bool:
        """(Re)start the observer if the inbox exists; returns whether it is watched."""
        if self._observer is not None and self._observer.is_alive() and self.inbox.is_dir():
            return True
        self.stop()
        if not self.inbox.is_dir():
            self.watching = False
            return False
        observer: BaseObserver = (
            PollingObserver(timeout=self.poll_interval) if self.mode == "polling" else Observer()
        )
        try:
            observer.schedule(_Handler(self._pending, self._lock, self.wake), str(self.inbox), recursive=True)
            observer.start()
        except OSError:
            self.watching = False
            return False
        self._observer = observer
        self.watching = True
        return True

    def drain(self) -> set[Path]:
        with self._lock:
            out = set(self._pending)
            self._pending.clear()
        return out

    def stop(self) -> None:
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=5)
            except RuntimeError:
                pass
            self._observer = None
        self.watching = False
