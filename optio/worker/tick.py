"""The scheduler tick: reserve the jobs due now and publish them; send again what must go
again (expired leases, due retries, unconfirmed reservations, parked and lost messages); start
the completion webhooks that are due. Beat runs it in its own process (``scheduler.py``); a
worker runs a tick sent as a message (the web's kick at a run's start)."""

from __future__ import annotations

import contextlib
import logging
import math

import redis

from optio.names import message_key, parse_message_key
from optio.store.schedule import THROTTLE_STEPS, Lost, Reservation
from optio.worker import confirms, pacing, shares, webhooks
from optio.worker.context import REPAIR_TICKS, Context, Suspect

log = logging.getLogger("optio")

#: Confirm (and so publish) the enqueued count at least every this many jobs, so progress moves
#: smoothly without a publish per message.
ENQUEUED_PUBLISH_EVERY = 10
#: Most messages one tick sends again (expired leases, due retries, unconfirmed reservations).
RESEND_MOST = 100_000


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


def _publish(ctx: Context, producer, run_id: str, chunk: list[str], new: bool) -> int:
    """Publish the messages of one chunk; returns how many jobs they carry."""
    jobs = 0
    for key in chunk:
        first, count, retry = parse_message_key(key)
        args = (run_id, first, count) if new else (run_id, first, count, retry, True)
        ctx.process_jobs.apply_async(args, producer=producer)
        jobs += count
    return jobs


def _send(ctx: Context, run_id: str, messages: list[str], new: bool) -> None:
    """Publish the messages at once, about 10 jobs' worth per Redis round trip (a pipelined
    batch; on RabbitMQ see ``_send_confirmed``), and confirm each chunk once it is in the broker:
    counted as enqueued when ``new``, else they are sent again (flagged, so the worker checks
    what is left before running any job). A paced tick sends its messages with pacing.py."""
    with ctx.app.producer_or_acquire() as producer:
        if ctx.rabbitmq:
            _send_confirmed(ctx, producer, run_id, messages, new)
            return
        for chunk in _chunks(messages):
            with _batch(producer, len(chunk)):
                jobs = _publish(ctx, producer, run_id, chunk, new)
            ctx.schedule.confirm_enqueued(run_id, jobs if new else 0, chunk)


def _send_confirmed(ctx: Context, producer, run_id: str, messages: list[str], new: bool) -> None:
    """``_send`` on RabbitMQ: publish every chunk, then confirm each in Redis once the broker has
    confirmed all of its messages (publisher confirms, see confirms.py). The broker confirms
    many messages at once, so the tick waits about one disk write for all its chunks, not one
    per chunk."""
    with confirms.tracked(producer) as tracker:
        sent = []
        for chunk in _chunks(messages):
            jobs = _publish(ctx, producer, run_id, chunk, new)
            sent.append((chunk, jobs, tracker.mark()))
        for chunk, jobs, mark in sent:
            tracker.wait(mark)
            ctx.schedule.confirm_enqueued(run_id, jobs if new else 0, chunk)


def tick(ctx: Context, *, paced: bool = False) -> int:
    """Reserve the jobs due now of every active run and enqueue them, and send again what must
    be sent again (expired leases, due retries, unconfirmed reservations, messages parked while
    paused); start the completion webhooks that are due. Returns how many jobs were reserved.

    Several runs run at once, each at its own rate, within the deployment's ceilings: each run
    gets its share of OPTIO_MAX_RATE and OPTIO_MAX_IN_FLIGHT (shares.py). When the run clients
    are shown by default has ended, the newest active run takes its place.

    ``paced`` (beat's ticks): reserve the jobs due within the next tick instead, and send each
    message at its time, spacing its jobs (pacing.py), the runs' messages interleaved by time:
    the tick lasts about one interval. The web's kick at a run's start is not paced: it sends
    at once the few jobs due."""
    runs = ctx.schedule
    webhooks.dispatch(ctx.outbox)
    failed_over = runs.primary_changed()
    if not ctx.legacy_moved:
        runs.move_legacy_active()
        ctx.legacy_moved = True
    run_ids = runs.active_run_ids()
    if not run_ids:
        runs.record_tick()
        return 0
    runs.follow_newest(run_ids[0])
    granted = _grants(ctx, run_ids)
    plans: list[tuple[str, pacing.Pace, list[pacing.Item]]] = []
    reserved = 0
    for run_id in reversed(run_ids):  # the oldest first
        grant = granted.get(run_id, shares.Grant())
        count, plan = _tick_run(ctx, run_id, grant, paced, failed_over)
        reserved += count
        if plan is not None:
            plans.append(plan)
    if plans:
        pacing.send_paced(ctx, pacing.merged(plans))
    return reserved


def _grants(ctx: Context, run_ids: list[str]) -> dict[str, shares.Grant]:
    """Each active run's share of the deployment's ceilings and of the rates of the throttle
    keys its jobs named (shares.py); the keys' rates climb here, one step per calm window."""
    runs = ctx.shares
    settings = ctx.settings
    loads = runs.loads(run_ids)
    keys = sorted({load.throttle_key for load in loads if load.throttle_key})
    ceilings = settings.max_rate > 0 or settings.max_in_flight > 0
    if not keys and not ceilings:
        return {}
    now = runs.server_time_ms()
    key_rates: dict[str, float] = {}
    changed: dict[str, float | None] = {}
    if keys:
        key_rates, changed = shares.settle_keys(
            loads,
            runs.key_rates(keys),
            now_ms=now,
            tick_seconds=settings.tick_seconds,
            window_ms=settings.throttle_window * 1000,
            steps=THROTTLE_STEPS,
        )
        for key, rate in changed.items():
            if rate is None:
                runs.drop_key(key)
                log.info("[scheduler] Downstream %r back to its runs' own rates", key)
    granted = shares.grants(
        loads,
        max_rate=settings.max_rate,
        max_in_flight=settings.max_in_flight,
        tick_seconds=settings.tick_seconds,
        now_ms=now,
        key_rates=key_rates,
    )
    for key in key_rates:
        going = sum(
            min(
                shares.asked_rate(load, now, settings.tick_seconds),
                granted[load.run_id].rate or math.inf,
            )
            for load in loads
            if load.throttle_key == key and load.running
        )
        runs.set_key(key, going=going, rate=changed.get(key), now_ms=now)
    return granted


def _tick_run(
    ctx: Context, run_id: str, grant: shares.Grant, paced: bool, failed_over: bool
) -> tuple[int, tuple[str, pacing.Pace, list[pacing.Item]] | None]:
    """One run's part of a tick: what it sends again, and its jobs due, reserved and sent (not
    paced) or planned (paced: the plan, sent with the other runs' by the tick). Returns how many
    jobs it reserved and the plan."""
    runs = ctx.schedule
    if failed_over:
        _send_unaccounted(ctx, run_id)
    lost = runs.claim_lost(run_id, most=RESEND_MOST, unconfirmed_ms=ctx.unconfirmed_ms)
    # a paced tick sends the overdue retries and reruns with its own messages, the rest at once
    reruns = [key for key in lost.keys if paced and parse_message_key(key)[2]]
    others = [key for key in lost.keys if not (paced and parse_message_key(key)[2])]
    if others:
        _send(ctx, run_id, others, False)
    _log_resent(run_id, lost, ctx.settings.max_deliveries)
    if ctx.broker_queue is not None:
        _sweep_lost_messages(ctx, run_id)
    tick_seconds = ctx.settings.tick_seconds
    reservation = runs.reserve_due(
        run_id,
        tick_seconds,
        batch=ctx.batch_size(run_id, grant.rate),
        max_outstanding=ctx.settings.max_outstanding,
        unconfirmed_ms=ctx.unconfirmed_ms,
        lookahead_s=tick_seconds if paced else 0.0,
        grant=grant,
    )
    plan = None
    if paced:
        # held below y by OPTIO_MAX_RATE (not by a throttle): no start gate
        ceiling = grant.ceiling and grant.rate is not None and reservation.rate >= grant.rate
        plan = _plan_paced(ctx, run_id, reservation, reruns, tick_seconds, ceiling)
    elif reservation.count:
        _send(ctx, run_id, reservation.messages, True)
    if reservation.count:
        log.info("[scheduler] Enqueued %d jobs of run %s", reservation.count, run_id)
    return reservation.count, plan


def _plan_paced(
    ctx: Context,
    run_id: str,
    reservation: Reservation,
    reruns: list[str],
    tick_seconds: float,
    ceiling: bool,
) -> tuple[str, pacing.Pace, list[pacing.Item]] | None:
    """The paced part of a run's tick: the reserved messages, the overdue ``reruns`` and the
    retries and reruns due within the tick, each at its time (pacing.py)."""
    ahead = ctx.schedule.claim_ahead(
        run_id, int(tick_seconds * 1000), unconfirmed_ms=ctx.unconfirmed_ms, most=RESEND_MOST
    )
    pace = pacing.Pace(reservation, tick_seconds, ceiling=ceiling)
    items = pace.plan(reruns, ahead)
    return (run_id, pace, items) if items else None


def _log_resent(run_id: str, lost: Lost, max_deliveries: int) -> None:
    """One line per kind of message sent again, and one for the messages given up."""
    if lost.given_up:
        log.error(
            "[scheduler] Run %s: %d message(s) delivered %d times without finishing (the lease "
            "expired each time) given up: %d job(s) failed for good",
            run_id,
            lost.given_up,
            max_deliveries,
            lost.failed,
        )
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


def _sweep_lost_messages(ctx: Context, run_id: str) -> None:
    """Send again the jobs of messages that a Redis broker lost.

    kombu's Redis transport takes a message off the queue (BRPOP) and records it as unacknowledged
    in a second call: a worker SIGKILLed between the two loses the message, and with it its jobs
    (nothing else knows them: they are confirmed, not leased, not due); so does a broker that is
    not the state's Redis and restarts or fails over in between (the state's primary_changed
    cannot see that). When the broker's jobs
    queue (every priority list) and its unacknowledged messages are empty on every tick for
    ctx.repair_margin_ms (REPAIR_TICKS ticks, and at least a lease) and nothing of the run was
    published within that margin, while the same jobs of the run stay unaccounted for, nothing
    can deliver them: they go out again. A worker that merely stopped between its two calls for
    less than the margin (frozen, paused) is never taken for dead: its message shows up again in
    the unacknowledged messages, or its jobs as leased. RabbitMQ needs no such repair (it hands a
    message out and keeps it as unacknowledged in one step), so ctx.broker_queue is None there.
    """
    runs = ctx.schedule
    left = runs.jobs_left(run_id)
    if left.waiting <= 0 or not _broker_idle(ctx):
        ctx.suspects.pop(run_id, None)
        return
    suspect = ctx.suspects.get(run_id)
    if suspect is None:
        ctx.suspects[run_id] = Suspect(runs.unaccounted_jobs(run_id), left.now_ms)
        return
    suspect.ticks += 1
    quiet_ms = left.now_ms - max(suspect.since_ms, left.sent_ms)
    if suspect.ticks < REPAIR_TICKS or quiet_ms < ctx.repair_margin_ms:
        return
    jobs = runs.unaccounted_jobs(run_id)
    if not jobs or jobs != suspect.jobs:
        ctx.suspects[run_id] = Suspect(jobs, left.now_ms)  # something moved: watch again
        return
    del ctx.suspects[run_id]
    log.warning(
        "[scheduler] Run %s: %d job(s) that no message in the broker carries (a worker died "
        "while taking them) sent again",
        run_id,
        len(jobs),
    )
    _send(ctx, run_id, _unaccounted_messages(ctx, run_id, jobs), False)


def _unaccounted_messages(ctx: Context, run_id: str, jobs: list[int]) -> list[str]:
    """Messages that carry ``jobs`` again: a job whose retry or rerun owns it goes out in that
    message (no other one would run it), the others in messages of the current batch size."""
    return as_messages(jobs, ctx.batch_size(run_id), ctx.schedule.job_owners(run_id, jobs))


def _broker_idle(ctx: Context) -> bool:
    """Whether the broker's jobs queue and its unacknowledged messages are empty; False when the
    broker does not answer (nothing can be told then)."""
    queue = ctx.broker_queue
    if queue is None:
        return False
    try:
        return queue.idle()
    except redis.RedisError as exc:
        log.debug("[scheduler] Could not read the broker's queue (%s)", exc)
        return False


def _send_unaccounted(ctx: Context, run_id: str) -> None:
    """Another Redis server answers (a failover, or a restart): send the jobs that nothing
    accounts for again, once. The broker may have lost a message that a worker had taken from
    the queue but not yet recorded as unacknowledged when the old server died (kombu does the
    two in separate calls), and a message waiting in the broker is otherwise never sent again.
    Copies of messages that were not lost are dropped by their lease or the done bitmap."""
    jobs = ctx.schedule.unaccounted_jobs(run_id)
    log.warning(
        "[scheduler] Another Redis server answers (failover or restart): %d waiting job(s) of "
        "run %s sent again in case the broker lost their messages",
        len(jobs),
        run_id,
    )
    if jobs:
        _send(ctx, run_id, _unaccounted_messages(ctx, run_id, jobs), False)


def as_messages(jobs: list[int], size: int, owners: dict[int, str] | None = None) -> list[str]:
    """Message keys for ascending job ids: runs of consecutive ids, at most ``size`` a message;
    a job in ``owners`` (job id -> the retry or rerun that owns it) goes alone in that one."""
    keys: list[str] = []
    for job in jobs:
        if owners and job in owners:
            keys.append(owners[job])
            continue
        if keys:
            first, count, retry = parse_message_key(keys[-1])
            if job == first + count and count < size and not retry:
                keys[-1] = message_key(first, count + 1)
                continue
        keys.append(message_key(job, 1))
    return keys
