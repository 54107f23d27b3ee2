"""An F5 reference recording without its transcript: Whisper writes it, and the clip ends on a sentence.

F5-TTS clones a voice from a short recording *and the exact words said in
it*; a wrong or missing transcript makes it speak nonsense, and a reference
longer than about 12 s is cut by F5 mid-word. When a brief or the
configuration gives a recording but no text, the recording is transcribed
(``omad.asr``, language from ``tts.language``), cut after the last sentence
that ends within the limit (a clause end, else a word end, when no sentence
fits), and the words up to the cut become the reference text. Nothing here
downloads: without a Whisper model the error names the pull command and the
option that would avoid it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..asr import AsrRequest, Word, engine_for
from ..errors import InputError, ToolMissing
from ..media.ffmpeg import SAFE_INPUT_ARGS, run_ffmpeg

if TYPE_CHECKING:
    from ..config import Config
    from ..lanes import Lanes

__all__ = ["TranscribedReference", "transcribe_reference", "cut_point"]

_SENTENCE_END = (".", "!", "?", "…")
_CLAUSE_END = (",", ";", ":")
_TAIL = 0.15  # seconds kept after the last word so it is not clipped


@dataclass
class TranscribedReference:
    audio: Path
    text: str
    facts: dict[str, Any]


def cut_point(words: list[Word], max_seconds: float) -> int:
    """How many of ``words`` the reference keeps: up to the last sentence end within ``max_seconds`` of speech."""
    if not words:
        return 0
    first = words[0].start
    fits = [i for i, w in enumerate(words) if w.end + _TAIL - first <= max_seconds]
    if not fits:
        return 1
    for ends in (_SENTENCE_END, _CLAUSE_END):
        marked = [i for i in fits if words[i].text.endswith(ends)]
        if marked:
            return marked[-1] + 1
    return fits[-1] + 1


def transcribe_reference(config: Config, lanes: Lanes | None, audio: Path, workdir: Path, *, max_seconds: float,
                         timeout: float, label: str) -> TranscribedReference:
    """Transcribe the reference ``audio`` and cut it at a sentence end within ``max_seconds``."""
    wav = workdir / f".{audio.stem}.reference16k.wav"
    run_ffmpeg([*SAFE_INPUT_ARGS, "-i", str(audio), "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(wav)],
               timeout=timeout, file_label=label)
    try:
        engine = engine_for(config, lanes)
        transcript = engine.transcribe(wav, AsrRequest(language=config.tts.language), timeout=timeout)
    except ToolMissing as e:
        raise ToolMissing(f"{e.message} The reference recording has no transcript, and writing one needs a Whisper "
                          "model; or give the exact words (voice.reference_text in the brief, "
                          "tts.f5.reference.text in the configuration).", file=label, details=e.details) from e
    finally:
        wav.unlink(missing_ok=True)
    words = transcript.words
    keep = cut_point(words, max_seconds)
    if keep == 0:
        raise InputError("the reference recording has no speech Whisper could hear; record a few seconds of clear "
                         "speech, or give its transcript as voice.reference_text.", file=label)
    kept = words[:keep]
    end = kept[-1].end + _TAIL
    cut = workdir / f".{audio.stem}.reference-cut.wav"
    run_ffmpeg([*SAFE_INPUT_ARGS, "-i", str(audio), "-vn", "-t", f"{end:.3f}", "-c:a", "pcm_s16le", str(cut)],
               timeout=timeout, file_label=label)
    text = " ".join(w.text for w in kept)
    facts = {"reference_text": text, "reference_text_from": "whisper", "model": transcript.model,
             "language": transcript.language, "cut_at_seconds": round(end, 2),
             "cut_at": "sentence end" if kept[-1].text.endswith(_SENTENCE_END) else (
                 "clause end" if kept[-1].text.endswith(_CLAUSE_END) else "word end"),
             "words_left_out": len(words) - keep}
    return TranscribedReference(cut, text, facts)
