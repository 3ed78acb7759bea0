"""Validation of API requests: pure functions that raise ApiError with a clear message.

The rules are the pydantic models of ``optio.webapp.schemas`` (which the OpenAPI document shows);
this module parses bodies and says what is wrong in our own words."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from optio import config
from optio.webapp.schemas import MAX_RUNS_PAGE, RUN_ID, ResultsQuery, RunsQuery, request_models

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answered to the client as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def number(value: float) -> str:
    """A number as people write it: 1000000.0 → "1,000,000", 1500.5 → "1,500.5"."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.15g}"


def _reject_constant(name: str) -> Any:
    raise ApiError(400, f"body is not valid JSON: {name} is not allowed")


def parse_json_object(raw: bytes, mimetype: str | None, *, required: bool = True) -> dict:
    """Parse a request body that must be a JSON object (empty allowed when not required)."""
    if not raw.strip():
        if required:
            raise ApiError(400, "body is empty: send a JSON object")
        return {}
    if mimetype != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except ApiError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"body is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise ApiError(400, 'body must be a JSON object such as {"x": 100, "y": 60}')
    return body


def _validated(model: type[M], data: Mapping[str, Any], messages: dict) -> M:
    """``data`` checked by ``model``; the first problem as an ApiError in our own words:
    unknown fields first, then missing ones, then each field's value in field order."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _first_message(exc.errors(), messages)) from None


def _first_message(errors: list, messages: dict) -> str:
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return messages["unknown"].format(names=", ".join(unknown)[:200])
    for error in errors:
        if error["type"] == "missing":
            return f"missing field: {error['loc'][0]}"
    error = errors[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    say = messages.get(field)
    return say(error) if say else f"{field}: {error['msg']}"


def _x_message(error: dict) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "greater_than_equal":
        return "x must be at least 1"
    if kind == "less_than_equal":
        return f"x must be at most {number(ctx['le'])}"
    return f"x must be a whole number of jobs, got {_describe(value)}"


def _y_message(max_y: float):
    def say(error: dict) -> str:
        kind, value = error["type"], error.get("input")
        if kind == "finite_number":
            return "y must be a finite number"
        # an integer too large for a float is above any limit too
        too_large = isinstance(value, int) and not isinstance(value, bool)
        if kind == "less_than_equal" or (kind == "float_type" and too_large):
            return f"y must be at most {number(max_y)} jobs per minute"
        if kind == "greater_than":
            return "y must be greater than 0"
        return f"y must be a number of jobs per minute, got {_describe(value)}"

    return say


def _body_messages(max_y: float) -> dict:
    return {"unknown": "unknown field(s): {names}", "x": _x_message, "y": _y_message(max_y)}


def _limits(max_x: int | None, max_y: float | None) -> tuple[int, float]:
    return (
        config.default("max_x") if max_x is None else max_x,
        config.default("max_y") if max_y is None else max_y,
    )


def validate_start(
    body: dict, *, max_x: int | None = None, max_y: float | None = None
) -> tuple[int, float]:
    max_x, max_y = _limits(max_x, max_y)
    start, _ = request_models(max_x, max_y)
    run: Any = _validated(start, body, _body_messages(max_y))  # a model made per limits
    return run.x, run.y


def validate_update(
    body: dict, *, max_x: int | None = None, max_y: float | None = None
) -> tuple[int | None, float | None]:
    max_x, max_y = _limits(max_x, max_y)
    _, update = request_models(max_x, max_y)
    if not body:
        raise ApiError(400, "send x and/or y to change")
    change: Any = _validated(update, body, _body_messages(max_y))
    return change.x, change.y


def validate_x(value: Any, max_x: int | None = None) -> int:
    x, _ = validate_update({"x": value}, max_x=max_x)
    return cast(int, x)  # given, so validated


def validate_y(value: Any, max_y: float | None = None) -> float:
    _, y = validate_update({"y": value}, max_y=max_y)
    return cast(float, y)


def validate_items_body(body: dict, *, max_y: float | None = None) -> tuple[list, float]:
    """``{"items": [...], "y": ...}`` of POST /api/runs: the items (a non-empty JSON array of
    any values; their sizes and number are checked as they are stored) and y."""
    unknown = sorted(set(body) - {"items", "y"})
    if "x" in unknown:
        raise ApiError(400, "send items or x, not both: a run with items has one job per item")
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)[:200]}")
    items = body["items"]
    if not isinstance(items, list):
        raise ApiError(400, f"items must be a JSON array, not {_describe(items)}")
    if not items:
        raise ApiError(400, "no items: send at least one")
    if "y" not in body:
        raise ApiError(400, "missing field: y")
    return items, validate_y(body["y"], max_y)


_QUERY_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def validate_upload_query(args: Mapping[str, str], *, max_y: float | None = None) -> float:
    """y of a streamed upload to POST /api/runs, from the query (``?y=600``), as in a body."""
    unknown = sorted(set(args) - {"y"})
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    if "y" not in args:
        raise ApiError(400, "missing query parameter: y (jobs per minute), e.g. ?y=600")
    text = args["y"]
    if not _QUERY_NUMBER.fullmatch(text):
        raise ApiError(400, f"y must be a number of jobs per minute, got {text[:40]!r}")
    value = float(text)
    return validate_y(int(value) if value.is_integer() and "." not in text else value, max_y)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, float):
        return "a fraction"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return type(value).__name__


def is_run_id(value: str) -> bool:
    return RUN_ID.fullmatch(value) is not None


def _limit_message(error: dict) -> str:
    text = str(error.get("input"))
    return f"limit must be a whole number from 1 to {MAX_RUNS_PAGE}, got {text[:40]!r}"


def _before_message(error: dict) -> str:
    text = str(error.get("input"))
    return f"before must be a run id (12 hex digits), got {text[:40]!r}"


RUNS_QUERY_MESSAGES = {
    "unknown": "unknown query parameter(s): {names}",
    "limit": _limit_message,
    "before": _before_message,
}


def validate_runs_query(args: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` (1..100, default 20) and ``before`` (a run id) of GET /api/runs."""
    query = _validated(RunsQuery, dict(args.items()), RUNS_QUERY_MESSAGES)
    return query.limit, query.before


def _choice_message(name: str, choices: str) -> Any:
    def say(error: dict) -> str:
        return f"{name} must be one of {choices}, got {str(error.get('input'))[:40]!r}"

    return say


RESULTS_QUERY_MESSAGES = {
    "unknown": "unknown query parameter(s): {names}",
    "format": _choice_message("format", "jsonl, csv"),
    "status": _choice_message("status", "finished, processed, failed, all"),
}


def validate_results_query(args: Mapping[str, str]) -> tuple[str, str]:
    """``format`` (jsonl, csv) and ``status`` (finished, processed, failed, all) of
    GET /api/runs/<runId>/results."""
    query = _validated(ResultsQuery, dict(args.items()), RESULTS_QUERY_MESSAGES)
    return query.format, query.status
