"""Celery's delivery settings for optio's job queue, in one dict.

``optio/tasks.py`` builds its app with them, and so does the benchmark's bare Celery
(``bench/bare_celery.py``): the comparison of the two runs both with the same delivery.
"""

from __future__ import annotations

import logging
from typing import Any

from optio import config, redis_urls

#: How a message is delivered and acknowledged.
DELIVERY: dict[str, Any] = {
    "task_ignore_result": True,
    # A job is acknowledged after it ran: a worker that dies mid-job loses nothing.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_transport_options": {
        "visibility_timeout": config.VISIBILITY_TIMEOUT,
        # look for messages to hand out again a few times per timeout (kombu's default sweep is
        # every ~100 s): a message a dead worker had fetched but not started comes back soon
        "unacked_restore_interval": max(1, config.VISIBILITY_TIMEOUT // 4),
        "unacked_restore_throttle": 1,
    },
    "broker_connection_retry_on_startup": True,
    "worker_send_task_events": False,
}


def broker_settings(url: str) -> dict[str, Any]:
    """The Celery settings naming the broker at Redis ``url``: kombu's URL for it, and the
    transport options of DELIVERY plus, for the Sentinel form, the service to ask the Sentinels
    for (kombu's ``sentinel://`` transport finds the primary again after a failover; optio's
    subclass of it survives the failover, see sentinel_transport.py)."""
    settings: dict[str, Any] = {
        "broker_url": redis_urls.broker_url(url),
        "broker_transport_options": {
            **DELIVERY["broker_transport_options"],
            **redis_urls.broker_transport_options(url),
        },
    }
    if redis_urls.is_sentinel(url):
        settings["broker_transport"] = "optio.sentinel_transport:SentinelTransport"
    return settings


#: Loggers that write one INFO line per task.
PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


def quiet_per_task_lines(**_: object) -> None:
    """Celery logs two INFO lines per task; at thousands of jobs/s they drown everything else
    (connect to ``celery.signals.after_setup_logger``)."""
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
