"""The celery beat schedule: one tick every OPTIO_TICK_SECONDS.

A tick that waited longer than two intervals is dropped: the next one does its work, since the
schedule's position lives in Redis. ``optio.worker.app`` builds its app with :func:`schedule`;
:data:`SCHEDULE` is the one of this process's settings.
"""

from __future__ import annotations

from typing import Any

from optio import config
from optio.names import TICK_ENTRY, TICK_TASK, TICKS_QUEUE


def schedule(tick_seconds: float) -> dict[str, dict[str, Any]]:
    return {
        TICK_ENTRY: {
            "task": TICK_TASK,
            "schedule": tick_seconds,
            "options": {"queue": TICKS_QUEUE, "expires": max(1.0, 2 * tick_seconds)},
        },
    }


SCHEDULE = schedule(config.SETTINGS.tick_seconds)
