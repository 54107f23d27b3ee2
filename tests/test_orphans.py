"""No orphans: every tool omad starts dies with it, and a tool that ignores SIGTERM still stops.

GIVEN a tool that ignores SIGTERM and never writes (like ffmpeg busy inside
libass, which no broken pipe would stop), WHEN `omad run` or `omad once` is
stopped by SIGTERM or killed by SIGKILL mid-stage, or the stage times out,
THEN no child of omad is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from conftest import Env, make_video, wait_for, write_srt

from omad.errors import ToolTimeout
from omad.media.ffmpeg import run_ffmpeg

REPO = Path(__file__).resolve().parent.parent
OMAD = str(REPO / ".venv" / "bin" / "omad")


def deaf_tool(folder: Path, name: str) -> Path:
    """A stand-in for a stuck ffmpeg/espeak-ng: ignores SIGTERM and SIGPIPE, writes nothing, runs 5 minutes."""
    script = folder / name
    script.write_text(f"#!/bin/bash\ntrap '' TERM PIPE\nexec -a {script}-running sleep 300\n")
    script.chmod(0o755)
    return script


def running(script: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(f"{script}-running" in part for part in p.info["cmdline"] or []):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _caption(env: Env) -> None:
    make_video(env.inbox / "a.mp4", seconds=1.0, size="160x90")
    write_srt(env.inbox / "a.srt")


def _narrate(env: Env) -> None:
    (env.inbox / "a.txt").write_text("Olá, mundo.")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "once"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("tool,drop", [("OMAD_FFMPEG", _caption), ("OMAD_ESPEAK", _narrate)])
def test_no_child_outlives_omad(
    make_env: Callable[..., Env], command: str, sig: signal.Signals, tool: str, drop: Callable[[Env], None]
) -> None:
    env = make_env(jobs={"shutdown_grace_seconds": 0.5})
    script = deaf_tool(env.root, f"deaf-{tool.lower()}")
    drop(env)
    proc = subprocess.Popen([OMAD, command, "--config", str(env.root / "omad.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, tool: str(script)})
    try:
        wait_for(lambda: bool(running(script)), timeout=60)
        proc.send_signal(sig)
        proc.wait(timeout=30)  # bounds a hang only: omad exits although the tool ignores SIGTERM
        if sig == signal.SIGTERM:
            # grace 0.5 s, then SIGTERM to the tool, which ignores it, then SIGKILL 3 s later
            assert proc.returncode in (0, 1)
        wait_for(lambda: not running(script), timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in running(script):
            p.kill()


def test_a_tool_past_its_timeout_gets_sigterm_then_sigkill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = deaf_tool(tmp_path, "deaf-ffmpeg")
    monkeypatch.setattr("omad.media.ffmpeg.FFMPEG", str(script))
    started = time.monotonic()
    with pytest.raises(ToolTimeout, match="stage timeout"):
        run_ffmpeg(["-i", "x"], timeout=1.0)
    took = time.monotonic() - started
    # 1 s timeout, then 3 s of SIGTERM grace that the deaf tool ignores, then SIGKILL: it cannot end sooner.
    # (Only the lower bound is a fact about omad; the upper one just says it did not wait for the tool.)
    assert 3.0 < took < 60.0
    assert not running(script)
