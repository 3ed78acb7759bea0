"""All configuration, read from the environment in one place.

:class:`Settings` holds every setting with its documented default; ``Settings.from_env()`` reads
the environment (the README's configuration table lists the same names). The web app takes a
``Settings`` (``optio.web.create_app(settings)``), so tests can build apps with other settings
in-process. Workers, beat and the CLI read :data:`SETTINGS`, the one instance built from the
environment at import (``config.SETTINGS.tick_seconds``). No other module reads ``os.environ``
for a setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields

from optio import redis_urls

_TRUE = ("1", "true", "yes")


@dataclass(frozen=True)
class Settings:
    """Every setting of optio; the environment variable of each is in ``from_env``."""

    #: Redis for the counters, leases, schedule and pub/sub, and Celery's broker unless
    #: OPTIO_BROKER_URL says otherwise (REDIS_URL): one server (redis://, rediss://, unix://),
    #: or a primary found through Redis Sentinel (redis+sentinel://HOST:PORT,HOST:PORT/SERVICE/DB,
    #: see optio/redis_urls.py).
    redis_url: str = "redis://localhost:6379/0"
    #: Celery's broker: REDIS_URL unless set; ``amqp://`` selects RabbitMQ with durable quorum
    #: queues. Only the Celery messages move there (OPTIO_BROKER_URL).
    broker_url: str | None = None
    #: TCP port of the web process: HTTP API, pages, Socket.IO (PORT).
    port: int = 3000
    #: Interface the web process binds to: loopback unless set (expose it with a token, see
    #: README) (OPTIO_HOST).
    host: str = "127.0.0.1"
    #: Seconds between two scheduler ticks fired by celery beat (OPTIO_TICK_SECONDS).
    tick_seconds: float = 0.5
    #: Simulated work per demo job, in seconds (OPTIO_JOB_SECONDS).
    job_seconds: float = 0.0
    #: Import path of the job function, "module:function", called as f(run_id, job_id) -> str
    #: (OPTIO_JOB_FUNC).
    job_func: str = "optio.jobs:demo"
    #: Seconds a worker's lease on a message lasts; the worker renews it every third of this
    #: while the message runs. A message whose lease runs out (its worker died, froze, or lost
    #: Redis for this long) is sent again by the next tick. Any job length works: live workers
    #: renew (OPTIO_LEASE_SECONDS).
    lease_seconds: float = 10.0
    #: Seconds after which the broker hands an unacknowledged message to another worker
    #: (kombu's visibility timeout). A second delivery of a message whose lease is alive is
    #: dropped, so this only bounds how long a message a dead worker had fetched but not started
    #: waits (OPTIO_VISIBILITY_TIMEOUT).
    visibility_timeout: int = 10
    #: Attempts of a job that raises before it is recorded as failed (OPTIO_JOB_ATTEMPTS).
    job_attempts: int = 4
    #: Seconds before the first retry of a job that raised; doubles each attempt (capped at
    #: 30 s) (OPTIO_RETRY_BACKOFF).
    retry_backoff: float = 1.0
    #: Replaced by leases (OPTIO_LEASE_SECONDS); set, it is ignored with a warning
    #: (OPTIO_STALL_SECONDS).
    stall_seconds_deprecated: str | None = None
    #: Seconds a Redis command may take before it fails (a hung Redis makes the API answer
    #: 503) (OPTIO_REDIS_TIMEOUT).
    redis_timeout: float = 5.0
    #: Seconds a worker keeps retrying Redis calls while Redis is away (restart, failover)
    #: (OPTIO_REDIS_RETRY_SECONDS).
    redis_retry_seconds: float = 120.0
    #: Replicas that must have each counting write of a worker before it goes on and
    #: acknowledges the message (Redis WAIT), so a failover cannot uncount a job; default 1 with
    #: the Sentinel form of REDIS_URL, else 0 (no WAIT) (OPTIO_REDIS_MIN_REPLICAS).
    redis_min_replicas: int | None = None
    #: Milliseconds one WAIT for those replicas may take; when fewer answered in time, workers
    #: warn and stop waiting until the primary has enough replicas online again
    #: (OPTIO_REDIS_WAIT_MS).
    redis_wait_ms: int = 1000
    #: Seconds between liveness heartbeats of workers and beat (they expire after 3 of them)
    #: (OPTIO_HEARTBEAT_SECONDS).
    heartbeat_seconds: float = 5.0
    #: Seconds stored job results are kept after their last write (OPTIO_RESULT_TTL).
    result_ttl: int = 7 * 24 * 3600
    #: Seconds the keys of a finished or stopped run (its state, bitmap, errors) are kept
    #: (OPTIO_RUN_TTL).
    run_ttl: int = 30 * 24 * 3600
    #: Runs kept in the history (GET /api/runs): starting one more deletes the oldest run's
    #: keys (OPTIO_KEEP_RUNS).
    keep_runs: int = 1000
    #: URL that receives a POST of a run's final state when it ends (completed or stopped);
    #: unset: no webhook (OPTIO_WEBHOOK_URL).
    webhook_url: str | None = None
    #: Key of the webhook's signature header, X-Optio-Signature: sha256=<HMAC-SHA256 of the body>
    #: (OPTIO_WEBHOOK_SECRET).
    webhook_secret: str | None = field(default=None, repr=False)
    #: Seconds after a run's end during which a failing webhook is retried with backoff
    #: (OPTIO_WEBHOOK_RETRY_SECONDS).
    webhook_retry_seconds: float = 300.0
    #: Seconds one webhook request may take (OPTIO_WEBHOOK_TIMEOUT).
    webhook_timeout: float = 5.0
    #: Factor that cuts a run's effective rate when a job raises optio.Throttle
    #: (OPTIO_THROTTLE_DECREASE).
    throttle_decrease: float = 0.5
    #: Seconds: at most one cut per window, and one step back up (y/20) per window without a
    #: throttle (OPTIO_THROTTLE_WINDOW).
    throttle_window: float = 2.0
    #: Lowest effective rate a run is cut to, jobs/min (OPTIO_MIN_RATE).
    min_rate: float = 1.0
    #: Largest accepted x (jobs in one run); the exactly-once bitmap costs x/8 bytes
    #: (OPTIO_MAX_X).
    max_x: int = 10_000_000
    #: Largest accepted y, jobs per minute (OPTIO_MAX_Y).
    max_y: float = 2_000_000.0
    #: Most jobs of a run waiting in the broker at once (reserved, neither done nor started by
    #: a worker); 0 means five ticks' worth at rate y, at least 1000. Above the workers' pace
    #: the run goes at their pace and its state says heldBack (OPTIO_MAX_OUTSTANDING).
    max_outstanding: int = 0
    #: Largest job-id range carried by one Celery message (high rates batch jobs per message)
    #: (OPTIO_MAX_BATCH).
    max_batch: int = 100
    #: Origins allowed for HTTP (CORS) and Socket.IO, comma separated in the environment;
    #: default http://localhost:PORT and http://127.0.0.1:PORT (OPTIO_CORS_ORIGINS).
    cors_origins: tuple[str, ...] | None = None
    #: Server that the clients `optio watch` and test-websocket-cli.js connect to; default
    #: http://localhost:PORT (OPTIO_URL).
    url: str | None = None
    #: When set, start/update/stop need "Authorization: Bearer <token>" (unset: no auth at
    #: all) (OPTIO_API_TOKEN).
    api_token: str | None = field(default=None, repr=False)  # kept out of logs
    #: With a token set, also require it for GET /api/status and Socket.IO connections
    #: (OPTIO_PROTECT_READS: 1, true or yes).
    protect_reads: bool = False
    #: Async mode of the web process: "eventlet" or "threading" (OPTIO_ASYNC_MODE); `flask run`
    #: (FLASK_RUN_FROM_CLI set) always serves with threads, as Flask-SocketIO does.
    async_mode: str = "eventlet"
    #: Most progress events per second sent to Socket.IO clients (updates are coalesced)
    #: (OPTIO_EMIT_HZ).
    emit_hz: float = 20.0
    #: Accept permessage-deflate when a WebSocket client offers it (browsers and Node do). Off:
    #: each state would be compressed once per client, which costs the web process far more
    #: CPU than the few hundred bytes it saves (OPTIO_WS_COMPRESSION: 1, true or yes).
    ws_compression: bool = False
    #: Socket.IO clients one web process serves at once; past it a new client is answered 503
    #: (it tries again, or the load balancer sends it to another web process) (OPTIO_MAX_CLIENTS).
    max_clients: int = 1000
    #: Log level of all optio processes (OPTIO_LOG_LEVEL).
    log_level: str = "INFO"
    #: A tick older than this many seconds makes /api/health answer 503; default
    #: max(10, 5 × tick_seconds) (OPTIO_HEALTH_TICK_MAX_AGE).
    health_tick_max_age: float | None = None

    def __post_init__(self) -> None:
        derived = {
            "cors_origins": (f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"),
            "url": f"http://localhost:{self.port}",
            "health_tick_max_age": max(10.0, 5 * self.tick_seconds),
            "redis_min_replicas": 1 if redis_urls.is_sentinel(self.redis_url) else 0,
            "broker_url": self.redis_url,
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if isinstance(self.cors_origins, list):
            object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        if not 0 < self.throttle_decrease < 1:
            raise ValueError(
                f"OPTIO_THROTTLE_DECREASE must be between 0 and 1, not {self.throttle_decrease}"
            )
        if not self.throttle_window > 0 or not self.min_rate > 0:
            raise ValueError("OPTIO_THROTTLE_WINDOW and OPTIO_MIN_RATE must be greater than 0")
        if redis_urls.is_sentinel(self.redis_url):
            redis_urls.parse_sentinel(self.redis_url)  # a clear error at start, not at first use
        if self.redis_min_replicas < 0:
            raise ValueError(
                f"OPTIO_REDIS_MIN_REPLICAS must be 0 or more, not {self.redis_min_replicas}"
            )
        if not 1 <= self.redis_wait_ms < self.redis_timeout * 1000:
            raise ValueError(
                f"OPTIO_REDIS_WAIT_MS must be at least 1 and below OPTIO_REDIS_TIMEOUT "
                f"({self.redis_timeout:g} s), not {self.redis_wait_ms}"
            )
        if self.keep_runs < 1:
            raise ValueError(f"OPTIO_KEEP_RUNS must be at least 1, not {self.keep_runs}")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError(
                f"OPTIO_WEBHOOK_URL must start with http:// or https://, not {self.webhook_url!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in ``environ`` (default: ``os.environ``); unset ones keep their default."""
        env = os.environ if environ is None else environ
        values = {
            f.name: _converter(f)(env[variable(f.name)])
            for f in fields(cls)
            if variable(f.name) in env
        }
        if env.get("FLASK_RUN_FROM_CLI"):  # `flask run` serves threads, not eventlet
            values["async_mode"] = "threading"
        return cls(**values)


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in text.split(",") if o.strip())


#: Settings whose variable is not ``OPTIO_`` + the field's name in capitals.
_VARIABLES = {
    "redis_url": "REDIS_URL",
    "port": "PORT",
    "stall_seconds_deprecated": "OPTIO_STALL_SECONDS",
}

#: How a variable's text becomes a value, by the field's type.
_CONVERTERS = {
    "int": int,
    "float": float,
    "str": str,
    "bool": lambda text: text.lower() in _TRUE,
    "tuple[str, ...]": _origins,
}


def variable(name: str) -> str:
    """The environment variable of setting ``name`` (the README's configuration table)."""
    return _VARIABLES.get(name, f"OPTIO_{name.upper()}")


def _converter(f: Field):
    if f.name == "log_level":
        return str.upper
    kind, _, optional = str(f.type).partition(" | ")
    if kind == "str" and optional:
        return lambda text: text or None  # set but empty: not set
    return _CONVERTERS[kind]


#: The settings of this process, read from the environment once.
SETTINGS = Settings.from_env()
