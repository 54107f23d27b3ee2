"""Noticing drops: watchdog events, full scans, and the settle rule.

The watcher only says *where to look*; the truth is always a fresh ``stat``.
Events (inotify, or polling for network mounts) and periodic full scans both
feed candidate paths to the :class:`Settler`, which reports an entry ready once
its size and mtime have not changed for ``settle_seconds`` and it can be opened
for reading. A bundle folder is one entry whose signature covers every file in
it. A missing or unreadable inbox (an unmounted share) is reported and waited
for: it never reads as "all files gone", because nothing here decides job state.

A file some program still has open for writing is never ready, however long it
has been quiet (a stalled Wi-Fi or SMB copy keeps size and mtime still): in
inotify mode a file written to is not ready until it is closed or moved in, and
on local file systems a read lease (``F_SETLEASE``) tells in both modes whether
any writer holds the file open. ``watch.open_writer_max_seconds`` bounds the
wait for writers that never close. Only regular files and folders are ever
opened: FIFOs, sockets and device files are noted once as ignored, because
opening a FIFO blocks until someone writes to it.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import hashlib
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .mounts import MountInfo, mount_of, watch_mode
from .routes import ROUTE_FOLDERS

__all__ = ["Entry", "Settler", "InboxWatcher", "ROUTE_FOLDERS", "is_ignored", "scan_inbox", "special_kind",
           "open_for_reading"]



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
    busy_reason: str = ""  # why an entry that has settled is not ready yet
    error: str = ""  # set when looking at the entry failed: intake quarantines it with this reason

    @property
    def stem(self) -> str:
        return self.path.stem if self.kind == "file" else self.path.name

    @property
    def size(self) -> int:
        return self.signature[0]

    @property
    def mtime_ns(self) -> int:
        return self.signature[1]


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder, non-link file is ("fifo", "socket", "device"), or None."""
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return None


def open_for_reading(path: Path) -> int:
    """An fd for reading a regular file; never blocks on a FIFO and never follows a link.

    Raises ``OSError`` (``ELOOP`` for a link, ``EINVAL`` for anything that is not a regular file).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def _file_signature(path: Path) -> tuple[int, int, str] | None:
    try:
        st = path.lstat()  # a link is judged (and refused) as itself, never by its target
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, ""


def _bundle_files(path: Path) -> list[Path]:
    """Every entry of a bundle that is read or moved: regular files and links (never FIFOs or devices)."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                out.append(p)
    return out


def _bundle_signature(path: Path, ignore: list[str]) -> tuple[int, int, str] | None:
    total = 0
    newest = 0
    h = hashlib.sha1()
    try:
        for p in _bundle_files(path):
            st = p.lstat()
            total += st.st_size
            newest = max(newest, st.st_mtime_ns)
            rel = os.fsencode(p.relative_to(path))
            h.update(rel + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        newest = max(newest, path.stat().st_mtime_ns)
    except OSError:
        return None
    return total, newest, h.hexdigest()


def _writer_holds(fd: int) -> bool | None:
    """Whether another process has the file open for writing (a read lease is refused), None if unknown.

    Leases work on local file systems for the file's owner or with CAP_LEASE;
    elsewhere (a client-side SMB/NFS mount, another user's file) the answer is unknown.
    """
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as e:
        return True if e.errno in (errno.EAGAIN, errno.EBUSY) else None
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


def _readiness(path: Path) -> str:
    """Empty when the file can be taken now; else why not (held by a writer, locked, unreadable)."""
    if path.is_symlink():
        return ""  # intake refuses it without reading through it
    try:
        fd = open_for_reading(path)
    except OSError as e:
        return f"cannot be opened ({e.strerror})"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return "locked by the program writing it"
        fcntl.flock(fd, fcntl.LOCK_UN)
        if _writer_holds(fd):
            return "still open for writing by another program"
        os.read(fd, 1)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    finally:
        os.close(fd)
    return ""


def _bundle_readiness(path: Path) -> str:
    try:
        for p in _bundle_files(path):
            why = _readiness(p)
            if why:
                return f"{p.name}: {why}"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return ""


def scan_inbox(
    inbox: Path, ignore: list[str], specials: dict[Path, str] | None = None,
    folders: Iterable[str] = ROUTE_FOLDERS,
) -> list[tuple[Path, str, str | None]] | None:
    """Every candidate in the inbox as (path, kind, route_folder); None if the inbox is unreadable.

    FIFOs, sockets and devices are never candidates; they are put in ``specials`` (path -> kind).
    ``folders``: the inbox folders whose entries are drops of their own (route folders, priority folders).
    """
    folders = frozenset(folders)
    try:
        top = sorted(inbox.iterdir())
    except OSError:
        return None
    out: list[tuple[Path, str, str | None]] = []

    def add(p: Path, route_folder: str | None) -> None:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode):
            out.append((p, "file", route_folder))  # a link is refused by intake, never followed
        elif stat.S_ISDIR(st.st_mode):
            out.append((p, "bundle", route_folder))
        elif specials is not None:
            specials[p] = special_kind(st.st_mode) or "special"

    for p in top:
        if is_ignored(p.name, ignore):
            continue
        try:
            if p.name in folders and p.is_dir() and not p.is_symlink():
                for q in sorted(p.iterdir()):
                    if not is_ignored(q.name, ignore):
                        add(q, p.name)
            else:
                add(p, None)
        except OSError:
            continue
    return out


class Settler:
    """Tracks candidates and says which have settled."""

    def __init__(
        self, inbox: Path, settle_seconds: float, ignore: list[str], open_writer_max_seconds: float = 3600.0,
        folders: Iterable[str] = ROUTE_FOLDERS,
    ) -> None:
        self.inbox = inbox
        self.folders = frozenset(folders)
        self.settle_seconds = settle_seconds
        self.ignore = ignore
        self.open_writer_max_seconds = open_writer_max_seconds
        self.entries: dict[Path, Entry] = {}
        self.writing: dict[Path, float] = {}  # files written to and not yet closed (inotify), -> when seen
        self.specials: dict[Path, str] = {}  # FIFOs, sockets, devices in the inbox: never opened

    def written(self, path: Path, now: float) -> None:
        """inotify saw a write to ``path``: it is not ready until it is closed or moved in."""
        self.writing.setdefault(path, now)

    def closed(self, path: Path) -> None:
        """inotify saw ``path`` closed after writing, moved in, or deleted."""
        self.writing.pop(path, None)

    def _held_open(self, e: Entry, now: float) -> bool:
        if not self.writing:
            return False
        if e.kind == "bundle":
            since = [t for p, t in self.writing.items() if p == e.path or e.path in p.parents]
        else:
            since = [self.writing[e.path]] if e.path in self.writing else []
        if not since:
            return False
        if now - e.stable_since >= self.open_writer_max_seconds:
            for p in [p for p in self.writing if p == e.path or e.path in p.parents]:
                del self.writing[p]  # a writer that never closes: take the file after the long bound
            return False
        return True

    def candidate_for(self, path: Path) -> tuple[Path, str, str | None] | None:
        """Map any path under the inbox to its top-level candidate (file or bundle)."""
        try:
            rel = path.relative_to(self.inbox)
        except ValueError:
            return None
        parts = rel.parts
        if not parts or any(is_ignored(part, self.ignore) for part in parts):
            return None
        if parts[0] in self.folders:
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
        if path in self.entries:
            return
        try:
            if kind == "file":
                try:
                    mode = path.lstat().st_mode
                except OSError:
                    return
                special = special_kind(mode)
                if special is not None:
                    self.specials[path] = special
                    return
            sig = self._signature(path, kind)
        except Exception as exc:  # looking at this entry failed: intake quarantines it, the others go on
            entry = Entry(path, kind, route_folder, (0, 0, ""), first_seen=now, stable_since=now, ready_at=now)
            entry.error = f"{type(exc).__name__}: {exc}"
            self.entries[path] = entry
            return
        if sig is None:
            return
        self.entries[path] = Entry(path, kind, route_folder, sig, first_seen=now, stable_since=now)

    def _signature(self, path: Path, kind: str) -> tuple[int, int, str] | None:
        return _bundle_signature(path, self.ignore) if kind == "bundle" else _file_signature(path)

    def refresh(self, now: float) -> list[Entry]:
        """Re-stat every entry; return those ready (settled and openable)."""
        ready = []
        for path, e in list(self.entries.items()):
            try:
                if self._refresh_one(path, e, now):
                    ready.append(e)
            except Exception as exc:  # one entry must not stop the others: intake quarantines it
                e.error = f"{type(exc).__name__}: {exc}"
                e.ready_at = e.ready_at or now
                ready.append(e)
        return ready

    def _refresh_one(self, path: Path, e: Entry, now: float) -> bool:
        """Re-stat one entry; True when it is ready."""
        if e.error:
            return True
        sig = self._signature(path, e.kind)
        if sig is None:
            del self.entries[path]  # gone before it settled: nothing was claimed
            return False
        if sig != e.signature:
            e.signature = sig
            e.stable_since = now
            e.ready_at = None
            return False
        if now - e.stable_since < self.settle_seconds:
            return False
        if e.ready_at is None:
            if self._held_open(e, now):
                e.busy, e.busy_reason = True, "still being written (not closed yet)"
                return False
            why = _bundle_readiness(path) if e.kind == "bundle" else _readiness(path)
            e.busy, e.busy_reason = bool(why), why
            if why:
                return False
            e.ready_at = now
        return True

    def forget(self, path: Path) -> None:
        self.entries.pop(path, None)
        for p in [p for p in self.writing if p == path or path in p.parents]:
            del self.writing[p]

    def next_deadline(self) -> float | None:
        """When the earliest unsettled entry will have been still for ``settle_seconds`` (monotonic)."""
        pending = [e.stable_since + self.settle_seconds for e in self.entries.values()
                   if e.ready_at is None and not e.busy]
        return min(pending) if pending else None

    def waiting(self) -> int:
        return sum(1 for e in self.entries.values() if e.ready_at is None)


class _Handler(FileSystemEventHandler):
    """Collects where to look, and (inotify) which files are being written and which were closed."""

    def __init__(self, sink: dict[Path, str], lock: threading.Lock, wake: threading.Event) -> None:
        self.sink = sink
        self.lock = lock
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path)) if event.src_path else None
        dest_raw = getattr(event, "dest_path", "") or ""
        dest = Path(os.fsdecode(dest_raw)) if dest_raw else None
        what = "changed"
        if not event.is_directory:
            # Not FileCreatedEvent: a file moved in from outside the inbox arrives as "created", complete.
            if isinstance(event, FileModifiedEvent):
                what = "written"
            elif isinstance(event, FileClosedEvent | FileDeletedEvent):
                what = "closed"
        with self.lock:
            if src is not None:
                if isinstance(event, FileMovedEvent):
                    self.sink[src] = "closed"  # moved away: whatever was open there is gone
                elif what != "changed" or src not in self.sink:
                    self.sink[src] = what
            if dest is not None:
                self.sink[dest] = "closed"  # moved in: complete (the Syncthing/rsync way)
        self.wake.set()


class InboxWatcher:
    """A watchdog observer on the inbox that survives the inbox going away."""

    def __init__(self, inbox: Path, mode: str, poll_interval: float, wake: threading.Event) -> None:
        self.inbox = inbox
        self.requested = mode  # auto, inotify or polling (watch.mode)
        self.mode = "polling" if mode == "polling" else "inotify"  # what runs: decided at each (re)start
        self.mode_reason = ""
        self.mount: MountInfo | None = None
        self.poll_interval = poll_interval
        self.wake = wake
        self._lock = threading.Lock()
        self._pending: dict[Path, str] = {}  # path -> "written", "closed" or "changed"
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
        # At start and after the inbox came back (a remount): its file system may have changed.
        self.mode, self.mode_reason = watch_mode(self.requested, self.inbox)
        self.mount = mount_of(self.inbox)
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

    def remounted(self) -> bool:
        """Whether the inbox now sits on another mount than when watching began; if so the observer is stopped,
        and the next :meth:`ensure` starts one fit for the new file system."""
        if not self.watching or mount_of(self.inbox) == self.mount:
            return False
        self.stop()
        return True

    def drain(self) -> dict[Path, str]:
        """Paths seen since the last call, with what was seen last ("written" and "closed": inotify only)."""
        with self._lock:
            out = dict(self._pending)
            self._pending.clear()
        if self.mode == "polling":  # the polling observer sees no opens or closes
            out = dict.fromkeys(out, "changed")
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
