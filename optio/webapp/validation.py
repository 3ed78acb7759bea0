"""Validation of API requests: pure functions that raise ApiError with a clear message.

The rules are the pydantic models of ``optio.webapp.schemas`` (which the OpenAPI document shows);
this module parses bodies and says what is wrong in our own words."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from optio import config
from optio.webapp.schemas import (
    MAX_DEADLINE_SECONDS,
    MAX_RUN_IN_FLIGHT,
    MAX_RUNS_PAGE,
    MAX_WEIGHT,
    RUN_ID,
    ResultsQuery,
    RunsQuery,
    request_models,
    terms_model,
)

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


def _weight_message(error: dict) -> str:
    return (
        f"weight must be a number above 0 and at most {MAX_WEIGHT}, "
        f"got {_shown(error.get('input'))}"
    )


def _max_in_flight_message(error: dict) -> str:
    return (
        f"maxInFlight must be a whole number from 1 to {number(MAX_RUN_IN_FLIGHT)}, "
        f"got {_shown(error.get('input'))}"
    )


def _deadline_message(error: dict) -> str:
    return (
        "deadline must be an ISO 8601 time with a timezone (2026-12-05T06:00:00Z) or a "
        f"number of seconds from now, got {_describe(error.get('input'))}"
    )


def _shown(value: Any) -> str:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return repr(value)[:40]
    return _describe(value)


def _body_messages(max_y: float) -> dict:
    return {
        "unknown": "unknown field(s): {names}",
        "x": _x_message,
        "y": _y_message(max_y),
        "deadline": _deadline_message,
        "weight": _weight_message,
        "maxInFlight": _max_in_flight_message,
    }


@dataclass(frozen=True)
class Deadline:
    """A start's deadline as sent: an absolute time (``at_ms``, ms since the epoch) or
    ``in_seconds`` from now (the Redis clock's now: see ``ms``)."""

    at_ms: int | None = None
    in_seconds: float | None = None

    def ms(self, now_ms: int) -> int:
        """The deadline in ms since the epoch, given the Redis clock's ``now_ms``; in the past
        (or now) is an ApiError."""
        if self.at_ms is not None:
            at = self.at_ms
        else:
            assert self.in_seconds is not None
            at = now_ms + round(self.in_seconds * 1000)
        if at <= now_ms:
            raise ApiError(400, "deadline is in the past: give a later time")
        return at


@dataclass(frozen=True)
class Start:
    """What a start asks for: x jobs (None: one per item, counted as they are stored) at y
    jobs/min, or by ``deadline`` (y None); its weight and maxInFlight (0: none)."""

    x: int | None
    y: float | None
    deadline: Deadline | None = None
    weight: float = 1.0
    max_in_flight: int = 0


def parse_deadline(value: float | str) -> Deadline:
    """A deadline field's value (already a number or a string): seconds from now, or an ISO 8601
    time with a timezone."""
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ApiError(
                400,
                "deadline must be an ISO 8601 time with a timezone (2026-12-05T06:00:00Z) or "
                f"a number of seconds from now, got {value[:40]!r}",
            ) from None
        if at.tzinfo is None:
            raise ApiError(400, f"deadline needs a timezone (Z or +01:00, say), got {value[:40]!r}")
        return Deadline(at_ms=round(at.timestamp() * 1000))
    if not math.isfinite(value) or value <= 0:
        raise ApiError(400, "deadline in seconds from now must be a number above 0")
    if value > MAX_DEADLINE_SECONDS:
        raise ApiError(
            400, f"deadline must be at most {number(MAX_DEADLINE_SECONDS)} seconds from now"
        )
    return Deadline(in_seconds=float(value))


def check_deadline_rate(x: int, deadline_ms: int, now_ms: int, max_y: float) -> None:
    """A deadline so near that x jobs would need more than OPTIO_MAX_Y is an ApiError."""
    needed = x * 60_000 / (deadline_ms - now_ms)
    if needed > max_y:
        raise ApiError(
            400,
            f"deadline too near: {number(x)} jobs by then need {number(round(needed, 1))} jobs "
            f"per minute, above the {number(max_y)} allowed (OPTIO_MAX_Y)",
        )


def _start(x: int | None, terms: Any) -> Start:
    """The Start of validated fields ``terms`` (y, deadline, weight, maxInFlight)."""
    if terms.y is not None and terms.deadline is not None:
        raise ApiError(400, "send y or deadline, not both: a deadline run's rate follows from it")
    if terms.y is None and terms.deadline is None:
        raise ApiError(400, "missing field: y (jobs per minute), or a deadline")
    return Start(
        x,
        terms.y,
        None if terms.deadline is None else parse_deadline(terms.deadline),
        1.0 if terms.weight is None else float(terms.weight),
        terms.maxInFlight or 0,
    )


def _limits(max_x: int | None, max_y: float | None) -> tuple[int, float]:
    return (
        config.default("max_x") if max_x is None else max_x,
        config.default("max_y") if max_y is None else max_y,
    )


def validate_start(body: dict, *, max_x: int | None = None, max_y: float | None = None) -> Start:
    """A JSON start: x, and y or deadline, and optionally weight and maxInFlight."""
    max_x, max_y = _limits(max_x, max_y)
    start, _ = request_models(max_x, max_y)
    run: Any = _validated(start, body, _body_messages(max_y))  # a model made per limits
    return _start(run.x, run)


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


#: The fields of a start besides its jobs (an items body's, an upload query's).
TERMS = ("y", "deadline", "weight", "maxInFlight")


def _terms(fields: dict, max_y: float | None, messages: dict | None = None) -> Any:
    max_y = _limits(None, max_y)[1]
    return _validated(terms_model(max_y), fields, {**_body_messages(max_y), **(messages or {})})


def validate_items_body(body: dict, *, max_y: float | None = None) -> tuple[list, Start]:
    """``{"items": [...], "y": ...}`` of POST /api/runs: the items (a non-empty JSON array of
    any values; their sizes and number are checked as they are stored) and the start's terms
    (y or deadline, weight, maxInFlight; x is the number of items)."""
    unknown = sorted(set(body) - {"items", *TERMS})
    if "x" in unknown:
        raise ApiError(400, "send items or x, not both: a run with items has one job per item")
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)[:200]}")
    items = body["items"]
    if not isinstance(items, list):
        raise ApiError(400, f"items must be a JSON array, not {_describe(items)}")
    if not items:
        raise ApiError(400, "no items: send at least one")
    terms = {name: value for name, value in body.items() if name != "items"}
    return items, _start(None, _terms(terms, max_y))


_QUERY_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_QUERY_WHOLE = re.compile(r"[0-9]{1,9}")


def _query_number(name: str, text: str, what: str) -> float | int:
    if not _QUERY_NUMBER.fullmatch(text):
        raise ApiError(400, f"{name} must be {what}, got {text[:40]!r}")
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def validate_upload_query(args: Mapping[str, str], *, max_y: float | None = None) -> Start:
    """The terms of a streamed upload to POST /api/runs, from the query (``?y=600``,
    ``?deadline=3600&weight=2``), as in a body."""
    unknown = sorted(set(args) - set(TERMS))
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    if "y" not in args and "deadline" not in args:
        raise ApiError(
            400, "missing query parameter: y (jobs per minute), e.g. ?y=600, or a deadline"
        )
    fields: dict[str, Any] = {}
    if "y" in args:
        fields["y"] = _query_number("y", args["y"], "a number of jobs per minute")
    if "deadline" in args:
        text = args["deadline"]  # seconds from now, or an ISO time
        fields["deadline"] = float(text) if _QUERY_NUMBER.fullmatch(text) else text
    if "weight" in args:
        fields["weight"] = _query_number("weight", args["weight"], "a number above 0")
    if "maxInFlight" in args:
        text = args["maxInFlight"]
        if not _QUERY_WHOLE.fullmatch(text):
            raise ApiError(400, _max_in_flight_message({"input": text}))
        fields["maxInFlight"] = int(text)
    return _start(None, _terms(fields, max_y, {"unknown": "unknown query parameter(s): {names}"}))


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


def _active_message(error: dict) -> str:
    return f"active must be 1 or 0 (true or false), got {str(error.get('input'))[:40]!r}"


RUNS_QUERY_MESSAGES = {
    "unknown": "unknown query parameter(s): {names}",
    "limit": _limit_message,
    "before": _before_message,
    "active": _active_message,
}


def validate_runs_query(args: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` (1..100, default 20) and ``before`` (a run id) of GET /api/runs."""
    query = _validated(RunsQuery, dict(args.items()), RUNS_QUERY_MESSAGES)
    return query.limit, query.before


def wants_active_runs(args: Mapping[str, str]) -> bool:
    """``?active=1`` of GET /api/runs (checked by validate_runs_query first): only the active
    runs, all of them, so neither ``limit`` nor ``before`` goes with it."""
    active = _validated(RunsQuery, dict(args.items()), RUNS_QUERY_MESSAGES).active
    if active and ({"limit", "before"} & set(args)):
        raise ApiError(400, "active lists every active run: give no limit or before with it")
    return active


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
