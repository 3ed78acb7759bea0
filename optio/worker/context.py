"""What the tasks of one worker or beat process use, built from its settings on first use (in
each pool process after the fork: connections are never shared across a fork)."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis
from celery import Celery, Task

from optio.broker.delivery import is_amqp
from optio.broker.redis_queue import RedisQueue
from optio.config import Settings
from optio.names import JOBS_QUEUE, PROCESS_JOBS_TASK
from optio.store.connection import connect
from optio.store.counting import Counting
from optio.store.items import Items
from optio.store.leases import Leases
from optio.store.outbox import Outbox
from optio.store.schedule import Schedule
from optio.store.shares import Shares
from optio.worker.items import ItemReader, takes_item
from optio.worker.leases import Keeper
from optio.worker.pool_leases import PoolLeases
from optio.worker.tally import Flusher

log = logging.getLogger("optio")


def unconfirmed_ms(tick_seconds: float) -> int:
    """A reserved or re-sent message not confirmed as published within this many ms is sent
    again (the tick that reserved it died): a few ticks."""
    return int(max(5.0, 5 * tick_seconds) * 1000)


#: The lost-message repair sends jobs again only after watching the broker empty (and the jobs
#: unaccounted for) on at least this many ticks in a row (see repair_margin_ms).
REPAIR_TICKS = 4


def repair_margin_ms(tick_seconds: float, lease_seconds: float) -> int:
    """How long the lost-message repair watches the broker empty while jobs are unaccounted
    for, and waits after the run's last publish, before it sends those jobs again: REPAIR_TICKS
    ticks, and at least a lease. A worker that stops between taking a message off the queue and
    recording it as unacknowledged (frozen, paused) for less than this is never taken for dead,
    as with its leases."""
    return int(max(REPAIR_TICKS * tick_seconds, lease_seconds) * 1000)


@dataclass
class Suspect:
    """What the lost-message repair has seen of a run: the jobs that nothing accounted for when
    it began to watch, since when (ms, Redis clock), and on how many ticks in a row the broker
    was empty meanwhile."""

    jobs: list[int]
    since_ms: int
    ticks: int = 1


#: Aim for at most this many job messages per second; faster rates put several jobs in one.
MESSAGES_PER_SECOND = 100


def batch_size(y_minute: float, max_batch: int) -> int:
    """Jobs per message: 1 up to MESSAGES_PER_SECOND jobs/s, more above, at most ``max_batch``
    (OPTIO_MAX_BATCH)."""
    per_second = y_minute / 60
    return max(1, min(max_batch, int(per_second // MESSAGES_PER_SECOND)))


def load_job_function(path: str) -> Callable[..., Any]:
    """The function ``module:function`` names (OPTIO_JOB_FUNC)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Context:
    """The settings, the store's parts, the lease keeper and the job function of this process.

    Redis is the state store whatever the broker; RabbitMQ as the broker makes the tick wait
    for publisher confirms and lets a worker take over the message of a dead one at once.
    """

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.rabbitmq = is_amqp(settings.broker_url)
        self.unconfirmed_ms = unconfirmed_ms(settings.tick_seconds)
        self.repair_margin_ms = repair_margin_ms(settings.tick_seconds, settings.lease_seconds)
        #: What the lost-message repair has seen of each run so far (tick.py).
        self.suspects: dict[str, Suspect] = {}
        #: whether this process moved a deployment's one active run of before several runs
        self.legacy_moved = False
        #: A prefork worker's main process renews its pool processes' leases (pool_leases.py).
        self.pool_leases = PoolLeases(settings)

    @cached_property
    def client(self) -> redis.Redis:
        return connect(self.settings.redis_url, timeout=self.settings.redis_timeout)

    def _part(self, part: type) -> Any:
        # workers wait out a Redis restart instead of failing (and acknowledging) jobs
        return part(self.client, self.settings, retry_for=self.settings.redis_retry_seconds)

    @cached_property
    def broker_queue(self) -> RedisQueue | None:
        """The jobs queue of a Redis broker (this Redis or another), read by the lost-message
        repair; None with RabbitMQ, which loses no message it delivered unless it is
        acknowledged, or a broker URL that redis-py cannot read."""
        settings = self.settings
        if self.rabbitmq:
            return None
        if settings.broker_url == settings.redis_url:
            return RedisQueue(self.client, JOBS_QUEUE)
        try:
            client = connect(settings.broker_url, timeout=settings.redis_timeout)
        except ValueError as exc:
            log.warning(
                "[scheduler] OPTIO_BROKER_URL cannot be read with redis-py (%s): messages the "
                "broker loses are not looked for",
                exc,
            )
            return None
        return RedisQueue(client, JOBS_QUEUE)

    @cached_property
    def schedule(self) -> Schedule:
        return self._part(Schedule)

    @cached_property
    def shares(self) -> Shares:
        return self._part(Shares)

    @cached_property
    def counting(self) -> Counting:
        return self._part(Counting)

    @cached_property
    def leases(self) -> Leases:
        return self._part(Leases)

    @cached_property
    def outbox(self) -> Outbox:
        return self._part(Outbox)

    @cached_property
    def keeper(self) -> Keeper:
        return Keeper(self.leases, self.settings.lease_seconds, announce=self.rabbitmq)

    @cached_property
    def flusher(self) -> Flusher:
        return Flusher()

    def pool_process_init(self, **_: object) -> None:
        """``worker_process_init``: in a prefork pool process, the main process renews the
        leases (solo sends it in the worker's only process, where the keeper renews them)."""
        if self.pool_leases.active:
            self.keeper.delegate(self.pool_leases.owner(os.getpid()))

    @cached_property
    def job_function(self) -> Callable[..., Any]:
        return load_job_function(self.settings.job_func)

    @cached_property
    def job_takes_item(self) -> bool:
        """Whether the job function takes the job's item, ``f(run_id, job_id, item)``: read
        from its signature once. Two-parameter functions are called as ``f(run_id, job_id)``
        and their messages read no item."""
        return takes_item(self.job_function)

    @cached_property
    def item_reader(self) -> ItemReader:
        return ItemReader(self._part(Items))

    @property
    def process_jobs(self) -> Task:
        return self.app.tasks[PROCESS_JOBS_TASK]

    def batch_size(self, run_id: str, share: float | None = None) -> int:
        """Jobs per message of ``run_id`` at its rate, or at ``share`` (its share of a ceiling
        this tick) when that is lower."""
        rate = self.schedule.run_rate(run_id)
        return batch_size(rate if share is None else min(rate, share), self.settings.max_batch)
