"""The one error handler of the web app: every error becomes ``{"error": "..."}`` with its
status; user input never gets a 500 or a traceback."""

from __future__ import annotations

import logging

import redis
from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from optio.store.errors import (
    DeadlineRunError,
    NoActiveRunError,
    NotPausedError,
    RetryRefusedError,
    RunActiveError,
    SeveralActiveError,
    UnknownRunError,
    XBelowEnqueuedError,
    XFixedByItemsError,
)
from optio.webapp.validation import ApiError, number

log = logging.getLogger("optio.api")

#: Request bodies above this size are refused with 413.
MAX_BODY_BYTES = 16 * 1024


#: The store's refusals that conflict with the state of the runs.
CONFLICTS = (
    RunActiveError,
    NoActiveRunError,
    NotPausedError,
    RetryRefusedError,
    SeveralActiveError,
    DeadlineRunError,
)


def handle_error(exc: Exception):
    if isinstance(exc, ApiError):
        status, message = exc.status, exc.message
    elif isinstance(exc, CONFLICTS):
        status, message = 409, str(exc)
    elif isinstance(exc, UnknownRunError):
        status, message = 404, str(exc)
    elif isinstance(exc, (XBelowEnqueuedError, XFixedByItemsError)):
        status, message = 400, str(exc)
    elif isinstance(exc, redis.RedisError):
        log.warning("[api] Redis error: %s", exc)
        status, message = 503, "Redis is unavailable; try again shortly"
    elif isinstance(exc, HTTPException):
        status = exc.code or 500
        message = _http_message(exc)
    else:
        log.exception("[api] Unexpected error")
        status, message = 500, "internal error"
    body: dict = {"error": message}
    if isinstance(exc, SeveralActiveError):  # which runs to name instead
        body["runs"] = exc.run_ids
    response = jsonify(body)
    if isinstance(exc, HTTPException):  # e.g. the Allow header that a 405 must carry
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="optio"'
    return response, status


def _http_message(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"no such endpoint: {request.path[:200]}"
    if exc.code == 405:
        allowed = (
            ", ".join(sorted(exc.valid_methods or [])) if hasattr(exc, "valid_methods") else ""
        )
        return f"method {request.method} is not allowed here" + (
            f"; use {allowed}" if allowed else ""
        )
    if exc.code == 413:
        return (
            f"body too large: at most {MAX_BODY_BYTES // 1024} KiB ({number(MAX_BODY_BYTES)} bytes)"
        )
    return exc.description or exc.name
