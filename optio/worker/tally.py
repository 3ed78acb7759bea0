"""The finished jobs of a message not yet counted, and the thread that counts them when the
message's own loop can't.

A message's loop counts its finished jobs in one Lua call every MARK_EVERY_SECONDS, after a job
ends (``Tally.due``). A job that runs long would hold the counts of the jobs before it until it
ends; a worker killed meanwhile would run them again although their process ended them. So one
daemon thread per process (``Flusher``) counts what waited OVERDUE_SECONDS while a job runs;
it only wakes when counts are waiting, and only acts when the loop did not.

A count by the thread that finds the lease lost or the run no longer running stops the message
before its next job, as a count by the loop does. A count that fails in the thread (Redis away)
keeps its jobs waiting: the loop's next count carries them (and gives the message back if it
fails too).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from optio.store.counting import Counting, Durations
from optio.worker.leases import Held

log = logging.getLogger("optio")

#: A message's loop counts its finished jobs at least this often (seconds).
MARK_EVERY_SECONDS = 0.02
#: Counts that waited this long (seconds) while a job runs are counted by the process's thread.
OVERDUE_SECONDS = 2 * MARK_EVERY_SECONDS


class Tally:
    """What one message's jobs did since its last count (see the module's docstring)."""

    def __init__(self, counting: Counting, held: Held) -> None:
        self.counting = counting
        self.held = held
        self.lock = threading.Lock()  # held across a count: one count of a message at a time
        self.done: dict[int, Any] = {}  # job id -> what its function returned
        self.seconds: dict[int, float] = {}  # job id -> its run time
        self.handled = 0
        self.took = Durations()
        self.since: float | None = None  # monotonic time of the oldest job not counted
        self.counted = 0
        #: the run's status as the last count saw it: jobs start only while "running"
        self.status = "running"

    def add(self, job_id: int, seconds: float, *, returned: bool, result: Any = None) -> None:
        """A job ended after ``seconds``: ``returned`` with ``result``, or not (it failed or was
        throttled, already recorded by its own call)."""
        with self.lock:
            if returned:
                self.done[job_id] = result
                self.seconds[job_id] = seconds
            self.handled += 1
            self.took.add(seconds)
            if self.since is None:
                self.since = time.monotonic()

    def waiting_for(self, now: float) -> float | None:
        """Seconds the oldest job not counted has waited, or None."""
        since = self.since
        return None if since is None else now - since

    def due(self) -> bool:
        """The loop's rule: count once the oldest waiting job waited MARK_EVERY_SECONDS."""
        waited = self.waiting_for(time.monotonic())
        return waited is not None and waited >= MARK_EVERY_SECONDS

    @property
    def stopped(self) -> bool:
        """No more jobs of this message: its lease was lost, or the run paused or ended."""
        return self.held.lost or self.status != "running"

    def flush(self, *, release: bool = False) -> None:
        """Count what is waiting (with ``release``, also when nothing is, and give the lease
        up); raises what the count raised, keeping the jobs waiting."""
        with self.lock:
            if self.since is None and not release:
                return
            flush = self.counting.mark_processed(
                self.held.run_id,
                self.done,
                seconds=self.seconds,
                message=self.held.key,
                token=self.held.token,
                handled=self.handled,
                release=release,
                durations=self.took,
            )
            self.done, self.seconds, self.handled = {}, {}, 0
            self.took, self.since = Durations(), None
            self.counted += flush.counted
            self.status = flush.status
            if flush.lost:
                self._lost(flush.status)

    def _lost(self, status: str) -> None:
        """A count found the lease gone (with the renewal in another thread or process, it may
        be the first to see it): the message's loop starts no more of its jobs."""
        held = self.held
        if not held.lost and status == "running":
            log.warning(
                "[worker] Lost the lease of 1 message(s) of run %s (expired and sent again): not "
                "starting more of their jobs",
                held.run_id,
            )
        held.lost = True


class Flusher:
    """One daemon thread per process that counts the overdue tallies of its messages."""

    def __init__(self) -> None:
        self._tallies: set[Tally] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None
        self._said_failed = 0.0

    def watch(self, tally: Tally) -> None:
        with self._lock:
            if self._pid != os.getpid():  # once per (possibly forked) process
                self._pid = os.getpid()
                self._wake = threading.Event()
                threading.Thread(target=self._run, name="optio-counts", daemon=True).start()
            self._tallies.add(tally)

    def forget(self, tally: Tally) -> None:
        with self._lock:
            self._tallies.discard(tally)

    def poke(self) -> None:
        """Counts are waiting: wake the thread (cheap when it is awake already)."""
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while (wait := self._count_overdue()) is not None:
                time.sleep(wait)

    def _count_overdue(self) -> float | None:
        """Count every tally whose counts are overdue; the seconds until the next one will be,
        or None when nothing waits."""
        with self._lock:
            tallies = list(self._tallies)
        soonest: float | None = None
        now = time.monotonic()
        for tally in tallies:
            waited = tally.waiting_for(now)
            if waited is None:
                continue
            left = OVERDUE_SECONDS - waited
            if left <= 0:
                self._count(tally)
                left = OVERDUE_SECONDS
            soonest = left if soonest is None else min(soonest, left)
        return soonest

    def _count(self, tally: Tally) -> None:
        try:
            tally.flush()
        except Exception as exc:  # noqa: BLE001 (the thread lives on; the loop counts them)
            if time.monotonic() - self._said_failed >= 10:
                self._said_failed = time.monotonic()
                log.warning(
                    "[worker] Counting finished jobs during a long job failed (%s): they are "
                    "counted after it",
                    exc,
                )
