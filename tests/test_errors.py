"""Errors from other tools are translated at the boundary; none escapes unmapped."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import omad
import omad.errors as errors
from omad.errors import InputError, OmadError, StageFailed, ToolMissing, ToolTimeout, TransientError
from omad.media import ffmpeg as ff


def test_every_error_class_is_drawn_in_the_tree() -> None:
    doc = errors.__doc__ or ""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, OmadError)]
    for cls in classes:
        assert cls.__name__ in doc, f"{cls.__name__} missing from the tree in omad/errors.py"
    assert set(errors.__all__) == {c.__name__ for c in classes}


def test_error_carries_structure_and_file_prefix() -> None:
    e = InputError("line 3 is wrong.", file="inbox/a.srt", stage="caption", details={"line": 3})
    assert str(e) == "inbox/a.srt: line 3 is wrong."
    d = e.to_dict()
    assert d["kind"] == "input" and d["retryable"] is False and d["details"] == {"line": 3}
    assert TransientError("x").retryable and ToolTimeout("x").retryable


def test_public_all_is_complete() -> None:
    """Every name in a module's __all__ exists, and the package re-exports the error tree."""
    for info in pkgutil.walk_packages(omad.__path__, "omad."):
        if info.name in ("omad.tts.f5",):
            continue
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", []):
            assert hasattr(mod, name), f"{info.name}.__all__ names missing {name}"
    for name in errors.__all__:
        assert name in omad.__all__


@pytest.mark.parametrize(
    "args,timeout,expected,fragment",
    [
        (["-re", "-f", "lavfi", "-i", "testsrc2=d=30", "-f", "null", "-"], 0.5, ToolTimeout, "timeout"),
        (["-f", "mp4", "-i", "{corrupt}", "-f", "null", "-"], 30, InputError, "could not read"),
        (["-f", "lavfi", "-i", "testsrc2=d=1", "-vf", "nosuchfilter", "-f", "null", "-"], 30, StageFailed,
         "ffmpeg failed"),
    ],
)
def test_ffmpeg_failures_map_to_omad_errors(args: list[str], timeout: float, expected: type[OmadError],
                                            fragment: str, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 500)
    args = [a.replace("{corrupt}", str(corrupt)) for a in args]
    with pytest.raises(expected) as exc:
        ff.run_ffmpeg(args, timeout=timeout, file_label="x.mp4")
    assert fragment in str(exc.value)
    assert exc.value.details.get("argv") or isinstance(exc.value, InputError)


def fake_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Stand in for ffmpeg with a shell script, to produce failures real ffmpeg only shows on a sick machine."""
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    monkeypatch.setattr(ff, "FFMPEG", str(fake))
    monkeypatch.setattr(ff, "require_tools", lambda: None)


def test_ffmpeg_killed_by_a_signal_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ffmpeg(tmp_path, monkeypatch, "kill -9 $$\n")
    with pytest.raises(TransientError, match="killed by signal 9"):
        ff.run_ffmpeg(["-version"], timeout=10)


def test_disk_full_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ffmpeg(tmp_path, monkeypatch, "echo 'Error writing trailer: No space left on device' >&2\nexit 1\n")
    with pytest.raises(TransientError, match="disk is full"):
        ff.run_ffmpeg(["x"], timeout=10)


def test_missing_ffmpeg_is_tool_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissing, match="apt-get install ffmpeg"):
        ff.run_ffmpeg(["-version"], timeout=10)


def test_probe_refuses_non_media_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "nota.mp4"
    p.write_text("not media")
    with pytest.raises(InputError) as exc:
        ff.probe(p, file_label="inbox/nota.mp4")
    assert str(exc.value).startswith("inbox/nota.mp4: ")


def test_hls_playlist_named_mp4_cannot_reach_other_files(tmp_path: Path) -> None:
    """An HLS playlist disguised as .mp4 must not make ffmpeg open URLs (protocol whitelist)."""
    p = tmp_path / "evil.mp4"
    p.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n")
    with pytest.raises(InputError):
        info = ff.probe(p)
        if info.format_name not in ff.VIDEO_DEMUXERS:
            raise InputError("refused demuxer", file=p.name)


def test_library_log_lines_go_through_omads_json_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GIVEN omad's logging WHEN ollama or httpx log through the standard library THEN the lines are JSON."""
    import json
    import logging

    from omad.log import configure_logging

    configure_logging(tmp_path / "logs", "info")
    logging.getLogger("httpx").warning("connection pool full")
    logging.getLogger("ollama").error("could not reach %s", "127.0.0.1:9")
    logging.getLogger("httpx").info("HTTP Request: POST /api/chat")  # below httpx's WARNING: not logged
    lines = [json.loads(line) for p in (tmp_path / "logs").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert {(r["logger"], r["event"], r["level"]) for r in lines} == {
        ("httpx", "connection pool full", "warning"), ("ollama", "could not reach 127.0.0.1:9", "error")}
    err = capsys.readouterr().err
    assert all(json.loads(line) for line in err.strip().splitlines())
