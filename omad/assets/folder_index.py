"""What the picture library and the music index share: an SQLite file of one
table, dropped and made again when its schema version changes, and a walk of
the user's folders that never follows a link out of them."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["open_index", "walk_folder"]


def open_index(path: Path, table: str, create_sql: str, schema: int, *,
               check_same_thread: bool = True) -> sqlite3.Connection:
    """The index at ``path`` (made if missing), its ``table`` emptied when it was written by another schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=30.0, check_same_thread=check_same_thread)
    db.execute("PRAGMA journal_mode=WAL")
    if db.execute("PRAGMA user_version").fetchone()[0] != schema:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"PRAGMA user_version={schema}")
    db.execute(create_sql)
    db.commit()
    return db


def walk_folder(root: Path, suffixes: frozenset[str] | set[str]) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under ``root`` with one of ``suffixes``, in a stable order.

    Hidden files and folders are skipped; symlinks are not followed (they could lead out of the folder) and
    FIFOs are never opened.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith(".") or p.suffix.lower() not in suffixes:
                continue
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield p, st
