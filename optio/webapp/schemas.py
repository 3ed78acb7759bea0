"""The shapes of the HTTP API, as pydantic models: request bodies and queries (validated with
them, see ``validation.py``), the run state and every answer. The OpenAPI document
(``openapi.py``) takes its JSON Schemas from these same models, so the two cannot drift apart.

Limits that come from the settings (``OPTIO_MAX_X``, ``OPTIO_MAX_Y``) are part of the models:
``request_models(max_x, max_y)`` builds (once per pair) the bodies for those limits.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: A run id as optio makes them (redis_state.new_run_id): 12 lowercase hex digits.
RUN_ID_PATTERN = r"^[0-9a-f]{12}$"
RUN_ID = re.compile(RUN_ID_PATTERN)
#: Most runs one page of GET /api/runs lists, and how many it lists unless told.
MAX_RUNS_PAGE = 100
DEFAULT_RUNS_PAGE = 20

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN, examples=["5f0c2a91be3d"])]
#: Most weight a run may have (its share of a binding OPTIO_MAX_RATE against the others').
MAX_WEIGHT = 1000
#: Most jobs a run may bound its jobs in flight to (maxInFlight), a sanity bound.
MAX_RUN_IN_FLIGHT = 1_000_000
#: Furthest a deadline may be, in seconds from now (ten years).
MAX_DEADLINE_SECONDS = 10 * 365 * 24 * 3600


def _no_default(schema: dict[str, Any]) -> None:
    """An optional field that must not be sent as null: its absence is not a value."""
    schema.pop("default", None)


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _x_field(max_x: int, *, optional: bool) -> Any:
    return Field(
        None if optional else ...,
        ge=1,
        le=max_x,
        description=(
            f"Jobs in the run: a whole number from 1 to {max_x} (OPTIO_MAX_X), written "
            "without a fraction (10.0 is refused)."
        ),
        examples=[100],
        json_schema_extra=_no_default if optional else None,
    )


def _y_field(max_y: float, *, optional: bool) -> Any:
    return Field(
        None if optional else ...,
        gt=0,
        le=max_y,
        allow_inf_nan=False,
        description=(
            "Jobs per minute: a number above 0 (fractions allowed: 0.5 is one job every two "
            f"minutes), at most {_plain(max_y)} (OPTIO_MAX_Y)."
        ),
        examples=[60],
        json_schema_extra=_no_default if optional else None,
    )


def _deadline_field() -> Any:
    return Field(
        None,
        description=(
            "Instead of y: when the run must be done, as an ISO 8601 time with a timezone "
            '("2026-12-05T06:00:00Z") or a number of seconds from now (above 0). Its rate is '
            "derived every tick from the jobs left and the time left; it must not need more "
            "than OPTIO_MAX_Y at the start. Send exactly one of y and deadline."
        ),
        examples=["2026-12-05T06:00:00Z", 3600],
        json_schema_extra=_no_default,
    )


def _weight_field() -> Any:
    return Field(
        None,
        gt=0,
        le=MAX_WEIGHT,
        allow_inf_nan=False,
        description=(
            "The run's share of the deployment's ceiling (OPTIO_MAX_RATE) against the other "
            f"active runs' weights, when it binds: a number above 0, at most {MAX_WEIGHT} "
            "(default 1)."
        ),
        examples=[2],
        json_schema_extra=_no_default,
    )


def _max_in_flight_field() -> Any:
    return Field(
        None,
        ge=1,
        le=MAX_RUN_IN_FLIGHT,
        description=(
            "Most of the run's jobs out at once (sent and not finished): a whole number from 1 "
            f"to {MAX_RUN_IN_FLIGHT}. No bound unless given (OPTIO_MAX_IN_FLIGHT still bounds "
            "all runs together)."
        ),
        examples=[50],
        json_schema_extra=_no_default,
    )


def _one_rate(schema: dict[str, Any]) -> None:
    """y or deadline, exactly one (the validation says so in words)."""
    schema["oneOf"] = [{"required": ["y"]}, {"required": ["deadline"]}]


@functools.cache
def request_models(max_x: int, max_y: float) -> tuple[type[BaseModel], type[BaseModel]]:
    """The bodies of ``POST /api/run`` and ``PUT /api/run`` for these limits."""

    class StartRun(BaseModel):
        """Start a run of x jobs at y jobs per minute, or by a deadline; beside the runs
        already active."""

        model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_one_rate)
        x: int = _x_field(max_x, optional=False)
        y: float = _y_field(max_y, optional=True)
        deadline: float | str = _deadline_field()
        weight: float = _weight_field()
        maxInFlight: int = _max_in_flight_field()

    class UpdateRun(BaseModel):
        """Change the running (or paused) run's total and/or rate; send at least one."""

        model_config = ConfigDict(
            extra="forbid", strict=True, json_schema_extra={"minProperties": 1}
        )
        x: int = _x_field(max_x, optional=True)
        y: float = _y_field(max_y, optional=True)

    return StartRun, UpdateRun


@functools.cache
def items_model(max_y: float) -> type[BaseModel]:
    """The JSON body of ``POST /api/runs`` that carries items (for the OpenAPI document; the
    body is checked by ``validation.validate_items_body``, and each item as it is stored)."""

    class StartRunWithItems(BaseModel):
        """Start a run of one job per item at y jobs per minute: job k gets items[k]."""

        model_config = ConfigDict(extra="forbid", strict=True)
        items: list[Any] = Field(
            min_length=1,
            description="The jobs' items, any JSON values, in job order; at most "
            "OPTIO_MAX_ITEMS of at most OPTIO_MAX_ITEM_BYTES each (413 above). A body of more "
            "than 16 MiB is refused: stream larger batches as NDJSON or CSV.",
            examples=[["ada@example.com", "grace@example.com"]],
        )
        y: float = _y_field(max_y, optional=True)
        deadline: float | str = _deadline_field()
        weight: float = _weight_field()
        maxInFlight: int = _max_in_flight_field()

    return StartRunWithItems


@functools.cache
def terms_model(max_y: float) -> type[BaseModel]:
    """What a start says besides its jobs (y or deadline, weight, maxInFlight): checks the
    fields of an items body and of an upload's query (``validation.py``)."""

    class RunTerms(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        y: float = _y_field(max_y, optional=True)
        deadline: float | str = _deadline_field()
        weight: float = _weight_field()
        maxInFlight: int = _max_in_flight_field()

    return RunTerms


class UploadQuery(BaseModel):
    """The query of a streamed upload to ``POST /api/runs`` (NDJSON or CSV): the fields of a
    JSON start, but x (the items are the jobs)."""

    model_config = ConfigDict(extra="forbid")
    y: float = Field(
        None,  # type: ignore[assignment]  # y or deadline for uploads; a JSON body has y inside
        gt=0,
        description="Jobs per minute (y or deadline with an NDJSON or CSV body; a JSON body "
        "carries its fields itself and takes no query).",
        json_schema_extra=_no_default,
    )
    deadline: str = Field(
        None,  # type: ignore[assignment]
        description="Instead of y: an ISO 8601 time with a timezone, or seconds from now.",
        json_schema_extra=_no_default,
    )
    weight: float = Field(
        None,  # type: ignore[assignment]
        gt=0,
        le=MAX_WEIGHT,
        description="The run's weight (default 1).",
        json_schema_extra=_no_default,
    )
    maxInFlight: int = Field(
        None,  # type: ignore[assignment]
        ge=1,
        le=MAX_RUN_IN_FLIGHT,
        description="Most of the run's jobs out at once.",
        json_schema_extra=_no_default,
    )


def _ascii_digits(value: Any) -> Any:
    """A query's number as people type it: ASCII digits only (no sign, space, "²" or "1_0")."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 6):
        raise ValueError("not a whole number")
    return value


class RunsQuery(BaseModel):
    """The query of ``GET /api/runs``."""

    model_config = ConfigDict(extra="forbid")
    limit: Annotated[int, BeforeValidator(_ascii_digits)] = Field(
        DEFAULT_RUNS_PAGE,
        ge=1,
        le=MAX_RUNS_PAGE,
        description=f"Most runs listed, 1 to {MAX_RUNS_PAGE}.",
    )
    before: RunId | None = Field(
        None,
        description="List the runs older than this one: the `next` of the previous page.",
        json_schema_extra=_no_default,
    )
    active: bool = Field(
        False,
        description="`1` (or `true`): list only the active runs (running or paused), newest "
        "first, all on one page (`next` null); neither `limit` nor `before` goes with it.",
    )


class ResultsQuery(BaseModel):
    """The query of ``GET /api/runs/{runId}/results``."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["jsonl", "csv"] = Field(
        "jsonl",
        description="`jsonl`: one JSON object a line; `csv`: a header row, then one row a job.",
    )
    status: Literal["finished", "processed", "failed", "all"] = Field(
        "finished",
        description="The jobs listed: `finished` (processed and failed), `processed`, `failed`, "
        "or `all` (jobs not finished yet too, with status `pending`).",
    )


Status = Literal["idle", "running", "paused", "stopped", "completed"]
Webhook = Literal["pending", "delivered", "failed"]


#: The fields of a run's state that are there only when they apply (not null otherwise).
OCCASIONAL_STATE_FIELDS = ("shareRate", "deadline", "onTrack", "projectedFinish")


def _without_defaults(schema: dict[str, Any]) -> None:
    """Every field of an answer is always there, but the occasional ones of the state: its
    default is no part of the contract."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
    if "required" in schema:
        schema["required"] = [
            name for name in schema["required"] if name not in OCCASIONAL_STATE_FIELDS
        ]


class RunState(BaseModel):
    """The state of a run, as on Redis channel `optio:progress`, in the Socket.IO `progress`
    event and from `GET /api/status`. Built by the Lua scripts (`optio/store/lua/_prelude.lua`,
    `state_json`); the defaults here are the state shown before any run was started
    (`redis_state.idle_state`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_without_defaults,
    )

    running: bool = Field(False, description="The run has not ended (true while paused too).")
    xTotal: int = Field(0, description="Jobs in the run (x).")
    yMinute: float = Field(0, description="Target rate, jobs per minute (y).")
    enqueued: int = Field(0, description="Jobs whose messages are in the broker.")
    processed: int = Field(0, description="Jobs done.")
    failed: int = Field(0, description="Jobs that failed for good.")
    runId: str | None = Field(None, description="The run's id; null before the first run.")
    status: Status = Field("idle", description="`idle` only before the first run.")
    startedAt: int | None = Field(None, description="ms since the epoch (Redis's clock).")
    finishedAt: int | None = Field(None, description="ms since the epoch; null until it ends.")
    rateNow: float = Field(
        0, description="Effective rate the scheduler aims at, jobs/min: y unless throttled."
    )
    rateEnqueued: float = Field(
        0, description="Jobs/min the scheduler enqueued over the last ~3 s."
    )
    throttled: int = Field(0, description="Throttle signals of the run's jobs so far.")
    heldBack: bool = Field(
        False,
        description="The jobs enqueued fell behind the schedule by more than a tick's jobs "
        "within the last ~3 s, or the schedule slid forward instead (see heldBackBy).",
    )
    heldBackBy: Literal["workers", "cap", "scheduler", "ceiling", "inFlight"] | None = Field(
        None,
        description="Why, while heldBack: workers (jobs wait in the broker: the workers are "
        "slower than the rate), cap (the same, at OPTIO_MAX_OUTSTANDING), scheduler (the ticks "
        "reserve or publish slower than the schedule: beat away or late, a slow broker or "
        "Redis), ceiling (the deployment's OPTIO_MAX_RATE, shared by the active runs, grants "
        "less than the rate: see shareRate), inFlight (the run's maxInFlight, or its share of "
        "OPTIO_MAX_IN_FLIGHT, is reached); null otherwise.",
    )
    seq: int = Field(0, description="Grows with every change of the run.")
    pausedAt: int | None = Field(None, description="ms since the epoch, while paused.")
    pausedMs: int = Field(0, description="ms the run was not running (pauses, before a retry).")
    retried: int = Field(0, description="Jobs put back by retry-failed.")
    webhook: Webhook | None = Field(
        None, description="Completion webhook: null without OPTIO_WEBHOOK_URL."
    )
    weight: float = Field(
        1, description="The run's share of a binding OPTIO_MAX_RATE against the others'."
    )
    maxInFlight: int = Field(0, description="Most of its jobs out at once; 0: no own bound.")
    shareRate: float = Field(
        None,  # type: ignore[assignment]  # absent, not null, when it does not apply
        description="Jobs/min the deployment's ceiling (OPTIO_MAX_RATE) grants the run now, "
        "its weighted fair share; only there while the ceiling binds the run.",
    )
    deadline: int = Field(
        None,  # type: ignore[assignment]
        description="When the run must be done, ms since the epoch; only for deadline runs.",
    )
    onTrack: bool = Field(
        None,  # type: ignore[assignment]
        description="Whether it finishes by its deadline at the rate it gets; deadline runs only.",
    )
    projectedFinish: int = Field(
        None,  # type: ignore[assignment]
        description="When it would finish at the rate it gets, ms since the epoch; deadline "
        "runs only, once a tick has run it.",
    )


class JobError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job: int = Field(description="The job's id, 0 to x - 1.")
    error: str = Field(
        description='What its last attempt raised ("Type: message", at most 2000 bytes), or '
        '"delivered N times without finishing: …" when its message was given up '
        "(OPTIO_MAX_DELIVERIES)."
    )


class RunDetail(RunState):
    """A run's state with the errors of its failed jobs and of its webhook."""

    errors: list[JobError] = Field(
        description="Up to 20 jobs that failed for good, by job id.", default_factory=list
    )
    webhookError: str | None = Field(None, description="Why the webhook failed, if it did.")


class RunsPage(BaseModel):
    """One page of the run history, newest first."""

    model_config = ConfigDict(extra="forbid")
    runs: list[RunState]
    next: RunId | None = Field(description="Pass as `before` for the next page; null: no more.")


def _absent(description: str) -> Any:
    """A field that is left out (not null) when it does not apply."""
    return Field(None, description=description, json_schema_extra=_no_default)


class HealthChecks(BaseModel):
    """What was checked; with Redis down only `redis`."""

    model_config = ConfigDict(extra="forbid")
    redis: str = Field(description='"ok", or "no answer: ..." (credentials hidden).')
    workers: list[str] = _absent("Workers with a live heartbeat.")
    beats: list[str] = _absent("Beats with a live heartbeat.")
    lastTick: int | None = _absent("ms since the epoch of the last tick; null: none yet.")
    lastTickAgeSeconds: float = _absent("Seconds since the last tick.")
    broker: str = _absent(
        '"ok", or "no answer: ..." when Celery\'s broker (`OPTIO_BROKER_URL`) is not the Redis '
        "and refuses a connection (credentials hidden)."
    )
    brokerType: Literal["redis", "rabbitmq"] = _absent(
        "What Celery's messages go through (`OPTIO_BROKER_URL`, `REDIS_URL` unless set)."
    )


class Health(BaseModel):
    """What the system needs to make progress: Redis, a worker, a beat, recent ticks."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["ok", "degraded", "unavailable"]
    checks: HealthChecks
    error: str = _absent("What is wrong (503 only).")


class Error(BaseModel):
    """Every error of the API, whatever its status."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="What is wrong, in words.", examples=["no run is running"])
    runs: list[RunId] = _absent(
        "Only in the 409 of a control that names no run (`PUT /api/run`, `POST /api/stop`, "
        "`/pause`, `/resume`) while several runs are active: their ids, newest first. Name one: "
        "`/api/runs/{runId}/...`."
    )


def idle_state() -> dict[str, Any]:
    """The state shown before any run was started."""
    return RunState().model_dump(exclude=set(OCCASIONAL_STATE_FIELDS))
