"""Briefs: a YAML or JSON file that says what a drop should become.

A brief has a ``version`` and a ``kind`` and is validated by the pydantic model
of that kind; unknown keys are refused with the list of allowed ones. YAML is
loaded safely, and a document whose aliases would expand past a fixed number of
nodes (an "alias bomb") is refused without being expanded. Paths in a brief
are relative to the brief's folder and may not leave it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InputError
from .i18n import N_
from .safe_yaml import MAX_EXPANDED_NODES, load_yaml_safely, nesting_depth

__all__ = [
    "Brief",
    "CaptionBrief",
    "Img2VidBrief",
    "AddAudioBrief",
    "NarrateBrief",
    "VideoBrief",
    "TranscribeBrief",
    "Scene",
    "VoiceSpec",
    "SceneVoice",
    "AssetSpec",
    "AssetRecord",
    "MusicChoice",
    "MusicRecord",
    "parse_brief",
    "load_brief",
    "resolve_asset",
    "MOTIONS",
    "MAX_EXPANDED_NODES",
    "BriefModel",
    "register",
    "unregister",
    "brief_models",
    "briefs_for",
]

MOTIONS = ("auto", "zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "none")

Motion = Literal["auto", "zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "none"]
Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]


class _Model(BaseModel):
    # Validators are built when the first brief is read, not when omad starts (~9 ms; caption and narration
    # jobs never read one).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class VoiceSpec(_Model):
    """Who narrates: the engine, and for F5 a reference recording in the bundle."""

    engine: Literal["auto", "espeak", "piper", "f5"] | None = Field(None, description="overrides tts.engine")
    name: str | None = Field(None, description="espeak-ng voice (pt-br) or an installed Piper voice "
                             "(pt_BR-faber-medium)")
    reference_audio: str | None = Field(None, description="F5: reference recording, relative to the brief")
    reference_text: str | None = Field(None, description="F5: exact transcript of the reference recording")
    speed: float | None = Field(None, gt=0.3, lt=3.0, description="speaking speed factor")
    speaker: str | None = Field(None, max_length=100, description="Piper: a speaker of a multi-speaker voice")
    noise_scale: float | None = Field(None, ge=0, le=2, description="Piper: voice variation")
    noise_w_scale: float | None = Field(None, ge=0, le=2, description="Piper: rhythm variation")


class SceneVoice(_Model):
    """A scene's own voice (a video with two speakers); unset fields come from the brief's ``voice``."""

    engine: Literal["auto", "espeak", "piper", "f5"] | None = Field(None, description="overrides the brief's engine")
    name: str | None = Field(None, description="espeak-ng voice or installed Piper voice")
    speed: float | None = Field(None, gt=0.3, lt=3.0, description="speaking speed factor")
    speaker: str | None = Field(None, max_length=100, description="Piper: a speaker of a multi-speaker voice")
    noise_scale: float | None = Field(None, ge=0, le=2, description="Piper: voice variation")
    noise_w_scale: float | None = Field(None, ge=0, le=2, description="Piper: rhythm variation")


class _BriefBase(_Model):
    """What every brief has, and what each kind declares about itself (class attributes, not fields).

    ``files`` maps a field holding a file name (``"voice.reference_audio"``, ``"scenes[].image"``) to the
    input role it fills (``{i}`` is the list index) and the kind of file it takes; intake claims those files,
    and the web side fills ``uploads`` fields from uploaded files of their kind. ``form`` names the fields
    the Create form sets; ``one_of`` groups fields of which at most one is filled from the form;
    ``label`` is the kind's entry in the form's list; ``routes`` are the routes its jobs may take.
    """

    files: ClassVar[dict[str, tuple[str, str]]] = {}
    uploads: ClassVar[tuple[str, ...]] = ()
    form: ClassVar[tuple[str, ...]] = ("name",)
    #: form inputs that are not brief fields themselves; :meth:`from_form` turns them into brief fields
    form_inputs: ClassVar[tuple[str, ...]] = ()
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    label: ClassVar[str] = ""
    routes: ClassVar[tuple[str, ...]] = ()

    version: Literal[1] = Field(1, description="brief schema version")
    name: str | None = Field(None, description="output name (default: the brief's file or folder name)")
    priority: int | str | None = Field(None, description="low, normal, high or an integer (higher first)")

    @field_validator("priority")
    @classmethod
    def _priority(cls, v: int | str | None) -> int | str | None:
        from .controls import parse_priority

        return None if v is None else parse_priority(v)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "/" in v or "\\" in v or v.startswith(".")):
            raise ValueError("must be a plain file name without folders")
        return v

    @classmethod
    def kind_name(cls) -> str:
        """The value of ``kind`` that picks this model."""
        args = get_args(cls.model_fields["kind"].annotation) if "kind" in cls.model_fields else ()
        if len(args) != 1 or not isinstance(args[0], str):
            raise TypeError(f"{cls.__name__} needs a field kind: Literal['<its kind>']")
        return args[0]

    @classmethod
    def roles(cls) -> set[str]:
        """The input roles this kind's files fill (indexed roles, such as ``scene{i}_image``, left out)."""
        return {role for role, _kind in cls.files.values() if "{" not in role}

    @classmethod
    def from_form(cls, fields: dict[str, str], brief: dict[str, Any]) -> None:
        """Fill ``brief`` from the :attr:`form_inputs` among the Create form's ``fields`` (none by default)."""

    def route(self) -> str:
        """The route a job of this brief takes."""
        return self.routes[0] if self.routes else self.kind_name()

    def checked(self, label: str) -> None:
        """Raise :class:`InputError` naming ``label`` for what the model alone cannot say (e.g. one of two keys)."""

    def file_refs(self, base: Path) -> list[tuple[str, str, str]]:
        """Every file the brief names: ``(role, relative path, key)``, in the order of ``files``."""
        out: list[tuple[str, str, str]] = []
        for path, (role, _kind) in self.files.items():
            for key, value, index in _walk(self, path.split("."), ""):
                if isinstance(value, str) and value:
                    out.append((role.format(i=index), value, key))
        return out


def _walk(node: Any, parts: list[str], prefix: str, index: int = 0) -> list[tuple[str, Any, int]]:
    """The values at a dotted path with ``name[]`` for lists: ``(key as written in messages, value, list index)``."""
    if node is None:
        return []
    if not parts:
        return [(prefix, node, index)]
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    value = getattr(node, name, None)
    key = f"{prefix}.{name}" if prefix else name
    if head.endswith("[]"):
        return [hit for i, item in enumerate(value or []) for hit in _walk(item, rest, f"{key}[{i}]", i)]
    return _walk(value, rest, key, index)


class CaptionBrief(_BriefBase):
    files = {"video": ("video", "video"), "subtitles": ("srt", "srt")}
    uploads = ("video", "subtitles")
    label = N_("caption: burn subtitles (srt, vtt, ass) into a video")
    routes = ("caption", "resync")

    kind: Literal["caption"]
    video: str = Field(..., description="the video file")
    subtitles: str = Field(..., description="the subtitle file: .srt, .vtt, .ass or .ssa")
    resync: bool = Field(False, description="move the cues onto the speech first (speech recognition)")
    language: str | None = Field(
        None, pattern=r"^(auto|[A-Za-z]{2,3}([-_][A-Za-z]{2})?)$", description="resync: spoken language or auto"
    )

    def route(self) -> str:
        return "resync" if self.resync else "caption"


class Img2VidBrief(_BriefBase):
    files = {"image": ("image", "image"), "audio": ("audio", "audio")}
    uploads = ("image", "audio")
    form = ("name", "motion", "format")
    label = N_("img2vid: Ken Burns clip of an image")

    kind: Literal["img2vid"]
    image: str = Field(..., description="the image")
    audio: str | None = Field(None, description="optional audio: the clip lasts as long as it")
    seconds: float | None = Field(None, gt=0, le=600, description="clip length without audio")
    motion: Motion | None = Field(None, description="Ken Burns preset")
    fit: Literal["cover", "fit"] | None = Field(None, description="cover or fit (on a blurred copy)")
    format: Literal["landscape", "vertical", "square"] | None = Field(None, description="output frame")


class AddAudioBrief(_BriefBase):
    files = {"video": ("video", "video"), "audio": ("audio", "audio")}
    uploads = ("video", "audio")
    label = N_("addaudio: new soundtrack for a video")

    kind: Literal["addaudio"]
    video: str = Field(..., description="the video file")
    audio: str = Field(..., description="the audio file")
    mode: Literal["replace", "mix"] | None = Field(None, description="replace the sound or mix under it")
    length: Literal["shortest", "pad", "loop"] | None = Field(None, description="when lengths differ")


class NarrateBrief(_BriefBase):
    files = {"text_file": ("text", "text"), "voice.reference_audio": ("reference", "audio")}
    uploads = ("text_file",)
    form = ("name", "text", "voice")
    one_of = (("text", "text_file"),)
    label = N_("narrate: text to speech")

    kind: Literal["narrate"]
    text: str | None = Field(None, description="the text to speak")
    text_file: str | None = Field(None, description="or a .txt file in the bundle")
    voice: VoiceSpec | None = Field(None, description="who speaks")

    def checked(self, label: str) -> None:
        if not (self.text or self.text_file):
            raise InputError("a narrate brief needs 'text' or 'text_file'.", file=label)


class TranscribeBrief(_BriefBase):
    files = {"video": ("video", "video"), "audio": ("audio", "audio")}
    uploads = ("video", "audio")
    one_of = (("video", "audio"),)
    label = N_("transcribe: captions from the speech of a video or recording")

    kind: Literal["transcribe"]
    video: str | None = Field(None, description="the video to caption from its speech")
    audio: str | None = Field(None, description="or the recording to transcribe")
    language: str | None = Field(
        None, pattern=r"^(auto|[A-Za-z]{2,3}([-_][A-Za-z]{2})?)$", description="spoken language (pt, en...) or auto"
    )
    model: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$", description="Whisper size installed (overrides asr.model)"
    )
    output: Literal["burn", "soft", "both"] | None = Field(
        None, description="a video: captions burned in, a soft mov_text track, or both (default asr.output)"
    )
    caption_style: Literal["plain", "word_highlight"] | None = Field(
        None, description="burned captions: plain, or word_highlight (the spoken word lights up)"
    )
    vocabulary: list[Annotated[str, Field(max_length=60)]] | None = Field(
        None, max_length=100, description="names and words Whisper should prefer (its initial prompt)"
    )

    def checked(self, label: str) -> None:
        if bool(self.video) == bool(self.audio):
            raise InputError("a transcribe brief needs exactly one of 'video' or 'audio'.", file=label)


class AssetRecord(_Model):
    """Where a scene's picture came from: written by the asset stage, read back when the brief is dropped again."""

    source: str = Field(..., max_length=40, description="library, pexels, pixabay, generate...")
    file: str = Field(..., max_length=255, description="the file omad keeps for it in the job's work/assets/")
    kind: Literal["photo", "video"] = Field("photo", description="a still or a clip")
    why: str = Field("", max_length=500, description="why it was chosen (the words that matched)")
    id: str = Field("", max_length=4096, description="the source's own id (stock id, library path)")
    url: str = Field("", max_length=2048, description="the page of the picture at its source")
    author: str = Field("", max_length=300, description="who made it")
    licence: str = Field("", max_length=300, description="its licence")
    credit: str = Field("", max_length=400, description="the credit line the licence asks for")


class Scene(_Model):
    narration: str = Field("", description="what is said over this scene (also the captions)")
    spoken: str | None = Field(
        None, description="the narration as the voice should say it (respellings); captions keep 'narration'"
    )
    image: str | None = Field(None, description="an image in the bundle; without one (or a clip) a title card is made")
    clip: str | None = Field(None, description="a video clip in the bundle, shown instead of an image")
    clip_start: float | None = Field(None, ge=0, description="seconds into the clip where the scene starts (default 0)")
    fit: Literal["cover", "fit"] | None = Field(
        None, description="a clip of another aspect: cover crops to fill, fit letterboxes (default scenes.fit)"
    )
    clip_audio: Literal["mute", "duck"] | None = Field(
        None, description="the clip's own sound: mute (default) or duck it under the narration (scenes.clip_audio_db)"
    )
    title: str | None = Field(None, description="on-screen text (title card text, or overlaid on the image)")
    duration: float | None = Field(None, gt=0, le=600, description="minimum seconds (default: narration + padding)")
    motion: Motion | None = Field(None, description="Ken Burns preset for the image")
    background: Colour | None = Field(None, description="title card background, #RRGGBB")
    description: str | None = Field(
        None, max_length=500, description="what the picture should show; a scene without image or clip is searched for"
    )
    keywords: list[Annotated[str, Field(max_length=60)]] | None = Field(
        None, max_length=20, description="search words for the picture (pt-BR and English), most important first"
    )
    asset: AssetRecord | None = Field(
        None, description="where omad found the scene's image or clip (written by omad; delete it to search again)"
    )
    voice: SceneVoice | None = Field(
        None, description="who narrates this scene: a voice name, or engine/name/speaker/speed (default: the brief's)"
    )

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_by_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            engine, _, name = v.partition(":") if v.startswith(("espeak:", "piper:")) else ("", "", v)
            return {"engine": engine, "name": name} if engine else {"name": v}
        return v

    @model_validator(mode="after")
    def _one_picture(self) -> Scene:
        if self.image and self.clip:
            raise ValueError(
                f"the scene names both an image ('{self.image}') and a clip ('{self.clip}'); a scene shows one of "
                "them. Remove 'image' or 'clip'"
            )
        return self


class AssetSpec(_Model):
    file: str = Field(..., description="a file in the bundle")
    description: str = Field("", description="what it shows (helps the visual planner)")


class CaptionSpec(_Model):
    style: Literal["plain", "word_highlight"] | None = Field(
        None, description="plain, or word_highlight: the word being spoken lights up (karaoke, for short videos)"
    )


class MusicRecord(_Model):
    """The track omad chose from the music folders: written by the asset stage, read back when dropped again."""

    file: str = Field(..., max_length=255, description="the copy omad keeps in the job's work/assets/")
    id: str = Field("", max_length=4096, description="the track in your music folders")
    title: str = Field("", max_length=300, description="its title tag")
    artist: str = Field("", max_length=300, description="its artist tag")
    genre: str = Field("", max_length=300, description="its genre tag")
    mood: str = Field("", max_length=300, description="its mood tag")
    seconds: float = Field(0.0, ge=0, description="its length")
    why: str = Field("", max_length=500, description="the words that matched")
    credit: str = Field("", max_length=400, description="the credit line")


class MusicChoice(_Model):
    """Background music: a file in the bundle, or a mood (and words) to choose a track of assets.music.folders by."""

    file: str | None = Field(None, description="a music file in the bundle")
    mood: str | None = Field(None, max_length=40, description="alegre, calmo, epico... (your tracks' mood tags, "
                                                               "genres and folder names)")
    words: list[Annotated[str, Field(max_length=40)]] | None = Field(
        None, max_length=10, description="more words to match (genre, instrument, comment)")
    chosen: MusicRecord | None = Field(None, description="the track omad chose (written by omad; delete to choose "
                                                         "again)")

    @model_validator(mode="after")
    def _something(self) -> MusicChoice:
        if not (self.file or self.mood or self.words or self.chosen):
            raise ValueError("music needs a 'file' in the bundle or a 'mood' to choose a track by")
        return self


class VideoBrief(_BriefBase):
    files = {"scenes[].image": ("scene{i}_image", "image"), "assets[].file": ("asset{i}", "image"),
             "music": ("music", "audio"), "voice.reference_audio": ("reference", "audio")}
    uploads = ("music",)
    form = ("name", "prompt", "format", "captions", "voice", "review")
    form_inputs = ("also_landscape", "also_vertical", "also_square", "music_mood")
    label = N_("video: agents write it from a prompt")
    routes = ("video", "agent-video")

    kind: Literal["video"]
    title: str | None = Field(None, description="video title")
    format: Literal["landscape", "vertical", "square"] | None = Field(None, description="output frame")
    formats: list[Literal["landscape", "vertical", "square"]] | None = Field(
        None, min_length=1, max_length=3,
        description="several frames from one job (same voice and pictures): the first is X.mp4, the others "
                    "X.vertical.mp4, X.square.mp4...; overrides 'format'",
    )
    scenes: list[Scene] | None = Field(None, description="scenes rendered as written (no LLM)")
    prompt: str | None = Field(None, description="without scenes: what the agents should make")
    topic: str | None = Field(None, description="agent video: subject")
    audience: str | None = Field(None, description="agent video: who it is for")
    tone: str | None = Field(None, description="agent video: tone of voice")
    duration_seconds: float | None = Field(None, gt=0, le=900, description="agent video: target length")
    language: str = Field("pt-BR", description="language of narration and captions")
    assets: list[AssetSpec] = Field(default_factory=list, description="bundle files the agents may use")
    music: str | MusicChoice | None = Field(
        None, description="background music ducked under the voice: a file in the bundle, or {mood: alegre} to "
                          "choose one of your tracks (assets.music.folders)")
    music_db: float | None = Field(None, le=0, description="music level under the voice, dB")
    captions: bool = Field(True, description="burn captions generated from the narration")
    caption: CaptionSpec | None = Field(None, description="how the captions look (default: caption.* in config)")
    voice: VoiceSpec | None = Field(None, description="who narrates")
    picture_sources: list[Literal["library", "stock", "pexels", "pixabay", "generate", "title"]] | None = Field(
        None, description="where scene pictures come from, in order (overrides assets.sources)"
    )
    review: bool | None = Field(
        None, description="stop after planning and pictures for a person to review the storyboard, then render "
        "(default llm.review for prompt videos)"
    )

    @property
    def is_agent(self) -> bool:
        return not self.scenes

    def route(self) -> str:
        return "agent-video" if self.is_agent else "video"

    def checked(self, label: str) -> None:
        if not self.scenes and not (self.prompt or self.topic):
            raise InputError("a video brief needs 'scenes' (rendered as written) or a 'prompt' for the agents.",
                             file=label)

    def file_refs(self, base: Path) -> list[tuple[str, str, str]]:
        # A picture omad chose earlier (an 'asset' record) is fetched back by the asset stage when the bundle
        # does not carry it; a file of that name in the bundle wins.
        scenes = self.scenes or []

        def kept(key: str) -> bool:
            if not key.startswith("scenes["):
                return True
            scene = scenes[int(key[len("scenes["):key.index("]")])]
            return scene.asset is None or bool(scene.image and (base / scene.image).is_file())

        refs = [ref for ref in super().file_refs(base) if kept(ref[2])]
        if isinstance(self.music, MusicChoice) and self.music.file:  # {file: ..., mood: ...}: the file still travels
            refs.append(("music", self.music.file, "music.file"))
        return refs

    @field_validator("formats")
    @classmethod
    def _distinct_formats(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"names a format twice ({', '.join(v)}); list each of landscape, vertical, square once")
        return v

    @property
    def music_file(self) -> str | None:
        """The music file the bundle carries, if the brief names one."""
        return self.music if isinstance(self.music, str) else self.music.file if self.music else None

    def frame_shapes(self) -> list[str | None]:
        """The formats to render, first the one published as X.mp4; ``[None]``: the config's preset alone."""
        if self.formats:
            return list(self.formats)
        return [self.format]

    @classmethod
    def from_form(cls, fields: dict[str, str], brief: dict[str, Any]) -> None:
        # The "also render" boxes: more formats from the same job, the chosen format first.
        also = [f for f in ("landscape", "vertical", "square") if fields.get(f"also_{f}") in ("on", "true", "1", "yes")]
        if also:
            main = fields.get("format") or "landscape"
            brief["formats"] = [main, *(f for f in also if f != main)]
        mood = fields.get("music_mood", "").strip()
        if mood and "music" not in brief:
            brief["music"] = {"mood": mood}


Brief = Annotated[
    CaptionBrief | Img2VidBrief | AddAudioBrief | NarrateBrief | VideoBrief | TranscribeBrief,
    Field(discriminator="kind"),
]
#: Any brief model: the built-in ones, and those registered by a route module.
BriefModel = _BriefBase
#: Every brief model by its kind, in the order the Create form lists them.
_KINDS: dict[str, type[_BriefBase]] = {
    m.kind_name(): m for m in (CaptionBrief, Img2VidBrief, AddAudioBrief, NarrateBrief, VideoBrief, TranscribeBrief)
}


def register(model: type[_BriefBase]) -> None:
    """Make ``model`` the brief of its ``kind`` (a route module adds its brief this way)."""
    kind = model.kind_name()
    if kind in _KINDS:
        raise ValueError(f"brief kind {kind!r} is already registered")
    _KINDS[kind] = model


def unregister(kind: str) -> None:
    """Undo :func:`register` for ``kind``."""
    _KINDS.pop(kind, None)


def brief_models() -> dict[str, type[_BriefBase]]:
    """Every brief model by kind, in the Create form's order."""
    return dict(_KINDS)


def briefs_for(route: str) -> list[type[_BriefBase]]:
    """The brief models whose jobs may take ``route``."""
    return [m for m in _KINDS.values() if route in (m.routes or (m.kind_name(),))]


def _explain(err: ValidationError, data: dict[str, Any]) -> str:
    parts = []
    model: type[BaseModel] | None = _KINDS.get(str(data.get("kind")))
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        where = ".".join(loc) or "brief"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1]) if model else []
            parts.append(f"unknown key '{where}' (allowed: {', '.join(allowed)})")
        elif e["type"] == "union_tag_invalid" or e["type"] == "union_tag_not_found":
            parts.append(f"'kind' must be one of: {', '.join(_KINDS)}")
        else:
            parts.append(f"'{where}': {e['msg']}")
    return "; ".join(parts)


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    current: type[BaseModel] = model
    for part in path:
        if part.isdigit():
            continue
        field = current.model_fields.get(part)
        if field is None:
            break
        ann = field.annotation
        inner = _model_in(ann)
        if inner is None:
            break
        current = inner
    return sorted(current.model_fields)


def _model_in(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse_brief(data: Any, label: str) -> _BriefBase:
    """Validate already-loaded brief data by the model of its ``kind``; errors name the file and the key."""
    if not isinstance(data, dict):
        raise InputError("must be a mapping with at least 'kind' (and 'version: 1').", file=label)
    if "kind" not in data:
        raise InputError(f"has no 'kind'. Add one of: {', '.join(_KINDS)}.", file=label)
    kind = data["kind"]
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InputError(f"is not a valid brief: 'kind' must be one of: {', '.join(_KINDS)}. Fix it and drop it "
                         "again.", file=label)
    try:
        brief = model.model_validate(data)
    except ValidationError as e:
        raise InputError(f"is not a valid brief: {_explain(e, data)}. Fix it and drop it again.", file=label) from e
    brief.checked(label)
    return brief


def load_brief(path: Path, max_bytes: int, label: str | None = None, max_depth: int = 12) -> _BriefBase:
    """Read and validate a brief file (YAML or JSON)."""
    label = label or path.name
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"is {size} bytes; briefs are limited to {max_bytes} bytes (intake.max_brief_bytes).", file=label
            )
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot be read ({e.strerror}).", file=label) from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("is not UTF-8 text. Save the brief as UTF-8 and drop it again.", file=label) from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"is not valid JSON (line {e.lineno}: {e.msg}).", file=label) from e
        except RecursionError as e:
            raise InputError("is nested too deeply to be a brief. Fix the brief and drop it again.", file=label) from e
    else:
        data = load_yaml_safely(text, label)
    if nesting_depth(data) > max_depth:
        raise InputError(
            f"nests lists and mappings {nesting_depth(data)} levels deep; briefs are limited to {max_depth} "
            "(intake.max_brief_depth). Fix the brief and drop it again.",
            file=label,
        )
    return parse_brief(data, label)


def resolve_asset(base: Path, rel: str, label: str, key: str) -> Path:
    """A brief path, relative to the brief's folder, refused if it leaves the folder or is missing."""
    if not rel or Path(rel).is_absolute() or rel.startswith("~"):
        raise InputError(f"'{key}' must be a path relative to the brief, not '{rel}'.", file=label)
    if "\x00" in rel:
        raise InputError(f"'{key}' holds a NUL character; name the file as it is called in the bundle.", file=label)
    try:
        base_real = base.resolve()
        target = (base / rel).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise InputError(f"'{key}' names '{rel}', which omad cannot resolve ({e}).", file=label) from e
    if target != base_real and base_real not in target.parents:
        raise InputError(
            f"'{key}' points outside the brief's folder ('{rel}'). Put the file in the bundle and name it relatively.",
            file=label,
        )
    if not target.is_file():
        raise InputError(f"'{key}' names '{rel}', which is not in the bundle. Add the file or fix the name.",
                         file=label)
    return target
