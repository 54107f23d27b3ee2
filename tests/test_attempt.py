"""One stage attempt, the same in the daemon and on a worker: its value, its folder, its bill, its errors."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from omad.cluster.task import Reply, ReplyStatus
from omad.config import Config
from omad.errors import InputError, StageFailed, TransientError
from omad.executors import Attempt, JobFolder, LocalExecutor, run_attempt
from omad.journal import Journal, StageStatus
from omad.lanes import Lane, Lanes
from omad.log import get_logger
from omad.stage import Stage, StageContext, StageResult


class _Toy(Stage):
    """Writes one file and holds the CPU lane while it runs; or raises what it is told to."""

    name = "toy"

    def __init__(self, raise_: BaseException | None = None, cancel: threading.Event | None = None) -> None:
        self.raise_ = raise_
        self.cancel = cancel
        self.cleaned: list[Path] = []
        self.ran_in: Path | None = None

    def run(self, ctx: StageContext) -> StageResult:
        self.ran_in = ctx.work
        (ctx.scratch / "tmp.bin").write_bytes(b"x")
        (ctx.work / "out.txt").write_text("made", encoding="utf-8")
        ctx.warn("a warning for the user")
        if self.cancel is not None:
            self.cancel.set()
        if self.raise_ is not None:
            raise self.raise_
        return StageResult(artifacts={"text": "out.txt"}, publish={".txt": "text"})

    def cleanup(self, ctx: StageContext) -> None:
        self.cleaned.append(ctx.scratch)
        super().cleanup(ctx)


def _ctx(tmp_path: Path, attempt: int = 2, cancel: threading.Event | None = None) -> StageContext:
    folder = JobFolder(tmp_path / "jobs" / "job1")
    folder.inputs.mkdir(parents=True)
    return StageContext(job_id="job1", route="narrate", name="talk", work=folder.fresh_run("toy", attempt),
                        base=folder.root, inputs={}, options={}, config=Config(), lanes=Lanes(1), stage="toy",
                        attempt=attempt, cancel=cancel or threading.Event(), log=get_logger("omad.test"))


def test_a_finished_attempt_names_its_artifacts_in_its_run_folder_and_bills_its_lane(tmp_path: Path) -> None:
    """GIVEN a stage that writes out.txt WHEN its attempt 2 runs
    THEN it ran in runs/toy.2, the artifact is named from the job folder, the CPU lane is billed, cleanup ran."""
    stage = _Toy()
    ctx = _ctx(tmp_path)
    started: list[Lane] = []
    attempt = run_attempt(stage, ctx, holder="job1", started=started.append)
    result = attempt.unwrap()
    assert attempt.error is None and started == [Lane.CPU]
    assert stage.ran_in == tmp_path / "jobs" / "job1" / "runs" / "toy.2"
    assert result.artifacts == {"text": "runs/toy.2/out.txt"}
    assert (ctx.job_folder.root / result.artifacts["text"]).read_text(encoding="utf-8") == "made"
    assert result.warnings == ["a warning for the user"]
    assert set(attempt.lane_seconds) == {"cpu"} and attempt.lane_seconds["cpu"] > 0
    assert stage.cleaned and not stage.cleaned[0].exists()  # the scratch is gone


def test_a_stage_error_comes_back_in_the_attempt_with_its_bill_after_cleanup(tmp_path: Path) -> None:
    stage = _Toy(InputError("has no audio stream.", file="talk.mp4"))
    attempt = run_attempt(stage, _ctx(tmp_path), holder="job1")
    assert isinstance(attempt.error, InputError) and attempt.result is None
    assert attempt.error.file == "talk.mp4" and attempt.lane_seconds["cpu"] > 0
    assert len(stage.cleaned) == 1
    with pytest.raises(InputError, match="no audio"):
        attempt.unwrap()


def test_a_bug_in_a_stage_is_a_stage_failure_a_person_can_report(tmp_path: Path) -> None:
    attempt = run_attempt(_Toy(ZeroDivisionError("oops")), _ctx(tmp_path), holder="job1", where="on worker w1")
    assert isinstance(attempt.error, StageFailed) and attempt.error.stage == "toy"
    assert "internal error in stage toy on worker w1: ZeroDivisionError('oops')" in attempt.error.message
    assert "report it" in attempt.error.message


def test_an_attempt_stopped_from_outside_fails_as_transient(tmp_path: Path) -> None:
    """GIVEN a stage whose cancel is set while it runs (shutdown, pause --now, a fence) WHEN it then fails
    THEN the failure is transient: it says nothing about the drop."""
    cancel = threading.Event()
    attempt = run_attempt(_Toy(StageFailed("ffmpeg died"), cancel), _ctx(tmp_path, cancel=cancel), holder="job1")
    assert isinstance(attempt.error, TransientError) and "stopped: ffmpeg died" in attempt.error.message


def test_an_attempt_cancelled_before_it_starts_does_not_run(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    stage = _Toy()
    attempt = run_attempt(stage, _ctx(tmp_path, cancel=cancel), holder="job1")
    assert isinstance(attempt.error, TransientError) and stage.ran_in is None and not stage.cleaned


def test_an_attempt_is_a_result_or_an_error() -> None:
    with pytest.raises(ValueError):
        Attempt()
    with pytest.raises(ValueError):
        Attempt(result=StageResult(), error=InputError("x"))


def test_the_local_executor_journals_the_start_and_empties_what_a_crashed_run_left(tmp_path: Path) -> None:
    """GIVEN a run folder a killed daemon left half-written WHEN the local executor runs that attempt again
    THEN the stale file is gone, the stage is journaled running, and the attempt comes back as one value."""
    journal = Journal(tmp_path / "state" / "omad.db")
    try:
        job = journal.create(cid="c" * 16, route="narrate", name="talk", inputs=[], options={}, dropped_at=0.0)
        folder = JobFolder(tmp_path / "jobs" / job.id)
        stale = folder.run("toy", 1) / "half.mp4"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"half")
        lanes = Lanes(1)
        ctx = StageContext(job_id=job.id, route="narrate", name="talk", work=folder.run("toy", 1), base=folder.root,
                           inputs={}, options={}, config=Config(), lanes=lanes, stage="toy", attempt=1)
        attempt = LocalExecutor(lanes, journal).run(job, _Toy(), Lane.CPU, ctx, get_logger("omad.test"))
        assert attempt.unwrap().artifacts == {"text": "runs/toy.1/out.txt"}
        assert not stale.exists()
        [row] = journal.stages(job.id)
        assert row["status"] == StageStatus.RUNNING and row["attempt"] == 1
    finally:
        journal.close()


def test_the_job_folder_names_every_path_once(tmp_path: Path) -> None:
    folder = JobFolder(tmp_path)
    assert folder.run("caption", 3) == tmp_path / "runs" / "caption.3"
    assert folder.run_prefix("caption", 3) == "runs/caption.3"
    assert folder.run_lock("caption", 3) == tmp_path / "runs" / "caption.3.lock"
    assert folder.result("caption", 3) == tmp_path / "runs" / "caption.3" / "result.json"
    assert folder.fence("caption") == tmp_path / "dispatch" / "caption.json"
    assert folder.sent("omad-x-1") == tmp_path / "dispatch" / "omad-x-1.json"
    assert folder.scratch(3, "caption") == tmp_path / "attempts" / "3" / "caption"
    assert folder.inputs == tmp_path / "inputs"
    assert folder.relative(folder.run("caption", 3) / "v.mp4") == "runs/caption.3/v.mp4"


@pytest.mark.parametrize("reply,wire", [
    (Reply(ReplyStatus.FENCED, "t1", attempt=1, worker="w"),
     {"status": "fenced", "task_id": "t1", "attempt": 1, "worker": "w"}),
    (Reply(ReplyStatus.REFUSED, "t1", reason="bad signature"),
     {"status": "refused", "task_id": "t1", "reason": "bad signature"}),
    (Reply(ReplyStatus.DONE, "t1", attempt=2, worker="w", result={"artifacts": {}}, lane_seconds={"cpu": 1.5},
           seconds=2.0),
     {"status": "done", "task_id": "t1", "attempt": 2, "worker": "w", "result": {"artifacts": {}},
      "lane_seconds": {"cpu": 1.5}, "seconds": 2.0}),
])
def test_a_reply_travels_in_the_wire_format_and_reads_back_typed(reply: Reply, wire: dict[str, object]) -> None:
    assert reply.to_dict() == wire
    back = Reply.from_dict(dict(wire))
    assert back == reply and back.status is reply.status


def test_a_reply_of_an_unknown_status_names_the_version_mismatch() -> None:
    with pytest.raises(StageFailed, match="same omad version"):
        Reply.from_dict({"status": "exploded", "task_id": "t1"})


def test_a_short_espeak_narration_is_light_a_long_one_or_another_engine_is_not(tmp_path: Path) -> None:
    """GIVEN narrate jobs WHEN the runner asks whether they may take a core the CPU lane lends THEN a sentence
    for espeak-ng (a dropped .txt or a brief's text) may; a long text, or Piper or F5, may not."""
    from omad.stages.narrate import LIGHT_CHARS, NarrateStage

    stage = NarrateStage()
    ctx = _ctx(tmp_path)
    espeak = Config.model_validate({"tts": {"engine": "espeak"}})
    short, long = tmp_path / "short.txt", tmp_path / "long.txt"
    short.write_text("Olá, mundo.", encoding="utf-8")
    long.write_text("Uma frase comprida. " * (LIGHT_CHARS // 19), encoding="utf-8")  # just over the limit
    assert stage.light(replace(ctx, config=espeak, inputs={"text": short}))
    assert not stage.light(replace(ctx, config=espeak, inputs={"text": long}))
    assert stage.light(replace(ctx, config=espeak, options={"text": "Olá."}))
    assert not stage.light(replace(ctx, config=espeak, options={"text": "x" * (LIGHT_CHARS + 1)}))
    for engine in ("piper", "f5"):
        assert not stage.light(replace(ctx, config=espeak, inputs={"text": short},
                                       options={"voice": {"engine": engine}}))
