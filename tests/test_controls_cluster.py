"""Pause, priorities and windows with the celery executor: a real redis-server and real `omad worker` processes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from cluster_kit import REPO, Worker
from conftest import Running, wait_for
from test_cluster import Cluster, cluster, drop_caption, redis_server, wait_done  # noqa: F401

from omad.cluster.app import queue_keys
from omad.controls import PAUSE_KEY, QueueState
from omad.daemon import Daemon
from omad.journal import JobStatus

pytestmark = pytest.mark.slow


def test_a_paused_daemon_dispatches_nothing_and_tells_the_workers(cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    """GIVEN the celery executor and a paused queue
    THEN a drop is journaled and not sent; Redis holds the pause for the workers; resume sends it and it runs."""
    c = cluster()
    c.worker("w1")
    d = c.env.daemon()
    d.pause(by="test")
    redis = c.redis.client()
    with Running(d):
        assert json.loads(redis.get(PAUSE_KEY))["paused"] is True
        drop_caption(c.env.inbox, "held")
        wait_for(lambda: "paused" in d.queue_reasons.values(), 60)
        assert not c.started()
        d.resume(by="test")
        assert redis.get(PAUSE_KEY) is None
        wait_done(c.env, 1, 180)


def test_pause_now_stops_a_stage_on_a_worker_and_requeues_it_without_spending_an_attempt(
        cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    """GIVEN a long stage running on a worker, jobs.max_attempts 1
    WHEN the queue is paused with --now
    THEN the task is fenced off and revoked, the job goes back to the queue with no attempt spent; on resume
    it is sent again under a new task id and finishes."""
    c = cluster(jobs={"max_attempts": 1})
    c.worker("w1")
    d = c.env.daemon()
    with Running(d):
        drop_caption(c.env.inbox, "long", seconds=40.0)
        wait_for(lambda: bool(c.started()), 120)
        d.pause(now=True, by="test")
        wait_for(lambda: bool(d.journal.jobs()) and d.journal.jobs()[0].status == JobStatus.QUEUED
                 and not d.running, 120)
        job = d.journal.jobs()[0]
        assert job.attempts == 0
        first = d.journal.stages(job.id)[0]["task_id"]
        d.resume(by="test")
        wait_done(c.env, 1, 240)
        job = d.journal.jobs()[0]
        assert job.attempts == 1 and d.journal.stages(job.id)[0]["task_id"] == f"{first}.r1"


def test_a_worker_holds_tasks_while_redis_says_paused_without_losing_them(
        cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    """GIVEN a task already on its way when the pause reaches the worker through Redis
    THEN the worker does not start it (it goes back to the queue, the daemon's lease does not run out on it),
    and once the pause is lifted it runs, with one attempt."""
    c = cluster()
    c.worker("w1")
    d = c.env.daemon()
    with Running(d):
        wait_for(lambda: d.watcher.watching, 30)  # started: its own (unpaused) state is published
        d.executor.controls_changed(QueueState(paused=True))  # what a pause sends the workers
        drop_caption(c.env.inbox, "later")
        wait_for(lambda: any(e.get("reason") == "paused" for w in c.workers for e in w.events("task_held")), 120)
        assert not c.started()
        d.executor.controls_changed(QueueState(paused=False))
        wait_done(c.env, 1, 180)
        job = d.journal.jobs()[0]
        assert job.status == JobStatus.DONE and job.attempts == 1


def test_a_worker_outside_its_window_leaves_the_task_to_another(cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    """GIVEN a worker started with --windows that are closed now (two hours from now, the box's time)
    THEN it holds the stage (task_held, "waiting for the window at ..."), and a worker without windows takes it."""
    c = cluster()
    start = (dt.datetime.now().astimezone() + dt.timedelta(hours=2)).strftime("%H:00")
    end = (dt.datetime.now().astimezone() + dt.timedelta(hours=3)).strftime("%H:00")
    night = c.worker("night", start=False)
    night.args += ["--windows", f"{start}-{end}"]
    night.start(c.redis)
    d = c.env.daemon()
    with Running(d):
        drop_caption(c.env.inbox, "day")
        wait_for(lambda: any(str(e.get("reason", "")).startswith("waiting for the window at")
                             for e in night.events("task_held")), 120)
        assert not c.started()
        c.worker("day")
        wait_done(c.env, 1, 180)
    assert {w for w, _ in c.started()} == {"day"}


def test_tasks_carry_the_job_priority_on_redis_priority_queues(cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    """GIVEN no worker, a normal job and a high one dispatched
    THEN their tasks wait on the queue's priority lists (high on step 3, normal on step 5), so a worker
    takes the high one first; the status counts both."""
    c = cluster(intake={"priorities": {"urgente": "high"}})
    d = c.env.daemon()
    redis = c.redis.client()
    with Running(d):
        drop_caption(c.env.inbox, "normal")
        (c.env.root / "aside" / "in").mkdir(parents=True)
        made = drop_caption(c.env.root / "aside" / "in", "urgent", seconds=3.0)  # other content; moved in whole
        (c.env.inbox / "urgente").mkdir()
        for suffix in (".srt", ".mp4"):
            (made.parent / "in" / f"urgent{suffix}").rename(c.env.inbox / "urgente" / f"urgent{suffix}")
        keys = queue_keys(c.env.config, "cpu")
        wait_for(lambda: sum(redis.llen(k) for k in keys) == 2, 120)
        lengths = {i: redis.llen(k) for i, k in enumerate(keys) if redis.llen(k)}
        assert lengths == {3: 1, 5: 1}
        assert d.executor.status()["queues"]["omad.cpu"] == 2
        c.worker("w1")
        wait_done(c.env, 2, 240)
        names = {j.id: j.name for j in d.journal.jobs()}
        assert [names[str(e["job"])] for _, e in c.started()] == ["urgent", "normal"]


# -- waking the GPU worker --------------------------------------------------------------------------------


class UdpListener:
    """A UDP socket on loopback that keeps what it receives."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()

    def receive(self) -> bytes | None:
        try:
            return bytes(self.sock.recv(2048))
        except TimeoutError:
            return None


def test_a_magic_packet_reaches_a_udp_listener() -> None:
    from omad.wake import magic_packet, send_magic_packet

    listener = UdpListener()
    try:
        send_magic_packet("aa:bb:cc:dd:ee:0f", "127.0.0.1", listener.port)
        got = listener.receive()
    finally:
        listener.close()
    assert got == b"\xff" * 6 + bytes.fromhex("aabbccddee0f") * 16 == magic_packet("AA-BB-CC-DD-EE-0F")
    with pytest.raises(ValueError, match="MAC"):
        magic_packet("aa:bb")


def test_gpu_work_with_no_gpu_worker_wakes_one_by_packet_and_by_command(
        cluster: Callable[..., Cluster], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """GIVEN the celery executor, narration on the GPU lane (tts.engine f5), no worker serving the GPU queue
    WHEN a text is dropped
    THEN the daemon sends a Wake-on-LAN packet to the configured address and runs the wake command, which
    starts a real `omad worker --queues gpu`; the status page says "waking the GPU worker" until it serves."""
    from omad.wake import GpuWaker, magic_packet

    listener = UdpListener()
    c = cluster(tts={"engine": "f5"})
    gpu = Worker(c.root, "gpu", c.data, queues="gpu")  # its config and args; started by the wake command
    launch = tmp_path / "launch.sh"
    launch.write_text("#!/bin/sh\n" + " ".join(f"'{a}'" for a in gpu.args) + f" > '{gpu.log}' 2>&1 &\n"
                      f"echo $! > '{tmp_path / 'gpu.pid'}'\n")
    launch.chmod(0o755)
    c.data["executor"].update({"wake_mac": "aa:bb:cc:dd:ee:0f", "wake_address": "127.0.0.1",
                               "wake_port": listener.port, "wake_seconds": 600,
                               "wake_command": ["setsid", "sh", str(launch)]})
    cfg = c.env.config.model_validate({**c.env.config.model_dump(by_alias=True, exclude={"source"}),
                                       "executor": c.data["executor"]})
    d = Daemon(cfg, c.env.paths)
    waker = GpuWaker(cfg.executor, every=0.2)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the wake command's worker imports this checkout
    try:
        with Running(d):
            waker.attach(d)
            (c.env.inbox / "fala.txt").write_text("Olá, placa de vídeo.")
            packet = None
            for _ in range(600):
                packet = listener.receive()
                if packet:
                    break
            assert packet == magic_packet("aa:bb:cc:dd:ee:0f")
            shown = dict(d.notes)  # the note stays until a worker serves the queue (it may already)
            assert not shown or "waking the GPU worker" in shown["gpu-wake"]
            wait_for(lambda: c.redis.client().get(f"omad:worker:{gpu.node}") is not None, 120)
            wait_for(lambda: "gpu-wake" not in d.notes, 60)
            wait_for(lambda: bool(gpu.events("stage_started")) or bool(gpu.events("task_held")), 120)
            assert waker.failures_in_a_row == 0 and listener.receive() is None  # one try: no second packet
        tries = [json.loads(line) for f in (c.env.outbox / "logs").iterdir() for line in f.read_text().splitlines()
                 if '"gpu_wake"' in line]
        assert sorted((t["how"], t["outcome"]) for t in tries) == [("command", "sent"), ("wake-on-lan", "sent")]
    finally:
        waker.close()
        listener.close()
        pid = int((tmp_path / "gpu.pid").read_text()) if (tmp_path / "gpu.pid").exists() else None
        if pid:  # the worker the wake command started, with its pool (its own session, made by setsid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
