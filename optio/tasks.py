"""The Celery app and its two tasks: the scheduler tick and the job batch.

Run with ``celery -A optio.tasks worker`` and ``celery -A optio.tasks beat``. No monkey
patching here: workers and beat are plain processes.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from functools import cache

from celery import Celery, signals
from kombu import Queue

from optio import config, liveness  # noqa: F401  (liveness registers heartbeat signals)
from optio.beat_schedule import SCHEDULE, TICKS_QUEUE
from optio.redis_state import RunStore, connect

JOBS_QUEUE = "optio.jobs"
#: Publish the enqueued count at least every this many jobs (the guide's "every 10").
ENQUEUED_PUBLISH_EVERY = 10
#: Aim for at most this many job messages per second; faster rates put several jobs in one.
MESSAGES_PER_SECOND = 100
#: A job batch counts its finished jobs at least this often (seconds).
MARK_EVERY_SECONDS = 0.02
#: Most lost jobs one tick enqueues again.
STALL_SWEEP_MOST = 10_000

log = logging.getLogger("optio")

app = Celery("optio", broker=config.REDIS_URL)
app.conf.update(
    beat_schedule=SCHEDULE,
    # beat runs the tick itself (optio/scheduler.py); a tick sent as a message (the web's kick
    # at start) goes to the ticks queue
    beat_scheduler="optio.scheduler:InlineTickScheduler",
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
    # workers wait out a Redis restart instead of failing (and acknowledging) jobs
    return RunStore(connect(), retry_for=config.REDIS_RETRY_SECONDS)


@cache
def job_function() -> Callable[[str, int], str]:
    module, _, name = config.JOB_FUNC.partition(":")
    return getattr(importlib.import_module(module), name)


@signals.worker_init.connect
def _check_job_function(**_: object) -> None:
    """A worker whose OPTIO_JOB_FUNC can't be loaded stops at start, not job by job."""
    try:
        job_function()
    except (ImportError, AttributeError, ValueError) as exc:
        raise SystemExit(f"OPTIO_JOB_FUNC={config.JOB_FUNC!r} cannot be loaded: {exc}") from exc


def batch_size(y_minute: float) -> int:
    """Jobs per message: 1 up to MESSAGES_PER_SECOND jobs/s, more above, capped."""
    per_second = y_minute / 60
    return max(1, min(config.MAX_BATCH, int(per_second // MESSAGES_PER_SECOND)))


def retry_delay(attempt: int) -> float:
    """Seconds before retrying a job that failed ``attempt`` times."""
    return min(config.RETRY_BACKOFF * 2 ** (attempt - 1), 30.0)


class _EveryFewSeconds:
    """Lets a log line through at most once per interval so busy processes stay readable."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self.last = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            return True
        return False


_publish_log = _EveryFewSeconds()


def _ranges(ids: list[int], size: int) -> list[tuple[int, int]]:
    """Group sorted job ids into (first, count) runs of consecutive ids, at most ``size`` long."""
    out: list[tuple[int, int]] = []
    for job_id in ids:
        if out and out[-1][0] + out[-1][1] == job_id and out[-1][1] < size:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((job_id, 1))
    return out


def _chunks(ranges: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Split message ranges into chunks of about ENQUEUED_PUBLISH_EVERY jobs (>= 1 message)."""
    chunks: list[list[tuple[int, int]]] = [[]]
    jobs = 0
    for item in ranges:
        if jobs >= ENQUEUED_PUBLISH_EVERY:
            chunks.append([])
            jobs = 0
        chunks[-1].append(item)
        jobs += item[1]
    return [c for c in chunks if c]


def _batch(producer, size: int):
    """kombu >= 5.7 pipelines the publishes of a block into one round trip, flushed at its end."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=size + 1) if batch else contextlib.nullcontext()


def _send(run_id: str, ranges: list[tuple[int, int]], confirm: bool) -> None:
    """Publish one message per range, about 10 jobs' worth per Redis round trip (a pipelined
    batch); when ``confirm``, count each chunk as enqueued once it is in the broker."""
    state = store()
    with app.producer_or_acquire() as producer:
        for chunk in _chunks(ranges):
            with _batch(producer, len(chunk)):
                for first, count in chunk:
                    process_jobs.apply_async((run_id, first, count), producer=producer)
            if confirm:
                state.confirm_enqueued(run_id, sum(count for _, count in chunk))


@app.task(name="optio.tick", acks_late=False, ignore_result=True)
def tick() -> int:
    """Reserve the jobs due now and enqueue them; returns how many were enqueued."""
    state = store()
    run_id = state.active_run_id()
    if run_id is None:
        state.record_tick()
        return 0
    reservation = state.reserve_due(
        run_id, config.TICK_SECONDS, max_outstanding=config.MAX_OUTSTANDING
    )
    size = batch_size(reservation.y_minute)
    if reservation.count:
        end = reservation.first + reservation.count
        _send(run_id, [(f, min(size, end - f)) for f in range(reservation.first, end, size)], True)
        log.info("[scheduler] Enqueued %d jobs of run %s", reservation.count, run_id)
    lost = state.claim_stalled(run_id, config.STALL_SECONDS, STALL_SWEEP_MOST)
    if lost:
        _send(run_id, _ranges(lost, size), False)
        log.warning(
            "[scheduler] Run %s made no progress for %.0f s: enqueued its %d uncounted jobs again",
            run_id,
            config.STALL_SECONDS,
            len(lost),
        )
    return reservation.count


@app.task(name="optio.process_jobs", ignore_result=True)
def process_jobs(run_id: str, first: int, count: int) -> int:
    """Run jobs ``first .. first+count-1`` of a run; each is counted once. Returns how many.

    Results are counted in one Lua call per MARK_EVERY_SECONDS of work (every job when jobs
    are slow), which keeps Redis round trips few at high rates and progress live at low ones.
    """
    state = store()
    status, pending = state.pending_jobs(run_id, first, count)
    if status == "stopped":
        return 0
    job = job_function()
    counted = 0
    done: dict[int, str] = {}
    flushed = time.monotonic()
    for job_id in pending:
        try:
            done[job_id] = str(job(run_id, job_id))
        except Exception as exc:
            _job_failed(run_id, job_id, exc)
        if done and time.monotonic() - flushed >= MARK_EVERY_SECONDS:
            counted += state.mark_processed(run_id, done)
            done, flushed = {}, time.monotonic()
    if done:
        counted += state.mark_processed(run_id, done)
    if counted and _publish_log():
        log.info("[worker] Published progress update to Redis channel %s", config.CHANNEL)
    return counted


def _job_failed(run_id: str, job_id: int, exc: Exception) -> None:
    """Retry the job later with backoff, or record it as failed once its attempts are spent."""
    state = store()
    attempts = state.add_attempt(run_id, job_id)
    error = f"{type(exc).__name__}: {exc}"
    if attempts < config.JOB_ATTEMPTS:
        delay = retry_delay(attempts)
        process_jobs.apply_async((run_id, job_id, 1), countdown=delay)
        log.warning(
            "[worker] Job %s/%d failed (attempt %d of %d): %s; retrying in %.1f s",
            run_id,
            job_id,
            attempts,
            config.JOB_ATTEMPTS,
            error,
            delay,
        )
    elif state.mark_failed(run_id, job_id, error):
        log.error(
            "[worker] Job %s/%d failed for good after %d attempts: %s",
            run_id,
            job_id,
            attempts,
            error,
        )
