"""The storyboard page and API of a job waiting for review.

``GET/PUT /api/jobs/{id}/storyboard`` read and replace the scenes (schema:
:class:`~omad.storyboard.board.StoryboardEdit`), ``POST /api/jobs/{id}/render``
records the review and queues the job, ``GET /api/jobs/{id}/storyboard/library``
searches the library (``.../stock``: Pexels and Pixabay, when a key is set),
``POST /api/jobs/{id}/storyboard/pictures`` takes an upload,
``GET /jobs/{id}/storyboard/pictures/{n}`` is scene n's picture. The page
``/jobs/{id}/storyboard`` does all of it with one plain form (no script needed):
every button saves the text fields first, then moves, removes, adds, searches,
swaps a picture, previews one scene at low resolution with its voice
(``/jobs/{id}/storyboard/preview/{n}``) or renders. Every change passes the CSRF check like the other
forms, and only a job in the ``review`` state can be changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import OmadError
from ..journal import Job, JobStatus
from ..stage import StageResult
from ..storyboard.board import MAX_SCENES, Board, SceneEdit, StoryboardEdit, uploads_dir
from ..storyboard.review import approve
from .responses import file_response, nav_for, principal, text
from .state import CSRF_STALE, AppState, csrf_refused

__all__ = ["storyboard_routes", "board_for", "storyboard_view"]

_MOTIONS = ("", "auto", "zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "none")
_UPLOAD_BYTES = 32 * 2**20
_LIBRARY_HITS = 12


def board_for(state: AppState, job: Job) -> Board:
    """The storyboard of ``job``: its folder, the brief's bundle and the newest scene brief its stages wrote."""
    work = state.paths.jobs / job.id
    artifacts: dict[str, str] = {}
    for s in state.journal.stages(job.id):
        if s["status"] == "done":
            artifacts.update(StageResult.from_dict(s["result"] or {}).artifacts)
    brief = next((work / c["stored"] for c in job.inputs if c.get("role") == "brief" and not c.get("claim")), None)
    if brief is None:
        brief = next((work / c["stored"] for c in job.inputs if c.get("role") == "brief"), work)
    current = work / artifacts["scene_brief"] if "scene_brief" in artifacts else brief
    from ..assets.stock import make_cache
    from ..guardrails import guardrails_for

    cfg = state.config
    return Board(work, brief.parent, current, job.name, library=[Path(f).expanduser()
                                                                  for f in cfg.assets.library.folders],
                 max_megapixels=cfg.intake.max_image_megapixels, guard=guardrails_for(cfg),
                 uploads=uploads_dir(cfg.state_dir), stock=make_cache(cfg.assets, Path(cfg.state_dir)).root,
                 voice_file=work / artifacts["voice"] if "voice" in artifacts else None)


def _spoken_seconds(board: Board) -> dict[str, float]:
    """Each narration's spoken length as the voice stage measured it before the review (by its text)."""
    if board.voice_file is None:
        return {}
    try:
        voice = json.loads(board.voice_file.read_text(encoding="utf-8"))["scenes"]
        before = board.load_current().scenes or []
    except (OSError, ValueError, KeyError, TypeError, OmadError):
        return {}
    return {s.narration: float(v.get("duration") or 0.0) for s, v in zip(before, voice, strict=False)}


def storyboard_view(job: Job, board: Board, padding: float = 0.6) -> dict[str, Any]:
    """The storyboard as plain data (the API's answer and the page's cards).

    ``seconds`` is how long a scene will last: its measured narration plus ``padding`` (its minimum
    ``duration`` if longer), or, for a narration not spoken yet, an estimate at 2.5 words a second.
    """
    brief = board.load()
    spoken = _spoken_seconds(board)
    scenes = []
    for i, s in enumerate(brief.scenes or []):
        picture = board.picture_of(s)
        measured = spoken.get(s.narration)
        said = measured if measured is not None else len(s.narration.split()) / 2.5
        seconds = max(said + padding if said > 0 else 3.0, s.duration or 0.0)
        scenes.append({
            "index": i, "narration": s.narration, "title": s.title, "motion": s.motion, "duration": s.duration,
            "seconds": round(seconds, 2), "seconds_measured": measured is not None,
            "voice": (s.voice.name if s.voice is not None else None),
            "picture": {"kind": "clip" if s.clip else "image" if s.image else "title",
                        "name": s.clip or s.image, "source": s.asset.source if s.asset else ("bundle" if picture
                                                                                                else None),
                        "url": f"/jobs/{job.id}/storyboard/pictures/{i}" if picture is not None and s.image
                        else None},
        })
    voice = brief.voice.name if brief.voice is not None else None
    return {"id": job.id, "name": job.name, "status": job.status.value, "editable": job.status is JobStatus.REVIEW,
            "title": brief.title, "format": brief.format or "landscape", "voice": voice, "scenes": scenes,
            "links": {"self": f"/api/jobs/{job.id}/storyboard", "render": f"/api/jobs/{job.id}/render",
                      "page": f"/jobs/{job.id}/storyboard"}}


def _library_search(state: AppState, words: str) -> list[dict[str, Any]]:
    from ..assets.base import Want
    from ..assets.library import LibraryIndex

    lib = state.config.assets.library
    if not lib.folders or not words.strip():
        return []
    index_path = Path(lib.index).expanduser() if lib.index else state.paths.state / "assets" / "library.sqlite"
    with LibraryIndex(index_path, [Path(f).expanduser() for f in lib.folders], max_files=lib.max_files) as index:
        index.scan()
        want = Want(scene=0, description="", keywords=tuple(words.split()[:8]), orientation="landscape",
                    min_width=0, min_height=0, seconds=0.0, kinds=("photo",))
        hits = index.search(want, min_keywords=1)[:_LIBRARY_HITS]
    return [{"path": str(f.path), "name": f.path.name, "title": f.title, "words": w, "score": score}
            for score, f, w in hits]


class _Warnings:
    """What a stock site needs of a stage context here: somewhere to warn (the search answers its failures)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _stock_search(state: AppState, job: Job, words: str) -> list[dict[str, Any]]:
    """The best photo of each stock site that has a key (never with ``privacy: local_only``), downloaded into
    the stock cache; each hit is remembered in the job folder, so picking it keeps its credit and licence."""
    from ..assets.base import SourceUnavailable, Want
    from ..assets.stock import make_cache, make_site

    cfg = state.config.assets
    if not words.strip() or cfg.effective_privacy() == "local_only":
        return []
    keys = {"pexels": cfg.pexels_key_value(), "pixabay": cfg.pixabay_key_value()}
    cache = make_cache(cfg, Path(state.config.state_dir))
    want = Want(scene=0, description="", keywords=tuple(words.split()[:4]), orientation="landscape", min_width=0,
                min_height=0, seconds=0.0, kinds=("photo",))
    hits: list[dict[str, Any]] = []
    for name in cfg.stock.providers:
        if not keys.get(name):
            continue
        site = make_site(name, cfg, cache, max_megapixels=state.config.intake.max_image_megapixels)
        try:
            found = site.find(want, _Warnings())  # type: ignore[arg-type]  # a site only warns through it
        except (SourceUnavailable, OmadError) as e:
            hits.append({"source": name, "error": str(e)})
            continue
        finally:
            site.close()
        if found is not None:
            hits.append({"path": str(found.path), "name": found.path.name, "source": name, "id": found.id,
                         "url": found.url, "author": found.author, "licence": found.licence,
                         "credit": found.credit, "words": list(want.keywords), "score": 0})
    _remember_stock(state, job, [h for h in hits if "path" in h])
    return hits


def _remember_stock(state: AppState, job: Job, hits: list[dict[str, Any]]) -> None:
    path = state.paths.jobs / job.id / "stock-hits.json"
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    known.update({h["path"]: h for h in hits})
    path.write_text(json.dumps(known, ensure_ascii=False), encoding="utf-8")


def _edit_from_form(form: FormData, count: int) -> list[dict[str, Any]]:
    """The scenes as the form shows them, in its order (``order`` lists the source indexes)."""
    order = [int(x) for x in str(form.get("order") or "").split(",") if x.strip().isdigit()][:MAX_SCENES]
    out = []
    for src in order:
        if src >= count:
            continue
        duration = str(form.get(f"duration_{src}") or "").strip()
        out.append({"from": src, "narration": str(form.get(f"narration_{src}") or ""),
                    "title": str(form.get(f"title_{src}") or "") or None,
                    "motion": str(form.get(f"motion_{src}") or "") or None,
                    "duration": float(duration) if duration.replace(".", "", 1).isdigit() and float(duration) > 0
                    else None,
                    "voice": str(form.get(f"voice_{src}") or "").strip() or None})
    return out


class _Storyboard:
    """The storyboard's API and page handlers, over one application state."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def _job(self, request: Request) -> Job | None:
        return self.state.journal.get(request.path_params["job_id"])

    def _not_review(self, job: Job) -> str:
        return (f"job {job.id} is {job.status.value}, not waiting for review: its storyboard can no longer be "
                "changed. A finished video's X.scenes.yaml can be edited and dropped again.")

    def _editable(self, request: Request) -> Job | Response:
        """The job of an API call that changes its storyboard, or the error to answer: a missing or stale CSRF
        token (403), no such job (404), a job no longer waiting for review (409)."""
        if csrf_refused(self.state, request, request.headers.get("x-csrf-token")):
            return _json_error(403, "the X-CSRF-Token header is missing or stale. Reload the page.")
        job = self._job(request)
        if job is None:
            return _json_error(404, f"no job '{request.path_params['job_id']}'. See GET /api/jobs.")
        if job.status is not JobStatus.REVIEW:
            return _json_error(409, self._not_review(job))
        return job

    # ---- API

    def api_get(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return _json_error(404, f"no job '{request.path_params['job_id']}'. See GET /api/jobs.")
        if job.route not in ("video", "agent-video"):
            return _json_error(404, f"job {job.id} is a {job.route} job; only video jobs have a storyboard.")
        try:
            view = storyboard_view(job, board_for(self.state, job), self.state.config.scenes.padding_seconds)
            return JSONResponse(view, headers={"Cache-Control": "no-store"})
        except OmadError as e:
            return _json_error(409, str(e))

    async def api_put(self, request: Request) -> Response:
        job = self._editable(request)
        if isinstance(job, Response):
            return job
        body = await request.body()
        if len(body) > 1 << 20:
            return _json_error(413, "the storyboard is larger than 1 MB.")
        try:
            edit = StoryboardEdit.model_validate_json(body)
        except ValidationError as e:
            first = e.errors()[0]
            return _json_error(400, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}. See the "
                                    "StoryboardEdit schema in /api/openapi.json.")

        def save() -> dict[str, Any]:
            board = board_for(self.state, job)
            board.apply(edit)
            return storyboard_view(job, board, self.state.config.scenes.padding_seconds)

        try:
            view = await run_in_threadpool(save)
        except OmadError as e:
            return _json_error(422, str(e))
        self.state.log.info("storyboard_edited", job=job.id, token=principal(request).name, scenes=len(edit.scenes))
        return JSONResponse(view)

    def _render(self, job: Job, who: str | None) -> str:
        board = board_for(self.state, job)
        brief = board.load()
        board.save(brief)  # the storyboard as reviewed, even when nothing was changed
        facts = {"scenes": len(brief.scenes or []), "reviewed_by": who or ""}
        if not approve(self.state.journal, job, board.path.name, facts):
            raise _Refused(self._not_review(self.state.journal.get(job.id) or job))
        self.state.controls.wake()
        self.state.log.info("storyboard_rendered", job=job.id, token=who, scenes=len(brief.scenes or []))
        return f"{job.id}: rendering the reviewed storyboard"

    def api_render(self, request: Request) -> Response:
        job = self._editable(request)
        if isinstance(job, Response):
            return job
        try:
            message = self._render(job, principal(request).name)
        except (OmadError, _Refused) as e:
            return _json_error(409, str(e))
        return JSONResponse({"id": job.id, "message": message, "url": f"/api/jobs/{job.id}"}, status_code=202)

    def api_library(self, request: Request) -> Response:
        return JSONResponse({"hits": _library_search(self.state, request.query_params.get("q", ""))},
                            headers={"Cache-Control": "no-store"})

    def api_stock(self, request: Request) -> Response:
        job = self._job(request)
        if job is None or job.status is not JobStatus.REVIEW:
            return _json_error(409 if job else 404, self._not_review(job) if job else "no such job.")
        return JSONResponse({"hits": _stock_search(self.state, job, request.query_params.get("q", ""))},
                            headers={"Cache-Control": "no-store"})

    async def api_upload(self, request: Request) -> Response:
        job = self._editable(request)
        if isinstance(job, Response):
            return job
        async with request.form(max_files=1, max_fields=2) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return _json_error(400, "send the picture as the multipart field 'file'.")
            data = await upload.read(_UPLOAD_BYTES + 1)
        try:
            board = board_for(self.state, job)
            name = await run_in_threadpool(board.upload, upload.filename or "", data, _UPLOAD_BYTES)
        except OmadError as e:
            return _json_error(422, str(e))
        return JSONResponse({"picture": f"asset:{name}"}, status_code=201)

    def picture(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return text(404, "no such job\n")
        try:
            board = board_for(self.state, job)
            scenes = board.load().scenes or []
            index = int(request.path_params["index"])
            found = board.picture_of(scenes[index]) if 0 <= index < len(scenes) and scenes[index].image else None
        except (OmadError, ValueError):
            found = None
        if found is None:
            return text(404, "this scene has no picture\n")
        return file_response(request, found, cache="no-cache")

    def preview(self, request: Request) -> Response:
        """Scene n's low-resolution preview with its voice (made on first request in one CPU slot, then kept)."""
        from ..storyboard.preview import make_preview

        job = self._job(request)
        if job is None:
            return text(404, "no such job\n")
        index = request.path_params["index"]
        if not index.isdigit():
            return text(404, "no such scene\n")
        try:
            with self.state.controls.cpu_slot(f"storyboard-preview:{job.id}"):
                path = make_preview(self.state.config, job, board_for(self.state, job), int(index))
        except OmadError as e:
            return text(422, f"the preview could not be made: {e}\n")
        return file_response(request, path, cache="no-cache")

    # ---- page

    def page(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        job = self._job(request)
        if job is None:
            return text(404, "no such job: see / for the status page\n")
        try:
            view = storyboard_view(job, board_for(self.state, job), self.state.config.scenes.padding_seconds)
        except OmadError as e:
            return text(409, f"{e}\n")
        search = request.query_params.get("search")
        words = request.query_params.get("q", "")
        hits = _library_search(self.state, words) if search is not None and words else []
        stock = _stock_search(self.state, job, words) if search is not None and words and view["editable"] else []
        shown = request.query_params.get("preview", "")
        assets = self.state.config.assets
        return self.state.pages.page(request, "storyboard.html", status=status, view=view, error=error,
                                     motions=_MOTIONS, preview=int(shown) if shown.isdigit() else None,
                                     search=int(search) if search and search.isdigit() else None, words=words,
                                     hits=hits, stock=stock,
                                     stock_keys=bool(assets.pexels_key_value() or assets.pixabay_key_value()),
                                     library=bool(assets.library.folders),
                                     nav=nav_for(self.state.auth, principal(request)))

    async def page_post(self, request: Request) -> Response:
        form = await request.form(max_files=MAX_SCENES, max_fields=20 * MAX_SCENES)
        try:
            return await self._page_post(request, form)
        finally:
            await form.close()  # the empty file fields' spooled files too

    async def _page_post(self, request: Request, form: FormData) -> Response:
        if csrf_refused(self.state, request, str(form.get("csrf") or "")):
            return text(403, CSRF_STALE + "\n")
        job = self._job(request)
        if job is None:
            return text(404, "no such job\n")
        if job.status is not JobStatus.REVIEW:
            return self.page(request, self._not_review(job), 409)
        action = str(form.get("action") or "save")
        uploads: dict[int, tuple[str, bytes]] = {}
        verb, _, arg = action.partition(":")
        if verb == "upload":
            f = form.get(f"upload_{arg}")
            if isinstance(f, UploadFile) and f.filename:
                uploads[int(arg) if arg.isdigit() else -1] = (f.filename, await f.read(_UPLOAD_BYTES + 1))

        def act() -> Response:
            board = board_for(self.state, job)
            count = len(board.load().scenes or [])
            scenes = _edit_from_form(form, count)
            where = _position(scenes, arg)
            if verb in ("up", "down") and where is not None:
                other = where - 1 if verb == "up" else where + 1
                if 0 <= other < len(scenes):
                    scenes[where], scenes[other] = scenes[other], scenes[where]
            elif verb == "remove" and where is not None and len(scenes) > 1:
                scenes.pop(where)
            elif verb == "add" and len(scenes) < MAX_SCENES:
                scenes.append({"from": None, "narration": str(form.get("new_narration") or ""),
                               "title": str(form.get("new_title") or "") or None})
            elif verb in ("pick", "pickstock") and where is None:
                index, _, path = arg.partition(":")
                spot = _position(scenes, index)
                if spot is not None:
                    scenes[spot]["picture"] = f"{'library' if verb == 'pick' else 'stock'}:{path}"
            elif verb == "notitle" and where is not None:
                scenes[where]["picture"] = "none"
            elif verb == "upload" and where is not None:
                if int(arg) in uploads:
                    filename, data = uploads[int(arg)]
                    scenes[where]["picture"] = "asset:" + board.upload(filename, data, _UPLOAD_BYTES)
                else:
                    raise _Refused("choose a picture file before pressing Upload.")
            try:
                edit = StoryboardEdit.model_validate({"scenes": [SceneEdit.model_validate(s).model_dump(
                    by_alias=True) for s in scenes]})
            except ValidationError as e:
                first = e.errors()[0]
                raise _Refused(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from e
            board.apply(edit)
            if verb == "render":
                self._render(job, principal(request).name)
                return RedirectResponse(f"/jobs/{job.id}", 303)
            target = f"/jobs/{job.id}/storyboard"
            if verb == "search" and arg.isdigit():
                target += "?" + urlencode({"search": arg, "q": str(form.get(f"q_{arg}") or "")})
            elif verb == "preview" and arg.isdigit():
                target += "?" + urlencode({"preview": arg})
            return RedirectResponse(target + f"#scene-{quote(arg)}" if verb != "search" else target, 303)

        try:
            return await run_in_threadpool(act)
        except (OmadError, _Refused) as e:
            return self.page(request, str(e), 422)


def storyboard_routes(state: AppState) -> list[BaseRoute]:
    h = _Storyboard(state)
    return [
        Route("/api/jobs/{job_id}/storyboard", h.api_get, methods=["GET"]),
        Route("/api/jobs/{job_id}/storyboard", h.api_put, methods=["PUT"]),
        Route("/api/jobs/{job_id}/render", h.api_render, methods=["POST"]),
        Route("/api/jobs/{job_id}/storyboard/library", h.api_library, methods=["GET"]),
        Route("/api/jobs/{job_id}/storyboard/stock", h.api_stock, methods=["GET"]),
        Route("/api/jobs/{job_id}/storyboard/pictures", h.api_upload, methods=["POST"]),
        Route("/jobs/{job_id}/storyboard", h.page, methods=["GET"]),
        Route("/jobs/{job_id}/storyboard", h.page_post, methods=["POST"]),
        Route("/jobs/{job_id}/storyboard/pictures/{index}", h.picture, methods=["GET"]),
        Route("/jobs/{job_id}/storyboard/preview/{index}", h.preview, methods=["GET"]),
    ]


class _Refused(Exception):
    """A page or API request that cannot be done as asked; its message says why."""


def _position(scenes: list[dict[str, Any]], source: str) -> int | None:
    """Where the scene that came from ``source`` now is in the form's list."""
    if not source.isdigit():
        return None
    return next((i for i, s in enumerate(scenes) if s.get("from") == int(source)), None)


def _json_error(status: int, message: str) -> Response:
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers={"Cache-Control": "no-store"})

