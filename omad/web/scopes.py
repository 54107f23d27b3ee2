"""What a token may do: read, submit, admin; and which of them each request needs.

``omad token add NAME --scope read --scope submit`` limits a token; a token
made without ``--scope`` (and every token made before scopes existed, which
has none stored) keeps full rights. The three are separate, not a ladder:

- ``read``: status, job pages and the API's job records, results in the
  outbox, metrics and analytics;
- ``submit``: new jobs (the Create page's form, ``POST /api/jobs``);
- ``admin``: acting on existing jobs (retry, cancel, and whatever else acts
  on a job: pause, storyboard edits), and reading what may hold data the
  guardrails blocked or the deployment's inner workings: failed originals
  (``outbox/failed/``) and logs (``outbox/logs/``).

An open server (loopback, no tokens required) grants everything, as before.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Scope", "ALL_SCOPES", "required_scope", "parse_scopes"]


class Scope(StrEnum):
    #: read jobs, results, metrics and analytics
    READ = "read"
    #: submit new jobs
    SUBMIT = "submit"
    #: act on jobs (retry, cancel, pause, storyboard) and read failed originals and logs
    ADMIN = "admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)

_SAFE = ("GET", "HEAD", "OPTIONS")
#: paths that anyone may post to (the login form sets who you are; logging out needs nothing)
_NO_SCOPE = ("/login", "/logout")
_SUBMIT = ("/api/jobs", "/create")


def required_scope(method: str, path: str) -> Scope | None:
    """The scope a request needs (None: none, e.g. logging in)."""
    if path in _NO_SCOPE:
        return None
    if method.upper() in _SAFE:
        if path.startswith(("/outbox/failed/", "/outbox/logs/")) and not path.endswith("/error.json"):
            return Scope.ADMIN
        return Scope.READ
    if path in _SUBMIT:
        return Scope.SUBMIT
    return Scope.ADMIN  # every other change acts on something that exists


def parse_scopes(values: object) -> frozenset[Scope]:
    """The scopes a token's record holds: all of them when it has none stored (a token from before scopes)."""
    if not isinstance(values, list) or not values:
        return ALL_SCOPES
    return frozenset(Scope(v) for v in values if v in Scope.__members__.values())
