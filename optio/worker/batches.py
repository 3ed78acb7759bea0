"""A job batch: the jobs of one message, run under a lease in a worker's pool process, each
counted once."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Reject

from optio import names
from optio.names import message_key
from optio.store.text import error_text
from optio.throttle import Throttle
from optio.worker.context import Context
from optio.worker.leases import Held
from optio.worker.tally import Tally

log = logging.getLogger("optio")

#: Seconds a pool process waits before it gives a message back to the broker (see _give_back).
GIVE_BACK_PAUSE_SECONDS = 1.0


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


def process_jobs(
    ctx: Context,
    delivery_info: dict | None,
    run_id: str,
    first: int,
    count: int,
    retry: int = 0,
    *,
    every: float = 0.0,
    gate: bool = False,
) -> int:
    """Run jobs ``first .. first+count-1`` of a run under a lease; each is counted once.
    Returns how many were counted now. ``delivery_info``: the broker's, of this message;
    ``every``: seconds between the starts of its jobs (a paced tick's spacing, pacing.py);
    ``gate``: each job starts one spacing after the run's last start, whichever worker made it
    (``_wait_for_slot``).

    A delivery of a message that another live worker leases is dropped (the broker's redelivery
    after its visibility timeout, or any other duplicate); on RabbitMQ, a redelivery whose
    lease holder died takes the lease over at once. Results are counted in one Lua call per
    MARK_EVERY_SECONDS of work, and within OVERDUE_SECONDS of a job's end while the next job
    runs long (tally.py), which keeps Redis round trips few at high rates and progress live at
    low ones; each such call also says whether the run was stopped, so a stop takes effect
    between jobs.

    A message whose jobs are not all accounted for is never acknowledged: when leasing or
    counting fails (Redis away or refusing for longer than OPTIO_REDIS_RETRY_SECONDS, any other
    Redis error, a script error, an encoding error), the message goes back to the broker
    (:func:`_give_back`), and a lease taken stays until it runs out, so the tick sends the
    message again too. A job function that raises is not such a failure: its job fails or is
    retried (``_job_failed``).
    """
    key = message_key(first, count, retry)
    try:
        return _lease_and_run(ctx, delivery_info, run_id, key, first, count, every, gate)
    except Exception as exc:
        raise _give_back(run_id, key, exc) from None


def _give_back(run_id: str, key: str, exc: Exception) -> Reject:
    """What ``process_jobs`` raises when leasing or counting failed: Celery's Reject with
    requeue, which puts the message back in the broker instead of acknowledging it (Celery
    acknowledges a task that raised anything else, acks_late or not). It comes after
    GIVE_BACK_PAUSE_SECONDS, so a Redis that refuses everything is not asked in a tight loop
    through the broker. The lease, when one was taken, is neither released nor renewed: it runs
    out, and the tick sends the message again; the copy given back is dropped meanwhile, or
    takes the expired lease over."""
    error = f"{type(exc).__name__}: {exc}"
    log.warning(
        "[worker] Message %s of run %s goes back to the broker: leasing or counting it failed "
        "(%s); a lease it took runs out and the tick sends it again",
        key,
        run_id,
        error[:500],
    )
    time.sleep(GIVE_BACK_PAUSE_SECONDS)
    return Reject(f"leasing or counting failed: {error[:500]}", requeue=True)


def _lease_and_run(
    ctx: Context,
    delivery_info: dict | None,
    run_id: str,
    key: str,
    first: int,
    count: int,
    every: float = 0.0,
    gate: bool = False,
) -> int:
    keeper = ctx.keeper
    held = Held(run_id, key, keeper.token())
    lease = ctx.leases.lease_message(run_id, held.key, first, count, held.token, keeper.lease_ms)
    if lease.held_elsewhere and _holder_died(ctx, delivery_info, lease.holder):
        lease = ctx.leases.lease_message(
            run_id, held.key, first, count, held.token, keeper.lease_ms, take_from=lease.holder
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
    keeper.hold(held)
    try:
        items = ctx.item_reader.items_for(run_id, lease.jobs) if ctx.job_takes_item else None
        return _run_jobs(ctx, held, lease.jobs, every, items, gate)
    finally:
        keeper.drop(held)  # not renewed any more: after an error it runs out (see _give_back)


def _holder_died(ctx: Context, delivery_info: dict | None, holder: str) -> bool:
    """RabbitMQ redelivers a message once its consumer's connection closed or its pool process
    died; when the lease's holder has lost its Redis connection too, it died (see leases.py)."""
    if not ctx.rabbitmq or not (delivery_info or {}).get("redelivered"):
        return False
    return not ctx.keeper.holder_alive(holder)


def _run_jobs(
    ctx: Context,
    held: Held,
    jobs: list[int],
    every: float = 0.0,
    items: dict[int, Any] | None = None,
    gate: bool = False,
) -> int:
    """Run the leased jobs in order, ``every`` seconds apart at most, counting them as tally.py
    says, until the lease is lost or the run stops; then count the rest and give the lease up (a
    paused run parks the jobs not started). A job function that takes an item gets its job's
    from ``items`` (None for a run without items)."""
    job = ctx.job_function
    takes_item = ctx.job_takes_item
    run_id = held.run_id
    tally = Tally(ctx.counting, held)
    flusher = ctx.flusher
    flusher.watch(tally)
    start = time.perf_counter()
    try:
        for n, job_id in enumerate(jobs):
            if tally.stopped:
                break
            if every and n:
                _wait_until(start + n * every)
            if gate:
                _wait_for_slot(ctx, run_id)
            began = time.perf_counter()
            returned, result = False, None
            failed: Exception | None = None
            try:
                if takes_item:
                    result = job(run_id, job_id, None if items is None else items.get(job_id))
                else:
                    result = job(run_id, job_id)
                returned = True
            except Throttle as throttle:
                _job_throttled(ctx, run_id, job_id, throttle)
            except Exception as exc:
                failed = exc
            took = time.perf_counter() - began
            if failed is not None:
                _job_failed(ctx, run_id, job_id, failed, took)
            tally.add(job_id, took, returned=returned, result=result)
            if tally.due():
                tally.flush()
            elif n + 1 < len(jobs):
                flusher.poke()  # another job follows: count these even if it runs long
    finally:
        flusher.forget(tally)
    if tally.since is not None or not held.lost:
        tally.flush(release=True)
    if tally.counted and _publish_log():
        log.info("[worker] Published progress update to Redis channel %s", names.CHANNEL)
    return tally.counted


#: Share of a spacing a gated start may come early, so starts that fell behind catch up.
GATE_EARLY = 0.02
#: Most seconds a gated job waits for its start (a slot further away is not waited for).
GATE_MOST_SECONDS = 10.0
_gate_log = _EveryFewSeconds(10.0)


def _wait_for_slot(ctx: Context, run_id: str) -> None:
    """Wait for this job's start slot (start_slot.lua). When Redis can't say, the job starts
    now: pacing is not worth a message given back."""
    try:
        wait = ctx.counting.start_slot(run_id, GATE_EARLY)
    except Exception as exc:  # noqa: BLE001 (see the docstring)
        if _gate_log():
            log.warning("[worker] Could not pace a job's start (%s): it starts now", exc)
        return
    if wait > 0:
        time.sleep(min(wait, GATE_MOST_SECONDS))


def _wait_until(at: float) -> None:
    left = at - time.perf_counter()
    if left > 0:
        time.sleep(left)


_throttle_log = _EveryFewSeconds()
_capped_log = _EveryFewSeconds(10.0)


def _job_throttled(ctx: Context, run_id: str, job_id: int, throttle: Throttle) -> None:
    """The downstream said "slow down": the job runs again later and the run slows down."""
    asked = throttle.retry_after
    cap = ctx.settings.throttle_max_wait
    if asked is not None and asked > cap and _capped_log():
        log.warning(
            "[worker] Job %s/%d asked to wait %g s (a Retry-After date read as seconds?); it "
            "waits OPTIO_THROTTLE_MAX_WAIT, %g s",
            run_id,
            job_id,
            asked,
            cap,
        )
    outcome, wait, rate = ctx.counting.throttle_job(run_id, job_id, asked, key=throttle.key)
    if outcome == "throttled" and _throttle_log():
        log.warning(
            "[worker] Job %s/%d throttled by the downstream: again in %.1f s; the run's rate "
            "is now %s jobs/min",
            run_id,
            job_id,
            wait,
            f"{rate:,.1f}",
        )


def _job_failed(ctx: Context, run_id: str, job_id: int, exc: Exception, seconds: float) -> None:
    """Schedule the job's retry with backoff, or record it as failed once its attempts are
    spent (``seconds``: how long the attempt ran)."""
    error = error_text(exc)
    attempts_allowed = ctx.settings.job_attempts
    outcome, attempts, delay = ctx.counting.fail_job(
        run_id,
        job_id,
        error,
        attempts=attempts_allowed,
        backoff_s=ctx.settings.retry_backoff,
        seconds=seconds,
    )
    if outcome == "retry":
        log.warning(
            "[worker] Job %s/%d failed (attempt %d of %d): %s; retrying in %.1f s",
            run_id,
            job_id,
            attempts,
            attempts_allowed,
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
