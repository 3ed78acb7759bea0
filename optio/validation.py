"""Validation of API request bodies: pure functions that raise ApiError with a clear message."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from optio import config


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


def _check_fields(body: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(map(str, unknown))[:200]}")


def validate_x(value: Any, max_x: int | None = None) -> int:
    max_x = config.MAX_X if max_x is None else max_x
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"x must be a whole number of jobs, got {_describe(value)}")
    if value < 1:
        raise ApiError(400, "x must be at least 1")
    if value > max_x:
        raise ApiError(400, f"x must be at most {number(max_x)}")
    return value


def validate_y(value: Any, max_y: float | None = None) -> float:
    max_y = config.MAX_Y if max_y is None else max_y
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"y must be a number of jobs per minute, got {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(400, "y must be a finite number")
    if value > max_y:
        raise ApiError(400, f"y must be at most {number(max_y)} jobs per minute")
    y = float(value)
    if not y > 0:
        raise ApiError(400, "y must be greater than 0")
    return y


def validate_start(
    body: dict, *, max_x: int | None = None, max_y: float | None = None
) -> tuple[int, float]:
    _check_fields(body, ("x", "y"))
    for name in ("x", "y"):
        if name not in body:
            raise ApiError(400, f"missing field: {name}")
    return validate_x(body["x"], max_x), validate_y(body["y"], max_y)


def validate_update(
    body: dict, *, max_x: int | None = None, max_y: float | None = None
) -> tuple[int | None, float | None]:
    _check_fields(body, ("x", "y"))
    if "x" not in body and "y" not in body:
        raise ApiError(400, "send x and/or y to change")
    x = validate_x(body["x"], max_x) if "x" in body else None
    y = validate_y(body["y"], max_y) if "y" in body else None
    return x, y


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


#: A run id as optio makes them (redis_state.new_run_id): 12 lowercase hex digits.
RUN_ID = re.compile(r"[0-9a-f]{12}")
#: Most runs one page of GET /api/runs lists.
MAX_RUNS_PAGE = 100


def is_run_id(value: str) -> bool:
    return RUN_ID.fullmatch(value) is not None


def validate_runs_query(args: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` (1..100, default 20) and ``before`` (a run id) of GET /api/runs."""
    unknown = sorted(set(args) - {"limit", "before"})
    if unknown:
        raise ApiError(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    limit = 20
    if "limit" in args:
        text = args["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_RUNS_PAGE:
            raise ApiError(
                400, f"limit must be a whole number from 1 to {MAX_RUNS_PAGE}, got {text[:40]!r}"
            )
        limit = int(text)
    before = args.get("before")
    if before is not None and not is_run_id(before):
        raise ApiError(400, f"before must be a run id (12 hex digits), got {before[:40]!r}")
    return limit, before
