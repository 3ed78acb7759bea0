"""The leases a worker process holds on the messages it runs, renewed by one thread.

A worker leases a message before its first job (``lease_message.lua``, the same call that reads
which of its jobs are left) and releases it in the call that counts its last job. While messages
run, one daemon thread per process renews all of its leases every third of OPTIO_LEASE_SECONDS in
one call per run, so short messages cost no renewal at all. A lease it fails to renew is lost (it
expired and the tick re-sent the message, or the run ended): the message's loop stops before its
next job.

With ``announce`` (RabbitMQ as the broker), a process also keeps one Redis connection named
``optio-holder-<id>`` open for its whole life (named again with every renewal), and its lease
tokens start with that id. A process that dies loses the connection at once, so another worker
that gets its message back from the broker can tell, with :meth:`Keeper.holder_alive`, that the
lease's holder is gone and take the lease over instead of waiting for it to run out.

In a prefork worker's pool process (:meth:`Keeper.delegate`) the worker's main process renews
the leases instead (``pool_leases.py``): a job holding the GIL for longer than a lease would
starve this process's own thread. Its tokens then start with the process's owner id
(``<worker id>.<pid>``, also its holder id with ``announce``), by which the main process renews
them without knowing them; with ``announce`` its thread only keeps the named connection named.
A lease it lost is then learnt from its next count (``mark_processed`` says so), before the
message's next job.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import redis

from optio.names import HOLDER_PREFIX
from optio.store.leases import Leases

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
    """The leases of this process and the thread that renews them (and, with ``announce``,
    the named Redis connection that shows this process is alive)."""

    def __init__(self, store: Leases, lease_seconds: float, *, announce: bool = False) -> None:
        self.store = store
        self.lease_ms = int(lease_seconds * 1000)
        self.interval = lease_seconds / 3
        self.announce = announce
        self._held: set[Held] = set()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._holder = ""
        self._presence: Any = None  # a connection taken out of the store's pool for good
        self._named = False  # the presence connection carries its name now
        self._said_unnamed = False  # a failure to name it is logged once, not every renewal
        self._owner = ""  # set in a prefork pool process: its main process renews its leases

    def delegate(self, owner: str) -> None:
        """This is a prefork pool process whose worker's main process renews its leases (by
        ``owner``, its owner id): no renewal thread of its own (called at its start, before
        any job)."""
        self._owner = owner

    def token(self) -> str:
        """A new lease token of this process: with ``announce`` and the named connection open,
        its holder id, "-", then a random part; else a random token (its lease runs out as
        usual when the process dies, it is never taken over), after the owner id and "_" in a
        pool process whose main process renews its leases."""
        named = False
        if self.announce:
            with self._lock:
                self._start()
                named = self._named
        if named:
            return f"{self._holder}-{secrets.token_hex(4)}"
        return f"{self._owner}_{secrets.token_hex(6)}" if self._owner else secrets.token_hex(8)

    def hold(self, held: Held) -> None:
        with self._lock:
            self._held.add(held)
            self._start()

    def drop(self, held: Held) -> None:
        with self._lock:
            self._held.discard(held)

    def holder_alive(self, token: str) -> bool:
        """Whether the process that leased with ``token`` still has its named connection open.
        A token without a holder id (leased without ``announce``) counts as alive."""
        holder, dash, _ = token.partition("-")
        if not dash:
            return True
        name = HOLDER_PREFIX + holder
        try:
            clients = self.store.client.client_list(_type="normal")
        except redis.RedisError:
            return True  # can't tell: the lease runs out instead
        return any(c.get("name") == name for c in clients)

    def _start(self) -> None:
        """Once per (possibly forked) process, under the lock: the renewal thread (unless the
        main process renews), and with ``announce`` a holder id and its named connection."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        if self.announce:
            self._holder = self._owner or secrets.token_hex(6)
            self._presence, self._named = None, False  # a parent's connection is not ours
            try:
                self._name()
            except redis.RedisError as exc:  # Redis away: the renewal thread names it later
                self._say_unnamed(exc)
        if self.announce or not self._owner:
            threading.Thread(target=self._run, name="optio-leases", daemon=True).start()

    def _name(self) -> None:
        """(Re)name the presence connection; redis-py reconnects it silently when it dropped,
        and a new connection has no name."""
        if self._presence is None:
            self._presence = self.store.client.connection_pool.get_connection()
        conn = self._presence
        try:
            conn.send_command("CLIENT", "SETNAME", HOLDER_PREFIX + self._holder)
            conn.read_response()
        except (redis.RedisError, OSError) as exc:
            self._named = False
            conn.disconnect()  # connect again next time
            raise redis.ConnectionError(str(exc)) from exc
        self._named = True

    def _say_unnamed(self, exc: Exception) -> None:
        if not self._said_unnamed:
            self._said_unnamed = True
            log.warning(
                "[worker] Lease holder connection not named (%s): until it is, this process's "
                "messages come back after their leases run out, not at once",
                exc,
            )

    def _run(self) -> None:
        stop = threading.Event()  # never set: waits without holding the GIL
        while True:
            stop.wait(self.interval)
            if self.announce:
                try:
                    self._name()
                except redis.RedisError as exc:
                    self._say_unnamed(exc)
            if self._owner:
                continue  # the worker's main process renews this process's leases
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
