"""The OpenAPI 3.1 document of every route the web process serves, and its reference page.

``GET /api/openapi.json`` answers ``document(app)``, derived from the app: its paths are the
rules of ``app.url_map`` (``<run_id>`` becomes ``{runId}``), each method the operation its view
declares with ``@operation`` (``operations.py``), and its schemas the pydantic models those
operations name (``schemas.py``, which also validate the requests), so the document cannot drift
from the routes nor from what the API checks and answers. A route whose view declares no
operation is an error (``UndocumentedRoutes``). ``GET /api/docs`` renders the document as a plain
HTML page (no script, nothing from a CDN).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from optio import __version__
from optio.webapp import apidocs, schemas
from optio.webapp.operations import (
    HTML,
    JSON,
    TEXT,
    TOKEN,
    Answer,
    Body,
    Operation,
    Schema,
    camel,
    json_answer,
    operation,
    operations_of,
    page,
)

REF = "#/components/schemas/{model}"
#: The methods that are operations (HEAD and OPTIONS are Flask's own).
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
#: A variable of a Flask rule: ``<run_id>``, ``<path:filename>``, ``<any('a', 'b'):name>``.
VARIABLE = re.compile(r"<(?:[^>]*:)?(\w+)>")

DESCRIPTION = """\
Process X jobs at Y jobs per minute, with live progress.

Every error is `{"error": "what is wrong"}` (schema `Error`) with a 4xx status, or 503 when
Redis is down. A `POST`, `PUT`, `DELETE` or `PATCH` whose `Origin` (or, without one, `Referer`)
is neither this server's origin nor listed in `OPTIO_CORS_ORIGINS` is refused with 403, and a
request body must be `application/json` (415) of at most 16 KiB (413), except the items of
`POST /api/runs`: a JSON body of up to 16 MiB, or a stream of NDJSON or CSV of any length.
With `OPTIO_API_TOKEN` set, changes need `Authorization: Bearer <token>` (401), and reads too with
`OPTIO_PROTECT_READS`; `/api/health` and this document stay open.

Live progress is the Socket.IO `progress` event (path `/socket.io/`), whose payload is
`RunState`: every client gets the current state when it connects, then every change."""

TAGS = [
    {"name": "runs", "description": "Start, change, stop and read runs."},
    {"name": "system", "description": "Health and this document."},
    {"name": "pages", "description": "Browser pages and their files."},
]
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "OPTIO_API_TOKEN, when set."}
}


class UndocumentedRoutes(LookupError):
    """Routes whose view declares no operation for them, or more than one."""


def _operation(rule: Rule, view) -> Operation | None:
    declared = operations_of(view)
    found = [op for op in declared if op.rule == rule.rule] or [
        op for op in declared if op.rule is None
    ]
    return found[0] if len(found) == 1 else None


def _routes(app: Flask) -> Iterator[tuple[Rule, str, Operation | None]]:
    """Every (rule, method) Flask serves, in the order of ``app.url_map``, with its operation."""
    for rule in app.url_map.iter_rules():
        found = _operation(rule, app.view_functions[rule.endpoint])
        for method in METHODS:
            if method in (rule.methods or ()):
                yield rule, method, found


def undocumented(app: Flask) -> list[str]:
    """The routes of ``app`` without exactly one operation, as ``"GET /rule"``."""
    return [f"{method} {rule.rule}" for rule, method, found in _routes(app) if found is None]


def operations(app: Flask) -> list[tuple[Rule, str, Operation]]:
    """Every (rule, method) of ``app`` with its operation; ``UndocumentedRoutes`` names every
    route without one."""
    missing = undocumented(app)
    if missing:
        raise UndocumentedRoutes(f"routes without an @operation: {', '.join(missing)}")
    return [(rule, method, found) for rule, method, found in _routes(app) if found is not None]


def path_of(rule: Rule) -> str:
    """The OpenAPI path of a Flask rule: ``/api/runs/<run_id>`` is ``/api/runs/{runId}``."""
    return VARIABLE.sub(lambda match: "{" + camel(match[1]) + "}", rule.rule)


class _Builder:
    """Renders operations, collecting the models they name for ``components``."""

    def __init__(self, request_models: dict[str, type[BaseModel]]) -> None:
        self.request_models = request_models
        self.models: dict[type[BaseModel], JsonSchemaMode] = {}

    def schema(self, schema: Schema, mode: JsonSchemaMode) -> dict:
        if isinstance(schema, dict):
            return schema
        model = self.request_models[schema] if isinstance(schema, str) else schema
        self.models.setdefault(model, mode)
        return {"$ref": REF.format(model=model.__name__)}

    def answer(self, answer: Answer) -> dict:
        rendered: dict = {"description": answer.description}
        if answer.content:
            rendered["content"] = {
                media: {"schema": self.schema(schema, "serialization")}
                for media, schema in answer.content.items()
            }
        if answer.links:
            rendered["links"] = dict(answer.links)
        return rendered

    def body(self, body: Body) -> dict:
        models = body.model if isinstance(body.model, tuple) else (body.model,)
        found = [self.schema(model, "validation") for model in models]
        schema = found[0] if len(found) == 1 else {"oneOf": found}
        content = {JSON: {"schema": schema, "example": body.example}, **body.more}
        return {"required": True, "content": content}

    def operation(self, op: Operation, rule: Rule) -> dict:
        rendered: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary}
        if op.description is not None:
            rendered["description"] = op.description
        rendered["tags"] = [op.tag]
        if op.token:
            rendered["security"] = TOKEN
        parameters = _path_parameters(op, rule) + _query_parameters(op.query)
        if parameters:
            rendered["parameters"] = parameters
        if op.body:
            rendered["requestBody"] = self.body(op.body)
        rendered["responses"] = {
            str(status): self.answer(answer) for status, answer in op.all_answers().items()
        }
        return rendered

    def components(self) -> dict:
        _, found = models_json_schema(list(self.models.items()), ref_template=REF)
        return found["$defs"]


def _path_parameters(op: Operation, rule: Rule) -> list[dict]:
    names = VARIABLE.findall(rule.rule)
    unknown = set(op.params) - set(names)
    if unknown:
        raise ValueError(f"{op.op_id}: {sorted(unknown)} are not variables of {rule.rule}")
    return [
        {
            "name": camel(name),
            "in": "path",
            "required": True,
            **op.params.get(name, {"schema": TEXT}),
        }
        for name in names
    ]


def _query_parameters(query: type[BaseModel] | None) -> list[dict]:
    if query is None:
        return []
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": schema.pop("description", ""),
            "schema": {k: v for k, v in schema.items() if k != "title"},
        }
        for name, schema in query.model_json_schema()["properties"].items()
    ]


def build(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes, for its settings' limits."""
    settings = app.extensions["optio"].settings
    request_models = (
        *schemas.request_models(settings.max_x, settings.max_y),
        schemas.items_model(settings.max_y),
    )
    builder = _Builder({model.__name__: model for model in request_models})
    paths: dict[str, dict] = {}
    for rule, method, found in operations(app):
        paths.setdefault(path_of(rule), {})[method.lower()] = builder.operation(found, rule)
    return {
        "openapi": "3.1.0",
        "info": {"title": "optio", "version": __version__, "description": DESCRIPTION},
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": builder.components(), "securitySchemes": SECURITY_SCHEMES},
    }


def document(app: Flask) -> dict[str, Any]:
    """``build(app)``, built once per app (with its first request, once every route is there)."""
    built = app.extensions.get("openapi")
    if built is None:
        built = app.extensions["openapi"] = build(app)
    return built


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
@operation(
    "getOpenApi",
    "This document",
    tag="system",
    token=False,
    answers={200: json_answer("The OpenAPI 3.1 document.", {"type": "object"})},
)
def openapi_json():
    return jsonify(document(current_app))


@bp.get("/api/docs")
@page("getDocs", "This document as a page", "", HTML)
def docs():
    return render_template("api-docs.html", page=apidocs.page(document(current_app)))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
