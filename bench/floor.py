"""omad against its floors, side by side in one run: the example scene video, caption batches, short narrations.

Each command runs the real ``omad`` as a subprocess on a temporary config,
inbox, outbox and state folder, and the floor (what no omad can beat with
the same settings) right beside it, alternating, so drifting machine load hits
both alike. The script prints figures; it asserts nothing about timings.

    .venv/bin/python bench/floor.py scene --example examples/lancamento --runs 3
    .venv/bin/python bench/floor.py caption --count 10 --repeats 3
    .venv/bin/python bench/floor.py narrate --count 300

``scene``: the bundle through ``omad once`` (wall and CPU of the whole
process tree, start-up included), then the encode-only floor: the published
video decoded once to raw yuv420p (not timed) and libx264 with omad's
settings encoding those frames from the file; and the same floor with the
captions burned and the sound encoded ("floor + captions + sound"), i.e.
every encode omad's one ffmpeg does, without omad.

``caption``: N 4 s 640x360 caption jobs (bench/core.py's inputs) through one
``omad once`` and through a running ``omad run`` (CPU of the daemon's
process tree from ``/proc``, from the first drop until the last job is done),
against a bash loop of the caption stage's ffmpeg argv.

``narrate``: N one-sentence ``.txt`` drops into a running ``omad run``, time
from the first drop to the last job done, against espeak-ng reading the same
texts one by one with omad's voice, rate and pitch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import (  # noqa: E402
    OMAD,
    caption_omad,
    journal_rows,
    loop_script,
    machine,
    make_inputs,
    running_daemon,
    timed,
    write_config,
)

from omad.config import Config  # noqa: E402
from omad.media.subtitles import build_ass, read_srt  # noqa: E402

# A normal install has its bytecode cached; with PYTHONDONTWRITEBYTECODE set (as in some shells and CI), every
# omad start would compile its own modules again (~90 ms here), which is not omad's cost.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _ticks(pid: int, fields: tuple[int, ...] = (11, 12, 13, 14)) -> float:
    """CPU seconds of a process and its waited-for children (utime, stime, cutime, cstime); ``fields=(11, 12)``:
    the process alone."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(stat[i]) for i in fields) / os.sysconf("SC_CLK_TCK")


def _wait_done(state: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = journal_rows(state)
        finished = [r for r in rows if r["status"] in ("done", "failed", "quarantined")]
        if len(finished) >= count:
            bad = [r for r in finished if r["status"] != "done"]
            if bad:
                raise RuntimeError(f"{len(bad)} jobs did not finish done: {bad[0]}")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(finished)}/{count} jobs finished in {timeout} s")
        time.sleep(0.05)


def _stats(values: list[float]) -> str:
    return f"min {min(values):.2f} / median {statistics.median(values):.2f}"


# -- scene -------------------------------------------------------------------------


def scene_once(bundle: Path, root: Path) -> tuple[float, float, dict[str, Any]]:
    config = write_config(root, watch={"settle_seconds": 0.2}, intake={"inputs_after": "keep"})
    shutil.copytree(bundle, root / "inbox" / bundle.name)
    with open(root / "once.stderr", "wb") as err:
        wall, cpu = timed([str(OMAD), "once", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=err,
                          cwd=root)
    sidecar = yaml.safe_load((root / "outbox" / f"{bundle.name}.json").read_text())
    return wall, cpu, sidecar


def scene_floors(video: Path, root: Path, facts: dict[str, Any], ass: Path) -> dict[str, tuple[float, float]]:
    cfg = Config()
    v = cfg.video
    ff = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    raw, wav = root / "frames.yuv", root / "sound.wav"
    subprocess.run([*ff, "-i", str(video), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw)], check=True)
    subprocess.run([*ff, "-i", str(video), "-vn", "-c:a", "pcm_s16le", str(wav)], check=True)
    size = f"{facts['width']}x{facts['height']}"
    src = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size, "-framerate", str(v.fps), "-i", str(raw)]
    enc = ["-c:v", "libx264", "-preset", v.x264_preset, "-crf", str(v.crf), "-pix_fmt", "yuv420p"]
    out: dict[str, tuple[float, float]] = {}
    out["floor"] = timed([*ff, *src, *enc, "-movflags", "+faststart", str(root / "floor.mp4")])
    sound = "volume=0dB,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo"
    full = [*ff, *src, "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", "-vf", f"ass={ass}", "-af", sound, *enc,
             "-c:a", "aac", "-b:a", v.audio_bitrate, "-movflags", "+faststart", str(root / "full.mp4")]
    out["floor + captions + sound"] = timed(full)
    raw.unlink()
    return out


def cmd_scene(args: argparse.Namespace) -> None:
    print(machine())
    bundle = args.example.resolve()
    rows = []
    with tempfile.TemporaryDirectory(prefix="omad-floor-") as tmp:
        for r in range(args.runs):
            root = Path(tmp) / f"run{r}"
            wall, cpu, sidecar = scene_once(bundle, root)
            render = next(s for s in sidecar["stages"] if s["name"] == "render")
            facts = render["facts"]
            # The job folder is gone once published: the same captions, rebuilt from the published SRT.
            ass = root / "captions.ass"
            cues, _enc = read_srt(root / "outbox" / f"{bundle.name}.srt", "srt")
            build_ass(cues, facts["width"], facts["height"], Config().caption, ass)
            floors = scene_floors(root / "outbox" / f"{bundle.name}.mp4", root, facts, ass)
            rows.append((wall, cpu, render["seconds"], facts["seconds"], floors))
            print(f"  run {r + 1}: omad {wall:.2f} s, floor {floors['floor'][0]:.2f} s ({machine()})",
                  file=sys.stderr)
            shutil.rmtree(root)
    seconds = rows[0][3]
    print(f"{bundle.name}: {seconds:.2f} s of video; `omad once` (settle 0.2 s included) against x264 alone")
    print("| run | omad wall s | omad CPU s | render stage s | realtime factor | floor wall s | floor CPU s "
          "| omad x floor (wall) | omad x floor (CPU) | floor+captions+sound wall s | CPU s | omad x that (wall) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r, (wall, cpu, render_s, secs, fl) in enumerate(rows):
        fw, fc = fl["floor"]
        gw, gc = fl["floor + captions + sound"]
        print(f"| {r + 1} | {wall:.2f} | {cpu:.2f} | {render_s:.2f} | {secs / wall:.2f} | {fw:.2f} | {fc:.2f} "
              f"| {wall / fw:.2f} | {cpu / fc:.2f} | {gw:.2f} | {gc:.2f} | {wall / gw:.2f} |")
    ratios = [w / fl["floor"][0] for w, _c, _r, _s, fl in rows]
    print(f"omad x floor (wall): {_stats(ratios)}; realtime factor: "
          f"{_stats([s / w for w, _c, _r, s, _fl in rows])}")
    print(machine())


# -- caption -------------------------------------------------------------------------


def caption_run(src: Path, names: list[str], root: Path, settle: float, warm: int) -> tuple[float, float, float]:
    """The batch dropped into a running ``omad run``: wall and CPU from the first drop to the last job done, and
    the CPU of the daemon's own process (its ffmpeg children apart).

    ``warm`` jobs go first, outside the window: what a long-running daemon pays once (imports, the font
    coverage scan, the tool version checks) is not per-job cost.
    """
    config = write_config(root, watch={"settle_seconds": settle})
    state = root / "state"
    with running_daemon(config, root) as proc:
        for i in range(warm):
            for ext in (".mp4", ".srt"):
                shutil.copy(src / f"{names[0]}{ext}", root / "inbox" / f"warm{i}{ext}")
            (root / "inbox" / f"warm{i}.srt").write_text(
                (src / f"{names[0]}.srt").read_text(encoding="utf-8").replace("número", f"aquecimento {i}"),
                encoding="utf-8")
        _wait_done(state, warm, 600)
        time.sleep(1.0)  # let the idle daemon settle before the window opens
        c0, own0 = _ticks(proc.pid), _ticks(proc.pid, (11, 12))
        t0 = time.perf_counter()
        for name in names:
            for ext in (".mp4", ".srt"):
                os.link(src / f"{name}{ext}", root / "inbox" / f"{name}{ext}")
        _wait_done(state, warm + len(names), 600)
        wall = time.perf_counter() - t0
        cpu, own = _ticks(proc.pid) - c0, _ticks(proc.pid, (11, 12)) - own0
    return wall - settle, cpu, own


def cmd_caption(args: argparse.Namespace) -> None:
    print(machine())
    with tempfile.TemporaryDirectory(prefix="omad-floorcap-") as tmp:
        root = Path(tmp)
        src = root / "src"
        names = make_inputs(src, args.count, args.size, args.seconds)
        script = loop_script(src, root / "loop", names, args.size)
        rows = []
        for r in range(args.repeats):
            loop = timed(["bash", str(script)])
            once = caption_omad(src, names, root / f"once{r}", args.settle)
            run = caption_run(src, names, root / f"run{r}", args.settle, args.warm)
            rows.append((loop, (once["wall"] - args.settle, once["cpu"]), run))
            print(f"  round {r + 1}: loop {loop[0]:.2f} s, once {once['wall']:.2f} s, run {run[0]:.2f} s "
                  f"({machine()})", file=sys.stderr)
    print(f"{args.count} caption jobs, {args.size} {args.seconds:g} s; settle {args.settle} s subtracted from omad's "
          f"wall; CPU of each process tree; `omad run` warmed with {args.warm} job(s) before the window")
    print("| round | loop wall s | loop CPU s | `omad once` wall s | CPU s | CPU vs loop | `omad run` wall s "
          "| CPU s | CPU vs loop | daemon's own ms a job |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    once_r, run_r = [], []
    for r, ((lw, lc), (ow, oc), (rw, rc, own)) in enumerate(rows):
        once_r.append(oc / lc - 1)
        run_r.append(rc / lc - 1)
        print(f"| {r + 1} | {lw:.2f} | {lc:.2f} | {ow:.2f} | {oc:.2f} | {once_r[-1] * 100:+.1f} % | {rw:.2f} "
              f"| {rc:.2f} | {run_r[-1] * 100:+.1f} % | {own / len(names) * 1000:.0f} |")
    print(f"CPU over the loop: once min {min(once_r) * 100:+.1f} % / median {statistics.median(once_r) * 100:+.1f} %; "
          f"run min {min(run_r) * 100:+.1f} % / median {statistics.median(run_r) * 100:+.1f} %")
    print(machine())


# -- narrate -------------------------------------------------------------------------

WORDS = ["sol", "mar", "casa", "rio", "livro", "mesa", "porta", "janela", "flor", "campo", "vento", "pedra"]


def sentences(n: int) -> list[str]:
    """N distinct one-sentence texts (a repeated text would be skipped as a duplicate)."""
    out = []
    for i in range(n):
        a, b = WORDS[i % len(WORDS)], WORDS[(i // len(WORDS)) % len(WORDS)]
        out.append(f"A {a} perto do {b} tem o número {i}.\n")
    return out


def cmd_narrate(args: argparse.Namespace) -> None:
    print(machine())
    cfg = Config()
    texts = sentences(args.count)
    with tempfile.TemporaryDirectory(prefix="omad-floornar-") as tmp:
        root = Path(tmp)
        loop_dir = root / "loop"
        loop_dir.mkdir()
        t0 = time.perf_counter()
        for i, text in enumerate(texts):
            subprocess.run(["espeak-ng", "-v", cfg.tts.espeak.voice, "-s", str(cfg.tts.espeak.rate), "-p",
                            str(cfg.tts.espeak.pitch), "-w", str(loop_dir / f"n{i}.wav")], input=text.encode(),
                           check=True)
        loop_wall = time.perf_counter() - t0
        print(f"  espeak loop {loop_wall:.2f} s ({machine()})", file=sys.stderr)
        omad_root = root / "omad"
        lanes = {"lanes": {"cpu": {"slots": args.cpu_slots}}} if args.cpu_slots else {}
        config = write_config(omad_root, watch={"settle_seconds": args.settle}, tts={"engine": "espeak"}, **lanes)
        staging = omad_root / "staging"
        staging.mkdir()
        for i, text in enumerate(texts):
            (staging / f"n{i:04d}.txt").write_text(text, encoding="utf-8")
        with running_daemon(config, omad_root) as proc:
            time.sleep(1.0)
            c0 = _ticks(proc.pid)
            t0 = time.perf_counter()
            for f in sorted(staging.iterdir()):
                f.rename(omad_root / "inbox" / f.name)
            _wait_done(omad_root / "state", len(texts), 3600)
            wall = time.perf_counter() - t0
            cpu = _ticks(proc.pid) - c0
        outs = list((omad_root / "outbox").glob("*.wav"))
        srts = list((omad_root / "outbox").glob("*.srt"))
        sidecars = list((omad_root / "outbox").glob("*.json"))
    slots = args.cpu_slots or cfg.lanes.cpu_slots()
    print(f"{args.count} one-sentence narrations (espeak, {cfg.tts.espeak.voice}); settle {args.settle} s; "
          f"{slots} CPU lane slot(s)")
    print("| | wall s | per text ms | x espeak loop |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| espeak-ng in a loop | {loop_wall:.2f} | {loop_wall / args.count * 1000:.0f} | 1.00 |")
    print(f"| `omad run`, first drop to last done | {wall:.2f} | {wall / args.count * 1000:.0f} "
          f"| {wall / loop_wall:.2f} |")
    print(f"omad CPU {cpu:.2f} s; published {len(outs)} WAV, {len(srts)} SRT, {len(sidecars)} sidecars")
    print(machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sc = sub.add_parser("scene", help="a scene bundle through omad once against x264 alone")
    sc.add_argument("--example", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "lancamento")
    sc.add_argument("--runs", type=int, default=3)
    cap = sub.add_parser("caption", help="caption jobs through omad once and omad run against a bash loop")
    cap.add_argument("--count", type=int, default=10)
    cap.add_argument("--size", default="640x360")
    cap.add_argument("--seconds", type=float, default=4.0)
    cap.add_argument("--settle", type=float, default=0.2)
    cap.add_argument("--repeats", type=int, default=3)
    cap.add_argument("--warm", type=int, default=0,
                     help="jobs `omad run` does before the window opens (what a long-running daemon paid already)")
    nar = sub.add_parser("narrate", help="one-sentence narrations into omad run against an espeak-ng loop")
    nar.add_argument("--count", type=int, default=300)
    nar.add_argument("--settle", type=float, default=0.2)
    nar.add_argument("--cpu-slots", type=int, default=0, help="lanes.cpu slots (0: omad's default, cores - 1)")
    args = parser.parse_args()
    {"scene": cmd_scene, "caption": cmd_caption, "narrate": cmd_narrate}[args.what](args)


if __name__ == "__main__":
    main()
