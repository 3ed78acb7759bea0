"""All configuration, read from the environment in one place.

Every setting has a documented default; the README's configuration table lists the same names.
"""

from __future__ import annotations

import os

from optio import names


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


#: Redis used as Celery broker, for counters and for pub/sub.
REDIS_URL: str = os.environ.get("REDIS_URL", "redis://localhost:6379/0")

#: TCP port of the web process (HTTP API, pages, Socket.IO).
PORT: int = _int("PORT", 3000)
#: Interface the web process binds to: loopback unless set (expose it with a token, see README).
HOST: str = os.environ.get("OPTIO_HOST", "127.0.0.1")

#: Seconds between two scheduler ticks fired by celery beat.
TICK_SECONDS: float = _float("OPTIO_TICK_SECONDS", 1.0)

#: Simulated work per demo job, in seconds.
JOB_SECONDS: float = _float("OPTIO_JOB_SECONDS", 0.0)

#: Import path of the job function, "module:function", called as f(run_id, job_id) -> str.
JOB_FUNC: str = os.environ.get("OPTIO_JOB_FUNC", "optio.jobs:demo")

#: Seconds a worker's lease on a message lasts; the worker renews it every third of this while
#: the message runs. A message whose lease runs out (its worker died, froze, or lost Redis for
#: this long) is sent again by the next tick. Any job length works: live workers renew.
LEASE_SECONDS: float = _float("OPTIO_LEASE_SECONDS", 10.0)

#: Seconds after which the broker hands an unacknowledged message to another worker (kombu's
#: visibility timeout). A second delivery of a message whose lease is alive is dropped, so this
#: only bounds how long a message a dead worker had fetched but not started waits.
VISIBILITY_TIMEOUT: int = _int("OPTIO_VISIBILITY_TIMEOUT", 20)

#: Attempts of a job that raises before it is recorded as failed.
JOB_ATTEMPTS: int = _int("OPTIO_JOB_ATTEMPTS", 4)
#: Seconds before the first retry of a job that raised; doubles each attempt (capped at 30 s).
RETRY_BACKOFF: float = _float("OPTIO_RETRY_BACKOFF", 1.0)

#: Replaced by leases (OPTIO_LEASE_SECONDS); set, it is ignored with a warning.
STALL_SECONDS_DEPRECATED: str | None = os.environ.get("OPTIO_STALL_SECONDS")

#: Seconds a Redis command may take before it fails (a hung Redis makes the API answer 503).
REDIS_TIMEOUT: float = _float("OPTIO_REDIS_TIMEOUT", 5.0)

#: Seconds a worker keeps retrying Redis calls while Redis is away (restart, failover).
REDIS_RETRY_SECONDS: float = _float("OPTIO_REDIS_RETRY_SECONDS", 120.0)

#: Seconds between liveness heartbeats of workers and beat (they expire after 3 of them).
HEARTBEAT_SECONDS: float = _float("OPTIO_HEARTBEAT_SECONDS", 5.0)

#: Seconds stored job results are kept after their last write.
RESULT_TTL: int = _int("OPTIO_RESULT_TTL", 7 * 24 * 3600)
#: Seconds the keys of a finished or stopped run (its state, bitmap, errors) are kept.
RUN_TTL: int = _int("OPTIO_RUN_TTL", 30 * 24 * 3600)

#: Largest accepted x (jobs in one run); the exactly-once bitmap costs x/8 bytes.
MAX_X: int = _int("OPTIO_MAX_X", 10_000_000)
#: Largest accepted y (jobs per minute).
MAX_Y: float = _float("OPTIO_MAX_Y", 2_000_000.0)

#: Most jobs of a run waiting in the broker at once (reserved, neither done nor started by a
#: worker); 0 means five ticks' worth at rate y, at least 1000. Above the workers' pace the run
#: goes at their pace and its state says heldBack.
MAX_OUTSTANDING: int = _int("OPTIO_MAX_OUTSTANDING", 0)

#: Largest job-id range carried by one Celery message (high rates batch jobs per message).
MAX_BATCH: int = _int("OPTIO_MAX_BATCH", 100)

#: Origins allowed for HTTP (CORS) and Socket.IO, comma separated.
CORS_ORIGINS: list[str] = [
    o.strip()
    for o in os.environ.get(
        "OPTIO_CORS_ORIGINS",
        f"http://localhost:{PORT},http://127.0.0.1:{PORT}",
    ).split(",")
    if o.strip()
]

#: Server that the clients `optio watch` and test-websocket-cli.js connect to.
URL: str = os.environ.get("OPTIO_URL", f"http://localhost:{PORT}")

#: When set, start/update/stop need "Authorization: Bearer <token>" (unset: no auth at all).
API_TOKEN: str | None = os.environ.get("OPTIO_API_TOKEN") or None
#: With a token set, also require it for GET /api/status and Socket.IO connections.
PROTECT_READS: bool = os.environ.get("OPTIO_PROTECT_READS", "").lower() in ("1", "true", "yes")

#: Async mode of the web process: "eventlet" (default) or "threading".
ASYNC_MODE: str = os.environ.get("OPTIO_ASYNC_MODE", "eventlet")

#: Most progress events per second sent to Socket.IO clients (updates are coalesced).
EMIT_HZ: float = _float("OPTIO_EMIT_HZ", 20.0)

#: Log level of all optio processes.
LOG_LEVEL: str = os.environ.get("OPTIO_LOG_LEVEL", "INFO").upper()

#: A tick older than this many seconds makes /api/health answer 503.
HEALTH_TICK_MAX_AGE: float = _float("OPTIO_HEALTH_TICK_MAX_AGE", max(10.0, 5 * TICK_SECONDS))

#: Redis pub/sub channel carrying the run state (kept here for callers; it lives in names.py).
CHANNEL = names.CHANNEL
