"""Where a `perf record` of omad spent its CPU, grouped: x264, ffmpeg's filters, process starts, drawing, ...

Reads ``perf report --sort comm,dso`` of a recording of a whole ``omad``
process tree (omad's Python threads, ffmpeg, espeak-ng) and prints a
Markdown table of CPU seconds per group (samples divided by the sampling
frequency). The groups are the rows of the profile tables in
docs/benchmarks.md.

    perf record -F 999 -o perf.data -- .venv/bin/omad once --config omad.yaml
    .venv/bin/python bench/perf_groups.py perf.data --hz 999
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

_ROW = re.compile(r"\s+([\d.]+)%\s+(\d+)\s+(\S+)\s+(.+?)\s*$")


def group(comm: str, dso: str) -> str:
    """The table row a (command, shared object) pair of samples belongs to."""
    if comm == "ffmpeg":
        if "x264" in dso:
            return "ffmpeg: x264"
        if "ld-linux" in dso:
            return "ffmpeg: process start (dynamic linking)"
        if "kernel" in dso:
            return "ffmpeg: kernel (pipe reads, page faults, start)"
        if any(k in dso for k in ("avfilter", "swresample", "libass", "harfbuzz", "freetype")):
            return "ffmpeg: filters (captions, loudnorm, resampling)"
        if "avcodec" in dso:
            return "ffmpeg: codecs (AAC, decoders, JPEG)"
        return "ffmpeg: other"
    if comm == "python" or comm.startswith(("omad", "job-", "Thread", "Inotify")):
        if "openblas" in dso:
            return "python: OpenBLAS threads"
        if any(k in dso for k in ("libavfilter", "libswresample", "libavformat", "libavcodec", "libavutil")):
            return "python: ffmpeg's libraries in-process (PyAV: loudnorm, resampling, probes)"
        if any(k in dso for k in ("cv2", "multiarray", "imaging", "pocketfft")):
            return "python: drawing and numpy (cv2, numpy, Pillow)"
        if "kernel" in dso:
            return "python: kernel (page faults, pipe writes)"
        if "libpython" in dso:
            return "python: interpreter"
        return "python: other libraries"
    if "espeak" in comm:
        return "espeak-ng"
    return "other processes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="perf.data of the run")
    parser.add_argument("--hz", type=float, default=999.0, help="the -F frequency it was recorded at")
    args = parser.parse_args()
    report = subprocess.run(["perf", "report", "-i", str(args.data), "--sort", "comm,dso", "--stdio", "-g", "none",
                             "-n", "--no-children"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, int] = {}
    total = 0
    for line in report.splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        n = int(m.group(2))
        total += n
        key = group(m.group(3), m.group(4))
        groups[key] = groups.get(key, 0) + n
    print("| where | CPU s | share |")
    print("| --- | ---: | ---: |")
    for key, n in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {key} | {n / args.hz:.2f} | {n / max(total, 1) * 100:.1f} % |")
    print(f"| total | {total / args.hz:.2f} | 100 % |")


if __name__ == "__main__":
    main()
