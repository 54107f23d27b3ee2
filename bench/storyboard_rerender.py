"""Re-render after a one-scene edit against a full render: a ten-scene narrated video through ``omad once``.

Run A renders a ten-scene brief in a fresh state dir (every scene spoken);
run B drops the same storyboard with one sentence edited, in the same state
dir, so the voice cache (``scenes.voice_cache_mb``) gives back the nine
unchanged scenes. Both are real ``omad once`` subprocesses, side by side, each
pair repeated ``--pairs`` times; the script prints the wall times, the voice
and render stages' seconds from the sidecars, the scenes synthesized, and the
ratios. It asserts nothing about timings.

    .venv/bin/python bench/storyboard_rerender.py                      # espeak-ng, 1280x720
    .venv/bin/python bench/storyboard_rerender.py --engine piper --voice PATH.onnx
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from core import OMAD
from scene_video import POOL

# Plain pt-BR sentences without numbers or abbreviations (scene_video.py's), one a scene.
SENTENCES = POOL[:10]
EDITED = (4, "Nossa equipe escolheu tecidos frescos, para você ficar bem mesmo nos dias mais quentes.")


def _brief(sentences: list[str], voice: dict[str, str] | None) -> str:
    data: dict[str, Any] = {"version": 1, "kind": "video",
                            "scenes": [{"title": f"Cena {i + 1}", "narration": s} for i, s in enumerate(sentences)]}
    if voice:
        data["voice"] = voice
    return yaml.safe_dump(data, allow_unicode=True)


def _once(root: Path, name: str, text: str) -> tuple[float, dict[str, Any]]:
    (root / "inbox" / f"{name}.yaml").write_text(text, encoding="utf-8")
    start = time.perf_counter()
    subprocess.run([str(OMAD), "once", "--config", str(root / "omad.yaml")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    side = json.loads((root / "outbox" / f"{name}.json").read_text())
    stages = {s["name"]: s for s in side["stages"]}
    return wall, {"voice_s": stages["voice"]["seconds"], "render_s": stages["render"]["seconds"],
                  "made": stages["voice"]["facts"]["voice_cache"]["made"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--engine", default="espeak")
    ap.add_argument("--voice", default="", help="a voice name or a Piper .onnx path")
    args = ap.parse_args()
    voice = {"engine": args.engine, **({"name": args.voice} if args.voice and args.engine != "piper" else {})}
    edited = list(SENTENCES)
    edited[EDITED[0]] = EDITED[1]
    rows = []
    for pair in range(args.pairs):
        root = Path(tempfile.mkdtemp(prefix="omad-sb-"))
        try:
            (root / "inbox").mkdir()
            cfg = {"inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
                   "watch": {"settle_seconds": 0.2}, "web": {"enabled": False},
                   "video": {"preset": "custom", "width": args.width, "height": args.height, "fps": args.fps}}
            if args.engine == "piper" and args.voice:
                cfg["tts"] = {"piper": {"voice": args.voice}}
            (root / "omad.yaml").write_text(yaml.safe_dump(cfg))
            full, a = _once(root, f"full{pair}", _brief(SENTENCES, voice))
            again, b = _once(root, f"edit{pair}", _brief(edited, voice))
            rows.append((full, a, again, b))
            print(f"pair {pair + 1}: full {full:.2f} s (voice {a['voice_s']:.2f} s, render {a['render_s']:.2f} s, "
                  f"{a['made']} scenes spoken) | one-scene edit {again:.2f} s (voice {b['voice_s']:.2f} s, render "
                  f"{b['render_s']:.2f} s, {b['made']} spoken) | ratio {again / full:.2f}, voice ratio "
                  f"{b['voice_s'] / max(a['voice_s'], 1e-9):.2f}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    best_full = min(r[0] for r in rows)
    best_edit = min(r[2] for r in rows)
    print(f"best of {len(rows)}: full {best_full:.2f} s, after a one-scene edit {best_edit:.2f} s "
          f"(ratio {best_edit / best_full:.2f}); {args.width}x{args.height}@{args.fps}, engine {args.engine}")


if __name__ == "__main__":
    main()
