"""All configuration, read from the environment in one place (pydantic-settings).

:class:`Settings` holds every setting with its documented default and description; the
variable of each is ``OPTIO_`` + its name in capitals, except ``REDIS_URL``, ``PORT`` and
``OPTIO_STALL_SECONDS`` (see :func:`variable`). ``Settings(...)`` is built from its arguments
alone; ``Settings.from_env()`` reads the environment. The entry points read it once
(:data:`SETTINGS`: ``optio/tasks.py``, ``beat_schedule.py``, ``web.py``, ``serve.py``,
``jobs.py``, the CLI) and pass it down. No other module reads ``os.environ`` for a setting.
"""

from __future__ import annotations

import contextvars
import math
import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from optio import urls

#: The environment ``Settings.from_env`` is reading (none: ``Settings(...)`` reads nothing).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "optio_environ", default=None
)


#: The smallest OPTIO_MAX_RESULT_BYTES: room for some text and the note of a cut.
MIN_RESULT_BYTES = 64


class _Environ(EnvSettingsSource):
    """The variables of the mapping ``from_env`` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # set but empty counts as unset (OPTIO_URL= keeps the default)
        return {k.lower(): v for k, v in (_ENVIRON.get() or {}).items() if v != ""}


class Settings(BaseSettings):
    """Every setting of optio (docs/CONFIGURATION.md lists the same)."""

    model_config = SettingsConfigDict(
        env_prefix="OPTIO_",
        frozen=True,
        populate_by_name=True,
        # the defaults are written here and valid; a None default is derived from others
        validate_default=False,
        # each field's docstring is its description (the configuration table's text)
        use_attribute_docstrings=True,
        extra="ignore",
    )

    redis_url: str = Field(
        "redis://localhost:6379/0", validation_alias=AliasChoices("redis_url", "REDIS_URL")
    )
    """Redis for the counters, leases, schedule and pub/sub, and Celery's broker unless
    OPTIO_BROKER_URL says otherwise (REDIS_URL): one server (redis://, rediss://, unix://), or a
    primary found through Redis Sentinel (redis+sentinel://HOST:PORT,HOST:PORT/SERVICE/DB, see
    optio/urls.py)."""
    broker_url: str = None  # type: ignore[assignment]  # derived: _derive_and_check
    """Celery's broker: REDIS_URL unless set; ``amqp://`` selects RabbitMQ with durable quorum
    queues. Only the Celery messages move there (OPTIO_BROKER_URL)."""
    port: int = Field(3000, validation_alias=AliasChoices("port", "PORT"))
    """TCP port of the web process: HTTP API, pages, Socket.IO (PORT)."""
    host: str = "127.0.0.1"
    """Interface the web process binds to: loopback unless set (expose it with a token: docs/API.md,
    "Access token") (OPTIO_HOST)."""
    tick_seconds: float = 0.5
    """Seconds between two scheduler ticks fired by celery beat (OPTIO_TICK_SECONDS)."""
    job_seconds: float = 0.0
    """Simulated work per demo job, in seconds (OPTIO_JOB_SECONDS)."""
    job_func: str = "optio.jobs:demo"
    """Import path of the job function, "module:function", called as f(run_id, job_id) -> str,
    or f(run_id, job_id, item) when it takes three parameters (runs with items)
    (OPTIO_JOB_FUNC)."""
    lease_seconds: float = 10.0
    """Seconds a worker's lease on a message lasts; the worker renews it every third of this while
    the message runs. A message whose lease runs out (its worker died, froze, or lost Redis for
    this long) is sent again by the next tick. Any job length works: live workers renew
    (OPTIO_LEASE_SECONDS)."""
    visibility_timeout: int = 10
    """Seconds after which the broker hands an unacknowledged message to another worker (kombu's
    visibility timeout). A second delivery of a message whose lease is alive is dropped, so this
    only bounds how long a message a dead worker had fetched but not started waits
    (OPTIO_VISIBILITY_TIMEOUT)."""
    max_deliveries: int = 5
    """Deliveries of a message whose lease expired each time (its worker died, froze or lost Redis
    mid-message) before its jobs not yet done are failed for good with the error "delivered N
    times without finishing", so a job that kills its worker cannot loop forever (as BullMQ's
    maxStalledCount, SQS's maxReceiveCount) (OPTIO_MAX_DELIVERIES)."""
    max_result_bytes: int = 64 * 1024
    """Most bytes (UTF-8) of a job's stored result: a longer result is cut and says so. Text that
    UTF-8 can't encode (a lone surrogate, as os.fsdecode gives) is stored as its escape
    (OPTIO_MAX_RESULT_BYTES)."""
    job_attempts: int = 4
    """Attempts of a job that raises before it is recorded as failed (OPTIO_JOB_ATTEMPTS)."""
    retry_backoff: float = 1.0
    """Seconds before the first retry of a job that raised; doubles each attempt (capped at 30 s)
    (OPTIO_RETRY_BACKOFF)."""
    stall_seconds_deprecated: str | None = Field(
        None, validation_alias=AliasChoices("stall_seconds_deprecated", "OPTIO_STALL_SECONDS")
    )
    """Replaced by leases (OPTIO_LEASE_SECONDS); set, it is ignored with a warning
    (OPTIO_STALL_SECONDS)."""
    redis_timeout: float = 5.0
    """Seconds a Redis command may take before it fails (a hung Redis makes the API answer 503)
    (OPTIO_REDIS_TIMEOUT)."""
    redis_retry_seconds: float = 120.0
    """Seconds a worker keeps retrying Redis calls while Redis is away or refuses them for now
    (restart, failover, maxmemory reached); past that, the message goes back to the broker
    (OPTIO_REDIS_RETRY_SECONDS)."""
    redis_min_replicas: int = None  # type: ignore[assignment]  # derived: _derive_and_check
    """Replicas that must have each counting write of a worker before it goes on and acknowledges
    the message (Redis WAIT), so a failover cannot uncount a job; default 1 with the Sentinel
    form of REDIS_URL, else 0 (no WAIT) (OPTIO_REDIS_MIN_REPLICAS)."""
    redis_wait_ms: int = 1000
    """Milliseconds one WAIT for those replicas may take; when fewer answered in time, workers warn
    and stop waiting until the primary has enough replicas online again (OPTIO_REDIS_WAIT_MS)."""
    heartbeat_seconds: float = 5.0
    """Seconds between liveness heartbeats of workers and beat (they expire after 3 of them)
    (OPTIO_HEARTBEAT_SECONDS)."""
    result_ttl: int = 7 * 24 * 3600
    """Seconds stored job results are kept after their last write (OPTIO_RESULT_TTL)."""
    run_ttl: int = 30 * 24 * 3600
    """Seconds the keys of a finished or stopped run (its state, bitmap, errors) are kept
    (OPTIO_RUN_TTL)."""
    keep_runs: int = 1000
    """Runs kept in the history (GET /api/runs): starting one more deletes the oldest run's keys
    (OPTIO_KEEP_RUNS)."""
    webhook_url: str | None = None
    """URL that receives a POST of a run's final state when it ends (completed or stopped); unset:
    no webhook (OPTIO_WEBHOOK_URL)."""
    webhook_secret: str | None = Field(None, repr=False)
    """Key of the webhook's signature header, X-Optio-Signature: sha256=<HMAC-SHA256 of the body>
    (OPTIO_WEBHOOK_SECRET)."""
    webhook_retry_seconds: float = 300.0
    """Seconds after a run's end during which a failing webhook is retried with backoff
    (OPTIO_WEBHOOK_RETRY_SECONDS)."""
    webhook_timeout: float = 5.0
    """Seconds one webhook request may take (OPTIO_WEBHOOK_TIMEOUT)."""
    throttle_decrease: float = 0.5
    """Factor of a run's first cut when a job raises optio.Throttle, and of the deepest cut at
    once after it: later cuts go to 95 % of the rate, or of what the downstream took when it
    keeps refusing (OPTIO_THROTTLE_DECREASE)."""
    throttle_window: float = 2.0
    """Seconds: at most one cut per window, and one step back up per window without a
    throttle, at most y/20 (OPTIO_THROTTLE_WINDOW)."""
    min_rate: float = 1.0
    """Lowest effective rate a run is cut to, jobs/min (OPTIO_MIN_RATE)."""
    throttle_max_wait: float = 300.0
    """Most seconds a throttled job waits for its own retry_after (a server's Retry-After) before
    it runs again; a longer (or infinite) wait is cut to this. It delays that job only, never
    the others (OPTIO_THROTTLE_MAX_WAIT)."""
    max_x: int = 10_000_000
    """Largest accepted x (jobs in one run); the exactly-once bitmap costs x/8 bytes
    (OPTIO_MAX_X)."""
    max_y: float = 2_000_000.0
    """Largest accepted y, jobs per minute (OPTIO_MAX_Y)."""
    max_outstanding: int = 0
    """Most jobs of a run waiting in the broker at once (reserved, neither done nor started by a
    worker); 0 means five ticks' worth at rate y, at least 1000. Above the workers' pace the run
    goes at their pace and its state says heldBack (OPTIO_MAX_OUTSTANDING)."""
    max_rate: float = 0.0
    """Most jobs per minute over all active runs together; 0 means no ceiling. When the runs
    ask for more, each gets a weighted fair share (its ``weight``), and a run asking less than
    its share leaves the rest to the others (OPTIO_MAX_RATE)."""
    max_in_flight: int = 0
    """Most jobs out at once over all active runs together (sent and not yet counted: waiting
    in the broker, running, or waiting for a retry); 0 means no bound. Shared by weight like
    OPTIO_MAX_RATE (OPTIO_MAX_IN_FLIGHT)."""
    max_batch: int = 100
    """Largest job-id range carried by one Celery message (high rates batch jobs per message)
    (OPTIO_MAX_BATCH)."""
    max_items: int = 10_000_000
    """Most items a run started with items may carry (one job each): more are refused with 413
    (OPTIO_MAX_ITEMS)."""
    max_item_bytes: int = 64 * 1024
    """Most bytes of one item, as JSON text (UTF-8): a larger item is refused with 413; the web
    process holds at most 1000 of them at once while an upload streams (OPTIO_MAX_ITEM_BYTES)."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = None  # type: ignore[assignment]  # derived
    """Origins allowed for HTTP (CORS) and Socket.IO, comma separated in the environment; default
    http://localhost:PORT and http://127.0.0.1:PORT (OPTIO_CORS_ORIGINS)."""
    url: str = None  # type: ignore[assignment]  # derived: _derive_and_check
    """Server that the clients `optio watch` and test-websocket-cli.js connect to; default
    http://localhost:PORT (OPTIO_URL)."""
    api_token: str | None = Field(None, repr=False)
    """When set, start/update/stop need "Authorization: Bearer <token>" (unset: no auth at all)
    (OPTIO_API_TOKEN)."""
    protect_reads: bool = False
    """With a token set, also require it for GET /api/status and Socket.IO connections
    (OPTIO_PROTECT_READS: 1, true or yes)."""
    async_mode: str = "eventlet"
    """Async mode of the web process: "eventlet" or "threading" (OPTIO_ASYNC_MODE); `flask run`
    (FLASK_RUN_FROM_CLI set) always serves with threads, as Flask-SocketIO does."""
    emit_hz: float = 20.0
    """Most progress events per second sent to Socket.IO clients (updates are coalesced)
    (OPTIO_EMIT_HZ)."""
    ws_compression: bool = False
    """Accept permessage-deflate when a WebSocket client offers it (browsers and Node do). Off:
    each state would be compressed once per client, which costs the web process far more CPU
    than the few hundred bytes it saves (OPTIO_WS_COMPRESSION: 1, true or yes)."""
    max_clients: int = 1000
    """Socket.IO clients one web process serves at once; past it a new client is answered 503 (it
    tries again, or the load balancer sends it to another web process) (OPTIO_MAX_CLIENTS)."""
    log_level: str = "INFO"
    """Log level of all optio processes (OPTIO_LOG_LEVEL)."""
    health_tick_max_age: float = None  # type: ignore[assignment]  # derived: _derive_and_check
    """A tick older than this many seconds makes /api/health answer 503; default max(10, 5 ×
    tick_seconds) (OPTIO_HEALTH_TICK_MAX_AGE)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _ENVIRON.get() is None:
            return (init_settings,)
        return (init_settings, _Environ(settings_cls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``environ`` (default: ``os.environ``); unset ones keep their default."""
        env = dict(os.environ if environ is None else environ)
        overrides: dict[str, Any] = {}
        if env.get("FLASK_RUN_FROM_CLI"):  # `flask run` serves threads, not eventlet
            overrides["async_mode"] = "threading"
        token = _ENVIRON.set(env)
        try:
            return cls(**overrides)
        finally:
            _ENVIRON.reset(token)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        """Comma separated in the environment."""
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        """Fill the settings whose default depends on others (declared with a None default:
        after this, each has its annotated type), then check across fields."""
        derived = {
            "cors_origins": (f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"),
            "url": f"http://localhost:{self.port}",
            "health_tick_max_age": max(10.0, 5 * self.tick_seconds),
            "redis_min_replicas": 1 if urls.is_sentinel(self.redis_url) else 0,
            "broker_url": self.redis_url,
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)  # frozen: set once, here
        _check(self)
        return self


def _check(s: Settings) -> None:
    """What one field alone can't say: ranges and settings that depend on each other."""
    if not 0 < s.throttle_decrease < 1:
        raise ValueError(
            f"OPTIO_THROTTLE_DECREASE must be between 0 and 1, not {s.throttle_decrease}"
        )
    if not s.throttle_window > 0 or not s.min_rate > 0:
        raise ValueError("OPTIO_THROTTLE_WINDOW and OPTIO_MIN_RATE must be greater than 0")
    if not 0 < s.throttle_max_wait < math.inf:
        raise ValueError(
            f"OPTIO_THROTTLE_MAX_WAIT must be a finite number of seconds above 0, "
            f"not {s.throttle_max_wait}"
        )
    if urls.is_sentinel(s.redis_url):
        urls.parse_sentinel(s.redis_url)  # a clear error at start, not at first use
    if s.redis_min_replicas < 0:
        raise ValueError(f"OPTIO_REDIS_MIN_REPLICAS must be 0 or more, not {s.redis_min_replicas}")
    if not 1 <= s.redis_wait_ms < s.redis_timeout * 1000:
        raise ValueError(
            f"OPTIO_REDIS_WAIT_MS must be at least 1 and below OPTIO_REDIS_TIMEOUT "
            f"({s.redis_timeout:g} s), not {s.redis_wait_ms}"
        )
    if s.max_deliveries < 1:
        raise ValueError(f"OPTIO_MAX_DELIVERIES must be at least 1, not {s.max_deliveries}")
    if s.max_result_bytes < MIN_RESULT_BYTES:
        raise ValueError(
            f"OPTIO_MAX_RESULT_BYTES must be at least {MIN_RESULT_BYTES}, not {s.max_result_bytes}"
        )
    if s.max_items < 1 or s.max_item_bytes < 1:
        raise ValueError("OPTIO_MAX_ITEMS and OPTIO_MAX_ITEM_BYTES must be at least 1")
    if s.max_rate < 0 or s.max_in_flight < 0:
        raise ValueError("OPTIO_MAX_RATE and OPTIO_MAX_IN_FLIGHT must be 0 (none) or more")
    if s.keep_runs < 1:
        raise ValueError(f"OPTIO_KEEP_RUNS must be at least 1, not {s.keep_runs}")
    if s.webhook_url and not s.webhook_url.startswith(("http://", "https://")):
        raise ValueError(
            f"OPTIO_WEBHOOK_URL must start with http:// or https://, not {s.webhook_url!r}"
        )


def variable(name: str) -> str:
    """The environment variable of setting ``name`` (docs/CONFIGURATION.md's table)."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return f"OPTIO_{name.upper()}"


def default(name: str) -> Any:
    """The documented default of setting ``name``."""
    return Settings.model_fields[name].default


#: The settings of this process, read from the environment once (by the entry points).
SETTINGS = Settings.from_env()
