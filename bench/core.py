"""Core daemon benchmarks: drop-to-start latency, caption overhead against plain ffmpeg, the idle daemon.

Everything runs the real ``omad`` command as a subprocess against a temporary
config, inbox, outbox and state folder; figures come from the job journal
(opened read-only), from wall clocks around the subprocesses and from
``/proc``. The script only prints figures: it asserts nothing about timings.

    .venv/bin/python bench/core.py latency --count 30
    .venv/bin/python bench/core.py caption --count 50 --size 640x360 --seconds 4
    .venv/bin/python bench/core.py idle --seconds 60
    .venv/bin/python bench/core.py all

``latency``: files dropped one at a time into a running ``omad run`` (the next
drop waits until the previous job has finished, so no job waits behind
another); per job, ``started_at - dropped_at - settle`` (omad's view:
dropped_at is when omad first saw the file) and ``started_at - written_at -
settle`` (the user's view: from the moment this script closed the file).
Drops are spaced by a random pause so they land at random phases of the
daemon's tick and of the polling observer's interval.

``caption``: N video+SRT pairs through one ``omad once`` against a bash loop
running ffmpeg with the argv omad's caption stage builds (same ASS files,
built beforehand with ``omad.media.subtitles.build_ass``). Runs alternate (loop,
omad, loop, omad...) so drifting machine load hits both alike.

``idle``: ``omad run`` with an empty inbox; CPU from ``/proc/PID/stat``
(utime+stime over the window), RSS from ``/proc/PID/status`` sampled every
second, plus the heaviest imports of the same command under ``-X importtime``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import resource
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OMAD = ROOT / ".venv" / "bin" / "omad"
PYTHON = ROOT / ".venv" / "bin" / "python"

from omad.config import Config  # noqa: E402
from omad.media.subtitles import build_ass, read_srt  # noqa: E402

# Distinct pt-BR sentences so that no two drops share content (a repeat would be skipped as a duplicate).
SENTENCES = [
    "O relatório de vendas já está pronto.",
    "A reunião começa às nove horas.",
    "Chegou a nova coleção de verão.",
    "O café da manhã é servido na varanda.",
    "Hoje o céu está limpo e azul.",
    "A biblioteca abre aos sábados.",
]


# -- shared helpers ---------------------------------------------------------------


def machine() -> str:
    load = os.getloadavg()
    return (f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def write_config(root: Path, **sections: dict[str, Any]) -> Path:
    data: dict[str, Any] = {
        "inbox": str(root / "inbox"),
        "outbox": str(root / "outbox"),
        "state_dir": str(root / "state"),
        "web": {"enabled": False, "port": 0},
        "intake": {"inputs_after": "delete"},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    path = root / "omad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))]


def journal_rows(state: Path) -> list[dict[str, Any]]:
    db = state / "journal.sqlite"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM jobs")]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
    finally:
        conn.close()


def stage_rows(state: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM stages")]
    finally:
        conn.close()


@contextmanager
def running_daemon(config: Path, root: Path, python_args: tuple[str, ...] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """``omad run`` as a real subprocess; yields once it has logged ``started``."""
    err = open(root / "daemon.stderr", "wb")  # noqa: SIM115 - closed in finally
    cmd = [str(PYTHON), *python_args, str(OMAD), "run", "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=root)
    try:
        deadline = time.monotonic() + 60
        while b'"event": "started"' not in (root / "daemon.stderr").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("omad run did not start:\n" + (root / "daemon.stderr").read_text()[-2000:])
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.close()


# -- latency ----------------------------------------------------------------------


def latency_run(mode: str, settle: float, poll: float, count: int, gap: float, root: Path) -> dict[str, Any]:
    config = write_config(root, watch={"mode": mode, "settle_seconds": settle, "poll_interval_seconds": poll})
    inbox = root / "inbox"
    written: dict[str, float] = {}
    rng = random.Random(7)
    with running_daemon(config, root):
        time.sleep(1.0)  # let the observer settle in
        for i in range(count):
            name = f"drop{i:03d}"
            text = f"{SENTENCES[i % len(SENTENCES)]} Número {i}."
            with open(inbox / f"{name}.txt", "w", encoding="utf-8") as f:
                f.write(text)
            written[name] = time.time()
            deadline = time.monotonic() + settle + poll + 60
            while True:
                rows = {r["name"]: r for r in journal_rows(root / "state")}
                row = rows.get(name)
                if row is not None and row["status"] in ("done", "failed", "duplicate"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not finish in time; see {root / 'daemon.stderr'}")
                time.sleep(0.05)
            # At least one polling interval of spread, so drops land at every phase of the observer's cycle.
            time.sleep(rng.uniform(0.0, max(gap, poll if mode == "polling" else 0.0)))
    rows = {r["name"]: r for r in journal_rows(root / "state")}
    bad = [n for n in written if rows[n]["status"] != "done"]
    if bad:
        raise RuntimeError(f"jobs not done: {bad}; see {root / 'daemon.stderr'}")
    omad_view = [rows[n]["started_at"] - rows[n]["dropped_at"] - settle for n in written]
    user_view = [rows[n]["started_at"] - written[n] - settle for n in written]
    seen = [rows[n]["dropped_at"] - written[n] for n in written]
    return {"mode": mode, "settle": settle, "poll": poll, "count": count, "omad": omad_view, "user": user_view,
            "seen": seen}


def cmd_latency(args: argparse.Namespace) -> None:
    print(machine())
    results = []
    plans = ([("inotify", args.poll_intervals[0])] if "inotify" in args.modes else []) + (
        [("polling", p) for p in args.poll_intervals] if "polling" in args.modes else [])
    for mode, poll in plans:
        with tempfile.TemporaryDirectory(prefix="omad-lat-") as tmp:
            results.append(latency_run(mode, args.settle, poll, args.count, args.gap, Path(tmp)))
        print(f"  {mode} poll={poll}: done ({machine()})", file=sys.stderr)
    print(f"{args.count} lone .txt drops per row (narrate, espeak), settle_seconds {args.settle}, "
          "one drop at a time; seconds, settle excluded; "
          "omad view: started_at - dropped_at (omad first saw the file); user view: started_at - file closed")
    print("| watch.mode | poll_interval_seconds | omad view p50 | p95 | max | user view p50 | p95 | max "
          "| write-to-seen p50 | p95 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        poll = "-" if r["mode"] == "inotify" else f"{r['poll']:g}"
        o, u, s = r["omad"], r["user"], r["seen"]
        print(f"| {r['mode']} | {poll} | {percentile(o, 50):.3f} | {percentile(o, 95):.3f} | {max(o):.3f} "
              f"| {percentile(u, 50):.3f} | {percentile(u, 95):.3f} | {max(u):.3f} "
              f"| {percentile(s, 50):.3f} | {percentile(s, 95):.3f} |")
    print(machine())


# -- caption overhead ---------------------------------------------------------------


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def make_inputs(folder: Path, count: int, size: str, seconds: float) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "source.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", f"{seconds}", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(src)],
        check=True,
    )
    names = []
    for i in range(count):
        name = f"clip{i:03d}"
        (folder / f"{name}.mp4").write_bytes(src.read_bytes())
        half = seconds / 2
        srt = (f"1\n{_srt_time(0.2)} --> {_srt_time(half)}\n{SENTENCES[i % len(SENTENCES)]}\n\n"
               f"2\n{_srt_time(half)} --> {_srt_time(seconds - 0.2)}\nLegenda número {i}, ação e coração.\n")
        (folder / f"{name}.srt").write_text(srt, encoding="utf-8")
        names.append(name)
    src.unlink()
    return names


def loop_script(src: Path, work: Path, names: list[str], size: str) -> Path:
    """A bash loop running ffmpeg with the caption stage's argv, ASS files built by omad's own builder."""
    cfg = Config()
    v = cfg.video
    width, height = (int(x) for x in size.split("x"))
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        cues, _enc = read_srt(src / f"{name}.srt", f"{name}.srt")
        build_ass(cues, width, height, cfg.caption, work / f"{name}.ass")
    lines = ["set -e", f"cd {shlex.quote(str(work))}", f"for n in {' '.join(names)}; do"]
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1",
            "-protocol_whitelist", "file,pipe", "-i", f"{src}/$n.mp4", "-map", "0:v:0", "-map", "0:a:0?",
            "-vf", "ass=$n.ass", "-c:v", "libx264", "-preset", v.x264_preset, "-crf", str(v.crf),
            "-pix_fmt", "yuv420p", "-c:a", "copy", "-fps_mode", "passthrough", "-movflags", "+faststart",
            "$n.out.mp4"]
    quoted = " ".join(f'"{a}"' if "$" in a else shlex.quote(a) for a in argv)
    lines += [f"  {quoted} > /dev/null", "done"]
    script = work / "loop.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def timed(cmd: list[str], **kw: Any) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user+sys of the whole waited-for process tree)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def caption_omad(src: Path, names: list[str], root: Path, settle: float) -> dict[str, Any]:
    config = write_config(root, watch={"settle_seconds": settle})
    inbox = root / "inbox"
    for name in names:
        for ext in (".mp4", ".srt"):
            os.link(src / f"{name}{ext}", inbox / f"{name}{ext}")
    t_start = time.time()
    with open(root / "once.stderr", "wb") as err:
        wall, cpu = timed([str(OMAD), "once", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=err, cwd=root)
    t_end = time.time()
    rows = journal_rows(root / "state")
    done = [r for r in rows if r["status"] == "done"]
    if len(done) != len(names):
        raise RuntimeError(f"{len(done)}/{len(names)} jobs done; see {root / 'once.stderr'}")
    stages = sorted((s for s in stage_rows(root / "state") if s["name"] == "caption"), key=lambda s: s["started_at"])
    finished = {r["id"]: r["finished_at"] for r in rows}
    gaps = [b["started_at"] - a["finished_at"] for a, b in zip(stages, stages[1:], strict=False)]
    return {
        "wall": wall,
        "cpu": cpu,
        "stage_sum": sum(s["finished_at"] - s["started_at"] for s in stages),
        "stage_median": statistics.median(s["finished_at"] - s["started_at"] for s in stages),
        "publish_median": statistics.median(finished[s["job_id"]] - s["finished_at"] for s in stages),
        "gap_median": statistics.median(gaps) if gaps else 0.0,
        "gap_sum": sum(gaps),
        "head": stages[0]["started_at"] - t_start,
        "tail": t_end - max(finished.values()),
    }


def breakdown(src: Path, names: list[str], root: Path, runs: int) -> dict[str, float]:
    """Where one caption stage's time goes, in process: the stage, its probe, its ffmpeg call, and bare ffmpeg.

    The same ffmpeg argv is run by omad's ``run_ffmpeg`` and by a bare ``subprocess.run``, alternately, so the
    difference is what the wrapper adds (progress parsing, the stderr and watchdog threads and their joins).
    """
    from omad.lanes import Lanes
    from omad.media.ffmpeg import SAFE_INPUT_ARGS, escape_filter_path, probe, run_ffmpeg
    from omad.stage import StageContext
    from omad.stages.caption import CaptionStage

    cfg = Config()
    v = cfg.video
    lanes = Lanes(1, cfg.gpu.vram_budget_gb, cfg.gpu.idle_unload_seconds)
    t: dict[str, list[float]] = {"stage": [], "probe": [], "run_ffmpeg": [], "bare": []}
    for i in range(runs + 1):  # the first round warms imports and caches; it is not counted
        name = names[i % len(names)]
        work = root / f"bd{i}"
        work.mkdir(parents=True)
        ctx = StageContext(job_id=f"bd{i}", route="caption", name=name, work=work,
                           inputs={"video": src / f"{name}.mp4", "srt": src / f"{name}.srt"}, options={},
                           config=cfg, lanes=lanes, stage="caption")
        t0 = time.perf_counter()
        CaptionStage().run(ctx)
        t1 = time.perf_counter()
        probe(src / f"{name}.mp4")
        t2 = time.perf_counter()
        argv = [*SAFE_INPUT_ARGS, "-i", str(src / f"{name}.mp4"), "-map", "0:v:0", "-map", "0:a:0?",
                "-vf", f"ass={escape_filter_path(work / 'captioned.mp4.ass')}", "-c:v", "libx264",
                "-preset", v.x264_preset, "-crf", str(v.crf), "-pix_fmt", "yuv420p", "-c:a", "copy",
                "-fps_mode", "passthrough", "-movflags", "+faststart", str(work / "again.mp4")]
        run_ffmpeg(argv, timeout=600, duration=4.0, progress=lambda f: None)
        t3 = time.perf_counter()
        subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1",
                        *argv[:-1], str(work / "bare.mp4")], check=True, stdout=subprocess.DEVNULL)
        t4 = time.perf_counter()
        if i == 0:
            continue
        for key, value in (("stage", t1 - t0), ("probe", t2 - t1), ("run_ffmpeg", t3 - t2), ("bare", t4 - t3)):
            t[key].append(value)
    return {k: statistics.median(vals) for k, vals in t.items()}


def cmd_caption(args: argparse.Namespace) -> None:
    print(machine())
    with tempfile.TemporaryDirectory(prefix="omad-cap-") as tmp:
        root = Path(tmp)
        src = root / "src"
        names = make_inputs(src, args.count, args.size, args.seconds)
        script = loop_script(src, root / "loop", names, args.size)
        startup = []
        loops: list[tuple[float, float]] = []
        omads: list[dict[str, Any]] = []
        for r in range(args.repeats):
            loops.append(timed(["bash", str(script)]))
            print(f"  loop run {r + 1}: {loops[-1][0]:.2f} s ({machine()})", file=sys.stderr)
            omads.append(caption_omad(src, names, root / f"omad{r}", args.settle))
            print(f"  omad run {r + 1}: {omads[-1]['wall']:.2f} s ({machine()})", file=sys.stderr)
            # An `omad once` with an empty inbox: interpreter start, imports, journal, shutdown.
            empty = root / f"empty{r}"
            empty.mkdir()
            startup.append(timed([str(OMAD), "once", "--config", str(write_config(empty))],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=empty)[0])
        n = args.count
        print(f"{n} caption jobs, {args.size} {args.seconds:g} s H.264+AAC inputs, libx264 "
              f"{Config().video.x264_preset} CRF {Config().video.crf}; `omad once` with settle_seconds {args.settle} "
              f"(subtracted in 'omad - settle'); {args.repeats} alternating runs")
        print("| run | loop wall s | loop CPU s | omad wall s | omad - settle s | omad CPU s "
              "| per job loop / omad ms | overhead (wall - settle) | overhead (CPU) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r, ((lw, lc), o) in enumerate(zip(loops, omads, strict=True)):
            net = o["wall"] - args.settle
            print(f"| {r + 1} | {lw:.2f} | {lc:.2f} | {o['wall']:.2f} | {net:.2f} | {o['cpu']:.2f} "
                  f"| {lw / n * 1000:.0f} / {net / n * 1000:.0f} | {(net / lw - 1) * 100:+.1f}% "
                  f"| {(o['cpu'] / lc - 1) * 100:+.1f}% |")
        print("where omad's wall time goes (medians per job, and the run's head and tail), ms:")
        print("| run | caption stage per job | loop ffmpeg per job | lane idle between stages "
              "| publish after stage | start to first stage | last job to exit |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r, ((lw, _lc), o) in enumerate(zip(loops, omads, strict=True)):
            print(f"| {r + 1} | {o['stage_median'] * 1000:.0f} | {lw / n * 1000:.0f} | {o['gap_median'] * 1000:.0f} "
                  f"| {o['publish_median'] * 1000:.0f} | {o['head'] * 1000:.0f} | {o['tail'] * 1000:.0f} |")
        total_loop = sum(w for w, _c in loops)
        total_omad = sum(o["wall"] - args.settle for o in omads)
        print(f"all {args.repeats} runs together: loop {total_loop:.2f} s, omad {total_omad:.2f} s (settle excluded), "
              f"overhead {(total_omad / total_loop - 1) * 100:+.1f}%")
        if args.breakdown > 0:
            b = breakdown(src, names, root / "breakdown", args.breakdown)
            rest = b["stage"] - b["probe"] - b["run_ffmpeg"]
            print(f"one caption stage in process (median of {args.breakdown}), ms: stage {b['stage'] * 1000:.0f} = "
                  f"ffprobe {b['probe'] * 1000:.0f} + run_ffmpeg {b['run_ffmpeg'] * 1000:.0f} + the rest "
                  f"{rest * 1000:.0f}; the same ffmpeg argv bare (subprocess.run) {b['bare'] * 1000:.0f}, "
                  f"so run_ffmpeg adds {(b['run_ffmpeg'] - b['bare']) * 1000:.0f}")
        print(f"`omad once` on an empty inbox (start, imports, journal, shutdown): "
              f"median {statistics.median(startup):.2f} s of the omad wall time")
    print(machine())


# -- idle -------------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def idle_run(label: str, root: Path, seconds: float, warmup: float, **sections: dict[str, Any]) -> dict[str, Any]:
    config = write_config(root, **sections)
    hz = os.sysconf("SC_CLK_TCK")
    with running_daemon(config, root) as proc:
        time.sleep(warmup)
        rss: list[int] = []
        t0, c0 = time.monotonic(), _cpu_ticks(proc.pid)
        while time.monotonic() - t0 < seconds:
            rss.append(_status_kb(proc.pid, "VmRSS"))
            time.sleep(1.0)
        t1, c1 = time.monotonic(), _cpu_ticks(proc.pid)
        threads = _status_kb(proc.pid, "Threads")
        hwm = _status_kb(proc.pid, "VmHWM")
    return {"label": label, "cpu_pct": (c1 - c0) / hz / (t1 - t0) * 100, "rss_mean": statistics.mean(rss) / 1024,
            "rss_max": max(rss) / 1024, "hwm": hwm / 1024, "threads": threads, "seconds": t1 - t0}


def importtime(root: Path) -> list[tuple[str, float]]:
    """What `omad run` imports at start: self import time (ms) summed by top-level package, heaviest first."""
    config = write_config(root)
    with running_daemon(config, root, python_args=("-X", "importtime")):
        time.sleep(2.0)
    totals: dict[str, float] = {}
    for line in (root / "daemon.stderr").read_text().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            pkg = m.group(3).split(".")[0]
            totals[pkg] = totals.get(pkg, 0.0) + int(m.group(1)) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])


def imported_modules(root: Path) -> int:
    """How many modules `omad run` has loaded once started (counted from the -X importtime log)."""
    return sum(1 for line in (root / "daemon.stderr").read_text().splitlines()
               if re.match(r"import time:\s+\d+", line))


def cmd_idle(args: argparse.Namespace) -> None:
    print(machine())
    plans: list[tuple[str, dict[str, Any]]] = [
        ("inotify, web server on (port 0)", {"watch": {"mode": "inotify"}, "web": {"enabled": True}}),
        ("inotify, web server off", {"watch": {"mode": "inotify"}}),
        ("polling 2 s, web server off", {"watch": {"mode": "polling", "poll_interval_seconds": 2.0}}),
    ]
    rows = []
    for label, sections in ([] if args.imports_only else plans):
        with tempfile.TemporaryDirectory(prefix="omad-idle-") as tmp:
            rows.append(idle_run(label, Path(tmp), args.seconds, args.warmup, **sections))
        print(f"  {label}: done ({machine()})", file=sys.stderr)
    print(f"`omad run`, empty inbox, {args.warmup:g} s warm-up then {args.seconds:g} s measured")
    print("| daemon | CPU % of one core | RSS mean MB | RSS max MB | VmHWM MB | threads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['label']} | {r['cpu_pct']:.2f} | {r['rss_mean']:.1f} | {r['rss_max']:.1f} | {r['hwm']:.1f} "
              f"| {r['threads']} |")
    with tempfile.TemporaryDirectory(prefix="omad-imp-") as tmp:
        top = importtime(Path(tmp))
        count = imported_modules(Path(tmp))
    total = sum(ms for _p, ms in top)
    print(f"imports at start (`python -X importtime omad run`): {count} modules, {total:.0f} ms; self time by "
          "package: " + ", ".join(f"{p} {ms:.0f} ms" for p, ms in top[:12]))
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency", help="drop-to-start latency, inotify and polling")
    lat.add_argument("--count", type=int, default=30, help="drops per mode")
    lat.add_argument("--settle", type=float, default=0.5, help="watch.settle_seconds")
    lat.add_argument("--poll-intervals", type=float, nargs="+", default=[2.0, 0.5],
                     help="polling intervals to run (the first is also given to the inotify run, unused there)")
    lat.add_argument("--modes", nargs="+", choices=["inotify", "polling"], default=["inotify", "polling"])
    lat.add_argument("--gap", type=float, default=1.0,
                     help="random pause 0..max(GAP, poll interval) seconds between drops")
    lat.set_defaults(fn=cmd_latency)
    cap = sub.add_parser("caption", help="N caption jobs through omad once against a bash+ffmpeg loop")
    cap.add_argument("--count", type=int, default=50)
    cap.add_argument("--size", default="640x360")
    cap.add_argument("--seconds", type=float, default=4.0, help="input clip length")
    cap.add_argument("--settle", type=float, default=0.2, help="watch.settle_seconds for omad once")
    cap.add_argument("--repeats", type=int, default=2, help="alternating loop/omad runs")
    cap.add_argument("--breakdown", type=int, default=10, help="in-process stage breakdown runs (0: skip)")
    cap.set_defaults(fn=cmd_caption)
    idle = sub.add_parser("idle", help="CPU and RSS of an idle daemon")
    idle.add_argument("--seconds", type=float, default=60.0)
    idle.add_argument("--warmup", type=float, default=5.0)
    idle.add_argument("--imports-only", action="store_true", help="only the import summary")
    idle.set_defaults(fn=cmd_idle)
    every = sub.add_parser("all", help="all three with their defaults")
    every.set_defaults(fn=None)
    args = parser.parse_args()
    if args.fn is None:
        for what in ("latency", "caption", "idle"):
            sub_args = parser.parse_args([what])
            sub_args.fn(sub_args)
        return
    args.fn(args)


if __name__ == "__main__":
    main()
