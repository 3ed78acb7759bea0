"""Counting writes that reach a replica before a worker goes on: Redis ``WAIT`` after the script.

Replication is asynchronous: a job counted on the primary a moment before it dies is missing on
the replica that Sentinel promotes, and if the worker had already acknowledged the message, the
job would never run or count again. So a worker's counting call (``mark_processed``,
``fail_job``, ``throttle_job``) runs its script and then ``WAIT replicas timeout`` on the same
connection, in one pipelined round trip: the call returns only once the replicas have everything
up to that write (the replication stream is one ordered log, so the job's earlier writes, and the
broker's, are there too). When the primary dies before the replicas answered, the call fails,
is retried on the new primary, and counts there (the done bitmap makes that safe).

When fewer replicas answer within the timeout (a replica down or lagging, or none left after a
failover), waiting on every call would stall the run for nothing: the waiter warns, stops
waiting, and checks with ``ROLE`` at most every ``recheck_s`` whether enough replicas are online
again. Meanwhile a failover could lose the last counts, as without WAIT.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

log = logging.getLogger("optio")

#: Seconds between ROLE checks while too few replicas answer.
RECHECK_SECONDS = 1.0


class ReplicaWait:
    """Runs a counting script and WAITs for ``replicas`` of them, ``timeout_ms`` at most."""

    def __init__(
        self,
        client: redis.Redis,
        replicas: int,
        timeout_ms: int,
        *,
        recheck_s: float = RECHECK_SECONDS,
    ) -> None:
        self.client = client
        self.replicas = replicas
        self.timeout_ms = max(1, int(timeout_ms))  # WAIT's 0 would block for ever
        self.recheck_s = recheck_s
        #: while not None: too few replicas answered; next ROLE check at this monotonic time
        self._short_until: float | None = None
        self._lock = threading.Lock()
        #: calls that waited, and those that found too few replicas (for tests and logs)
        self.waited = 0
        self.short = 0

    def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``script(keys, args)``, then WAIT (unless replicas are short: see the module)."""
        if self.replicas <= 0 or self._short():
            return script(keys=keys, args=args)
        try:
            result, acked = self._pipelined(script, keys, args)
        except NoScriptError:  # a new primary (failover) or a flushed script cache
            self.client.script_load(script.script)
            result, acked = self._pipelined(script, keys, args)
        self.waited += 1
        if int(acked) < self.replicas:
            self._went_short(int(acked))
        return result

    def _pipelined(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> list:
        # one connection for both: WAIT waits for the replication offset of its own client's
        # last write
        with self.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            return pipe.execute()

    def _went_short(self, acked: int) -> None:
        with self._lock:
            first = self._short_until is None
            self._short_until = time.monotonic() + self.recheck_s
            self.short += 1
        if first:
            log.warning(
                "[worker] Only %d of %d Redis replica(s) confirmed a count within %d ms: going "
                "on without waiting until enough are online (a failover meanwhile could lose "
                "the latest counts)",
                acked,
                self.replicas,
                self.timeout_ms,
            )

    def _short(self) -> bool:
        """Whether to skip WAIT now: too few replicas answered lately and ROLE still says so."""
        with self._lock:
            if self._short_until is None:
                return False
            if time.monotonic() < self._short_until:
                return True
            self._short_until = time.monotonic() + self.recheck_s
        online = online_replicas(self.client)
        if online < self.replicas:
            return True
        with self._lock:
            self._short_until = None
        log.warning("[worker] %d Redis replica(s) online again: counts wait for them", online)
        return False


def online_replicas(client: redis.Redis) -> int:
    """Replicas the primary lists as online (``ROLE``; 0 when ``client`` is not a primary)."""
    role = client.role()
    return len(role[2]) if role and role[0] == "master" else 0
