"""The HTTP API: start, change, stop and read runs; health. One error handler for all errors."""

from __future__ import annotations

import hmac
import logging
import re
from urllib.parse import unquote

import redis
from flask import Blueprint, Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from optio import heartbeats, names
from optio.celery_settings import broker_kind
from optio.redis_state import (
    NoActiveRunError,
    NotPausedError,
    RetryRefusedError,
    RunActiveError,
    RunStore,
    UnknownRunError,
    XBelowEnqueuedError,
)
from optio.services import services
from optio.validation import (
    ApiError,
    is_run_id,
    number,
    parse_json_object,
    validate_runs_query,
    validate_start,
    validate_update,
)

log = logging.getLogger("optio.api")
bp = Blueprint("api", __name__, url_prefix="/api")
#: Request bodies above this size are refused with 413.
MAX_BODY_BYTES = 16 * 1024


def store() -> RunStore:
    return services().store


def token_ok(presented: str | None, expected: str | None) -> bool:
    """Whether ``presented`` is the ``expected`` API token (constant-time comparison); any is
    when no token is configured."""
    if not expected:
        return True
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@bp.before_request
def _authorize() -> None:
    settings = services().settings
    if not settings.api_token or request.method == "OPTIONS" or request.endpoint == "api.health":
        return
    if request.method in ("GET", "HEAD") and not settings.protect_reads:
        return
    require_token(settings.api_token)


def require_token(expected: str | None) -> None:
    """Refuse the request (401) unless it carries the API token ``expected`` (any when None)."""
    if not token_ok(bearer_token(), expected):
        raise ApiError(401, "missing or wrong API token: send Authorization: Bearer <token>")


def _body(required: bool = True) -> dict:
    return parse_json_object(
        request.get_data(cache=True), request.mimetype or None, required=required
    )


def _limits() -> dict:
    settings = services().settings
    return {"max_x": settings.max_x, "max_y": settings.max_y}


def _kick_scheduler() -> None:
    """Fire one tick now so a new run's first jobs don't wait for beat's next tick."""
    try:
        services().producer.send_task(names.TICK_TASK, queue=names.TICKS_QUEUE, ignore_result=True)
    except Exception as exc:  # beat's own tick follows within OPTIO_TICK_SECONDS
        log.warning("[api] Could not send an immediate tick (%s); beat's next tick will do", exc)


@bp.post("/run")
def start_run():
    x, y = validate_start(_body(), **_limits())
    run_id = store().start_run(x, y)
    log.info("[api] Started run %s: x=%s, y=%s/min", run_id, number(x), number(y))
    _kick_scheduler()
    return jsonify(store().current_state()), 201


@bp.put("/run")
def update_run():
    x, y = validate_update(_body(), **_limits())
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


def _no_body() -> None:
    if _body(required=False):
        raise ApiError(400, f"POST {request.path} takes no fields")


@bp.post("/stop")
def stop_run():
    _no_body()
    run_id = store().stop_run()
    log.info("[api] Stopped run %s", run_id)
    return jsonify(store().current_state())


@bp.post("/pause")
def pause_run():
    _no_body()
    run_id = store().pause_run()
    log.info("[api] Paused run %s", run_id)
    return jsonify(store().current_state())


@bp.post("/resume")
def resume_run():
    _no_body()
    run_id = store().resume_run()
    log.info("[api] Resumed run %s", run_id)
    _kick_scheduler()  # its parked messages go out with the next tick
    return jsonify(store().current_state())


@bp.get("/status")
def status():
    return jsonify(store().current_state())


@bp.get("/runs")
def list_runs():
    limit, before = validate_runs_query(request.args)
    try:
        runs, after = store().list_runs(limit, before)
    except UnknownRunError as exc:
        raise ApiError(400, f"before: {exc}") from None
    return jsonify({"runs": runs, "next": after})


def _known_run(run_id: str) -> dict:
    state = store().run_state(run_id) if is_run_id(run_id) else None
    if state is None:
        raise UnknownRunError(run_id[:40])
    return state


@bp.get("/runs/<run_id>")
def run_detail(run_id: str):
    state = _known_run(run_id)
    runs = store()
    state["errors"] = runs.run_errors(run_id)
    state["webhookError"] = runs.webhook_error(run_id)
    return jsonify(state)


@bp.post("/runs/<run_id>/retry-failed")
def retry_failed(run_id: str):
    _no_body()
    _known_run(run_id)
    count = store().retry_failed(run_id)
    log.info("[api] Retrying the %s failed job(s) of run %s", number(count), run_id)
    _kick_scheduler()
    return jsonify(store().current_state())


@bp.get("/health")
def health():
    """What the system needs to make progress: Redis, a worker, a beat, recent ticks."""
    try:
        runs = store()
        now = runs.server_time_ms()
        last = runs.last_tick_ms()
        workers = heartbeats.alive(runs.client, heartbeats.WORKER)
        beats = heartbeats.alive(runs.client, heartbeats.BEAT)
    except redis.RedisError as exc:
        body = {
            "status": "unavailable",
            "checks": {"redis": f"no answer: {_scrubbed(str(exc))}"},
            "error": f"Redis does not answer at {redacted_url(services().settings.redis_url)}",
        }
        return jsonify(body), 503
    checks: dict = {"redis": "ok", "workers": workers, "beats": beats, "lastTick": last}
    problems = []
    broker_url = services().settings.broker_url
    broker = services().broker_problem()
    checks["broker"] = f"no answer: {_scrubbed(broker, broker_url)}" if broker else "ok"
    checks["brokerType"] = broker_kind(broker_url)
    if broker:
        problems.append(f"the broker does not answer at {redacted_url(broker_url)}")
    if not workers:
        problems.append("no worker heartbeat: start `celery -A optio.tasks worker`")
    if not beats:
        problems.append("no beat heartbeat: start `celery -A optio.tasks beat`")
    if last is None:
        problems.append("no scheduler tick recorded yet")
    else:
        age = max(0.0, (now - last) / 1000)
        checks["lastTickAgeSeconds"] = round(age, 3)
        if age > services().settings.health_tick_max_age:
            problems.append(f"no scheduler tick for {age:.0f} s")
    if problems:
        return jsonify({"status": "degraded", "checks": checks, "error": "; ".join(problems)}), 503
    return jsonify({"status": "ok", "checks": checks})


#: Query parameters whose values are hidden in messages (redis-py honours ``password=`` and
#: ``username=``; sentinel and TLS options carry their own variants).
_SECRET_PARAM = re.compile(r"pass|secret|token|user|auth|key", re.IGNORECASE)


def redacted_url(url: str) -> str:
    """``url`` with every credential replaced by ``***``: userinfo, and the values of query
    parameters such as ``password=``; each part of a ``;``-separated sentinel list too."""
    redacted = []
    for part in url.split(";"):
        head, userinfo, location, params = _url_parts(part)
        query = "&".join(
            f"{name}=***" if secret else f"{name}{sep}{value}"
            for name, sep, value, secret in params
        )
        redacted.append(
            head + ("***@" if userinfo else "") + location + ("?" if params else "") + query
        )
    return ";".join(redacted)


def _url_parts(url: str) -> tuple[str, str, str, list[tuple[str, str, str, bool]]]:
    """(``scheme://``, userinfo, host and path, query parameters with a secret flag each).

    Split by hand, not with urlsplit: an unencoded ``#`` or ``?`` in a password must not move
    the secret into a part that is shown. When an ``@`` follows a ``?`` (a ``?`` in the password,
    or an ``@`` in a query value: no telling which), all of it counts as userinfo.
    """
    scheme, sep, rest = url.partition("://")
    head = scheme + sep if sep else ""
    rest = rest if sep else url
    if "?" in rest.rpartition("@")[0]:
        return head, rest, "", []
    userinfo, at, rest = rest.rpartition("@")
    location, _, query = rest.partition("?")
    params = [
        (name, sep_, value, bool(_SECRET_PARAM.search(name)))
        for name, sep_, value in (p.partition("=") for p in query.split("&") if p)
    ]
    return head, userinfo if at else "", location, params


def _secrets(url: str) -> list[str]:
    """The credential values in ``url``, to scrub from error messages that might echo them."""
    found = []
    for part in url.split(";"):
        _, userinfo, _, params = _url_parts(part)
        found += [userinfo, *userinfo.split(":")]
        found += [value for _, _, value, secret in params if secret]
    found = {s for v in found if v for s in (v, unquote(v))}
    return sorted(found, key=len, reverse=True)


def _scrubbed(message: str, url: str | None = None) -> str:
    for secret in _secrets(url or services().settings.redis_url):
        message = message.replace(secret, "***")
    return message


#: Methods that change state: refused on every route when another web site sends them (CSRF).
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def origin_allowed(origin: str, environ: dict, allowed: tuple[str, ...] | list[str]) -> bool:
    """The page's own origin (scheme and Host of the request), or one in ``allowed``
    (OPTIO_CORS_ORIGINS)."""
    same = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
    return origin == same or origin in allowed


def _refuse_cross_site() -> None:
    """Refuse state changes sent by other web sites, on every route of the app.

    A form post or a body-less ``fetch`` is a "simple request": browsers send it cross-site with
    no preflight, to localhost too. They label it with ``Origin`` (or at least ``Referer``), which
    must then be ours or listed; ``null`` (sandboxed frames, no-referrer pages, file://) never is
    for changes. Clients that send neither, such as curl, are not browsers acting for a web site.
    A body must be JSON on every route. (No check of an empty body's type: eventlet reports a
    missing Content-Type as text/plain, so curl's bare POST could not be told from a form's.)
    """
    if request.method not in STATE_CHANGING:
        return
    source, origin = "Origin", request.headers.get("Origin")
    if origin is None and request.referrer is not None:
        source, origin = "Referer", _origin_of(request.referrer)
    allowed = services().settings.cors_origins
    if origin is not None and (
        origin == "null" or not origin_allowed(origin, request.environ, allowed)
    ):
        raise ApiError(
            403,
            f"cross-site request refused: {source} {origin[:100]!r} is neither this server's "
            "origin nor listed in OPTIO_CORS_ORIGINS",
        )
    has_body = bool(request.content_length) or "Transfer-Encoding" in request.headers
    if has_body and request.mimetype != "application/json":
        raise ApiError(415, "Content-Type must be application/json")


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{host}" if scheme and host else "null"


def register(app: Flask) -> None:
    """Attach the API, the cross-site guard, CORS and the one error handler to ``app``."""
    app.before_request(_refuse_cross_site)
    app.register_blueprint(bp)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.after_request(_cors)
    app.register_error_handler(Exception, _handle_error)


def _cors(response):
    """CORS for the origins of OPTIO_CORS_ORIGINS, matched exactly as the cross-site guard and
    Socket.IO match them. (flask-cors would read entries with regex characters as patterns,
    ``*`` as any origin, and compare without case: a second meaning for the same list.)"""
    origin = request.headers.get("Origin")
    if origin and origin in services().settings.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


def _handle_error(exc: Exception):
    if isinstance(exc, ApiError):
        status, message = exc.status, exc.message
    elif isinstance(exc, (RunActiveError, NoActiveRunError, NotPausedError, RetryRefusedError)):
        status, message = 409, str(exc)
    elif isinstance(exc, UnknownRunError):
        status, message = 404, str(exc)
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
