"""The HTTP API: start, change, pause, resume, stop and read runs (health is ``health.py``).

Each view declares its OpenAPI operation (``@operation``, ``operations.py``): its body, its
answers and the links between operations, which the document (``openapi.py``) is built from."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, jsonify, request

from optio import names
from optio.store.errors import UnknownRunError, XBelowEnqueuedError
from optio.store.runs import Runs
from optio.webapp import export, health, schemas, security
from optio.webapp.errors import MAX_BODY_BYTES, handle_error
from optio.webapp.operations import (
    CHANGE_ERRORS,
    READ_ERRORS,
    RUN_ID,
    TEXT,
    Answer,
    Body,
    change,
    json_answer,
    link,
    operation,
    state,
)
from optio.webapp.services import services
from optio.webapp.validation import (
    ApiError,
    is_run_id,
    number,
    parse_json_object,
    validate_results_query,
    validate_runs_query,
    validate_start,
    validate_update,
)

log = logging.getLogger("optio.api")
bp = Blueprint("api", __name__, url_prefix="/api")

#: Links between operations, for clients and for schemathesis's stateful tests:
#: start → status / detail / results → update → pause → resume → stop → retry-failed.
RUN_LINKS = {
    "GetStatus": link("getStatus"),
    "GetRun": link("getRun", runId="$response.body#/runId"),
    "GetResults": link("getResults", runId="$response.body#/runId"),
    "UpdateRun": link("updateRun"),
    "PauseRun": link("pauseRun"),
    "StopRun": link("stopRun"),
}
ENDED_LINKS = {
    "GetRun": link("getRun", runId="$response.body#/runId"),
    "GetResults": link("getResults", runId="$response.body#/runId"),
    "RetryFailed": link("retryFailed", runId="$response.body#/runId"),
    "StartRun": link("startRun"),
}
#: What resolves a 409: stop the run that is in the way, or start one.
STOP_FIRST = {"StopRun": link("stopRun")}
START_ONE = {"StartRun": link("startRun")}
NO_SUCH_RUN = "No such run (or it expired)."


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
@operation(
    "startRun",
    "Start a run of x jobs at y jobs per minute",
    "Two concurrent starts start exactly one run.",
    body=Body("StartRun", {"x": 100, "y": 60}),
    answers={201: state("The new run's state.", RUN_LINKS)},
    errors=(400, 409, *CHANGE_ERRORS),
    said={409: "A run is already running or paused: stop it first."},
    on_conflict=STOP_FIRST,
)
def start_run():
    x, y = validate_start(_body(), **_limits())
    run_id = store().start_run(x, y)
    log.info("[api] Started run %s: x=%s, y=%s/min", run_id, number(x), number(y))
    _kick_scheduler()
    return jsonify(current_state()), 201


@bp.put("/run")
@operation(
    "updateRun",
    "Change the running or paused run's total and/or rate",
    "A new rate applies from the next tick.",
    body=Body("UpdateRun", {"y": 120}),
    answers={200: state("The run's state.", RUN_LINKS)},
    errors=(400, 409, *CHANGE_ERRORS),
    said={400: "Bad input, or x below the jobs already enqueued.", 409: "No run is running."},
    on_conflict=START_ONE,
)
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
@change(
    "stopRun",
    "Stop the running or paused run",
    "Ends enqueuing at once; jobs already running finish and are counted.",
    state("The stopped run's state.", ENDED_LINKS),
    said={409: "No run is running."},
    on_conflict=START_ONE,
)
def stop_run():
    _no_body()
    run_id = store().stop_run()
    log.info("[api] Stopped run %s", run_id)
    return jsonify(current_state())


@bp.post("/pause")
@change(
    "pauseRun",
    "Pause the running run",
    "No job of the run starts from now on; jobs in the broker are parked.",
    state(
        "The run's state (`status` `paused`).",
        {"ResumeRun": link("resumeRun"), "StopRun": link("stopRun")},
    ),
    said={409: "No run is running, or it is paused already."},
    on_conflict={"ResumeRun": link("resumeRun"), **START_ONE},
)
def pause_run():
    _no_body()
    run_id = store().pause_run()
    log.info("[api] Paused run %s", run_id)
    return jsonify(current_state())


@bp.post("/resume")
@change(
    "resumeRun",
    "Resume the paused run",
    "Goes on at rate y from now, with no catch-up burst; parked jobs are sent again.",
    state("The run's state.", RUN_LINKS),
    said={409: "No run is paused."},
    on_conflict={"PauseRun": link("pauseRun"), **START_ONE},
)
def resume_run():
    _no_body()
    run_id = store().resume_run()
    log.info("[api] Resumed run %s", run_id)
    _kick_scheduler()  # its parked messages go out with the next tick
    return jsonify(current_state())


@bp.get("/status")
@operation(
    "getStatus",
    "The state of the latest run",
    "The idle state (`status` `idle`) before the first run.",
    answers={
        200: state(
            "The latest run's state.",
            {name: found for name, found in RUN_LINKS.items() if name != "GetStatus"},
        )
    },
    errors=READ_ERRORS,
)
def status():
    return jsonify(current_state())


@bp.get("/runs")
@operation(
    "listRuns",
    "The run history, newest first",
    "Pass `next` as `before` for the next page.",
    query=schemas.RunsQuery,
    answers={
        200: json_answer(
            "One page of runs.",
            schemas.RunsPage,
            {
                "GetRun": link("getRun", runId="$response.body#/runs/0/runId"),
                "NextPage": link("listRuns", before="$response.body#/next"),
            },
        )
    },
    errors=(400, *READ_ERRORS),
    said={400: "A bad `limit` or `before`, an unknown `before` or parameter."},
)
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
@operation(
    "getRun",
    "One run, with the errors of its failed jobs and its webhook",
    params={"run_id": RUN_ID},
    answers={
        200: json_answer(
            "The run's state, its job errors and webhook error.",
            schemas.RunDetail,
            {"RetryFailed": ENDED_LINKS["RetryFailed"]},
        )
    },
    errors=(404, *READ_ERRORS),
    said={404: NO_SUCH_RUN},
)
def run_detail(run_id: str):
    state = _known_run(run_id)
    runs = store()
    state["errors"] = runs.run_errors(run_id)
    state["webhookError"] = runs.webhook_error(run_id)
    return jsonify(state)


@bp.post("/runs/<run_id>/retry-failed")
@change(
    "retryFailed",
    "Run a completed run's failed jobs again",
    "The run is `running` again and completes again when every job is done.",
    state("The run's state (`running` again).", RUN_LINKS),
    404,
    params={"run_id": RUN_ID},
    said={
        404: NO_SUCH_RUN,
        409: "Another run is active, the run did not complete, or has no failed jobs.",
    },
    on_conflict=STOP_FIRST,
)
def retry_failed(run_id: str):
    _no_body()
    _known_run(run_id)
    count = store().retry_failed(run_id)
    log.info("[api] Retrying the %s failed job(s) of run %s", number(count), run_id)
    _kick_scheduler()
    return jsonify(current_state())


def items_for(run_id: str) -> export.ItemsFor:
    """Where the results export reads the jobs' items (runs started with items, issue 21): a
    callable ``(first, count)`` -> the items of jobs first .. first+count-1 of run ``run_id``,
    in order, as JSON values (None, or too few: null items). This runs in the request; what it
    returns is called once per slice of export.SLICE jobs by the streamed answer, after the
    view has returned (outside the app context): bind the store here, e.g.
    ``functools.partial(services().store.<items>.<read>, run_id)``. Until then: no items."""
    return export.no_items


@bp.get("/runs/<run_id>/results")
@operation(
    "getResults",
    "Every job's outcome, one row per job in job order (JSON Lines or CSV)",
    "Streamed a slice of jobs at a time, also while the run runs (jobs not finished yet are left "
    "out, or listed with status `pending` with `status=all`). A row: `job`, `item` (null for a "
    "run without items), `status` (processed, failed, pending), `result` (the function's "
    "return value as JSON; null for None and for failed jobs), `error` (failed jobs: "
    '"Type: message"), `attempts` (of its last round: retry-failed starts a new one), `ms` '
    "(run time of its last attempt) and `finishedAt` (ms since the epoch, Redis clock). CSV: "
    "the same columns, item and result as JSON text, an empty cell for null.",
    params={"run_id": RUN_ID},
    query=schemas.ResultsQuery,
    answers={
        200: Answer(
            "One row per job: a JSON object a line (`jsonl`), or CSV with a header row.",
            {export.MEDIA["jsonl"]: TEXT, "text/csv": TEXT},
        )
    },
    errors=(400, 404, *READ_ERRORS),
    said={400: "A bad `format` or `status`, or an unknown parameter.", 404: NO_SUCH_RUN},
)
def run_results(run_id: str):
    form, status = validate_results_query(request.args)
    x = _known_run(run_id)["xTotal"]
    read = functools.partial(services().store.outcomes.read, run_id)
    body = export.FORMATS[form](export.rows(read, x, status, items_for(run_id)))
    return Response(
        _logged(body, run_id),
        mimetype=export.MEDIA[form],
        headers={
            "Content-Disposition": f'attachment; filename="optio-{run_id}-{status}.{form}"',
            "Cache-Control": "no-store",
        },
    )


def _logged(body: Iterator[str], run_id: str) -> Iterator[str]:
    """``body``; a read that fails midway (Redis away) ends the answer without its last chunk,
    so the client sees a cut transfer, never a short file that looks whole."""
    try:
        yield from body
    except Exception as exc:
        log.warning("[api] The results export of run %s stopped midway: %s", run_id, exc)
        raise


bp.get("/health")(health.health)


def register(app: Flask) -> None:
    """Attach the API, the cross-site guard, CORS and the one error handler to ``app``."""
    app.before_request(security.refuse_cross_site)
    app.register_blueprint(bp)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.after_request(security.cors)
    app.register_error_handler(Exception, handle_error)
