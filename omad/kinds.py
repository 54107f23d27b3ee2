"""Kinds of dropped files: the vocabulary that routes pair by, defined once.

A file's kind comes from its extension alone (:func:`classify`); intake pairs
files of one stem by kind, each route's drops are written in kinds
(:mod:`omad.routes`), the web side fills a brief's file fields from uploads by
kind, and the messages that name a missing partner use the nouns here. This
module reads no file and imports nothing of omad's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["Kind", "KindInfo", "KINDS", "EXTENSIONS", "BRIEF_NAMES", "classify", "kind_of_name", "shown"]


class Kind(StrEnum):
    """What a dropped file is, by its extension."""

    #: a video (.mp4 .mov .mkv .webm .m4v)
    VIDEO = "video"
    #: a subtitle file of any format (.srt .vtt .ass .ssa): the role is called "srt" whatever the format
    SRT = "srt"
    #: a still image (.jpg .jpeg .png .webp)
    IMAGE = "image"
    #: a recording or music (.wav .mp3 .m4a .flac .ogg .opus .aac)
    AUDIO = "audio"
    #: plain text to narrate (.txt)
    TEXT = "text"
    #: a brief (.yaml .yml .json)
    BRIEF = "brief"
    #: anything else: refused by intake
    OTHER = "other"


@dataclass(frozen=True)
class KindInfo:
    #: the extensions, lower case, the first ones shown in messages
    extensions: tuple[str, ...]
    #: how a message names a partner of this kind ("a same-name <noun>")
    noun: str
    #: how a message names one file of this kind standing alone ("one <one>")
    one: str
    #: the extensions messages show (the common ones)
    shown: tuple[str, ...]


KINDS: dict[Kind, KindInfo] = {
    Kind.VIDEO: KindInfo((".mp4", ".mov", ".mkv", ".webm", ".m4v"), "video", "video",
                         (".mp4", ".mov", ".mkv", ".webm")),
    Kind.SRT: KindInfo((".srt", ".vtt", ".ass", ".ssa"), "subtitle file", "subtitle file",
                       (".srt", ".vtt", ".ass", ".ssa")),
    Kind.IMAGE: KindInfo((".jpg", ".jpeg", ".png", ".webp"), "image", "image", (".jpg", ".png", ".webp")),
    Kind.AUDIO: KindInfo((".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac"), "audio file", "recording",
                         (".wav", ".mp3", ".m4a", ".flac")),
    Kind.TEXT: KindInfo((".txt",), "text file", "text file", (".txt",)),
    Kind.BRIEF: KindInfo((".yaml", ".yml", ".json"), "brief", "brief", (".yaml", ".json")),
}
#: Each kind's extensions as a set (intake's ``VIDEO_EXT``... are these).
EXTENSIONS: dict[Kind, frozenset[str]] = {k: frozenset(i.extensions) for k, i in KINDS.items()}
#: The names a bundle folder's brief may have.
BRIEF_NAMES = ("brief.yaml", "brief.yml", "brief.json")

_BY_EXT = {ext: kind for kind, info in KINDS.items() for ext in info.extensions}


def kind_of_name(name: str) -> Kind:
    """The kind of a file called ``name``."""
    return _BY_EXT.get(Path(name).suffix.lower(), Kind.OTHER)


def classify(path: Path) -> str:
    """The kind of the file at ``path``, as the string intake pairs by."""
    return kind_of_name(path.name).value


def shown(kind: str) -> str:
    """The extensions messages show for ``kind``, ``.wav/.mp3/...`` style."""
    return "/".join(KINDS[Kind(kind)].shown)
