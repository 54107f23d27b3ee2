"""The storyboard of a job waiting for review, as data: read from the job, edited, checked, written back.

The storyboard is the job's scene brief (``X.scenes.yaml``'s format) kept
as ``scenes.review.yaml`` in the job folder; the first read copies the newest
``scene_brief`` the plan or asset stage wrote. An edit is a whole new list of
scenes (:class:`StoryboardEdit`), each one either new or taken ``from`` an
existing scene (keeping what it does not change: its picture and that
picture's record, its keywords), so reordering, removing, adding and editing
are one operation. Narration and on-screen titles pass the guardrails as
generated text does (personal data redacted, a blocked topic refused with
the scene named). A picture comes from the job's scenes, the library folders
(``assets.library.folders``, checked as the asset stage checks them) or an
upload, and is copied into the job's ``assets/`` folder where the render reads
it. This module never renders, and never changes a job that is not waiting
for review.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..brief import AssetRecord, Motion, Scene, VideoBrief, parse_brief, resolve_asset
from ..errors import GuardrailBlocked, InputError
from ..outbox import atomic_write_text
from .review import REVIEWED_BRIEF

__all__ = ["SceneEdit", "StoryboardEdit", "Board", "MAX_SCENES", "UPLOAD_SUFFIXES", "uploads_dir"]

MAX_SCENES = 60
UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_SAFE = re.compile(r"[^0-9A-Za-z_-]")


def uploads_dir(state_dir: str | Path) -> Path:
    """Where uploaded pictures are kept beyond their job, so an ``X.scenes.yaml`` naming one renders again."""
    return Path(state_dir) / "assets" / "uploads"


class SceneEdit(BaseModel):
    """One scene of an edited storyboard."""

    model_config = ConfigDict(extra="forbid")

    source: int | None = Field(None, ge=0, alias="from",
                               description="the index of the scene this one was (it keeps that scene's picture "
                                           "unless 'picture' says otherwise); null: a new scene")
    narration: str = Field("", max_length=2000, description="what is said over the scene (also its captions)")
    title: str | None = Field(None, max_length=200, description="on-screen text")
    motion: Motion | None = Field(None, description="Ken Burns preset for the picture")
    duration: float | None = Field(None, gt=0, le=600, description="minimum seconds")
    voice: str | None = Field(None, max_length=200, description="a voice name for this scene (default: the video's)")
    picture: str = Field("keep", max_length=4096,
                         description="'keep' (the source scene's), 'none' (a title card), 'library:PATH' (a file "
                                     "of the library folders), 'stock:PATH' (a hit of the stock search) or "
                                     "'asset:NAME' (a file already in the job's assets, e.g. an upload)")


class StoryboardEdit(BaseModel):
    """A whole edited storyboard: ``PUT /api/jobs/{id}/storyboard``."""

    model_config = ConfigDict(extra="forbid")

    scenes: list[SceneEdit] = Field(..., min_length=1, max_length=MAX_SCENES, description="the scenes, in order")


class Board:
    """One job's storyboard in its folder ``work`` (``bundle``: the folder of the dropped brief)."""

    def __init__(self, work: Path, bundle: Path, current: Path, label: str, *, library: list[Path],
                 max_megapixels: float, guard: Any, uploads: Path | None = None, stock: Path | None = None,
                 voice_file: Path | None = None) -> None:
        self.work = work
        self.voice_file = voice_file  # the voice stage's voice.json (each scene's spoken length), once voiced
        self.bundle = bundle
        self.current = current  # the scene brief the stages wrote last
        self.label = label
        self.library = library
        self.max_megapixels = max_megapixels
        self.guard = guard
        self.uploads = uploads  # the state dir's copies of uploads (None: the job folder's only)
        self.stock = stock  # the stock download cache, where a stock search's hits were downloaded

    @property
    def path(self) -> Path:
        return self.work / REVIEWED_BRIEF

    @property
    def assets(self) -> Path:
        return self.work / "assets"

    def load(self) -> VideoBrief:
        """The storyboard: as last edited, else as the stages wrote it."""
        return self._read(self.path if self.path.is_file() else self.current)

    def load_current(self) -> VideoBrief:
        """The scene brief the stages wrote last, before any edit."""
        return self._read(self.current)

    def _read(self, source: Path) -> VideoBrief:
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"its storyboard {source.name} cannot be read ({e}).", file=self.label) from e
        brief = parse_brief(data, self.label)
        if not isinstance(brief, VideoBrief) or not brief.scenes:
            raise InputError("its storyboard has no scenes.", file=self.label)
        return brief

    def save(self, brief: VideoBrief) -> None:
        data = brief.model_dump(mode="json", exclude_none=True)
        data.pop("review", None)  # reviewed: dropped again as X.scenes.yaml, it renders without stopping
        header = "# The storyboard as reviewed: the video is rendered from these scenes.\n"
        atomic_write_text(self.path, header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100))

    def picture_of(self, scene: Scene) -> Path | None:
        """The file a scene shows (resolved as the render resolves it), or None for a title card."""
        name = scene.image or scene.clip
        if not name:
            return None
        where = self.assets if scene.asset is not None else self.bundle
        try:
            return resolve_asset(where, name, self.label, "picture")
        except InputError:
            return None

    # ---- edits

    def apply(self, edit: StoryboardEdit) -> VideoBrief:
        """The storyboard after ``edit``, checked (guardrails, pictures, the brief's own rules) and saved."""
        brief = self.load()
        old = brief.scenes or []
        scenes: list[Scene] = []
        for i, e in enumerate(edit.scenes):
            where = f"storyboard scene {i + 1}"
            if e.source is not None and e.source >= len(old):
                raise InputError(f"{where} comes 'from' scene {e.source}, but the storyboard has {len(old)} "
                                 f"(0 to {len(old) - 1}).", file=self.label)
            base = old[e.source].model_dump(exclude_none=True) if e.source is not None else {}
            before = old[e.source] if e.source is not None else None
            narration = self._checked(e.narration, f"{where}: narration")
            if before is None or narration != before.narration:
                base.pop("spoken", None)  # a respelling of the old words says the wrong thing now
            base["narration"] = narration
            title = self._checked(e.title or "", f"{where}: title")
            base["title"] = title or None
            for key in ("motion", "duration", "voice"):
                value = getattr(e, key)
                base[key] = value
            base = {k: v for k, v in base.items() if v is not None}
            base.update(self._picture(e.picture, i, where))
            base = {k: v for k, v in base.items() if v is not None}
            try:
                scenes.append(Scene.model_validate(base))
            except ValidationError as err:
                first = err.errors()[0]
                raise InputError(f"{where}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}.",
                                 file=self.label) from err
        new = brief.model_copy(update={"scenes": scenes})
        self.save(new)
        return new

    def _checked(self, text: str, where: str) -> str:
        if not text.strip():
            return ""
        try:
            result = self.guard.check(text, where, file=self.label)
        except GuardrailBlocked as e:
            raise InputError(f"{e} Change the text of that scene.", file=self.label) from e
        return str(result.text).strip()

    def _picture(self, picture: str, index: int, where: str) -> dict[str, Any]:
        """The scene fields a picture choice sets (nothing for 'keep')."""
        if picture == "keep":
            return {}
        cleared: dict[str, Any] = {"image": None, "clip": None, "asset": None, "keywords": None, "description": None,
                                   "clip_start": None}
        if picture == "none":
            return cleared
        kind, _, value = picture.partition(":")
        if kind == "library":
            return {**cleared, **self._from_library(Path(value), index, where)}
        if kind == "stock":
            return {**cleared, **self._from_stock(value, index, where)}
        if kind == "asset":
            target = self.assets / value
            if "/" in value or value.startswith(".") or not target.is_file():
                raise InputError(f"{where}: there is no picture '{value}' in this job. Upload it first.",
                                 file=self.label)
            is_clip = target.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm")
            kept = self.uploads / value if self.uploads is not None and (self.uploads / value).is_file() else None
            record = AssetRecord(source="upload", file=value, kind="video" if is_clip else "photo",
                                 id=str(kept) if kept is not None else value)
            return {**cleared, "clip" if is_clip else "image": value, "asset": record}
        raise InputError(f"{where}: picture must be 'keep', 'none', 'library:PATH', 'stock:PATH' or 'asset:NAME', not "
                         f"'{picture[:80]}'.", file=self.label)

    def _from_library(self, path: Path, index: int, where: str) -> dict[str, Any]:
        from ..assets.stock import check_media

        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError) as e:
            raise InputError(f"{where}: the library has no file '{path}'. Search again.", file=self.label) from e
        if not any(real.is_relative_to(r.resolve()) for r in self.library if r.exists()):
            raise InputError(f"{where}: '{path}' is not inside the library folders (assets.library.folders).",
                             file=self.label)
        is_clip = real.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm")
        kind: Literal["photo", "video"] = "video" if is_clip else "photo"
        check_media(real, kind, f"library {kind} {real.name}", self.max_megapixels,
                    ("JPEG", "PNG", "WEBP", "TIFF", "BMP"))
        name = f"review{index:02d}-library-{_SAFE.sub('_', real.stem)[:40]}{real.suffix.lower()}"
        self._copy_in(real, name)
        record = AssetRecord(source="library", file=name, kind=kind, id=str(real), why="chosen in the review")
        return {"clip" if is_clip else "image": name, "asset": record}

    def _from_stock(self, value: str, index: int, where: str) -> dict[str, Any]:
        """A stock search's hit (already in the download cache), with the credit and licence the search gave."""
        import json

        from ..assets.stock import check_media

        try:
            hits = json.loads((self.work / "stock-hits.json").read_text(encoding="utf-8"))
            hit = hits[value]
            real = Path(value).resolve(strict=True)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise InputError(f"{where}: '{value}' is not a stock search's hit of this storyboard. Search again.",
                             file=self.label) from e
        if self.stock is None or not real.is_relative_to(self.stock.resolve()):
            raise InputError(f"{where}: '{value}' is not in the stock download cache.", file=self.label)
        check_media(real, "photo", f"{hit.get('source')} photo {real.name}", self.max_megapixels,
                    ("JPEG", "PNG", "WEBP"))
        name = f"review{index:02d}-{_SAFE.sub('_', str(hit.get('source')))}-{_SAFE.sub('_', str(hit.get('id')))[:40]}"
        name += real.suffix.lower()
        self._copy_in(real, name)
        record = AssetRecord(source=str(hit.get("source"))[:40], file=name, kind="photo", id=str(hit.get("id"))[:4096],
                             url=str(hit.get("url") or "")[:2048], author=str(hit.get("author") or "")[:300],
                             licence=str(hit.get("licence") or "")[:300], credit=str(hit.get("credit") or "")[:400],
                             why="chosen in the review")
        return {"image": name, "asset": record}

    def upload(self, filename: str, data: bytes, max_bytes: int) -> str:
        """An uploaded picture kept in the job's assets; its name for ``picture: asset:NAME``."""
        from ..assets.stock import check_media

        suffix = Path(filename).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise InputError(f"'{filename}' is not a picture omad takes here ({', '.join(UPLOAD_SUFFIXES)}).",
                             file=self.label)
        if not data or len(data) > max_bytes:
            raise InputError(f"'{filename}' is empty or larger than {max_bytes // 2**20} MB.", file=self.label)
        name = f"upload-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        self.assets.mkdir(parents=True, exist_ok=True)
        tmp = self.assets / f".{name}.tmp"
        tmp.write_bytes(data)
        try:
            check_media(tmp, "photo", f"upload {filename}", self.max_megapixels, ("JPEG", "PNG", "WEBP"))
        except InputError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(self.assets / name)
        if self.uploads is not None:
            try:
                self.uploads.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.assets / name, self.uploads / f".{name}.tmp")
                (self.uploads / f".{name}.tmp").replace(self.uploads / name)
            except OSError:
                pass  # the job still has it; only a later re-drop of its scenes would search again
        return name

    def _copy_in(self, src: Path, name: str) -> None:
        self.assets.mkdir(parents=True, exist_ok=True)
        tmp = self.assets / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        tmp.replace(self.assets / name)
