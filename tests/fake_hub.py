"""A fake Hugging Face Hub: a real HTTP server speaking the parts of the Hub's file API huggingface_hub calls.

Clearly a fake (the Hub cannot be reached here). It serves repositories held in
memory: repo info (``/api/models/<repo>/revision/<rev>``), the tree listing
(``/api/models/<repo>/tree/<rev>``), paths-info (``POST .../paths-info/<rev>``)
and files (``HEAD``/``GET /<repo>/resolve/<rev>/<path>``) with the headers the
client reads (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``, ``X-Linked-Size``),
byte ranges for resumed downloads, and the Hub's ``X-Error-Code`` on 404s.
``cut_once`` makes the first download of a file stop half-way; ``lie_about``
lists a wrong sha256 for a file.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_LFS_SUFFIXES = (".bin", ".onnx")


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.cut_once: set[str] = set()
        self.lie_about: set[str] = set()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the API -------------------------------------------------------------------------------------------

    def _entry(self, path: str, data: bytes) -> dict[str, Any]:
        sha = hashlib.sha256(data).hexdigest()
        if path in self.lie_about:
            sha = hashlib.sha256(b"something else").hexdigest()
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data),
                                 "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
        if path.endswith(_LFS_SUFFIXES):
            entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
        return entry

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
              head: bool = False) -> None:
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _json(self, h: BaseHTTPRequestHandler, value: Any) -> None:
        self._send(h, 200, json.dumps(value).encode(), {"Content-Type": "application/json"})

    def _missing(self, h: BaseHTTPRequestHandler, code: str, head: bool = False) -> None:
        self._send(h, 404, json.dumps({"error": code}).encode(), {"X-Error-Code": code,
                                                                  "Content-Type": "application/json"}, head)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(parsed.path)
        with self._lock:
            self.requests.append((method, path, h.headers.get("Range", "")))
        api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree|paths-info)/([^/]+)(/.*)?", path)
        if api:
            repo, what = api.group(1), api.group(2)
            files = self.repos.get(repo)
            if files is None:
                self._missing(h, "RepoNotFound")
                return
            if what == "revision":
                self._json(h, {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                               "siblings": [{"rfilename": p} for p in sorted(files)]})
            elif what == "tree":
                self._json(h, [self._entry(p, d) for p, d in sorted(files.items())])
            else:
                length = int(h.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(h.rfile.read(length).decode())
                wanted = form.get("paths", [])
                self._json(h, [self._entry(p, files[p]) for p in wanted if p in files])
            return
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if resolve is None or method == "POST":
            self._send(h, 404)
            return
        repo, _rev, file = resolve.groups()
        files = self.repos.get(repo)
        if files is None:
            self._missing(h, "RepoNotFound", method == "HEAD")
            return
        if file not in files:
            self._missing(h, "EntryNotFound", method == "HEAD")
            return
        data = files[file]
        entry = self._entry(file, data)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"', "X-Linked-Etag": f'"{etag}"',
                   "X-Linked-Size": str(len(data)), "Accept-Ranges": "bytes"}
        if method == "HEAD":
            self._send(h, 200, data, headers, head=True)
            return
        start = 0
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range", ""))
        if rng:
            start = int(rng.group(1))
        body = data[start:]
        if file in self.cut_once and start == 0:
            self.cut_once.discard(file)
            h.send_response(200)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self._send(h, 206, body, headers)
        else:
            self._send(h, 200, body, headers)
