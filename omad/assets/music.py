"""The user's own music: folders of tracks indexed by their tags into SQLite, chosen by mood, cut to a video's length.

:class:`MusicIndex` owns a small SQLite file (``assets.music.index``,
default ``assets/music.sqlite`` in the state dir), kept up to date like the
picture library (``omad.assets.library``): a scan re-reads only the tracks
whose size or mtime changed. Each track is read with ``mutagen`` for its
title, artist, genre, mood and comment tags (ID3, Vorbis comments, MP4
atoms) and its length, and indexed by those words and its folders' names
("musicas/alegre/..." is a mood too). Words are folded and stemmed as the
picture library's are, and a few mood words meet across pt-BR and English
("alegre" finds "happy" and "upbeat").

:func:`fit_track` makes the bed a video plays under its narration: the
track cut where a phrase can end (a silence, else a beat of a steady pulse,
else the quietest moment near the cut) when it is longer than the video, or
looped at such a point when it is shorter, with a short fade in and a fade
out. Ducking under the voice stays where it is (the render's mix).

Tracks are untrusted media: one mutagen cannot read is indexed as broken
(with why) and never chosen. It never writes into the music folders, never
follows a symlink out of one, and nothing leaves the box.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..media.ffmpeg import SAFE_INPUT_ARGS, run_ffmpeg
from .folder_index import open_index, walk_folder
from .library import tokens

__all__ = ["MusicIndex", "Track", "MusicScan", "fit_track", "FitReport", "MUSIC_SUFFIXES", "mood_words"]

MUSIC_SUFFIXES = frozenset({".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wav"})
_SCHEMA = 1
_RATE = 48000
#: Analysis frames: ~43 ms at 48 kHz, fine enough to place a cut between two beats.
_HOP = 2048

# Mood words that mean the same, pt-BR and English (folded, stemmed like the index's words).
_MOODS = [
    "alegre feliz happy upbeat animado cheerful joyful positivo positive",
    "calmo calma tranquilo calm relaxing relaxante chill suave peaceful sereno ambient",
    "triste sad melancolico melancholic emotivo emotional",
    "epico epic dramatico dramatic cinematic grandioso",
    "tenso tense suspense misterioso mysterious dark sombrio",
    "romantico romantic amor love",
    "energetico energetic energia energy intenso intense motivacional motivational",
    "divertido fun funny engracado playful",
]


def mood_words(mood: str) -> list[str]:
    """The index words a mood matches: its own stems and those of its synonyms."""
    own = tokens(mood)
    out = list(own)
    for line in _MOODS:
        group = [t for word in line.split() for t in tokens(word)]
        if any(t in group for t in own):
            out.extend(t for t in group if t not in out)
    return out


@dataclass(frozen=True)
class Track:
    """One indexed track, as search returns it."""

    path: Path
    title: str
    artist: str
    genre: str
    mood: str
    comment: str
    seconds: float
    words: frozenset[str]

    def credit(self) -> str:
        """"Title" by Artist, or what of it the tags hold."""
        if self.title and self.artist:
            return f"\u201c{self.title}\u201d by {self.artist}"
        return self.title or self.artist or self.path.name


@dataclass
class MusicScan:
    files: int = 0
    indexed: int = 0
    removed: int = 0
    broken: list[str] = field(default_factory=list)
    missing_folders: list[str] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        return {"files": self.files, "indexed": self.indexed, "removed": self.removed, "broken": len(self.broken),
                "missing_folders": self.missing_folders}


# Tag keys, lower-cased, per container: ID3 frames, Vorbis comments, MP4 atoms.
_FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("tit2", "title", "\xa9nam"),
    "artist": ("tpe1", "artist", "\xa9art", "albumartist", "tpe2"),
    "genre": ("tcon", "genre", "\xa9gen"),
    "mood": ("tmoo", "mood", "txxx:mood", "----:com.apple.itunes:mood"),
    "comment": ("comm", "comment", "description", "\xa9cmt"),
}


def _text(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [t for v in value for t in _text(v)]
    text = getattr(value, "text", None)
    if text is not None:
        return _text(text)
    if isinstance(value, bytes):  # an MP4 freeform atom
        return [value.decode("utf-8", "replace")]
    return [str(value)]


def _read_tags(path: Path) -> dict[str, Any]:
    """Title, artist, genre, mood, comment and length of one track; ValueError when mutagen cannot read it."""
    import mutagen

    try:
        f = mutagen.File(str(path))
    except Exception as e:  # mutagen raises its own MutagenError subclasses and plain struct/OS errors
        raise ValueError(f"its tags cannot be read ({type(e).__name__}: {e})") from e
    if f is None or getattr(f, "info", None) is None:
        raise ValueError("it is not an audio file mutagen knows (mp3, m4a, flac, ogg, opus, wav)")
    seconds = float(getattr(f.info, "length", 0.0) or 0.0)
    if seconds <= 0.5:
        raise ValueError(f"it lasts {seconds:.1f} s, too short to play under a video")
    found: dict[str, list[str]] = {k: [] for k in _FIELDS}
    for key, value in (f.tags.items() if f.tags is not None else []):
        low = str(key).lower()
        for name, keys in _FIELDS.items():
            if low in keys or any(low.startswith(k + ":") for k in keys if k in ("comm", "txxx:mood")):
                found[name].extend(t.strip() for t in _text(value) if t.strip())
    meta: dict[str, Any] = {k: "; ".join(dict.fromkeys(v))[:300] for k, v in found.items()}
    meta["seconds"] = seconds
    return meta


_CREATE = ("CREATE TABLE IF NOT EXISTS tracks (path TEXT PRIMARY KEY, root TEXT NOT NULL, size INTEGER NOT NULL, "
           "mtime_ns INTEGER NOT NULL, title TEXT, artist TEXT, genre TEXT, mood TEXT, comment TEXT, "
           "seconds REAL, words TEXT NOT NULL, error TEXT, indexed_at REAL)")


class MusicIndex:
    """The SQLite index of the music folders (one connection; callers close it)."""

    def __init__(self, path: Path, folders: list[Path], *, max_files: int = 20000) -> None:
        self.folders = [f.expanduser() for f in folders]
        self.max_files = max_files
        self._db = open_index(path, "tracks", _CREATE, _SCHEMA, check_same_thread=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MusicIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scan(self) -> MusicScan:
        """Bring the index up to date: new and changed tracks read, vanished ones dropped (a missing folder's kept)."""
        report = MusicScan()
        with self._lock:
            known = {r[0]: (r[1], r[2]) for r in self._db.execute("SELECT path, size, mtime_ns FROM tracks")}
            seen: set[str] = set()
            for root in self.folders:
                if not root.is_dir():
                    report.missing_folders.append(str(root))
                    seen.update(p for p in known if Path(p).is_relative_to(root))
                    continue
                for p, st in walk_folder(root, MUSIC_SUFFIXES):
                    if report.files >= self.max_files:
                        break
                    seen.add(str(p))
                    report.files += 1
                    if known.get(str(p)) == (st.st_size, st.st_mtime_ns):
                        continue
                    self._index_one(p, root, st)
                    report.indexed += 1
            gone = [p for p in known if p not in seen]
            self._db.executemany("DELETE FROM tracks WHERE path = ?", [(p,) for p in gone])
            report.removed = len(gone)
            self._db.commit()
            report.broken = [f"{r[0]}: {r[1]}" for r in self._db.execute(
                "SELECT path, error FROM tracks WHERE error IS NOT NULL ORDER BY path")]
        return report

    def _index_one(self, p: Path, root: Path, st: os.stat_result) -> None:
        error: str | None = None
        meta: dict[str, Any] = {"title": "", "artist": "", "genre": "", "mood": "", "comment": "", "seconds": 0.0}
        try:
            meta = _read_tags(p)
        except ValueError as e:
            error = str(e)[:300]
        words: list[str] = []
        for text in [p.stem, root.name, *p.relative_to(root).parts[:-1], meta["title"], meta["genre"],
                     meta["mood"], meta["comment"]]:
            words.extend(t for t in tokens(text) if t not in words)
        self._db.execute(
            "INSERT OR REPLACE INTO tracks (path, root, size, mtime_ns, title, artist, genre, mood, comment, seconds, "
            "words, error, indexed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (str(p), str(root), st.st_size, st.st_mtime_ns, meta["title"], meta["artist"], meta["genre"],
             meta["mood"], meta["comment"], meta["seconds"], json.dumps(words), error, time.time()),
        )

    def tracks(self) -> list[Track]:
        """Every usable track still inside a configured folder and still there."""
        with self._lock:
            rows = self._db.execute("SELECT path, title, artist, genre, mood, comment, seconds, words FROM tracks "
                                    "WHERE error IS NULL ORDER BY path").fetchall()
        out = []
        for row in rows:
            p = Path(row[0])
            if any(p.is_relative_to(root) for root in self.folders) and p.is_file():
                out.append(Track(p, row[1] or "", row[2] or "", row[3] or "", row[4] or "", row[5] or "",
                                 float(row[6] or 0.0), frozenset(json.loads(row[7]))))
        return out

    def moods(self) -> list[str]:
        """The moods the folders offer (tags and the mood words of folder names), for the audio producer."""
        found: list[str] = []
        for t in self.tracks():
            named = [line.split()[0] for line in _MOODS if t.words & set(mood_words(line.split()[0]))]
            for m in [*t.mood.split(";"), *named]:
                m = m.strip().lower()
                if m and m not in found:
                    found.append(m)
        return found[:30]

    def choose(self, mood: str | None, words: list[str], seconds: float, seed: str = ""
               ) -> tuple[Track, list[str]] | None:
        """The best track for ``mood`` (its tag counts most, then genre, comment and folder words) and what matched.

        Ties go to a track at least as long as the video (it needs no loop),
        then the nearest length, then a stable order seeded by the job.
        """
        wanted_mood = mood_words(mood) if mood else []
        wanted = [t for w in words for t in tokens(w) if t not in wanted_mood]
        if not wanted_mood and not wanted:
            return None
        scored = []
        for t in self.tracks():
            mood_tag = set(tokens(t.mood))
            hit_mood = [w for w in wanted_mood if w in t.words]
            hit = [w for w in wanted if w in t.words]
            if wanted_mood and not hit_mood:
                continue
            if not hit_mood and not hit:
                continue
            score = 3 * sum(1 for w in hit_mood if w in mood_tag) + 2 * len(hit_mood) + len(hit)
            long_enough = t.seconds >= seconds
            rank = (score, long_enough, -abs(t.seconds - seconds))
            order = int(hashlib.sha1(f"{seed}{t.path}".encode("utf-8", "surrogateescape")).hexdigest()[:8], 16)
            scored.append((rank, order, t, hit_mood + hit))
        if not scored:
            return None
        scored.sort(key=lambda s: (s[0], -s[1]), reverse=True)
        return scored[0][2], scored[0][3]


@dataclass
class FitReport:
    """How a track was made to fit: where it was cut or looped, and why there."""

    source_seconds: float
    seconds: float
    loops: int
    cut: str
    cut_at: float
    fade_in: float
    fade_out: float

    def facts(self) -> dict[str, Any]:
        return {"source_seconds": round(self.source_seconds, 3), "seconds": round(self.seconds, 3),
                "loops": self.loops, "cut": self.cut, "cut_at": round(self.cut_at, 3),
                "fade_in": self.fade_in, "fade_out": round(self.fade_out, 3)}


def _decode(path: Path, *, timeout: float, label: str, work: Path, cancel: threading.Event | None
            ) -> npt.NDArray[np.float32]:
    raw = work / "music.f32"
    try:
        run_ffmpeg([*SAFE_INPUT_ARGS, "-i", str(path), "-map", "0:a:0", "-ac", "2", "-ar", str(_RATE),
                    "-f", "f32le", str(raw)], timeout=timeout, file_label=label, cancel=cancel)
        data = np.fromfile(raw, dtype=np.float32)
    finally:
        raw.unlink(missing_ok=True)
    if data.size < _RATE:
        raise InputError("holds less than half a second of sound; choose another track.", file=label)
    return data[: data.size - data.size % 2].reshape(-1, 2)


def _analyse(audio: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float64], float | None, int]:
    """Per-frame loudness (RMS), and the beat period in frames with its phase when the pulse is steady."""
    mono = audio.mean(axis=1, dtype=np.float64)
    n = len(mono) // _HOP
    frames = mono[: n * _HOP].reshape(n, _HOP)
    rms = np.sqrt((frames ** 2).mean(axis=1) + 1e-12)
    onset = np.maximum(0.0, np.diff(np.log(rms + 1e-6), prepend=np.log(rms[0] + 1e-6)))
    onset = onset - onset.mean()
    fps = _RATE / _HOP
    lo, hi = int(fps * 0.3), int(fps * 1.5)  # 40 to 200 beats a minute
    if n < hi * 4 or not np.any(onset):
        return rms, None, 0
    ac = np.correlate(onset, onset, mode="full")[n - 1:]
    if ac[0] <= 0:
        return rms, None, 0
    lag = lo + int(np.argmax(ac[lo:hi + 1]))
    if ac[lag] / ac[0] < 0.3:
        return rms, None, 0
    phase = int(np.argmax([onset[p::lag].sum() for p in range(lag)]))
    return rms, float(lag), phase


def _cut_point(audio: npt.NDArray[np.float32], lo: float, hi: float) -> tuple[float, str]:
    """Where between ``lo`` and ``hi`` seconds a phrase can end: the latest silence, else a beat, else the quietest."""
    rms, period, phase = _analyse(audio)
    fps = _RATE / _HOP
    a, b = max(0, int(lo * fps)), min(len(rms) - 1, int(hi * fps))
    if b <= a:
        return hi, "end"
    window = rms[a:b + 1]
    quiet = float(np.percentile(rms, 95)) * 10 ** (-40 / 20)
    silent = np.nonzero(window <= quiet)[0]
    if len(silent):
        return (a + int(silent[-1])) / fps, "silence"
    if period is not None:
        beats = [f for f in np.arange(phase, b + 1, period) if a <= f <= b]
        if beats:
            # Just before the beat: the join lands on the next bar's attack instead of cutting one in half.
            return max(lo, (float(beats[-1]) - 0.5) / fps), "beat"
    return (a + int(np.argmin(window))) / fps, "quietest"


def _loop_points(audio: npt.NDArray[np.float32]) -> tuple[float, float]:
    """Where a loop of a short track starts and ends (seconds): whole beats from its first beat when the pulse is
    steady, else from the start to a silence or the quietest moment of its last quarter."""
    source = len(audio) / _RATE
    rms, period, phase = _analyse(audio)
    step = _HOP / _RATE
    if period is not None:
        first = phase * step
        beats = int((source - 0.1 - first) / (period * step))
        end = first + beats * period * step
        if end - first >= source * 0.5:
            return first, end
    end, _ = _cut_point(audio, source * 0.75, max(source * 0.75, source - 0.25))
    return 0.0, max(end, step)


def _join(parts: list[npt.NDArray[np.float32]], fade: int) -> npt.NDArray[np.float32]:
    out = parts[0]
    for part in parts[1:]:
        k = min(fade, len(out), len(part))
        ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)[:, None]
        mixed = out[len(out) - k:] * (1 - ramp) + part[:k] * ramp
        out = np.concatenate([out[: len(out) - k], mixed, part[k:]])
    return out


def fit_track(path: Path, seconds: float, out: Path, *, timeout: float, label: str,
              cancel: threading.Event | None = None, fade_in: float = 0.5, fade_out: float = 2.5) -> FitReport:
    """Write ``out`` (16-bit 48 kHz stereo WAV): the track cut or looped to end near ``seconds`` at a phrase end.

    The bed ends at most a few seconds before the video does, at a silence
    or a beat when the track has one, and fades out there.
    """
    audio = _decode(path, timeout=timeout, label=label, work=out.parent, cancel=cancel)
    source = len(audio) / _RATE
    slack = min(4.0, seconds * 0.2)
    loops = 0
    if source < seconds:
        start, end = _loop_points(audio)
        fade = int(0.03 * _RATE)
        # The body runs one cross-fade past its end, so each join keeps the beat on its grid.
        body = audio[int(start * _RATE): int(end * _RATE) + fade]
        parts = [audio[: int(end * _RATE) + fade]]
        while sum(len(p) for p in parts) - fade * (len(parts) - 1) < seconds * _RATE + _RATE:
            parts.append(body)
        loops = len(parts) - 1
        audio = _join(parts, fade)
    cut_at, why = _cut_point(audio, seconds - slack, seconds)
    bed = audio[: max(1, int(cut_at * _RATE))].copy()
    n_in, n_out = min(len(bed) // 4, int(fade_in * _RATE)), min(len(bed) // 3, int(fade_out * _RATE))
    bed[:n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)[:, None]
    bed[len(bed) - n_out:] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)[:, None]
    pcm = (np.clip(bed, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(_RATE)
        w.writeframes(pcm.tobytes())
    return FitReport(source, len(bed) / _RATE, loops, why, cut_at, fade_in, n_out / _RATE)
