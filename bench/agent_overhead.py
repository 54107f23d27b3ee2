"""omad's own time per agent plan: everything but model time, measured against the FAKE Ollama server.

Runs the plan stage (brief loading, guardrails, five role calls over real HTTP
with the real ``ollama`` client, the GPU lane, assembly, scenes.yaml) many
times against ``tests/fake_ollama.py``, which answers instantly. The fake's own
handler time is measured and subtracted, so what is left is omad's overhead
(plus the HTTP round trips on localhost).

    .venv/bin/python bench/agent_overhead.py --runs 30
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_ollama import FakeOllama  # noqa: E402

from omad.config import Config  # noqa: E402
from omad.lanes import Lanes  # noqa: E402
from omad.stage import StageContext  # noqa: E402
from omad.stages.plan import PlanStage  # noqa: E402


def _bundle(root: Path) -> Path:
    bundle = root / "bundle"
    bundle.mkdir()
    for name, colour in (("telhado.png", (200, 120, 40)), ("conta.png", (40, 90, 160))):
        Image.new("RGB", (640, 360), colour).save(bundle / name)
    brief = {
        "version": 1,
        "kind": "video",
        "name": "energia",
        "prompt": "Um vídeo curto explicando como a energia solar reduz a conta de luz. Contato: ana@example.com",
        "topic": "energia solar em casa",
        "audience": "famílias",
        "tone": "amigável",
        "duration_seconds": 45,
        "assets": [
            {"file": "telhado.png", "description": "painéis solares num telhado"},
            {"file": "conta.png", "description": "uma conta de luz sobre a mesa"},
        ],
    }
    (bundle / "brief.yaml").write_text(yaml.safe_dump(brief, allow_unicode=True), encoding="utf-8")
    return bundle


def _measure(fake: FakeOllama, bundle: Path, root: Path, runs: int, remote: bool) -> dict[str, Any]:
    config = Config.model_validate(
        {
            "llm": {"host": fake.url, "remote": remote},
            "guardrails": {"file": str(ROOT / "config" / "guardrails.yaml")},
        }
    )
    lanes = Lanes(1, config.gpu.vram_budget_gb, config.gpu.idle_unload_seconds)
    walls: list[float] = []
    own: list[float] = []
    requests = 0
    for i in range(runs + 1):  # the first run warms imports and connections; it is not counted
        work = root / f"work-{'r' if remote else 'l'}-{i}"
        work.mkdir(exist_ok=True)
        ctx = StageContext(
            job_id=f"bench-{i}",
            route="agent-video",
            name="energia",
            work=work,
            inputs={"brief": bundle / "brief.yaml"},
            options={},
            config=config,
            lanes=lanes,
            stage="plan",
        )
        before_requests, before_fake = len(fake.requests), fake.handler_seconds
        started = time.perf_counter()
        PlanStage().run(ctx)
        wall = time.perf_counter() - started
        if i == 0:
            continue
        walls.append(wall)
        own.append(wall - (fake.handler_seconds - before_fake))
        requests = len(fake.requests) - before_requests
    return {
        "mode": "remote (no GPU lane)" if remote else "local (GPU lane + residency)",
        "runs": runs,
        "requests": requests,
        "wall_median_ms": statistics.median(walls) * 1000,
        "own_median_ms": statistics.median(own) * 1000,
        "own_p95_ms": sorted(own)[max(0, round(0.95 * len(own)) - 1)] * 1000,
        "own_per_request_ms": statistics.median(own) * 1000 / max(1, requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOllama() as fake:
        root = Path(tmp)
        bundle = _bundle(root)
        rows = [_measure(fake, bundle, root, args.runs, remote) for remote in (False, True)]
    print(f"python {platform.python_version()} on {platform.machine()}, {args.runs} plans per mode")
    print("| mode | HTTP requests per plan | wall per plan (median) | omad's own time (median) | p95 | per request |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['mode']} | {r['requests']} | {r['wall_median_ms']:.1f} ms | {r['own_median_ms']:.1f} ms "
            f"| {r['own_p95_ms']:.1f} ms | {r['own_per_request_ms']:.1f} ms |"
        )


if __name__ == "__main__":
    main()
