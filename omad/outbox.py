"""The outbox and the safe file moves around it.

Results are copied under a temporary dot-name in the outbox and renamed into
place, so a half-written file never appears there. Publishing is all or
nothing per job: every output and the sidecar are written under temporary
names first, and only then renamed into place, the sidecar last; if anything
fails before the renames, nothing appears. Output names are shortened
(``names.fit_stem``) so that every name omad derives stays within the file
system's limit. Each result gets a sidecar ``<name>.json``. Failed drops go to ``outbox/failed/<name>/`` with their
original inputs and an ``error.json``. Moves between file systems (an inbox on
a NAS, the state dir on local disk) copy, fsync, then remove: nothing the user
dropped is deleted before its copy is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import TransientError
from .names import clean, display, fit_stem

__all__ = ["Outbox", "safe_move", "atomic_write_text", "atomic_write_json", "unique_path", "fsync_dir",
           "SUFFIX_ROOM"]

_UMASK = os.umask(0o022)  # read once, at import (single-threaded); put back at once
os.umask(_UMASK)
_DEFAULT_MODE = 0o666 & ~_UMASK

#: Bytes kept free after an output stem: the longest suffix omad publishes plus a "-NNN" conflict counter.
SUFFIX_ROOM = 24


def _tmp_name(dst: Path) -> Path:
    """A short temporary name beside ``dst``: a long final name must not overflow NAME_MAX as a temp name."""
    tag = hashlib.sha1(os.fsencode(dst.name)).hexdigest()[:12]
    return dst.with_name(f".omad-{tag}.tmp")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_file_synced(src: Path, dst: Path, *, rename: bool = True) -> Path:
    """Copy ``src`` beside ``dst`` under a temporary name, fsynced; renamed to ``dst`` unless ``rename`` is off.

    Returns the path written (``dst``, or the temporary name).
    """
    tmp = _tmp_name(dst)
    if src.is_symlink():  # a link is moved as a link: never copy what it points at
        tmp.unlink(missing_ok=True)
        os.symlink(os.readlink(src), tmp)
    elif src.exists() and not src.is_file():
        return dst  # a FIFO, socket or device is never opened: it is not data to keep
    else:
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1024 * 1024)
            fo.flush()
            os.fsync(fo.fileno())
        shutil.copystat(src, tmp)
    if not rename:
        return tmp
    os.replace(tmp, dst)
    return dst


def _copy_tree_synced(src: Path, dst: Path) -> None:
    tmp = _tmp_name(dst)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (tmp / rel).mkdir(parents=True, exist_ok=True)
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            _copy_file_synced(Path(root) / name, tmp / rel / name)
    os.replace(tmp, dst)


def _wrap_os_error(e: OSError, what: str, path: Path) -> TransientError:
    hint = "free some space" if e.errno == 28 else "check permissions and that the disk is mounted"
    return TransientError(f"could not {what} ({e.strerror}); {hint}. omad will try again.", file=path)


def safe_move(src: Path, dst: Path, *, copy_only: bool = False) -> None:
    """Move a file or folder; across file systems copy + fsync before removing the source."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not copy_only:
            try:
                os.replace(src, dst)
                fsync_dir(dst.parent)
                return
            except OSError as e:
                if e.errno != 18:  # EXDEV: another file system
                    raise
        if src.is_dir() and not src.is_symlink():
            _copy_tree_synced(src, dst)
        else:
            _copy_file_synced(src, dst)
        fsync_dir(dst.parent)
        if not copy_only:
            if src.is_dir() and not src.is_symlink():
                shutil.rmtree(src)
            else:
                src.unlink()
    except OSError as e:
        raise _wrap_os_error(e, f"move {src.name} to {dst.parent}", src) from e


def atomic_write_json(path: Path, record: Any) -> None:
    """``record`` as indented UTF-8 JSON, written atomically; any name inside it is made encodable first."""
    atomic_write_text(path, json.dumps(clean(record), indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` under a temporary name, fsync, rename: readers see all of it or none.

    The file gets ``mode`` (default: 0666 less the process's umask, like any file omad writes),
    not the 0600 of the temporary file, so a sidecar is as readable over a share as its video.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".omad-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _DEFAULT_MODE if mode is None else mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unique_path(path: Path, taken: Iterable[Path] = ()) -> Path:
    """``path`` if free, else ``name-2.ext``, ``name-3.ext``..."""
    taken = set(taken)
    if not path.exists() and path not in taken:
        return path
    stem, suffix = path.name.split(".", 1) if "." in path.name else (path.name, "")
    n = 2
    while True:
        cand = path.with_name(f"{stem}-{n}{'.' + suffix if suffix else ''}")
        if not cand.exists() and cand not in taken:
            return cand
        n += 1


class Outbox:
    def __init__(self, root: Path, on_conflict: str = "rename") -> None:
        self.root = root
        self.failed_dir = root / "failed"
        self.logs_dir = root / "logs"
        self.on_conflict = on_conflict

    def ensure(self) -> None:
        for d in (self.root, self.failed_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)

    def _stem_free(self, name: str, suffixes: list[str]) -> str:
        """A stem under which none of the result files (nor the sidecar) exists yet, short enough for every suffix."""
        name = fit_stem(display(name), SUFFIX_ROOM)
        if self.on_conflict == "replace":
            return name
        n = 1
        while True:
            stem = name if n == 1 else f"{name}-{n}"
            if not any((self.root / f"{stem}{s}").exists() for s in [*suffixes, ".json"]):
                return stem
            n += 1

    def choose_stem(self, name: str, suffixes: list[str]) -> str:
        """The stem a job will publish under (recorded by the caller, so a resumed publish keeps it)."""
        return self._stem_free(name, suffixes)

    def publish(
        self, name: str, files: dict[str, Path], record: dict[str, Any], *, stem: str | None = None
    ) -> dict[str, str]:
        """Publish result files (suffix -> path) and the sidecar, all or nothing; returns suffix -> outbox path.

        With ``stem`` (chosen earlier by :meth:`choose_stem`) publishing again after
        a crash rewrites the same names instead of adding ``-2`` copies.
        """
        self.ensure()
        stem = stem or self._stem_free(name, list(files))
        staged: list[tuple[Path, Path]] = []
        try:
            for suffix, src in files.items():
                dst = self.root / f"{stem}{suffix}"
                staged.append((_copy_file_synced(src, dst, rename=False), dst))
            record = dict(record)
            record["outputs"] = {s: f"{stem}{s}" for s in files}
            sidecar = self.root / f"{stem}.json"
            tmp = _tmp_name(sidecar)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps(clean(record), indent=2, ensure_ascii=False, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
            staged.append((tmp, sidecar))
        except OSError as e:
            for tmp, _dst in staged:
                tmp.unlink(missing_ok=True)
            _tmp_name(self.root / f"{stem}.json").unlink(missing_ok=True)
            raise _wrap_os_error(e, "publish to the outbox", self.root) from e
        # Renames within one folder: the sidecar comes last, so its presence means the whole set is there.
        done: list[Path] = []
        try:
            for tmp, dst in staged:
                os.replace(tmp, dst)
                done.append(dst)
        except OSError as e:
            for path in [*done, *(t for t, _d in staged)]:
                path.unlink(missing_ok=True)
            raise _wrap_os_error(e, "publish to the outbox", self.root) from e
        fsync_dir(self.root)
        return {s: str(self.root / f"{stem}{s}") for s in [*files, ".json"]}

    def fail(self, name: str, originals: list[Path], error_record: dict[str, Any]) -> Path:
        """Move originals to failed/<name>/ and write error.json there; returns the folder."""
        self.ensure()
        folder = unique_path(self.failed_dir / fit_stem(display(name), SUFFIX_ROOM))
        folder.mkdir(parents=True)
        for src in originals:
            if src.exists() or src.is_symlink():
                safe_move(src, folder / src.name)  # the original's exact name: nothing is renamed or lost
        atomic_write_json(folder / "error.json", error_record)
        return folder
