"""The OpenAPI 3.1 document of every route the web process serves, and its reference page.

``GET /api/openapi.json`` answers ``document(settings)``; ``GET /api/docs`` renders it as a
plain HTML page (no script, nothing from a CDN). Every schema in it comes from the pydantic
models of ``optio.webapp.schemas``, which also validate the requests, so the document cannot drift
from what the API checks and answers; ``tests/unit/test_openapi.py`` checks that its paths are the
routes Flask serves, both ways.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Flask, jsonify, render_template
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from optio import __version__
from optio.config import Settings
from optio.webapp import apidocs, schemas
from optio.webapp.services import services

REF = "#/components/schemas/{model}"
JSON = "application/json"

DESCRIPTION = """\
Process X jobs at Y jobs per minute, with live progress.

Every error is `{"error": "what is wrong"}` (schema `Error`) with a 4xx status, or 503 when
Redis is down. A `POST`, `PUT`, `DELETE` or `PATCH` whose `Origin` (or, without one, `Referer`)
is neither this server's origin nor listed in `OPTIO_CORS_ORIGINS` is refused with 403, and a
request body must be `application/json` (415) of at most 16 KiB (413). With `OPTIO_API_TOKEN`
set, changes need `Authorization: Bearer <token>` (401), and reads too with
`OPTIO_PROTECT_READS`; `/api/health` and this document stay open.

Live progress is the Socket.IO `progress` event (path `/socket.io/`), whose payload is
`RunState`: every client gets the current state when it connects, then every change."""

#: What each error status of the API means, in general (operations say more where it helps).
ERRORS = {
    400: "Bad input: the body, a field or a query parameter (the message says which).",
    401: "Missing or wrong API token (only with OPTIO_API_TOKEN set).",
    403: "Cross-site request refused: a foreign Origin or Referer.",
    404: "Not found.",
    409: "Conflicts with the state of the runs (the message says how).",
    413: "Body larger than 16 KiB.",
    415: "A body whose Content-Type is not application/json.",
    503: "Redis does not answer; try again shortly.",
}
#: Errors every state change can answer, besides its own.
CHANGE_ERRORS = (401, 403, 413, 415, 503)
#: Errors every read of the API can answer.
READ_ERRORS = (401, 503)
#: API operations that take the token when OPTIO_API_TOKEN is set (bearer, optional).
TOKEN = [{}, {"bearerAuth": []}]
RUN_ID_PARAMETER = {
    "name": "runId",
    "in": "path",
    "required": True,
    "description": "A run's id (12 lowercase hex digits).",
    "schema": {"type": "string", "pattern": schemas.RUN_ID_PATTERN},
}


def _ref(model: type[BaseModel] | str) -> dict:
    return {"$ref": REF.format(model=model if isinstance(model, str) else model.__name__)}


def _json(description: str, model: type[BaseModel] | str, links: dict | None = None) -> dict:
    answer: dict = {"description": description, "content": {JSON: {"schema": _ref(model)}}}
    if links:
        answer["links"] = links
    return answer


def _errors(*statuses: int, **said: str) -> dict:
    """Error answers: ``said`` (``e409="..."``) overrides the general meaning of a status."""
    return {
        str(status): _json(said.get(f"e{status}", ERRORS[status]), schemas.Error)
        for status in sorted(set(statuses))
    }


def _link(operation: str, **parameters: str) -> dict:
    link: dict = {"operationId": operation}
    if parameters:
        link["parameters"] = parameters
    return link


#: Links between operations, for clients and for schemathesis's stateful tests:
#: start → status / detail → update → pause → resume → stop → retry-failed.
RUN_LINKS = {
    "GetStatus": _link("getStatus"),
    "GetRun": _link("getRun", runId="$response.body#/runId"),
    "UpdateRun": _link("updateRun"),
    "PauseRun": _link("pauseRun"),
    "StopRun": _link("stopRun"),
}
ENDED_LINKS = {
    "GetRun": _link("getRun", runId="$response.body#/runId"),
    "RetryFailed": _link("retryFailed", runId="$response.body#/runId"),
    "StartRun": _link("startRun"),
}

#: What resolves a 409 of an operation: stop the run that is in the way, or start one.
CONFLICT_LINKS = {
    "startRun": {"StopRun": _link("stopRun")},
    "retryFailed": {"StopRun": _link("stopRun")},
    "updateRun": {"StartRun": _link("startRun")},
    "stopRun": {"StartRun": _link("startRun")},
    "pauseRun": {"ResumeRun": _link("resumeRun"), "StartRun": _link("startRun")},
    "resumeRun": {"PauseRun": _link("pauseRun"), "StartRun": _link("startRun")},
}


def _with_conflict_links(paths: dict) -> dict:
    for item in paths.values():
        for operation in item.values():
            links = CONFLICT_LINKS.get(operation["operationId"])
            if links:
                operation["responses"]["409"] = {**operation["responses"]["409"], "links": links}
    return paths


def _state(description: str, links: dict | None = None) -> dict:
    return _json(description, schemas.RunState, links)


def _body(model: type[BaseModel], example: dict) -> dict:
    return {
        "required": True,
        "content": {JSON: {"schema": _ref(model), "example": example}},
    }


NO_BODY = (
    "Takes no body (or an empty JSON object); any field is refused with 400. "
    "Send no Content-Type, or application/json."
)


def _change(op_id: str, summary: str, description: str, ok: dict, *more: int, **said: str) -> dict:
    """A body-less state change (``POST /api/stop`` and the like); ``more``: error statuses
    besides 400, 409 and CHANGE_ERRORS."""
    statuses = sorted({400, 409, *more, *CHANGE_ERRORS})
    return {
        "operationId": op_id,
        "summary": summary,
        "description": f"{description} {NO_BODY}",
        "tags": ["runs"],
        "security": TOKEN,
        "responses": {"200": ok, **_errors(*statuses, **said)},
    }


def _page(op_id: str, summary: str, description: str, media: dict, *errors: int) -> dict:
    content = {media_type: {"schema": schema} for media_type, schema in media.items()}
    return {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "tags": ["pages"],
        "responses": {"200": {"description": summary, "content": content}, **_errors(*errors)},
    }


TEXT = {"type": "string"}
HTML = {"text/html": TEXT}
HTML_CONTENT = {"text/html": {"schema": TEXT}}


def _paths(start: type[BaseModel], update: type[BaseModel]) -> dict:
    runs_query = schemas.RunsQuery.model_json_schema()
    return {
        "/api/run": {
            "post": {
                "operationId": "startRun",
                "summary": "Start a run of x jobs at y jobs per minute",
                "description": "Two concurrent starts start exactly one run.",
                "tags": ["runs"],
                "security": TOKEN,
                "requestBody": _body(start, {"x": 100, "y": 60}),
                "responses": {
                    "201": _state("The new run's state.", RUN_LINKS),
                    **_errors(
                        400,
                        409,
                        *CHANGE_ERRORS,
                        e409="A run is already running or paused: stop it first.",
                    ),
                },
            },
            "put": {
                "operationId": "updateRun",
                "summary": "Change the running or paused run's total and/or rate",
                "description": "A new rate applies from the next tick.",
                "tags": ["runs"],
                "security": TOKEN,
                "requestBody": _body(update, {"y": 120}),
                "responses": {
                    "200": _state("The run's state.", RUN_LINKS),
                    **_errors(
                        400,
                        409,
                        *CHANGE_ERRORS,
                        e400="Bad input, or x below the jobs already enqueued.",
                        e409="No run is running.",
                    ),
                },
            },
        },
        "/api/stop": {
            "post": _change(
                "stopRun",
                "Stop the running or paused run",
                "Ends enqueuing at once; jobs already running finish and are counted.",
                _state("The stopped run's state.", ENDED_LINKS),
                e409="No run is running.",
            )
        },
        "/api/pause": {
            "post": _change(
                "pauseRun",
                "Pause the running run",
                "No job of the run starts from now on; jobs in the broker are parked.",
                _state(
                    "The run's state (`status` `paused`).",
                    {"ResumeRun": _link("resumeRun"), "StopRun": _link("stopRun")},
                ),
                e409="No run is running, or it is paused already.",
            )
        },
        "/api/resume": {
            "post": _change(
                "resumeRun",
                "Resume the paused run",
                "Goes on at rate y from now, with no catch-up burst; parked jobs are sent again.",
                _state("The run's state.", RUN_LINKS),
                e409="No run is paused.",
            )
        },
        "/api/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "The state of the latest run",
                "description": "The idle state (`status` `idle`) before the first run.",
                "tags": ["runs"],
                "security": TOKEN,
                "responses": {
                    "200": _state(
                        "The latest run's state.",
                        {name: link for name, link in RUN_LINKS.items() if name != "GetStatus"},
                    ),
                    **_errors(*READ_ERRORS),
                },
            }
        },
        "/api/runs": {
            "get": {
                "operationId": "listRuns",
                "summary": "The run history, newest first",
                "description": "Pass `next` as `before` for the next page.",
                "tags": ["runs"],
                "security": TOKEN,
                "parameters": [
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": schema.pop("description", ""),
                        "schema": {k: v for k, v in schema.items() if k != "title"},
                    }
                    for name, schema in runs_query["properties"].items()
                ],
                "responses": {
                    "200": _json(
                        "One page of runs.",
                        schemas.RunsPage,
                        {
                            "GetRun": _link("getRun", runId="$response.body#/runs/0/runId"),
                            "NextPage": _link("listRuns", before="$response.body#/next"),
                        },
                    ),
                    **_errors(
                        400,
                        *READ_ERRORS,
                        e400="A bad `limit` or `before`, an unknown `before` or parameter.",
                    ),
                },
            }
        },
        "/api/runs/{runId}": {
            "get": {
                "operationId": "getRun",
                "summary": "One run, with the errors of its failed jobs and its webhook",
                "tags": ["runs"],
                "security": TOKEN,
                "parameters": [RUN_ID_PARAMETER],
                "responses": {
                    "200": _json(
                        "The run's state, its job errors and webhook error.",
                        schemas.RunDetail,
                        {"RetryFailed": ENDED_LINKS["RetryFailed"]},
                    ),
                    **_errors(404, *READ_ERRORS, e404="No such run (or it expired)."),
                },
            }
        },
        "/api/runs/{runId}/retry-failed": {
            "post": {
                **_change(
                    "retryFailed",
                    "Run a completed run's failed jobs again",
                    "The run is `running` again and completes again when every job is done.",
                    _state("The run's state (`running` again).", RUN_LINKS),
                    404,
                    e404="No such run (or it expired).",
                    e409="Another run is active, the run did not complete, or has no failed jobs.",
                ),
                "parameters": [RUN_ID_PARAMETER],
            }
        },
        "/api/health": {
            "get": {
                "operationId": "getHealth",
                "summary": "What the system needs to make progress",
                "description": "Redis answers, a worker and a beat have a live heartbeat, and a "
                "tick ran within OPTIO_HEALTH_TICK_MAX_AGE seconds. Never needs a token.",
                "tags": ["system"],
                "responses": {
                    "200": _json("All is well.", schemas.Health),
                    "503": _json("What is wrong, in `error`.", schemas.Health),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "tags": ["system"],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/api/docs": {"get": _page("getDocs", "This document as a page", "", HTML)},
        "/": {"get": _page("dashboard", "The dashboard", "Start, change and watch runs.", HTML)},
        "/runs/": {
            "get": {
                "operationId": "runPageWithoutId",
                "summary": "No run named: the not-found page",
                "tags": ["pages"],
                "responses": {
                    "404": {"description": "The not-found page.", "content": HTML_CONTENT}
                },
            }
        },
        "/runs/{runId}": {
            "get": {
                "operationId": "runPage",
                "summary": "A run's page",
                "description": "Its state, errors and Retry failed (read from `/api/runs/{runId}` "
                "by the page's script). Anything that is not a run id gets the not-found page.",
                "tags": ["pages"],
                "parameters": [{**RUN_ID_PARAMETER, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The run's page.", "content": HTML_CONTENT},
                    "404": {
                        "description": "Not a run id: the not-found page.",
                        "content": HTML_CONTENT,
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "description": "Runs, job totals and run times, heartbeats, tick age, and this "
                "web process's Socket.IO and relay counters, in the Prometheus text format. "
                "Needs the token with OPTIO_PROTECT_READS.",
                "tags": ["system"],
                "security": TOKEN,
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": TEXT}},
                    },
                    **_errors(*READ_ERRORS),
                },
            }
        },
        "/{name}": {
            "get": {
                **_page(
                    "testClient",
                    "The HTML test client",
                    "The page and its script and style (README, method 1).",
                    {"text/html": TEXT, "text/javascript": TEXT, "text/css": TEXT},
                    404,
                ),
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": [
                                "test-websocket.html",
                                "test-websocket.js",
                                "test-websocket.css",
                            ],
                        },
                    }
                ],
            }
        },
        "/vendor/{name}": {
            "get": {
                **_page(
                    "vendor",
                    "The socket.io browser client",
                    "Copied into the package from npm at build time; 503 when it is missing.",
                    {"text/javascript": TEXT, JSON: {}},
                    404,
                    503,
                ),
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "examples": ["socket.io.min.js"]},
                    }
                ],
            }
        },
        "/static/{filename}": {
            "get": {
                **_page(
                    "static",
                    "The dashboard's script and style",
                    "",
                    {"text/javascript": TEXT, "text/css": TEXT, "text/html": TEXT, JSON: {}},
                    404,
                ),
                "parameters": [
                    {
                        "name": "filename",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "examples": ["dashboard.js"]},
                    }
                ],
            }
        },
    }


@functools.cache
def document(max_x: int, max_y: float) -> dict[str, Any]:
    """The OpenAPI document of an app whose limits are ``max_x`` and ``max_y``."""
    start, update = schemas.request_models(max_x, max_y)
    _, components = models_json_schema(
        [
            (start, "validation"),
            (update, "validation"),
            (schemas.RunState, "serialization"),
            (schemas.RunDetail, "serialization"),
            (schemas.RunsPage, "serialization"),
            (schemas.Health, "serialization"),
            (schemas.Error, "serialization"),
        ],
        ref_template=REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "optio", "version": __version__, "description": DESCRIPTION},
        "tags": [
            {"name": "runs", "description": "Start, change, stop and read runs."},
            {"name": "system", "description": "Health and this document."},
            {"name": "pages", "description": "Browser pages and their files."},
        ],
        "paths": _with_conflict_links(_paths(start, update)),
        "components": {
            "schemas": components["$defs"],
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "OPTIO_API_TOKEN, when set.",
                }
            },
        },
    }


def for_settings(settings: Settings) -> dict[str, Any]:
    return document(settings.max_x, settings.max_y)


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(for_settings(services().settings))


@bp.get("/api/docs")
def docs():
    return render_template("api-docs.html", page=apidocs.page(for_settings(services().settings)))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
