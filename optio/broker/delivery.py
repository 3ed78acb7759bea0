"""The Celery configuration every optio process shares, built in one place for either broker.

The worker's Celery app (``optio/worker/app.py``: workers and beat) and the web's producer
(``optio/webapp/services.py``) build their
apps with :func:`celery_config`, so they declare the same queues with the same arguments on the
same broker; the benchmark's bare Celery (``bench/bare_celery.py``) takes :func:`delivery` and
:func:`queues`, so the comparison runs both with the same delivery.

The broker is ``OPTIO_BROKER_URL`` (default ``REDIS_URL``). Whatever it is, counters, leases,
the schedule and the ``optio:progress`` channel stay in Redis; only the Celery messages move.

- **Redis** (``redis://``, ``rediss://``, ``sentinel://``): an unacknowledged message goes back
  to the queue after the visibility timeout, swept every quarter of it.
- **RabbitMQ** (``amqp://``, ``amqps://``, ``pyamqp://``): durable quorum queues
  (``x-queue-type: quorum``; Celery >= 5.5). An unacknowledged message goes back to its queue
  as soon as its consumer's connection closes, so there is no visibility timeout. Quorum queues
  have no global QoS: Celery's ``worker_detect_quorum_queues`` makes the prefetch per consumer.
  A countdown or ETA would need RabbitMQ's native delayed delivery (which Celery sets up for
  quorum queues on topic exchanges, hence the exchanges below) or it waits in a worker's
  memory; optio sends none: retries wait in Redis and the tick sends them when due. The tick
  waits for the broker's publisher confirms of each chunk before counting it as enqueued
  (``optio/worker/confirms.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue

from optio import urls
from optio.names import JOBS_QUEUE, TICK_TASK, TICKS_QUEUE

#: URL schemes of Celery's RabbitMQ transport.
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def is_amqp(broker_url: str) -> bool:
    """True when ``broker_url`` names a RabbitMQ (AMQP 0-9-1) broker."""
    return urlsplit(broker_url).scheme.lower() in AMQP_SCHEMES


def broker_kind(broker_url: str) -> str:
    """``"rabbitmq"`` or ``"redis"``: what the messages travel through."""
    return "rabbitmq" if is_amqp(broker_url) else "redis"


def delivery(broker_url: str, visibility_timeout: int) -> dict[str, Any]:
    """How a message is delivered and acknowledged on ``broker_url``'s broker;
    ``visibility_timeout``: OPTIO_VISIBILITY_TIMEOUT (a Redis broker's)."""
    settings: dict[str, Any] = {
        "broker_url": broker_url,
        "task_ignore_result": True,
        # A job is acknowledged after it ran: a worker that dies mid-job loses nothing.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": False,
    }
    if is_amqp(broker_url):
        # quorum queues refuse global QoS: per-consumer prefetch (Celery detects them)
        settings["worker_detect_quorum_queues"] = True
        return settings
    timeout = visibility_timeout
    # kombu's URL for a Redis broker; for the Sentinel form also the service to ask the
    # Sentinels for (kombu's sentinel:// transport finds the primary again after a failover;
    # optio's subclass of it survives the failover, see sentinel.py)
    settings["broker_url"] = urls.broker_url(broker_url)
    # a Redis that refuses writes makes the consumer connect again instead of ending the worker
    # (optio/worker/consumer.py)
    settings["broker_channel_error_retry"] = True
    settings["broker_transport_options"] = {
        "visibility_timeout": timeout,
        # look for messages to hand out again a few times per timeout (kombu's default sweep is
        # every ~100 s): a message a dead worker had fetched but not started comes back soon
        "unacked_restore_interval": max(1, timeout // 4),
        "unacked_restore_throttle": 1,
        **urls.broker_transport_options(broker_url),
    }
    if urls.is_sentinel(broker_url):
        settings["broker_transport"] = "optio.broker.sentinel:SentinelTransport"
    return settings


def queues(broker_url: str, *names: str) -> list[Queue]:
    """The queues ``names`` as declared on ``broker_url``'s broker: durable quorum queues on
    topic exchanges of the same names with RabbitMQ, kombu's defaults with Redis."""
    if not is_amqp(broker_url):
        return [Queue(name) for name in names]
    return [
        Queue(
            name,
            Exchange(name, type="topic", durable=True),
            routing_key=name,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for name in names
    ]


def celery_config(broker_url: str, visibility_timeout: int) -> dict[str, Any]:
    """Broker, queues, routes and delivery of optio's Celery apps (workers, beat, the web's
    producer): one definition, so every process declares the queues alike."""
    return {
        "task_default_queue": JOBS_QUEUE,
        # a plain `celery -A optio.tasks worker` consumes both queues
        "task_queues": queues(broker_url, JOBS_QUEUE, TICKS_QUEUE),
        "task_routes": {TICK_TASK: {"queue": TICKS_QUEUE}},
        **delivery(broker_url, visibility_timeout),
    }
