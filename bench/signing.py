"""What signing and checking a stage task costs: HMAC-SHA256 over canonical JSON, and the name checks.

A realistic message (a scene-video stage: the default travelling settings, the
shipped guardrail rules, a few inputs and artifacts) is signed by the daemon's
side and accepted by the worker's side (:func:`omad.cluster.wire.accept_task`:
signature, shapes, task id), and a done reply is accepted by the daemon's side
(:func:`accept_reply`, names resolved against a real folder). Each is timed
against plain ``json.dumps`` of the same message, side by side in one run. The
script prints figures; it asserts nothing.

    .venv/bin/python bench/signing.py --rounds 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omad.cluster.task import StageTask, task_id, task_settings  # noqa: E402
from omad.cluster.wire import accept_reply, accept_task  # noqa: E402
from omad.config import Config  # noqa: E402
from omad.guardrails import guardrails_for  # noqa: E402
from omad.trust import Purpose, new_key, sign  # noqa: E402


def _per_call_us(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    key = new_key().encode()
    cfg = Config()
    job = "0123456789abcdef"
    desc = StageTask(task_id=task_id("abc123def0", job, "render", 1), job=job, route="video", name="aula",
                     stage="render", attempt=1, lane="cpu", work=f"/srv/omad/jobs/{job}",
                     inputs={"brief": "inputs/aula.yaml"},
                     artifacts={"scene_brief": "runs/assets.1/scenes.yaml", "voice": "runs/voice.1/voice.json"},
                     options={"title": "Aula"}, timeout=600.0, settings=task_settings(cfg),
                     guardrails=guardrails_for(cfg).rules.model_dump(mode="json"), instance="abc123def0")
    message = desc.to_dict()
    signed = sign(message, key, Purpose.TASK)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "runs" / "render.1").mkdir(parents=True)
        reply = sign({"status": "done", "task_id": desc.task_id, "attempt": 1, "lane_seconds": {"cpu": 3.2},
                      "result": {"artifacts": {"video": "runs/render.1/video.mp4", "srt": "runs/render.1/v.srt",
                                               "poster": "runs/render.1/poster.jpg"},
                                 "publish": {".mp4": "video", ".srt": "srt", ".jpg": "poster"}}}, key, Purpose.REPLY)
        rows = [
            ("json.dumps of the message (baseline)", _per_call_us(lambda: json.dumps(message), args.rounds)),
            ("sign the message (daemon)", _per_call_us(lambda: sign(message, key, Purpose.TASK), args.rounds)),
            ("accept the message (worker: signature, shapes, task id)",
             _per_call_us(lambda: accept_task(signed, key, desc.task_id), args.rounds)),
            ("accept a done reply (daemon: signature, names resolved)",
             _per_call_us(lambda: accept_reply(reply, key, desc, folder), args.rounds)),
        ]
    print(f"message: {len(json.dumps(signed))} bytes signed ({len(json.dumps(message))} unsigned)")
    for label, us in rows:
        print(f"{label:60} {us:8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
