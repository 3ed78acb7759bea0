"""The leases a worker process holds on the messages it runs, renewed by one thread.

A worker leases a message before its first job (``lease_message.lua``, the same call that reads
which of its jobs are left) and releases it in the call that counts its last job. While messages
run, one daemon thread per process renews all of its leases every third of OPTIO_LEASE_SECONDS in
one call per run, so short messages cost no renewal at all. A lease it fails to renew is lost (it
expired and the tick re-sent the message, or the run ended): the message's loop stops before its
next job.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field

import redis

from optio.redis_state import RunStore

log = logging.getLogger("optio")


@dataclass(eq=False)
class Held:
    """One message this process runs under lease."""

    run_id: str
    key: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    #: set by the renewal thread (a plain flag: one Held is made per message)
    lost: bool = False


class Keeper:
    """The leases of this process and the thread that renews them."""

    def __init__(self, store: RunStore, lease_seconds: float) -> None:
        self.store = store
        self.lease_ms = int(lease_seconds * 1000)
        self.interval = lease_seconds / 3
        self._held: set[Held] = set()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def hold(self, held: Held) -> None:
        with self._lock:
            self._held.add(held)
            if self._pid != os.getpid():  # first lease in this (possibly forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="optio-leases", daemon=True).start()

    def drop(self, held: Held) -> None:
        with self._lock:
            self._held.discard(held)

    def _run(self) -> None:
        stop = threading.Event()  # never set: waits without holding the GIL
        while True:
            stop.wait(self.interval)
            try:
                self.renew()
            except redis.RedisError as exc:
                # the leases run out if this lasts: their messages are sent again, counted once
                log.warning("[worker] Leases not renewed (%s)", exc)

    def renew(self) -> None:
        """Extend every lease held; flag the ones lost."""
        with self._lock:
            by_run: dict[str, dict[str, Held]] = {}
            for held in self._held:
                by_run.setdefault(held.run_id, {})[held.key] = held
        for run_id, helds in by_run.items():
            status, lost = self.store.renew_leases(
                run_id, {key: h.token for key, h in helds.items()}, self.lease_ms
            )
            for key in lost:
                helds[key].lost = True
            if lost and status == "running":
                log.warning(
                    "[worker] Lost the lease of %d message(s) of run %s (expired and sent "
                    "again): not starting more of their jobs",
                    len(lost),
                    run_id,
                )
