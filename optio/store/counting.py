"""The worker's counts: jobs processed, failed (or to retry), throttled; each written with the
run times of the jobs, and (with replicas) returned only once enough replicas have it."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from optio.config import Settings
from optio.names import script_keys
from optio.store.connection import retrying
from optio.store.outcomes import encode, ms_text
from optio.store.replicas import ReplicaWait
from optio.store.scripts import Part, now_arg, num_arg
from optio.store.text import MAX_ERROR_BYTES, storable

#: Upper bounds (seconds) of the job run-time histogram (optio_job_duration_seconds); the last
#: bucket is +Inf. Workers count into them; /metrics reads them from the metrics hash.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Durations:
    """Run times of the jobs a worker executed since its last count, as histogram buckets."""

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.total += seconds

    def __bool__(self) -> bool:
        return any(self.counts)

    def encode(self) -> str:
        """The form mark_processed.lua takes (its ARGV[7]): "count,sum,n0,n1,..."."""
        return ",".join([str(sum(self.counts)), repr(self.total), *map(str, self.counts)])


@dataclass(frozen=True)
class Flush:
    """What a counting call answered: jobs counted now, the run's status, the lease lost."""

    counted: int
    status: str
    lost: bool


class Counting(Part):
    """``settings.redis_min_replicas`` and ``redis_wait_ms``: each count returns only once that
    many replicas have its write (Redis WAIT, see replicas.py)."""

    SCRIPTS = ("mark_processed", "throttle_job", "fail_job", "start_slot")

    def __init__(self, client: redis.Redis, settings: Settings, *, retry_for: float = 0.0) -> None:
        super().__init__(client, settings, retry_for=retry_for)
        self.replicas = ReplicaWait(client, settings.redis_min_replicas, settings.redis_wait_ms)

    def _count(self, name: str, run_id: str, args: list[Any]) -> Any:
        """As Part._run (the same keys), and WAIT for the replicas."""
        return self.replicas.call(self._scripts[name], script_keys(run_id), args)

    @retrying
    def mark_processed(
        self,
        run_id: str,
        results: Mapping[int, Any],
        *,
        seconds: Mapping[int, float] | None = None,
        message: str = "",
        token: str = "",
        handled: int = 0,
        release: bool = False,
        durations: Durations | None = None,
        now_ms: int | None = None,
    ) -> Flush:
        """Count each job id of ``results`` (job id -> the value its function returned) once
        and keep its outcome; account ``handled`` jobs of the leased ``message`` and, with
        ``release``, give its lease up; add the run times of the jobs executed since the last
        call to the metrics (all in one call). ``seconds``: job id -> its run time. Each outcome
        is kept as outcomes.encode makes it (the result at most ``settings.max_result_bytes``)."""
        args: list[Any] = [
            run_id,
            now_arg(now_ms),
            message,
            token,
            handled,
            int(release),
            durations.encode() if durations else "",
        ]
        most = self.settings.max_result_bytes
        took = seconds or {}
        for job_id, result in results.items():
            args += [job_id, encode(result, took.get(job_id), most)]
        counted, status, lost = self._count("mark_processed", run_id, args)
        return Flush(int(counted), status, lost == 1)

    def start_slot(self, run_id: str, early: float, *, now_ms: int | None = None) -> float:
        """Seconds a paced job of ``run_id`` waits before it starts: one spacing at the
        effective rate (less ``early`` of it) after the run's last start (start_slot.lua). Not
        retried: a job that can't ask starts at once."""
        return int(self._run("start_slot", run_id, [run_id, now_arg(now_ms), repr(early)])) / 1000

    @retrying
    def throttle_job(
        self,
        run_id: str,
        job_id: int,
        retry_after_s: float | None = None,
        *,
        decrease: float | None = None,
        window_s: float | None = None,
        min_rate: float | None = None,
        max_wait_s: float | None = None,
        key: str | None = None,
        now_ms: int | None = None,
    ) -> tuple[str, float, float]:
        """Job ``job_id`` was throttled: run it again later (no attempt used) and cut the run's
        effective rate (once per window). ``retry_after_s``: the job's own wait, seconds >= 0
        (``math.inf`` allowed), capped at ``max_wait_s`` (default OPTIO_THROTTLE_MAX_WAIT); a
        negative or NaN one raises ValueError before anything is written. Returns (outcome,
        seconds until it runs again, the effective rate in jobs/min); outcome 'throttled',
        'done' or 'ended'. ``key``: the downstream the job called (``Throttle(key=...)``):
        the rate that key's runs share is cut instead of the run's own."""
        cap = self.settings.throttle_max_wait if max_wait_s is None else max_wait_s
        wait = None
        if retry_after_s is not None:
            if not retry_after_s >= 0:
                raise ValueError(f"retry_after must be seconds >= 0, not {retry_after_s!r}")
            wait = min(float(retry_after_s), cap)  # finite from here on (Lua reads no inf)
        outcome, wait_ms, rate = self._count(
            "throttle_job",
            run_id,
            [
                run_id,
                job_id,
                num_arg(wait),
                repr(float(self.settings.throttle_decrease if decrease is None else decrease)),
                int((self.settings.throttle_window if window_s is None else window_s) * 1000),
                repr(float(self.settings.min_rate if min_rate is None else min_rate)),
                now_arg(now_ms),
                int(cap * 1000),
                key or "",
            ],
        )
        return outcome, int(wait_ms) / 1000, float(rate)

    @retrying
    def fail_job(
        self,
        run_id: str,
        job_id: int,
        error: str,
        *,
        attempts: int,
        backoff_s: float,
        max_delay_s: float = 30.0,
        seconds: float | None = None,
        now_ms: int | None = None,
    ) -> tuple[str, int, float]:
        """A job raised: schedule its retry after a doubling backoff, or count it as failed once
        ``attempts`` are spent (its ``error`` stored as text.storable makes it, at most
        text.MAX_ERROR_BYTES; the attempt's run time ``seconds`` in its record). Returns
        (outcome, attempts so far, retry delay in s); outcome is
        'retry', 'failed', 'done' (counted before) or 'ended' (the run is not running)."""
        outcome, made, delay = self._count(
            "fail_job",
            run_id,
            [
                run_id,
                job_id,
                storable(error, MAX_ERROR_BYTES),
                attempts,
                int(backoff_s * 1000),
                int(max_delay_s * 1000),
                now_arg(now_ms),
                ms_text(seconds),
            ],
        )
        return outcome, int(made), int(delay) / 1000
