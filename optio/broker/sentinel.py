"""kombu's Redis Sentinel transport for the Celery broker, with a crash after a failover fixed.

When the broker connection drops, Celery closes the connection and its channels: the channel
hands back the messages it delivered but were not acknowledged yet, for which it builds a new
connection pool from the connection's parameters. kombu 5.7 may do that after Celery has already
detached the channel's connection (``Connection.collect``): ``self.connection.client`` is None,
and the AttributeError that follows is not a connection error, so the whole worker stops with
"Unrecoverable error" (seen in tests that SIGKILL primaries; docs/DEPLOY.md). Here that case
raises a connection error instead, which the closing code ignores: the worker reconnects through
the Sentinels, and the unacknowledged messages come back by the visibility timeout as usual.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class SentinelChannel(kombu_redis.SentinelChannel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous)


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
