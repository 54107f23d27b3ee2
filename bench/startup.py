"""Start-up and small-job overhead of ``omad once``, two source trees side by side in one run.

Each tree (a checkout of omad: ``--tree NAME=PATH``) runs through the shared
virtual environment with ``PYTHONPATH`` set to it, so its own code is imported.
Rounds alternate the trees (and the bare ffmpeg loop), so drifting machine load
hits all alike. The script prints figures; it asserts nothing about timings.

    .venv/bin/python bench/startup.py --tree before=/tmp/omad-before --tree after=. --empty 7 --caption 3

``empty``: ``omad once`` on an empty inbox, CPU of the whole process tree
(user + system, from ``getrusage``), N runs per tree.

``caption``: ten 4 s 640x360 caption jobs (bench/core.py's inputs) through one
``omad once`` per tree against a bash loop of the caption stage's ffmpeg argv
(as ``bench/floor.py caption``), CPU over the loop's CPU, R rounds. Every
``omad once`` gets a fresh state folder unless ``--keep-cache`` hands each round
the previous round's ``state/cache/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import OMAD, caption_omad, loop_script, machine, make_inputs, timed, write_config  # noqa: E402

# A normal install has its bytecode cached (see bench/floor.py).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _use(tree: Path) -> None:
    os.environ["PYTHONPATH"] = str(tree)


def empty_once(tree: Path, root: Path) -> float:
    _use(tree)
    config = write_config(root)
    _wall, cpu = timed([str(OMAD), "once", "--config", str(config)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd=root)
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, help="NAME=PATH of an omad checkout (two or more)")
    ap.add_argument("--empty", type=int, default=7, help="empty-inbox runs per tree")
    ap.add_argument("--caption", type=int, default=3, help="caption-batch rounds")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--settle", type=float, default=0.2)
    ap.add_argument("--keep-cache", action="store_true",
                    help="caption rounds after the first start with the previous round's state/cache/ (as a "
                         "long-lived state folder would: the remembered ffmpeg version line)")
    args = ap.parse_args()
    trees = {name: Path(path).resolve() for name, _, path in (t.partition("=") for t in args.tree)}
    print(machine())
    with tempfile.TemporaryDirectory(prefix="omad-startup-") as tmp:
        root = Path(tmp)
        for name, tree in trees.items():  # warm the bytecode caches of each tree, not measured
            empty_once(tree, root / f"warm-{name}")
        empty: dict[str, list[float]] = {n: [] for n in trees}
        for i in range(args.empty):
            for name, tree in trees.items():
                empty[name].append(empty_once(tree, root / f"empty-{name}-{i}"))
        print(f"\n`omad once`, empty inbox, CPU s of the process tree ({args.empty} runs each, alternating)")
        print("| tree | runs | min | median |")
        print("| --- | --- | ---: | ---: |")
        for name, cpus in empty.items():
            print(f"| {name} | {', '.join(f'{c:.3f}' for c in cpus)} | {min(cpus):.3f} | "
                  f"{statistics.median(cpus):.3f} |")
        if args.caption:
            src = root / "src"
            names = make_inputs(src, args.count, "640x360", 4.0)
            script = loop_script(src, root / "loop", names, "640x360")
            over: dict[str, list[float]] = {n: [] for n in trees}
            print(f"\n{args.count} caption jobs (640x360, 4 s) through `omad once` against the bare ffmpeg loop, "
                  "CPU s of each process tree")
            print("| round | loop CPU s | " + " | ".join(f"{n} CPU s | {n} over loop" for n in trees) + " |")
            print("| --- | ---: | " + " | ".join("---: | ---:" for _ in trees) + " |")
            for r in range(args.caption):
                _lw, lc = timed(["bash", str(script)])
                cells = []
                for name, tree in trees.items():
                    _use(tree)
                    previous = root / f"once-{name}-{r - 1}" / "state" / "cache"
                    if args.keep_cache and previous.is_dir():
                        shutil.copytree(previous, root / f"once-{name}-{r}" / "state" / "cache")
                    once = caption_omad(src, names, root / f"once-{name}-{r}", args.settle)
                    over[name].append(once["cpu"] / lc - 1)
                    cells.append(f"{once['cpu']:.2f} | {over[name][-1] * 100:+.1f} %")
                print(f"| {r + 1} | {lc:.2f} | " + " | ".join(cells) + " |", flush=True)
            for name, values in over.items():
                print(f"{name}: CPU over the loop min {min(values) * 100:+.1f} % / "
                      f"median {statistics.median(values) * 100:+.1f} %")
    print(machine())


if __name__ == "__main__":
    main()
