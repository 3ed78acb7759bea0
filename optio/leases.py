"""The leases a worker process holds on the messages it runs, taken and renewed by one thread.

A message's first delivery starts at once; if it still runs after TAKE_AFTER_SECONDS, this
process's lease thread takes its lease (``lease_message.lua``), so the messages that make up
almost all the work at high rates, which finish within milliseconds, cost no lease round trip at
all. A duplicate of a message can only appear much later: the broker redelivers after its
visibility timeout (OPTIO_VISIBILITY_TIMEOUT), the tick re-sends only after a lease expired; those
deliveries (flagged ``redelivered`` by kombu, or sent with ``resent``) take the lease before
their first job, and are dropped when a live worker holds it.

While messages run, the thread renews every lease of the process every third of
OPTIO_LEASE_SECONDS, in one call per run. A lease it fails to take or renew is lost (another
delivery holds it, it expired and the tick re-sent the message, or the run ended): the message's
loop stops before its next job. A lease is released in the call that counts its last job.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

import redis

from optio.redis_state import RunStore

log = logging.getLogger("optio")

#: A first delivery still running after this many seconds gets its lease.
TAKE_AFTER_SECONDS = 1.0


@dataclass(eq=False)
class Held:
    """One message this process runs."""

    run_id: str
    key: str
    first: int
    count: int
    leased: bool = False
    started: float = field(default_factory=time.monotonic)
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    #: set by the lease thread (a plain flag: one is made per message, at thousands per second)
    lost: bool = False


class Keeper:
    """The messages this process runs, and the thread that takes and renews their leases."""

    def __init__(self, store: RunStore, lease_seconds: float) -> None:
        self.store = store
        self.lease_ms = int(lease_seconds * 1000)
        self.renew_every = lease_seconds / 3
        self.take_after = min(TAKE_AFTER_SECONDS, self.renew_every)
        self._held: set[Held] = set()
        # held while the thread takes leases, so a message is never leased after its last count
        self._lock = threading.Lock()
        self._ended: set[str] = set()
        self._pid: int | None = None
        self._renewed = 0.0

    # -- the message loop's side --------------------------------------------------------------

    def hold(self, held: Held) -> None:
        with self._lock:
            self._held.add(held)
            if self._pid != os.getpid():  # first message in this (possibly forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="optio-leases", daemon=True).start()

    def drop(self, held: Held) -> None:
        """The message is about to count its last jobs: no lease is taken for it from now."""
        with self._lock:
            self._held.discard(held)

    def note_status(self, run_id: str, status: str) -> None:
        """Remember a run that is not running: its queued messages are skipped without a call."""
        if status != "running":
            if len(self._ended) > 1000:
                self._ended.clear()
            self._ended.add(run_id)

    def ended(self, run_id: str) -> bool:
        return run_id in self._ended

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            time.sleep(self.take_after / 2)
            try:
                self.take_due()
                if time.monotonic() - self._renewed >= self.renew_every:
                    self._renewed = time.monotonic()
                    self.renew()
            except redis.RedisError as exc:
                # the leases run out if this lasts: their messages are sent again, counted once
                log.warning("[worker] Leases not taken or renewed (%s)", exc)

    def take_due(self) -> None:
        """Take the lease of every first delivery running for longer than ``take_after``."""
        with self._lock:
            now = time.monotonic()
            for held in [
                h for h in self._held if not h.leased and now - h.started >= self.take_after
            ]:
                lease = self.store.lease_message(
                    held.run_id, held.key, held.first, held.count, held.token, self.lease_ms
                )
                self.note_status(held.run_id, lease.status)
                if lease.held_elsewhere or lease.status != "running":
                    held.lost = True
                else:
                    held.leased = bool(lease.jobs)  # none left: it is counting its last ones

    def renew(self) -> None:
        """Extend every lease held; flag the ones lost."""
        with self._lock:
            by_run: dict[str, dict[str, Held]] = {}
            for held in self._held:
                if held.leased:
                    by_run.setdefault(held.run_id, {})[held.key] = held
        for run_id, helds in by_run.items():
            status, lost = self.store.renew_leases(
                run_id, {key: h.token for key, h in helds.items()}, self.lease_ms
            )
            self.note_status(run_id, status)
            for key in lost:
                helds[key].lost = True
            if lost and status == "running":
                log.warning(
                    "[worker] Lost the lease of %d message(s) of run %s (expired and sent "
                    "again): not starting more of their jobs",
                    len(lost),
                    run_id,
                )
