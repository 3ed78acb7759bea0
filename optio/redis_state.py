"""Every Redis key, Lua script and verb on the run state.

Counters change only through the Lua scripts in ``optio/lua``; each script that changes a
counter also publishes the resulting state on ``optio:progress`` in the same atomic step.
Callers use the verbs of :class:`RunStore`, never the raw client.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from optio import config

log = logging.getLogger("optio")

LUA_DIR = Path(__file__).with_name("lua")

ACTIVE_KEY = "optio:active"  # id of the run that is running, absent when none is
CURRENT_KEY = "optio:current"  # id of the run clients are shown (the latest started)
LAST_TICK_KEY = "optio:last_tick"  # ms timestamp of the last scheduler tick
WORKER_KEY_PREFIX = "optio:worker:"  # one key per live worker, expiring without heartbeats
BEAT_KEY_PREFIX = "optio:beat:"  # one key per live beat process


def run_key(run_id: str) -> str:
    return f"optio:run:{run_id}"


def done_key(run_id: str) -> str:
    """Bitmap with one bit per job id: set once the job is counted."""
    return f"optio:run:{run_id}:done"


def results_key(run_id: str) -> str:
    return f"optio:run:{run_id}:results"


def errors_key(run_id: str) -> str:
    """Hash job id -> error of the jobs that failed for good."""
    return f"optio:run:{run_id}:errors"


def attempts_key(run_id: str) -> str:
    """Hash job id -> attempts made, for jobs that raised at least once."""
    return f"optio:run:{run_id}:attempts"


class RunActiveError(Exception):
    """A run is already active."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} is already running; stop it first (POST /api/stop)")
        self.run_id = run_id


class NoActiveRunError(Exception):
    """The operation needs a running run and there is none."""

    def __init__(self) -> None:
        super().__init__("no run is running")


class XBelowEnqueuedError(Exception):
    """The new total is below what is already enqueued."""

    def __init__(self, x: int, enqueued: int) -> None:
        super().__init__(f"x ({x}) cannot be below the {enqueued} jobs already enqueued")
        self.enqueued = enqueued


@dataclass(frozen=True)
class Reservation:
    """Jobs ``first .. first+count-1`` of ``run_id`` reserved by one tick."""

    run_id: str
    first: int
    count: int
    y_minute: float


def _now_arg(now_ms: int | None) -> str:
    return "" if now_ms is None else str(int(now_ms))


def _num_arg(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def new_run_id() -> str:
    return secrets.token_hex(6)


def connect(url: str | None = None) -> redis.Redis:
    """A client for ``url`` (default ``REDIS_URL``) that returns text.

    Every command fails after OPTIO_REDIS_TIMEOUT seconds, so a hung Redis gives errors (503 in
    the web) instead of hanging requests; a dropped connection is retried once, a timeout never
    (a script may have run: the callers' own retries decide).
    """
    return redis.Redis.from_url(
        url or config.REDIS_URL,
        decode_responses=True,
        socket_connect_timeout=config.REDIS_TIMEOUT,
        socket_timeout=config.REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        health_check_interval=30,
    )


#: Errors that mean "Redis is away for now" (restarting, loading its append-only file).
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)


def _retrying(method: Callable) -> Callable:
    """Retry a verb while Redis is away, for up to ``self.retry_for`` seconds."""

    @functools.wraps(method)
    def wrapper(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            try:
                return method(self, *args, **kwargs)
            except TRANSIENT_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper


class RunStore:
    """The verbs on optio's state in one Redis.

    ``retry_for``: seconds a verb keeps retrying while Redis is unreachable (workers wait out a
    Redis restart; the web process answers 503 at once with the default 0).
    """

    def __init__(self, client: redis.Redis, *, retry_for: float = 0.0) -> None:
        self.client = client
        self.retry_for = retry_for
        prelude = (LUA_DIR / "_prelude.lua").read_text()
        header = f"local OPTIO_CHANNEL = {json.dumps(config.CHANNEL)}\n"
        self._scripts = {
            path.stem: client.register_script(header + prelude + path.read_text())
            for path in sorted(LUA_DIR.glob("*.lua"))
            if not path.stem.startswith("_")
        }

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=keys, args=args)

    # -- runs -------------------------------------------------------------------------------

    @_retrying
    def start_run(self, x: int, y: float, *, now_ms: int | None = None) -> str:
        """Start a run of x jobs at y jobs/min; raises RunActiveError while one runs."""
        run_id = new_run_id()
        started, other = self._run(
            "start_run",
            [ACTIVE_KEY, CURRENT_KEY, run_key(run_id)],
            [run_id, x, _num_arg(float(y)), _now_arg(now_ms)],
        )
        if not started:
            raise RunActiveError(other)
        return run_id

    @_retrying
    def update_run(
        self, x: int | None = None, y: float | None = None, *, now_ms: int | None = None
    ) -> None:
        """Change the active run's total and/or rate."""
        run_id = self.active_run_id()
        if run_id is None:
            raise NoActiveRunError()
        result = self._run(
            "update_run",
            [ACTIVE_KEY, run_key(run_id), CURRENT_KEY],
            [run_id, _num_arg(x), _num_arg(None if y is None else float(y)), _now_arg(now_ms)],
        )
        if result[0] == 1:
            return
        if result[1] == "x_below_enqueued":
            raise XBelowEnqueuedError(x or 0, int(result[2]))
        raise NoActiveRunError()

    @_retrying
    def stop_run(self, *, now_ms: int | None = None) -> str:
        """Stop the active run and return its id."""
        run_id = self.active_run_id()
        if run_id is None or not self._run(
            "stop_run", [ACTIVE_KEY, run_key(run_id), CURRENT_KEY], [run_id, _now_arg(now_ms)]
        ):
            raise NoActiveRunError()
        return run_id

    @_retrying
    def active_run_id(self) -> str | None:
        return self.client.get(ACTIVE_KEY)

    @_retrying
    def current_run_id(self) -> str | None:
        return self.client.get(CURRENT_KEY)

    @_retrying
    def run_state(self, run_id: str) -> dict[str, Any] | None:
        text = self._run("read_state", [run_key(run_id)], [])
        return json.loads(text) if text else None

    @_retrying
    def current_state(self) -> dict[str, Any]:
        """The watched run's state, or an idle state when no run was ever started."""
        run_id = self.current_run_id()
        state = self.run_state(run_id) if run_id else None
        return state or idle_state()

    # -- scheduler --------------------------------------------------------------------------

    @_retrying
    def reserve_due(
        self,
        run_id: str,
        tick_seconds: float,
        *,
        max_outstanding: int = 0,
        now_ms: int | None = None,
    ) -> Reservation:
        """Reserve the jobs of ``run_id`` due now; also records the tick time.

        At most ``max_outstanding`` jobs are reserved and not yet counted at once (0: five
        ticks' worth, at least 1000).
        """
        first, count, y = self._run(
            "reserve_due",
            [ACTIVE_KEY, run_key(run_id), LAST_TICK_KEY],
            [run_id, repr(float(tick_seconds)), _now_arg(now_ms), max_outstanding],
        )
        return Reservation(run_id, int(first), int(count), float(y))

    @_retrying
    def record_tick(self) -> None:
        """Record a tick that found no active run."""
        seconds, micros = self.client.time()
        self.client.set(LAST_TICK_KEY, seconds * 1000 + micros // 1000)

    @_retrying
    def last_tick_ms(self) -> int | None:
        value = self.client.get(LAST_TICK_KEY)
        return int(float(value)) if value else None

    @_retrying
    def server_time_ms(self) -> int:
        seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000

    @_retrying
    def confirm_enqueued(self, run_id: str, count: int) -> int:
        """Count ``count`` jobs as enqueued (their messages are in the broker); publishes."""
        return int(self._run("confirm_enqueued", [run_key(run_id), CURRENT_KEY], [run_id, count]))

    # -- workers ----------------------------------------------------------------------------

    @_retrying
    def pending_jobs(self, run_id: str, first: int, count: int) -> tuple[str | None, list[int]]:
        """The run's status and which of jobs ``first .. first+count-1`` are not counted yet,
        in one round trip."""
        ops: list[Any] = []
        for job_id in range(first, first + count):
            ops += ["GET", "u1", job_id]
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(run_key(run_id), "status")
            pipe.execute_command("BITFIELD_RO", done_key(run_id), *ops)
            status, bits = pipe.execute()
        return status, [first + i for i, bit in enumerate(bits) if not bit]

    @_retrying
    def mark_processed(
        self, run_id: str, results: dict[int, str], *, now_ms: int | None = None
    ) -> int:
        """Store results and count each job id once; returns how many were counted now."""
        args: list[Any] = [run_id, config.RESULT_TTL, _now_arg(now_ms)]
        for job_id, result in results.items():
            args += [job_id, result]
        counted = self._run(
            "mark_processed",
            [run_key(run_id), done_key(run_id), results_key(run_id), ACTIVE_KEY, CURRENT_KEY],
            args,
        )
        return max(0, int(counted))

    @_retrying
    def mark_failed(
        self, run_id: str, job_id: int, error: str, *, now_ms: int | None = None
    ) -> bool:
        """Count the job as failed for good, with its error; False when it was counted before."""
        outcome = self._run(
            "mark_failed",
            [run_key(run_id), done_key(run_id), errors_key(run_id), ACTIVE_KEY, CURRENT_KEY],
            [run_id, job_id, error[:2000], config.RESULT_TTL, _now_arg(now_ms)],
        )
        return outcome == 1

    @_retrying
    def add_attempt(self, run_id: str, job_id: int) -> int:
        """Record one more failed attempt of a job; returns the attempts so far."""
        key = attempts_key(run_id)
        with self.client.pipeline() as pipe:
            pipe.hincrby(key, str(job_id), 1)
            pipe.expire(key, config.RESULT_TTL)
            attempts, _ = pipe.execute()
        return int(attempts)

    @_retrying
    def claim_stalled(
        self, run_id: str, stall_seconds: float, most: int, *, now_ms: int | None = None
    ) -> list[int]:
        """Job ids of a stalled run that were reserved but never counted (see claim_stalled.lua)."""
        ids = self._run(
            "claim_stalled",
            [ACTIVE_KEY, run_key(run_id), done_key(run_id), CURRENT_KEY],
            [run_id, int(stall_seconds * 1000), most, _now_arg(now_ms)],
        )
        return [int(i) for i in ids]

    def error(self, run_id: str, job_id: int) -> str | None:
        return self.client.hget(errors_key(run_id), str(job_id))

    # -- liveness ---------------------------------------------------------------------------

    def heartbeat(self, prefix: str, name: str, ttl: float) -> None:
        """Say that process ``name`` is alive for the next ``ttl`` seconds."""
        self.client.set(prefix + name, str(self.server_time_ms()), px=int(ttl * 1000))

    def forget(self, prefix: str, name: str) -> None:
        self.client.delete(prefix + name)

    def alive(self, prefix: str) -> list[str]:
        """Names of the processes with a live heartbeat under ``prefix``."""
        return sorted(
            k[len(prefix) :] for k in self.client.scan_iter(match=prefix + "*", count=100)
        )

    def result(self, run_id: str, job_id: int) -> str | None:
        return self.client.hget(results_key(run_id), str(job_id))

    def result_count(self, run_id: str) -> int:
        return int(self.client.hlen(results_key(run_id)))


def idle_state() -> dict[str, Any]:
    """The state shown before any run was started."""
    return {
        "running": False,
        "xTotal": 0,
        "yMinute": 0,
        "enqueued": 0,
        "processed": 0,
        "failed": 0,
        "runId": None,
        "status": "idle",
        "startedAt": None,
        "finishedAt": None,
    }
