"""The Celery app and its two tasks: the scheduler tick and the job batch.

Run with ``celery -A optio.tasks worker`` and ``celery -A optio.tasks beat``. No monkey
patching here: workers and beat are plain processes.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from functools import cache

from celery import Celery, signals
from kombu import Queue

from optio import config
from optio.beat_schedule import SCHEDULE, TICKS_QUEUE
from optio.redis_state import RunStore, connect

JOBS_QUEUE = "optio.jobs"
#: Publish the enqueued count at least every this many jobs (the guide's "every 10").
ENQUEUED_PUBLISH_EVERY = 10
#: Aim for at most this many job messages per second; faster rates put several jobs in one.
MESSAGES_PER_SECOND = 100

log = logging.getLogger("optio")

app = Celery("optio", broker=config.REDIS_URL)
app.conf.update(
    beat_schedule=SCHEDULE,
    task_default_queue=JOBS_QUEUE,
    # a plain `celery -A optio.tasks worker` consumes both queues
    task_queues=[Queue(JOBS_QUEUE), Queue(TICKS_QUEUE)],
    task_routes={"optio.tick": {"queue": TICKS_QUEUE}},
    task_ignore_result=True,
    # A job is acknowledged after it ran: a worker that dies mid-job loses nothing.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": config.VISIBILITY_TIMEOUT},
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)


@signals.after_setup_logger.connect
def _quiet_per_task_lines(**_: object) -> None:
    """Celery logs two INFO lines per task; at thousands of jobs/s they drown everything else."""
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@cache
def store() -> RunStore:
    return RunStore(connect())


@cache
def job_function() -> Callable[[str, int], str]:
    module, _, name = config.JOB_FUNC.partition(":")
    return getattr(importlib.import_module(module), name)


def batch_size(y_minute: float) -> int:
    """Jobs per message: 1 up to MESSAGES_PER_SECOND jobs/s, more above, capped."""
    per_second = y_minute / 60
    return max(1, min(config.MAX_BATCH, int(per_second // MESSAGES_PER_SECOND)))


class _EveryFewSeconds:
    """Lets a log line through at most once per interval so busy processes stay readable."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self.last = 0.0
        self.skipped = 0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            return True
        self.skipped += 1
        return False


_publish_log = _EveryFewSeconds()


@app.task(name="optio.tick", acks_late=False, ignore_result=True)
def tick() -> int:
    """Reserve the jobs due now and enqueue them; returns how many were enqueued."""
    state = store()
    run_id = state.active_run_id()
    if run_id is None:
        state.record_tick()
        return 0
    reservation = state.reserve_due(run_id, config.TICK_SECONDS)
    if reservation.count == 0:
        return 0
    size = batch_size(reservation.y_minute)
    end = reservation.first + reservation.count
    unconfirmed = 0
    with app.producer_or_acquire() as producer:
        try:
            for first in range(reservation.first, end, size):
                count = min(size, end - first)
                process_jobs.apply_async((run_id, first, count), producer=producer)
                unconfirmed += count
                if unconfirmed >= ENQUEUED_PUBLISH_EVERY:
                    state.confirm_enqueued(run_id, unconfirmed)
                    unconfirmed = 0
        finally:
            if unconfirmed:
                state.confirm_enqueued(run_id, unconfirmed)
    log.info("[scheduler] Enqueued %d jobs of run %s", reservation.count, run_id)
    return reservation.count


@app.task(name="optio.process_jobs", ignore_result=True)
def process_jobs(run_id: str, first: int, count: int) -> int:
    """Run jobs ``first .. first+count-1`` of a run; each is counted once. Returns how many."""
    state = store()
    if state.run_status(run_id) == "stopped":
        return 0
    job = job_function()
    counted = 0
    for job_id in state.pending_jobs(run_id, first, count):
        if state.mark_processed(run_id, job_id, job(run_id, job_id)):
            counted += 1
    if counted and _publish_log():
        log.info("[worker] Published progress update to Redis channel %s", config.CHANNEL)
    return counted
