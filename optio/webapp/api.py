"""The HTTP API: start, change, pause, resume, stop and read runs (health is ``health.py``).

Each view declares its OpenAPI operation (``@operation``, ``operations.py``): its body, its
answers and the links between operations, which the document (``openapi.py``) is built from."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis
from flask import Blueprint, Flask, Response, jsonify, request

from optio import names
from optio.store.errors import UnknownRunError, XBelowEnqueuedError
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
    Deadline,
    Start,
    check_deadline_rate,
    is_run_id,
    number,
    parse_json_object,
    validate_items_body,
    validate_results_query,
    validate_runs_query,
    validate_start,
    validate_update,
    validate_upload_query,
    wants_active_runs,
)

log = logging.getLogger("optio.api")
bp = Blueprint("api", __name__, url_prefix="/api")

#: Links between operations, for clients and for schemathesis's stateful tests:
#: start → status / detail / results → update → pause → resume → stop → retry-failed; the
#: controls that name the run (``/api/runs/{runId}/...``) beside those that name none.
THIS_RUN = "$response.body#/runId"
RUN_LINKS = {
    "GetStatus": link("getStatus"),
    "GetRun": link("getRun", runId=THIS_RUN),
    "GetResults": link("getResults", runId=THIS_RUN),
    "UpdateRun": link("updateRun"),
    "PauseRun": link("pauseRun"),
    "StopRun": link("stopRun"),
    "UpdateThisRun": link("updateRunById", runId=THIS_RUN),
    "PauseThisRun": link("pauseRunById", runId=THIS_RUN),
    "StopThisRun": link("stopRunById", runId=THIS_RUN),
}
ENDED_LINKS = {
    "GetRun": link("getRun", runId="$response.body#/runId"),
    "GetResults": link("getResults", runId="$response.body#/runId"),
    "RetryFailed": link("retryFailed", runId="$response.body#/runId"),
    "StartRun": link("startRun"),
}
#: What resolves a 409: start a run, or name one of the active runs.
START_ONE = {"StartRun": link("startRun")}
NAME_ONE = {"ListActiveRuns": link("listRuns", active="1")}
NO_SUCH_RUN = "No such run (or it expired)."
#: The 409 of a control that names no run, when several are active.
SEVERAL = (
    " Several runs active: the error lists their ids (`runs`), and nothing changed; name one "
    "(`/api/runs/{runId}/...`)."
)


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


START_DESCRIPTION = (
    "The run starts beside the runs already active (each has its own id; `GET /api/status` "
    "shows the newest). Send y (jobs per minute) or a `deadline` (an ISO 8601 time with a "
    "timezone, or seconds from now): a deadline run's rate is derived every tick from the jobs "
    "left and the time left. `weight` is its share of the deployment's ceiling (OPTIO_MAX_RATE) "
    "against the other runs' when the ceiling binds; `maxInFlight` bounds its jobs out at once."
)


def _start(start: Start, run_id: str | None = None) -> str:
    """Start run ``start`` (its x known: a new id, or ``run_id`` whose items are stored); a
    deadline is read against the Redis clock and must not need more than OPTIO_MAX_Y."""
    runs, deadline_ms = store(), None
    x = cast(int, start.x)
    if start.deadline is not None:
        now = runs.server_time_ms()
        deadline_ms = start.deadline.ms(now)
        check_deadline_rate(x, deadline_ms, now, services().settings.max_y)
    run_id = runs.start_run(
        x,
        start.y,
        run_id=run_id,
        weight=start.weight,
        max_in_flight=start.max_in_flight,
        deadline_ms=deadline_ms,
    )
    log.info(
        "[api] Started run %s: x=%s, %s, weight %s%s",
        run_id,
        number(x),
        f"y={number(start.y)}/min" if start.y is not None else f"deadline {deadline_ms}",
        number(start.weight),
        f", at most {start.max_in_flight} in flight" if start.max_in_flight else "",
    )
    _kick_scheduler()
    return run_id


def _run_state(run_id: str) -> dict:
    """The state of run ``run_id``, which a verb just changed."""
    return store().run_state(run_id) or current_state()


@bp.post("/run")
@operation(
    "startRun",
    "Start a run of x jobs at y jobs per minute (or by a deadline)",
    START_DESCRIPTION,
    body=Body("StartRun", {"x": 100, "y": 60}),
    answers={201: state("The new run's state.", RUN_LINKS)},
    errors=(400, *CHANGE_ERRORS),
    said={
        400: "Bad input (the message says which field), y and deadline both or neither, a "
        "deadline in the past, or one so near that x jobs would need more than OPTIO_MAX_Y."
    },
)
def start_run():
    run_id = _start(validate_start(_body(), **_limits()))
    return jsonify(_run_state(run_id)), 201


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
    "Start a run of x jobs, or of one job per item, at y jobs per minute (or by a deadline)",
    'A JSON body `{"x", "y"}` starts x jobs as `POST /api/run` does; `{"items": [...], '
    '"y"}` starts one job per item (job k gets items[k]: `f(run_id, job_id, item)`). An NDJSON '
    "(one JSON value a line) or CSV body (a header row; each row an object keyed by it) streams "
    "the items, with y (or deadline, weight, maxInFlight) in the query (`?y=600`): they are "
    "stored as they arrive, and the run starts once all are read and valid. Bad input starts "
    "nothing and leaves nothing stored: 400 names the line, 413 the limit. " + START_DESCRIPTION,
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
    errors=(400, *CHANGE_ERRORS),
    said={
        400: "Bad input: a field, the query, an item line that is not JSON, a CSV row with "
        "another number of fields than the header (the message names the line), no items, an "
        "upload cut off before its end, y and deadline both or neither, or a deadline in the "
        "past or too near for OPTIO_MAX_Y.",
        413: "More items than OPTIO_MAX_ITEMS, an item larger than OPTIO_MAX_ITEM_BYTES, or a "
        "JSON body larger than 16 MiB.",
        415: "A body that is neither application/json, application/x-ndjson nor text/csv.",
    },
)
def create_run():
    settings = services().settings
    limits = uploads.Limits(settings.max_items, settings.max_item_bytes, settings.max_x)
    if request.mimetype in uploads.UPLOAD_TYPES:
        start = _fix_deadline(validate_upload_query(request.args, max_y=settings.max_y))
        items = uploads.upload_items(request.mimetype, _body_chunks(), limits)
        run_id = _start_with_items(items, start, limits)
    else:
        body = _json_body()
        if "items" in body:
            values, start = validate_items_body(body, max_y=settings.max_y)
            start = _fix_deadline(start)
            run_id = _start_with_items(uploads.json_items(values, limits), start, limits)
        else:
            run_id = _start(validate_start(body, **_limits()))
    return jsonify(_run_state(run_id)), 201


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


def _fix_deadline(start: Start) -> Start:
    """``start`` with its deadline read against the Redis clock now, as the request arrives (an
    upload's x, and so the rate it needs, is known once it is stored: ``_start`` checks that
    then). A deadline in the past is refused at once, before an upload is read."""
    if start.deadline is None:
        return start
    at = start.deadline.ms(store().server_time_ms())
    return dataclasses.replace(start, deadline=Deadline(at_ms=at))


def _start_with_items(encoded: Iterable[str], start: Start, limits: uploads.Limits) -> str:
    """Store ``encoded`` (the items as JSON texts, in job order) under a new run id, then start
    that run (x: the number of items); its id. Whatever goes wrong before it starts deletes
    what was stored."""
    items = services().store.items
    run_id = new_run_id()
    try:
        x = uploads.write_chunks(encoded, functools.partial(items.write_chunk, run_id), limits)
        _start(dataclasses.replace(start, x=x), run_id)
    except BaseException as exc:  # a refusal, a cut upload, a killed green thread
        if not isinstance(exc, redis.RedisError):  # the script may have run: they expire
            _discard(run_id)
        raise
    return run_id


def _discard(run_id: str) -> None:
    try:
        services().store.items.discard(run_id)
    except redis.RedisError as exc:  # they expire (items.UPLOAD_TTL_SECONDS)
        log.warning("[api] Could not delete the items of unstarted run %s: %s", run_id, exc)


def _update(run_id: str | None) -> str:
    x, y = validate_update(_body(), **_limits())
    try:
        run_id = store().update_run(x, y, run_id=run_id)
    except XBelowEnqueuedError as exc:
        raise ApiError(
            400,
            f"x ({number(x or 0)}) cannot be below the {number(exc.enqueued)} jobs "
            "already enqueued",
        ) from None
    log.info("[api] Updated run %s: x=%s, y=%s", run_id, x, y)
    return run_id


UPDATE: dict[str, Any] = {
    "body": Body("UpdateRun", {"y": 120}),
    "answers": {200: state("The run's state.", RUN_LINKS)},
}
UPDATE_400 = "Bad input, x below the jobs already enqueued, or x of a run with items."
UPDATE_409 = "y of a deadline run (its rate follows from its deadline)"


@bp.put("/run")
@operation(
    "updateRun",
    "Change the running or paused run's total and/or rate",
    "A new rate applies from the next tick. With several runs active, name one: "
    "`PUT /api/runs/{runId}`.",
    **UPDATE,
    errors=(400, 409, *CHANGE_ERRORS),
    said={400: UPDATE_400, 409: f"No run is running, or {UPDATE_409}.{SEVERAL}"},
    on_conflict={**START_ONE, **NAME_ONE},
)
def update_run():
    return jsonify(_run_state(_update(None)))


@bp.put("/runs/<run_id>")
@operation(
    "updateRunById",
    "Change one running or paused run's total and/or rate",
    "A new rate applies from the next tick; the other runs are left as they are.",
    **UPDATE,
    params={"run_id": RUN_ID},
    errors=(400, 404, 409, *CHANGE_ERRORS),
    said={400: UPDATE_400, 404: NO_SUCH_RUN, 409: f"The run is not running, or {UPDATE_409}."},
)
def update_run_by_id(run_id: str):
    _known_run(run_id)
    return jsonify(_run_state(_update(run_id)))


def _no_body() -> None:
    if _body(required=False):
        raise ApiError(400, f"POST {request.path} takes no fields")


def _stop(run_id: str | None) -> str:
    _no_body()
    run_id = store().stop_run(run_id)
    log.info("[api] Stopped run %s", run_id)
    return run_id


def _pause(run_id: str | None) -> str:
    _no_body()
    run_id = store().pause_run(run_id)
    log.info("[api] Paused run %s", run_id)
    return run_id


def _resume(run_id: str | None) -> str:
    _no_body()
    run_id = store().resume_run(run_id)
    log.info("[api] Resumed run %s", run_id)
    _kick_scheduler()  # its parked messages go out with the next tick
    return run_id


STOP = (
    "Ends enqueuing at once; jobs already running finish and are counted.",
    state("The stopped run's state.", ENDED_LINKS),
)
PAUSE = (
    "No job of the run starts from now on; jobs in the broker are parked.",
    state(
        "The run's state (`status` `paused`).",
        {
            "ResumeRun": link("resumeRun"),
            "StopRun": link("stopRun"),
            "ResumeThisRun": link("resumeRunById", runId=THIS_RUN),
            "StopThisRun": link("stopRunById", runId=THIS_RUN),
        },
    ),
)
RESUME = (
    "Goes on at rate y from now, with no catch-up burst; parked jobs are sent again.",
    state("The run's state.", RUN_LINKS),
)
BY_ID = {"params": {"run_id": RUN_ID}}
OTHERS_KEPT = " The other runs are left as they are."


@bp.post("/stop")
@change(
    "stopRun",
    "Stop the running or paused run",
    *STOP,
    said={409: f"No run is running.{SEVERAL}"},
    on_conflict={**START_ONE, **NAME_ONE},
)
def stop_run():
    return jsonify(_run_state(_stop(None)))


@bp.post("/runs/<run_id>/stop")
@change(
    "stopRunById",
    "Stop one running or paused run",
    STOP[0] + OTHERS_KEPT,
    STOP[1],
    404,
    **BY_ID,
    said={404: NO_SUCH_RUN, 409: "The run is not running (it ended)."},
)
def stop_run_by_id(run_id: str):
    _known_run(run_id)
    return jsonify(_run_state(_stop(run_id)))


@bp.post("/pause")
@change(
    "pauseRun",
    "Pause the running run",
    *PAUSE,
    said={409: f"No run is running, or it is paused already.{SEVERAL}"},
    on_conflict={"ResumeRun": link("resumeRun"), **START_ONE, **NAME_ONE},
)
def pause_run():
    return jsonify(_run_state(_pause(None)))


@bp.post("/runs/<run_id>/pause")
@change(
    "pauseRunById",
    "Pause one running run",
    PAUSE[0] + OTHERS_KEPT,
    PAUSE[1],
    404,
    **BY_ID,
    said={404: NO_SUCH_RUN, 409: "The run is paused already, or not running."},
    on_conflict={"ResumeThisRun": link("resumeRunById", runId="$request.path.runId")},
)
def pause_run_by_id(run_id: str):
    _known_run(run_id)
    return jsonify(_run_state(_pause(run_id)))


@bp.post("/resume")
@change(
    "resumeRun",
    "Resume the paused run",
    *RESUME,
    said={409: f"No run is paused.{SEVERAL}"},
    on_conflict={"PauseRun": link("pauseRun"), **START_ONE, **NAME_ONE},
)
def resume_run():
    return jsonify(_run_state(_resume(None)))


@bp.post("/runs/<run_id>/resume")
@change(
    "resumeRunById",
    "Resume one paused run",
    RESUME[0] + OTHERS_KEPT,
    RESUME[1],
    404,
    **BY_ID,
    said={404: NO_SUCH_RUN, 409: "The run is not paused."},
    on_conflict={"PauseThisRun": link("pauseRunById", runId="$request.path.runId")},
)
def resume_run_by_id(run_id: str):
    _known_run(run_id)
    return jsonify(_run_state(_resume(run_id)))


@bp.get("/status")
@operation(
    "getStatus",
    "The state of the newest active run, else of the latest run",
    "With several runs active, the newest one's (`GET /api/runs?active=1` lists them all). "
    "The idle state (`status` `idle`) before the first run.",
    answers={
        200: state(
            "The newest active (else the latest) run's state.",
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
    "The run history, newest first (or only the active runs)",
    "Pass `next` as `before` for the next page. `?active=1` lists only the active runs "
    "(running or paused), all of them, newest first.",
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
    said={
        400: "A bad `limit`, `before` or `active`, an unknown `before` or parameter, or "
        "`active` with `limit` or `before`."
    },
)
def list_runs():
    limit, before = validate_runs_query(request.args)
    if wants_active_runs(request.args):
        return jsonify({"runs": store().active_states(), "next": None})
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
        409: "The run did not complete, or has no failed jobs.",
    },
)
def retry_failed(run_id: str):
    _no_body()
    _known_run(run_id)
    count = store().retry_failed(run_id)
    log.info("[api] Retrying the %s failed job(s) of run %s", number(count), run_id)
    _kick_scheduler()
    return jsonify(_run_state(run_id))


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
