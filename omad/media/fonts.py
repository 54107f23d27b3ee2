"""Which characters the installed fonts can draw, so a caption never loses glyphs silently.

libass asks fontconfig for a fallback font when the caption font lacks a
character, so a glyph is lost only when *no* installed font has it. This
module finds those characters (and fonts an ASS style names that are not
installed) for the sidecar's warnings. It reads font files' character maps
with fontTools, once per process and only as many fonts as the text asks for; it never installs or downloads fonts.
"""

from __future__ import annotations

import shutil
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from ..procs import run_tool

__all__ = ["missing_characters", "font_substitute"]


def _font_listing() -> list[str] | None:
    """Every installed font file, as fontconfig lists them (sorted); None when fontconfig cannot be asked."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        ran = run_tool([fc_list, "--format=%{file}\n"], timeout=60)
    except OSError:
        return None
    if ran.returncode != 0 or ran.stopped_for:
        return None
    listing = ran.stdout.decode("utf-8", "surrogateescape")
    return sorted(set(listing.split("\n")) - {""})


def _font_cmap(path: str) -> set[int]:
    """The code points one font file (or every font of a collection) maps; empty for a file libass cannot use."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    covered: set[int] = set()
    try:
        with open(path, "rb") as fh:
            collection = path.lower().endswith((".ttc", ".otc"))
            fonts = TTCollection(fh).fonts if collection else [TTFont(fh)]
            for font in fonts:
                cmap = font.getBestCmap()
                if cmap:
                    covered.update(cmap)
    except (TTLibError, OSError, KeyError, AssertionError, ValueError):
        pass  # a Type 1 or broken font file: libass cannot use it either
    return covered


class _Coverage:
    """What the installed fonts cover, read once per process and only as far as the questions asked need.

    Reading every font's character map took ~0.2 CPU-s, once per process, though the first font or two already
    cover a typical caption: a character is looked for in the fonts not yet read only when none read so far has
    it, so the answer is the same as from a full scan (a character is missing when no installed font maps it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listed = False
        self._unread: list[str] | None = None  # None: fontconfig cannot be asked
        self._covered: set[int] = set()

    def missing(self, chars: Iterable[str]) -> list[str] | None:
        """Those of ``chars`` (in order) that no installed font maps; None when the fonts cannot be listed."""
        with self._lock:
            if not self._listed:
                self._unread = _font_listing()
                self._listed = True
            if self._unread is None:
                return None
            need = {ord(ch) for ch in chars} - self._covered
            while need and self._unread:
                self._covered.update(_font_cmap(self._unread.pop(0)))
                need -= self._covered
            return [ch for ch in chars if ord(ch) not in self._covered]


_COVERAGE = _Coverage()


def missing_characters(texts: Iterable[str]) -> list[str] | None:
    """Characters in ``texts`` that no installed font can draw (in order of appearance); None if unknown."""
    seen: dict[str, None] = {}
    for text in texts:
        for ch in text:
            if ch in seen or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Mn"):
                continue
            seen[ch] = None
    return _COVERAGE.missing(list(seen))


@lru_cache(maxsize=64)
def font_substitute(family: str) -> str | None:
    """The family fontconfig draws when ``family`` is asked for, if it is a different one; None if installed."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        ran = run_tool([fc_match, "--format=%{family}", family], timeout=30)
    except OSError:
        return None
    got = ran.stdout.decode("utf-8", "replace").strip()
    families = [f.strip().lower() for f in got.split(",")]
    return None if not got or family.strip().lower() in families else got.split(",")[0]
