"""The broker Celery's messages go through in a benchmark: the Redis that also holds optio's state
(the default), or a private RabbitMQ node (``python -m bench --broker amqp``)."""

from __future__ import annotations

import redis

from optio.testing import RabbitServer, RedisServer


class RedisBroker:
    """Celery's messages in the benchmark's Redis (kombu's Redis transport)."""

    kind = "redis"

    def __init__(self, rds: RedisServer) -> None:
        self.url = rds.url
        self.client: redis.Redis = rds.client

    def pids(self) -> dict[str, int]:
        return {}  # the Redis is metered as "redis" in every run

    def waiting(self, queue: str) -> int:
        """Messages queued in ``queue`` or delivered and not yet acknowledged."""
        return self.client.llen(queue) + self.client.hlen("unacked")


class RabbitBroker:
    """Celery's messages in a private RabbitMQ node (durable quorum queues)."""

    kind = "rabbitmq"

    def __init__(self, rabbit: RabbitServer) -> None:
        self.rabbit = rabbit
        self.url = rabbit.url

    def pids(self) -> dict[str, int]:
        return {"rabbitmq": self.rabbit.vm_pid()}

    def waiting(self, queue: str) -> int:
        """Messages ready in ``queue``. AMQP does not tell the unacknowledged ones: at most
        the consumers' prefetch (2 per worker here), each a job about to finish."""
        return self.rabbit.ready(queue) or 0
