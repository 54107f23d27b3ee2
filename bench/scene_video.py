"""A scene video end to end: a six-scene ~60 s narrated 1080p30 video through ``omad once``, stage by stage.

Builds a bundle (``brief.yaml``, synthetic photos, generated background music)
whose narration is sized with espeak-ng so the finished video lasts about
``--seconds``; runs ``omad once`` on it as a real subprocess; and reports the
wall time, each stage's seconds and share (from the published sidecar JSON),
the realtime factor, and a finer split of the work measured from the outside:
a thread watches the job's work folder and records when each intermediate
file (each scene's WAV, each clip, the soundtrack, the final video, the
poster) was last written. The time between one file's last write and the
next one's is the step that produced the next file. omad is not modified.
With ``--floor`` (the default) it then measures the encode-only floor side by
side: the published video decoded once to a raw yuv420p file (not timed), and
libx264 with the same settings (config ``video.x264_preset``/``crf``)
encoding those same frames from the raw file, nothing else. The script prints
figures; it asserts nothing about timings.

    .venv/bin/python bench/scene_video.py                 # ~60 s, six scenes, 1920x1080
    .venv/bin/python bench/scene_video.py --seconds 20 --scenes 3 --keep /tmp/sv
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
OMAD = ROOT / ".venv" / "bin" / "omad"

from omad.config import Config  # noqa: E402

# Plain pt-BR sentences without numbers or abbreviations, so the text omad speaks is the text measured here.
POOL = [
    "Chegou a nova coleção de verão, feita com carinho para você e para toda a sua família.",
    "As cores foram inspiradas no entardecer, do laranja mais quente ao azul profundo do mar.",
    "Cada peça é costurada à mão por artesãs da nossa cidade, com tecidos leves e resistentes.",
    "Os modelos combinam com a praia, com o escritório e com aquele passeio de fim de semana.",
    "Nossa equipe escolheu materiais que respiram, para você ficar confortável mesmo no calor.",
    "As estampas contam histórias de viagens pelo litoral, das dunas aos coqueirais.",
    "Também pensamos no planeta: as embalagens são recicláveis e o transporte é compensado.",
    "Você pode trocar qualquer peça com facilidade, sem custo e sem complicação.",
    "Visite nossa loja e conheça tudo de perto, com atendimento atencioso e sem pressa.",
    "Siga as nossas redes para ver as novidades antes de todo mundo e participar dos sorteios.",
    "Os acessórios completam o visual com bolsas de palha, chapéus e sandálias coloridas.",
    "A coleção infantil traz bichinhos da fauna brasileira, como a arara e o mico leão dourado.",
    "As camisas de linho são frescas, elegantes e ficam lindas em qualquer ocasião.",
    "Para as noites de verão, criamos vestidos longos com caimento suave e detalhes bordados.",
    "Quem chega cedo ganha um brinde especial preparado pela nossa equipe de vendas.",
    "Obrigado por acompanhar a nossa história, e até a próxima estação.",
    "O provador foi reformado e agora tem luz natural, espelhos grandes e muito espaço.",
    "Nossa cafeteria serve sucos naturais e bolos caseiros enquanto você escolhe.",
    "Tudo pronto para o verão.",
    "Venha nos visitar.",
    "Esperamos por você.",
    "Aproveite a estação.",
    "As vendas já começaram.",
    "Corra, o estoque é limitado.",
    "Fique de olho nas novidades.",
    "Boas compras!",
]
PALETTE = ["#1d2b53", "#7e2553", "#008751", "#ab5236", "#5f574f", "#29adff"]
TITLES = ["Coleção de verão", "Feito à mão", "Cores do entardecer", "Conforto no calor", "Visite a loja",
          "Até a próxima"]


def machine() -> str:
    load = os.getloadavg()
    return (f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def spoken_seconds(text: str, cfg: Config, tmp: Path) -> float:
    """What espeak-ng says this sentence takes at omad's configured voice, rate and pitch."""
    e = cfg.tts.espeak
    out = tmp / "probe.wav"
    subprocess.run(["espeak-ng", "-v", e.voice, "-s", str(e.rate), "-p", str(e.pitch), "-w", str(out), text],
                   check=True, capture_output=True)
    with wave.open(str(out), "rb") as w:
        return w.getnframes() / w.getframerate()


def narrations(n: int, total: float, cfg: Config, tmp: Path) -> list[tuple[str, float]]:
    """n narrations whose scenes (speech + padding, minus crossfades) add up to about ``total`` seconds."""
    pad, xf = cfg.scenes.padding_seconds, cfg.scenes.crossfade_seconds
    per_scene = (total + (n - 1) * xf) / n - pad
    pause = cfg.tts.sentence_pause_seconds
    lengths = {s: spoken_seconds(s, cfg, tmp) for s in POOL}
    out: list[tuple[str, float]] = []
    used: set[str] = set()
    for _ in range(n):
        # the combination of one to three sentences that comes closest to the scene's target, unused ones first
        best: tuple[float, tuple[str, ...]] = (float("inf"), ())
        for left in ([x for x in POOL if x not in used], POOL):
            for combo in itertools.chain.from_iterable(itertools.combinations(left, k) for k in (1, 2, 3)):
                spoken = sum(lengths[x] for x in combo) + pause * (len(combo) - 1)
                if abs(per_scene - spoken) < best[0]:
                    best = (abs(per_scene - spoken), combo)
            if best[0] < 0.2:
                break
        combo = best[1]
        used.update(combo)
        out.append((" ".join(combo), sum(lengths[x] for x in combo) + pause * (len(combo) - 1)))
    return out


def photo(path: Path, size: tuple[int, int], seed: int) -> None:
    """A synthetic 'phone photo': smooth gradients, soft discs and fine noise, saved as a JPEG."""
    rng = np.random.default_rng(seed)
    w, h = size
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(small)
    for _ in range(14):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(h // 30, h // 6))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    img = small.filter(ImageFilter.GaussianBlur(3))
    noise = rng.normal(0, 6, (h, w, 3))
    arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=90)


def music(path: Path, seconds: float) -> None:
    """A soft chord progression with a pulse, as MP3."""
    # The comma inside mod() is escaped: a bare one would end the filter in the lavfi graph.
    expr = ("(0.12*sin(2*PI*(220+55*floor(mod(t/4\\,4)))*t)+0.08*sin(2*PI*277*t)+0.08*sin(2*PI*330*t))"
            "*(0.6+0.4*sin(2*PI*2*t))")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc={expr}:s=44100:c=stereo", "-t", f"{seconds}", "-c:a", "libmp3lame", "-b:a",
                    "128k", str(path)], check=True)


def build_bundle(folder: Path, args: argparse.Namespace, cfg: Config, tmp: Path) -> dict[str, Any]:
    folder.mkdir(parents=True)
    kinds = (args.pattern * args.scenes)[: args.scenes]
    texts = narrations(args.scenes, args.seconds, cfg, tmp)
    size = tuple(int(x) for x in args.image_size.split("x"))
    scenes: list[dict[str, Any]] = []
    motions = ["zoom_in", "pan_left", "zoom_out", "pan_up", "auto"]
    for i, (kind, (text, _spoken)) in enumerate(zip(kinds, texts, strict=True)):
        scene: dict[str, Any] = {"narration": text}
        if kind.startswith("image"):
            name = f"foto{i}.jpg"
            photo(folder / name, (size[0], size[1]), seed=i)
            scene["image"] = name
            scene["motion"] = motions[i % len(motions)]
            if kind == "image+title":
                scene["title"] = TITLES[i % len(TITLES)]
        else:
            scene["title"] = TITLES[i % len(TITLES)]
            scene["background"] = PALETTE[i % len(PALETTE)]
        scenes.append(scene)
    brief: dict[str, Any] = {"version": 1, "kind": "video", "name": "bench", "title": "Coleção de verão",
                             "format": "landscape", "captions": True, "scenes": scenes}
    if args.music_seconds > 0:
        music(folder / "trilha.mp3", args.music_seconds)
        brief["music"] = "trilha.mp3"
    (folder / "brief.yaml").write_text(yaml.safe_dump(brief, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return {"kinds": kinds, "estimated_speech": [round(s, 2) for _t, s in texts]}


class WorkWatcher(threading.Thread):
    """Records, for every file under state/jobs/*/, when it first appeared and when it was last written."""

    def __init__(self, jobs: Path) -> None:
        super().__init__(daemon=True)
        self.jobs = jobs
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            try:
                for root, _dirs, files in os.walk(self.jobs):
                    for name in files:
                        p = Path(root) / name
                        try:
                            mtime = p.stat().st_mtime
                        except OSError:
                            continue
                        rel = str(p.relative_to(self.jobs)).split("/", 1)[-1]
                        self.first.setdefault(rel, now)
                        self.last[rel] = max(self.last.get(rel, 0.0), mtime)
            except OSError:
                pass
            self.stop.wait(0.05)


def describe(name: str) -> str:
    """What step wrote this file (names from omad/stages/video.py and omad/stages/narrate.py)."""
    if name.startswith("scene") and name.endswith(".wav"):
        return f"voice: espeak scene {int(name[5:7])}"
    return {
        "voice.json": "voice: scene timings written",
        "voice.wav": "render: narration laid out (numpy)",
        "soundtrack.wav": "render: music ducked under the voice (ffmpeg)",
        "captions.srt": "render: loudness measured (ffmpeg loudnorm pass 1), SRT written",
        "captions.ass": "render: ASS written",
        "video.mp4": "render: one pass: frames drawn (Ken Burns, cards, titles, crossfades), captions, x264, AAC",
        "poster.jpg": "render: poster frame",
    }.get(name, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="target video length")
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--pattern", nargs="+", default=["title", "image", "image+title", "title", "image", "image"],
                        help="scene kinds, repeated as needed: title, image, image+title")
    parser.add_argument("--image-size", default="4000x3000", help="synthetic photo size (a 12 MP phone photo)")
    parser.add_argument("--music-seconds", type=float, default=90.0, help="background music length; 0 for none")
    parser.add_argument("--settle", type=float, default=0.2, help="watch.settle_seconds for omad once")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the encode-only floor (needs ~5.6 GB of disk for a 60 s 1080p raw file)")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files (default: a temp dir)")
    args = parser.parse_args()
    cfg = Config()
    print(machine())

    tmp_ctx = tempfile.TemporaryDirectory(prefix="omad-sv-") if args.keep is None else None
    root = Path(tmp_ctx.name) if tmp_ctx is not None else args.keep
    try:
        if args.keep is not None and root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        info = build_bundle(root / "inbox" / "bench", args, cfg, root)
        config = root / "omad.yaml"
        config.write_text(yaml.safe_dump({
            "inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
            "watch": {"settle_seconds": args.settle}, "web": {"enabled": False},
            "intake": {"inputs_after": "delete"},
        }))
        (root / "state" / "jobs").mkdir(parents=True)
        watcher = WorkWatcher(root / "state" / "jobs")
        watcher.start()
        print(f"bundle ready ({machine()}); running omad once", file=sys.stderr)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        with open(root / "once.stderr", "wb") as err:
            rc = subprocess.run([str(OMAD), "once", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=err,
                                cwd=root).returncode
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        watcher.stop.set()
        watcher.join()
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if rc != 0:
            raise SystemExit(f"omad once failed (rc {rc}); see {root / 'once.stderr'}:\n"
                             + (root / "once.stderr").read_text()[-3000:])
        sidecar = json.loads((root / "outbox" / "bench.json").read_text())
        out = root / "outbox" / "bench.mp4"
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(out)],
            check=True, capture_output=True, text=True).stdout)
        video = next(s for s in probe["streams"] if s["codec_type"] == "video")
        duration = float(probe["format"]["duration"])
        report(args, info, sidecar, video, duration, wall, cpu, watcher, t0)
        if args.floor:
            floor(root, out, video, cfg, wall, cpu, sidecar)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()
    print(machine())


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def floor(root: Path, out: Path, video: dict[str, Any], cfg: Config, wall: float, cpu: float,
          sidecar: dict[str, Any]) -> None:
    """x264 alone on the same frames, from a raw file: what no renderer with these settings can beat."""
    raw = root / "frames.yuv"
    ff = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([*ff, "-i", str(out), "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw)], check=True)
    v = cfg.video
    size = f"{video['width']}x{video['height']}"
    try:
        fwall, fcpu = _timed([*ff, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", size, "-framerate",
                              str(v.fps), "-i", str(raw), "-c:v", "libx264", "-preset", v.x264_preset, "-crf",
                              str(v.crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(root / "floor.mp4")])
    finally:
        raw.unlink(missing_ok=True)
    render = next(s for s in sidecar["stages"] if s["name"] == "render")
    print(f"encode-only floor (libx264 {v.x264_preset} CRF {v.crf}, the same frames from a raw file): "
          f"wall {fwall:.2f} s, CPU {fcpu:.2f} s")
    print("| | wall s | x floor (wall) | CPU s | x floor (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| floor: x264 from raw | {fwall:.2f} | 1.00 | {fcpu:.2f} | 1.00 |")
    print(f"| omad: render stage | {render['seconds']:.2f} | {render['seconds'] / fwall:.2f} | | |")
    print(f"| omad: whole `omad once` | {wall:.2f} | {wall / fwall:.2f} | {cpu:.2f} | {cpu / fcpu:.2f} |")


def report(args: argparse.Namespace, info: dict[str, Any], sidecar: dict[str, Any], video: dict[str, Any],
           duration: float, wall: float, cpu: float, watcher: WorkWatcher, t0: float) -> None:
    stages = sidecar["stages"]
    render = next(s for s in stages if s["name"] == "render")
    voice = next(s for s in stages if s["name"] == "voice")
    fps = video.get("avg_frame_rate", "?")
    print(f"{args.scenes} scenes ({', '.join(info['kinds'])}), {video['width']}x{video['height']} at {fps} fps, "
          f"{duration:.2f} s of video; espeak speech {voice['facts'].get('spoken_seconds')} s; "
          f"music {'on' if render['facts'].get('music') else 'off'}; photos {args.image_size}")
    print(f"`omad once` wall {wall:.2f} s (settle_seconds {args.settle} included), CPU {cpu:.2f} s "
          f"(omad and its ffmpeg/espeak children); realtime factor {duration / wall:.3f} "
          f"(seconds of video per second of work), {wall / duration:.2f} s of work per second of video")
    print("| stage | lane | seconds | share of wall |")
    print("| --- | --- | ---: | ---: |")
    staged = 0.0
    for s in stages:
        staged += s["seconds"]
        print(f"| {s['name']} | {s['lane']} | {s['seconds']:.2f} | {s['seconds'] / wall * 100:.1f}% |")
    print(f"| outside the stages (start, imports, settle, claim, publish, exit) | | {wall - staged:.2f} "
          f"| {(wall - staged) / wall * 100:.1f}% |")
    print("render facts per scene: " + "; ".join(
        f"{s['index']}: {s['kind']} {s['seconds']} s{(' ' + s['motion']) if s.get('motion') else ''}"
        for s in render["facts"]["scenes"]))
    # Steps from the outside: each file's last write, in order; a step is the time since the previous one.
    files = sorted(watcher.last.items(), key=lambda kv: kv[1])
    # Hidden temporaries (.clipNN.part.mp4, card folders) are renamed into place with their mtime kept, and
    # narration chunks are part of their scene's WAV: the visible file stands for the whole step.
    wanted = [(n, t) for n, t in files if not any(part.startswith(".") for part in n.split("/"))
              and not n.startswith(("inputs/", "narration-chunks/")) and (not n.endswith((".txt", ".json"))
                                                                          or n == "voice.json")]
    print("steps seen from outside (the time between one output file's last write and the next's):")
    print("| step | file | done at s | seconds | share of wall |")
    print("| --- | --- | ---: | ---: | ---: |")
    prev = t0
    claimed = [t for n, t in watcher.first.items() if n.startswith("inputs/")]
    if claimed:
        prev = min(claimed)
        print(f"| start, imports, settle, claim (inputs appear in the job folder) | | {prev - t0:.2f} "
              f"| {prev - t0:.2f} | {(prev - t0) / wall * 100:.1f}% |")
    for name, t in wanted:
        print(f"| {describe(name)} | {name} | {t - t0:.2f} | {t - prev:.2f} | {(t - prev) / wall * 100:.1f}% |")
        prev = t
    print(f"| publish, exit | | {wall:.2f} | {wall - (prev - t0):.2f} | {(wall - (prev - t0)) / wall * 100:.1f}% |")


if __name__ == "__main__":
    main()
