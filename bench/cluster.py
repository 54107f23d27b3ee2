"""The celery executor against local, side by side in one run, with a real redis-server and `omad worker`s.

1. per-stage overhead: the same short caption jobs one at a time, local vs celery (one worker);
   the difference in wall time per job is what dispatch, Redis, heartbeats and the result cost;
2. throughput: N caption jobs with one worker vs two (each concurrency 1);
3. recovery: a worker killed with SIGKILL mid-stage; seconds until the next attempt starts on the
   other worker (lease_seconds + the retry backoff + the dispatch).

    .venv/bin/python bench/cluster.py [--jobs 20] [--overhead-jobs 8] [--lease 10]

Prints the figures recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from cluster_kit import SIGNING_KEY, RedisServer, Worker  # noqa: E402
from conftest import make_video, write_srt  # noqa: E402

from omad.config import load_config  # noqa: E402
from omad.daemon import Daemon  # noqa: E402
from omad.journal import JobStatus, Journal  # noqa: E402
from omad.log import configure_logging  # noqa: E402
from omad.paths import Paths  # noqa: E402


def config(root: Path, executor: dict[str, Any]) -> dict[str, Any]:
    return {"inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
            "watch": {"settle_seconds": 0.2, "rescan_seconds": 1.0},
            "jobs": {"backoff_seconds": 0.5, "backoff_max_seconds": 1.0},
            "web": {"enabled": False}, "executor": executor}


def sources(folder: Path, n: int, seconds: float, size: str) -> list[tuple[Path, Path]]:
    out = []
    for i in range(n):
        video = make_video(folder / f"j{i:02d}.mp4", seconds=seconds + i * 0.04, size=size)  # distinct contents
        out.append((video, write_srt(folder / f"j{i:02d}.srt")))
    return out


class Run:
    """A daemon in a thread on ``root`` with ``executor``; drop files in and wait for the jobs."""

    def __init__(self, root: Path, executor: dict[str, Any]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "inbox").mkdir(exist_ok=True)
        self.data = config(root, executor)
        (root / "omad.yaml").write_text(yaml.safe_dump(self.data))
        self.cfg = load_config(root / "omad.yaml")
        self.paths = Paths(root / "inbox", root / "outbox", root / "state")
        self.root = root
        self.daemon = Daemon(self.cfg, self.paths)
        self.thread = threading.Thread(target=self.daemon.run, kwargs={"tick_seconds": 0.05}, daemon=True)

    def __enter__(self) -> Run:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop_event.set()
        self.daemon.wake.set()
        self.thread.join(timeout=60)

    def drop(self, pair: tuple[Path, Path]) -> None:
        for src in pair:
            tmp = self.root / f"{src.name}.tmp"
            tmp.write_bytes(src.read_bytes())
            tmp.rename(self.paths.inbox / src.name)

    def done(self) -> int:
        j = Journal(self.paths.journal)
        try:
            jobs = j.jobs()
            failed = [x.error for x in jobs if x.status == JobStatus.FAILED]
            if failed:
                raise SystemExit(f"a job failed: {failed[0]}")
            return sum(1 for x in jobs if x.status == JobStatus.DONE)
        finally:
            j.close()

    def wait(self, count: int, timeout: float = 600) -> None:
        end = time.monotonic() + timeout
        while self.done() < count:
            if time.monotonic() > end:
                raise SystemExit(f"{self.root}: only {self.done()} of {count} jobs done")
            time.sleep(0.05)


def overhead(tmp: Path, redis: RedisServer, pairs: list[tuple[Path, Path]]) -> dict[str, float]:
    """Median wall time per job, one job at a time, in each mode."""
    per: dict[str, list[float]] = {"local": [], "celery": []}
    celery = {"kind": "celery", "broker_url": redis.url,
              "signing_key": SIGNING_KEY, "heartbeat_seconds": 1.0, "lease_seconds": 10}
    worker = Worker(tmp, "ov", config(tmp / "celery", celery), queues="cpu").start(redis)
    try:
        for mode, executor in (("local", {"kind": "local"}), ("celery", celery)):
            with Run(tmp / mode, executor) as run:
                for i, pair in enumerate(pairs):
                    start = time.monotonic()
                    run.drop(pair)
                    run.wait(i + 1)
                    per[mode].append(time.monotonic() - start)
    finally:
        worker.stop()
    return {mode: statistics.median(v[1:]) for mode, v in per.items()}  # the first warms caches


def throughput(tmp: Path, redis: RedisServer, pairs: list[tuple[Path, Path]], workers: int) -> float:
    root = tmp / f"tp{workers}"
    celery = {"kind": "celery", "broker_url": redis.url,
              "signing_key": SIGNING_KEY, "heartbeat_seconds": 1.0, "lease_seconds": 10,
              "queue_prefix": f"tp{workers}"}
    started = [Worker(root, f"tp{workers}-{i}", config(root, celery), queues="cpu").start(redis)
               for i in range(workers)]
    try:
        with Run(root, celery) as run:
            start = time.monotonic()
            for pair in pairs:
                run.drop(pair)
            run.wait(len(pairs))
            took = time.monotonic() - start
        runs = [e["task"] for w in started for e in w.events("stage_started")]
        if len(runs) != len(set(runs)) or len(runs) != len(pairs):
            raise SystemExit(f"{workers} worker(s): {len(runs)} stage runs for {len(pairs)} jobs "
                             f"({len(runs) - len(set(runs))} ran twice)")
        return took
    finally:
        for w in started:
            w.stop()


def recovery(tmp: Path, redis: RedisServer, pair: tuple[Path, Path], lease: float) -> dict[str, float]:
    root = tmp / "recovery"
    celery = {"kind": "celery", "broker_url": redis.url,
              "signing_key": SIGNING_KEY, "heartbeat_seconds": lease / 5, "lease_seconds": lease,
              "queue_prefix": "rec"}
    ws = [Worker(root, f"rec-{i}", config(root, celery), queues="cpu").start(redis) for i in range(2)]
    try:
        with Run(root, celery) as run:
            run.drop(pair)
            while True:
                running = [(w, e) for w in ws for e in w.events("stage_started")]
                if running:
                    break
                time.sleep(0.02)
            victim = running[0][0]
            time.sleep(0.5)
            killed = time.time()
            victim.kill()
            other = next(w for w in ws if w is not victim)
            while not other.events("stage_started"):
                time.sleep(0.02)
            restart = other.events("stage_started")[0]["timestamp"]
            from datetime import datetime

            restarted = datetime.fromisoformat(restart.replace("Z", "+00:00")).timestamp()
            run.wait(1)
            return {"lease": lease, "kill_to_next_start": restarted - killed}
    finally:
        for w in ws:
            w.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--overhead-jobs", type=int, default=8)
    ap.add_argument("--lease", type=float, default=10.0)
    args = ap.parse_args()
    configure_logging(None, "warning", stream=open("/dev/null", "w"))  # noqa: SIM115 - for the whole run
    with tempfile.TemporaryDirectory(prefix="omad-cluster-bench-") as d:
        tmp = Path(d)
        redis = RedisServer(tmp / "redis").start()
        try:
            small = sources(tmp / "src-small", args.overhead_jobs, 0.5, "320x180")
            ov = overhead(tmp / "ov", redis, small)
            print(f"per job, one at a time (median of {args.overhead_jobs - 1}): local {ov['local'] * 1000:.0f} ms, "
                  f"celery {ov['celery'] * 1000:.0f} ms, overhead {(ov['celery'] - ov['local']) * 1000:.0f} ms "
                  "per stage (caption jobs have one stage)")
            pairs = sources(tmp / "src", args.jobs, 2.0, "640x360")
            one = throughput(tmp, redis, pairs, 1)
            two = throughput(tmp, redis, pairs, 2)
            print(f"{args.jobs} caption jobs (2 s, 640x360): one worker {one:.1f} s, two workers {two:.1f} s, "
                  f"ratio {one / two:.2f}x")
            rec = recovery(tmp, redis, sources(tmp / "src-rec", 1, 8.0, "960x540")[0], args.lease)
            print(f"worker killed mid-stage: next attempt started {rec['kill_to_next_start']:.1f} s later "
                  f"(lease_seconds {rec['lease']:g}, backoff 0.5 s)")
        finally:
            redis.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
