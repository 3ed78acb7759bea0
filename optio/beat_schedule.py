"""The celery beat schedule: one tick every OPTIO_TICK_SECONDS.

A tick that waited longer than two intervals is dropped: the next one does its work, since the
schedule's position lives in Redis.
"""

from optio import config

TICKS_QUEUE = "optio.ticks"

SCHEDULE = {
    "optio-tick": {
        "task": "optio.tick",
        "schedule": config.TICK_SECONDS,
        "options": {"queue": TICKS_QUEUE, "expires": max(1.0, 2 * config.TICK_SECONDS)},
    },
}
