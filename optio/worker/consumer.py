"""The worker's Celery consumer: Celery's, surviving one fault of kombu's Redis transport.

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

from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger("optio")


class Consumer(CeleryConsumer):
    """``worker_consumer``: Celery's consumer, whose close of a lost connection can't end the
    worker (see the module's docstring)."""

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
