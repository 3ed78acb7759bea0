"""The HTTP API: start, change, stop and read runs; health. One error handler for all errors."""

from __future__ import annotations

import hmac
import logging
from functools import cache

import redis
from flask import Blueprint, Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from optio import config
from optio.redis_state import (
    BEAT_KEY_PREFIX,
    WORKER_KEY_PREFIX,
    NoActiveRunError,
    RunActiveError,
    RunStore,
    XBelowEnqueuedError,
    connect,
)
from optio.validation import (
    ApiError,
    number,
    parse_json_object,
    validate_start,
    validate_update,
)

log = logging.getLogger("optio.api")
bp = Blueprint("api", __name__, url_prefix="/api")
#: Request bodies above this size are refused with 413.
MAX_BODY_BYTES = 16 * 1024


@cache
def store() -> RunStore:
    return RunStore(connect())


def token_ok(presented: str | None) -> bool:
    """Whether ``presented`` is the configured API token (constant-time comparison)."""
    if not config.API_TOKEN:
        return True
    return presented is not None and hmac.compare_digest(
        presented.encode(), config.API_TOKEN.encode()
    )


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@bp.before_request
def _authorize() -> None:
    if not config.API_TOKEN or request.method == "OPTIONS" or request.endpoint == "api.health":
        return
    if request.method in ("GET", "HEAD") and not config.PROTECT_READS:
        return
    if not token_ok(bearer_token()):
        raise ApiError(401, "missing or wrong API token: send Authorization: Bearer <token>")


def _body(required: bool = True) -> dict:
    return parse_json_object(
        request.get_data(cache=True), request.mimetype or None, required=required
    )


def _kick_scheduler() -> None:
    """Fire one tick now so a new run's first jobs don't wait for beat's next tick."""
    from optio.tasks import tick  # imported late: only the web process's API needs it

    try:
        tick.apply_async()
    except Exception as exc:  # beat's own tick follows within OPTIO_TICK_SECONDS
        log.warning("[api] Could not send an immediate tick (%s); beat's next tick will do", exc)


@bp.post("/run")
def start_run():
    x, y = validate_start(_body())
    run_id = store().start_run(x, y)
    log.info("[api] Started run %s: x=%s, y=%s/min", run_id, number(x), number(y))
    _kick_scheduler()
    return jsonify(store().current_state()), 201


@bp.put("/run")
def update_run():
    x, y = validate_update(_body())
    try:
        store().update_run(x, y)
    except XBelowEnqueuedError as exc:
        raise ApiError(
            400,
            f"x ({number(x or 0)}) cannot be below the {number(exc.enqueued)} jobs "
            "already enqueued",
        ) from None
    log.info("[api] Updated run: x=%s, y=%s", x, y)
    return jsonify(store().current_state())


@bp.post("/stop")
def stop_run():
    body = _body(required=False)
    if body:
        raise ApiError(400, "POST /api/stop takes no fields")
    run_id = store().stop_run()
    log.info("[api] Stopped run %s", run_id)
    return jsonify(store().current_state())


@bp.get("/status")
def status():
    return jsonify(store().current_state())


@bp.get("/health")
def health():
    """What the system needs to make progress: Redis, a worker, a beat, recent ticks."""
    try:
        state = store()
        now = state.server_time_ms()
        last = state.last_tick_ms()
        workers = state.alive(WORKER_KEY_PREFIX)
        beats = state.alive(BEAT_KEY_PREFIX)
    except redis.RedisError as exc:
        body = {
            "status": "unavailable",
            "checks": {"redis": f"no answer: {exc}"},
            "error": f"Redis does not answer at {_redacted_url()}",
        }
        return jsonify(body), 503
    checks: dict = {"redis": "ok", "workers": workers, "beats": beats, "lastTick": last}
    problems = []
    if not workers:
        problems.append("no worker heartbeat: start `celery -A optio.tasks worker`")
    if not beats:
        problems.append("no beat heartbeat: start `celery -A optio.tasks beat`")
    if last is None:
        problems.append("no scheduler tick recorded yet")
    else:
        age = max(0.0, (now - last) / 1000)
        checks["lastTickAgeSeconds"] = round(age, 3)
        if age > config.HEALTH_TICK_MAX_AGE:
            problems.append(f"no scheduler tick for {age:.0f} s")
    if problems:
        return jsonify({"status": "degraded", "checks": checks, "error": "; ".join(problems)}), 503
    return jsonify({"status": "ok", "checks": checks})


def _redacted_url() -> str:
    url = config.REDIS_URL
    if "@" in url:
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def register(app: Flask) -> None:
    """Attach the API, CORS and the one error handler to ``app``."""
    app.register_blueprint(bp)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.after_request(_cors)
    app.register_error_handler(Exception, _handle_error)


def _cors(response):
    origin = request.headers.get("Origin")
    if origin and origin in config.CORS_ORIGINS:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


def _handle_error(exc: Exception):
    if isinstance(exc, ApiError):
        status, message = exc.status, exc.message
    elif isinstance(exc, (RunActiveError, NoActiveRunError)):
        status, message = 409, str(exc)
    elif isinstance(exc, XBelowEnqueuedError):
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
    response = jsonify({"error": message})
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
