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

# liveness and preflight register Celery signal handlers: heartbeats, the Redis version check
from optio import config, confirms, liveness, names, preflight, webhooks  # noqa: F401
from optio.beat_schedule import SCHEDULE
from optio.celery_settings import celery_config, is_amqp, quiet_per_task_lines
from optio.leases import Held, Keeper
from optio.names import (
    PROCESS_JOBS_TASK,
    TICK_TASK,
    message_key,
    parse_message_key,
)
from optio.redis_state import Durations, RunStore, connect
from optio.throttle import Throttle

#: Confirm (and so publish) the enqueued count at least every this many jobs, so progress moves
#: smoothly without a publish per message.
ENQUEUED_PUBLISH_EVERY = 10
#: Aim for at most this many job messages per second; faster rates put several jobs in one.
MESSAGES_PER_SECOND = 100
#: A job batch counts its finished jobs at least this often (seconds).
MARK_EVERY_SECONDS = 0.02
#: Most messages one tick sends again (expired leases, due retries, unconfirmed reservations).
RESEND_MOST = 100_000
#: A reserved or re-sent message not confirmed as published within this many ms is sent again
#: (the tick that reserved it died): a few ticks.
UNCONFIRMED_MS = int(max(5.0, 5 * config.SETTINGS.tick_seconds) * 1000)

log = logging.getLogger("optio")

app = Celery("optio")
app.conf.update(
    beat_schedule=SCHEDULE,
    # beat runs the tick itself (optio/scheduler.py); a tick sent as a message (the web's kick
    # at start) goes to the ticks queue
    beat_scheduler="optio.scheduler:InlineTickScheduler",
    **celery_config(config.SETTINGS.broker_url),
)
#: RabbitMQ is the broker: the tick counts its messages once the broker confirmed them, and a
#: message the broker hands back because its worker died is taken over at once.
RABBITMQ = is_amqp(config.SETTINGS.broker_url)


signals.after_setup_logger.connect(quiet_per_task_lines)


@cache
def store() -> RunStore:
    # workers wait out a Redis restart instead of failing (and acknowledging) jobs
    return RunStore(connect(), retry_for=config.SETTINGS.redis_retry_seconds)


@cache
def keeper() -> Keeper:
    return Keeper(store(), config.SETTINGS.lease_seconds, announce=RABBITMQ)


@cache
def job_function() -> Callable[[str, int], str]:
    module, _, name = config.SETTINGS.job_func.partition(":")
    return getattr(importlib.import_module(module), name)


@signals.worker_init.connect
def _check_job_function(**_: object) -> None:
    """A worker whose OPTIO_JOB_FUNC can't be loaded stops at start, not job by job."""
    try:
        job_function()
    except (ImportError, AttributeError, ValueError) as exc:
        raise SystemExit(
            f"OPTIO_JOB_FUNC={config.SETTINGS.job_func!r} cannot be loaded: {exc}"
        ) from exc


@signals.worker_init.connect
@signals.beat_init.connect
def _warn_deprecated(**_: object) -> None:
    if config.SETTINGS.stall_seconds_deprecated is not None:
        log.warning(
            "OPTIO_STALL_SECONDS is ignored: workers hold leases now (OPTIO_LEASE_SECONDS=%g)",
            config.SETTINGS.lease_seconds,
        )


def batch_size(y_minute: float) -> int:
    """Jobs per message: 1 up to MESSAGES_PER_SECOND jobs/s, more above, capped."""
    per_second = y_minute / 60
    return max(1, min(config.SETTINGS.max_batch, int(per_second // MESSAGES_PER_SECOND)))


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
_drop_log = _EveryFewSeconds(5.0)


def _chunks(messages: list[str]) -> list[list[str]]:
    """Split message keys into chunks of about ENQUEUED_PUBLISH_EVERY jobs (>= 1 message)."""
    chunks: list[list[str]] = [[]]
    jobs = 0
    for key in messages:
        if jobs >= ENQUEUED_PUBLISH_EVERY:
            chunks.append([])
            jobs = 0
        chunks[-1].append(key)
        jobs += parse_message_key(key)[1]
    return [c for c in chunks if c]


def _batch(producer, size: int):
    """kombu >= 5.7 pipelines the publishes of a block into one round trip, flushed at its end."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=size + 1) if batch else contextlib.nullcontext()


def _publish(producer, run_id: str, chunk: list[str], new: bool) -> int:
    """Publish the messages of one chunk; returns how many jobs they carry."""
    jobs = 0
    for key in chunk:
        first, count, retry = parse_message_key(key)
        args = (run_id, first, count) if new else (run_id, first, count, retry, True)
        process_jobs.apply_async(args, producer=producer)
        jobs += count
    return jobs


def _send(run_id: str, messages: list[str], new: bool) -> None:
    """Publish the messages, about 10 jobs' worth per Redis round trip (a pipelined batch; on
    RabbitMQ see ``_send_confirmed``), and confirm each chunk once it is in the broker: counted
    as enqueued when ``new``, else they are sent again (flagged, so the worker checks what is
    left before running any job)."""
    runs = store()
    with app.producer_or_acquire() as producer:
        if RABBITMQ:
            _send_confirmed(runs, producer, run_id, messages, new)
            return
        for chunk in _chunks(messages):
            with _batch(producer, len(chunk)):
                jobs = _publish(producer, run_id, chunk, new)
            runs.confirm_enqueued(run_id, jobs if new else 0, chunk)


def _send_confirmed(runs: RunStore, producer, run_id: str, messages: list[str], new: bool) -> None:
    """``_send`` on RabbitMQ: publish every chunk, then confirm each in Redis once the broker has
    confirmed all of its messages (publisher confirms, see confirms.py). The broker confirms
    many messages at once, so the tick waits about one disk write for all its chunks, not one
    per chunk."""
    with confirms.tracked(producer) as tracker:
        sent = []
        for chunk in _chunks(messages):
            jobs = _publish(producer, run_id, chunk, new)
            sent.append((chunk, jobs, tracker.mark()))
        for chunk, jobs, mark in sent:
            tracker.wait(mark)
            runs.confirm_enqueued(run_id, jobs if new else 0, chunk)


@app.task(name=TICK_TASK, acks_late=False, ignore_result=True)
def tick() -> int:
    """Reserve the jobs due now and enqueue them, and send again what must be sent again
    (expired leases, due retries, unconfirmed reservations, messages parked while paused);
    start the completion webhooks that are due. Returns how many jobs were reserved."""
    runs = store()
    webhooks.dispatch(runs)
    failed_over = runs.primary_changed()
    run_id = runs.active_run_id()
    if run_id is None:
        runs.record_tick()
        return 0
    if failed_over:
        _send_unaccounted(runs, run_id)
    reservation = runs.reserve_due(
        run_id,
        config.SETTINGS.tick_seconds,
        batch=batch_size(runs.run_rate(run_id)),
        max_outstanding=config.SETTINGS.max_outstanding,
        unconfirmed_ms=UNCONFIRMED_MS,
    )
    if reservation.count:
        _send(run_id, reservation.messages, True)
        log.info("[scheduler] Enqueued %d jobs of run %s", reservation.count, run_id)
    lost = runs.claim_lost(run_id, most=RESEND_MOST, unconfirmed_ms=UNCONFIRMED_MS)
    if lost.keys:
        _send(run_id, lost.keys, False)
        retries = sum(1 for key in lost.keys if parse_message_key(key)[2])
        others = len(lost.keys) - lost.leases - lost.parked - retries
        if lost.parked:
            log.info(
                "[scheduler] Run %s resumed: %d message(s) parked during the pause sent again",
                run_id,
                lost.parked,
            )
        if lost.leases:
            log.warning(
                "[scheduler] Run %s: %d message(s) whose lease expired (worker gone) sent again",
                run_id,
                lost.leases,
            )
        if others:
            log.warning(
                "[scheduler] Run %s: %d reserved message(s) never confirmed as published "
                "(a tick died) sent again",
                run_id,
                others,
            )
    if BROKER_IN_STATE_REDIS:
        _sweep_lost_messages(runs, run_id)
    return reservation.count


#: With Celery's broker in the state's Redis, the tick can see that the broker holds nothing.
BROKER_IN_STATE_REDIS = not RABBITMQ and config.SETTINGS.broker_url == config.SETTINGS.redis_url
#: Jobs found unaccounted for while the broker held nothing, by run (see _sweep_lost_messages).
_suspects: dict[str, list[int]] = {}


def _sweep_lost_messages(runs: RunStore, run_id: str) -> None:
    """Send again the jobs of messages the broker lost while it stays the same server.

    kombu's Redis transport takes a message off the queue (BRPOP) and records it as unacknowledged
    in a second call: a worker SIGKILLed between the two loses the message, and with it its jobs
    (nothing else knows them: they are confirmed, not leased, not due). When the jobs queue and
    Celery's unacknowledged messages are both empty on two ticks in a row while jobs of the run
    are still unaccounted for (the same ones both times), nothing can deliver them: they go out
    again. Two ticks, so a message in the microseconds between a worker's two calls is not
    mistaken for lost."""
    if not runs.broker_idle_with_jobs_left(run_id, names.JOBS_QUEUE):
        _suspects.pop(run_id, None)
        return
    jobs = runs.unaccounted_jobs(run_id)
    if not jobs or jobs != _suspects.get(run_id):
        _suspects[run_id] = jobs
        return
    del _suspects[run_id]
    log.warning(
        "[scheduler] Run %s: %d job(s) that no message in the broker carries (a worker died "
        "while taking them) sent again",
        run_id,
        len(jobs),
    )
    _send(run_id, as_messages(jobs, batch_size(runs.run_rate(run_id))), False)


def _send_unaccounted(runs: RunStore, run_id: str) -> None:
    """Another Redis server answers (a failover, or a restart): send the jobs that nothing
    accounts for again, once. The broker may have lost a message that a worker had taken from
    the queue but not yet recorded as unacknowledged when the old server died (kombu does the
    two in separate calls), and a message waiting in the broker is otherwise never sent again.
    Copies of messages that were not lost are dropped by their lease or the done bitmap."""
    jobs = runs.unaccounted_jobs(run_id)
    log.warning(
        "[scheduler] Another Redis server answers (failover or restart): %d waiting job(s) of "
        "run %s sent again in case the broker lost their messages",
        len(jobs),
        run_id,
    )
    if jobs:
        _send(run_id, as_messages(jobs, batch_size(runs.run_rate(run_id))), False)


def as_messages(jobs: list[int], size: int) -> list[str]:
    """Message keys for ascending job ids: runs of consecutive ids, at most ``size`` a message."""
    keys: list[str] = []
    for job in jobs:
        if keys:
            first, count, _ = parse_message_key(keys[-1])
            if job == first + count and count < size:
                keys[-1] = message_key(first, count + 1)
                continue
        keys.append(message_key(job, 1))
    return keys


@app.task(name=PROCESS_JOBS_TASK, ignore_result=True)
def process_jobs(run_id: str, first: int, count: int, retry: int = 0, resent: bool = False) -> int:
    """Run jobs ``first .. first+count-1`` of a run under a lease; each is counted once.
    Returns how many were counted now. (``resent``: sent again by the tick; informative only.)

    A delivery of a message that another live worker leases is dropped (the broker's redelivery
    after its visibility timeout, or any other duplicate); on RabbitMQ, a redelivery whose
    lease holder died takes the lease over at once. Results are counted in one Lua call per
    MARK_EVERY_SECONDS of work (every job when jobs are slow), which keeps Redis round trips few
    at high rates and progress live at low ones; each such call also says whether the run was
    stopped, so a stop takes effect between jobs.
    """
    runs = store()
    held = Held(run_id, message_key(first, count, retry), keeper().token())
    lease = runs.lease_message(run_id, held.key, first, count, held.token, keeper().lease_ms)
    if lease.held_elsewhere and _holder_died(lease.holder):
        lease = runs.lease_message(
            run_id, held.key, first, count, held.token, keeper().lease_ms, take_from=lease.holder
        )
        if not lease.held_elsewhere:
            log.warning(
                "[worker] Took over message %s of run %s: its worker died (the broker "
                "redelivered it)",
                held.key,
                run_id,
            )
    if lease.held_elsewhere:
        if _drop_log():
            log.info(
                "[worker] Dropped a second delivery of message %s: a live worker runs it", held.key
            )
        return 0
    if lease.status != "running" or not lease.jobs:
        return 0
    keeper().hold(held)
    try:
        return _run_jobs(runs, held, lease.jobs)
    finally:
        keeper().drop(held)


def _holder_died(holder: str) -> bool:
    """RabbitMQ redelivers a message once its consumer's connection closed or its pool process
    died; when the lease's holder has lost its Redis connection too, it died (see leases.py)."""
    if not RABBITMQ or not (process_jobs.request.delivery_info or {}).get("redelivered"):
        return False
    return not keeper().holder_alive(holder)


def _run_jobs(runs: RunStore, held: Held, jobs: list[int]) -> int:
    job = job_function()
    run_id = held.run_id
    counted = handled = 0
    done: dict[int, str] = {}
    took = Durations()
    flushed = time.monotonic()
    for job_id in jobs:
        if held.lost:
            break
        began = time.perf_counter()
        try:
            done[job_id] = str(job(run_id, job_id))
        except Throttle as throttle:
            _job_throttled(run_id, job_id, throttle)
        except Exception as exc:
            _job_failed(run_id, job_id, exc)
        took.add(time.perf_counter() - began)
        handled += 1
        if time.monotonic() - flushed >= MARK_EVERY_SECONDS:
            flush = runs.mark_processed(
                run_id, done, message=held.key, token=held.token, handled=handled, durations=took
            )
            counted += flush.counted
            done, handled, took, flushed = {}, 0, Durations(), time.monotonic()
            if flush.lost:
                held.lost = True  # the lease is someone else's now: no more jobs
                break
            if flush.status != "running":
                break  # paused or ended: no more jobs; a paused run parks the rest below
    if done or took or not held.lost:
        flush = runs.mark_processed(
            run_id,
            done,
            message=held.key,
            token=held.token,
            handled=handled,
            release=True,
            durations=took,
        )
        counted += flush.counted
    if counted and _publish_log():
        log.info("[worker] Published progress update to Redis channel %s", names.CHANNEL)
    return counted


_throttle_log = _EveryFewSeconds()


def _job_throttled(run_id: str, job_id: int, throttle: Throttle) -> None:
    """The downstream said "slow down": the job runs again later and the run slows down."""
    outcome, wait, rate = store().throttle_job(run_id, job_id, throttle.retry_after)
    if outcome == "throttled" and _throttle_log():
        log.warning(
            "[worker] Job %s/%d throttled by the downstream: again in %.1f s; the run's rate "
            "is now %s jobs/min",
            run_id,
            job_id,
            wait,
            f"{rate:,.1f}",
        )


def _job_failed(run_id: str, job_id: int, exc: Exception) -> None:
    """Schedule the job's retry with backoff, or record it as failed once its attempts are
    spent."""
    error = f"{type(exc).__name__}: {exc}"
    outcome, attempts, delay = store().fail_job(
        run_id,
        job_id,
        error,
        attempts=config.SETTINGS.job_attempts,
        backoff_s=config.SETTINGS.retry_backoff,
    )
    if outcome == "retry":
        log.warning(
            "[worker] Job %s/%d failed (attempt %d of %d): %s; retrying in %.1f s",
            run_id,
            job_id,
            attempts,
            config.SETTINGS.job_attempts,
            error,
            delay,
        )
    elif outcome == "failed":
        log.error(
            "[worker] Job %s/%d failed for good after %d attempts: %s",
            run_id,
            job_id,
            attempts,
            error,
        )
