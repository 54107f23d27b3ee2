"""Which characters the installed fonts can draw, so a caption never loses glyphs silently.

libass asks fontconfig for a fallback font when the caption font lacks a
character, so a glyph is lost only when *no* installed font has it. This
module finds those characters (and fonts an ASS style names that are not
installed) for the sidecar's warnings. It reads font files' character maps
with fontTools, once per process; it never installs or downloads fonts.
"""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from ..procs import run_tool

__all__ = ["missing_characters", "font_substitute"]


@lru_cache(maxsize=1)
def _installed_coverage() -> frozenset[int] | None:
    """Every code point some installed font maps; None when fontconfig cannot be asked."""
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
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    covered: set[int] = set()
    for path in sorted(set(listing.split("\n")) - {""}):
        try:
            with open(path, "rb") as fh:
                collection = path.lower().endswith((".ttc", ".otc"))
                fonts = TTCollection(fh).fonts if collection else [TTFont(fh)]
                for font in fonts:
                    cmap = font.getBestCmap()
                    if cmap:
                        covered.update(cmap)
        except (TTLibError, OSError, KeyError, AssertionError, ValueError):
            continue  # a Type 1 or broken font file: libass cannot use it either
    return frozenset(covered)


def missing_characters(texts: Iterable[str]) -> list[str] | None:
    """Characters in ``texts`` that no installed font can draw (in order of appearance); None if unknown."""
    covered = _installed_coverage()
    if covered is None:
        return None
    seen: dict[str, None] = {}
    for text in texts:
        for ch in text:
            if ch in seen or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Mn"):
                continue
            if ord(ch) not in covered:
                seen[ch] = None
    return list(seen)


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
