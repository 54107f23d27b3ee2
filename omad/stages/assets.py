"""The asset stage: a picture for every scene that has none, from the configured sources in order.

Reads the scene brief (the plan's ``scene_brief`` artifact, else the dropped
``video`` brief). A scene gets searched for when it has no ``image`` or
``clip`` and either the agents wrote it or it says what it wants
(``keywords`` / ``description``). Its :class:`~omad.assets.base.Want` (the
planner's description and keywords after the guardrails, the frame's
orientation and size, its length) goes to the sources of
``picture_sources`` (brief) or ``assets.sources`` (config), in order:
``library``, ``stock`` (``assets.stock.providers``: ``pexels``, ``pixabay``),
``generate`` (looked up by name, so omad runs without it), and ``title``,
always last. A source that cannot be asked (no key, key rejected, quota,
network, not installed, ``privacy: local_only`` for remote ones, a query the
guardrails dropped) is skipped with the reason recorded, and not asked again
in this run.

Each chosen file is checked as untrusted media and copied (hard-linked when
it can be) into ``work/assets/``; the new scene brief, ``scenes.assets.yaml``,
names it there with an ``asset`` record (source, why, id, url, author,
licence, credit), and the render reads such scenes' files from
``work/assets/`` only. A scene brief dropped again with ``asset`` records
gets the same files back from the library or the download cache, without a
search. It never writes into the claimed inputs or the library folders.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..assets.base import Found, Source, SourceUnavailable, Want, asset_dir
from ..assets.soundtrack import choose_music
from ..brief import AssetRecord, Scene, VideoBrief, load_brief, parse_brief
from ..errors import GuardrailBlocked, InputError, OmadError, TransientError
from ..outbox import atomic_write_text
from ..stage import Stage, StageContext, StageResult

__all__ = ["AssetStage", "ASSET_BRIEF", "source_order", "GENERATE_SOURCE"]

ASSET_BRIEF = "scenes.assets.yaml"
#: Where the ``generate`` source lives; imported only when the order names it.
GENERATE_SOURCE = "omad.assets.generate:GenerateSource"
_WORDS_PER_SECOND = 2.5
_PLACEHOLDER = re.compile(r"\[[^\]]*\]")


def source_order(names: list[str], providers: list[str]) -> list[str]:
    """The sources asked, in order: ``stock`` spelled out as its sites, duplicates dropped, ``title`` last."""
    out: list[str] = []
    for name in names:
        if name == "title":
            break
        for n in providers if name == "stock" else [name]:
            if n not in out:
                out.append(n)
    return [*out, "title"]


def _read_brief(ctx: StageContext) -> VideoBrief:
    label = ctx.label("brief")
    if "scene_brief" in ctx.artifacts:
        data = yaml.safe_load(ctx.path("scene_brief").read_text(encoding="utf-8"))
        brief = parse_brief(data, label)
    else:
        brief = load_brief(ctx.path("brief"), ctx.config.intake.max_brief_bytes, label,
                           ctx.config.intake.max_brief_depth)
    if not isinstance(brief, VideoBrief) or not brief.scenes:
        raise InputError("is not a video brief with scenes.", file=label)
    return brief


@dataclass
class _Choice:
    """What happened to one scene: the record for the sidecar."""

    index: int
    source: str = "title"
    why: str = ""
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    found: Found | None = None
    file: str = ""

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "source": self.source}
        if self.found is not None:
            rec = self.found.record()
            rec.pop("path", None)
            rec.pop("source", None)
            rec.pop("extra", None)
            out.update(rec, file=self.file)
        else:
            out["why"] = self.why
        out["fallbacks"] = self.fallbacks
        return out


class AssetStage(Stage):
    name = "assets"
    needs = ("brief",)
    makes = ("scene_brief",)

    def run(self, ctx: StageContext) -> StageResult:
        cfg = ctx.config
        brief = _read_brief(ctx)
        scenes = list(brief.scenes or [])
        label = ctx.label("brief")
        agents_wrote = "scene_brief" in ctx.artifacts
        bundle = ctx.inputs["brief"].parent
        order = source_order(list(brief.picture_sources or cfg.assets.sources), list(cfg.assets.stock.providers))
        privacy = cfg.assets.effective_privacy()
        pool = _Pool(ctx, order)
        choices: list[_Choice] = []
        findings: list[dict[str, Any]] = []
        width, height = cfg.video.size(brief.frame_shapes()[0])
        changed = False
        try:
            for i, scene in enumerate(scenes):
                if ctx.cancel.is_set():
                    raise TransientError("the search for pictures was stopped (omad is shutting down); it "
                                         "resumes later.", file=label)
                ctx.progress(i / len(scenes))
                if scene.image or scene.clip:
                    restored = self._keep_or_restore(ctx, pool, scene, i, bundle, label)
                    if restored is not scene:
                        scenes[i] = restored
                        changed = True
                    if restored.image or restored.clip:
                        continue
                    scene = restored
                if not (agents_wrote or scene.keywords or scene.description):
                    continue  # a written scene without a picture is a title card, as its author wrote it
                want, blocked = self._want(ctx, scene, i, width, height, findings)
                choice = self._choose(ctx, pool, want, i, privacy, blocked)
                choices.append(choice)
                if choice.found is not None:
                    scenes[i] = self._apply(scene, choice)
                    changed = True
        finally:
            pool.close()
        credits = list(dict.fromkeys(c.found.credit for c in choices if c.found is not None and c.found.credit))
        # Music by mood: a track of the user's music folders, recorded in the brief like a picture.
        music, music_facts = choose_music(ctx, brief)
        if music is not None:
            changed = True
            if music.chosen is not None and music.chosen.credit:
                credits.append(f"music: {music.chosen.credit}")
        facts: dict[str, Any] = {
            "sources": order,
            "privacy": privacy,
            "searched": len(choices),
            "scenes": [c.facts() for c in choices],
            "credits": credits,
            "remote_requests": pool.remote_requests(),
            **music_facts,
        }
        if pool.library_report is not None:
            facts["library"] = pool.library_report
        if not changed:
            return StageResult(facts=facts, guardrail_findings=findings)
        new = brief.model_copy(update={"scenes": scenes, **({"music": music} if music is not None else {})})
        _write(ctx.work / ASSET_BRIEF, _brief_yaml(new, credits), label)
        return StageResult(artifacts={"scene_brief": ASSET_BRIEF}, publish={".scenes.yaml": "scene_brief"},
                           facts=facts, guardrail_findings=findings)

    # ---- one scene

    def _want(self, ctx: StageContext, scene: Scene, i: int, width: int, height: int,
              findings: list[dict[str, Any]]) -> tuple[Want, str]:
        """The scene's Want after the guardrails: a keyword with anything found in it is dropped, never sent."""
        guard = ctx.guard()
        keywords: list[str] = []
        blocked = ""
        words = list(scene.keywords or [])
        if not words and not scene.description:
            # The agents' scene without the planner's words: its on-screen title says what it is about.
            words = [w for w in re.split(r"[\s,;.!?]+", scene.title or "") if len(w) > 2][:4]
        for k, word in enumerate(words):
            try:
                checked = guard.check(word, f"scenes[{i}].keywords[{k}]")
            except GuardrailBlocked as e:
                blocked = f"guardrails: the scene's words were refused ({_finding(e)})"
                break
            findings.extend(f.to_dict() for f in checked.findings)
            if not checked.findings and word.strip():
                keywords.append(word.strip())
        description = ""
        if scene.description and not blocked:
            try:
                checked = guard.check(scene.description, f"scenes[{i}].description")
                findings.extend(f.to_dict() for f in checked.findings)
                description = " ".join(_PLACEHOLDER.sub(" ", checked.text).split())
            except GuardrailBlocked as e:
                blocked = f"guardrails: the scene's description was refused ({_finding(e)})"
        spoken = len((scene.spoken or scene.narration).split()) / _WORDS_PER_SECOND
        seconds = max(scene.duration or 0.0, spoken + ctx.config.scenes.padding_seconds)
        kinds: tuple[Any, ...] = ("photo", "video")
        want = Want(scene=i, description=description, keywords=tuple(keywords),
                    orientation="landscape" if width >= height else "portrait", min_width=width,
                    min_height=height, seconds=round(seconds, 2), kinds=kinds)
        return want, blocked

    def _choose(self, ctx: StageContext, pool: _Pool, want: Want, i: int, privacy: str, blocked: str) -> _Choice:
        choice = _Choice(index=i)
        for name in pool.order:
            if name == "title":
                choice.why = "no source had a picture for it: a title card"
                break
            source, why = pool.get(name)
            if source is None:
                choice.fallbacks.append({"source": name, "reason": why})
                continue
            remote = bool(getattr(source, "remote", False))
            if remote and privacy == "local_only":
                choice.fallbacks.append({"source": name, "reason": "privacy: local_only (nothing is sent out)"})
                continue
            if remote and blocked:
                choice.fallbacks.append({"source": name, "reason": blocked + "; nothing was sent"})
                continue
            if not want.keywords and not want.description:
                choice.fallbacks.append({"source": name, "reason": "the scene has no words to search by"})
                continue
            try:
                found = source.find(want, ctx)
            except SourceUnavailable as e:
                pool.mark_unavailable(name, e.message)
                ctx.warn(f"{e.message} Scenes use the next source in assets.sources.")
                choice.fallbacks.append({"source": name, "reason": e.message})
                continue
            if found is None:
                choice.fallbacks.append({"source": name, "reason": "nothing matched"})
                continue
            try:
                file = _place(ctx, found, i, pool.allowed_roots(name))
            except OmadError as e:
                ctx.warn(f"{found.source} {found.kind} {found.id}: {e} It was not used.")
                choice.fallbacks.append({"source": name, "reason": f"its file was refused: {e.message}"})
                continue
            choice.source, choice.found, choice.file = found.source, found, file
            return choice
        return choice

    @staticmethod
    def _apply(scene: Scene, choice: _Choice) -> Scene:
        f = choice.found
        assert f is not None
        record = AssetRecord(source=f.source, file=choice.file, kind=f.kind, why=f.why[:500], id=f.id[:4096],
                             url=f.url[:2048], author=f.author[:300], licence=f.licence[:300], credit=f.credit[:400])
        update: dict[str, Any] = {"asset": record, "image": None, "clip": None}
        update["clip" if f.kind == "video" else "image"] = choice.file
        return scene.model_copy(update=update)

    def _keep_or_restore(self, ctx: StageContext, pool: _Pool, scene: Scene, i: int, bundle: Path,
                         label: str) -> Scene:
        """A scene with a picture: the bundle's file wins; an ``asset`` record's file is fetched back."""
        name = scene.clip or scene.image or ""
        if scene.asset is None or _in_folder(bundle, name):
            return scene.model_copy(update={"asset": None}) if scene.asset is not None else scene
        rec = scene.asset
        source_file: Path | None = None
        if rec.source == "library":
            p = Path(rec.id)
            if p.is_absolute() and any(_in_folder(root, str(p.relative_to(root))) for root in pool.library_roots()
                                       if p.is_relative_to(root)):
                source_file = p
        elif rec.source in ("pexels", "pixabay"):
            source_file = pool.cache().find(rec.source, rec.id, rec.kind)
        elif rec.source == "upload":  # a picture uploaded in a storyboard's review, kept in the state dir
            p = Path(rec.id)
            root = pool.allowed_roots("upload")[0]
            if p.is_absolute() and p.is_relative_to(root) and _in_folder(root, str(p.relative_to(root))):
                source_file = p
        if source_file is None:
            ctx.warn(f"{label}: scenes[{i}] names {rec.source} {rec.kind} '{name}', which omad no longer has; "
                     "the scene is searched for again.")
            return scene.model_copy(update={"image": None, "clip": None, "asset": None})
        found = Found(path=source_file, kind=rec.kind, source=rec.source, why=rec.why, id=rec.id, url=rec.url,
                      author=rec.author, licence=rec.licence, credit=rec.credit)
        try:
            file = _place(ctx, found, i, pool.allowed_roots(rec.source))
        except OmadError as e:
            ctx.warn(f"{label}: scenes[{i}]: {e} The scene is searched for again.")
            return scene.model_copy(update={"image": None, "clip": None, "asset": None})
        return self._apply(scene, _Choice(index=i, source=rec.source, found=found, file=file))


class _Pool:
    """The sources of one stage run, made on first use; an unavailable one stays so for the run."""

    def __init__(self, ctx: StageContext, order: list[str]) -> None:
        self.ctx = ctx
        self.order = order
        self._made: dict[str, Any] = {}
        self._unavailable: dict[str, str] = {}
        self._cache: Any = None
        self._library: Any = None
        self.library_report: dict[str, Any] | None = None

    def state_dir(self) -> Path:
        return Path(self.ctx.config.state_dir)

    def cache(self) -> Any:
        if self._cache is None:
            from ..assets.stock import make_cache

            self._cache = make_cache(self.ctx.config.assets, self.state_dir())
        return self._cache

    def library_roots(self) -> list[Path]:
        return [Path(f).expanduser() for f in self.ctx.config.assets.library.folders]

    def allowed_roots(self, name: str) -> list[Path]:
        """Where a source's files may come from: its own folders, never anywhere else."""
        if name == "library":
            return self.library_roots()
        if name in ("pexels", "pixabay"):
            return [self.cache().root]
        if name == "upload":
            from ..storyboard.board import uploads_dir

            return [uploads_dir(self.ctx.config.state_dir)]
        return [asset_dir(self.ctx)]

    def mark_unavailable(self, name: str, why: str) -> None:
        self._unavailable[name] = why

    def get(self, name: str) -> tuple[Source | None, str]:
        if name in self._unavailable:
            return None, self._unavailable[name]
        if name not in self._made:
            try:
                self._made[name] = self._make(name)
            except SourceUnavailable as e:
                self._unavailable[name] = e.message
                return None, e.message
        return self._made[name], ""

    def _make(self, name: str) -> Source:
        cfg = self.ctx.config
        if name == "library":
            from ..assets.library import LibraryIndex, LibrarySource

            lib = cfg.assets.library
            if not lib.folders:
                raise SourceUnavailable("library: no folders configured (assets.library.folders).")
            index_path = Path(lib.index).expanduser() if lib.index else self.state_dir() / "assets" / "library.sqlite"
            try:
                index = LibraryIndex(index_path, self.library_roots(), max_files=lib.max_files)
            except OSError as e:
                raise SourceUnavailable(f"library: its index {index_path} cannot be opened ({e}).") from e
            self._library = LibrarySource(index, min_score=cfg.assets.min_score)
            return self._library  # type: ignore[no-any-return]
        if name in ("pexels", "pixabay"):
            from ..assets.stock import make_site

            return make_site(name, cfg.assets, self.cache(), max_megapixels=cfg.intake.max_image_megapixels)
        if name == "generate":
            module, _, cls = GENERATE_SOURCE.partition(":")
            try:
                made: Source = getattr(importlib.import_module(module), cls)()
            except ModuleNotFoundError as e:
                if e.name != module:
                    raise SourceUnavailable(f"generate: not installed ({e.name} is missing).") from e
                raise SourceUnavailable("generate: not installed in this omad.") from e
            except SourceUnavailable:
                raise
            except OmadError as e:  # a model that cannot be set up is a fallback, as one that cannot be asked
                raise SourceUnavailable(f"generate: {e}") from e
            return made
        if name == "stability":
            from ..assets.stability import StabilitySource

            return StabilitySource()
        raise SourceUnavailable(f"{name}: no such picture source.")

    def remote_requests(self) -> int:
        return sum(int(getattr(s, "requests", 0)) for s in self._made.values())

    def close(self) -> None:
        lib = self._library
        if lib is not None:
            if lib.report is not None:
                self.library_report = lib.report.facts()
            lib.index.close()
        for s in self._made.values():
            close: Callable[[], None] | None = getattr(s, "close", None)
            if close is not None and s is not lib:
                close()


def _finding(e: GuardrailBlocked) -> str:
    finding = (e.details or {}).get("finding") or {}
    return str(finding.get("type") or "blocked") if isinstance(finding, dict) else "blocked"


def _in_folder(base: Path, rel: str) -> bool:
    """Whether ``rel`` names an existing file inside ``base`` (resolved; no way out by '..' or a link)."""
    if not rel or Path(rel).is_absolute() or "\x00" in rel:
        return False
    try:
        base_real = base.resolve()
        target = (base / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return base_real in target.parents and target.is_file()


def _place(ctx: StageContext, found: Found, i: int, roots: list[Path]) -> str:
    """Check ``found``'s file and put it in work/assets/; its name there (relative to work/assets)."""
    from ..assets.stock import check_media

    src = found.path
    try:
        real = src.resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise InputError("is gone.", file=str(src)) from e
    if not any(r.resolve() in real.parents for r in roots if r.exists()):
        raise InputError("is outside the folders this source may use.", file=str(src))
    label = f"{found.source} {found.kind} {src.name}"
    formats = ("JPEG", "PNG", "WEBP", "TIFF", "BMP") if found.source == "library" else ("JPEG", "PNG", "WEBP")
    check_media(real, found.kind, label, ctx.config.intake.max_image_megapixels, formats)
    folder = asset_dir(ctx)
    ident = re.sub(r"[^0-9A-Za-z_-]", "_", Path(found.id).stem if found.source == "library" else found.id)[:40]
    name = f"scene{i:02d}-{found.source}-{ident}{real.suffix.lower()}"
    dest = folder / name
    if real.parent == folder.resolve():
        return real.name  # a source that wrote straight into work/assets (generate)
    tmp = folder / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(real, tmp)
        except OSError:
            shutil.copyfile(real, tmp)
        tmp.replace(dest)
    except OSError as e:
        with suppress(OSError):
            tmp.unlink()
        raise TransientError(f"cannot copy it into the job's work folder ({e.strerror}).", file=label) from e
    return name


def _brief_yaml(brief: VideoBrief, credits: list[str]) -> str:
    data = brief.model_dump(mode="json", exclude_none=True)
    header = ("# Scene brief with the pictures omad chose (see each scene's 'asset'). Swap one: give the scene your\n"
              "# own 'image' (a file in the bundle), or delete its 'image'/'clip' and 'asset' to search again;\n"
              "# then drop the brief again.\n")
    if credits:
        header += "# Credits: " + "; ".join(credits) + "\n"
    return header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def _write(path: Path, text: str, label: str) -> None:
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise TransientError(f"cannot write {path.name} in the work directory ({e.strerror}).", file=label) from e



