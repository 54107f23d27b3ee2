"""Stock photos and clips from Pexels and Pixabay, with the user's API keys.

:class:`PexelsSource` (``GET {pexels_url}/v1/search`` and ``/videos/search``,
header ``Authorization: KEY``) and :class:`PixabaySource` (``GET
{pixabay_url}/api/`` and ``/api/videos/``, ``key=`` parameter) search by a
scene's keywords, in the output's orientation, and keep the first result at
least as large as the frame wants (photos before clips, as the Want orders
them). The file is downloaded once per (site, id) into the cache folder,
streamed with a byte limit (``assets.stock.max_download_mb``), and checked
like any untrusted media (Pillow's header check for photos, an in-process
probe for clips) before it is offered; the licence, author and page are
recorded, with the credit line both sites ask for as a courtesy.

Every failure to ask is a :class:`SourceUnavailable` that names the site and
what to do: no key, key rejected (401/403), quota spent (429, with
Retry-After), the site failing (5xx), a timeout, no network. The API key is
never put in a message, a log line or a record: Pixabay's travels in the URL,
so no ``httpx`` error text is ever passed on. This module never decides about
privacy or guardrails: the asset stage asks it only with a checked query and
only when remote sources are allowed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import OmadError
from .base import AssetKind, Found, SourceUnavailable, Want
from .egress import guard

if TYPE_CHECKING:
    from ..config import AssetsConfig
    from ..stage import StageContext

__all__ = ["PexelsSource", "PixabaySource", "Candidate", "DownloadCache", "check_media", "make_site", "make_cache",
           "PEXELS_LICENCE", "PIXABAY_LICENCE"]

PEXELS_LICENCE = "Pexels License (free to use; crediting the author is appreciated)"
PIXABAY_LICENCE = "Pixabay Content License (free to use; crediting the author is appreciated)"
_PHOTO_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


@dataclass(frozen=True)
class Candidate:
    """One search result: what a site says about a file, before it is downloaded."""

    id: str
    kind: AssetKind
    download: str
    width: int
    height: int
    url: str
    author: str
    tags: str = ""
    seconds: float = 0.0


def check_media(path: Path, kind: AssetKind, label: str, max_megapixels: float,
                photo_formats: tuple[str, ...] = tuple(_PHOTO_EXT)) -> dict[str, Any]:
    """Refuse ``path`` unless it is the kind of media it claims to be; its size (and length) when it is.

    Photos: Pillow's header check limited to ``photo_formats`` (JPEG/PNG/WebP unless told) and the
    megapixel cap. Clips: the in-process probe (no playlists, no other demuxers) with a video stream in
    an MP4/MOV/MKV/WebM container.
    """
    from ..errors import InputError
    from ..media.ffmpeg import VIDEO_DEMUXERS, probe

    if kind == "photo":
        from PIL import Image, UnidentifiedImageError

        from ..media.kenburns import check_image

        check_image(path, label, max_megapixels)
        try:
            with Image.open(path, formats=photo_formats) as im:
                return {"width": im.width, "height": im.height, "format": im.format}
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise InputError(f"is not a picture in one of these formats: {', '.join(photo_formats)}.",
                             file=label) from e
    info = probe(path, timeout=30.0, file_label=label)
    if info.video is None or info.format_name not in VIDEO_DEMUXERS or not info.duration:
        raise InputError(f"is not a video clip (format {info.format_name}).", file=label)
    return {"width": info.width, "height": info.height, "seconds": round(float(info.duration), 3),
            "format": info.format_name}


class DownloadCache:
    """Downloaded stock files by (site, id, kind), trimmed oldest first past a size."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, site: str, ident: str, kind: AssetKind, ext: str) -> Path:
        safe = re.sub(r"[^0-9A-Za-z_-]", "_", ident)[:80] or hashlib.sha256(ident.encode()).hexdigest()[:16]
        return self.root / site / f"{kind}-{safe}{ext}"

    def find(self, site: str, ident: str, kind: AssetKind) -> Path | None:
        folder = self.root / site
        stem = self.path(site, ident, kind, "").name
        with suppress(OSError):
            for p in folder.iterdir():
                if p.stem == stem and p.is_file() and not p.name.endswith(".part"):
                    os.utime(p)  # recently used: trimmed last
                    return p
        return None

    def trim(self, keep: Path) -> None:
        files: list[tuple[float, int, Path]] = []
        for p in self.root.rglob("*"):
            with suppress(OSError):
                st = p.stat()
                if p.is_file():
                    files.append((st.st_mtime, st.st_size, p))
        total = sum(f[1] for f in files)
        for _, size, p in sorted(files):
            if total <= self.max_bytes:
                break
            if p != keep:
                p.unlink(missing_ok=True)
                total -= size


class _Site:
    """What Pexels and Pixabay share: the HTTP client, the error mapping, the download."""

    name = ""
    remote = True
    licence = ""
    key_option = ""
    key_env = ""

    def __init__(self, cfg: AssetsConfig, key: str, cache: DownloadCache, *, max_megapixels: float = 100.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.cfg = cfg
        self.key = key
        self.cache = cache
        self.max_megapixels = max_megapixels
        self.requests = 0
        self.used: set[tuple[str, str]] = set()
        # Redirects within the same site only, public addresses only (egress.py), unless assets.allow_hosts.
        self._client = httpx.Client(timeout=cfg.stock.timeout_seconds, follow_redirects=True, transport=transport,
                                    headers={"User-Agent": "omad (hot-folder video daemon)"},
                                    event_hooks=guard(cfg.allow_hosts, self.name))

    def close(self) -> None:
        self._client.close()

    # ---- what each site provides

    def _photo_search(self, query: str, want: Want) -> tuple[str, dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def _video_search(self, query: str, want: Want) -> tuple[str, dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def _photos(self, data: dict[str, Any]) -> list[Candidate]:
        raise NotImplementedError

    def _videos(self, data: dict[str, Any], want: Want) -> list[Candidate]:
        raise NotImplementedError

    def credit(self, c: Candidate) -> str:
        raise NotImplementedError

    # ---- the flow

    def find(self, want: Want, ctx: StageContext) -> Found | None:
        if not self.key:
            raise SourceUnavailable(
                f"{self.name}: no API key. Set {self.key_option} in the config or ${self.key_env} in the daemon's "
                f"environment to search {self.name.capitalize()}."
            )
        query = " ".join(want.keywords[:4]).strip() or " ".join(want.description.split()[:6])
        if not query:
            return None
        for kind in want.kinds:
            if kind == "video" and not self.cfg.stock.videos:
                continue
            url, params, headers = (self._photo_search if kind == "photo" else self._video_search)(query, want)
            data = self._get_json(url, params, headers)
            found = self._photos(data) if kind == "photo" else self._videos(data, want)
            fitting = [c for c in found if c.width >= want.min_width and c.height >= want.min_height
                       and (c.width >= c.height) == (want.orientation == "landscape")]
            fitting.sort(key=lambda c: (c.kind, c.id) in self.used)  # one picture per scene while others match
            for c in fitting[:3]:
                fetched = self._fetch(c, ctx)
                if fetched is None:
                    continue
                path, media = fetched  # the file's own size, not the site's word for it
                self.used.add((c.kind, c.id))
                size = f"{media['width']}x{media['height']}" + (f", {media['seconds']:g} s" if c.kind == "video"
                                                                else "")
                return Found(path=path, kind=c.kind, source=self.name, id=c.id, url=c.url, author=c.author,
                             licence=self.licence, credit=self.credit(c),
                             why=f"{self.name.capitalize()} search for '{query}' ({size})",
                             extra={**media, "query": query})
        return None

    def _failure(self, what: str) -> SourceUnavailable:
        return SourceUnavailable(f"{self.name}: {what}")

    def _get_json(self, url: str, params: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        self.requests += 1
        try:
            r = self._client.get(url, params=params, headers=headers)
        except httpx.TimeoutException as e:
            raise self._failure(f"no answer within {self.cfg.stock.timeout_seconds:g} s "
                                f"(assets.stock.timeout_seconds). Try again later.") from e
        except (httpx.TransportError, httpx.InvalidURL) as e:
            # Not str(e): an httpx message may carry the URL, and Pixabay's URL carries the key.
            raise self._failure(f"cannot be reached ({type(e).__name__}). Check the network, or that "
                                f"{self._base_option()} is right.") from e
        self._raise_for_status(r)
        try:
            data = r.json()
        except ValueError as e:
            raise self._failure("answered something that is not JSON. Try again later.") from e
        if not isinstance(data, dict):
            raise self._failure("answered JSON that is not a search result. Try again later.")
        return data

    def _raise_for_status(self, r: httpx.Response) -> None:
        code = r.status_code
        if code < 400:
            return
        body = r.text[:200].lower()
        if code in (401, 403) or (code == 400 and "key" in body):
            raise self._failure(f"the API key was rejected (HTTP {code}). Check {self.key_option} or ${self.key_env}.")
        if code == 429:
            after = r.headers.get("Retry-After", "")
            when = f" (Retry-After: {after} s)" if after else ""
            raise self._failure(f"the request quota is spent (HTTP 429){when}. omad uses the next source until "
                                "the quota renews.")
        raise self._failure(f"answered HTTP {code}. Try again later.")

    def _base_option(self) -> str:
        return f"assets.stock.{self.name}_url"

    def _fetch(self, c: Candidate, ctx: StageContext) -> tuple[Path, dict[str, Any]] | None:
        """The candidate's file in the cache (downloaded unless it is there), checked, with its size; None if bad."""
        cached = self.cache.find(self.name, c.id, c.kind)
        label = f"{self.name} {c.kind} {c.id}"
        if cached is None:
            ext = Path(httpx.URL(c.download).path).suffix.lower()
            ext = ext if re.fullmatch(r"\.[a-z0-9]{2,4}", ext) else (".mp4" if c.kind == "video" else ".jpg")
            cached = self.cache.path(self.name, c.id, c.kind, ext)
            try:
                self._download(c.download, cached, label)
            except SourceUnavailable:
                raise
            except OmadError as e:  # too big, not http(s): this file, not the site
                ctx.warn(f"{label}: {e.message} It was not used.")
                return None
        try:
            media = check_media(cached, c.kind, label, self.max_megapixels)
        except OmadError as e:
            cached.unlink(missing_ok=True)
            ctx.warn(f"{label}: the download {e.message.rstrip('.')}; it was not used.")
            return None
        self.cache.trim(keep=cached)
        return cached, media

    def _download(self, url: str, dest: Path, label: str) -> None:
        from ..errors import InputError

        if httpx.URL(url).scheme not in ("http", "https"):
            raise InputError(f"has a download address that is not http(s) ({url[:80]}).", file=label)
        limit = int(self.cfg.stock.max_download_mb * 1024 * 1024)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        self.requests += 1
        try:
            with self._client.stream("GET", url) as r:
                self._raise_for_status(r)
                declared = int(r.headers.get("Content-Length") or 0)
                if declared > limit:
                    raise InputError(f"is {declared / 1e6:.1f} MB, more than assets.stock.max_download_mb "
                                     f"({self.cfg.stock.max_download_mb:g} MB).", file=label)
                size = 0
                with part.open("wb") as f:
                    for chunk in _chunks(r):
                        size += len(chunk)
                        if size > limit:
                            raise InputError(f"grew past assets.stock.max_download_mb "
                                             f"({self.cfg.stock.max_download_mb:g} MB) while downloading.", file=label)
                        f.write(chunk)
            part.replace(dest)
        except httpx.TimeoutException as e:
            raise self._failure(f"the download took longer than {self.cfg.stock.timeout_seconds:g} s between "
                                "bytes (assets.stock.timeout_seconds). Try again later.") from e
        except httpx.TransportError as e:
            raise self._failure(f"the download failed ({type(e).__name__}). Check the network.") from e
        finally:
            part.unlink(missing_ok=True)


def _chunks(r: httpx.Response) -> Iterator[bytes]:
    yield from r.iter_bytes(64 * 1024)


def _orientation(want: Want) -> str:
    return want.orientation


class PexelsSource(_Site):
    """``pexels``: Pexels photos and clips (Pexels License; credit appreciated)."""

    name = "pexels"
    licence = PEXELS_LICENCE
    key_option = "assets.stock.pexels_key"
    key_env = "OMAD_PEXELS_KEY"

    def _photo_search(self, query: str, want: Want) -> tuple[str, dict[str, Any], dict[str, str]]:
        base = self.cfg.stock.pexels_url.rstrip("/")
        return (f"{base}/v1/search", {"query": query, "orientation": _orientation(want), "per_page": 15},
                {"Authorization": self.key})

    def _video_search(self, query: str, want: Want) -> tuple[str, dict[str, Any], dict[str, str]]:
        base = self.cfg.stock.pexels_url.rstrip("/")
        return (f"{base}/videos/search", {"query": query, "orientation": _orientation(want), "per_page": 15},
                {"Authorization": self.key})

    def _photos(self, data: dict[str, Any]) -> list[Candidate]:
        out = []
        for p in _items(data, "photos"):
            src = _dict(p.get("src"))
            link = str(src.get("original") or src.get("large2x") or "")
            if link and p.get("id") is not None:
                out.append(Candidate(str(p["id"]), "photo", link, _int(p.get("width")), _int(p.get("height")),
                                     str(p.get("url") or ""), str(p.get("photographer") or ""),
                                     str(p.get("alt") or "")))
        return out

    def _videos(self, data: dict[str, Any], want: Want) -> list[Candidate]:
        out = []
        for v in _items(data, "videos"):
            files = [f for f in v.get("video_files") or [] if isinstance(f, dict) and f.get("link")
                     and str(f.get("file_type", "video/mp4")) == "video/mp4"]
            big = [f for f in files if _int(f.get("width")) >= want.min_width and _int(f.get("height"))
                   >= want.min_height]
            # The smallest file that is big enough: fewer bytes, same frame.
            pick = min(big, key=lambda f: _int(f.get("width")) * _int(f.get("height")), default=None)
            if pick is None or v.get("id") is None:
                continue
            user = _dict(v.get("user"))
            out.append(Candidate(str(v["id"]), "video", str(pick["link"]), _int(pick.get("width")),
                                 _int(pick.get("height")), str(v.get("url") or ""), str(user.get("name") or ""),
                                 seconds=float(v.get("duration") or 0)))
        return out

    def credit(self, c: Candidate) -> str:
        what = "Photo" if c.kind == "photo" else "Video"
        return f"{what} by {c.author} on Pexels" if c.author else f"{what} from Pexels"


class PixabaySource(_Site):
    """``pixabay``: Pixabay photos and clips (Pixabay Content License; credit appreciated)."""

    name = "pixabay"
    licence = PIXABAY_LICENCE
    key_option = "assets.stock.pixabay_key"
    key_env = "OMAD_PIXABAY_KEY"

    def _photo_search(self, query: str, want: Want) -> tuple[str, dict[str, Any], dict[str, str]]:
        base = self.cfg.stock.pixabay_url.rstrip("/")
        params = {"key": self.key, "q": query[:100], "image_type": "photo", "safesearch": "true", "per_page": 20,
                  "orientation": "horizontal" if want.orientation == "landscape" else "vertical",
                  "min_width": want.min_width, "min_height": want.min_height}
        return f"{base}/api/", params, {}

    def _video_search(self, query: str, want: Want) -> tuple[str, dict[str, Any], dict[str, str]]:
        base = self.cfg.stock.pixabay_url.rstrip("/")
        params = {"key": self.key, "q": query[:100], "video_type": "film", "safesearch": "true", "per_page": 20,
                  "min_width": want.min_width, "min_height": want.min_height}
        return f"{base}/api/videos/", params, {}

    def _photos(self, data: dict[str, Any]) -> list[Candidate]:
        out = []
        for h in _items(data, "hits"):
            # fullHDURL only comes with Pixabay's full API access; largeImageURL is at most 1280 px wide.
            link = str(h.get("fullHDURL") or h.get("largeImageURL") or h.get("webformatURL") or "")
            if link and h.get("id") is not None:
                out.append(Candidate(str(h["id"]), "photo", link, _int(h.get("imageWidth")),
                                     _int(h.get("imageHeight")), str(h.get("pageURL") or ""),
                                     str(h.get("user") or ""), str(h.get("tags") or "")))
        return out

    def _videos(self, data: dict[str, Any], want: Want) -> list[Candidate]:
        out = []
        for h in _items(data, "hits"):
            sizes = _dict(h.get("videos"))
            files = [f for f in sizes.values() if isinstance(f, dict) and f.get("url")]
            big = [f for f in files if _int(f.get("width")) >= want.min_width and _int(f.get("height"))
                   >= want.min_height]
            pick = min(big, key=lambda f: _int(f.get("width")) * _int(f.get("height")), default=None)
            if pick is None or h.get("id") is None:
                continue
            out.append(Candidate(str(h["id"]), "video", str(pick["url"]), _int(pick.get("width")),
                                 _int(pick.get("height")), str(h.get("pageURL") or ""), str(h.get("user") or ""),
                                 str(h.get("tags") or ""), float(h.get("duration") or 0)))
        return out

    def credit(self, c: Candidate) -> str:
        what = "Image" if c.kind == "photo" else "Video"
        return f"{what} by {c.author} from Pixabay" if c.author else f"{what} from Pixabay"


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def make_site(name: str, cfg: AssetsConfig, cache: DownloadCache, *, max_megapixels: float = 100.0,
              transport: httpx.BaseTransport | None = None) -> PexelsSource | PixabaySource:
    """The stock site called ``name`` ("pexels" or "pixabay"), with its key from config or the environment."""
    if name == "pexels":
        return PexelsSource(cfg, cfg.pexels_key_value(), cache, max_megapixels=max_megapixels, transport=transport)
    if name == "pixabay":
        return PixabaySource(cfg, cfg.pixabay_key_value(), cache, max_megapixels=max_megapixels, transport=transport)
    raise ValueError(f"no stock site named {name!r}")


def make_cache(cfg: AssetsConfig, state_dir: Path) -> DownloadCache:
    """The download cache: ``assets.cache_dir``, else ``assets/cache`` in the state dir."""
    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else state_dir / "assets" / "cache"
    return DownloadCache(root, int(cfg.cache_max_mb * 1024 * 1024))
