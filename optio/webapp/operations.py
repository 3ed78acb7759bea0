"""What each route is, as an OpenAPI operation, declared on its view with :func:`operation`.

A view carries its operation id, summary, tag, request body, query, path parameters and answers
(with their pydantic models and links); ``openapi.py`` walks ``app.url_map`` and builds the
document's paths from the views' operations, so a route and its description sit side by side.
The general wording of every error status (``ERRORS``) and the helpers the views share are here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from optio.webapp import schemas

JSON = "application/json"
TEXT = {"type": "string"}
HTML = {"text/html": TEXT}
#: Where a view's operations are kept (a list: a view serving two rules has one for each).
ATTRIBUTE = "openapi_operations"

#: What each error status of the API means, in general (operations say more where it helps).
ERRORS = {
    400: "Bad input: the body, a field or a query parameter (the message says which).",
    401: "Missing or wrong API token (only with OPTIO_API_TOKEN set).",
    403: "Cross-site request refused: a foreign Origin or Referer.",
    404: "Not found.",
    409: "Conflicts with the state of the runs (the message says how).",
    413: "Body larger than 16 KiB (`POST /api/runs`: items too many or too large).",
    415: "A body whose Content-Type is not application/json.",
    503: "Redis does not answer; try again shortly.",
}
#: Errors every state change can answer, besides its own.
CHANGE_ERRORS = (401, 403, 413, 415, 503)
#: Errors every read of the API can answer.
READ_ERRORS = (401, 503)
#: API operations that take the token when OPTIO_API_TOKEN is set (bearer, optional).
TOKEN: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}]
#: The path parameter ``run_id`` of the API.
RUN_ID = {
    "description": "A run's id (12 lowercase hex digits).",
    "schema": {"type": "string", "pattern": schemas.RUN_ID_PATTERN},
}
NO_BODY = (
    "Takes no body (or an empty JSON object); any field is refused with 400. "
    "Send no Content-Type, or application/json."
)

#: A schema in an answer or body: a model, the name of one of ``schemas.request_models`` (whose
#: limits are the app's settings), or a plain JSON Schema.
Schema = type[BaseModel] | str | dict


@dataclass(frozen=True)
class Answer:
    """One response: ``content`` maps each media type to its schema."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    links: Mapping[str, dict] | None = None


@dataclass(frozen=True)
class Body:
    """A required JSON request body and its example. ``model``: one schema, or several that
    the body may be (``oneOf``); ``more``: other media types the body may have instead, each
    with its schema and example as OpenAPI writes them."""

    model: Schema | tuple[Schema, ...]
    example: dict
    more: Mapping[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One operation. ``token``: takes the API token (``security``); ``errors``: error
    statuses answered with ``schemas.Error``, worded by ``said`` or else ``ERRORS``;
    ``on_conflict``: links that resolve a 409. ``params``: the description and schema of each
    path variable of the rule (a string when not given); ``rule``: the one rule (as in
    ``app.url_map``) of the view it describes, when the view serves several."""

    op_id: str
    summary: str
    description: str | None = None
    tag: str = "runs"
    token: bool = True
    body: Body | None = None
    query: type[BaseModel] | None = None
    params: Mapping[str, dict] = field(default_factory=dict)
    answers: Mapping[int, Answer] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    said: Mapping[int, str] = field(default_factory=dict)
    on_conflict: Mapping[str, dict] | None = None
    rule: str | None = None

    def __post_init__(self) -> None:
        if not self.answers and not self.errors:
            raise ValueError(f"{self.op_id}: an operation answers something")

    def __call__(self, view: Callable) -> Callable:
        """Attach this operation to ``view``."""
        if ATTRIBUTE not in vars(view):
            setattr(view, ATTRIBUTE, [])
        getattr(view, ATTRIBUTE).append(self)
        return view

    def all_answers(self) -> dict[int, Answer]:
        """Its answers, its errors included."""
        errors = {
            status: Answer(
                self.said.get(status, ERRORS[status]),
                {JSON: schemas.Error},
                self.on_conflict if status == 409 else None,
            )
            for status in sorted(set(self.errors))
        }
        return {**self.answers, **errors}


#: The decorator that declares a view's operation: ``@operation("getStatus", "...", ...)``.
operation = Operation


def operations_of(view: Callable) -> list[Operation]:
    return list(getattr(view, ATTRIBUTE, ()))


def link(operation_id: str, **parameters: str) -> dict:
    """An OpenAPI link to another operation, with its parameters' runtime expressions."""
    found: dict = {"operationId": operation_id}
    if parameters:
        found["parameters"] = parameters
    return found


def json_answer(description: str, model: Schema, links: Mapping[str, dict] | None = None) -> Answer:
    return Answer(description, {JSON: model}, links)


def state(description: str, links: Mapping[str, dict] | None = None) -> Answer:
    """An answer with the run's state."""
    return json_answer(description, schemas.RunState, links)


def change(
    op_id: str, summary: str, description: str, ok: Answer, *more: int, **options: Any
) -> Operation:
    """A body-less state change (``POST /api/stop`` and the like), answering ``ok`` (200);
    ``more``: error statuses besides 400, 409 and ``CHANGE_ERRORS``."""
    return Operation(
        op_id,
        summary,
        f"{description} {NO_BODY}",
        answers={200: ok},
        errors=(400, 409, *more, *CHANGE_ERRORS),
        **options,
    )


def page(
    op_id: str, summary: str, description: str, media: Mapping[str, dict], *errors: int, **more
) -> Operation:
    """A browser page or file (tag ``pages``, no token): 200 with ``media``, or ``errors``."""
    return Operation(
        op_id,
        summary,
        description,
        tag="pages",
        token=False,
        answers={200: Answer(summary, media)},
        errors=errors,
        **more,
    )


def camel(name: str) -> str:
    """A Flask rule variable as the document names it: ``run_id`` is ``runId``."""
    return re.sub(r"_([a-z0-9])", lambda match: match[1].upper(), name)
