"""The operator's controls: windows, priorities with aging, pause and resume, through the daemon, the CLI and the API.

Windows are tested with an injected clock (never real time); the daemon runs its
real loop with real ffmpeg and espeak-ng behind the jobs.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import SRT_PT, Env, Running, make_video, wait_for, wait_ticks, write_srt

from omad.cli import main as cli_main
from omad.config import Config
from omad.controls import (
    Controls,
    effective_priority,
    parse_priority,
    read_queue_state,
    write_queue_state,
)
from omad.journal import JobStatus, Journal
from omad.lanes import LaneSlots
from omad.windows import Windows, parse_window

TZ = dt.UTC


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A moment in the first week of June 2026 (June 1st is a Monday)."""
    return dt.datetime(2026, 6, day, hour, minute, tzinfo=TZ)


# -- windows ----------------------------------------------------------------------------------------


def test_a_night_window_is_open_at_night_and_says_when_it_opens_by_day() -> None:
    w = Windows(["00:00-07:00"])
    assert w.is_open(at(2, 3)) and not w.is_open(at(2, 7)) and not w.is_open(at(2, 12))
    assert w.waiting_reason(at(2, 12)) == "waiting for the window at 00:00"
    assert w.next_open(at(2, 12)) == at(3, 0)
    assert w.waiting_reason(at(2, 3)) == ""


def test_a_window_past_midnight_belongs_to_the_day_it_starts_and_days_are_optional() -> None:
    w = Windows(["mon-fri 22:00-06:00"])
    assert w.is_open(at(5, 23))  # Friday night
    assert w.is_open(at(6, 5))  # ... into Saturday morning
    assert not w.is_open(at(6, 23))  # Saturday night: not a window day
    assert w.next_open(at(6, 12)) == at(8, 22)  # the next one is Monday night
    assert w.waiting_reason(at(6, 12)) == "waiting for the window at mon 22:00"
    weekend = Windows(["sat,sun 08:00-20:00"])
    assert weekend.is_open(at(7, 9)) and not weekend.is_open(at(1, 9))
    assert Windows([]).is_open(at(1, 12)) and Windows([]).waiting_reason(at(1, 12)) == ""


@pytest.mark.parametrize("bad", ["7-9", "25:00-07:00", "00:00-07:61", "xyz 00:00-07:00", "00:00"])
def test_a_bad_window_is_refused_with_the_form_to_use(bad: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(bad)
    with pytest.raises(ValueError, match="window"):
        Config.model_validate({"lanes": {"gpu": {"windows": [bad]}}})


def test_old_lane_numbers_still_load_and_the_new_form_takes_windows() -> None:
    old = Config.model_validate({"lanes": {"cpu": 3, "gpu": 1}})
    assert old.lanes.cpu_slots() == 3 and old.lanes.gpu.slots == 1 and old.lanes.cpu.windows == []
    new = Config.model_validate({"lanes": {"cpu": {"slots": 2, "windows": ["mon-fri 09:00-18:00"]},
                                           "gpu": {"windows": ["00:00-07:00"]}}})
    assert new.lanes.cpu_slots() == 2 and new.lanes.gpu.windows == ["00:00-07:00"]
    with pytest.raises(ValueError, match="one slot"):
        Config.model_validate({"lanes": {"gpu": 2}})


# -- priorities --------------------------------------------------------------------------------------


def test_priority_names_and_numbers() -> None:
    assert [parse_priority(v) for v in ("low", "normal", "HIGH", 7, "-3")] == [-10, 0, 10, 7, -3]
    for bad in ("urgent", "1.5", True, None):
        with pytest.raises(ValueError, match="low, normal, high or an integer"):
            parse_priority(bad)


def test_aging_lets_an_old_low_job_overtake_a_fresh_high_one() -> None:
    """GIVEN aging of 60 s a point, a low job (-10) and a high one (+10)
    THEN the low job has overtaken a fresh high job after 20 x 60 s of waiting, not before."""
    assert effective_priority(-10, 19 * 60, 60) < effective_priority(10, 0, 60)
    assert effective_priority(-10, 21 * 60, 60) > effective_priority(10, 0, 60)


def test_controls_order_highest_first_then_fifo(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    try:
        now = time.time()
        made = [journal.create(cid=f"c{i}", route="narrate", name=f"n{i}", inputs=[], options={}, dropped_at=now,
                               status=JobStatus.QUEUED, priority=p) for i, p in enumerate([0, 10, 0, -10])]
        controls = Controls(Config.model_validate({"queue": {"aging_seconds": 3600}}), journal)
        assert [j.name for j in controls.order(journal.jobs(), now + 1)] == ["n1", "n0", "n2", "n3"]
        # A day later the low one has aged past everyone created now.
        old = made[3]
        journal.update(old.id, created_at=now - 86400)
        assert controls.order(journal.jobs(), now + 1)[0].name == "n3"
    finally:
        journal.close()


def test_a_lane_slot_goes_to_the_highest_priority_waiter_first() -> None:
    lane = LaneSlots("cpu", 1)
    order: list[str] = []
    release = threading.Event()

    def holder() -> None:
        with lane.slot("first"):
            release.wait(10)

    def waiter(name: str, priority: float) -> None:
        with lane.slot(name, priority):
            order.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    wait_for(lambda: lane.busy == 1, 5)
    for i, (name, prio) in enumerate([("low", -10.0), ("high", 10.0), ("normal-a", 0.0), ("normal-b", 0.0)]):
        t = threading.Thread(target=waiter, args=(name, prio))
        t.start()
        threads.append(t)
        wait_for(lambda n=i + 1: lane.waiting == n, 5)  # each is queued before the next comes
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["high", "normal-a", "normal-b", "low"]


class _Holder:
    """A thread that holds a lane slot until released; ``got`` is set once it holds it."""

    def __init__(self, lane: LaneSlots, name: str, *, light: bool = False) -> None:
        self.got, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(lane, name, light), daemon=True)
        self.thread.start()

    def _run(self, lane: LaneSlots, name: str, light: bool) -> None:
        with lane.slot(name, light=light):
            self.got.set()
            self.release.wait(30)

    def done(self) -> None:
        self.release.set()
        self.thread.join(30)


def test_light_stages_take_the_lent_core_and_never_starve_a_render() -> None:
    """GIVEN the CPU lane of a 2-core box (one slot, one core lent to light stages) and a render holding the slot
    THEN a light narration starts at once on the lent core, a second render waits, a later light one passes it
    only while the slot count holds it back, and when the first render ends the waiting render gets the slot
    before the light ones queued after it; without a lent core, a light stage waits its turn like any other."""
    lane = LaneSlots("cpu", 1, lent=1)
    render1 = _Holder(lane, "render1")
    render1.got.wait(10)
    light1 = _Holder(lane, "light1", light=True)
    assert light1.got.wait(10), "a light stage waited behind a render with a core idle"
    render2 = _Holder(lane, "render2")
    wait_for(lambda: lane.waiting == 1, what="render2 queued")
    light2 = _Holder(lane, "light2", light=True)  # both cores busy: it waits
    wait_for(lambda: lane.waiting == 2, what="light2 queued")
    light1.done()
    assert light2.got.wait(10), "a light stage did not pass a render held back by the slot count"
    assert not render2.got.is_set()
    light3 = _Holder(lane, "light3", light=True)
    wait_for(lambda: lane.waiting == 2, what="light3 queued")
    render1.done()
    assert render2.got.wait(10), "the waiting render did not get the slot its predecessor freed"
    assert not light3.got.is_set() and lane.busy == 2
    light2.done()
    assert light3.got.wait(10)
    for h in (render2, light3):
        h.done()

    alone = LaneSlots("cpu", 1)  # lanes.cpu.lend_idle_cores: false, or no idle core
    render = _Holder(alone, "render")
    render.got.wait(10)
    light = _Holder(alone, "light", light=True)
    wait_for(lambda: alone.waiting == 1, what="light queued")
    assert not light.got.is_set()
    render.done()
    assert light.got.wait(10)
    light.done()


@pytest.mark.parametrize("lend", [True, False])
def test_a_short_narration_takes_the_lent_core_while_a_render_holds_the_slot(
        make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch, lend: bool) -> None:
    """GIVEN a 2-core box (one CPU slot) and a render holding that slot WHEN a one-sentence .txt is dropped
    THEN with lanes.cpu.lend_idle_cores (the default) it is narrated and published while the render still runs;
    without, it waits for the slot and runs once the render is done."""
    monkeypatch.setattr("omad.config.jobs.os.cpu_count", lambda: 2)
    env = make_env(lanes={"cpu": {"slots": 0, "lend_idle_cores": lend}}, tts={"engine": "espeak"})
    d = env.daemon()
    assert (d.lanes.cpu.capacity, d.lanes.cpu.lent) == (1, 1 if lend else 0)
    render = _Holder(d.lanes.cpu, "render")
    assert render.got.wait(10)
    try:
        with Running(d):
            (env.inbox / "curta.txt").write_text("Uma frase curta.\n", encoding="utf-8")
            if lend:
                wait_for(lambda: (env.outbox / "curta.wav").exists(), 120, what="curta.wav published")
                assert d.lanes.cpu.holders() == ["render"]
            else:
                wait_for(lambda: d.lanes.cpu.waiting == 1, 60, what="the narration waiting for the slot")
                wait_ticks(d)
                assert not (env.outbox / "curta.wav").exists()
                render.done()
                wait_for(lambda: (env.outbox / "curta.wav").exists(), 120, what="curta.wav published")
    finally:
        render.done()


# -- pause and resume ---------------------------------------------------------------------------------


def _caption_drop(inbox: Path, name: str, seconds: float = 2.0) -> None:
    make_video(inbox.parent / "src" / f"{name}.mp4", seconds=seconds)
    write_srt(inbox / f"{name}.srt", SRT_PT)
    (inbox.parent / "src" / f"{name}.mp4").rename(inbox / f"{name}.mp4")


def _job(d: object, name: str) -> object:
    journal = d.journal  # type: ignore[attr-defined]
    return next((j for j in journal.jobs() if j.name == name), None)


def test_paused_queue_journals_drops_and_starts_nothing_until_resumed(make_env: Callable[..., Env],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """GIVEN a paused queue (omad pause, from the CLI while the daemon runs)
    WHEN a drop arrives
    THEN it is journaled and waits as "paused"; the pause survives a restart; omad resume runs it."""
    env = make_env()
    args = ["--state-dir", str(env.state), "--inbox", str(env.inbox), "--outbox", str(env.outbox)]
    d = env.daemon()
    with Running(d):
        assert cli_main(["pause", *args]) == 0
        wait_for(lambda: d.controls.paused, 10)
        _caption_drop(env.inbox, "talk")
        wait_for(lambda: any(r == "paused" for r in d.queue_reasons.values()), 30)
        job = _job(d, "talk")
        assert job is not None and job.status == JobStatus.QUEUED and job.attempts == 0  # type: ignore[attr-defined]
        assert not (env.outbox / "talk.mp4").exists()
    journal = Journal(env.paths.journal)
    state = read_queue_state(journal)
    journal.close()
    assert state.paused and state.by.startswith("cli:")
    capsys.readouterr()
    assert cli_main(["status", *args]) == 0
    assert "queue: PAUSED since" in capsys.readouterr().out
    d2 = env.daemon()
    with Running(d2):
        assert d2.controls.paused
        wait_for(lambda: bool(d2.queue_reasons), 30)  # still paused after the restart
        assert cli_main(["resume", *args]) == 0
        wait_for(lambda: (env.outbox / "talk.mp4").exists(), 120)
        job = _job(d2, "talk")
        assert job is not None and job.status == JobStatus.DONE and job.attempts == 1  # type: ignore[attr-defined]


@pytest.mark.slow
def test_pause_now_stops_a_running_stage_and_requeues_it_without_spending_an_attempt(
        make_env: Callable[..., Env]) -> None:
    env = make_env(jobs={"max_attempts": 1})
    d = env.daemon()
    with Running(d):
        _caption_drop(env.inbox, "long", seconds=40.0)
        wait_for(lambda: any(s["status"] == "running" for j in d.journal.jobs()
                             for s in d.journal.stages(j.id)), 60)
        d.pause(now=True, by="test")
        wait_for(lambda: (j := _job(d, "long")) is not None and j.status == JobStatus.QUEUED  # type: ignore
                 and not d.running, 60)
        job = _job(d, "long")
        assert job.attempts == 0  # type: ignore[attr-defined]
        assert [a["outcome"] for a in d.journal.attempts(job.id)] == ["error"]  # type: ignore[attr-defined]
        d.resume(by="test")
        wait_for(lambda: (env.outbox / "long.mp4").exists(), 240)
        job = _job(d, "long")
        # max_attempts is 1: the stopped attempt was not spent, or this job would have failed
        assert job.status == JobStatus.DONE and job.attempts == 1  # type: ignore[attr-defined]


def test_a_cpu_window_holds_a_drop_until_the_clock_reaches_it(make_env: Callable[..., Env]) -> None:
    """GIVEN lanes.cpu.windows 00:00-07:00 and a clock at noon
    THEN a drop is journaled at once and waits "for the window at 00:00" (the status view says so);
    at 01:00 it runs."""
    env = make_env(lanes={"cpu": {"slots": 1, "windows": ["00:00-07:00"]}})
    d = env.daemon()
    clock = [at(2, 12)]
    d.controls.clock = lambda: clock[0]
    with Running(d):
        _caption_drop(env.inbox, "night")
        wait_for(lambda: "waiting for the window at 00:00" in d.queue_reasons.values(), 30)
        assert d.controls.view()["lanes"]["cpu"] == {"windows": ["00:00-07:00"], "open": False,
                                                     "reason": "waiting for the window at 00:00"}
        assert d.controls.view()["lanes"]["gpu"]["open"]
        clock[0] = at(3, 1)
        wait_for(lambda: (env.outbox / "night.mp4").exists(), 120)


def test_priority_folders_and_briefs_set_the_order_jobs_are_started(make_env: Callable[..., Env]) -> None:
    """GIVEN intake.priorities {urgente: high}, one CPU slot and no core lent to light stages (so the daemon runs
    3 jobs at once) and a paused queue
    WHEN two plain drops, a drop in inbox/urgente/ and a brief with priority low arrive, then the queue resumes
    THEN the daemon starts the three highest first; the low one starts only once one of them has finished.
    (Which of the started ones gets the lane slot first is the lane's priority order: see the LaneSlots test.)"""
    env = make_env(lanes={"cpu": {"slots": 1, "lend_idle_cores": False}}, intake={"priorities": {"urgente": "high"}})
    d = env.daemon()
    d.pause(by="test")
    with Running(d):
        (env.inbox / "plain.txt").write_text("Um texto comum.")
        (env.inbox / "other.txt").write_text("Outro texto comum.")
        (env.inbox / "urgente").mkdir()
        (env.inbox / "urgente" / "fast.txt").write_text("Um texto urgente.")
        (env.inbox / "slow.yaml").write_text("kind: narrate\ntext: Um texto sem pressa.\npriority: low\n")
        wait_for(lambda: len(d.queue_reasons) == 4, 60)
        by_name = {j.name: j for j in d.journal.jobs()}
        assert {n: j.priority for n, j in by_name.items()} == {"plain": 0, "other": 0, "fast": 10, "slow": -10}
        assert by_name["fast"].route == "narrate"
        d.resume(by="test")
        wait_for(lambda: all(j.status == JobStatus.DONE for j in d.journal.jobs()), 180)
        jobs = {j.name: j for j in d.journal.jobs()}
    first_end = min(j.finished_at or 0 for n, j in jobs.items() if n != "slow")
    assert (jobs["slow"].started_at or 0) >= first_end
    assert max(jobs[n].started_at or 0 for n in ("fast", "plain", "other")) < first_end


def test_the_api_pauses_resumes_and_sets_priorities_and_readyz_and_metrics_say_so(
        make_env: Callable[..., Env]) -> None:
    env = make_env()
    d = env.daemon()
    with Running(d, serve=True) as run:
        base = run.server.url
        with httpx.Client(base_url=base, timeout=10) as http:
            r = http.post("/api/queue/pause", json={"now": False})
            assert r.status_code == 202 and r.json()["paused"] is True
            assert "PAUSED since" in http.get("/readyz").text and http.get("/readyz").status_code == 200
            assert "omad_queue_paused 1.0" in http.get("/metrics").text
            page = http.get("/", headers={"Accept": "text/html"}).text
            assert 'id="resume"' in page and 'id="queue-state"' in page
            _caption_drop(env.inbox, "api")
            wait_for(lambda: bool(d.queue_reasons), 30)
            job_id = next(iter(d.queue_reasons))
            assert http.post(f"/api/jobs/{job_id}/priority", json={"priority": "urgent"}).status_code == 400
            r = http.post(f"/api/jobs/{job_id}/priority", json={"priority": "high"})
            assert r.status_code == 202 and r.json()["priority"] == 10
            assert http.get(f"/api/jobs/{job_id}").json()["priority"] == 10
            assert 'id="priority-form"' in http.get(f"/jobs/{job_id}", headers={"Accept": "text/html"}).text
            assert http.get("/api/queue").json()["waiting"] == [{"id": job_id, "reason": "paused"}]
            r = http.post("/api/queue/resume")
            assert r.status_code == 202 and r.json()["paused"] is False
            assert "omad_queue_paused 0.0" in http.get("/metrics").text
            wait_for(lambda: (env.outbox / "api.mp4").exists(), 120)


def test_write_queue_state_keeps_the_first_pause_time(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    try:
        first = write_queue_state(journal, paused=True, by="a")
        again = write_queue_state(journal, paused=True, by="b")
        assert again.since == first.since and again.serial == first.serial + 1
        assert not write_queue_state(journal, paused=False).paused
    finally:
        journal.close()


def test_the_gpu_waker_backs_off_after_tries_that_bring_no_worker() -> None:
    """The first try is at once; then at most once per wake_seconds, doubling per fruitless try, up to 8x."""
    from omad.config import ExecutorConfig
    from omad.wake import GpuWaker

    waker = GpuWaker(ExecutorConfig(wake_seconds=10))
    assert waker.due(1000.0)
    waker.last_try, waker.failures_in_a_row = 1000.0, 1
    assert not waker.due(1009.0) and waker.due(1010.0)
    waker.failures_in_a_row = 2
    assert not waker.due(1019.0) and waker.due(1020.0)
    waker.failures_in_a_row = 10
    assert not waker.due(1079.0) and waker.due(1080.0)


def test_the_status_page_shows_the_gpu_wake_note_and_the_windows() -> None:
    from omad.i18n import Language
    from omad.web.templating import Pages

    view = {"queue": {"paused": False, "paused_now": False, "paused_since": None, "paused_by": "",
                      "lanes": {"cpu": {"windows": [], "open": True, "reason": ""},
                                "gpu": {"windows": ["00:00-07:00"], "open": False,
                                        "reason": "waiting for the window at 00:00"}},
                      "waiting": [{"id": "abc", "reason": "waiting for the window at 00:00"}],
                      "watch": {"mode": "polling", "requested": "auto", "reason": "the inbox is on a nfs4 mount"}},
            "notes": {"gpu-wake": "waking the GPU worker: 1 GPU stage(s) wait; last try at 12:00:00"}}
    html = Pages("en").render("_queue.html", Language.EN, view=view, nav={"csrf": "tok"})
    assert 'id="gpu-wake"' in html and "waking the GPU worker" in html and "last try at 12:00:00" in html
    assert "gpu: 00:00-07:00 · <span class=\"reason\">waiting for the window at 00:00</span>" in html
    assert 'id="pause"' in html and 'value="tok"' in html and "polling" in html
