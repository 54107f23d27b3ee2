"""The daemon's promises: nothing dropped is lost, half-copied files wait, failures say what to do."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Env, Running, make_video, wait_for, wait_ticks, write_srt

import omad.claim as claim_mod
import omad.runner as runner_mod
from omad.cli import main as cli_main
from omad.config import ENV_FALLBACK, Config, ConfigError, dump_config_yaml, from_env, load_config
from omad.daemon import Daemon
from omad.errors import TransientError
from omad.journal import JobStatus
from omad.stage import Stage, StageContext, StageResult

REPO = Path(__file__).resolve().parent.parent


def statuses(d: Daemon) -> list[str]:
    return [j.status.value for j in d.journal.jobs()]


def test_route_folder_forces_the_route(env: Env) -> None:
    make_video(env.inbox / "caption" / "a.mp4", seconds=1.0)
    write_srt(env.inbox / "caption" / "a.srt")
    assert env.once() == 0
    assert env.sidecar("a")["route"] == "caption"


def test_unknown_type_is_quarantined_listing_what_omad_accepts(env: Env) -> None:
    (env.inbox / "planilha.xlsx").write_bytes(b"PK\x03\x04 not really")
    assert env.once() == 1
    err = env.failed_error("planilha.xlsx")
    assert err["message"].startswith("planilha.xlsx: ")
    assert ".srt" in err["message"] and "brief" in err["message"]
    assert (env.outbox / "failed" / "planilha.xlsx" / "planilha.xlsx").read_bytes() == b"PK\x03\x04 not really"


def test_lone_half_waits_in_once_and_is_listed(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    write_srt(env.inbox / "sozinho.srt")
    assert env.once(max_wait=5) == 0
    assert (env.inbox / "sozinho.srt").exists()
    assert "waiting: sozinho.srt" in capsys.readouterr().err


def test_lone_half_is_quarantined_after_pair_timeout_naming_the_partner(make_env: Callable[..., Env]) -> None:
    env = make_env(intake={"pair_timeout_seconds": 1.0})
    write_srt(env.inbox / "talk.srt")
    with Running(env.daemon()) as r:
        d = r.d
        wait_for(lambda: statuses(d) == ["failed"], timeout=20)
    err = env.failed_error("talk")
    assert "talk.srt" in err["message"] and "same-name video" in err["message"]
    assert (env.outbox / "failed" / "talk" / "talk.srt").exists()


def test_redrop_of_same_content_is_a_duplicate(env: Env) -> None:
    make_video(env.inbox / "v.mp4", seconds=1.0)
    write_srt(env.inbox / "v.srt")
    assert env.once() == 0
    first = json.loads((env.outbox / "v.json").read_text())["job_id"]
    src = next((env.state / "archive").rglob("v.mp4"))
    (env.inbox / "v.mp4").write_bytes(src.read_bytes())
    write_srt(env.inbox / "v.srt")
    assert env.once() == 0
    d = env.daemon()
    jobs = d.journal.jobs()
    dup = [j for j in jobs if j.status == JobStatus.DUPLICATE]
    assert len(dup) == 1 and dup[0].duplicate_of == first
    assert not (env.outbox / "v-2.mp4").exists()
    assert list(env.inbox.iterdir()) == []  # consumed, archived, not lost
    assert len(list((env.state / "archive").rglob("v.srt"))) == 2


def test_reprocess_policy_runs_again_and_keeps_both_results(make_env: Callable[..., Env]) -> None:
    env = make_env(intake={"on_duplicate": "reprocess"})
    make_video(env.inbox / "v.mp4", seconds=1.0)
    write_srt(env.inbox / "v.srt")
    assert env.once() == 0
    src = next((env.state / "archive").rglob("v.mp4"))
    (env.inbox / "v.mp4").write_bytes(src.read_bytes())
    write_srt(env.inbox / "v.srt")
    assert env.once() == 0
    assert (env.outbox / "v.mp4").exists() and (env.outbox / "v-2.mp4").exists()


def test_growing_file_and_temp_names_are_not_picked_up(make_env: Callable[..., Env]) -> None:
    """GIVEN a video still being written, and Syncthing/rsync/browser temp files
    THEN nothing is taken until the copy is complete and renamed."""
    env = make_env(watch={"settle_seconds": 1.0})
    write_srt(env.inbox / "big.srt")
    for tmp in (".syncthing.big.mp4.tmp", "big.mp4.part", "~syncthing~big.mp4.tmp", ".big.mp4.Ab12Cd"):
        (env.inbox / tmp).write_bytes(b"partial")
    src = make_video(env.root / "source.mp4", seconds=1.0)
    data = src.read_bytes()
    target = env.inbox / "big.mp4"
    step = max(4096, len(data) // 12)

    with Running(env.daemon()) as r:
        d = r.d
        with open(target, "wb") as f:  # a slow copy: the daemon's loop runs between any two writes
            for i in range(0, len(data), step):
                f.write(data[i : i + step])
                f.flush()
                wait_ticks(d, 1)
                assert d.journal.jobs() == [], "a job started while the video was still being copied"
        wait_for(lambda: statuses(d) == ["done"], timeout=30)
    assert (env.outbox / "big.mp4").exists()
    left = sorted(p.name for p in env.inbox.iterdir())
    assert left == sorted([".syncthing.big.mp4.tmp", "big.mp4.part", "~syncthing~big.mp4.tmp", ".big.mp4.Ab12Cd"])


def test_locked_file_waits_until_released(env: Env) -> None:
    make_video(env.inbox / "l.mp4", seconds=1.0)
    srt = write_srt(env.inbox / "l.srt")
    f = open(srt, "rb")  # noqa: SIM115 - held across the daemon's ticks
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    try:
        with Running(env.daemon()) as r:
            d = r.d
            wait_for(lambda: any(w["file"] == "l.srt" and "locked" in w["reason"] for w in d.inbox_view["waiting"]))
            wait_ticks(d, 3)  # settled, seen locked, and still not taken
            assert d.journal.jobs() == []
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            wait_for(lambda: statuses(d) == ["done"], timeout=30)
    finally:
        f.close()


def test_missing_inbox_is_waited_for_not_a_crash(make_env: Callable[..., Env]) -> None:
    """An unmounted share: the daemon keeps running, then picks files up once the inbox is back."""
    env = make_env()
    env.inbox.rmdir()
    with Running(env.daemon()) as r:
        d = r.d
        wait_ticks(d, 1)  # the first tick's scan finds no inbox
        assert not d.inbox_ok
        staging = env.root / "staging"
        make_video(staging / "m.mp4", seconds=1.0)
        write_srt(staging / "m.srt")
        staging.rename(env.inbox)
        wait_for(lambda: statuses(d) == ["done"], timeout=30)
        assert d.inbox_ok
    log = "".join(p.read_text() for p in (env.outbox / "logs").glob("*.jsonl"))
    assert "inbox_unavailable" in log


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_watch_modes_pick_up_new_drops(make_env: Callable[..., Env], mode: str) -> None:
    env = make_env(watch={"mode": mode, "rescan_seconds": 3600})
    with Running(env.daemon()) as r:
        d = r.d
        wait_ticks(d, 1)  # the tick started the observer (its watch or first snapshot is taken in start())
        assert d.watcher.watching
        staging = env.root / "s"
        make_video(staging / "w.mp4", seconds=1.0)
        write_srt(staging / "w.srt")
        for p in staging.iterdir():
            p.rename(env.inbox / p.name)
        wait_for(lambda: statuses(d) == ["done"], timeout=30)


def test_keep_policy_leaves_inputs_and_does_not_reprocess(make_env: Callable[..., Env]) -> None:
    env = make_env(intake={"inputs_after": "keep"})
    make_video(env.inbox / "k.mp4", seconds=1.0)
    write_srt(env.inbox / "k.srt")
    assert env.once() == 0
    assert (env.inbox / "k.mp4").exists() and (env.inbox / "k.srt").exists()
    assert env.once() == 0
    d = env.daemon()
    assert [j.status for j in d.journal.jobs()] == [JobStatus.DONE]


class _Flaky(Stage):
    """A stage that fails transiently a set number of times (a killed tool, a full disk)."""

    name = "flaky"

    def __init__(self, failures: int, log: Path) -> None:
        self.failures = failures
        self.log = log

    def run(self, ctx: StageContext) -> StageResult:
        n = len(self.log.read_text().splitlines()) if self.log.exists() else 0
        with open(self.log, "a") as f:
            f.write("run\n")
        if n < self.failures:
            raise TransientError("the disk is full; free some space.", file=ctx.label("srt"))
        out = ctx.work / "out.txt"
        out.write_text("ok")
        return StageResult(artifacts={"out": "out.txt"}, publish={".txt": "out"})


def test_transient_failure_is_retried_with_backoff(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = env.root / "runs.log"
    monkeypatch.setattr(runner_mod, "stages_for", lambda route: [_Flaky(2, runs)])
    make_video(env.inbox / "r.mp4", seconds=0.5, audio=False)
    write_srt(env.inbox / "r.srt")
    assert env.once() == 0
    assert runs.read_text().count("run") == 3
    side = env.sidecar("r")
    assert side["attempts"] == 3
    assert len(side["errors"]) == 2 and side["errors"][0]["kind"] == "transient"


def test_transient_failure_gives_up_after_max_attempts(make_env: Callable[..., Env],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(jobs={"max_attempts": 2})
    runs = env.root / "runs.log"
    monkeypatch.setattr(runner_mod, "stages_for", lambda route: [_Flaky(5, runs)])
    make_video(env.inbox / "r.mp4", seconds=0.5, audio=False)
    write_srt(env.inbox / "r.srt")
    assert env.once() == 1
    assert runs.read_text().count("run") == 2
    err = env.failed_error("r")
    assert "disk is full" in err["message"] and err["attempts"] == 2
    assert (env.outbox / "failed" / "r" / "r.mp4").exists()


def test_retry_puts_failed_inputs_back_in_the_inbox(env: Env) -> None:
    make_video(env.inbox / "t.mp4", seconds=1.0)
    write_srt(env.inbox / "t.srt", "1\nbroken\n")
    assert env.once() == 1
    job_id = env.daemon().journal.jobs()[0].id
    write_srt(env.outbox / "failed" / "t" / "t.srt")  # the user fixes the file in place
    args = ["retry", job_id[:8], "--config", str(env.root / "omad.yaml")]
    assert cli_main(args) == 0
    assert (env.inbox / "t.mp4").exists() and (env.inbox / "t.srt").exists()
    assert not (env.outbox / "failed" / "t").exists()
    assert env.once() == 0
    assert (env.outbox / "t.mp4").exists()


_CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import omad.daemon as d
    import omad.runner as runner
    from omad.config import load_config
    from omad.stage import Stage, StageResult

    marks = Path(sys.argv[2])

    class First(Stage):
        name = "first"
        def run(self, ctx):
            with open(marks, "a") as f: f.write("first\\n")
            (ctx.work / "a.txt").write_text("a")
            return StageResult(artifacts={"a": "a.txt"})

    class Second(Stage):
        name = "second"
        def run(self, ctx):
            with open(marks, "a") as f: f.write("second\\n")
            if marks.read_text().count("second") == 1 or sys.argv[3:] == ["always"]:
                os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of stage two
            (ctx.work / "b.txt").write_text(ctx.path("a").read_text() + "b")
            return StageResult(artifacts={"b": "b.txt"}, publish={".txt": "b"})

    runner.stages_for = lambda route: [First(), Second()]
    cfg = load_config(sys.argv[1])
    daemon = d.Daemon(cfg, d.Paths(Path(cfg.inbox), Path(cfg.outbox), Path(cfg.state_dir)), once=True)
    sys.exit(daemon.run_once(max_wait=30))
    """
)


def test_kill_9_resumes_at_the_first_unfinished_stage(env: Env) -> None:
    """GIVEN a two-stage job WHEN the process is killed with SIGKILL during stage two
    THEN a restart resumes at stage two (stage one is not run again) and publishes once."""
    script = env.root / "crash.py"
    script.write_text(_CRASH_SCRIPT)
    marks = env.root / "marks.txt"
    make_video(env.inbox / "c.mp4", seconds=0.5, audio=False)
    write_srt(env.inbox / "c.srt")
    cmd = [sys.executable, str(script), str(env.root / "omad.yaml"), str(marks)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == -signal.SIGKILL
    assert list(env.inbox.iterdir()) == []  # claimed: safe in the state dir, not lost
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert marks.read_text().splitlines() == ["first", "second", "second"]
    assert (env.outbox / "c.txt").read_text() == "ab"
    side = env.sidecar("c")
    assert [s["name"] for s in side["stages"]] == ["first", "second"]
    assert side["attempts"] == 1  # omad's own crash is not charged to the job


def test_a_crash_loop_is_bounded_by_max_restarts(make_env: Callable[..., Env]) -> None:
    """GIVEN a stage that kills omad every time it runs WHEN omad is started again and again
    THEN the interrupted attempts are not charged, but after jobs.max_restarts restarts in a row the job fails
    with a message that says so, its inputs kept."""
    env = make_env(jobs={"max_restarts": 1, "max_attempts": 5})
    script = env.root / "crash.py"
    script.write_text(_CRASH_SCRIPT)
    marks = env.root / "marks.txt"
    make_video(env.inbox / "c.mp4", seconds=0.5, audio=False)
    write_srt(env.inbox / "c.srt")
    cmd = [sys.executable, str(script), str(env.root / "omad.yaml"), str(marks), "always"]
    for _ in range(2):
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert run.returncode == -signal.SIGKILL
    last = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert last.returncode != -signal.SIGKILL, last.stderr  # the stage was not run again
    assert marks.read_text().splitlines() == ["first", "second", "second"]
    err = env.failed_error("c")
    assert "stopped 2 times in a row" in err["message"] and "jobs.max_restarts is 1" in err["message"]
    assert (env.outbox / "failed" / "c" / "c.mp4").exists()
    journal = env.daemon().journal
    job = journal.jobs()[0]
    assert job.attempts == 1 and [a["outcome"] for a in journal.attempts(job.id)] == [
        "interrupted", "interrupted", "error"]


def test_config_yaml_matches_the_model() -> None:
    """config/omad.yaml is generated from the typed model; they must never drift."""
    shipped = (REPO / "config" / "omad.yaml").read_text()
    assert shipped == dump_config_yaml(Config()), "run `make config` to regenerate config/omad.yaml"
    assert load_config(REPO / "config" / "omad.yaml").model_dump() == Config().model_dump()


def test_every_option_is_documented() -> None:
    def walk(model: type) -> None:
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                walk(ann)

    walk(Config)


def test_unknown_config_key_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("watch:\n  setle_seconds: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "watch.setle_seconds" in str(exc.value) and str(p) in str(exc.value)


def test_doctor_passes_here_and_fails_without_ffmpeg(env: Env, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ["--config", str(env.root / "omad.yaml")]
    assert cli_main(["doctor", *cfg]) == 0
    out = capsys.readouterr().out
    assert "ffmpeg filters" in out and "journal" in out
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli_main(["doctor", *cfg]) == 1
    assert "FAIL  ffmpeg" in capsys.readouterr().out


def test_status_json_lists_jobs(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    make_video(env.inbox / "s.mp4", seconds=0.5)
    write_srt(env.inbox / "s.srt")
    assert env.once() == 0
    capsys.readouterr()
    assert cli_main(["status", "--json", "--config", str(env.root / "omad.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"][0]["status"] == "done" and data["jobs"][0]["route"] == "caption"
    assert data["jobs"][0]["progress"] == 1.0


def test_omad_run_stops_cleanly_on_sigterm(env: Env) -> None:
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "omad"), "run", "--config", str(env.root / "omad.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (env.outbox / "logs").exists() and any(
            "started" in p.read_text() for p in (env.outbox / "logs").glob("*.jsonl")), timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert os.path.exists(env.state / "journal.sqlite")


def test_status_shows_lanes_from_a_running_daemon(make_env: Callable[..., Env],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = make_env(web={"enabled": True, "port": port})
    make_video(env.inbox / "l.mp4", seconds=0.5)
    write_srt(env.inbox / "l.srt")
    with Running(env.daemon(), serve=True) as r:
        wait_for(lambda: statuses(r.d) == ["done"], timeout=30)
        capsys.readouterr()
        assert cli_main(["status", "--config", str(env.root / "omad.yaml")]) == 0
    out = capsys.readouterr().out
    assert "lane cpu  busy 0/" in out and "gpu  0/" in out and "done" in out


def test_a_claim_that_fails_half_way_is_finished_later_not_duplicated(env: Env,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN the disk refuses the first move out of the inbox (disk full)
    THEN the files stay in the inbox, and the next look finishes that same job: one job, done, no duplicate."""
    real_move = claim_mod.safe_move
    calls = {"n": 0}

    def flaky_move(src: Path, dst: Path, *, copy_only: bool = False) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientError("could not move (No space left on device); free some space.", file=src)
        real_move(src, dst, copy_only=copy_only)

    monkeypatch.setattr(claim_mod, "safe_move", flaky_move)
    make_video(env.inbox / "f.mp4", seconds=0.5)
    write_srt(env.inbox / "f.srt")
    with Running(env.daemon()) as r:
        wait_for(lambda: statuses(r.d) == ["done"], timeout=40)
        assert [j.duplicate_of for j in r.d.journal.jobs()] == [None]
    assert (env.outbox / "f.mp4").exists() and list(env.inbox.iterdir()) == []
    log = "".join(p.read_text() for p in (env.outbox / "logs").glob("*.jsonl"))
    assert "intake_failed" in log


@pytest.mark.parametrize(("option", "var"), sorted(ENV_FALLBACK.items()))
def test_the_file_wins_and_the_environment_fills_what_it_leaves_empty(
    monkeypatch: pytest.MonkeyPatch, option: str, var: str
) -> None:
    """One rule for every key that has an environment variable: a value in the file is the one used."""
    node: Any = Config()
    *sections, key = option.split(".")
    for name in sections:
        node = getattr(node, name)
    assert key in type(node).model_fields, f"{option} is not an option"
    assert var in (REPO / "README.md").read_text(), f"${var} is not documented in the README"
    monkeypatch.setenv(var, "from-env")
    assert from_env("", option) == "from-env"
    assert from_env("in-file", option) == "in-file"
    # No module reads the variable itself, so the rule cannot drift per key.
    readers = [p.name for p in (REPO / "omad").rglob("*.py")
               if p.parent.name != "config" and re.search(rf"environ[^\n]*{var}|getenv\([^\n]*{var}", p.read_text())]
    assert readers == []


def test_the_broker_in_the_file_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMAD_BROKER_URL", "redis://env-host:6379/0")
    assert Config().executor.broker() == "redis://env-host:6379/0"
    cfg = Config.model_validate({"executor": {"broker_url": "redis://file-host:6379/0"}})
    assert cfg.executor.broker() == "redis://file-host:6379/0"
    assert cfg.executor.backend() == "redis://file-host:6379/0"


def test_a_workers_own_folder_follows_the_state_dir(tmp_path: Path) -> None:
    """`omad worker --state-dir X` moves the worker's folder too; nothing is left in the working directory."""
    cfg = load_config(None, {"state_dir": str(tmp_path / "st")})
    assert cfg.worker_dir() == tmp_path / "st" / "worker"
    cfg = load_config(None, {"state_dir": str(tmp_path / "st"), "executor": {"worker_state_dir": str(tmp_path / "w")}})
    assert cfg.worker_dir() == tmp_path / "w"
