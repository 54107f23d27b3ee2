"""Each scene's voice and word timings, cached by what determines them.

A scene's narration depends only on its text after the guardrails and the
pt-BR normalisation, the written narration its captions show, the engine and
its version, the voice (name, speaker, speed, the reference recording's
content), the ``tts`` and ``caption`` settings and the frame its captions are
laid out for. :func:`voice_key` hashes exactly those; nothing else (not the
scene's place in the video, not its picture) goes in, so moving a scene or
swapping its picture keeps its voice, and editing one sentence makes one
scene's voice again.

Entries live in two places, looked up in order:

- the job folder (``cache/voice/``): the storyboard's preview and the voice
  stage share it, and a retry reuses it;
- the state dir (``cache/voice/``), bounded by ``scenes.voice_cache_mb``
  (least recently used first out), so an edited ``X.scenes.yaml`` dropped
  again as a new job finds the scenes it did not change.

An entry is a WAV and a JSON record written under temporary names and renamed
into place, the JSON last: a reader sees a whole entry or none. A damaged
entry is a miss, never an error. This module never synthesises anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..text.normalize import normalize_for_speech

if TYPE_CHECKING:
    from ..config import Config
    from ..text.caption_layout import LayoutRules
    from ..tts import Voice

__all__ = ["VoiceCache", "voice_key", "engine_version", "CACHE_FORMAT"]

#: Bumped when what an entry holds changes: older entries become misses.
CACHE_FORMAT = 1
_FOLDER = Path("cache") / "voice"


@lru_cache(maxsize=16)
def _file_identity(path: str) -> str:
    """A reference recording by content (it is small), so a re-recorded file is a new voice."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return "missing"
    return h.hexdigest()


def engine_version(engine: str, config: Config) -> str:
    """What identifies the engine's build and model: a new espeak-ng, piper-tts or F5 checkpoint is a new voice."""
    if engine == "espeak":
        from ..tts.espeak import espeak_version

        return espeak_version()
    if engine == "piper":
        from ..tts.piper import piper_version

        return piper_version()
    if engine == "f5":
        f5 = config.tts.f5
        parts = []
        for name in (f5.checkpoint, f5.vocab, f5.vocoder):
            try:
                st = os.stat(name) if name else None
            except OSError:
                st = None
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}" if st is not None else name)
        return "|".join(parts)
    return "unknown"


def voice_key(*, spoken: str, written: str, engine: str, version: str, voice: Voice | None, language: str,
              config: Config, layout: LayoutRules, frame: tuple[int, int]) -> str:
    """The cache key of one scene's narration (hex SHA-256): everything that shapes its sound and timings."""
    who: dict[str, Any] = {}
    if voice is not None:
        who = {f.name: getattr(voice, f.name) for f in dataclasses.fields(voice)}
        ref = voice.reference_audio
        who["reference_audio"] = _file_identity(str(ref)) if ref is not None else None
    record = {
        "format": CACHE_FORMAT,
        "spoken": normalize_for_speech(" ".join(spoken.split()), language),
        "spoken_raw": " ".join(spoken.split()),
        "written": " ".join(written.split()),
        "engine": engine,
        "version": version,
        "voice": who,
        "language": language,
        "tts": config.tts.model_dump(mode="json"),
        "caption": config.caption.model_dump(mode="json"),
        "layout": dataclasses.asdict(layout),
        "frame": list(frame),
    }
    blob = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class VoiceCache:
    """The two places a scene's voice may already be: the job folder, then the state dir (bounded)."""

    def __init__(self, job_folder: Path, state_dir: Path | None, max_bytes: int) -> None:
        self.job = job_folder / _FOLDER
        self.shared = state_dir / _FOLDER if state_dir is not None and max_bytes > 0 else None
        self.max_bytes = max_bytes
        #: lookups answered from each place, for the stage's facts and the tests
        self.hits = {"job": 0, "state": 0}
        self.misses = 0

    @classmethod
    def for_job(cls, config: Config, job_folder: Path) -> VoiceCache:
        return cls(job_folder, Path(config.state_dir), int(config.scenes.voice_cache_mb * 2**20))

    def get(self, key: str, out: Path) -> dict[str, Any] | None:
        """The cached entry for ``key`` with its WAV copied to ``out``; None when neither place has it."""
        for where, folder in (("job", self.job), ("state", self.shared)):
            if folder is None:
                continue
            entry = self._read(folder, key)
            if entry is None:
                continue
            try:
                _copy(folder / f"{key}.wav", out)
            except OSError:
                continue
            if where == "state":
                with contextlib.suppress(OSError):
                    os.utime(folder / f"{key}.json")  # recently used: kept longest
                self._store(self.job, key, entry, out)  # the job's own copy, for its retries and previews
            self.hits[where] += 1
            return entry
        self.misses += 1
        return None

    def put(self, key: str, entry: dict[str, Any], wav: Path) -> None:
        """Keep a freshly made scene voice in both places (a full disk only loses the cache, never the job)."""
        self._store(self.job, key, entry, wav)
        if self.shared is not None:
            self._store(self.shared, key, entry, wav)
            self._trim()

    @staticmethod
    def _read(folder: Path, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not (folder / f"{key}.wav").is_file():
            return None
        entry = data.get("entry")
        return entry if isinstance(entry, dict) else None

    @staticmethod
    def _store(folder: Path, key: str, entry: dict[str, Any], wav: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{key}.wav.tmp"
            _copy(wav, tmp)
            tmp.replace(folder / f"{key}.wav")
            jtmp = folder / f".{key}.json.tmp"
            jtmp.write_text(json.dumps({"format": CACHE_FORMAT, "entry": entry}, ensure_ascii=False),
                            encoding="utf-8")
            jtmp.replace(folder / f"{key}.json")
        except OSError:
            return

    def _trim(self) -> None:
        """Least recently used entries out until the state dir's cache fits ``scenes.voice_cache_mb``."""
        assert self.shared is not None
        entries: list[tuple[float, int, str]] = []
        try:
            names = list(self.shared.glob("*.json"))
        except OSError:
            return
        total = 0
        for meta in names:
            key = meta.stem
            try:
                size = meta.stat().st_size + (self.shared / f"{key}.wav").stat().st_size
                used = meta.stat().st_mtime
            except OSError:
                continue
            total += size
            entries.append((used, size, key))
        for _used, size, key in sorted(entries):
            if total <= self.max_bytes:
                break
            for suffix in (".json", ".wav"):
                with contextlib.suppress(OSError):
                    (self.shared / f"{key}{suffix}").unlink()
            total -= size


def _copy(src: Path, dest: Path) -> None:
    """A copy, never a hard link: a stage that later rewrites its scene file in place must not change an entry."""
    dest.unlink(missing_ok=True)
    shutil.copyfile(src, dest)
