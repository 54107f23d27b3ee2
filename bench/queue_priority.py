"""Priorities on the celery executor's Redis: priority steps in one queue vs a queue per priority.

Starts a redis-server on a free port (no persistence), and for each strategy
publishes N task-sized messages with kombu (the transport Celery uses) in a
random mix of high, normal and low, then consumes them one by one with a
prefetch of 1, as an ``omad worker`` does. Prints publish and consume rates and
how well the order followed the priorities: the share of messages taken while
a higher-priority one was waiting ("inversions"; 0 is perfect).

    .venv/bin/python bench/queue_priority.py [N]

Strategies:
- ``none``: one plain queue (the baseline: FIFO, no priorities);
- ``steps``: one queue with kombu's ``priority_steps`` 0-9 and
  ``queue_order_strategy: priority`` (what omad uses);
- ``queues``: one queue per priority, the worker consuming from all three
  (Celery's documented alternative).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from kombu import Connection, Exchange, Queue

PRIORITIES = {"high": 3, "normal": 5, "low": 7}  # omad's Redis steps for high/normal/low (0 first)
BODY = {"task": "omad.stage", "args": [{"job": "x" * 16, "settings": {"k": "v" * 2000}}]}  # ~2 KB, like a task


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(folder: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            with Connection(url) as c:
                c.ensure_connection(max_retries=1)
            return proc, url
        except Exception:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def _run(url: str, strategy: str, n: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [rng.choice(list(PRIORITIES)) for _ in range(n)]
    options: dict[str, Any] = {}
    if strategy == "steps":
        options = {"priority_steps": list(range(10)), "queue_order_strategy": "priority"}
    exchange = Exchange("bench", type="direct")
    if strategy == "queues":
        queues = {p: Queue(f"bench.{p}", exchange, routing_key=f"bench.{p}") for p in PRIORITIES}
    else:
        q = Queue(f"bench.{strategy}", exchange, routing_key=f"bench.{strategy}")
        queues = dict.fromkeys(PRIORITIES, q)
    with Connection(url, transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        for q in set(queues.values()):
            q.bind(conn.default_channel).declare()
        t0 = time.perf_counter()
        for i, p in enumerate(names):
            q = queues[p]
            producer.publish({**BODY, "i": i, "p": p}, exchange=exchange, routing_key=q.routing_key,
                             priority=PRIORITIES[p] if strategy == "steps" else None, declare=[q])
        published = time.perf_counter() - t0
        got: list[str] = []

        def on_message(body: Any, message: Any) -> None:
            got.append(body["p"])
            message.ack()

        with conn.Consumer(list(set(queues.values())), callbacks=[on_message], accept=["json"],
                           prefetch_count=1):
            t1 = time.perf_counter()
            while len(got) < n:
                conn.drain_events(timeout=10)
            consumed = time.perf_counter() - t1
    rank = {"high": 0, "normal": 1, "low": 2}
    left = {p: names.count(p) for p in PRIORITIES}
    inversions = 0
    for p in got:
        if any(left[q] for q in PRIORITIES if rank[q] < rank[p]):
            inversions += 1
        left[p] -= 1
    return {"strategy": strategy, "n": n, "publish_per_s": n / published, "consume_per_s": n / consumed,
            "inversions": inversions / n}


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt redis-server)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        proc, url = _redis(folder)
        try:
            rows = [_run(url, s, n) for s in ("none", "steps", "queues")]
        finally:
            proc.kill()
            proc.wait()
    print(f"{'strategy':9} {'publish/s':>10} {'consume/s':>10} {'inversions':>11}")
    for r in rows:
        print(f"{r['strategy']:9} {r['publish_per_s']:10.0f} {r['consume_per_s']:10.0f} {r['inversions']:11.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
