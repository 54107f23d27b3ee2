"""Benchmark: how close narration captions start to the word they begin with.

Run from the repository root:

    .venv/bin/python bench/caption_timing.py           # all conditions, ~1 minute on 2 cores
    .venv/bin/python bench/caption_timing.py --quick   # two texts, one condition

The test set: pt-BR paragraphs spoken by a stand-in "other voice" engine,
libespeak-ng with another voice variant, rate and pitch (optionally with
noise), whose word onsets are *known*: they are that very synthesis's own word
events (past the pause espeak opens a word with after a comma, by its phoneme
events; the figures in docs/benchmarks.md before issue 21 moved them past any
quiet frames, stop closures included). The engine hands omad only audio, as F5
does, so omad must find the words by forced alignment (MFCC + DTW against
espeak-ng's default pt-BR voice speaking the same text). Each paragraph goes
through ``omad.tts.narration.narrate_text`` exactly as a drop would (sentence
chunks, joined with pauses, words grouped into captions), and for every
caption the gap between its start and the true onset of its first word is
measured.

What this does not measure: real F5 speech (no pt-BR checkpoint can be
downloaded here) or human speech. espeak variants share espeak's phonetics,
so this is an easier case than F5 against espeak; the Spanish and Italian
voices reading the Portuguese text (other phonetics, other prosody) are the
closest stand-in for another engine that can be made here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omad.tts import Synthesis, Voice  # noqa: E402
from omad.tts.narration import narrate_text  # noqa: E402
from omad.tts.wordtiming import WordTime, espeak_words  # noqa: E402

TEXTS = [
    "Hoje vamos falar sobre as abelhas, que visitam milhares de flores todos os dias para levar pólen e néctar "
    "até a colmeia. Elas dançam para contar às outras onde estão as flores. Parece mágica, mas é ciência.",
    "Quando a chuva chega, o jardim fica verde e as frutas aparecem. Depois do almoço, a família senta na "
    "varanda para ouvir histórias antigas, contadas pela avó com muita calma.",
    "O ônibus atrasou de novo, e a fila na estação ficou enorme. Ninguém sabia quando o próximo chegaria, "
    "então muitas pessoas decidiram caminhar até o centro da cidade.",
    "Aprender a programar exige paciência. No começo tudo parece difícil, mas cada erro ensina alguma coisa "
    "nova. Com o tempo, os problemas viram desafios, e os desafios viram diversão.",
    "A feira de domingo tem de tudo: verduras frescas, queijos da serra, pastel quentinho e caldo de cana. "
    "Os vendedores gritam os preços, e as crianças correm entre as barracas.",
    "No inverno, as noites são longas e frias. As pessoas acendem a lareira, tomam chocolate quente e "
    "conversam até tarde. Lá fora, o vento sopra forte entre as árvores do quintal.",
    "O rio nasce nas montanhas e atravessa campos, florestas e cidades antes de chegar ao mar. Ao longo do "
    "caminho, recebe a água de muitos riachos pequenos.",
    "Ela abriu a janela, respirou fundo e sorriu. Era o primeiro dia de férias, e o sol brilhava sobre o "
    "telhado das casas vizinhas.",
]


@dataclass(frozen=True)
class Condition:
    name: str
    voice: str
    rate: int
    pitch: int
    snr_db: float | None = None


CONDITIONS = [
    Condition("female variant, slow, high", "pt-br+f3", 130, 70),
    Condition("male variant, fast, low", "pt-br+m3", 200, 35),
    Condition("klatt synthesiser", "pt-br+klatt", 150, 50),
    Condition("variant 'Diogo'", "pt-br+Diogo", 170, 40),
    Condition("female variant + noise at 20 dB SNR", "pt-br+f3", 140, 60, snr_db=20.0),
    # Other phonetics: the Spanish and Italian voices read the Portuguese text with their own sounds,
    # closer to what a different TTS model does than espeak's pt-BR variants.
    Condition("Spanish voice reading it", "es", 160, 50),
    Condition("Italian voice reading it, female", "it+f2", 150, 60),
]


class OtherVoice:
    """A TTS engine that speaks with an espeak variant and, like F5, reports no word timings."""

    name = "other-voice"
    lane = "cpu"

    def __init__(self, cond: Condition, seed: int = 0) -> None:
        self.cond = cond
        self.truth: list[list[WordTime]] = []  # per chunk, in order
        self._rng = np.random.default_rng(seed)

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        audio, rate, words = espeak_words(text, self.cond.voice, self.cond.rate, self.cond.pitch)
        if self.cond.snr_db is not None:
            power = float(np.mean(audio.astype(np.float64) ** 2))
            noise = self._rng.normal(0.0, np.sqrt(power / 10 ** (self.cond.snr_db / 10)), len(audio))
            audio = np.clip(audio + noise, -32768, 32767).astype(np.int16)
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(audio.tobytes())
        self.truth.append(words)
        return Synthesis(path=out, duration=len(audio) / rate, sample_rate=rate, facts={"engine": self.name})


def run(cond: Condition, texts: list[str]) -> tuple[list[float], list[float], float, float]:
    """Caption gaps (start minus its first word's true onset, s), every word's gap, audio s, wall s."""
    gaps: list[float] = []
    word_gaps: list[float] = []
    audio_seconds = wall = 0.0
    for i, text in enumerate(texts):
        engine = OtherVoice(cond, seed=i)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = narrate_text(text, engine, None, Path(tmp), max_chunk_chars=300, pause_seconds=0.25,
                                  timeout=300.0, label="bench.txt")
            wall += time.perf_counter() - started
        audio_seconds += result.duration
        assert result.facts["caption_timing"] == "word: aligned to espeak (DTW)", result.facts["caption_timing"]
        truth = [chunk.start + w.start for chunk, words in zip(result.chunk_cues, engine.truth, strict=True)
                 for w in words]
        assert len(truth) == len(result.words), "the bench texts speak every written word as one word"
        word_gaps += [w.start - t for w, t in zip(result.words, truth, strict=True)]
        index = 0
        for cue in result.cues:
            gaps.append(cue.start - truth[index])
            index += len(cue.text.split())
    return gaps, word_gaps, audio_seconds, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two texts, one condition")
    args = parser.parse_args()
    conditions = CONDITIONS[:1] if args.quick else CONDITIONS
    texts = TEXTS[:2] if args.quick else TEXTS
    print(f"{len(texts)} paragraphs, reference voice pt-br 160 wpm pitch 50\n")
    print("| condition | captions | mean gap ms | mean abs gap ms | p90 abs ms | max abs ms "
          "| all words: mean abs ms | narration wall s / audio s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    everything: list[float] = []
    all_words: list[float] = []
    for cond in conditions:
        gaps, word_gaps, audio_s, wall = run(cond, texts)
        everything += gaps
        all_words += word_gaps
        a = np.abs(np.array(gaps)) * 1000
        print(f"| {cond.name} ({cond.voice}, {cond.rate} wpm, pitch {cond.pitch}) | {len(gaps)} | "
              f"{np.mean(gaps) * 1000:+.1f} | {a.mean():.1f} | {np.percentile(a, 90):.0f} | {a.max():.0f} | "
              f"{np.mean(np.abs(word_gaps)) * 1000:.1f} | {wall / audio_s:.3f} |")
    a = np.abs(np.array(everything)) * 1000
    print(f"| all | {len(everything)} | {np.mean(everything) * 1000:+.1f} | {a.mean():.1f} | "
          f"{np.percentile(a, 90):.0f} | {a.max():.0f} | {np.mean(np.abs(all_words)) * 1000:.1f} | |")


if __name__ == "__main__":
    main()
