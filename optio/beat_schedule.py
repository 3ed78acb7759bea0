"""The celery beat schedule of this process's settings: one tick every OPTIO_TICK_SECONDS
(built by ``optio.worker.scheduler.schedule``, which the worker's app uses)."""

from __future__ import annotations

from optio import config
from optio.worker.scheduler import schedule

SCHEDULE = schedule(config.SETTINGS.tick_seconds)
