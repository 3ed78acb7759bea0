"""Connections to the Redis of ``REDIS_URL``: the client every process uses, and the retry
that lets a worker wait out a Redis restart or a Sentinel failover."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import MasterDownError, OutOfMemoryError, ReadOnlyError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from optio import urls

log = logging.getLogger("optio")

T = TypeVar("T")

#: Most connections one process's client opens (one per thread using Redis at a moment).
MAX_CONNECTIONS = 10_000


def connect(url: str, *, timeout: float, decode: bool = True) -> redis.Redis:
    """A client for ``url`` (``REDIS_URL``) that returns text (``decode`` False: bytes).

    Every command fails after ``timeout`` seconds (OPTIO_REDIS_TIMEOUT), so a hung Redis gives
    errors (503 in the web) instead of hanging requests; a dropped connection is retried once, a
    timeout never (a script may have run: the callers' own retries decide). With the Sentinel form
    of the URL
    the client follows a failover (:func:`client_for`).
    """
    return client_for(
        url,
        decode_responses=decode,
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
#: Replies of a Redis that refuses a command for now, before running any of it: out of memory
#: under ``maxmemory`` with noeviction (OOM), a replica that was the primary (READONLY, a
#: failover), a replica without its primary (MASTERDOWN), writes stopped after a failed save
#: (MISCONF), too few replicas for ``min-replicas-to-write`` (NOREPLICAS), a long script (BUSY).
REFUSED_FOR_NOW = (OutOfMemoryError, ReadOnlyError, MasterDownError)
REFUSED_CODES = ("OOM", "READONLY", "MASTERDOWN", "MISCONF", "NOREPLICAS", "BUSY")


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says that Redis is away or refuses commands for now (TRANSIENT_ERRORS,
    REFUSED_FOR_NOW): the same call may succeed later, and nothing of it ran."""
    if isinstance(exc, (*TRANSIENT_ERRORS, *REFUSED_FOR_NOW)):
        return True
    if not isinstance(exc, redis.ResponseError):
        return False
    code = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
    return code in REFUSED_CODES


class Retrying(Protocol):
    """What :func:`retrying` needs of the object whose verbs it wraps."""

    retry_for: float


def retrying(method: Callable[..., T]) -> Callable[..., T]:
    """Retry a verb while Redis is away or refuses it for now (:func:`transient`), for up to
    ``self.retry_for`` seconds, with a doubling delay; while the Sentinels answer that they have
    no primary (a failover is under way: it takes seconds), every 0.1 s, so the new primary is
    used as soon as it is named. Any other error, or one that lasts longer, is raised."""

    @functools.wraps(method)
    def wrapper(self: Retrying, *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not transient(exc):
                    raise
                if isinstance(exc, MasterNotFoundError):
                    delay = 0.1
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "Redis unavailable (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    return wrapper


def client_for(url: str, **options: Any) -> redis.Redis:
    """A client of the Redis ``url`` names, with redis-py's connection ``options``.

    For the Sentinel form, a client of the current primary: each new connection asks the
    Sentinels where it is (redis-py's ``Sentinel.master_for``), so a failover is followed once
    the old primary's connections fail. The Sentinels get the same socket timeouts.
    """
    if not urls.is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    parsed = urls.parse_sentinel(url)
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    if parsed.sentinel_username:
        sentinel_options["username"] = parsed.sentinel_username
    if parsed.sentinel_password:
        sentinel_options["password"] = parsed.sentinel_password
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        parsed.service,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        connection_class=_sentinel_connection_class(),
        **options,
    )


@functools.cache
def _sentinel_connection_class() -> type:
    class SentinelConnection(SentinelManagedConnection):
        """redis-py's Sentinel connection, except that a connection dropped within a command's
        retry asks the Sentinels for the primary again. (redis-py 8.1 reconnects it to the
        address it had: after a failover, the old primary, which fails the command once more.)"""

        def send_packed_command(self, command, check_health=True):
            if not self._sock:
                self.connect()
            super().send_packed_command(command, check_health)

    return SentinelConnection
