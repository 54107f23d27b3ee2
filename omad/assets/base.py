"""What the asset stage asks of a picture source, and what a source answers.

The asset stage turns each scene that has no picture into a :class:`Want`
(what the visual planner said the scene shows, its keywords, the frame's
orientation and size, how long it lasts) and asks the configured sources in
order. A source answers a :class:`Found` (a file it placed in the stage's
folder or one of the user's library files), ``None`` when it has nothing that
matches, or raises :class:`SourceUnavailable` when it cannot be asked at all
(no key, quota spent, network down, model too big for the VRAM budget): the
stage records why and asks the next source. Title cards are the last resort.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import OmadError

if TYPE_CHECKING:
    from ..stage import StageContext

__all__ = ["Want", "Found", "Source", "SourceUnavailable", "AssetKind", "Orientation", "asset_dir"]

AssetKind = Literal["photo", "video"]
Orientation = Literal["landscape", "portrait"]


@dataclass(frozen=True)
class Want:
    """What one scene needs."""

    #: the scene's index in the brief
    scene: int
    #: what the picture should show, in the planner's words (pt-BR or English)
    description: str
    #: search words, most important first
    keywords: tuple[str, ...]
    orientation: Orientation
    min_width: int
    min_height: int
    #: how long the scene is on screen (a clip shorter than this is looped)
    seconds: float
    #: what may fill the scene, in order of preference
    kinds: tuple[AssetKind, ...] = ("photo", "video")


@dataclass
class Found:
    """A picture for one scene, and where it came from."""

    #: the file: under the stage's folder (downloaded or generated) or in the user's library
    path: Path
    kind: AssetKind
    #: "library", "pexels", "pixabay", "generate", ...
    source: str
    #: why this one (the words that matched, the prompt it was generated from)
    why: str
    #: the source's own id (stock id, library path, model name)
    id: str = ""
    url: str = ""
    author: str = ""
    licence: str = ""
    #: the line the video's credits must carry, when the licence asks for one
    credit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON record of the choice (sidecar and scenes.yaml), without empty fields."""
        out = asdict(self)
        out["path"] = str(self.path)
        return {k: v for k, v in out.items() if v not in ("", {}, None)}


class SourceUnavailable(OmadError):
    """A source cannot be asked now (no key, quota, network, VRAM); the stage falls back to the next one."""

    kind = "source_unavailable"


class Source(Protocol):
    """One place pictures come from."""

    #: the source's name in config (``assets.sources``) and in the records
    name: str

    def find(self, want: Want, ctx: StageContext) -> Found | None:
        """A picture for ``want``, or None when this source has none that matches.

        Raises :class:`SourceUnavailable` when the source cannot be asked at all.
        Files it fetches or makes go under :func:`asset_dir` (kept for the render; ``ctx.scratch`` is removed
        when the stage ends) or a cache folder of its own, never into the claimed inputs.
        """
        ...


def asset_dir(ctx: StageContext) -> Path:
    """The job's folder for the pictures the asset stage chose (``work/assets/``); the render reads them there."""
    path = ctx.work / "assets"
    path.mkdir(parents=True, exist_ok=True)
    return path
