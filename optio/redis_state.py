"""The Lua scripts on a run's state, and the verbs that call them (:class:`RunStore`).

Counters change only through the Lua scripts in ``optio/lua``; each script that changes a
counter also publishes the resulting state on the progress channel in the same atomic step.
Callers use the verbs of :class:`RunStore`, never the raw client. Every key and every field of
the run hash is listed, with its meaning, in ``optio/names.py``, which builds the names; they
are re-exported here.
"""

from __future__ import annotations

import bisect
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
from redis.client import NEVER_DECODE
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError

from optio import config, names, redis_urls, schemas
from optio.names import (
    ACTIVE_KEY,
    CURRENT_KEY,
    LAST_TICK_KEY,
    METRICS_KEY,
    OUTBOX_KEY,
    RUNS_KEY,
    SERVER_KEY,
    done_key,
    errors_key,
    holders_key,
    messages_key,
    parse_message_key,
    results_key,
    run_key,
    run_keys,
)
from optio.replica_wait import ReplicaWait

log = logging.getLogger("optio")

LUA_DIR = Path(__file__).with_name("lua")


class RunActiveError(Exception):
    """A run is already active."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} is already running; stop it first (POST /api/stop)")
        self.run_id = run_id


class NoActiveRunError(Exception):
    """The operation needs a running run and there is none."""

    def __init__(self, message: str = "no run is running") -> None:
        super().__init__(message)


class NotPausedError(Exception):
    """Resume needs a paused run and there is none."""

    def __init__(self) -> None:
        super().__init__("no run is paused")


class UnknownRunError(Exception):
    """No run has this id (never started, or deleted: OPTIO_KEEP_RUNS, OPTIO_RUN_TTL)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id}")
        self.run_id = run_id


class RetryRefusedError(Exception):
    """retry-failed cannot run now; the message says why."""


class XBelowEnqueuedError(Exception):
    """The new total is below what is already enqueued."""

    def __init__(self, x: int, enqueued: int) -> None:
        super().__init__(f"x ({x}) cannot be below the {enqueued} jobs already enqueued")
        self.enqueued = enqueued


@dataclass(frozen=True)
class Reservation:
    """Jobs ``first .. first+count-1`` of ``run_id`` reserved by one tick, as messages."""

    run_id: str
    first: int
    count: int
    y_minute: float
    messages: list[str]


@dataclass(frozen=True)
class Lease:
    """A worker's start of a message: the run's status, and the jobs it now runs under lease."""

    status: str
    held_elsewhere: bool
    jobs: list[int]
    #: the token of the worker holding the live lease, when ``held_elsewhere``
    holder: str = ""


#: Upper bounds (seconds) of the job run-time histogram (optio_job_duration_seconds); the last
#: bucket is +Inf. Workers count into them; /metrics reads them from the metrics hash.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Durations:
    """Run times of the jobs a worker executed since its last count, as histogram buckets."""

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.total += seconds

    def __bool__(self) -> bool:
        return any(self.counts)

    def encode(self) -> str:
        """The form mark_processed.lua takes (its ARGV[7]): "count,sum,n0,n1,..."."""
        return ",".join([str(sum(self.counts)), repr(self.total), *map(str, self.counts)])


@dataclass(frozen=True)
class Lost:
    """What claim_lost took: expired leases and parked messages among ``keys``."""

    leases: int
    parked: int
    keys: list[str]


@dataclass(frozen=True)
class Flush:
    """What a counting call answered: jobs counted now, the run's status, the lease lost."""

    counted: int
    status: str
    lost: bool


def _now_arg(now_ms: int | None) -> str:
    return "" if now_ms is None else str(int(now_ms))


def _num_arg(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def new_run_id() -> str:
    return secrets.token_hex(6)


#: Windows without a throttle that bring a throttled run's effective rate from its floor back to
#: y: it climbs by y / THROTTLE_STEPS per OPTIO_THROTTLE_WINDOW (the additive increase).
THROTTLE_STEPS = 20

#: Most connections one process's client opens (one per thread using Redis at a moment).
MAX_CONNECTIONS = 10_000


def connect(url: str | None = None, *, timeout: float | None = None) -> redis.Redis:
    """A client for ``url`` (default ``REDIS_URL``) that returns text.

    Every command fails after OPTIO_REDIS_TIMEOUT seconds, so a hung Redis gives errors (503 in
    the web) instead of hanging requests; a dropped connection is retried once, a timeout never
    (a script may have run: the callers' own retries decide). With the Sentinel form of the URL
    the client follows a failover (``redis_urls.client_for``).
    """
    timeout = config.SETTINGS.redis_timeout if timeout is None else timeout
    return redis_urls.client_for(
        url or config.SETTINGS.redis_url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        health_check_interval=30,
        # redis-py 8 caps a pool at 100 connections and then raises; a worker with
        # `-P threads -c 200` runs 200 jobs at once (connections are made only when needed)
        max_connections=MAX_CONNECTIONS,
    )


#: Errors that mean "Redis is away for now" (restarting, loading its append-only file).
TRANSIENT_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)


def _retrying(method: Callable) -> Callable:
    """Retry a verb while Redis is away, for up to ``self.retry_for`` seconds, with a doubling
    delay; while the Sentinels answer that they have no primary (a failover is under way: it
    takes seconds), every 0.1 s, so the new primary is used as soon as it is named."""

    @functools.wraps(method)
    def wrapper(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            try:
                return method(self, *args, **kwargs)
            except TRANSIENT_ERRORS as exc:
                if isinstance(exc, MasterNotFoundError):
                    delay = 0.1
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper


class RunStore:
    """The verbs on optio's runs in one Redis: runs only (heartbeats are heartbeats.py's, the
    key names names.py's).

    ``retry_for``: seconds a verb keeps retrying while Redis is unreachable (workers wait out a
    Redis restart; the web process answers 503 at once with the default 0). ``run_ttl`` and
    ``result_ttl``: OPTIO_RUN_TTL and OPTIO_RESULT_TTL unless given. ``min_replicas`` and
    ``wait_ms``: the counting calls of workers (mark_processed, fail_job, throttle_job) return
    only once that many replicas have their write (Redis WAIT, see replica_wait.py);
    OPTIO_REDIS_MIN_REPLICAS and OPTIO_REDIS_WAIT_MS unless given.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        retry_for: float = 0.0,
        run_ttl: int | None = None,
        result_ttl: int | None = None,
        keep_runs: int | None = None,
        webhook: bool | None = None,
        min_replicas: int | None = None,
        wait_ms: int | None = None,
    ) -> None:
        self.client = client
        self.replicas = ReplicaWait(
            client,
            config.SETTINGS.redis_min_replicas if min_replicas is None else min_replicas,
            config.SETTINGS.redis_wait_ms if wait_ms is None else wait_ms,
        )
        self.retry_for = retry_for
        #: run_id of the Redis server this store last saw (see primary_changed)
        self._server: str | None = None
        self.keep_runs = config.SETTINGS.keep_runs if keep_runs is None else keep_runs
        self.webhook = bool(config.SETTINGS.webhook_url) if webhook is None else webhook
        run_ttl = config.SETTINGS.run_ttl if run_ttl is None else run_ttl
        result_ttl = config.SETTINGS.result_ttl if result_ttl is None else result_ttl
        prelude = (LUA_DIR / "_prelude.lua").read_text()
        header = (
            f"local OPTIO_CHANNEL = {json.dumps(names.CHANNEL)}\n"
            f"local OPTIO_RUN_TTL = {int(run_ttl)}\n"
            f"local OPTIO_RESULT_TTL = {int(result_ttl)}\n"
        )
        self._scripts = {
            path.stem: client.register_script(header + prelude + path.read_text())
            for path in sorted(LUA_DIR.glob("*.lua"))
            if not path.stem.startswith("_")
        }

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=keys, args=args)

    def _control(self, name: str, run_id: str, args: list[Any]) -> Any:
        """Call a script that may end the run or count jobs: run keys, active, current, webhook
        outbox, metrics."""
        return self._run(name, self._control_keys(run_id), args)

    def _counting(self, name: str, run_id: str, args: list[Any]) -> Any:
        """``_control`` for a worker's count: returns once the replicas have it (WAIT)."""
        return self.replicas.call(self._scripts[name], self._control_keys(run_id), args)

    @staticmethod
    def _control_keys(run_id: str) -> list[str]:
        return [*run_keys(run_id), ACTIVE_KEY, CURRENT_KEY, OUTBOX_KEY, METRICS_KEY]

    # -- runs -------------------------------------------------------------------------------

    @_retrying
    def start_run(self, x: int, y: float, *, now_ms: int | None = None) -> str:
        """Start a run of x jobs at y jobs/min; raises RunActiveError while one runs."""
        run_id = new_run_id()
        started, other = self._run(
            "start_run",
            [*run_keys(run_id), ACTIVE_KEY, CURRENT_KEY, RUNS_KEY],
            [run_id, x, _num_arg(float(y)), _now_arg(now_ms), int(self.webhook)],
        )
        if not started:
            raise RunActiveError(other)
        self.prune_runs()
        return run_id

    @_retrying
    def prune_runs(self) -> list[str]:
        """Delete the runs older than the newest ``keep_runs`` (their keys and history entry);
        returns their ids."""
        old = self.client.zrange(RUNS_KEY, 0, -(self.keep_runs + 1))
        if old:
            with self.client.pipeline(transaction=False) as pipe:
                for run_id in old:
                    pipe.delete(*run_keys(run_id))
                pipe.zrem(RUNS_KEY, *old)
                pipe.execute()
        return old

    @_retrying
    def pause_run(self, *, now_ms: int | None = None) -> str:
        """Pause the running run and return its id (NoActiveRunError when none is running)."""
        run_id = self.active_run_id()
        if run_id is None:
            raise NoActiveRunError()
        done, *why = self._run(
            "pause_run", [*run_keys(run_id), ACTIVE_KEY, CURRENT_KEY], [run_id, _now_arg(now_ms)]
        )
        if not done:
            raise NoActiveRunError(
                f"run {run_id} is already paused" if why == ["paused"] else "no run is running"
            )
        return run_id

    @_retrying
    def resume_run(self, *, now_ms: int | None = None) -> str:
        """Resume the paused run and return its id (NotPausedError when none is paused)."""
        run_id = self.active_run_id()
        if (
            run_id is None
            or not self._run(
                "resume_run",
                [*run_keys(run_id), ACTIVE_KEY, CURRENT_KEY],
                [run_id, _now_arg(now_ms)],
            )[0]
        ):
            raise NotPausedError()
        return run_id

    @_retrying
    def retry_failed(self, run_id: str, *, now_ms: int | None = None) -> int:
        """Put the failed jobs of completed run ``run_id`` back, to run at its rate; returns
        how many. Raises UnknownRunError, RunActiveError or RetryRefusedError."""
        count, *why = self._run(
            "retry_failed",
            [*run_keys(run_id), ACTIVE_KEY, CURRENT_KEY],
            [run_id, _now_arg(now_ms)],
        )
        if count:
            return int(count)
        reason, detail = why
        if reason == "gone":
            raise UnknownRunError(run_id)
        if reason == "busy":
            raise RunActiveError(detail)
        if reason == "not_completed":
            raise RetryRefusedError(
                f"run {run_id} is {detail}: only a completed run's failed jobs can be retried"
            )
        raise RetryRefusedError(f"run {run_id} has no failed jobs")

    @_retrying
    def list_runs(
        self, limit: int = 20, before: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The states of up to ``limit`` runs, newest first, older than run ``before`` when
        given; and the id to pass as ``before`` for the next page (None: no more).
        Raises UnknownRunError when ``before`` is not in the history."""
        start = 0
        if before is not None:
            rank = self.client.zrevrank(RUNS_KEY, before)
            if rank is None:
                raise UnknownRunError(before)
            start = rank + 1
        states: list[dict[str, Any]] = []
        gone: list[str] = []
        while len(states) < limit:
            ids = self.client.zrevrange(RUNS_KEY, start, start + limit - len(states) - 1)
            if not ids:
                break
            start += len(ids)
            for run_id in ids:
                state = self.run_state(run_id)
                if state is None:
                    gone.append(run_id)  # expired (OPTIO_RUN_TTL): forget it
                else:
                    states.append(state)
        if gone:
            self.client.zrem(RUNS_KEY, *gone)
        # the forgotten runs ranked before `start`: the next run, if any, now ranks lower
        more = bool(self.client.zrevrange(RUNS_KEY, start - len(gone), start - len(gone)))
        return states, (states[-1]["runId"] if states and more else None)

    @_retrying
    def run_errors(self, run_id: str, most: int = 20) -> list[dict[str, Any]]:
        """Up to ``most`` errors of jobs of ``run_id`` that failed for good, by job id."""
        found: dict[int, str] = {}
        cursor = 0
        while True:
            cursor, chunk = self.client.hscan(errors_key(run_id), cursor, count=most)
            found.update((int(job), error) for job, error in chunk.items())
            if cursor == 0 or len(found) >= most:
                break
        return [{"job": job, "error": found[job]} for job in sorted(found)[:most]]

    @_retrying
    def webhook_error(self, run_id: str) -> str | None:
        return self.client.hget(run_key(run_id), "webhookError") or None

    @_retrying
    def update_run(
        self, x: int | None = None, y: float | None = None, *, now_ms: int | None = None
    ) -> None:
        """Change the active run's total and/or rate."""
        run_id = self.active_run_id()
        if run_id is None:
            raise NoActiveRunError()
        result = self._control(
            "update_run",
            run_id,
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
        if run_id is None or not self._control("stop_run", run_id, [run_id, _now_arg(now_ms)]):
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
    def run_rate(self, run_id: str) -> float:
        """The run's effective rate (jobs/min: y unless jobs throttled); 0 when the run is
        unknown."""
        rate, y = self.client.hmget(run_key(run_id), "rateNow", "yMinute")
        return float(rate or y or 0)

    @_retrying
    def reserve_due(
        self,
        run_id: str,
        tick_seconds: float,
        *,
        batch: int = 1,
        max_outstanding: int = 0,
        unconfirmed_ms: int = 5000,
        throttle_window_s: float | None = None,
        now_ms: int | None = None,
    ) -> Reservation:
        """Reserve the jobs of ``run_id`` due now, in messages of at most ``batch`` jobs; also
        records the tick time.

        At most ``max_outstanding`` jobs wait (reserved, neither counted nor leased by a worker)
        at once (0: five ticks' worth, at least 1000). A message not confirmed within
        ``unconfirmed_ms`` is taken by ``claim_lost`` to be sent again. After a throttle, the
        effective rate climbs back by y / THROTTLE_STEPS per ``throttle_window_s`` (default
        OPTIO_THROTTLE_WINDOW) without a throttle.
        """
        window = config.SETTINGS.throttle_window if throttle_window_s is None else throttle_window_s
        first, count, y, *messages = self._run(
            "reserve_due",
            [*run_keys(run_id), ACTIVE_KEY, LAST_TICK_KEY],
            [
                run_id,
                repr(float(tick_seconds)),
                _now_arg(now_ms),
                max_outstanding,
                max(1, batch),
                unconfirmed_ms,
                int(window * 1000),
                THROTTLE_STEPS,
            ],
        )
        return Reservation(run_id, int(first), int(count), float(y), messages)

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
    def primary_changed(self) -> bool:
        """Whether the Redis server answering now is another one than the one any process saw
        last (a failover to a replica, or a restart): its ``run_id`` is kept in optio:server."""
        server = self.client.info("server")["run_id"]
        if server == self._server:
            return False
        previous = self.client.set(SERVER_KEY, server, get=True)
        self._server = server
        return previous is not None and previous != server

    @_retrying
    def broker_idle_with_jobs_left(self, run_id: str, queue: str) -> bool:
        """Whether Celery's ``queue`` and its unacknowledged messages are both empty (the broker
        being this Redis: kombu's Redis transport keeps them in ``queue`` and
        names.KOMBU_UNACKED) while jobs of ``run_id`` are neither counted nor leased."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(queue)
            pipe.hlen(names.KOMBU_UNACKED)
            pipe.hmget(run_key(run_id), "reserved", "processed", "failed", "leasedJobs")
            waiting, unacked, counts = pipe.execute()
        reserved, processed, failed, leased = (int(v or 0) for v in counts)
        return waiting == 0 and unacked == 0 and reserved - processed - failed - leased > 0

    @_retrying
    def unaccounted_jobs(self, run_id: str) -> list[int]:
        """Jobs of ``run_id`` that were sent and that nothing accounts for: not counted, not in a
        leased message, not due to be sent (again): waiting in the broker, or lost by it.

        Reads the whole done bitmap (x/8 bytes): for use after a failover, not every tick. Not
        one snapshot: a job counted or leased meanwhile may be listed too (sending it again is
        harmless), but a job that nothing accounts for is always listed.
        """
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hkeys(holders_key(run_id))
            pipe.zrange(messages_key(run_id), 0, -1)
            pipe.hget(run_key(run_id), "reserved")
            pipe.execute_command("GET", done_key(run_id), **{NEVER_DECODE: []})
            held, due, reserved, done = pipe.execute()
        covered: set[int] = set()
        for key in (*held, *due):
            first, count, _ = parse_message_key(key)
            covered.update(range(first, first + count))
        done = done or b""
        total = int(reserved or 0)
        jobs = []
        # bit k of the bitmap is bit 7 - k % 8 of byte k // 8; skip the leading all-done bytes
        for index in range(len(done) - len(done.lstrip(b"\xff")), (total + 7) // 8):
            byte = done[index] if index < len(done) else 0
            if byte == 0xFF:
                continue
            for job in range(index * 8, min(index * 8 + 8, total)):
                if not byte & (0x80 >> (job & 7)) and job not in covered:
                    jobs.append(job)
        return jobs

    @_retrying
    def server_time_ms(self) -> int:
        seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000

    @_retrying
    def confirm_enqueued(self, run_id: str, count: int, messages: list[str] = ()) -> int:
        """The ``messages`` are in the broker; ``count`` newly reserved jobs among them are
        counted as enqueued (publishes). Returns the run's enqueued count."""
        return int(
            self._run(
                "confirm_enqueued", [*run_keys(run_id), CURRENT_KEY], [run_id, count, *messages]
            )
        )

    @_retrying
    def claim_lost(
        self, run_id: str, *, most: int, unconfirmed_ms: int = 5000, now_ms: int | None = None
    ) -> tuple[int, list[str]]:
        """Messages to send again now: expired leases, due retries, unconfirmed reservations
        (see claim_lost.lua), and after a pause the messages parked during it."""
        leases, parked, *keys = self._run(
            "claim_lost",
            [*run_keys(run_id), ACTIVE_KEY],
            [run_id, _now_arg(now_ms), unconfirmed_ms, most],
        )
        return Lost(int(leases), int(parked), keys)

    # -- workers ----------------------------------------------------------------------------

    @_retrying
    def lease_message(
        self,
        run_id: str,
        key: str,
        first: int,
        count: int,
        token: str,
        lease_ms: int,
        *,
        take_from: str = "",
        now_ms: int | None = None,
    ) -> Lease:
        """Start message ``key``: lease it for ``lease_ms`` and get the jobs still to run.
        ``take_from``: the token of a holder known to be dead, whose live lease is taken over."""
        status, held, *jobs = self._run(
            "lease_message",
            run_keys(run_id),
            [key, first, count, token, lease_ms, _now_arg(now_ms), take_from],
        )
        if held == 1:
            return Lease(status, True, [], jobs[0])
        return Lease(status, False, [int(j) for j in jobs])

    @_retrying
    def renew_leases(
        self, run_id: str, held: dict[str, str], lease_ms: int, *, now_ms: int | None = None
    ) -> tuple[str, list[str]]:
        """Extend the leases ``held`` (message key -> token) by ``lease_ms`` from now.
        Returns (the run's status, keys of the leases lost)."""
        args: list[Any] = [lease_ms, _now_arg(now_ms)]
        for key, token in held.items():
            args += [key, token]
        status, *lost = self._run("renew_leases", run_keys(run_id), args)
        return status, lost

    @_retrying
    def mark_processed(
        self,
        run_id: str,
        results: dict[int, str],
        *,
        message: str = "",
        token: str = "",
        handled: int = 0,
        release: bool = False,
        durations: Durations | None = None,
        now_ms: int | None = None,
    ) -> Flush:
        """Store results and count each job id once; account ``handled`` jobs of the leased
        ``message`` and, with ``release``, give its lease up; add the run times of the jobs
        executed since the last call to the metrics (all in one call)."""
        args: list[Any] = [
            run_id,
            _now_arg(now_ms),
            message,
            token,
            handled,
            int(release),
            durations.encode() if durations else "",
        ]
        for job_id, result in results.items():
            args += [job_id, result]
        counted, status, lost = self._counting("mark_processed", run_id, args)
        return Flush(int(counted), status, lost == 1)

    @_retrying
    def throttle_job(
        self,
        run_id: str,
        job_id: int,
        retry_after_s: float | None = None,
        *,
        decrease: float | None = None,
        window_s: float | None = None,
        min_rate: float | None = None,
        now_ms: int | None = None,
    ) -> tuple[str, float, float]:
        """Job ``job_id`` was throttled: run it again later (no attempt used) and cut the run's
        effective rate (once per window). Returns (outcome, seconds until it runs again, the
        effective rate in jobs/min); outcome 'throttled', 'done' or 'ended'."""
        outcome, wait_ms, rate = self._counting(
            "throttle_job",
            run_id,
            [
                run_id,
                job_id,
                _num_arg(None if retry_after_s is None else float(retry_after_s)),
                repr(float(config.SETTINGS.throttle_decrease if decrease is None else decrease)),
                int((config.SETTINGS.throttle_window if window_s is None else window_s) * 1000),
                repr(float(config.SETTINGS.min_rate if min_rate is None else min_rate)),
                _now_arg(now_ms),
            ],
        )
        return outcome, int(wait_ms) / 1000, float(rate)

    @_retrying
    def fail_job(
        self,
        run_id: str,
        job_id: int,
        error: str,
        *,
        attempts: int,
        backoff_s: float,
        max_delay_s: float = 30.0,
        now_ms: int | None = None,
    ) -> tuple[str, int, float]:
        """A job raised: schedule its retry after a doubling backoff, or count it as failed once
        ``attempts`` are spent. Returns (outcome, attempts so far, retry delay in s); outcome is
        'retry', 'failed', 'done' (counted before) or 'ended' (the run is not running)."""
        outcome, made, delay = self._counting(
            "fail_job",
            run_id,
            [
                run_id,
                job_id,
                error[:2000],
                attempts,
                int(backoff_s * 1000),
                int(max_delay_s * 1000),
                _now_arg(now_ms),
            ],
        )
        return outcome, int(made), int(delay) / 1000

    # -- webhooks ---------------------------------------------------------------------------

    @_retrying
    def claim_webhooks(self, claim_ms: int, most: int = 10, *, now_ms: int | None = None) -> list:
        """Run ids whose completion webhook is due, claimed for ``claim_ms`` by the caller."""
        return self._run("claim_webhooks", [OUTBOX_KEY], [_now_arg(now_ms), claim_ms, most])

    @_retrying
    def record_webhook(self, run_id: str, outcome: str, *, due_ms: int = 0, error: str = "") -> int:
        """Record a delivery attempt: 'delivered', 'failed', or 'retry' at ``due_ms``."""
        return int(
            self._run(
                "record_webhook",
                [run_key(run_id), OUTBOX_KEY, CURRENT_KEY],
                [run_id, outcome, due_ms, error[:500]],
            )
        )

    def error(self, run_id: str, job_id: int) -> str | None:
        return self.client.hget(errors_key(run_id), str(job_id))

    def result(self, run_id: str, job_id: int) -> str | None:
        return self.client.hget(results_key(run_id), str(job_id))


def idle_state() -> dict[str, Any]:
    """The state shown before any run was started (the defaults of ``schemas.RunState``)."""
    return schemas.idle_state()
