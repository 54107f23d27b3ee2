"""Crash torture: 60 mixed jobs, `omad run` killed with SIGKILL at 20 random moments and restarted each time.

Then it checks what a user would: every drop has exactly one result, byte-identical
(sha256) to a clean run of the same drops; no partial, temporary or duplicate
file in the outbox; no original lost (each is in the archive); nothing failed.

    .venv/bin/python bench/crash_torture.py [--jobs 60] [--kills 20] [--seed 7]

Prints the figures recorded in docs/benchmarks.md; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
OMAD = str(REPO / ".venv" / "bin" / "omad")
ROUTES = ("caption", "narrate", "img2vid", "addaudio")


def ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_sources(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    ff("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
       "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
       str(folder / "v.mp4"))
    ff("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=1", "-frames:v", "1", str(folder / "i.png"))
    ff("-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100", "-t", "1.5", str(folder / "a.wav"))
    return {"v": folder / "v.mp4", "i": folder / "i.png", "a": folder / "a.wav"}


def plan(n: int) -> list[tuple[str, str]]:
    """(route, stem) for n jobs, the routes mixed in turn."""
    return [(ROUTES[i % len(ROUTES)], f"job{i:02d}") for i in range(n)]


def drop(inbox: Path, staging: Path, route: str, stem: str, src: dict[str, Path]) -> None:
    """Write one drop under staging, then rename it in (complete files only, as a careful copier does)."""
    staging.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    if route == "caption":
        files[f"{stem}.mp4"] = src["v"].read_bytes()
        files[f"{stem}.srt"] = f"1\n00:00:00,100 --> 00:00:01,500\nLegenda {stem}, ação!\n".encode()
    elif route == "narrate":
        files[f"{stem}.txt"] = f"Olá. Este é o trabalho {stem[3:]}, com 12 palavras e R$ 5,00.".encode()
    elif route == "img2vid":
        files[f"{stem}.png"] = src["i"].read_bytes()
        files[f"{stem}.wav"] = src["a"].read_bytes()
    else:
        files[f"{stem}.mp4"] = src["v"].read_bytes()
        files[f"{stem}.wav"] = src["a"].read_bytes()
    for name, data in files.items():
        (staging / name).write_bytes(data)
    for name in files:
        os.replace(staging / name, inbox / name)


def config(root: Path) -> Path:
    cfg = {
        "inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
        "watch": {"settle_seconds": 0.3, "rescan_seconds": 2.0},
        "intake": {"partner_grace_seconds": 0.5, "on_duplicate": "reprocess"},  # same media, 60 separate jobs
        "jobs": {"backoff_seconds": 0.2, "backoff_max_seconds": 1.0, "max_attempts": 50,
                 "shutdown_grace_seconds": 1.0},
        "video": {"preset": "custom", "width": 320, "height": 180, "fps": 15},
        "img2vid": {"default_seconds": 1.0},
        "metrics": {"enabled": False},
        "log": {"level": "warning"},
    }
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    path = root / "omad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def results(outbox: Path) -> dict[str, str]:
    """sha256 of every published media file (sidecars hold timestamps, so they are not compared)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in outbox.iterdir() if p.is_file() and p.suffix != ".json"}


def job_states(state: Path) -> dict[str, int]:
    path = state / "journal.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


def running_stages(state: Path) -> int:
    path = state / "journal.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM stages WHERE status='running'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def clean_run(root: Path, jobs: list[tuple[str, str]], src: dict[str, Path]) -> tuple[dict[str, str], float]:
    cfg = config(root)
    for route, stem in jobs:
        drop(root / "inbox", root / "staging", route, stem, src)
    t0 = time.monotonic()
    subprocess.run([OMAD, "once", "--config", str(cfg)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return results(root / "outbox"), time.monotonic() - t0


def torture(root: Path, jobs: list[tuple[str, str]], src: dict[str, Path], kills: int,
            rng: random.Random) -> dict[str, object]:
    cfg = config(root)
    log = open(root / "omad.stderr", "ab")  # noqa: SIM115 - kept open across restarts

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([OMAD, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=log)

    proc = start()
    t0 = time.monotonic()
    pending = list(jobs)
    mid_stage = 0
    for _k in range(kills):
        # Drops keep arriving between kills, so some land while omad is down or starting.
        for _ in range(min(len(pending), rng.randint(1, 5))):
            route, stem = pending.pop(0)
            drop(root / "inbox", root / "staging", route, stem, src)
        time.sleep(rng.uniform(0.3, 3.0))
        mid_stage += running_stages(root / "state") > 0
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start()
    for route, stem in pending:
        drop(root / "inbox", root / "staging", route, stem, src)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        states = job_states(root / "state")
        if sum(states.values()) >= len(jobs) and set(states) <= {"done", "failed", "duplicate"}:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()
    return {"seconds": elapsed, "states": job_states(root / "state"), "killed_mid_stage": mid_stage}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="omad-torture-"))
    try:
        src = make_sources(work / "src")
        jobs = plan(args.jobs)
        reference, clean_seconds = clean_run(work / "clean", jobs, src)
        report = torture(work / "torture", jobs, src, args.kills, rng)
        outbox = work / "torture" / "outbox"
        got = results(outbox)
        names = sorted(p.name for p in outbox.iterdir() if p.is_file())
        temp = [n for n in names if n.startswith(".")]
        dupes = [n for n in names if n.rsplit(".", 1)[0].endswith(("-2", "-3"))]
        differ = sorted(n for n in reference if got.get(n) != reference[n])
        extra = sorted(set(got) - set(reference))
        sidecars = {n for n in names if n.endswith(".json")}
        no_sidecar = sorted(n for n in got if f"{n.rsplit('.', 1)[0]}.json" not in sidecars)
        originals = set()
        for p in (work / "torture" / "state" / "archive").rglob("*"):
            if p.is_file():
                originals.add(p.name)
        expected_originals = set()
        for p in (work / "clean" / "state" / "archive").rglob("*"):
            if p.is_file():
                expected_originals.add(p.name)
        lost = sorted(expected_originals - originals - {p.name for p in (work / "torture" / "inbox").iterdir()})
        states = report["states"]
        figures = {
            "jobs": args.jobs, "kills": args.kills, "seed": args.seed,
            "killed_while_a_stage_ran": report["killed_mid_stage"],
            "clean_run_seconds": round(clean_seconds, 1), "torture_seconds": round(float(str(report["seconds"])), 1),
            "job_states": states, "results": len(got), "reference_results": len(reference),
            "identical_to_clean_run": len(reference) - len(differ), "differ": differ, "extra": extra,
            "temporary_files": temp, "duplicates": dupes, "results_without_sidecar": no_sidecar,
            "originals_lost": lost,
        }
        print(json.dumps(figures, indent=1))
        ok = not (differ or extra or temp or dupes or no_sidecar or lost) and states.get("done") == args.jobs \
            if isinstance(states, dict) else False
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
