"""The REST API's OpenAPI 3.1 schema, written out by hand next to the routes it describes.

A test compares it with the routes the app serves, so neither can change alone.
What a submission may say is derived: the routes, the Create form's fields and
the brief schemas come from :mod:`omad.routes` and the brief models, so a
registered route shows here without an edit (:func:`openapi_schema`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from ..brief import brief_models
from ..journal import JobStatus
from ..routes import ROUTES

__all__ = ["OPENAPI", "openapi_schema"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}
_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_ERRORS = {"400": _resp("a field is wrong; 'field' names it", _ERROR),
           "401": _resp("no token, or an unknown one", _ERROR), "403": _resp("a revoked token", _ERROR)}

def _briefs() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``Brief`` schema (one of the brief models, by ``kind``) and the schemas it refers to."""
    models = brief_models()
    refs, defs = models_json_schema([(m, "validation") for m in models.values()],
                                    ref_template="#/components/schemas/{model}")
    brief = {"oneOf": [refs[(m, "validation")] for m in models.values()],
             "discriminator": {"propertyName": "kind"}}
    return brief, dict(defs.get("$defs", {}))


def _form() -> dict[str, Any]:
    from .submit import form_fields

    props: dict[str, Any] = {k: {"type": "string"} for k in form_fields()}
    props["kind"] = {"type": "string", "enum": list(brief_models()), "description": "the brief's kind; the other "
                     "fields are the Create form's, and uploaded files fill the brief's files by their type"}
    return props


def openapi_schema() -> dict[str, Any]:
    """The schema as the table stands now (a route or brief registered at start-up included)."""
    brief, defs = _briefs()
    out: dict[str, Any] = json.loads(json.dumps(_SCHEMA))
    out["components"]["schemas"].update({**defs, "Brief": brief})
    jobs = out["paths"]["/api/jobs"]
    jobs["get"]["parameters"][1]["schema"]["enum"] = sorted(ROUTES)
    body = jobs["post"]["requestBody"]["content"]
    body["multipart/form-data"]["schema"]["properties"].update(_form())
    body["application/json"]["schema"] = {"$ref": "#/components/schemas/Brief"}
    out["paths"].update(_storyboard_paths(out["components"]["schemas"]))
    return out


_SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "omad", "version": "1",
             "description": "Submit drops to omad and follow their jobs. Authenticate with 'Authorization: "
                            "Bearer TOKEN' (`omad token add NAME`)."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "status"],
                      "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                                     "field": {"type": "string"}}},
            "Stage": {"type": "object", "properties": {
                "name": {"type": "string"}, "status": {"type": "string"}, "lane": {"type": ["string", "null"]},
                "attempt": {"type": "integer"}, "started_at": {"type": ["string", "null"]},
                "finished_at": {"type": ["string", "null"]}, "seconds": {"type": ["number", "null"]}}},
            "Job": {"type": "object", "required": ["id", "status", "route"], "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "route": {"type": "string"},
                "status": {"type": "string", "enum": [s.value for s in JobStatus]},
                "stage": {"type": ["string", "null"]}, "progress": {"type": "number"},
                "stages": {"type": "array", "items": {"$ref": "#/components/schemas/Stage"}},
                "outputs": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "url": {"type": "string"}, "kind": {"type": "string"}}}},
                "error": {"type": ["object", "null"], "properties": {
                    "message": {"type": "string"}, "what_to_do": {"type": "string"}, "kind": {"type": "string"}}},
                "cost": {"type": "object"}}},
            "Submitted": {"type": "object", "required": ["submission", "url"], "properties": {
                "submission": {"type": "string"}, "id": {"type": ["string", "null"]},
                "status": {"type": "string"}, "duplicate": {"type": "boolean"}, "url": {"type": "string"},
                "page": {"type": "string"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/jobs": {
            "get": {"summary": "List jobs, newest first", "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string"},
                 "description": "comma-separated statuses"},
                {"name": "route", "in": "query", "schema": {"type": "string", "enum": sorted(ROUTES)}},
                {"name": "since", "in": "query", "schema": {"type": "string"},
                 "description": "ISO 8601 time or Unix seconds"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100}}],
                "responses": {"200": _resp("jobs", {"type": "object", "properties": {
                    "jobs": {"type": "array", "items": _JOB}}}), **_ERRORS}},
            "post": {"summary": "Submit files and/or a brief; they go through the inbox like any drop",
                     "requestBody": {"content": {
                         "multipart/form-data": {"schema": {"type": "object", "properties": {
                             "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                             "brief": {"type": "string", "description": "a brief as JSON"}}}},
                         "application/json": {"schema": {"type": "object", "description": "a brief"}}}},
                     "responses": {"202": _resp("accepted; follow 'url'", {"$ref":
                                                                          "#/components/schemas/Submitted"}),
                                   "411": _resp("no Content-Length", _ERROR),
                                   "409": _resp("a file of that name is waiting in the inbox", _ERROR),
                                   "413": _resp("larger than web.max_upload_mb", _ERROR),
                                   "415": _resp("neither multipart nor JSON", _ERROR),
                                   "429": _resp("web.submit_per_minute reached; see Retry-After", _ERROR),
                                   **_ERRORS}},
        },
        "/api/jobs/{job_id}": {"get": {"summary": "One job: stages, progress, outputs, error and what to do",
                                       "parameters": _ID, "responses": {"200": _resp("the job", _JOB),
                                                                        "404": _resp("no such job", _ERROR)}}},
        "/api/jobs/{job_id}/retry": {"post": {"summary": "Retry a failed job (its inputs go back to the inbox)",
                                              "parameters": _ID, "responses": {
                                                  "202": _resp("retrying"), "404": _resp("no such job", _ERROR),
                                                  "409": _resp("not failed, or inputs gone", _ERROR)}}},
        "/api/jobs/{job_id}/cancel": {"post": {"summary": "Cancel a job; its inputs go to outbox/failed/ for a "
                                                          "later retry", "parameters": _ID, "responses": {
                                                   "202": _resp("cancelled, or cancelling"),
                                                   "404": _resp("no such job", _ERROR),
                                                   "409": _resp("already finished", _ERROR)}}},
        "/api/submissions/{sid}": {"get": {"summary": "A submission, and its job once journaled",
                                           "parameters": [{"name": "sid", "in": "path", "required": True,
                                                           "schema": {"type": "string"}}],
                                           "responses": {"200": _resp("the submission", {
                                               "$ref": "#/components/schemas/Submitted"})}}},
        "/api/jobs/{job_id}/priority": {"post": {
            "summary": "Set a job's priority (higher first): low, normal, high or an integer",
            "parameters": _ID,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["priority"],
                "properties": {"priority": {"oneOf": [{"type": "string", "enum": ["low", "normal", "high"]},
                                                      {"type": "integer"}]}}}}}},
            "responses": {"202": _resp("set"), "400": _resp("not a priority", _ERROR),
                          "404": _resp("no such job", _ERROR)}}},
        "/api/queue": {"get": {"summary": "The queue's controls: paused or not, the lanes' windows, why jobs wait",
                               "responses": {"200": _resp("the controls")}}},
        "/api/queue/pause": {"post": {
            "summary": "Pause the queue: no new stage starts; with now, running stages go back to the queue too",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"now": {"type": "boolean", "default": False}}}}}},
            "responses": {"202": _resp("paused"), "400": _resp("a bad body", _ERROR)}}},
        "/api/queue/resume": {"post": {"summary": "Resume a paused queue", "responses": {"202": _resp("resumed")}}},
        "/api/status": {"get": {"summary": "The status page as JSON", "responses": {"200": _resp("status")}}},
        "/api/analytics": {"get": {"summary": "The analytics page as JSON: per UTC day and per route",
                                   "parameters": [{"name": "days", "in": "query",
                                                   "schema": {"type": "integer", "default": 30}}],
                                   "responses": {"200": _resp("figures")}}},
        "/api/voices": {"get": {"summary": "Installed narration voices (Piper, espeak-ng) and their preview URLs",
                                "responses": {"200": _resp("voices", {"type": "object", "properties": {
                                    "voices": {"type": "array", "items": {"type": "object", "properties": {
                                        "name": {"type": "string"}, "engine": {"type": "string"},
                                        "language": {"type": "string"}, "quality": {"type": "string"},
                                        "size_bytes": {"type": "integer"}, "sample_rate": {"type": "integer"},
                                        "speakers": {"type": "array", "items": {"type": "string"}},
                                        "licence": {"type": "string"}, "sample_url": {"type": "string"}}}}}})}}},
    },
}


def _storyboard_paths(schemas: dict[str, Any]) -> dict[str, Any]:
    """The storyboard of a job waiting for review (omad.web.storyboard); its edit schema from the pydantic model."""
    from ..storyboard.board import StoryboardEdit

    schema = StoryboardEdit.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["StoryboardEdit"] = schema
    edit = {"$ref": "#/components/schemas/StoryboardEdit"}
    return {
        "/api/jobs/{job_id}/storyboard": {
            "get": {"summary": "A video job's storyboard: every scene's narration, title, picture, motion, "
                               "duration and voice", "parameters": _ID,
                    "responses": {"200": _resp("the storyboard"), "404": _resp("no such video job", _ERROR)}},
            "put": {"summary": "Replace the scenes of a job waiting for review (edit, reorder, remove, add, swap "
                               "pictures); texts pass the guardrails", "parameters": _ID,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": edit}}},
                    "responses": {"200": _resp("the storyboard as saved"), "400": _resp("not a StoryboardEdit", _ERROR),
                                  "409": _resp("not waiting for review", _ERROR),
                                  "422": _resp("refused: guardrails, a missing picture", _ERROR)}}},
        "/api/jobs/{job_id}/render": {"post": {
            "summary": "Render the reviewed storyboard: the job goes back to the queue", "parameters": _ID,
            "responses": {"202": _resp("queued"), "404": _resp("no such job", _ERROR),
                          "409": _resp("not waiting for review", _ERROR)}}},
        "/api/jobs/{job_id}/storyboard/library": {"get": {
            "summary": "Search the picture library by words (for picture: 'library:PATH')",
            "parameters": [*_ID, {"name": "q", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _resp("hits")}}},
        "/api/jobs/{job_id}/storyboard/stock": {"get": {
            "summary": "Search Pexels/Pixabay (a key set, privacy allowing) for a photo; the best of each site is "
                       "downloaded into the stock cache (for picture: 'stock:PATH')",
            "parameters": [*_ID, {"name": "q", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _resp("hits, or a site's error"), "409": _resp("not waiting for review", _ERROR)}}},
        "/api/jobs/{job_id}/storyboard/pictures": {"post": {
            "summary": "Upload a picture (multipart field 'file') for picture: 'asset:NAME'", "parameters": _ID,
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}},
            "responses": {"201": _resp("kept"), "409": _resp("not waiting for review", _ERROR),
                          "422": _resp("not a picture omad takes", _ERROR)}}},
    }



OPENAPI: dict[str, Any] = openapi_schema()
