"""The leases of a prefork worker's pool processes, renewed by the worker's main process.

A job that holds the GIL for longer than a lease (one long C call: a big-integer ``pow``, a C
extension that does not release it) starves every other thread of its process, so a pool
process could not renew its own leases: its message was sent again after one lease and ran
twice, in another live process. In prefork, the worker's main process (Celery's consumer) knows
which message each of its pool processes runs: Celery's request of it (``celery.worker.state``)
carries the task's arguments (run id, first job, count, retry: the message key) and, once a pool
process accepted it, that process's pid. A thread of the main process renews those leases every
third of OPTIO_LEASE_SECONDS, in one call per run for all its pool processes
(``renew_owned.lua``). It never sees the pool processes' tokens: each of them leases with
tokens that start with its owner id, ``<worker id>.<pid>`` (``Keeper.delegate``), and a lease is
renewed only when its token carries the owner id of the process that runs its message.

- A lease is never renewed after its job ended: a request that ended is acknowledged (or
  rejected) first, and is passed over; a pool process releases its lease itself, in the call
  that counts the message's last job, and the script renews only leases that exist, of runs that
  have not ended.
- A pool process that died (SIGKILL, the OOM killer, ``os._exit``): Celery fails its request in
  the main process with WorkerLostError (:class:`PoolRequest`). Its lease is ended there at once,
  before Celery hands the message back to the broker, so that delivery, or the next tick, takes
  it without waiting for the lease to run out (counted as one expiry, OPTIO_MAX_DELIVERIES).
  Celery's pool notices some deaths only at its maintenance, every 5 s: the renewal thread also
  looks every DEAD_CHECK_SECONDS for pool processes gone or zombies, and ends their leases (it
  never renews them).
- The main process itself killed: the leases of its pool processes run out, as when a whole
  worker is killed.

Pools without a separate main process (``-P threads``, ``solo``) renew in the process that runs
the jobs (``leases.Keeper``); there a job must not hold the GIL for longer than a lease.
``-P eventlet`` and ``gevent`` run jobs as green threads, renewal included: a job must yield
(the worker says so at start).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from typing import Any

import redis
from celery.concurrency import get_implementation
from celery.worker import state
from celery.worker.request import Request

from optio.config import Settings
from optio.names import PROCESS_JOBS_TASK, message_key
from optio.store.connection import connect
from optio.store.leases import Leases

log = logging.getLogger("optio")

#: Pools that run jobs as green threads of one process: a job that does not yield starves the
#: renewal (and every other job).
GREEN_POOLS = ("eventlet", "gevent")

#: How often (at most) the main process looks for pool processes that died while running a
#: message, seconds (Celery's pool notices most at once, some only at its 5 s maintenance).
DEAD_CHECK_SECONDS = 0.5

#: The arguments of the process_jobs task, in order (app.py).
TASK_ARGS = ("run_id", "first", "count", "retry", "resent")


def pool_kind(pool_cls: Any) -> str:
    """``prefork``, ``threads``, ``solo``, ``eventlet``, ``gevent`` (or the module of a custom
    pool) for a worker's pool option (a name or a class)."""
    cls = get_implementation(pool_cls)
    module = getattr(cls, "__module__", "") or ""
    kind = module.rsplit(".", 1)[-1]
    return "threads" if kind == "thread" else kind


def green_warning(kind: str, lease_seconds: float) -> str:
    """The line a worker with an eventlet or gevent pool logs at start."""
    return (
        f"[worker] -P {kind}: jobs run as green threads of one process, and so does the renewal "
        f"of their leases: a job must yield (I/O through the patched libraries, or "
        f"{kind}.sleep(0)) at least every {lease_seconds / 3:g} s (a third of "
        f"OPTIO_LEASE_SECONDS={lease_seconds:g}), or its lease runs out and its message runs "
        f"again; for CPU-bound jobs use the prefork pool (the default)"
    )


def _message(request: Request) -> tuple[str, str] | None:
    """(run id, message key) of a process_jobs request, else None."""
    if request.name != PROCESS_JOBS_TASK:
        return None
    args = dict(zip(TASK_ARGS, request.args or (), strict=False))
    args.update(request.kwargs or {})
    try:
        return str(args["run_id"]), message_key(
            int(args["first"]), int(args["count"]), int(args.get("retry", 0))
        )
    except (KeyError, TypeError, ValueError):
        return None


class PoolLeases:
    """In a prefork worker's main process: the renewal of its pool processes' leases, and their
    end when a pool process dies. Inactive in other pools (``worker_id`` stays empty)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lease_ms = int(settings.lease_seconds * 1000)
        self.interval = settings.lease_seconds / 3
        #: this worker's id, set at worker_init in a prefork worker (inherited by its pool)
        self.worker_id = ""
        #: the worker's pool (pool_kind), known from worker_init
        self.kind = ""
        self._store: Leases | None = None
        #: (pid, message key) of the dead pool processes whose leases were ended (the thread's)
        self._dead: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self.worker_id)

    def owner(self, pid: int) -> str:
        """The owner id that the tokens of pool process ``pid`` start with."""
        return f"{self.worker_id}.{pid}"

    @property
    def store(self) -> Leases:
        """The main process's own connection: one try per call (the renewal tries again next
        time; a pool process's death must not hold up the consumer while Redis is away)."""
        with self._lock:
            if self._store is None:
                client = connect(self.settings.redis_url, timeout=self.settings.redis_timeout)
                self._store = Leases(client, self.settings)
            return self._store

    def worker_init(self, sender: Any = None, **_: object) -> None:
        """``worker_init`` (the main process, before its pool starts): activate in prefork."""
        self.kind = pool_kind(getattr(sender, "pool_cls", None) or "prefork")
        if self.kind == "prefork":
            self.worker_id = secrets.token_hex(6)

    def worker_ready(self, **_: object) -> None:
        """``worker_ready`` (the main process, its pool started, logging set up): the renewal
        thread in prefork; with an eventlet or gevent pool, the warning that jobs must yield."""
        if self.active:
            threading.Thread(target=self._run, name="optio-pool-leases", daemon=True).start()
        elif self.kind in GREEN_POOLS:
            log.warning(green_warning(self.kind, self.settings.lease_seconds))

    def _run(self) -> None:
        stop = threading.Event()  # never set: waits without holding the GIL
        renew_at = time.monotonic() + self.interval
        while True:
            stop.wait(max(0.0, min(DEAD_CHECK_SECONDS, renew_at - time.monotonic())))
            due = time.monotonic() >= renew_at - 0.001
            if due:
                renew_at = time.monotonic() + self.interval
            try:
                self.renew(extend=due)
            except redis.RedisError as exc:
                # the leases run out if this lasts: their messages are sent again, counted once
                log.warning("[worker] Leases of the pool processes not renewed (%s)", exc)

    def running(self) -> list[tuple[str, str, int]]:
        """(run id, message key, pid) of each process_jobs message a pool process runs now:
        accepted by a pool process, not acknowledged yet (a request that ended was; one
        accepted after its result came in too).

        Read from Celery's active requests, not from its requests by id: a second delivery of
        a running message (a visibility timeout, a broker's redelivery) has the same id, and
        the one that runs must stay renewed."""
        refs = list(state.active_requests.data)  # a copy made under the GIL: no Python code
        out = []
        for ref in refs:
            request = ref()
            if request is None or not request.worker_pid or request.acknowledged:
                continue
            message = _message(request)
            if message:
                out.append((*message, int(request.worker_pid)))
        return out

    def renew(self, *, extend: bool = True) -> None:
        """End the leases of pool processes that died (Celery may take seconds to notice);
        with ``extend``, extend the others, one call per run."""
        by_run: dict[str, list[tuple[str, str]]] = {}
        dead = set()
        for run_id, key, pid in self.running():
            if not process_alive(pid):
                dead.add((pid, key))
                if (pid, key) not in self._dead:  # once, not until Celery notices
                    self.end(run_id, key, pid, "it died")
            elif extend:
                by_run.setdefault(run_id, []).append((key, self.owner(pid)))
        self._dead = dead
        for run_id, owned in by_run.items():
            self.store.renew_owned(run_id, owned, self.lease_ms)

    def release(self, request: Request, reason: str) -> None:
        """End at once the lease of the message of ``request``, which its pool process failed
        (``reason``: WorkerLostError when the process died)."""
        message = _message(request) if self.active and request.worker_pid else None
        if message is not None:
            try:
                self.end(*message, int(request.worker_pid), reason)
            except redis.RedisError as exc:
                log.warning(
                    "[worker] Lease of message %s not ended (%s): it runs out", message, exc
                )

    def end(self, run_id: str, key: str, pid: int, reason: str) -> None:
        """End now the lease that pool process ``pid`` holds on message ``key``, if it still
        does: that message's next delivery, or the next tick, takes it at once."""
        _, lost = self.store.renew_owned(run_id, [(key, self.owner(pid))], 0)
        if not lost:  # else its job had ended, or its lease was gone already
            log.warning(
                "[worker] Message %s of run %s failed in pool process %d (%s): its lease ended "
                "now, the message comes back at once",
                key,
                run_id,
                pid,
                reason,
            )


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: not gone, not a zombie (dead, not reaped yet by Celery's
    pool, which can take it seconds)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: the kernel says whether it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


class PoolRequest(Request):
    """Celery's request of a process_jobs message, which ends the message's lease when its pool
    process fails it (WorkerLostError: the process died), before Celery requeues the message."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False):
        pool_leases: PoolLeases = self.task.app.optio_context.pool_leases
        exc = getattr(exc_info, "exception", None)
        pool_leases.release(self, type(getattr(exc, "exc", exc)).__name__)
        return super().on_failure(
            exc_info, send_failed_event=send_failed_event, return_ok=return_ok
        )
