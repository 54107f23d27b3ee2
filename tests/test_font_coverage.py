"""The caption font check reads the installed fonts lazily and still gives the full scan's answer."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from omad.media import fonts

pytestmark = pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig is not installed")

TEXTS = ["Legenda número 1, ação e coração!", "Ωμέγα Привет ☃ ∑ ﬁ", "中文 \U00013000 \U00010900 \u16a0 \ua66e"]


def _full_scan() -> set[int]:
    listing = fonts._font_listing()
    assert listing
    covered: set[int] = set()
    for path in listing:
        covered |= fonts._font_cmap(path)
    return covered


def test_the_lazy_answer_is_the_full_scans() -> None:
    """GIVEN texts with Latin, Greek, Cyrillic, symbols and characters few or no fonts have
    THEN the characters found missing are exactly those no installed font maps, in order of appearance."""
    covered = _full_scan()
    expected: list[str] = []
    for ch in "".join(TEXTS):
        if not ch.isspace() and ch not in expected and ord(ch) not in covered:
            expected.append(ch)
    assert fonts._Coverage().missing([ch for ch in dict.fromkeys("".join(TEXTS)) if not ch.isspace()]) == expected
    assert fonts.missing_characters(TEXTS) == expected


def test_a_character_fontconfig_has_no_font_for_is_missing() -> None:
    """GIVEN a character fontconfig itself finds no font for (asked directly, not through omad)
    THEN it is named missing, and a character some font has is not."""
    for ch in ("\U00013000", "\U00010900", "\u16a0", "\ua66e"):
        found = subprocess.run(["fc-list", f":charset={ord(ch):x}", "family"], capture_output=True, text=True)
        if found.returncode == 0 and not found.stdout.strip():
            break
    else:
        pytest.skip("every candidate character is covered by an installed font on this machine")
    assert fonts._Coverage().missing(["a", ch]) == [ch]


def test_fonts_are_read_only_until_the_characters_are_found() -> None:
    """GIVEN plain ASCII text, which the first font read already covers
    THEN the other fonts are left unread until a character they might have is asked for."""
    listing = fonts._font_listing()
    assert listing
    first = fonts._font_cmap(listing[0])
    if not {ord(c) for c in "abc"} <= first or len(listing) < 2:
        pytest.skip("the first installed font does not cover ASCII, or only one font is installed")
    coverage = fonts._Coverage()
    assert coverage.missing(list("abc")) == []
    assert coverage._unread is not None and len(coverage._unread) == len(listing) - 1
    coverage.missing(["\U00013000"])
    assert coverage._unread == [] or ord("\U00013000") in coverage._covered
