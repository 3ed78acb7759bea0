"""The HTTP API: start, change, pause, resume, stop and read runs (health is ``health.py``)."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, jsonify, request

from optio import names
from optio.store.errors import UnknownRunError, XBelowEnqueuedError
from optio.store.runs import Runs
from optio.webapp import health, security
from optio.webapp.errors import MAX_BODY_BYTES, handle_error
from optio.webapp.services import services
from optio.webapp.validation import (
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


def store() -> Runs:
    return services().store.runs


def current_state() -> dict:
    return services().current_state()


@bp.before_request
def _authorize() -> None:
    settings = services().settings
    if not settings.api_token or request.method == "OPTIONS" or request.endpoint == "api.health":
        return
    if request.method in ("GET", "HEAD") and not settings.protect_reads:
        return
    security.require_token(settings.api_token)


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
    return jsonify(current_state()), 201


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
    return jsonify(current_state())


def _no_body() -> None:
    if _body(required=False):
        raise ApiError(400, f"POST {request.path} takes no fields")


@bp.post("/stop")
def stop_run():
    _no_body()
    run_id = store().stop_run()
    log.info("[api] Stopped run %s", run_id)
    return jsonify(current_state())


@bp.post("/pause")
def pause_run():
    _no_body()
    run_id = store().pause_run()
    log.info("[api] Paused run %s", run_id)
    return jsonify(current_state())


@bp.post("/resume")
def resume_run():
    _no_body()
    run_id = store().resume_run()
    log.info("[api] Resumed run %s", run_id)
    _kick_scheduler()  # its parked messages go out with the next tick
    return jsonify(current_state())


@bp.get("/status")
def status():
    return jsonify(current_state())


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
    return jsonify(current_state())


bp.get("/health")(health.health)


def register(app: Flask) -> None:
    """Attach the API, the cross-site guard, CORS and the one error handler to ``app``."""
    app.before_request(security.refuse_cross_site)
    app.register_blueprint(bp)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.after_request(security.cors)
    app.register_error_handler(Exception, handle_error)
