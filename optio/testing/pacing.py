"""How evenly jobs start: the job function that records each start, and the measure of the
pacing goal (issue 20): in any 100 ms window no more than ceil(y/600) + 1 jobs start."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from functools import cache

import redis

from optio.store.connection import client_for
from optio.testing.runs import starts_key
from optio.throttle import Throttle

#: The window of the pacing goal, seconds.
WINDOW = 0.1


@cache
def _redis() -> redis.Redis:
    return client_for(os.environ["OPTIO_TEST_REDIS_URL"])


def record_start(run_id: str, job_id: int) -> str:
    """The job function (OPTIO_JOB_FUNC=optio.testing.pacing:record_start, with the Redis to
    record in as OPTIO_TEST_REDIS_URL): record when it started ("job id:ms since the epoch" on
    the run's starts list, as tests.fault_jobs does), and return at once."""
    _redis().rpush(starts_key(run_id), f"{job_id}:{time.time() * 1000:.3f}")
    return ""


#: record_throttled_once throttles the first execution of every THROTTLE_EVERY-th job.
THROTTLE_EVERY = 5


def record_throttled_once(run_id: str, job_id: int) -> str:
    """As ``record_start``; the first execution of every THROTTLE_EVERY-th job then raises
    ``optio.Throttle`` (no Retry-After), so the run has reruns to pace as well as new jobs."""
    record_start(run_id, job_id)
    if job_id % THROTTLE_EVERY == 0 and _redis().incr(f"test:throttled:{run_id}:{job_id}") == 1:
        raise Throttle()
    return ""


def bound(y_minute: float) -> int:
    """The most jobs that may start in any WINDOW at y jobs/min: ceil(y/600) + 1."""
    return math.ceil(y_minute / 600) + 1


def most_in_window(times: Sequence[float], window: float = WINDOW) -> int:
    """The most of ``times`` (seconds, any order) that fall in any closed interval of
    ``window`` seconds."""
    ordered = sorted(times)
    most = lo = 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] > window:
            lo += 1
        most = max(most, hi - lo + 1)
    return most
