"""What a second (and third) format costs against one render of the same scene video.

Builds one bundle (``--scenes`` photos, a face off-centre in each, from
scikit-image's astronaut picture on a wide synthetic backdrop, and pt-BR
narration sized to about ``--seconds``), then runs ``omad once`` on it as a
real subprocess three times side by side in one run, each in a fresh state
and outbox: ``formats: [landscape]``, ``[landscape, vertical]`` and
``[landscape, vertical, square]``. It prints each run's wall time and its
stages' seconds (from the published sidecar), and the extra cost of the
second and third formats as ratios of the one-format render stage and of
the whole run. It asserts nothing about timings.

    .venv/bin/python bench/formats.py                        # ~20 s, 3 scenes, 1920x1080
    .venv/bin/python bench/formats.py --seconds 10 --long-side 960
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from core import OMAD, ROOT
from PIL import Image, ImageFilter
from skimage import data as skdata

SENTENCES = [
    "As abelhas nativas do Brasil não têm ferrão e vivem em colônias pequenas.",
    "Elas polinizam as flores da mata e ajudam a manter a floresta de pé.",
    "Quem cria abelhas nativas cuida da natureza e ainda colhe um mel delicado.",
    "Cada espécie tem o seu jeito de construir a colmeia, com cera e resina.",
    "Plantar flores no quintal já ajuda muito as abelhas da sua cidade.",
    "Observe com calma e você vai ver como elas trabalham o dia inteiro.",
]


def _photo(path: Path, i: int) -> None:
    backdrop = Image.effect_noise((2400, 1350), 60).convert("RGB").filter(ImageFilter.GaussianBlur(3))
    face = Image.fromarray(skdata.astronaut()).resize((560, 560))
    x = 1700 if i % 2 == 0 else 150  # right, then left: a centred vertical crop would cut the face
    backdrop.paste(face, (x, 400))
    backdrop.save(path, quality=92)


def _bundle(root: Path, scenes: int, seconds: float, shapes: list[str]) -> Path:
    folder = root / "abelhas"
    folder.mkdir(parents=True)
    per = max(1, round(seconds / scenes / 4.5))  # ~4.5 s of espeak speech a sentence
    items = []
    for i in range(scenes):
        _photo(folder / f"foto{i}.jpg", i)
        text = " ".join(SENTENCES[(i * per + k) % len(SENTENCES)] for k in range(per))
        items.append({"image": f"foto{i}.jpg", "title": f"Parte {i + 1}", "narration": text, "motion": "zoom_in"})
    brief = {"version": 1, "kind": "video", "title": "Abelhas nativas", "formats": shapes, "scenes": items}
    (folder / "brief.yaml").write_text(yaml.safe_dump(brief, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


def _run(base: Path, shapes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    root = base / "-".join(shapes)
    staging = root / "staging"
    cfg = {"inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
           "watch": {"settle_seconds": 0.2}, "web": {"enabled": False},
           "video": {"long_side": args.long_side, "fps": args.fps},
           "llm": {"host": "http://127.0.0.1:9", "connect_retries": 0}}
    (root / "inbox").mkdir(parents=True)
    (root / "omad.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    _bundle(staging, args.scenes, args.seconds, shapes).rename(root / "inbox" / "abelhas")
    start = time.perf_counter()
    subprocess.run([str(OMAD), "once", "--config", str(root / "omad.yaml")], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    side = json.loads((root / "outbox" / "abelhas.json").read_text(encoding="utf-8"))
    stages = {s["name"]: float(s["seconds"]) for s in side["stages"]}
    render = next(s for s in side["stages"] if s["name"] == "render")["facts"]
    return {"formats": shapes, "wall": wall, "stages": stages, "video_seconds": render["seconds"],
            "frames": render["frames"], "faces": [s.get("subject", {}).get("method") for s in render["scenes"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="about how long the video is")
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--long-side", type=int, default=1920, help="video.long_side (1920: 1080p frames)")
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {args.scenes} scenes, ~{args.seconds:g} s, "
          f"long side {args.long_side}, {args.fps} fps")
    with tempfile.TemporaryDirectory(prefix="omad-formats-") as tmp:
        runs = [_run(Path(tmp), shapes, args) for shapes in (["landscape"], ["landscape", "vertical"],
                                                              ["landscape", "vertical", "square"])]
    one = runs[0]
    for r in runs:
        st = r["stages"]
        print(f"{'+'.join(r['formats']):32s} wall {r['wall']:6.2f} s | voice {st.get('voice', 0):5.2f} s | "
              f"render {st['render']:6.2f} s | post {st.get('post', 0):4.2f} s | video {r['video_seconds']:.1f} s, "
              f"{r['frames']} frames | subject: {','.join(str(f) for f in r['faces'])}")
    for r, label in ((runs[1], "second format (vertical)"), (runs[2], "second + third (vertical, square)")):
        extra_render = r["stages"]["render"] - one["stages"]["render"]
        print(f"{label}: render +{extra_render:.2f} s = {extra_render / one['stages']['render']:.2f}x of one render; "
              f"whole run +{r['wall'] - one['wall']:.2f} s = {r['wall'] / one['wall']:.2f}x")


if __name__ == "__main__":
    main()
