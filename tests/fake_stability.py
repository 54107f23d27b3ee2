"""A FAKE Stability AI image API for tests. It generates nothing: it paints a flat PNG.

It speaks the part of Stable Image's REST API omad uses (``POST`` a multipart form with
``prompt``, ``aspect_ratio``, ``output_format``, ``seed``; ``Authorization: Bearer``;
``Accept: image/*``) on a local port, from a thread, so tests drive omad's real httpx
client over real HTTP. Scripted replies (an error status with Stability's JSON error
body, a content-filtered answer, an oversized or non-image body) are served in order;
then every request gets a PNG of the asked aspect. Every request is recorded, so tests
check what left the box (and that nothing did).
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

__all__ = ["FakeStability", "Scripted", "Request"]

KEY = "sk-test-key"


@dataclass
class Scripted:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, name: str, message: str) -> Scripted:
        return cls(status, json.dumps({"id": "x", "name": name, "errors": [message]}).encode(),
                   {"Content-Type": "application/json"})


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    fields: dict[str, str]


def _form(content_type: str, body: bytes) -> dict[str, str]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    out: dict[str, str] = {}
    for part in msg.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        out[str(name)] = part.get_payload(decode=True).decode("utf-8")
    return out


class FakeStability:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.replies: deque[Scripted] = deque()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                fields = _form(self.headers.get("Content-Type", ""), body)
                fake.requests.append(Request(self.path, dict(self.headers.items()), fields))
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    reply = Scripted.error(401, "unauthorized", "invalid api key")
                elif fake.replies:
                    reply = fake.replies.popleft()
                else:
                    w, h = (160, 90) if fields.get("aspect_ratio") == "16:9" else (90, 160)
                    buf = io.BytesIO()
                    Image.new("RGB", (w, h), (30, 120, 200)).save(buf, format="PNG")
                    reply = Scripted(200, buf.getvalue(), {"Content-Type": "image/png", "finish-reason": "SUCCESS",
                                                           "seed": fields.get("seed", "0")})
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2beta/stable-image/generate/core"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> FakeStability:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
