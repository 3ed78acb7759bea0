"""The HTTP API: start, change, pause, resume, stop and read runs (health is ``health.py``).

Each view declares its OpenAPI operation (``@operation``, ``operations.py``): its body, its
answers and the links between operations, which the document (``openapi.py``) is built from."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator

import redis
from flask import Blueprint, Flask, Response, jsonify, request

from optio import names
from optio.store.errors import RunActiveError, UnknownRunError, XBelowEnqueuedError
from optio.store.runs import Runs, new_run_id
from optio.webapp import export, health, schemas, security, uploads
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
    validate_items_body,
    validate_results_query,
    validate_runs_query,
    validate_start,
    validate_update,
    validate_upload_query,
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


#: Most bytes of a JSON body of ``POST /api/runs`` (items inline): larger batches stream as NDJSON
#: or CSV, which is never held whole.
MAX_ITEMS_JSON_BYTES = 16 * 1024 * 1024
UPLOAD_EXAMPLES = {
    uploads.NDJSON: '{"email": "ada@example.com"}\n{"email": "grace@example.com"}\n',
    uploads.CSV: "email,name\nada@example.com,Ada\ngrace@example.com,Grace\n",
}


@bp.post("/runs")
@operation(
    "createRun",
    "Start a run of x jobs, or of one job per item, at y jobs per minute",
    'A JSON body `{"x", "y"}` starts x jobs as `POST /api/run` does; `{"items": [...], '
    '"y"}` starts one job per item (job k gets items[k]: `f(run_id, job_id, item)`). An NDJSON '
    "(one JSON value a line) or CSV body (a header row; each row an object keyed by it) streams "
    "the items, with y in the query (`?y=600`): they are stored as they arrive, and the run "
    "starts once all are read and valid. Bad input starts nothing and leaves nothing stored: "
    "400 names the line, 413 the limit.",
    body=Body(
        ("StartRun", "StartRunWithItems"),
        {"items": ["ada@example.com", "grace@example.com"], "y": 600},
        more={
            media: {"schema": TEXT, "example": example}
            for media, example in UPLOAD_EXAMPLES.items()
        },
    ),
    query=schemas.UploadQuery,
    answers={201: state("The new run's state (x: the number of items).", RUN_LINKS)},
    errors=(400, 409, *CHANGE_ERRORS),
    said={
        400: "Bad input: a field, the query, an item line that is not JSON, a CSV row with "
        "another number of fields than the header (the message names the line), no items, or "
        "an upload cut off before its end.",
        409: "A run is already running or paused: stop it first.",
        413: "More items than OPTIO_MAX_ITEMS, an item larger than OPTIO_MAX_ITEM_BYTES, or a "
        "JSON body larger than 16 MiB.",
        415: "A body that is neither application/json, application/x-ndjson nor text/csv.",
    },
    on_conflict=STOP_FIRST,
)
def create_run():
    settings = services().settings
    limits = uploads.Limits(settings.max_items, settings.max_item_bytes, settings.max_x)
    if request.mimetype in uploads.UPLOAD_TYPES:
        y = validate_upload_query(request.args, max_y=settings.max_y)
        _refuse_while_active()
        items = uploads.upload_items(request.mimetype, _body_chunks(), limits)
        run_id, x = _start_with_items(items, y, limits)
    else:
        body = _json_body()
        if "items" in body:
            values, y = validate_items_body(body, max_y=settings.max_y)
            _refuse_while_active()
            run_id, x = _start_with_items(uploads.json_items(values, limits), y, limits)
        else:
            x, y = validate_start(body, **_limits())
            run_id = store().start_run(x, y)
    log.info("[api] Started run %s: x=%s, y=%s/min", run_id, number(x), number(y))
    _kick_scheduler()
    return jsonify(current_state()), 201


def _body_chunks() -> Iterator[bytes]:
    """The request body as it arrives, read from the WSGI input (see uploads.py)."""
    return uploads.body_chunks(request.environ["wsgi.input"].read, request.content_length)


def _json_body() -> dict:
    """The JSON object of a ``POST /api/runs``, of at most MAX_ITEMS_JSON_BYTES; no query."""
    if request.args:
        names = ", ".join(sorted(request.args))[:200]
        raise ApiError(400, f"unknown query parameter(s): {names} (a JSON body carries y)")
    too_large = ApiError(
        413,
        f"a JSON body is at most {MAX_ITEMS_JSON_BYTES // 2**20} MiB: stream more items as "
        "NDJSON (Content-Type application/x-ndjson) or CSV (text/csv)",
    )
    if (request.content_length or 0) > MAX_ITEMS_JSON_BYTES:
        raise too_large
    raw = bytearray()
    for chunk in _body_chunks():
        raw += chunk
        if len(raw) > MAX_ITEMS_JSON_BYTES:
            raise too_large
    return parse_json_object(bytes(raw), request.mimetype or None)


def _refuse_while_active() -> None:
    """Refuse at once, before an upload is read, while a run is active (start_run checks again,
    atomically, once the upload is stored)."""
    active = store().active_run_id()
    if active:
        raise RunActiveError(active)


def _start_with_items(encoded: Iterable[str], y: float, limits: uploads.Limits) -> tuple[str, int]:
    """Store ``encoded`` (the items as JSON texts, in job order) under a new run id, then start
    that run: (its id, its x). Whatever goes wrong before it starts deletes what was stored."""
    items, runs = services().store.items, store()
    run_id = new_run_id()
    try:
        x = uploads.write_chunks(encoded, functools.partial(items.write_chunk, run_id), limits)
        runs.start_run(x, y, run_id=run_id)
    except BaseException as exc:  # a refusal, a cut upload, a killed green thread
        if not isinstance(exc, redis.RedisError):  # the script may have run: they expire
            _discard(run_id)
        raise
    return run_id, x


def _discard(run_id: str) -> None:
    try:
        services().store.items.discard(run_id)
    except redis.RedisError as exc:  # they expire (items.UPLOAD_TTL_SECONDS)
        log.warning("[api] Could not delete the items of unstarted run %s: %s", run_id, exc)


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
    """Where the results export reads the jobs' items: a callable ``(first, count)`` -> the items
    of jobs first .. first+count-1 of run ``run_id``, in order, as JSON values (None, or too
    few: null items), read from the run's items hash (``optio/store/items.py``), one HMGET a
    slice of export.SLICE jobs. A run without items (or whose items expired) gets
    ``export.no_items``: its rows' item is null and its export reads no chunk. This runs in the
    request; what it returns is called by the streamed answer after the view has returned
    (outside the app context), so it holds the store part itself."""
    items = services().store.items
    if not items.exists(run_id):
        return export.no_items

    def read(first: int, count: int) -> list | None:
        return [item for _, item in items.iter_items(run_id, first, first + count - 1)] or None

    return read


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
