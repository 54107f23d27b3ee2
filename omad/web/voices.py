"""The Voices page, ``GET /api/voices`` and each voice's preview sample.

Lists what ``omad voices`` lists, with an ``<audio>`` player per voice. A
preview is synthesised on first request, in a CPU-lane slot like any
narration (so previews never starve jobs of more than one slot), then served
from the state dir's cache (``omad.tts.voices.cached_sample``). The Create
form's voice list comes from the same list. The HTML is ``templates/voices.html``. Voice names are checked against the
installed list before anything is synthesised: a URL cannot make omad speak
with a file of its choosing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import OmadError
from ..tts.voices import SAMPLE_TEXT, cached_sample, list_voices, voice_spec
from .responses import file_response, nav_for, principal, text

if TYPE_CHECKING:
    from .state import AppState

__all__ = ["voice_routes", "sample_url", "voice_spec"]


def sample_url(name: str) -> str:
    """Where a voice's preview sample is served."""
    return f"/voices/{quote(name, safe='')}/sample.wav"


def voice_routes(state: AppState) -> list[BaseRoute]:
    config = state.config

    def voices_page(request: Request) -> Response:
        return state.pages.page(request, "voices.html", voices=list_voices(config), sample_text=SAMPLE_TEXT,
                                sample_url=sample_url, nav=nav_for(state.auth, principal(request)))

    def api_voices(request: Request) -> Response:
        voices = [{**v.to_dict(), "sample_url": sample_url(v.name)} for v in list_voices(config)]
        return JSONResponse({"voices": voices}, headers={"Cache-Control": "no-store"})

    def sample(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in {v.name for v in list_voices(config)}:
            return text(404, f"no installed voice is called {name!r}; see /voices\n")
        try:
            with state.controls.cpu_slot(f"voice-sample:{name}"):
                path = cached_sample(config, name)
        except OmadError as err:
            return text(503, f"the sample of {name} could not be made: {err}\n")
        return file_response(request, path, cache="max-age=3600")

    return [
        Route("/voices", voices_page),
        Route("/api/voices", api_voices),
        Route("/voices/{name}/sample.wav", sample),
    ]
