"""Benchmark: a 10 s 1080p30 Ken Burns zoom, omad against the floor, naive zoompan and MoviePy.

Run from the repository root:

    .venv/bin/python bench/kenburns.py            # all methods, ~3-5 minutes on 2 cores
    .venv/bin/python bench/kenburns.py --quick    # 2 s clips, to check the script itself

The input is a synthetic 12-megapixel "phone photo" (4000x3000 JPEG: shapes,
gradients, grain) with a soft white dot on a dark disc at its exact centre, so
that every method's output carries its own jitter gauge: on a centred zoom the
dot should not move, and its intensity-weighted centroid, tracked frame by
frame, shows how far it does. Every method zooms 1.00 -> 1.15 about the centre
with the same encoder settings (libx264 veryfast, CRF 20, yuv420p).

Methods:
  floor (loop)         the still encoded for 10 s the usual way: -loop 1 -i photo.jpg -t 10
  floor (decode once)  the same, decoded and scaled once and repeated with the loop filter:
                       the encoder's own cost for a still, a lower bound nothing moving can reach
  floor (raw frames)   the encode-only floor of the move: omad's own frames, drawn beforehand
                       (not timed) into a raw yuv420p file, encoded by libx264 from that file
  zoompan              ffmpeg's zoompan on the cover-scaled image (the common recipe)
  zoompan 4x           zoompan on a 4x upscaled image (the usual fix for its shake)
  moviepy              MoviePy 2: ImageClip.resized(t -> zoom) centred in a CompositeVideoClip
  omad                 omad.media.kenburns.render_still(motion="zoom_in")

For each: wall time and CPU time (this process and its children; the fastest
of --repeat runs), and the centre's largest and mean frame-to-frame movement
in output pixels, twice: in the timed CRF 20 output (what a viewer gets; x264
itself moves a smooth dot by a few hundredths of a pixel, more on some frames)
and in a lossless (CRF 0) encode of the same method, which shows the motion
itself.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from omad.media.encoder import VideoOutput
from omad.media.ffmpeg_run import Ffmpeg
from omad.media.kenburns import prepare_still, render_still

W, H, FPS, ZOOM, CRF, PRESET = 1920, 1080, 30, 1.15, 20, "veryfast"


def encode(crf: int) -> list[str]:
    return ["-c:v", "libx264", "-preset", PRESET, "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart"]


COVER = f"scale={W}:{H}:force_original_aspect_ratio=increase,crop={W}:{H},setsar=1"


def make_photo(path: Path) -> None:
    """A deterministic 4000x3000 JPEG that compresses like a photo, with the jitter gauge at its centre."""
    w, h = 4000, 3000
    rng = np.random.default_rng(7)
    ys, xs = np.indices((h, w), dtype=np.float32)
    base = np.stack(
        [
            128 + 90 * np.sin(xs / 310.0) * np.cos(ys / 270.0),
            110 + 80 * np.cos(xs / 190.0 + ys / 520.0),
            90 + 70 * np.sin((xs + ys) / 410.0),
        ],
        axis=-1,
    )
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(400):
        x, y, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(20, 260))
        draw.ellipse((x, y, x + s, y + s), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    grain = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    img = Image.blend(img, grain, 0.12)
    # The gauge: a dark disc (radius 6% of the height) and a soft dot (sigma 1%) at the exact centre.
    disc = (np.hypot(xs + 0.5 - w / 2, ys + 0.5 - h / 2) < 0.06 * h)[..., None]
    dot = np.exp(-((xs + 0.5 - w / 2) ** 2 + (ys + 0.5 - h / 2) ** 2) / (2 * (0.01 * h) ** 2))[..., None]
    arr = np.where(disc, 20 + 220 * dot, np.asarray(img, dtype=np.float32))
    Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)).save(path, quality=92)


def centre_jitter(video: Path) -> tuple[float, float]:
    """Largest and mean frame-to-frame movement (px) of the dot in a 120x120 window at the frame centre."""
    half = 60
    x0, y0 = W // 2 - half, H // 2 - half
    proc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"crop={2 * half}:{2 * half}:{x0}:{y0}",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    size = (2 * half) ** 2
    gy, gx = np.indices((2 * half, 2 * half), dtype=np.float64)
    points = []
    while chunk := proc.stdout.read(size):
        f = np.frombuffer(chunk, np.uint8).astype(np.float64).reshape(2 * half, 2 * half)
        weight = np.clip(f - (np.median(f) + 30.0), 0.0, None)
        points.append(((weight * gx).sum() / weight.sum(), (weight * gy).sum() / weight.sum()))
    proc.wait()
    steps = np.hypot(*np.diff(np.array(points), axis=0).T)
    return float(steps.max()), float(steps.mean())


def ffmpeg(*args: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)

    return run


def moviepy_zoom(photo: Path, out: Path, seconds: float, crf: int) -> Callable[[], None]:
    """The way MoviePy-based generators do it: resize per frame, paste centred on the canvas."""

    def run() -> None:
        from moviepy import CompositeVideoClip, ImageClip

        with Image.open(photo) as im:
            cover = im.convert("RGB")
            scale = max(W / cover.width, H / cover.height)
            cover = cover.resize((round(cover.width * scale), round(cover.height * scale)), Image.Resampling.LANCZOS)
            left, top = (cover.width - W) // 2, (cover.height - H) // 2
            frame = np.asarray(cover.crop((left, top, left + W, top + H)))
        clip = ImageClip(frame).with_duration(seconds).resized(lambda t: ZOOM ** (t / seconds))
        video = CompositeVideoClip([clip.with_position("center")], size=(W, H))
        video.write_videofile(
            str(out), fps=FPS, codec="libx264", preset=PRESET, audio=False, logger=None,
            ffmpeg_params=["-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
        )  # fmt: skip
        video.close()

    return run


def omad_zoom(photo: Path, out: Path, seconds: float, crf: int) -> Callable[[], None]:
    def run() -> None:
        render_still(
            photo, out, video=VideoOutput(width=W, height=H, fps=FPS, crf=crf, preset=PRESET), seconds=seconds,
            motion="zoom_in", fit="cover", zoom=ZOOM, seed="bench", ff=Ffmpeg(timeout=3600), label=photo.name,
        )  # fmt: skip

    return run


@dataclass
class Result:
    name: str
    wall: float
    cpu: float
    jitter_max: float  # in the CRF 20 output: what a viewer gets, x264's own wobble included
    jitter_mean: float
    motion_max: float  # in a lossless (CRF 0) encode of the same method: the motion itself
    motion_mean: float


def raw_frames(photo: Path, raw: Path, seconds: float) -> None:
    """omad's frames of the zoom, written once to a raw file (the floor's input)."""
    frames = round(seconds * FPS)
    make, _ = prepare_still(photo, width=W, height=H, frames=frames, motion="zoom_in", fit="cover", zoom=ZOOM,
                            seed="bench", label=photo.name)
    with raw.open("wb") as f:
        for i in range(frames):
            for plane in make(i):
                f.write(plane)


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(name: str, make: Callable[[Path, int], Callable[[], None]], out: Path, repeat: int) -> Result:
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        out.unlink(missing_ok=True)
        run = make(out, CRF)
        c0, t0 = _cpu(), time.perf_counter()
        run()
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        best = (wall, cpu) if best is None or wall < best[0] else best
    assert best is not None
    jmax, jmean = centre_jitter(out)
    lossless = out.with_name(f"lossless-{out.name}")
    make(lossless, 0)()
    mmax, mmean = centre_jitter(lossless)
    lossless.unlink()
    result = Result(name, best[0], best[1], jmax, jmean, mmax, mmean)
    print(f"  {name:20s} {result.wall:7.2f} s wall {result.cpu:7.2f} s cpu  jitter max {jmax:.3f} mean {jmean:.3f} px"
          f"  lossless {mmax:.3f} / {mmean:.3f} px", file=sys.stderr, flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s clips instead of 10 s")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method; the fastest counts (MoviePy: 1)")
    parser.add_argument("--skip", action="append", default=[], help="leave out a method (by its name)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="then run the raw-frames floor and omad alternately this many times (0: skip)")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is not installed")
    seconds = 2.0 if args.quick else 10.0
    frames = round(seconds * FPS)
    with tempfile.TemporaryDirectory(prefix="omad-bench-") as tmp:
        d = Path(tmp)
        photo = d / "photo.jpg"
        make_photo(photo)
        raw = d / "frames.yuv"
        raw_frames(photo, raw, seconds)
        zoom_expr = f"z='pow({ZOOM},on/{frames - 1})':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2'"
        methods: list[tuple[str, Callable[[Path, int], Callable[[], None]], int]] = [
            ("floor (loop)", lambda o, crf: ffmpeg(
                "-loop", "1", "-framerate", str(FPS), "-i", str(photo), "-t", str(seconds),
                "-vf", f"{COVER},format=yuv420p", *encode(crf), str(o)), args.repeat),
            ("floor (decode once)", lambda o, crf: ffmpeg(
                "-framerate", str(FPS), "-i", str(photo),
                "-vf", f"{COVER},format=yuv420p,loop=loop={frames - 1}:size=1:start=0",
                "-frames:v", str(frames), *encode(crf), str(o)), args.repeat),
            ("floor (raw frames)", lambda o, crf: ffmpeg(
                "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", "-framerate", str(FPS), "-i", str(raw),
                *encode(crf), str(o)), args.repeat),
            ("zoompan", lambda o, crf: ffmpeg(
                "-i", str(photo),
                "-vf", f"{COVER},zoompan={zoom_expr}:d={frames}:s={W}x{H}:fps={FPS},format=yuv420p",
                "-frames:v", str(frames), *encode(crf), str(o)), args.repeat),
            ("zoompan 4x", lambda o, crf: ffmpeg(
                "-i", str(photo),
                "-vf", f"{COVER},scale={4 * W}:{4 * H},zoompan={zoom_expr}:d={frames}:s={W}x{H}:fps={FPS},"
                "format=yuv420p", "-frames:v", str(frames), *encode(crf), str(o)), 1),
            ("moviepy", lambda o, crf: moviepy_zoom(photo, o, seconds, crf), 1),
            ("omad", lambda o, crf: omad_zoom(photo, o, seconds, crf), args.repeat),
        ]  # fmt: skip
        print(
            f"Ken Burns zoom 1.00->{ZOOM}, {seconds:.0f} s {W}x{H}@{FPS}, libx264 {PRESET} crf {CRF}:", file=sys.stderr
        )
        results = [
            measure(name, make, d / f"{i}.mp4", repeat)
            for i, (name, make, repeat) in enumerate(methods)
            if name not in args.skip
        ]
    by_name = {r.name: r for r in results}
    loop, once, omad = by_name.get("floor (loop)"), by_name.get("floor (decode once)"), by_name.get("omad")
    rawf = by_name.get("floor (raw frames)")
    print("| method | wall s | CPU s | x floor (loop) | x floor (decode once) | x floor (raw frames), wall / CPU "
          "| centre jitter max / mean px, CRF 20 | the same, lossless |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        vs_loop = f"{r.wall / loop.wall:.2f}" if loop else "-"
        vs_once = f"{r.wall / once.wall:.2f}" if once else "-"
        vs_raw = f"{r.wall / rawf.wall:.2f} / {r.cpu / rawf.cpu:.2f}" if rawf else "-"
        jitter = f"{r.jitter_max:.3f} / {r.jitter_mean:.3f} | {r.motion_max:.3f} / {r.motion_mean:.3f}"
        print(f"| {r.name} | {r.wall:.2f} | {r.cpu:.2f} | {vs_loop} | {vs_once} | {vs_raw} | {jitter} |")
    if omad and "moviepy" in by_name:
        print(f"\nomad is {by_name['moviepy'].wall / omad.wall:.1f}x faster than MoviePy.")
    if args.pairs:
        pairs(args.pairs, seconds)


def pairs(count: int, seconds: float) -> None:
    """The raw-frames floor and omad, one right after the other, so that both see the same machine load."""
    import os

    print(f"\nfloor (raw frames) and omad alternately, {count} pairs:")
    print("| pair | floor wall s | floor CPU s | omad wall s | omad CPU s | omad x floor, wall / CPU | load average |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="omad-bench-") as tmp:
        d = Path(tmp)
        photo, raw = d / "photo.jpg", d / "frames.yuv"
        make_photo(photo)
        raw_frames(photo, raw, seconds)
        output = VideoOutput(width=W, height=H, fps=FPS, crf=CRF, preset=PRESET)
        render_still(photo, d / "warm.mp4", video=output, seconds=0.2, motion="zoom_in", fit="cover",
                     zoom=ZOOM, seed="bench", ff=Ffmpeg(timeout=600), label=photo.name)
        ratios = []
        for i in range(count):
            c0, t0 = _cpu(), time.perf_counter()
            ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", "-framerate", str(FPS), "-i", str(raw),
                   *encode(CRF), str(d / "floor.mp4"))()
            fw, fc = time.perf_counter() - t0, _cpu() - c0
            c0, t0 = _cpu(), time.perf_counter()
            render_still(photo, d / "omad.mp4", video=output, seconds=seconds, motion="zoom_in",
                         fit="cover", zoom=ZOOM, seed="bench", ff=Ffmpeg(timeout=600), label=photo.name)
            ow, oc = time.perf_counter() - t0, _cpu() - c0
            ratios.append((ow / fw, oc / fc))
            print(f"| {i + 1} | {fw:.2f} | {fc:.2f} | {ow:.2f} | {oc:.2f} | {ow / fw:.2f} / {oc / fc:.2f} "
                  f"| {os.getloadavg()[0]:.2f} |")
        wall = sorted(r[0] for r in ratios)[len(ratios) // 2]
        cpu = sorted(r[1] for r in ratios)[len(ratios) // 2]
        print(f"median omad x floor: {wall:.2f} wall, {cpu:.2f} CPU (omad's time includes reading and decoding "
              "the JPEG; the floor's input was drawn beforehand)")


if __name__ == "__main__":
    main()
