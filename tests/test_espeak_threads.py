"""libespeak-ng loaded by two stages at once (two CPU lane slots): one instance, no hang."""

from __future__ import annotations

import threading

from omad.tts import _espeak_lib
from omad.tts.wordtiming import EspeakLibrary, espeak_library


def test_two_threads_loading_libespeak_at_once_get_one_instance_and_both_speak() -> None:
    """GIVEN libespeak-ng not loaded yet in this process WHEN two narrations ask for it at the same moment
    THEN it is initialised once, both get the same instance and both can speak (before the fix one of them
    hung in espeak_Initialize for ever)."""
    _espeak_lib._load.cache_clear()
    start = threading.Barrier(2)
    got: list[EspeakLibrary] = []
    spoken: list[int] = []

    def _narrate() -> None:
        start.wait(10)
        lib = espeak_library()
        got.append(lib)
        spoken.append(len(lib.speak("Olá, tudo bem?", "pt-br", 160, 50).audio))

    threads = [threading.Thread(target=_narrate, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung loading libespeak-ng"
    assert len(got) == 2 and got[0] is got[1]
    assert len(spoken) == 2 and min(spoken) > 1000
