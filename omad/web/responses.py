"""Small helpers every endpoint shares: plain and HTML answers, who asked, files with byte ranges.

Nothing here decides anything: the gate (:mod:`omad.web.app`) and the endpoints do.
"""

from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from .auth import Auth, Principal
from .files import RangeNotSatisfiable, content_type, parse_range

__all__ = ["PAGE_CSP", "text", "page_headers", "principal", "client", "query_int", "nav_for", "file_response"]

_CHUNK = 256 * 1024
# Pages use their own inline style, the one vendored script, and media from this origin: nothing remote.
PAGE_CSP = ("default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def text(status: int, body: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status,
                             headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                      **(headers or {})})


def page_headers() -> dict[str, str]:
    """The headers of every HTML page: no caching, the strict CSP, no sniffing, no referrer elsewhere."""
    return {"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin"}


def principal(request: Request) -> Principal:
    p: Principal = request.state.principal
    return p


def client(request: Request) -> str:
    return request.client.host if request.client else "?"


def query_int(request: Request, key: str, default: int) -> int:
    try:
        return int(request.query_params.get(key, default))
    except ValueError:
        return default


def nav_for(auth: Auth, p: Principal) -> dict[str, Any]:
    return {"user": p.name, "csrf": auth.csrf_token(p.session), "session": p.via == "session"}


def file_response(request: Request, path: Path, cache: str) -> Response:
    """A file with byte ranges (for video seeking); never run as a page of this origin."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the generator below, or here on an early answer
    except OSError:
        return text(404, "no such file in the outbox\n")
    st = os.fstat(f.fileno())
    size = st.st_size
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        f.close()
        return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span if span is not None else (0, size - 1)
    length = max(0, end - start + 1)
    headers = {
        "Content-Type": content_type(path),
        "Content-Length": str(length),
        "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(st.st_mtime, usegmt=True),
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        # Failed drops are served as they came: never let one run as a page of this origin.
        "Content-Security-Policy": "sandbox",
    }
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    status = 206 if span is not None else 200
    if request.method == "HEAD":
        f.close()
        return Response(b"", status_code=status, headers=headers)

    def body() -> Any:
        try:
            f.seek(start)
            left = length
            while left > 0:
                block = f.read(min(_CHUNK, left))
                if not block:
                    break
                left -= len(block)
                yield block
        finally:
            f.close()

    return StreamingResponse(body(), status_code=status, headers=headers)
