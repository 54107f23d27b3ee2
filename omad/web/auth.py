"""Who may use the web side: API tokens, browser sessions, CSRF, the submission rate limit.

A token is shown once, by ``omad token add NAME``, and only its SHA-256 is kept
(``web.tokens_file``, default ``tokens.json`` in the state dir, mode 0600).
Tokens are 256 random bits, so a plain hash is as strong as a slow one and lets
every request be checked in microseconds. A revoked token stays in the file,
marked, so its holder is told 403 "revoked" rather than 401 "who are you".

With ``web.require_token`` (forced on when ``web.host`` is not loopback) every
path but ``/healthz``, the login page and the static script needs a token: an
``Authorization: Bearer`` header, or a session cookie that the login page sets
(HttpOnly, SameSite=Strict). Whatever the setting, ``outbox/failed/`` originals
(which may hold the very data the guardrails blocked) are never served without
a token. Requests that change something and come from a browser must be
same-origin, and with a session cookie must carry its CSRF token.

Failed attempts are logged with the client address and counted in
``omad_web_auth_failures_total``. This module never logs a token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter

from ..config import WebConfig, is_loopback
from ..errors import ConfigError, InputError
from ..log import get_logger
from ..outbox import atomic_write_text
from .scopes import ALL_SCOPES, Scope, parse_scopes

__all__ = ["TokenStore", "Auth", "Principal", "tokens_path", "TOKEN_PREFIX", "SESSION_COOKIE"]

TOKEN_PREFIX = "omad_"
SESSION_COOKIE = "omad_session"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

#: Why a request was refused, the ``reason`` label of omad_web_auth_failures_total.
FAILURE_REASONS = ("missing", "malformed", "unknown", "revoked", "login", "csrf", "cross_site", "foreign_host",
                   "scope")


#: The most clients whose submissions are counted for web.submit_per_minute at once.
_MAX_CLIENTS = 10000


def tokens_path(web: WebConfig, state_dir: Path) -> Path:
    return Path(web.tokens_file).expanduser() if web.tokens_file else state_dir / "tokens.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenStore:
    """The token file: names, hashes, when made and when revoked. Re-read when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._tokens: list[dict[str, Any]] = []

    def _load(self) -> list[dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._tokens = None, []
            return self._tokens
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                tokens = data["tokens"]
                if not isinstance(tokens, list):
                    raise TypeError("'tokens' is not a list")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"cannot read the token file ({e}). Fix or remove it, then `omad token add`.",
                                  file=self.path) from e
            self._stamp, self._tokens = stamp, [t for t in tokens if isinstance(t, dict)]
        return self._tokens

    def _save(self, tokens: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path, json.dumps({"tokens": tokens}, indent=1), mode=0o600)  # hashes only, still private
        self._stamp = None

    def tokens(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(t) for t in self._load()]

    def add(self, name: str, scopes: list[Scope] | None = None) -> str:
        """Make a token named ``name`` and return it; only its hash (and its scopes, if limited) is written."""
        if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
            raise InputError(f"'{name}' is not a usable token name: use 1-64 letters, digits, '.', '_' or '-'.")
        with self._lock:
            tokens = self._load()
            if any(t.get("name") == name and not t.get("revoked_at") for t in tokens):
                raise InputError(f"a token named '{name}' exists. Revoke it first (`omad token revoke {name}`) "
                                 "or choose another name.")
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            entry: dict[str, Any] = {"name": name, "sha256": _digest(token), "created_at": time.time(),
                                     "revoked_at": None}
            if scopes:
                entry["scopes"] = sorted({Scope(s).value for s in scopes})
            self._save([*tokens, entry])
            return token

    def revoke(self, name: str) -> int:
        """Mark every live token named ``name`` revoked; how many were."""
        with self._lock:
            tokens = self._load()
            n = 0
            for t in tokens:
                if t.get("name") == name and not t.get("revoked_at"):
                    t["revoked_at"] = time.time()
                    n += 1
            if n == 0:
                raise InputError(f"no live token is named '{name}'. See `omad token list`.")
            self._save(tokens)
            return n

    def scopes(self, name: str) -> frozenset[Scope]:
        """What the live token ``name`` may do (all, for a token made without scopes); nothing if none is live."""
        with self._lock:
            tokens = self._load()
        entry = next((t for t in tokens if t.get("name") == name and not t.get("revoked_at")), None)
        return parse_scopes(entry.get("scopes")) if entry is not None else frozenset()

    def check(self, token: str) -> tuple[Literal["ok", "revoked", "unknown"], str | None]:
        digest = _digest(token)
        with self._lock:
            tokens = self._load()
        for t in tokens:
            if hmac.compare_digest(str(t.get("sha256", "")), digest):
                return ("revoked" if t.get("revoked_at") else "ok"), str(t.get("name"))
        return "unknown", None


@dataclass(frozen=True)
class Principal:
    """Who a request is from: a token's name (by header or session), or nobody on an open server."""

    name: str | None
    via: Literal["bearer", "session", "open"]
    session: str | None = None
    #: what it may do (``scopes.py``); an open server's principal may do everything
    scopes: frozenset[Scope] = ALL_SCOPES

    @property
    def key(self) -> str:
        return f"token:{self.name}" if self.name else "open"


@dataclass
class _Session:
    token_name: str
    token_hash: str
    expires: float


class Auth:
    """The web side's gatekeeper for one server."""

    def __init__(self, web: WebConfig, state_dir: Path, registry: CollectorRegistry, host: str) -> None:
        self.web = web
        self.required = web.require_token or not is_loopback(host)
        self.store = TokenStore(tokens_path(web, state_dir))
        self.log = get_logger("omad.web")
        self._secret = secrets.token_bytes(32)
        self._sessions: dict[str, _Session] = {}
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.failures = Counter("omad_web_auth_failures_total",
                                "Requests refused for a missing, unknown or revoked token, or a bad CSRF token",
                                ["reason"], registry=registry)
        for reason in FAILURE_REASONS:  # at zero from the start, so the first refusal shows in rate()
            self.failures.labels(reason)
        self.rate_limited = Counter("omad_web_rate_limited_total", "Submissions refused by web.submit_per_minute",
                                    registry=registry)
        if self.required and not self.store.tokens():
            self.log.warning("web_no_tokens", tokens_file=str(self.store.path),
                             message="the web side needs a token and none exists: run `omad token add NAME`")

    # -- tokens and sessions ------------------------------------------------------------------

    def check_token(self, token: str) -> tuple[Literal["ok", "revoked", "unknown"], str | None]:
        try:
            return self.store.check(token)
        except ConfigError as e:
            self.log.error("token_file_unreadable", error=str(e))
            return "unknown", None

    def open_session(self, token: str) -> str | None:
        state, name = self.check_token(token)
        if state != "ok" or name is None:
            return None
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            while len(self._sessions) >= self.web.max_sessions:  # bounded: the oldest login goes first
                del self._sessions[next(iter(self._sessions))]
            self._sessions[sid] = _Session(name, _digest(token), now + self.web.session_hours * 3600)
        return sid

    def close_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def session(self, sid: str) -> tuple[Literal["ok", "revoked", "unknown"], str | None]:
        with self._lock:
            s = self._sessions.get(sid)
        if s is None or s.expires <= time.time():
            return "unknown", None
        # The token behind a session may have been revoked since the login.
        try:
            tokens = self.store.tokens()
        except ConfigError:
            return "unknown", None
        entry = next((t for t in tokens if t.get("sha256") == s.token_hash), None)
        if entry is None:
            return "unknown", None
        if entry.get("revoked_at"):
            self.close_session(sid)
            return "revoked", s.token_name
        return "ok", s.token_name

    def scopes(self, name: str | None) -> frozenset[Scope]:
        if name is None:
            return frozenset()
        try:
            return self.store.scopes(name)
        except ConfigError:
            return frozenset()

    def csrf_token(self, sid: str | None) -> str:
        if sid is None:
            return ""
        return hmac.new(self._secret, sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, principal: Principal, value: str | None) -> bool:
        if principal.via != "session":
            return True
        return bool(value) and hmac.compare_digest(self.csrf_token(principal.session), value or "")

    # -- bookkeeping -------------------------------------------------------------------------

    def failed(self, reason: str, client: str, path: str, name: str | None = None) -> None:
        assert reason in FAILURE_REASONS, reason
        self.failures.labels(reason).inc()
        self.log.warning("auth_failed", reason=reason, client=client, path=path, token=name)

    def allow_submit(self, key: str, now: float | None = None) -> float | None:
        """None when ``key`` may submit now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        limit = self.web.submit_per_minute
        with self._lock:
            if len(self._hits) > _MAX_CLIENTS:  # bounded: forget clients with no submission in the last minute
                self._hits = {k: h for k, h in self._hits.items() if h and h[-1] > now - 60.0}
                while len(self._hits) > _MAX_CLIENTS:
                    del self._hits[next(iter(self._hits))]
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - 60.0:
                hits.popleft()
            if len(hits) >= limit:
                self.rate_limited.inc()
                return max(0.1, hits[0] + 60.0 - now)
            hits.append(now)
        return None
