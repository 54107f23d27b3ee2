"""What one Prometheus scrape of a fresh ``omad run`` costs: size, series, latency, CPU.

Starts the real ``omad`` command against a temporary config (empty inbox, metrics on a
free loopback port), scrapes ``/metrics`` over HTTP as Prometheus would, and reads the
daemon's CPU time from ``/proc/PID/stat`` before and after. The daemon's own idle ticks
are counted in the CPU figure too, so it is an upper bound. Prints figures only.

    .venv/bin/python bench/metrics_scrape.py --scrapes 200
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
OMAD = str(REPO / ".venv" / "bin" / "omad")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _scrape(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"/metrics answered {resp.status}")
        return body
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes to time")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="omad-scrape-"))
    port = _free_port()
    (root / "inbox").mkdir()
    config = {"inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
              "metrics": {"enabled": True, "host": "127.0.0.1", "port": port}}
    (root / "omad.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([OMAD, "run", "--config", str(root / "omad.yaml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                body = _scrape(port)
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise SystemExit("omad run did not answer on its metrics port") from None
                time.sleep(0.2)
        for _ in range(5):  # warm up
            _scrape(port)
        cpu0 = _cpu_seconds(proc.pid)
        t0 = time.monotonic()
        times = []
        for _ in range(args.scrapes):
            start = time.perf_counter()
            body = _scrape(port)
            times.append(time.perf_counter() - start)
        wall = time.monotonic() - t0
        cpu = _cpu_seconds(proc.pid) - cpu0
        samples = [line for line in body.decode().splitlines() if line and not line.startswith("#")]
        series = [s for s in samples if not s.split("{")[0].split(" ")[0].endswith("_created")]
        times.sort()
        print(f"omad run, fresh, empty inbox; {args.scrapes} scrapes of /metrics over loopback, {os.cpu_count()} cores")
        print(f"  body {len(body) / 1024:.0f} KiB, {len(samples)} samples ({len(series)} without _created)")
        print(f"  latency p50 {1000 * statistics.median(times):.1f} ms, "
              f"p95 {1000 * times[int(0.95 * (len(times) - 1))]:.1f} ms")
        print(f"  daemon CPU {1000 * cpu / args.scrapes:.1f} ms per scrape (upper bound: {wall:.1f} s of idle ticks "
              "included)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
