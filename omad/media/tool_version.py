"""ffmpeg's version line, remembered across processes while the ffmpeg binary is the same file.

Every sidecar records ``ffmpeg -version``'s first line. Asking costs an ffmpeg
process start (~40-50 ms of CPU: dynamic linking of ~80 shared libraries), once
per omad process, which is ~1 % of a ten-job caption batch through ``omad once``.
The answer is kept in ``<state>/cache/ffmpeg-version.json`` keyed by the binary's
resolved path and its file identity (device, inode, size, mtime, ctime), so an
upgraded or replaced ffmpeg is asked again. A wrapper script that picks another
binary at run time is the one case the key cannot see: delete the file (or set
``OMAD_FFMPEG`` to the real binary) after changing what such a wrapper runs.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import lru_cache
from pathlib import Path

from .ffmpeg import FFMPEG, ffmpeg_version

__all__ = ["ffmpeg_version_cached", "CACHE_NAME"]

#: The file under a cache folder that holds the remembered version line.
CACHE_NAME = "ffmpeg-version.json"


def _identity() -> str | None:
    """The resolved ffmpeg binary and its file identity; None when it cannot be found."""
    exe = shutil.which(FFMPEG)
    if exe is None:
        return None
    real = os.path.realpath(exe)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"


@lru_cache(maxsize=8)
def ffmpeg_version_cached(cache_dir: Path) -> str:
    """:func:`ffmpeg_version`, read from ``cache_dir`` when the same ffmpeg answered before (once per process)."""
    key = _identity()
    if key is None:
        return ffmpeg_version()
    path = cache_dir / CACHE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("binary") == key and isinstance(data.get("version"), str):
            return str(data["version"])
    except (OSError, ValueError):
        pass  # none yet, or unreadable: ask ffmpeg
    version = ffmpeg_version()
    if version != "unknown":
        tmp = path.with_name(f".{CACHE_NAME}.{os.getpid()}.tmp")
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"binary": key, "version": version}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a read-only state folder: ask again next time
    return version
