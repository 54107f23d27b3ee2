"""The daemon's web side: UI, REST API, metrics, health, outbox files and posters.

A Starlette app served by uvicorn in a background thread of the daemon's
process (``web.host:web.port``, 127.0.0.1:9464 by default):

- ``/metrics``          Prometheus exposition of this daemon's registry (:mod:`omad.metrics`)
- ``/healthz``          200 while the main loop's heartbeat is fresh, else 503 (never needs a token)
- ``/readyz``           200 when the journal commits a write, ffmpeg and ffprobe are found and the
                        inbox is watched; 503 naming each failing check
- ``/``                 the status page (server-rendered; live with JavaScript, refreshing without)
- ``/create``           upload files or write a brief; the upload goes through the inbox
- ``/jobs/<id>``        one job: timeline, facts, players, error and what to do, retry, its log
- ``/api/...``          the REST API (:mod:`omad.web.api`, schema at ``/api/openapi.json``)
- ``/outbox/<path>``    read-only files from the outbox (with byte ranges, for video)
- ``/poster/<job>``     a job's published ``.jpg``, else a frame of its video, cached in the state dir
- ``/login``            exchanges a token for a session cookie (:mod:`omad.web.auth`)

Owns no job state: every view is read from the journal, the lanes and the outbox
at request time; submissions are written into the inbox and taken by the normal
intake. Never serves a path outside the outbox (``..``, absolute paths, dotfiles
and symlinks that leave it are refused), never serves failed originals without a
token, and never puts user-derived text (file names!) into HTML unescaped: every page is a
Jinja2 template with autoescape (:mod:`omad.web.templating`), in pt-BR or English (:mod:`omad.i18n`), and
every handler gets the one typed :class:`~omad.web.state.AppState`, never the daemon.
"""

from __future__ import annotations

from .app import readiness
from .files import PathRefused, PosterCache, parse_range, resolve_outbox_path
from .server import StatusServer, start_server
from .status import status_view

__all__ = [
    "StatusServer",
    "start_server",
    "readiness",
    "PathRefused",
    "resolve_outbox_path",
    "parse_range",
    "status_view",
    "PosterCache",
]
