"""A word-timing corpus with exact ground truth, for the aligner's tests and ``bench/wordtiming.py``.

Speech comes from libespeak-ng, which reports where every word and every
phoneme starts in the samples it makes. A word's true onset is its word event,
except where espeak opens the word with a pause phoneme (``_``, ``_:`` after a
comma): there nothing is heard until the first real phoneme, so that is the
onset. A stop consonant's closure *inside* a phrase (the silent "p" before
"pão") belongs to the word: the onset is the event, not the burst.

Changes a natural voice makes that the espeak reference does not have are
then put into the audio at known places, and the truth moved by known amounts:
leading silence before the first word, a pause before a word in mid-sentence
(where there is no punctuation, so the reference has none), and noise under
everything (a recording's floor is never digital zero).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from omad.tts.wordtiming import espeak_library

__all__ = ["SENTENCES_PT", "SENTENCES_EN", "Case", "Made", "true_onsets", "make_case", "stop_words", "PiperSpeech",
           "piper_speech", "with_pauses"]

SENTENCES_PT = [
    "Hoje vamos falar sobre as abelhas que visitam milhares de flores todos os dias.",
    "Elas levam pólen e néctar até a colmeia para alimentar as outras.",
    "Quando a chuva chega o jardim fica verde e as frutas aparecem.",
    "Depois do almoço a família senta na varanda para ouvir histórias antigas.",
    "O ônibus atrasou de novo e a fila na estação ficou enorme.",
    "Ninguém sabia quando o próximo chegaria então todos decidiram caminhar.",
    "Aprender a programar exige paciência e muita prática todos os dias.",
    "No começo tudo parece difícil mas cada erro ensina alguma coisa nova.",
    "A feira de domingo tem verduras frescas e pastel quentinho.",
    "Os vendedores gritam os preços e as crianças correm entre as barracas.",
    "No inverno as noites são longas e as pessoas tomam chocolate quente.",
    "Lá fora o vento sopra forte entre as árvores do quintal.",
    "O rio nasce nas montanhas e atravessa campos e cidades antes do mar.",
    "Ela abriu a janela respirou fundo e sorriu para o dia.",
    "Era o primeiro dia de férias e o sol brilhava sobre o telhado.",
    "Meu pai comprou pão de batata na padaria da esquina.",
    "Bruno trouxe duas caixas de tomate para a cozinha do bar.",
    "Todos precisam de tempo para pensar antes de decidir.",
    "Carlos pediu um café bem quente com pouco açúcar.",
    "Depois da tempestade o céu ficou limpo e claro.",
    "O time perdeu o jogo mas continuou treinando com vontade.",
    "Cada pessoa pode doar um pouco para ajudar a comunidade.",
    "Beatriz pintou quadros bonitos durante todo o verão.",
    "O barco partiu cedo e voltou tarde com peixes frescos.",
    "Precisamos terminar o trabalho antes do fim da tarde.",
    "Tatiana colocou a bicicleta dentro da garagem de casa.",
    "O professor deu uma aula de ciências sobre planetas distantes.",
    "Pedro bebeu água gelada depois de correr no parque.",
    "A biblioteca da cidade tem livros para todas as idades.",
    "Com o tempo os problemas viram desafios e os desafios viram diversão.",
]

SENTENCES_EN = [
    "Today we are going to talk about bees that visit thousands of flowers every day.",
    "They carry pollen and nectar back to the hive to feed the others.",
    "When the rain arrives the garden turns green and the fruit appears.",
    "After lunch the family sits on the porch to hear old stories.",
    "The bus was late again and the line at the station grew very long.",
    "Nobody knew when the next one would come so many people decided to walk.",
    "Learning to program takes patience and a lot of practice.",
    "At first everything seems hard but every mistake teaches something new.",
    "The Sunday market has fresh vegetables and warm pastries.",
    "My father bought potato bread at the bakery on the corner.",
    "Bruno brought two boxes of tomatoes to the kitchen.",
    "Everyone needs time to think before they decide.",
    "Carl ordered a hot coffee with very little sugar.",
    "After the storm the sky was clean and bright.",
    "The team lost the game but kept training with a will.",
    "The boat left early and came back late with fresh fish.",
    "We need to finish the work before the end of the afternoon.",
    "The teacher gave a science lesson about distant planets.",
    "Peter drank cold water after running in the park.",
    "The city library has books for readers of every age.",
]

_STOPS = ("p", "t", "c", "d", "b", "k")


def stop_words(text: str) -> list[int]:
    """Indices of the words that start with a stop consonant (p/t/c/d/b/k) and follow no punctuation."""
    tokens = text.split()
    return [i for i, tok in enumerate(tokens) if i and tok.lower().startswith(_STOPS)
            and not tokens[i - 1].endswith((",", ".", ";", ":", "!", "?"))]


def true_onsets(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int, list[float]]:
    """espeak's audio for ``text`` and every whitespace token's exact onset (seconds), from its events."""
    lib = espeak_library()
    spoken = lib.speak(text, voice, rate, pitch)
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    starts: list[int | None] = [None] * len(tokens)
    for pos, _length, sample in spoken.words:
        for i, (a, b) in enumerate(tokens):
            if a <= pos < b and starts[i] is None:
                starts[i] = sample
                break
    if any(s is None for s in starts):
        raise ValueError(f"espeak gave no word event for some word of {text!r}: pick another sentence")
    onsets: list[float] = []
    for s in starts:
        assert s is not None
        at = s
        if any(ps == s and name.startswith("_") for ps, name in spoken.phonemes):
            # A pause opens the word: it is heard from its first real phoneme.
            later = [ps for ps, name in spoken.phonemes if ps >= s and not name.startswith("_")]
            if later:
                at = later[0]
        onsets.append(at / lib.sample_rate)
    return spoken.audio, lib.sample_rate, onsets


@dataclass(frozen=True)
class Case:
    """One sentence read by one espeak voice, with the changes a natural voice would make."""

    text: str
    voice: str = "pt-br+m3"  # an espeak voice
    rate: int = 175
    pitch: int = 40
    lead: float = 0.0  # seconds of silence before the speech
    pause_before: int | None = None  # index of the word a pause is put before
    pause: float = 0.0  # its length, seconds
    snr_db: float | None = 40.0  # noise under everything (None: digital silence)
    seed: int = 0


@dataclass(frozen=True)
class Made:
    audio: np.ndarray
    rate: int
    onsets: list[float]




def with_pauses(audio: np.ndarray, rate: int, onsets: list[float], *, lead: float = 0.0,
                pause_before: int | None = None, pause: float = 0.0, snr_db: float | None = None,
                seed: int = 0) -> Made:
    """``audio`` with silence put in (before word ``pause_before``, and before everything) and noise under it."""
    x = audio.astype(np.float64)
    if pause_before is not None and pause > 0:
        at = round(onsets[pause_before] * rate)
        x = np.concatenate([x[:at], np.zeros(round(pause * rate)), x[at:]])
        onsets = onsets[:pause_before] + [t + pause for t in onsets[pause_before:]]
    if lead > 0:
        x = np.concatenate([np.zeros(round(lead * rate)), x])
        onsets = [t + lead for t in onsets]
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        loud = x[np.abs(x) > 0]
        power = float(np.mean(loud**2)) if loud.size else 1.0
        x = x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    return Made(np.clip(np.round(x), -32768, 32767).astype(np.int16), rate, onsets)


def make_case(case: Case) -> Made:
    """The case's audio (16-bit) and each word's exact onset in it."""
    audio, sr, onsets = true_onsets(case.text, case.voice, case.rate, case.pitch)
    return with_pauses(audio, sr, onsets, lead=case.lead, pause_before=case.pause_before, pause=case.pause,
                       snr_db=case.snr_db, seed=case.seed)


@dataclass(frozen=True)
class PiperSpeech:
    """A sentence spoken by a Piper voice, with each word's span from the voice's own duration model.

    Piper (VITS) decides how many audio frames every phoneme token gets, and
    the word separator is a token too, with 10-90 ms of its own. Its audio is
    the transition into the next word, so a word's true onset lies in
    ``[separator_start, first_phoneme]``: both ends are given.
    """

    audio: np.ndarray
    rate: int
    separator_start: list[float]
    first_phoneme: list[float]

    def with_pauses(self, *, lead: float = 0.0, pause_before: int | None = None, pause: float = 0.0,
                    seed: int = 0) -> tuple[Made, list[float]]:
        """The speech with silence put in (a pause goes where the separator starts) and noise under it:
        the audio with the separator starts as onsets, and the first phonemes moved to match."""
        made = with_pauses(self.audio, self.rate, self.separator_start, lead=lead, pause_before=pause_before,
                           pause=pause, snr_db=40.0, seed=seed)
        shift = [lead + (pause if pause_before is not None and i >= pause_before else 0.0)
                 for i in range(len(self.first_phoneme))]
        return made, [t + d for t, d in zip(self.first_phoneme, shift, strict=True)]


def piper_speech(voice: object, text: str, length_scale: float | None = None,
                 sampled: bool = True) -> PiperSpeech | None:
    """``text`` spoken by ``voice`` (a ``piper.PiperVoice`` loaded with alignments); None when Piper's
    phonemes do not split into the text's words (espeak joins some, as "on the").

    Piper samples its durations and its audio; ``sampled=False`` turns that
    noise off, so the same text always gives the same speech (for tests).
    """
    from piper import SynthesisConfig

    noise = None if sampled else 0.0
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise, noise_w_scale=noise)
    chunks = list(voice.synthesize(text, config, include_alignments=True))  # type: ignore[attr-defined]
    if len(chunks) != 1 or not chunks[0].phoneme_alignments:
        return None
    chunk = chunks[0]
    pos, first, separator, new = 0, [], [], True
    for a in chunk.phoneme_alignments:
        if a.phoneme == " ":
            separator.append(pos)
            new = True
        elif a.phoneme not in ("^", "$") and new:
            first.append(pos)
            new = False
        pos += int(a.num_samples)
    if len(first) != len(text.split()):
        return None
    separator = [first[0], *separator[: len(first) - 1]]
    rate = int(chunk.sample_rate)
    return PiperSpeech(chunk.audio_int16_array, rate, [s / rate for s in separator], [f / rate for f in first])
