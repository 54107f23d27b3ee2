"""The espeak-ng engine: CPU narration that is always available.

A chunk of up to ``IN_PROCESS_CHARS`` characters (a sentence or two: every
chunk at the default ``tts.max_chunk_chars``) is spoken in-process through
libespeak-ng, which gives the samples and espeak's own word events for them in
one pass (~5 ms for a sentence). A longer chunk runs the ``espeak-ng``
program, which a timeout can stop, and its words are timed by aligning
libespeak-ng's recording of the same text onto the program's
(``omad.tts.wordtiming``). Both speak the same: the program is the library
with the same settings. (The library keeps a little state between texts, so
its recording of a sentence can differ from the program's by a few
hundredths of a second; with its own events, the words are timed exactly.)

This module translates espeak's failures into omad's errors. Text reaches the
program on stdin as UTF-8, never on the command line (no length limit, no
option injection from text that starts with ``-``) and never through a shell.
It speaks text as given: normalisation is the caller's job
(``omad.text.normalize``).
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import wave
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from ..errors import ConfigError, InputError, StageFailed, ToolMissing, ToolTimeout, TransientError
from ..lanes import Lane
from ..procs import run_tool
from . import Synthesis, Voice
from ._espeak_lib import VoiceMissing, espeak_library
from .wordtiming import WordTime, align_words, spoken_words

if TYPE_CHECKING:
    from ..config import EspeakConfig

__all__ = ["ESPEAK", "IN_PROCESS_CHARS", "EspeakEngine", "espeak_version"]

_STOCK = "espeak-ng"
ESPEAK = os.environ.get("OMAD_ESPEAK", _STOCK)

#: The longest chunk spoken in-process (libespeak-ng cannot be stopped mid-text; this much takes ~0.1 s).
IN_PROCESS_CHARS = 600

_INSTALL_HINT = "Install it with `sudo apt-get install espeak-ng` (or run `make demo`, which installs it)."


def _require_espeak(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise ToolMissing(f"{binary} is not installed or not on PATH. {_INSTALL_HINT}")
    return found


@lru_cache(maxsize=4)
def espeak_version(binary: str = ESPEAK) -> str:
    """espeak-ng's version line (recorded in the job's facts), or "unknown"."""
    try:
        ran = run_tool([binary, "--version"], timeout=30)
        out = ran.stdout.decode("utf-8", "replace")
    except OSError:
        return "unknown"
    line = out.strip().splitlines()[0] if out.strip() else "unknown"
    return line.replace("eSpeak NG text-to-speech: ", "").split("  Data at:")[0].strip()


class EspeakEngine:
    """Speaks text with espeak-ng into a 16-bit mono WAV (22.05 kHz for the stock voices)."""

    name = "espeak"
    lane = Lane.CPU

    def __init__(self, config: EspeakConfig | None = None, *, binary: str | None = None) -> None:
        if config is None:
            from ..config import EspeakConfig

            config = EspeakConfig.model_validate({})
        self.config = config
        self.binary = binary or ESPEAK

    def _rate(self, voice: Voice | None) -> int:
        """Words per minute: the configured rate, times the brief's speed factor (espeak-ng takes 80-450)."""
        if voice is None or not voice.speed:
            return self.config.rate
        return max(80, min(450, round(self.config.rate * voice.speed)))

    def synthesize(self, text: str, voice: Voice | None, out: Path, *, timeout: float = 600.0) -> Synthesis:
        """Speak already-normalised ``text`` into ``out``; the duration is measured from the file."""
        exe = _require_espeak(self.binary)
        from_brief = voice is not None and bool(voice.name)
        voice_name = voice.name if voice is not None and voice.name else self.config.voice
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if len(text) <= IN_PROCESS_CHARS and self.binary == _STOCK:  # not a program of the operator's (OMAD_ESPEAK)
            spoken = self._in_process(text, voice_name, self._rate(voice), out)
            if spoken is not None:
                return spoken
        cmd = [
            exe,
            "-v",
            voice_name,
            "-s",
            str(self._rate(voice)),
            "-p",
            str(self.config.pitch),
            "-b",
            "1",  # input is UTF-8 whatever the daemon's locale
            "-w",
            str(out),
            "--stdin",
        ]
        started = time.monotonic()
        try:
            proc = run_tool(cmd, input=text.encode("utf-8"), timeout=timeout)
        except OSError as e:
            raise ToolMissing(f"could not run {exe}: {e.strerror or e}. {_INSTALL_HINT}") from e
        if proc.stopped_for == "cancel":
            out.unlink(missing_ok=True)
            raise TransientError("espeak-ng was stopped because omad is shutting down.")
        if proc.stopped_for == "timeout":
            out.unlink(missing_ok=True)
            raise ToolTimeout(
                f"espeak-ng ran longer than {timeout:.0f}s on {len(text)} characters and was stopped; "
                "it will be retried. Raise jobs.stage_timeouts if the text is very long.",
                details={"characters": len(text)},
            )
        wall = time.monotonic() - started
        stderr = proc.stderr.decode("utf-8", "replace")
        tail = stderr[-2000:]
        details = {"returncode": proc.returncode, "stderr_tail": tail, "voice": voice_name}
        if proc.returncode != 0 or "voice does not exist" in stderr:
            out.unlink(missing_ok=True)
            self._raise_for_failure(proc.returncode, stderr, voice_name, from_brief, details)
        try:
            with wave.open(str(out), "rb") as w:
                frames, rate = w.getnframes(), w.getframerate()
        except (OSError, EOFError, wave.Error) as e:
            raise StageFailed(
                f"espeak-ng exited cleanly but did not write a readable WAV ({e}).", details=details
            ) from e
        duration = frames / rate if rate else 0.0
        if duration <= 0:
            raise StageFailed(
                f"espeak-ng produced no audio for {text[:60]!r}; the text may hold nothing it can pronounce.",
                details=details,
            )
        return Synthesis(
            path=out,
            duration=duration,
            sample_rate=rate,
            words=self._word_events(text, voice_name, out, self._rate(voice)),
            facts={
                "engine": self.name,
                "engine_version": espeak_version(exe),
                "voice": voice_name,
                "rate": self._rate(voice),
                "pitch": self.config.pitch,
                "rtf": round(wall / duration, 4),
            },
        )

    def _in_process(self, text: str, voice_name: str, rate: int, out: Path) -> Synthesis | None:
        """``text`` spoken by libespeak-ng into ``out``, timed by its word events; None where the program is
        needed: a voice the library does not have (the program says why) or no library."""
        started = time.monotonic()
        try:
            lib = espeak_library()
            spoken = lib.speak(text.replace("\0", " "), voice_name, rate, self.config.pitch)
        except (VoiceMissing, ToolMissing):
            return None
        wall = time.monotonic() - started
        if not len(spoken.audio):
            raise StageFailed(f"espeak-ng produced no audio for {text[:60]!r}; the text may hold nothing it can "
                              "pronounce.", details={"voice": voice_name})
        part = out.with_name(f".{out.name}.part")
        try:
            with wave.open(str(part), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(lib.sample_rate)
                w.writeframes(spoken.audio.astype("<i2").tobytes())
            part.replace(out)
        except OSError as e:
            part.unlink(missing_ok=True)
            if e.errno == errno.ENOSPC:
                raise TransientError("the disk is full; free some space. The job will be retried.") from e
            raise StageFailed(f"cannot write the narration ({e.strerror or e}).", file=out) from e
        duration = len(spoken.audio) / lib.sample_rate
        return Synthesis(
            path=out,
            duration=duration,
            sample_rate=lib.sample_rate,
            words=spoken_words(text, spoken, lib.sample_rate) or None,
            facts={
                "engine": self.name,
                "engine_version": espeak_version(self.binary),
                "voice": voice_name,
                "rate": rate,
                "pitch": self.config.pitch,
                "rtf": round(wall / duration, 4),
            },
        )

    def _word_events(self, text: str, voice_name: str, out: Path, rate: int) -> list[WordTime] | None:
        """espeak's own word events for this recording, or None when libespeak-ng cannot give them.

        libespeak-ng speaking the same text with the same voice, rate and pitch
        reports where each word starts. Its synthesiser keeps a little state
        between texts, so its samples can drift from the program's by tens of
        milliseconds; the events are therefore carried onto this recording by
        aligning the two (near-identical) recordings, not copied.
        """
        try:
            with wave.open(str(out), "rb") as w:
                if w.getsampwidth() != 2 or w.getnchannels() != 1:
                    return None
                samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                file_rate = w.getframerate()
            words = align_words(text, samples, file_rate, voice_name, rate, self.config.pitch)
        except (ToolMissing, OSError, EOFError, wave.Error):
            return None
        return words or None

    def _raise_for_failure(
        self, rc: int, stderr: str, voice_name: str, from_brief: bool, details: dict[str, object]
    ) -> NoReturn:
        lowered = stderr.lower()
        if "voice does not exist" in lowered or "mbrola voice" in lowered:
            why = (
                "needs the MBROLA program and its voice files, which are not installed"
                if "mbrola" in lowered
                else "is not a voice espeak-ng knows"
            )
            hint = "Run `espeak-ng --voices` to list voices (e.g. pt-br)."
            if from_brief:
                raise InputError(
                    f"the voice '{voice_name}' {why}. Set voice.name in the brief. {hint}", details=details
                )
            raise ConfigError(
                f"the voice '{voice_name}' {why}. Set tts.espeak.voice in the config. {hint}", details=details
            )
        if "no space left" in lowered:
            raise TransientError("the disk is full; free some space. The job will be retried.", details=details)
        if rc < 0:
            raise TransientError(f"espeak-ng was killed by signal {-rc}; the job will be retried.", details=details)
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {rc}"
        raise StageFailed(f"espeak-ng failed: {last}", details=details)
