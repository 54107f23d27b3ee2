"""A FAKE Pexels + Pixabay HTTP server for tests. It is not either site.

It answers the search endpoints omad's stock clients call, in the shape the
real APIs answer them (Pexels ``/v1/search`` and ``/videos/search`` with an
``Authorization`` header; Pixabay ``/api/`` and ``/api/videos/`` with a
``key`` parameter), from a catalogue the test fills with real small files it
made (Pillow JPEGs, ffmpeg MP4s), and serves those files for download. It
counts every request (so a test can assert that none was made), checks the
keys (a wrong one gets 401 from Pexels, 400 from Pixabay, as the real sites
answer), and can be told to fail a site with any status (401, 429 with
Retry-After, 500). Pexels lives under ``{url}/pexels``, Pixabay under
``{url}/pixabay``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeStock", "StockItem", "Request"]


@dataclass
class StockItem:
    site: str  # "pexels" or "pixabay"
    kind: str  # "photo" or "video"
    id: int
    tags: set[str]
    file: Path
    width: int
    height: int
    author: str = "Ana Fotógrafa"
    seconds: float = 0.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _State:
    pexels_key: str
    pixabay_key: str
    items: list[StockItem] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    oversize: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""


class FakeStock:
    """The fake; use as a context manager. ``requests`` lists every request it got."""

    def __init__(self, pexels_key: str = "pexels-test-key", pixabay_key: str = "pixabay-test-key") -> None:
        self._state = _State(pexels_key, pixabay_key)
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeStock:
        state = self._state

        class Handler(_Handler):
            fake = state

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        state.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-stock", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return self._state.base

    def add(self, item: StockItem) -> StockItem:
        with self._state.lock:
            self._state.items.append(item)
        return item

    def fail(self, site: str, status: int, retry_after: str = "") -> None:
        """Every API call to ``site`` answers ``status`` from now on (0 clears it)."""
        with self._state.lock:
            if status:
                self._state.failures[site] = (status, retry_after)
            else:
                self._state.failures.pop(site, None)

    def declare_oversize(self, site: str) -> None:
        """Downloads from ``site`` claim a Content-Length of 1 GB (and send the real bytes)."""
        self._state.oversize.add(site)

    @property
    def requests(self) -> list[Request]:
        with self._state.lock:
            return list(self._state.requests)

    def searches(self, site: str | None = None) -> list[Request]:
        return [r for r in self.requests if "/files/" not in r.path and (site is None or r.path.startswith(f"/{site}"))]


class _Handler(BaseHTTPRequestHandler):
    fake: _State

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.fake.lock:
            self.fake.requests.append(Request("GET", parts.path, query, dict(self.headers.items())))
        path = parts.path
        if path.startswith("/files/"):
            return self._file(path)
        site = path.split("/")[1] if path.count("/") >= 2 else ""
        failure = self.fake.failures.get(site)
        if failure:
            status, after = failure
            extra = {"Retry-After": after} if after else {}
            return self._send(status, {"error": f"fake failure {status}"}, extra)
        if path == "/pexels/v1/search":
            if self.headers.get("Authorization") != self.fake.pexels_key:
                return self._send(401, {"error": "Unauthorized"})
            return self._send(200, self._pexels_photos(query))
        if path == "/pexels/videos/search":
            if self.headers.get("Authorization") != self.fake.pexels_key:
                return self._send(401, {"error": "Unauthorized"})
            return self._send(200, self._pexels_videos(query))
        if path in ("/pixabay/api/", "/pixabay/api/videos/"):
            if query.get("key") != self.fake.pixabay_key:
                return self._text(400, "[ERROR 400] Invalid or missing API key (https://pixabay.com/api/docs/).")
            return self._send(200, self._pixabay(query, video=path.endswith("videos/")))
        return self._send(404, {"error": "not found"})

    # ---- answers in each site's shape

    def _matches(self, site: str, kind: str, words: str) -> list[StockItem]:
        wanted = {w.lower() for w in words.split()}
        return [i for i in self.fake.items if i.site == site and i.kind == kind and wanted & i.tags]

    def _link(self, item: StockItem) -> str:
        return f"{self.fake.base}/files/{item.site}/{item.id}{item.file.suffix}"

    def _pexels_photos(self, q: dict[str, str]) -> dict[str, Any]:
        found = self._matches("pexels", "photo", q.get("query", ""))
        if q.get("orientation"):
            found = [i for i in found if (i.width >= i.height) == (q["orientation"] == "landscape")]
        photos = [{
            "id": i.id, "width": i.width, "height": i.height,
            "url": f"https://www.pexels.com/photo/{i.id}/", "photographer": i.author,
            "photographer_url": "https://www.pexels.com/@fake", "photographer_id": 1, "avg_color": "#808080",
            "alt": " ".join(sorted(i.tags)),
            "src": {"original": self._link(i), "large2x": self._link(i), "large": self._link(i),
                    "medium": self._link(i), "small": self._link(i), "portrait": self._link(i),
                    "landscape": self._link(i), "tiny": self._link(i)},
            "liked": False,
        } for i in found]
        return {"total_results": len(photos), "page": 1, "per_page": int(q.get("per_page", 15)), "photos": photos}

    def _pexels_videos(self, q: dict[str, str]) -> dict[str, Any]:
        found = self._matches("pexels", "video", q.get("query", ""))
        videos = [{
            "id": i.id, "width": i.width, "height": i.height, "duration": i.seconds,
            "url": f"https://www.pexels.com/video/{i.id}/", "image": "",
            "user": {"id": 2, "name": i.author, "url": "https://www.pexels.com/@fake"},
            "video_files": [
                {"id": i.id * 10, "quality": "sd", "file_type": "video/mp4", "width": i.width // 2,
                 "height": i.height // 2, "fps": 25, "link": self._link(i) + "?small=1"},
                {"id": i.id * 10 + 1, "quality": "hd", "file_type": "video/mp4", "width": i.width,
                 "height": i.height, "fps": 25, "link": self._link(i)},
            ],
            "video_pictures": [],
        } for i in found]
        return {"page": 1, "per_page": 15, "total_results": len(videos), "videos": videos}

    def _pixabay(self, q: dict[str, str], video: bool) -> dict[str, Any]:
        found = self._matches("pixabay", "video" if video else "photo", q.get("q", "").replace("+", " "))
        if video:
            hits = [{
                "id": i.id, "pageURL": f"https://pixabay.com/videos/id-{i.id}/", "type": "film",
                "tags": ", ".join(sorted(i.tags)), "duration": int(i.seconds),
                "videos": {
                    "large": {"url": self._link(i), "width": i.width, "height": i.height,
                              "size": i.file.stat().st_size},
                    "tiny": {"url": self._link(i) + "?tiny=1", "width": i.width // 4, "height": i.height // 4,
                             "size": 1000},
                },
                "views": 1, "downloads": 1, "likes": 0, "comments": 0, "user_id": 3, "user": i.author,
            } for i in found]
        else:
            if q.get("orientation") in ("horizontal", "vertical"):
                found = [i for i in found if (i.width >= i.height) == (q["orientation"] == "horizontal")]
            hits = [{
                "id": i.id, "pageURL": f"https://pixabay.com/photos/id-{i.id}/", "type": "photo",
                "tags": ", ".join(sorted(i.tags)), "previewURL": self._link(i), "webformatURL": self._link(i),
                "largeImageURL": self._link(i), "imageWidth": i.width, "imageHeight": i.height,
                "imageSize": i.file.stat().st_size, "views": 1, "downloads": 1, "likes": 0, "comments": 0,
                "user_id": 3, "user": i.author, "userImageURL": "",
            } for i in found]
        return {"total": len(hits), "totalHits": len(hits), "hits": hits}

    def _file(self, path: str) -> None:
        _, _, site, name = path.split("/", 3)
        ident = name.split(".")[0]
        item = next((i for i in self.fake.items if i.site == site and str(i.id) == ident), None)
        if item is None:
            return self._send(404, {"error": "no such file"})
        data = item.file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4" if item.kind == "video" else "image/jpeg")
        self.send_header("Content-Length", str(1 << 30 if site in self.fake.oversize else len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
