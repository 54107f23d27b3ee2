"""The Voices page, ``GET /api/voices`` and each voice's preview sample.

Lists what ``omad voices`` lists, with an ``<audio>`` player per voice. A
preview is synthesised on first request, in a CPU-lane slot like any
narration (so previews never starve jobs of more than one slot), then served
from the state dir's cache (``omad.tts.voices.cached_sample``). The Create
form's voice list comes from here too. Voice names are checked against the
installed list before anything is synthesised: a URL cannot make omad speak
with a file of its choosing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import OmadError
from ..lanes import Lane
from ..tts.voices import SAMPLE_TEXT, VoiceEntry, cached_sample, list_voices, voice_spec
from .page import e, layout
from .responses import file_response, html_page, nav_for, principal, text

if TYPE_CHECKING:
    from ..config import Config
    from .server import StatusServer

__all__ = ["voice_routes", "render_voices_page", "voice_options", "voice_spec"]


def voice_options(config: Config, selected: str = "") -> str:
    """``<option>``s of the installed voices for the Create form (the first: the configured default)."""
    out = ['<option value="">default (tts.engine)</option>']
    for v in list_voices(config):
        sel = " selected" if v.name == selected else ""
        label = f"{v.name} ({v.engine}, {v.language}{', ' + v.quality if v.quality else ''})"
        out.append(f'<option value="{e(v.name)}"{sel}>{e(label)}</option>')
    return "".join(out)


def _sample_url(v: VoiceEntry) -> str:
    return f"/voices/{quote(v.name, safe='')}/sample.wav"


def render_voices_page(voices: list[VoiceEntry], nav: dict[str, Any]) -> str:
    rows = []
    for v in voices:
        size = f"{v.size_bytes / 2**20:.1f} MB" if v.size_bytes else "-"
        speakers = ", ".join(v.speakers) if v.speakers else "1"
        rows.append(
            f'<tr class="voice" data-voice="{e(v.name)}"><td><b>{e(v.name)}</b></td><td>{e(v.engine)}</td>'
            f"<td>{e(v.language)}</td><td>{e(v.quality)}</td><td>{e(size)}</td><td>{int(v.sample_rate)}</td>"
            f"<td>{e(speakers)}</td><td>{e(v.licence or '-')}</td>"
            f'<td><audio class="preview" controls preload="none" src="{e(_sample_url(v))}"></audio></td></tr>')
    has_piper = any(v.engine == "piper" for v in voices)
    hint = "" if has_piper else (
        '<p class="meta" id="no-piper">No Piper voice is installed. <code>omad models pull '
        "piper:pt_BR-faber-medium</code> gets a natural pt-BR voice (it needs the omad[piper] extra).</p>")
    body = (
        "<h1>Voices</h1>" + hint +
        f'<p class="meta">Each preview says: “{e(SAMPLE_TEXT)}” It is made on the CPU the first time it is '
        "played, then kept. A brief picks a voice with <code>voice: {name: ...}</code>, a scene with "
        "<code>voice: NAME</code>.</p>"
        '<table id="voices"><tr><th>voice</th><th>engine</th><th>language</th><th>quality</th><th>size</th>'
        f'<th>rate</th><th>speakers</th><th>licence</th><th>preview</th></tr>{"".join(rows)}</table>')
    return layout("omad voices", body, nav)


def voice_routes(server: StatusServer) -> list[BaseRoute]:
    daemon = server.daemon

    def voices_page(request: Request) -> Response:
        return html_page(render_voices_page(list_voices(daemon.config), nav_for(server, principal(request))))

    def api_voices(request: Request) -> Response:
        voices = [{**v.to_dict(), "sample_url": _sample_url(v)} for v in list_voices(daemon.config)]
        return JSONResponse({"voices": voices}, headers={"Cache-Control": "no-store"})

    def sample(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in {v.name for v in list_voices(daemon.config)}:
            return text(404, f"no installed voice is called {name!r}; see /voices\n")
        try:
            with daemon.lanes.lane(Lane.CPU).slot(f"voice-sample:{name}"):
                path = cached_sample(daemon.config, name)
        except OmadError as err:
            return text(503, f"the sample of {name} could not be made: {err}\n")
        return file_response(request, path, cache="max-age=3600")

    return [
        Route("/voices", voices_page),
        Route("/api/voices", api_voices),
        Route("/voices/{name}/sample.wav", sample),
    ]
