"""libespeak-ng through ctypes: the samples, word events and phoneme events of a text.

The one binding to the library in omad; ``omad.tts.wordtiming`` times words
with it (and re-exports it). libespeak-ng is not thread-safe and keeps one
callback per process: every call goes through one lock, and the process has
one instance (``espeak_library``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ToolMissing

__all__ = ["EspeakLibrary", "Spoken", "VoiceMissing", "espeak_library"]

_LOCK = threading.Lock()


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_RATE, _PITCH = 1, 3
_POS_CHARACTER, _CHARS_UTF8, _ENDPAUSE = 1, 1, 0x1000


class VoiceMissing(ToolMissing):
    """libespeak-ng has no voice of that name (the espeak-ng program says why: unknown, or MBROLA missing)."""


@dataclass(frozen=True)
class Spoken:
    """What libespeak-ng made of a text: 16-bit samples, word events and phoneme events.

    ``words``: (character offset, length, sample offset) per word event.
    ``phonemes``: (sample offset, mnemonic) per phoneme; pauses are mnemonics starting with ``_``.
    """

    audio: np.ndarray
    words: list[tuple[int, int, int]]
    phonemes: list[tuple[int, str]]


class EspeakLibrary:
    """libespeak-ng through ctypes: audio, word and phoneme events for a text."""

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = int(self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None,
                                                           _INITIALIZE_PHONEME_EVENTS))
        if self.sample_rate <= 0:
            raise ToolMissing("libespeak-ng did not initialise (is espeak-ng-data installed?). "
                              "Install it with `sudo apt-get install espeak-ng`.")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._phonemes: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept on self: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes.Array[ctypes.c_short], n: int, events: ctypes.Array[_Event]) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self._events.append((e.text_position - 1, e.length, e.sample))
            elif e.type == _EVENT_PHONEME:
                self._phonemes.append((e.sample, e.id.decode("ascii", "replace")))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """16-bit samples at ``sample_rate`` and word events (character offset, length, sample offset)."""
        spoken = self.speak(text, voice, rate, pitch)
        return spoken.audio, spoken.words

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> Spoken:
        """Samples at ``sample_rate`` with the word and phoneme events of ``text``."""
        with _LOCK:
            self._chunks, self._events, self._phonemes = [], [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise VoiceMissing(f"libespeak-ng has no voice '{voice}'. Run `espeak-ng --voices` to list voices.")
            self._lib.espeak_SetParameter(_RATE, rate, 0)
            self._lib.espeak_SetParameter(_PITCH, pitch, 0)
            data = text.encode("utf-8")
            buf = ctypes.create_string_buffer(data)
            # With ENDPAUSE (as the espeak-ng program sets it) a text ends its clause and its recording ends with
            # the program's pause. Without it the synthesiser takes the text to go on in the next call: a
            # sentence came out up to 0.3 s longer or shorter than the program's, against ~0.05 s with it.
            self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            self._lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
            return Spoken(audio.astype(np.int16), list(self._events), list(self._phonemes))


def espeak_library() -> EspeakLibrary:
    """The process's one libespeak-ng instance, created under the library's lock.

    With two or more CPU lane slots, two narrations can start at once; both
    would initialise the library concurrently (``lru_cache`` does not stop
    that), and ``espeak_Initialize`` then hung one of the jobs forever.
    """
    with _LOCK:
        return _load()


@lru_cache(maxsize=1)
def _load() -> EspeakLibrary:
    path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        return EspeakLibrary(path)
    except OSError as e:
        raise ToolMissing(f"libespeak-ng cannot be loaded ({e}); word-timed captions need it. "
                          "Install it with `sudo apt-get install espeak-ng`.") from e
