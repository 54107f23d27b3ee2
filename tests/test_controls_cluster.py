"""Pause, priorities and windows with the celery executor: a real redis-server and real `omad worker` processes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from conftest import Running, wait_for
from test_cluster import Cluster, cluster, drop_caption, redis_server, wait_done  # noqa: F401

from omad.cluster.app import queue_keys
from omad.controls import PAUSE_KEY, QueueState
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
        made = drop_caption(c.env.root / "aside" / "in", "urgent")  # made aside, then moved in whole
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
