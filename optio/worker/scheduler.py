"""The beat schedule (one tick every OPTIO_TICK_SECONDS) and the scheduler that runs optio's
tick inside the beat process.

Sending the tick to a worker would make it wait behind jobs whenever every pool process is busy
(long jobs, or a rate above capacity) and would take a pool process away from jobs while it
publishes. Run in beat, ticks keep time whatever the workers do. Other beat entries are sent to
workers as usual. Two beats tick twice, which is safe: each tick reserves only what is due.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler

from optio.names import TICK_ENTRY, TICK_TASK, TICKS_QUEUE

log = logging.getLogger("optio")


def schedule(tick_seconds: float) -> dict[str, dict[str, Any]]:
    """Beat's schedule. A tick that waited longer than two intervals is dropped: the next one
    does its work, since the schedule's position lives in Redis."""
    return {
        TICK_ENTRY: {
            "task": TICK_TASK,
            "schedule": tick_seconds,
            "options": {"queue": TICKS_QUEUE, "expires": max(1.0, 2 * tick_seconds)},
        },
    }


class InlineTickScheduler(PersistentScheduler):
    """Beat's scheduler, running optio's tick in beat's process. A paced tick lasts about one
    interval (it sends each message at its time, pacing.py); beat would count the next
    interval from the tick's end, so ticks would come every two intervals: the time the tick
    took is taken off the wait for the next one."""

    _tick_took = 0.0

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task != TICK_TASK:
            return super().apply_async(entry, producer, advance, **kwargs)
        if advance:
            self.reserve(entry)
        began = time.monotonic()
        try:
            self.app.tasks[TICK_TASK](paced=True)  # each message at its time (pacing.py)
        except Exception as exc:  # the next tick does this one's work: the schedule is in Redis
            log.warning("[scheduler] Tick failed (%s); the next one catches up", exc)
        finally:
            self._tick_took = time.monotonic() - began
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()
        return None

    def _when(self, entry, next_time_to_run, *args, **kwargs):
        when = super()._when(entry, next_time_to_run, *args, **kwargs)
        if entry.task == TICK_TASK and self._tick_took:
            when -= min(self._tick_took, next_time_to_run or 0)
            self._tick_took = 0.0
        return when
