"""`omad run` as systemd runs it: a real process, real signals, drops made while it works."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from cluster_kit import free_port
from conftest import Env, make_video, wait_for, write_srt

from omad.media.ffmpeg import probe

REPO = Path(__file__).resolve().parent.parent
OMAD = str(REPO / ".venv" / "bin" / "omad")


@contextmanager
def omad_run(env: Env, extra_env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([OMAD, "run", "--config", str(env.root / "omad.yaml")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(extra_env or {})})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def jobs(env: Env) -> list[dict[str, object]]:
    path = env.state / "journal.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT id, status, stage, attempts, progress FROM jobs "
                                            "ORDER BY created_at")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def loop_counts(port: int) -> tuple[float, float]:
    """A running daemon's main-loop ticks and inbox scans so far, from its /metrics."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.TransportError:  # not listening yet
        return 0.0, 0.0
    found = dict(re.findall(r"^(omad_loop_ticks_total|omad_inbox_scans_total) (\S+)$", text, re.M))
    return float(found.get("omad_loop_ticks_total", 0)), float(found.get("omad_inbox_scans_total", 0))


def wait_loop(port: int, ticks: int = 0, scans: int = 0) -> None:
    """Until the daemon has ticked ``ticks`` and scanned the inbox ``scans`` more times (its web side must answer)."""
    wait_for(lambda: loop_counts(port) != (0.0, 0.0), timeout=60)
    t0, s0 = loop_counts(port)
    wait_for(lambda: (lambda t, s: t >= t0 + ticks and s >= s0 + scans)(*loop_counts(port)), timeout=60)


def running_with_progress(env: Env) -> bool:
    """A job is running and its tool has reported progress: the work is really under way."""
    return any(j["status"] == "running" and float(j["progress"] or 0) > 0 for j in jobs(env))


def drop(env: Env, files: dict[str, Callable[[Path], object]]) -> None:
    staging = env.root / "staging"
    staging.mkdir(exist_ok=True)
    for name, make in files.items():
        make(staging / name)
    for name in files:
        (staging / name).rename(env.inbox / name)


def slow_env(make_env: Callable[..., Env], **extra: object) -> Env:
    """A caption job that takes a few seconds: a longer clip at a slow x264 preset."""
    return make_env(video={"x264_preset": "slow", "crf": 18}, **extra)


def test_a_drop_into_omad_run_becomes_output_and_sigterm_exits_0(env: Env) -> None:
    with omad_run(env) as proc:
        drop(env, {"talk.mp4": lambda p: make_video(p, seconds=1.0), "talk.srt": write_srt})
        wait_for(lambda: (env.outbox / "talk.json").exists(), timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert probe(env.outbox / "talk.mp4").video is not None
    assert json.loads((env.outbox / "talk.json").read_text())["route"] == "caption"


def test_sd_notify_ready_watchdog_and_stopping(env: Env, tmp_path: Path) -> None:
    """Under systemd (Type=notify, WatchdogSec=) omad says READY, pings the watchdog from its loop, says STOPPING."""
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.2)
    messages: list[str] = []

    def read_until(done: Callable[[], bool], timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            with suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())

    try:
        with omad_run(env, {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "400000"}) as proc:
            read_until(lambda: sum(m == "WATCHDOG=1" for m in messages) >= 3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            read_until(lambda: "STOPPING=1" in messages, timeout=10)
    finally:
        sock.close()
    assert any(m.startswith("READY=1") for m in messages)
    assert sum(m == "WATCHDOG=1" for m in messages) >= 3
    assert messages[-1] == "STOPPING=1" or "STOPPING=1" in messages


def test_syncthing_temp_renamed_at_the_end_is_processed_exactly_once(make_env: Callable[..., Env]) -> None:
    port = free_port()
    env = make_env(web={"enabled": True, "port": port})
    src = make_video(env.root / "src.mp4", seconds=1.0)
    write_srt(env.inbox / "sync.srt")
    with omad_run(env) as proc:
        tmp = env.inbox / ".syncthing.sync.mp4.tmp"
        data = src.read_bytes()
        with open(tmp, "wb") as f:  # written in two halves, the daemon's loop running in between
            f.write(data[: len(data) // 2])
            f.flush()
            wait_loop(port, ticks=1)
            f.write(data[len(data) // 2 :])
        wait_loop(port, ticks=3, scans=1)  # the temp file was seen (watched and rescanned) and left alone
        assert jobs(env) == []
        tmp.rename(env.inbox / "sync.mp4")
        wait_for(lambda: (env.outbox / "sync.json").exists(), timeout=60)
        wait_loop(port, ticks=3, scans=2)  # a second look (rescan) must not make a second job
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert [j["status"] for j in jobs(env)] == ["done"]
    assert sorted(p.name for p in env.outbox.glob("sync*")) == ["sync.json", "sync.mp4"]


def test_kill_9_mid_job_then_restart_gives_exactly_one_complete_output(make_env: Callable[..., Env]) -> None:
    """GIVEN omad run busy burning captions WHEN it is killed with SIGKILL and started again
    THEN exactly one output appears, never a partial file under its real name, and the input is kept."""
    env = slow_env(make_env)
    seen_sizes: list[int] = []
    with omad_run(env) as proc:
        drop(env, {"long.mp4": lambda p: make_video(p, seconds=12.0, size="640x360"), "long.srt": write_srt})
        wait_for(lambda: running_with_progress(env), timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (env.outbox / "long.mp4").exists()
    assert list(env.inbox.iterdir()) == []  # claimed into the journaled work dir, not lost
    def published() -> bool:  # and every size the result had under its name on the way
        out = env.outbox / "long.mp4"
        if out.exists():
            seen_sizes.append(out.stat().st_size)
        return (env.outbox / "long.json").exists()

    with omad_run(env) as proc:
        wait_for(published, 120, every=0.05, what="long.json published")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    final = (env.outbox / "long.mp4").stat().st_size
    assert all(size == final for size in seen_sizes), "a partial file was visible under the result's name"
    assert sorted(p.name for p in env.outbox.iterdir() if p.is_file()) == ["long.json", "long.mp4"]
    assert [j["status"] for j in jobs(env)] == ["done"]
    assert probe(env.outbox / "long.mp4").duration == pytest.approx(12.0, abs=0.2)


def test_sigterm_mid_job_exits_cleanly_and_the_job_resumes(make_env: Callable[..., Env]) -> None:
    env = slow_env(make_env, jobs={"shutdown_grace_seconds": 0.2})
    with omad_run(env) as proc:
        drop(env, {"t.mp4": lambda p: make_video(p, seconds=12.0, size="640x360"), "t.srt": write_srt})
        wait_for(lambda: running_with_progress(env), timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert [(j["status"], j["attempts"]) for j in jobs(env)] == [("queued", 0)]
    with omad_run(env) as proc:
        wait_for(lambda: (env.outbox / "t.json").exists(), timeout=120)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert json.loads((env.outbox / "t.json").read_text())["attempts"] == 1


def test_symlinks_are_never_followed(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "secret.srt"
    secret.write_text("1\n00:00:00,000 --> 00:00:01,000\nsegredo\n")
    make_video(env.inbox / "link.mp4", seconds=0.5)
    (env.inbox / "link.srt").symlink_to(secret)
    assert env.once() == 1
    err = env.failed_error("link")
    assert "symbolic link" in err["message"]
    assert (env.outbox / "failed" / "link" / "link.srt").is_symlink()
    assert secret.read_text().endswith("segredo\n")  # untouched where it was


def test_truncated_video_fails_with_a_clear_message(env: Env) -> None:
    src = make_video(env.root / "full.mp4", seconds=2.0)
    data = src.read_bytes()
    (env.inbox / "cut.mp4").write_bytes(data[: len(data) // 3])
    write_srt(env.inbox / "cut.srt")
    assert env.once() == 1
    err = env.failed_error("cut")
    assert err["message"].startswith("cut.mp4: ") and err["error"]["kind"] == "input"


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _exposure(unit: Path) -> float:
    out = subprocess.run([str(SYSTEMD_ANALYZE), "security", "--offline=yes", "--no-pager", str(unit)],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    assert found, f"no exposure level in systemd-analyze's output:\n{out.stdout}\n{out.stderr}"
    # A misspelt directive or system call group is only warned about, and silently not applied.
    ignored = [line for line in out.stderr.splitlines() if "ignoring" in line.lower()]
    assert not ignored, f"systemd ignores part of {unit.name}: {ignored}"
    return float(found.group(1))


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_unit_is_hardened_to_2_5_or_below_with_and_without_the_gpu_drop_in(tmp_path: Path) -> None:
    """GIVEN the shipped unit, alone and with the NVIDIA drop-in applied
    THEN systemd's own security analysis rates both 2.5 or below (it rated 7.6 "EXPOSED" before),
    and the drop-in re-allows the NVIDIA device nodes and nothing else."""
    unit = REPO / "systemd" / "omad.service"
    assert _exposure(unit) <= 2.5
    dropin = (REPO / "systemd" / "omad.service.d" / "nvidia.conf").read_text()
    lines = [x for x in dropin.splitlines() if x and not x.startswith("#") and x != "[Service]"]
    assert "PrivateDevices=no" in lines and "DevicePolicy=closed" in lines
    allowed = [x.split("=", 1)[1].split()[0] for x in lines if x.startswith("DeviceAllow=")]
    assert allowed and all("nvidia" in a for a in allowed)
    # A drop-in's assignments come after the unit's: appending them to [Service] is what systemd reads.
    merged = tmp_path / "omad.service"
    merged.write_text(unit.read_text().replace("[Install]", "\n".join(lines) + "\n\n[Install]"))
    assert _exposure(merged) <= 2.5


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_worker_unit_is_hardened_like_the_daemons_and_runs_omad_worker() -> None:
    unit = REPO / "systemd" / "omad-worker.service"
    assert _exposure(unit) <= 2.5
    text = unit.read_text()
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert start.split()[1:3] == ["worker", "--queues"]
    from omad.cli import build_parser

    build_parser().parse_args(start.split("=", 1)[1].split()[1:])  # the options it uses exist


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_both_units_limit_resources_deny_metadata_and_load_keys_as_credentials(tmp_path: Path) -> None:
    """GIVEN both units (the daemon's with its celery drop-in) THEN each sets LimitNOFILE, TasksMax and MemoryMax,
    denies link-local addresses (the cloud metadata service), loads the signing key and the Redis password as
    credentials, and still rates 2.5 or below."""
    daemon = (REPO / "systemd" / "omad.service").read_text()
    dropin = (REPO / "systemd" / "omad.service.d" / "celery.conf").read_text()
    lines = [x for x in dropin.splitlines() if x and not x.startswith("#") and x != "[Service]"]
    merged = tmp_path / "omad.service"
    merged.write_text(daemon.replace("[Install]", "\n".join(lines) + "\n\n[Install]"))
    worker = REPO / "systemd" / "omad-worker.service"
    for unit in (merged, worker):
        text = unit.read_text()
        for directive in ("LimitNOFILE=", "TasksMax=", "MemoryMax=", "LoadCredential=omad-signing-key:",
                          "LoadCredential=omad-redis-password:"):
            assert f"\n{directive}" in text, (unit.name, directive)
        deny = next(line for line in text.splitlines() if line.startswith("IPAddressDeny="))
        assert "169.254.0.0/16" in deny and "fe80::/10" in deny
        assert "OMAD_SIGNING_KEY" not in text
        assert _exposure(unit) <= 2.5


def test_the_credentials_are_what_omad_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from omad.config import Config
    from omad.trust import signing_key

    (tmp_path / "omad-signing-key").write_text("k" * 43 + "\n")
    (tmp_path / "omad-redis-password").write_text("p@ss/word\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.delenv("OMAD_SIGNING_KEY", raising=False)
    monkeypatch.delenv("OMAD_BROKER_URL", raising=False)
    cfg = Config.model_validate({"executor": {"broker_url": "rediss://omad@nas:6380/0"}})
    assert cfg.executor.broker() == "rediss://omad:p%40ss%2Fword@nas:6380/0"
    assert signing_key(cfg) == b"k" * 43
    given = Config.model_validate({"executor": {"broker_url": "redis://:own@nas/0"}})
    assert given.executor.broker() == "redis://:own@nas/0"  # a URL with its own password keeps it
