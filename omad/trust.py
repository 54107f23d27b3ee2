"""What crosses a trust boundary: signed task messages and replies, and the names they carry.

With ``executor.kind: celery`` the broker (Redis) and anything written to it
are untrusted. A task message and a stage's reply are therefore signed with
HMAC-SHA256 over a canonical JSON form (sorted keys, no spaces), with a key
that only the daemon and its workers hold (``executor.signing_key``,
``$OMAD_SIGNING_KEY`` or the systemd credential ``omad-signing-key``) and that
never travels through Redis. A message and a reply are signed for different
*purposes*, so a signed message can never be passed off as a reply.

A valid signature says who wrote a message, not that what it names is sane,
so every name is checked too before it is used: job and instance ids, stage
and route names, attempt numbers and task ids must have their exact shapes;
paths must be relative, free of ``..`` and NUL, and must stay inside the job
folder once symlinks are resolved; publish suffixes and sha256 digests must
look like what omad writes. Anything else is :class:`~omad.errors.Refused`:
the attempt fails as a bug with the reason logged, and nothing it names is
read or written.

This module never reads the key from Redis, a task message or a reply, and
never logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .config import from_env
from .errors import ConfigError, Refused
from .names import NAME_MAX

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Purpose", "KEY_ENV", "CREDENTIAL", "MIN_KEY_CHARS", "new_key", "signing_key", "canonical", "sign",
           "verify", "relative_name", "inside", "check_suffix", "check_digest", "check_role", "check_seconds",
           "JOB_ID", "DIGEST", "SIG"]

#: The environment variable that holds the signing key when the config file leaves it empty.
KEY_ENV = "OMAD_SIGNING_KEY"
#: The name of the systemd credential (``LoadCredential=omad-signing-key:/etc/omad/signing-key``).
CREDENTIAL = "omad-signing-key"
#: The shortest key accepted: ``omad key new`` makes 43 characters (32 random bytes).
MIN_KEY_CHARS = 32
#: The field of a signed message that holds its signature.
SIG = "sig"

JOB_ID = re.compile(r"[0-9a-f]{16}")
DIGEST = re.compile(r"[0-9a-f]{64}")
_ROLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
#: ``.mp4``, ``.scenes.yaml``: one to three dotted parts of letters, digits, ``_`` and ``-``.
_SUFFIX = re.compile(r"(\.[A-Za-z0-9_-]{1,24}){1,3}")
_MAX_PATH = 4096


class Purpose(StrEnum):
    """What a signature vouches for; part of what is signed, so one kind cannot stand in for another."""

    #: a stage task message, written by the daemon
    TASK = "omad-task-v1"
    #: a stage's reply (the committed ``result.json``, or the broker's copy), written by a worker
    REPLY = "omad-reply-v1"


def new_key() -> str:
    """A fresh signing key: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def _how_to() -> str:
    return (f"Make one with `omad key new` and give the same key to the daemon and every worker: "
            f"${KEY_ENV}, executor.signing_key in the config, or a systemd credential named {CREDENTIAL} "
            f"(LoadCredential={CREDENTIAL}:/etc/omad/signing-key).")


def signing_key(config: Config) -> bytes:
    """The key that signs task messages and replies: the config, else ``$OMAD_SIGNING_KEY``, else the credential.

    Raises :class:`ConfigError` when none is set or it is too short: the celery executor and ``omad worker``
    refuse to start without one.
    """
    value = from_env(config.executor.signing_key, "executor.signing_key")
    where = "executor.signing_key" if config.executor.signing_key.strip() else f"${KEY_ENV}"
    creds = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not value and creds:
        path = Path(creds) / CREDENTIAL
        try:
            value = path.read_text(encoding="utf-8").strip()
            where = f"the credential {path}"
        except OSError:
            value = ""
    if not value:
        raise ConfigError("executor.kind is celery but no signing key is set. Task messages and results are "
                          "signed so that whoever can write to Redis cannot steer a worker or the daemon. "
                          + _how_to())
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(f"the signing key in {where} is too short ({len(value)} characters, at least "
                          f"{MIN_KEY_CHARS}). " + _how_to())
    return value.encode("utf-8")


def canonical(data: Any) -> bytes:
    """The bytes that are signed: JSON with sorted keys and no spaces (the same on every machine)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _mac(key: bytes, purpose: Purpose, body: dict[str, Any]) -> str:
    return hmac.new(key, purpose.value.encode("ascii") + b"\n" + canonical(body), hashlib.sha256).hexdigest()


def sign(data: dict[str, Any], key: bytes, purpose: Purpose) -> dict[str, Any]:
    """``data`` with its signature in :data:`SIG` (any older signature replaced)."""
    body = {k: v for k, v in data.items() if k != SIG}
    return {**body, SIG: _mac(key, purpose, body)}


def verify(data: Any, key: bytes, purpose: Purpose, what: str) -> dict[str, Any]:
    """``data`` without its signature, if the signature is ``key``'s for ``purpose``; else :class:`Refused`."""
    if not isinstance(data, dict):
        raise Refused(f"{what} is not a JSON object ({type(data).__name__}); refused.")
    sig = data.get(SIG)
    body = {k: v for k, v in data.items() if k != SIG}
    if not isinstance(sig, str) or not sig:
        raise Refused(f"{what} carries no signature; refused. Every omad of this version signs what it sends: "
                      "run the same omad version everywhere, and check who else writes to the broker.")
    try:
        expected = _mac(key, purpose, body)
    except (TypeError, ValueError) as e:
        raise Refused(f"{what} cannot be put in canonical form ({e}); refused.") from e
    if not hmac.compare_digest(sig, expected):
        raise Refused(f"{what} is not signed with this machine's key; refused. Give the daemon and every worker "
                      "the same executor.signing_key; if they have it, something else wrote to the broker.")
    return body


# -- names -------------------------------------------------------------------------------------------------

def relative_name(value: Any, what: str) -> str:
    """``value`` as a relative POSIX path with no ``..``, NUL or empty part, of sane length; else Refused."""
    if not isinstance(value, str) or not value:
        raise Refused(f"{what} is not a path ({value!r:.80}); refused.")
    if "\x00" in value or "\\" in value or len(value) > _MAX_PATH:
        raise Refused(f"{what} holds a NUL, a backslash or is too long; refused.")
    path = PurePosixPath(value)
    if path.is_absolute() or value.startswith("~"):
        raise Refused(f"{what} is an absolute path ({value:.120}); only names inside the job folder are taken.")
    if any(part in ("..", "") for part in value.split("/")):
        raise Refused(f"{what} climbs out of its folder or has an empty part ({value:.120}); refused.")
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in path.parts):
        raise Refused(f"{what} has a part over {NAME_MAX} bytes; refused.")
    return path.as_posix()


def inside(root: Path, value: Any, what: str) -> Path:
    """``root / value`` when ``value`` is a relative name that stays under ``root`` with symlinks resolved."""
    rel = relative_name(value, what)
    target = root / rel
    base = root.resolve()
    if not target.resolve().is_relative_to(base):
        raise Refused(f"{what} ({rel:.120}) leads outside the job folder through a link; refused.")
    return target


def check_suffix(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SUFFIX.fullmatch(value):
        raise Refused(f"{what} ({value!r:.80}) is not a publish suffix like '.mp4' or '.scenes.yaml'; refused.")
    return value


def check_digest(value: Any, what: str) -> str:
    if not isinstance(value, str) or not DIGEST.fullmatch(value):
        raise Refused(f"{what} ({value!r:.80}) is not a sha256 digest; refused.")
    return value


def check_role(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ROLE.fullmatch(value):
        raise Refused(f"{what} ({value!r:.80}) is not an artifact role name; refused.")
    return value


def check_seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise Refused(f"{what} ({value!r:.40}) is not a number of seconds; refused.")
    return float(value)
