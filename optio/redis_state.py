"""The store: optio's state in Redis, the Lua scripts on it, and the verbs that call them.

:class:`RunStore` holds every part of ``optio.store`` on one connection, for callers that use
several (the web process, tests). A process that needs one part builds that part alone: the
worker's jobs use ``Counting`` and ``Leases``, the tick ``Schedule``, the webhook deliverer
``Outbox``. Every key and every field of the run hash is listed in ``optio/names.py``.
"""

from __future__ import annotations

import redis

from optio.config import Settings
from optio.store.connection import connect
from optio.store.counting import DURATION_BUCKETS, Counting, Durations, Flush
from optio.store.errors import (
    NoActiveRunError,
    NotPausedError,
    RetryRefusedError,
    RunActiveError,
    UnknownRunError,
    XBelowEnqueuedError,
)
from optio.store.items import Items
from optio.store.leases import Lease, Leases
from optio.store.outbox import Outbox
from optio.store.outcomes import Outcome, Outcomes
from optio.store.runs import Runs
from optio.store.schedule import Lost, Reservation, Schedule
from optio.store.shares import Shares

__all__ = [
    "DURATION_BUCKETS",
    "Counting",
    "Durations",
    "Flush",
    "Items",
    "Lease",
    "Leases",
    "Lost",
    "Outcome",
    "Outcomes",
    "NoActiveRunError",
    "NotPausedError",
    "Outbox",
    "Reservation",
    "RetryRefusedError",
    "RunActiveError",
    "RunStore",
    "Runs",
    "Schedule",
    "Shares",
    "UnknownRunError",
    "XBelowEnqueuedError",
    "connect",
]


class RunStore:
    """Every part of the store on one connection: ``runs``, ``schedule``, ``shares``,
    ``counting``, ``leases``, ``outbox``, ``items``, ``outcomes``. ``settings``: the defaults
    unless given; ``retry_for`` as in :class:`optio.store.scripts.Part`."""

    def __init__(
        self, client: redis.Redis, settings: Settings | None = None, *, retry_for: float = 0.0
    ) -> None:
        settings = settings or Settings()
        self.client = client
        self.settings = settings
        self.runs = Runs(client, settings, retry_for=retry_for)
        self.schedule = Schedule(client, settings, retry_for=retry_for)
        self.shares = Shares(client, settings, retry_for=retry_for)
        self.counting = Counting(client, settings, retry_for=retry_for)
        self.leases = Leases(client, settings, retry_for=retry_for)
        self.outbox = Outbox(client, settings, retry_for=retry_for)
        self.items = Items(client, settings, retry_for=retry_for)
        self.outcomes = Outcomes(client, settings, retry_for=retry_for)
