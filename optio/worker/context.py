"""What the tasks of one worker or beat process use, built from its settings on first use (in
each pool process after the fork: connections are never shared across a fork)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import cached_property
from typing import Any

import redis
from celery import Celery, Task

from optio.broker.delivery import is_amqp
from optio.config import Settings
from optio.names import PROCESS_JOBS_TASK
from optio.store.connection import connect
from optio.store.counting import Counting
from optio.store.leases import Leases
from optio.store.outbox import Outbox
from optio.store.schedule import Schedule
from optio.worker.leases import Keeper
from optio.worker.pool_leases import PoolLeases


def unconfirmed_ms(tick_seconds: float) -> int:
    """A reserved or re-sent message not confirmed as published within this many ms is sent
    again (the tick that reserved it died): a few ticks."""
    return int(max(5.0, 5 * tick_seconds) * 1000)


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
        #: With Celery's broker in the state's Redis, the tick can see that the broker is empty.
        self.broker_in_state_redis = not self.rabbitmq and settings.broker_url == settings.redis_url
        self.unconfirmed_ms = unconfirmed_ms(settings.tick_seconds)
        #: Jobs found unaccounted for while the broker held nothing, by run (tick.py).
        self.suspects: dict[str, list[int]] = {}
        #: A prefork worker's main process renews its pool processes' leases (pool_leases.py).
        self.pool_leases = PoolLeases(settings)

    @cached_property
    def client(self) -> redis.Redis:
        return connect(self.settings.redis_url, timeout=self.settings.redis_timeout)

    def _part(self, part: type) -> Any:
        # workers wait out a Redis restart instead of failing (and acknowledging) jobs
        return part(self.client, self.settings, retry_for=self.settings.redis_retry_seconds)

    @cached_property
    def schedule(self) -> Schedule:
        return self._part(Schedule)

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

    def pool_process_init(self, **_: object) -> None:
        """``worker_process_init``: in a prefork pool process, the main process renews the
        leases (solo sends it in the worker's only process, where the keeper renews them)."""
        if self.pool_leases.active:
            self.keeper.delegate(self.pool_leases.owner(os.getpid()))

    @cached_property
    def job_function(self) -> Callable[..., Any]:
        return load_job_function(self.settings.job_func)

    @property
    def process_jobs(self) -> Task:
        return self.app.tasks[PROCESS_JOBS_TASK]

    def batch_size(self, run_id: str) -> int:
        return batch_size(self.schedule.run_rate(run_id), self.settings.max_batch)
