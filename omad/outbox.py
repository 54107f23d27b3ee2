"""The outbox and the safe file moves around it.

Results are copied under a temporary dot-name in the outbox and renamed into
place, so a half-written file never appears there. Each result gets a sidecar
``<name>.json``. Failed drops go to ``outbox/failed/<name>/`` with their
original inputs and an ``error.json``. Moves between file systems (an inbox on
a NAS, the state dir on local disk) copy, fsync, then remove: nothing the user
dropped is deleted before its copy is safe.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import TransientError

__all__ = ["Outbox", "safe_move", "atomic_write_text", "unique_path", "fsync_dir"]


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


def _copy_file_synced(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.omad-tmp")
    if src.is_symlink():  # a link is moved as a link: never copy what it points at
        tmp.unlink(missing_ok=True)
        os.symlink(os.readlink(src), tmp)
        os.replace(tmp, dst)
        return
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1024 * 1024)
        fo.flush()
        os.fsync(fo.fileno())
    shutil.copystat(src, tmp)
    os.replace(tmp, dst)


def _copy_tree_synced(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.omad-tmp")
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


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".omad-tmp", dir=path.parent)
    try:
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
        """A stem under which none of the result files (nor the sidecar) exists yet."""
        if self.on_conflict == "replace":
            return name
        n = 1
        while True:
            stem = name if n == 1 else f"{name}-{n}"
            if not any((self.root / f"{stem}{s}").exists() for s in [*suffixes, ".json"]):
                return stem
            n += 1

    def publish(self, name: str, files: dict[str, Path], record: dict[str, Any]) -> dict[str, str]:
        """Publish result files (suffix -> path) and the sidecar; returns suffix -> outbox path."""
        self.ensure()
        stem = self._stem_free(name, list(files))
        published: dict[str, str] = {}
        try:
            for suffix, src in files.items():
                dst = self.root / f"{stem}{suffix}"
                _copy_file_synced(src, dst)
                published[suffix] = str(dst)
            record = dict(record)
            record["outputs"] = {s: Path(p).name for s, p in published.items()}
            sidecar = self.root / f"{stem}.json"
            atomic_write_text(sidecar, json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")
            published[".json"] = str(sidecar)
            fsync_dir(self.root)
        except OSError as e:
            raise _wrap_os_error(e, "publish to the outbox", self.root) from e
        return published

    def fail(self, name: str, originals: list[Path], error_record: dict[str, Any]) -> Path:
        """Move originals to failed/<name>/ and write error.json there; returns the folder."""
        self.ensure()
        folder = unique_path(self.failed_dir / name)
        folder.mkdir(parents=True)
        for src in originals:
            if src.exists() or src.is_symlink():
                safe_move(src, folder / src.name)
        atomic_write_text(
            folder / "error.json", json.dumps(error_record, indent=2, ensure_ascii=False, default=str) + "\n"
        )
        return folder
