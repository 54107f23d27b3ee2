"""File names from the inbox: how omad stores, shows and shortens them.

A name in the inbox is whatever bytes the writer chose. Python hands bytes
that are not UTF-8 to us as lone surrogates (``\\udcff``), which JSON, SQLite,
structlog and HTML refuse to encode; newlines and other control characters
break log lines and listings. This module is the one place that decides:

- :func:`problem` says why a name cannot be processed (the drop is then
  quarantined with a message asking the user to rename it);
- :func:`display` is the printable, always-encodable form used in logs,
  messages, the journal's ``name`` column, JSON records, HTML and folder names
  omad creates (undecodable bytes read ``\\xff``, control characters ``\\x0a``);
- :func:`fit_stem` shortens an output stem deterministically so that every
  name omad derives from it stays within the file system's 255-byte limit;
- :func:`clean` makes any JSON-able structure safe to encode as UTF-8.

Originals are never renamed: a quarantined file keeps its exact bytes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

__all__ = ["NAME_MAX", "display", "problem", "fit_stem", "clean", "utf8_len"]

#: The longest file name (in bytes) on ext4, xfs, btrfs and most NAS file systems.
NAME_MAX = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _bytes_shown(text: str) -> str:
    """Undecodable bytes (surrogate escapes) as ``\\xNN``; the rest unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    raw = text.encode("utf-8", "surrogateescape") if _only_escapes(text) else text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _only_escapes(text: str) -> bool:
    return all(not (0xD800 <= ord(c) <= 0xDFFF) or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def display(name: object) -> str:
    """A name as a person should see it, encodable anywhere: bad bytes and control characters escaped."""
    text = _bytes_shown(str(name))
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def problem(name: str) -> str | None:
    """Why omad cannot take a file of this name, or None when the name is fine."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8 text (it was probably copied from an old archive or a share " \
               "with another character set)"
    if _CONTROL.search(name):
        return "its name holds control characters (a line break or tab, for example)"
    if any(unicodedata.category(c) == "Cs" for c in name):
        return "its name holds characters that cannot be written as text"
    return None


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def fit_stem(stem: str, longest_suffix: int, limit: int = NAME_MAX) -> str:
    """``stem`` itself when ``stem + suffix`` fits ``limit`` bytes; else a stable shortened form.

    The shortened form keeps the beginning of the name (cut at a character
    boundary) and adds ``~`` plus 8 hex digits of the full name's hash, so two
    long names that share a beginning never collide, and the same name always
    shortens the same way (a re-run publishes under the same name).
    """
    room = limit - longest_suffix
    if utf8_len(stem) <= room:
        return stem
    tag = "~" + hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    keep = room - len(tag)
    out = ""
    for ch in stem:
        if utf8_len(out + ch) > keep:
            break
        out += ch
    return out.rstrip(" .") + tag


def clean(value: Any) -> Any:
    """A JSON-able structure with every string (keys too) made encodable as UTF-8."""
    if isinstance(value, str):
        return _bytes_shown(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
