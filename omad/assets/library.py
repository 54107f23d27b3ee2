"""The user's own photos and clips: folders indexed once into SQLite, kept up to date, searched by words.

:class:`LibraryIndex` owns a small SQLite file (``assets.library.index``,
default ``assets/library.sqlite`` in the state dir). :meth:`LibraryIndex.scan`
walks the configured folders and re-reads only the files whose size or mtime
changed since the last scan (a rescan on each asset stage run costs one
``stat`` per file). Each file is indexed by the words of its name, of the
folders above it, of its EXIF ImageDescription/XPTitle/XPKeywords/XPSubject
and XMP ``dc:title``/``dc:subject``/``dc:description``, and of a clip's
container title/comment tags, with its date, size and orientation. Words are
folded (accents and case dropped) and reduced to a plural-tolerant stem, so
"Abelhas", "abelha" and "ABELHA" meet, and "flores" meets "flor".

:class:`LibrarySource` (``library`` in ``assets.sources``) scores files by
how many of a scene's keywords they carry (keywords count double, words of the
description once). Library files are untrusted media: a file that does not
open is indexed as broken (with why) and never chosen; the chosen file is
checked again by the asset stage before use.

It never writes into the library folders, never follows a symlink out of a
folder, and reads an unmounted or missing folder as "not there now" (its
files stay indexed but are not offered), never as "everything deleted".
"""

from __future__ import annotations

import json
import os
import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import AssetKind, Found, Want
from .folder_index import open_index, walk_folder

if TYPE_CHECKING:
    from ..stage import StageContext

__all__ = ["LibraryIndex", "LibrarySource", "LibraryFile", "ScanReport", "tokens", "stem", "PHOTO_SUFFIXES",
           "CLIP_SUFFIXES"]

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
CLIP_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm"})
_SCHEMA = 2
#: Broken library files named in a job's warnings (the rest are counted).
_MAX_WARNINGS = 5
#: An XMP packet larger than this is not read (a photo's is a few KB).
_MAX_XMP_BYTES = 256 * 1024

# EXIF tags (TIFF IFD0) and the Exif sub-IFD's date.
_IMAGE_DESCRIPTION = 0x010E
_DATETIME = 0x0132
_XP_TITLE, _XP_COMMENT, _XP_KEYWORDS, _XP_SUBJECT = 0x9C9B, 0x9C9C, 0x9C9E, 0x9C9F
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_ORIENTATION = 0x0112

# Words that say nothing about a picture, in both languages, and camera file-name prefixes.
_STOP_WORDS = (
    "a o as os um uma uns umas de da do das dos em na no nas nos por para com sem sobre entre e ou que se "
    "the an of in on at to for with without and or from by is are this that these those "
    "img dsc dscn dcim pxl vid mov mvi photo foto image imagem picture video clip copy copia edit final"
)
_STOP = frozenset(_STOP_WORDS.split())


def _fold(text: str) -> str:
    """Lower case without accents ("Coração" -> "coracao")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def stem(word: str) -> str:
    """A plural-tolerant stem of a folded word (pt-BR and English plurals meet their singular)."""
    w = word
    if len(w) <= 3:
        return w
    if w.endswith(("oes", "aes")):
        return w[:-3] + "ao"  # coracoes, paes -> coracao, pao
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"  # berries -> berry
    if w.endswith("es") and len(w) > 4 and w[-3] in "rszx":
        return w[:-2]  # flores, luzes, boxes -> flor, luz, box
    if w.endswith("ais") or w.endswith("eis") or w.endswith("ois"):
        return w[:-2] + "l"  # animais, papeis, anzois -> animal, papel, anzol
    if w.endswith("ns"):
        return w[:-2] + "m"  # homens, jardins -> homem, jardim
    if w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def tokens(text: str) -> list[str]:
    """The searchable stems of ``text``: folded, split at anything not a letter or digit, stop words dropped."""
    out: list[str] = []
    for raw in re.split(r"[^0-9a-z]+", _fold(text)):
        if len(raw) < 3 or raw.isdigit() or raw in _STOP:
            continue
        s = stem(raw)
        if s not in out:
            out.append(s)
    return out


@dataclass(frozen=True)
class LibraryFile:
    """One indexed file, as search returns it."""

    path: Path
    kind: AssetKind
    words: frozenset[str]
    width: int
    height: int
    seconds: float
    taken: str
    title: str


@dataclass
class ScanReport:
    """What one scan did."""

    files: int = 0
    indexed: int = 0
    removed: int = 0
    broken: list[str] | None = None
    missing_folders: list[str] | None = None

    def facts(self) -> dict[str, Any]:
        return {"files": self.files, "indexed": self.indexed, "removed": self.removed,
                "broken": len(self.broken or []), "missing_folders": self.missing_folders or []}


def _xp(value: Any) -> str:
    """An XP* EXIF tag (UTF-16LE bytes, or a tuple of byte values) as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple | list):
        value = bytes(int(v) & 0xFF for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-16-le", errors="ignore").rstrip("\x00")
    return ""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="ignore").rstrip("\x00")
    return value if isinstance(value, str) else ""


_XMP_FIELD = re.compile(rb"<dc:(title|subject|description)\b[^>]*>(.*?)</dc:\1>", re.S)
_XMP_LI = re.compile(rb"<rdf:li\b[^>]*>(.*?)</rdf:li>", re.S)
_XMP_ATTR = re.compile(rb"\bdc:(title|description)\s*=\s*\"([^\"]*)\"")
_ENTITIES = {b"&amp;": b"&", b"&lt;": b"<", b"&gt;": b">", b"&quot;": b'"', b"&apos;": b"'"}


def xmp_words(packet: bytes) -> list[str]:
    """The texts of an XMP packet's dc:title, dc:subject and dc:description.

    Read with regular expressions over the bytes, not an XML parser: the
    packet is untrusted, and this way no entity is ever expanded and no DTD
    is read (Pillow's ``getxmp`` needs defusedxml for the same reason).
    """
    if len(packet) > _MAX_XMP_BYTES:
        return []
    out: list[str] = []
    for m in _XMP_FIELD.finditer(packet):
        body = m.group(2)
        items = _XMP_LI.findall(body) or [body]
        out.extend(_xml_text(i) for i in items)
    out.extend(_xml_text(m.group(2)) for m in _XMP_ATTR.finditer(packet))
    return [t for t in out if t]


def _xml_text(raw: bytes) -> str:
    raw = re.sub(rb"<[^>]*>", b" ", raw)
    for k, v in _ENTITIES.items():
        raw = raw.replace(k, v)
    return " ".join(raw.decode("utf-8", errors="ignore").split())


def _photo_meta(path: Path) -> dict[str, Any]:
    """Size, date and words of a photo, from its header and metadata only (pixels are not decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=("JPEG", "PNG", "WEBP", "TIFF", "BMP")) as im:
            width, height = im.size
            exif = im.getexif()
            texts = [_text(exif.get(_IMAGE_DESCRIPTION))]
            texts += [_xp(exif.get(t)) for t in (_XP_TITLE, _XP_COMMENT, _XP_KEYWORDS, _XP_SUBJECT)]
            taken = _text(exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)) or _text(exif.get(_DATETIME))
            if int(exif.get(_ORIENTATION, 1) or 1) in (5, 6, 7, 8):
                width, height = height, width
            packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
            if isinstance(packet, str):
                packet = packet.encode("utf-8", errors="ignore")
            texts += xmp_words(packet) if isinstance(packet, bytes) else []
            title = next((t for t in (_xp(exif.get(_XP_TITLE)), _text(exif.get(_IMAGE_DESCRIPTION))) if t), "")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a picture omad can read ({e})") from e
    if width < 16 or height < 16:
        raise ValueError(f"only {width}x{height} pixels")
    return {"width": width, "height": height, "seconds": 0.0, "taken": taken.strip(), "texts": texts,
            "title": title.strip()}


def _clip_meta(path: Path) -> dict[str, Any]:
    """Size, length, date and words of a clip, from an in-process probe (refuses playlists and non-video)."""
    from ..errors import OmadError
    from ..media.ffmpeg import VIDEO_DEMUXERS, probe

    try:
        info = probe(path, timeout=20.0, file_label=path.name)
    except OmadError as e:
        raise ValueError(e.message) from e
    if info.video is None or info.format_name not in VIDEO_DEMUXERS or not info.duration:
        raise ValueError(f"not a video clip omad reads (format {info.format_name})")
    width, height = info.width, info.height
    if info.rotation in (90, 270):
        width, height = height, width
    tags = {str(k).lower(): str(v) for k, v in info.tags.items()}
    texts = [tags.get(k, "") for k in ("title", "comment", "description", "keywords", "genre")]
    return {"width": width, "height": height, "seconds": float(info.duration),
            "taken": tags.get("creation_time", ""), "texts": texts, "title": tags.get("title", "")}


_CREATE = ("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, root TEXT NOT NULL, kind TEXT NOT NULL, "
           "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, words TEXT NOT NULL, width INTEGER, height INTEGER, "
           "seconds REAL, taken TEXT, title TEXT, error TEXT, indexed_at REAL)")


class LibraryIndex:
    """The SQLite index of the library folders. One connection per instance; use from one thread."""

    def __init__(self, path: Path, folders: Iterable[Path], *, max_files: int = 50000) -> None:
        self.path = path
        self.folders = [Path(f).expanduser() for f in folders]
        self.max_files = max_files
        self._db = open_index(path, "files", _CREATE, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LibraryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- scanning

    def scan(self) -> ScanReport:
        """Bring the index up to date with the folders: new and changed files read, vanished ones removed."""
        report = ScanReport(broken=[], missing_folders=[])
        known = {row[0]: (row[1], row[2]) for row in self._db.execute("SELECT path, size, mtime_ns FROM files")}
        seen: set[str] = set()
        for root in self.folders:
            if not root.is_dir():
                assert report.missing_folders is not None
                report.missing_folders.append(str(root))
                # Its files stay indexed (an unmounted share is not "all deleted"); search skips missing files.
                seen.update(p for p in known if Path(p).is_relative_to(root))
                continue
            for p, st in walk_folder(root, PHOTO_SUFFIXES | CLIP_SUFFIXES):
                if report.files >= self.max_files:
                    break
                key = str(p)
                seen.add(key)
                report.files += 1
                if known.get(key) == (st.st_size, st.st_mtime_ns):
                    continue
                self._index_one(p, root, st)
                report.indexed += 1
        gone = [p for p in known if p not in seen]
        self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
        report.removed = len(gone)
        self._db.commit()
        assert report.broken is not None
        report.broken = [f"{r[0]}: {r[1]}" for r in self._db.execute(
            "SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path")]
        return report

    def _index_one(self, p: Path, root: Path, st: os.stat_result) -> None:
        kind: AssetKind = "video" if p.suffix.lower() in CLIP_SUFFIXES else "photo"
        error: str | None = None
        meta: dict[str, Any] = {"width": 0, "height": 0, "seconds": 0.0, "taken": "", "texts": [], "title": ""}
        try:
            meta = _clip_meta(p) if kind == "video" else _photo_meta(p)
        except ValueError as e:
            error = str(e)[:300]
        rel_folders = [part for part in p.relative_to(root).parts[:-1]]
        words: list[str] = []
        for text in [p.stem, root.name, *rel_folders, *meta["texts"]]:
            words.extend(t for t in tokens(text) if t not in words)
        self._db.execute(
            "INSERT OR REPLACE INTO files (path, root, kind, size, mtime_ns, words, width, height, seconds, taken, "
            "title, error, indexed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (str(p), str(root), kind, st.st_size, st.st_mtime_ns, json.dumps(words), meta["width"], meta["height"],
             meta["seconds"], meta["taken"], meta["title"], error, time.time()),
        )

    # ---- reading

    def files(self) -> list[LibraryFile]:
        """Every usable indexed file (not broken, still inside a configured folder)."""
        out = []
        for row in self._db.execute(
            "SELECT path, kind, words, width, height, seconds, taken, title FROM files WHERE error IS NULL "
            "ORDER BY path"
        ):
            p = Path(row[0])
            if not any(p.is_relative_to(root) for root in self.folders):
                continue  # a folder taken out of the config
            out.append(LibraryFile(p, row[1], frozenset(json.loads(row[2])), int(row[3] or 0), int(row[4] or 0),
                                   float(row[5] or 0.0), row[6] or "", row[7] or ""))
        return out

    def search(self, want: Want, exclude: Iterable[str] = (), *, min_keywords: int = 1
               ) -> list[tuple[int, LibraryFile, list[str]]]:
        """Files that match ``want``'s words, best first, with the score and the matched words.

        A file matches with at least ``min_keywords`` of the keywords (or, for a want without keywords, two
        words of its description). Keywords count double. Files in ``exclude`` (used already) come after the
        others; then orientation, the preferred kind and size break ties.
        """
        keys = list(dict.fromkeys(t for k in want.keywords for t in tokens(k)))
        described = [t for t in tokens(want.description) if t not in keys]
        if not keys and not described:
            return []
        skip = set(exclude)
        scored = []
        for f in self.files():
            if f.kind not in want.kinds:
                continue
            hit_keys = [t for t in keys if t in f.words]
            hit_desc = [t for t in described if t in f.words]
            if (len(hit_keys) < min_keywords) if keys else (len(hit_desc) < 2):
                continue
            score = 2 * len(hit_keys) + len(hit_desc)
            upright = (f.width >= f.height) == (want.orientation == "landscape")
            big = f.width >= want.min_width and f.height >= want.min_height
            fresh = str(f.path) not in skip
            rank = (fresh, score, upright, -want.kinds.index(f.kind), big)
            scored.append((rank, score, f, hit_keys + hit_desc))
        scored.sort(key=lambda s: (s[0], str(s[2].path)), reverse=True)
        return [(score, f, words) for _, score, f, words in scored]


class LibrarySource:
    """``library``: the best-matching file of the user's folders (indexed on first use in each stage run)."""

    name = "library"
    remote = False

    def __init__(self, index: LibraryIndex, *, min_score: int = 1) -> None:
        self.index = index
        self.min_score = min_score
        self.used: set[str] = set()
        self.report: ScanReport | None = None

    def find(self, want: Want, ctx: StageContext) -> Found | None:
        if self.report is None:
            self.report = self.index.scan()
            broken = self.report.broken or []
            for line in broken[:_MAX_WARNINGS]:
                ctx.warn(f"library: {line}; it is skipped. Replace or remove the file.")
            if len(broken) > _MAX_WARNINGS:
                ctx.warn(f"library: {len(broken) - _MAX_WARNINGS} more broken files are skipped.")
        for score, f, words in self.index.search(want, exclude=self.used, min_keywords=self.min_score):
            self.used.add(str(f.path))
            return Found(path=f.path, kind=f.kind, source=self.name, id=str(f.path),
                         why=f"matched {', '.join(words)} in its name, folders or tags",
                         extra={"width": f.width, "height": f.height, "taken": f.taken, "score": score})
        return None
