"""ffmpeg's version line is asked once per ffmpeg binary and remembered across processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from omad.media import ffmpeg as ffmpeg_mod
from omad.media import tool_version


def _fake_ffmpeg(path: Path, version: str, calls: Path) -> None:
    path.write_text(f"#!/bin/sh\necho run >> '{calls}'\n"
                    f"echo 'ffmpeg version {version} Copyright (c) 2000-2026 the FFmpeg developers'\n")
    path.chmod(0o755)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    exe, calls = tmp_path / "bin" / "ffmpeg", tmp_path / "calls.txt"
    exe.parent.mkdir()
    _fake_ffmpeg(exe, "9.9-test", calls)
    monkeypatch.setattr(ffmpeg_mod, "FFMPEG", str(exe))
    monkeypatch.setattr(tool_version, "FFMPEG", str(exe))
    _new_process()
    yield exe, calls
    _new_process()  # the real ffmpeg's answer for the tests after this one


def _new_process() -> None:
    ffmpeg_mod.ffmpeg_version.cache_clear()
    tool_version.ffmpeg_version_cached.cache_clear()


def _runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_the_version_is_asked_once_per_binary(fake: tuple[Path, Path], tmp_path: Path) -> None:
    """GIVEN an ffmpeg asked once for its version
    THEN a later process reads the remembered line without starting ffmpeg,
    and a replaced binary is asked again."""
    exe, calls = fake
    cache = tmp_path / "state" / "cache"
    assert tool_version.ffmpeg_version_cached(cache) == "9.9-test"
    assert _runs(calls) == 1
    assert json.loads((cache / tool_version.CACHE_NAME).read_text())["version"] == "9.9-test"
    _new_process()
    assert tool_version.ffmpeg_version_cached(cache) == "9.9-test"
    assert _runs(calls) == 1
    _fake_ffmpeg(exe, "10.0-upgraded", calls)  # an upgrade: another size, mtime and ctime
    _new_process()
    assert tool_version.ffmpeg_version_cached(cache) == "10.0-upgraded"
    assert _runs(calls) == 2


def test_a_damaged_cache_file_is_asked_again_and_rewritten(fake: tuple[Path, Path], tmp_path: Path) -> None:
    """GIVEN a cache file that is not the JSON omad writes
    THEN ffmpeg is asked and the file is written again."""
    _exe, calls = fake
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / tool_version.CACHE_NAME).write_text("{not json")
    assert tool_version.ffmpeg_version_cached(cache) == "9.9-test"
    assert _runs(calls) == 1
    assert json.loads((cache / tool_version.CACHE_NAME).read_text())["version"] == "9.9-test"


def test_a_missing_ffmpeg_is_unknown_and_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN no ffmpeg at the configured name
    THEN the version is 'unknown', as before, and nothing is written."""
    monkeypatch.setattr(ffmpeg_mod, "FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    monkeypatch.setattr(tool_version, "FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    _new_process()
    try:
        assert tool_version.ffmpeg_version_cached(tmp_path / "cache") == "unknown"
        assert not (tmp_path / "cache").exists()
    finally:
        monkeypatch.undo()
        _new_process()
