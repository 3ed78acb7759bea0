"""The worker's Celery consumer: Celery's, surviving two faults of a Redis broker.

**A broker that refuses writes** (``OOM``: maxmemory reached; ``READONLY``: a replica after a
failover): kombu's Redis transport raises the refusal from an acknowledgement (a ``MULTI`` of
``ZREM`` and ``HDEL``) in the worker's main process, which Celery takes for an unrecoverable
error, and the worker exits. Here such refusals count among the broker's channel errors, which
a Redis broker's settings make recoverable (``broker_channel_error_retry``, delivery.py): the
consumer connects again, as after a lost connection, so the refused message stays in the
broker's unacknowledged set (handed out again after the visibility timeout; its jobs are counted,
so the bitmap drops it) and takes no prefetch slot of the new connection. (Logged and ignored
instead, the refused message would keep its slot, and two refusals stop a ``-c 2`` worker.)

**A lost connection**:

When the broker connection is lost while a message is delivered and not acknowledged and the
consumer waits for the next (a pool that keeps up with the rate), celery 5.7's consumer first
collects the lost connection, which detaches its transport from it (``transport.client =
None``), and then closes it; the close restores the unacknowledged messages, and the job that
ends later acknowledges its message, both through that channel, whose transport now lacks the
server's address: kombu's Redis transport raises ``AttributeError: 'NoneType' object has no
attribute 'hostname'`` (kombu 5.7), which Celery takes for an unrecoverable error, and the
worker exits (under honcho, every process with it).

Here the transport of the lost connection keeps the address through its close and after it:
its messages are restored, or acknowledged when their jobs end, on a new connection to the
server once it is back, as they are when the close goes well. If the close fails anyway, that is
logged and the worker goes on: the messages stay in the broker's set of unacknowledged messages,
where a consumer finds them after the visibility timeout, and their leases bring their jobs back
sooner.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger("optio")

#: What a Redis broker answers when it refuses writes, and a transaction those refusals aborted.
REFUSALS = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ExecAbortError,
)


class Consumer(CeleryConsumer):
    """``worker_consumer``: Celery's consumer, which neither a broker refusing writes nor its
    close of a lost connection can end (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        errors = tuple(getattr(self, "channel_errors", ()))
        setattr(self, "channel_errors", (*errors, *REFUSALS))  # noqa: B010 (Celery's, untyped)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        if connection is not None:
            transport = getattr(connection, "_transport", None)
            # this connection object only: Celery calls connection.close once collected
            connection.close = _close_lost(connection, transport, connection.close)
        super().on_connection_error_after_connected(exc)


def _close_lost(connection: Any, transport: Any, close: Any) -> Any:
    def close_lost_connection() -> None:
        if transport is not None and transport.client is None:
            transport.client = connection  # collected: give the channel its address back
        try:
            close()
        except AttributeError as exc:
            log.warning(
                "[worker] The lost broker connection did not close cleanly (kombu: %s); its "
                "unacknowledged messages come back after the visibility timeout or their "
                "leases, whichever is first",
                exc,
            )
        finally:
            if transport is not None and transport.client is None:
                transport.client = connection  # late acknowledgements of its messages

    return close_lost_connection
