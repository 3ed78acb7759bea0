"""The celery beat schedule: one tick every OPTIO_TICK_SECONDS.

A tick that waited longer than two intervals is dropped: the next one does its work, since the
schedule's position lives in Redis.
"""

from optio import config
from optio.names import TICK_ENTRY, TICK_TASK, TICKS_QUEUE

SCHEDULE = {
    TICK_ENTRY: {
        "task": TICK_TASK,
        "schedule": config.SETTINGS.tick_seconds,
        "options": {"queue": TICKS_QUEUE, "expires": max(1.0, 2 * config.SETTINGS.tick_seconds)},
    },
}
