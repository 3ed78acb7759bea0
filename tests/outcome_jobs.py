"""The job function of the results-export tests (tests/processes/test_results_export.py), run in
real workers via OPTIO_JOB_FUNC."""

from __future__ import annotations

import os
from functools import cache

import redis

from optio.store.connection import client_for

#: Jobs from this id on return their id at once (the large runs of the streaming check).
PLAIN_FROM = 10_000


@cache
def _redis() -> redis.Redis:
    return client_for(os.environ["REDIS_URL"])


def heal_key(run_id: str) -> str:
    """Set, jobs 7, 17, 27, ... of the run succeed (a retry-failed after the fix)."""
    return f"test:heal:{run_id}"


def expected(job_id: int, healed: bool = False) -> tuple[str, object, str | None, int]:
    """(status, result, error, attempts) of job ``job_id`` of a finished run, with
    OPTIO_JOB_ATTEMPTS 2; ``healed``: after a retry-failed with the heal key set."""
    if job_id % 10 == 7:
        if healed:
            return "processed", {"job": job_id, "square": job_id * job_id}, None, 1
        return "failed", None, f"ValueError: job {job_id} fails for good", 2
    if job_id % 10 == 3:
        return "processed", f"job {job_id} on its second try", None, 2
    if job_id % 10 == 5:
        return "processed", None, None, 1
    return "processed", {"job": job_id, "square": job_id * job_id}, None, 1


def outcome(run_id: str, job_id: int) -> object:
    """What ``expected`` says: jobs 7, 17, ... raise until healed, 3, 13, ... raise on their first
    try, 5, 15, ... return None, the others an object computed from the job id."""
    if job_id >= PLAIN_FROM:
        return job_id
    if job_id % 10 == 7 and not _redis().exists(heal_key(run_id)):
        raise ValueError(f"job {job_id} fails for good")
    if job_id % 10 == 3 and _redis().incr(f"test:tries:{run_id}:{job_id}") == 1:
        raise RuntimeError(f"job {job_id} fails for now")
    if job_id % 10 == 3:
        return f"job {job_id} on its second try"
    if job_id % 10 == 5:
        return None
    return {"job": job_id, "square": job_id * job_id}


def item_length(run_id: str, job_id: int, item: str) -> int:
    """For runs started with short text items (bench.export --items): its item's length, at
    once."""
    return len(item)
