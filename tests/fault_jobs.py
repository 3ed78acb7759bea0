"""Job functions the fault tests run in real workers (via OPTIO_JOB_FUNC)."""

from __future__ import annotations

import json
import os
import threading
import time
from functools import cache

import redis

from optio import Throttle
from optio.names import results_key
from optio.store.connection import client_for
from optio.testing.runs import executions_key, starts_key


@cache
def _redis() -> redis.Redis:
    """The Redis of the tests' records: OPTIO_TEST_REDIS_URL when set (a server outside the
    one a test fails over), else REDIS_URL."""
    url = os.environ.get("OPTIO_TEST_REDIS_URL") or os.environ["REDIS_URL"]
    return client_for(url, max_connections=1000)  # -P threads


def counted(run_id: str, job_id: int) -> str:
    """Record when each execution of a job starts, sleep OPTIO_JOB_SECONDS, and count how many
    times each job really ran."""
    _redis().rpush(starts_key(run_id), f"{job_id}:{time.time() * 1000:.0f}")
    time.sleep(float(os.environ.get("OPTIO_JOB_SECONDS", "0")))
    _redis().hincrby(executions_key(run_id), str(job_id), 1)
    return f"done-{job_id}"


def ends_key(run_id: str) -> str:
    """List of "job id:ms since the epoch", one per execution end (``timed``)."""
    return f"test:ends:{run_id}"


def timed(run_id: str, job_id: int) -> str:
    """As ``counted``, and record when each execution ends (``ends_key``)."""
    result = counted(run_id, job_id)
    _redis().rpush(ends_key(run_id), f"{job_id}:{time.time() * 1000:.0f}")
    return result


def flaky(run_id: str, job_id: int) -> str:
    """Every 7th job always raises; jobs 3, 10, 17, ... raise on their first two attempts."""
    if job_id % 7 == 0:
        raise ValueError(f"job {job_id} always fails")
    if job_id % 7 == 3 and _redis().incr(f"test:tries:{run_id}:{job_id}") < 3:
        raise RuntimeError(f"job {job_id} fails for now")
    return f"ok-{job_id}"


def fails_twice(run_id: str, job_id: int) -> str:
    """Jobs 1, 6, 11, ... raise on their first two tries and succeed on the third; every
    execution that gets past that is recorded as ``counted`` records it."""
    if job_id % 5 == 1 and _redis().incr(f"test:tries:{run_id}:{job_id}") <= 2:
        raise RuntimeError(f"job {job_id} fails for now")
    return counted(run_id, job_id)


#: The job fails_once fails (once).
FAILS_ONCE = 3


def fails_once(run_id: str, job_id: int) -> str:
    """Job FAILS_ONCE raises at once on its first execution; every other execution runs as
    ``counted`` (which records it: a failed execution is not recorded)."""
    if job_id == FAILS_ONCE and _redis().incr(f"test:tries:{run_id}:{job_id}") == 1:
        raise RuntimeError(f"job {job_id} fails once")
    return counted(run_id, job_id)


#: Executions of each of fails_at_first's chosen jobs that raise before one succeeds.
FIRST_FAILURES = 2


def fails_at_first(run_id: str, job_id: int) -> str:
    """Jobs 4, 9, 14, ... raise on their first FIRST_FAILURES executions (a Redis counter per job),
    then succeed: with OPTIO_JOB_ATTEMPTS=2 they fail for good, and a retry of the run's failed
    jobs completes it. The error text carries markup, for pages that must show it as text."""
    if job_id % 5 == 4 and _redis().incr(f"test:fails:{run_id}:{job_id}") <= FIRST_FAILURES:
        raise RuntimeError(f'job {job_id} fails at first <img src=x onerror="window.pwned=1">')
    return f"ok-{job_id}"


#: What undecodable_result and undecodable_error give for job 1: a file name with the byte 0xff,
#: as os.fsdecode(b"name-\xff") decodes it (a lone surrogate, which UTF-8 cannot encode).
UNDECODABLE = "name-\udcff"


def undecodable_result(run_id: str, job_id: int) -> str:
    """As ``counted``; job 1 returns UNDECODABLE."""
    result = counted(run_id, job_id)
    return UNDECODABLE if job_id == 1 else result


def undecodable_error(run_id: str, job_id: int) -> str:
    """As ``counted``; job 1 then raises, with UNDECODABLE in its message."""
    result = counted(run_id, job_id)
    if job_id == 1:
        raise ValueError(f"cannot read {UNDECODABLE}")
    return result


#: The job that kills_its_process never finishes.
POISON_JOB = 3


def kills_its_process(run_id: str, job_id: int) -> str:
    """As ``counted``; job POISON_JOB records its execution (and when it started), then ends its
    pool process at once (os._exit: no exception, no cleanup), so it never finishes, however
    often it is delivered."""
    if job_id != POISON_JOB:
        return counted(run_id, job_id)
    _redis().rpush(starts_key(run_id), f"{job_id}:{time.time() * 1000:.0f}")
    _redis().hincrby(executions_key(run_id), str(job_id), 1)
    os._exit(1)


#: The Retry-After job 0 of ``throttled_once`` asks for: an HTTP date read as epoch seconds.
HUGE_RETRY_AFTER = 1.7e9


def throttled_at_key(run_id: str) -> str:
    """Hash: job id -> ms since the epoch when ``throttled_once`` throttled it."""
    return f"test:throttled:{run_id}"


def throttled_once(run_id: str, job_id: int) -> str:
    """The first execution of job 0 raises optio.Throttle asking to wait HUGE_RETRY_AFTER
    seconds; that of jobs 1, 5, 9, ... raises it with no wait of its own; every execution that
    gets past that is recorded as ``counted`` records it."""
    if job_id % 4 == 1 or job_id == 0:
        if _redis().hsetnx(throttled_at_key(run_id), str(job_id), f"{time.time() * 1000:.0f}"):
            raise Throttle(HUGE_RETRY_AFTER if job_id == 0 else None)
    return counted(run_id, job_id)


def fails_first(run_id: str, job_id: int) -> str:
    """Each job raises on its first execution (recorded nowhere), then runs as ``counted``."""
    if _redis().incr(f"test:first:{run_id}:{job_id}") == 1:
        raise RuntimeError(f"job {job_id} fails the first time")
    return counted(run_id, job_id)


def refuse_writes(client: redis.Redis) -> None:
    """Make the Redis of ``client`` refuse every write (OOM) until ``accept_writes``."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)


def accept_writes(client: redis.Redis) -> None:
    client.config_set("maxmemory", 0)


def refuses_writes_after_job_one(run_id: str, job_id: int) -> str:
    """As ``counted``; job 1, the first time it runs, then makes the state's Redis (REDIS_URL)
    refuse writes before it returns, so the count of its result is refused; the test lets
    writes in again. Records go to OPTIO_TEST_REDIS_URL, another server, which keeps taking
    them."""
    result = counted(run_id, job_id)
    if job_id == 1 and _redis().incr(f"test:refused:{run_id}") == 1:
        refuse_writes(client_for(os.environ["REDIS_URL"]))
    return result


def breaks_its_count(run_id: str, job_id: int) -> str:
    """As ``counted``; job 0, the first time it runs, then turns the run's results hash into a
    string (a key of the wrong type), so the script that counts its result fails (WRONGTYPE);
    the test deletes the key again."""
    result = counted(run_id, job_id)
    if job_id == 0 and _redis().incr(f"test:broken:{run_id}") == 1:
        client_for(os.environ["REDIS_URL"]).set(results_key(run_id), "not a hash")
    return result


def gil_held_key(run_id: str) -> str:
    """List of how long (seconds) each execution of ``holds_the_gil`` held the GIL."""
    return f"test:gil-held:{run_id}"


def holds_the_gil(run_id: str, job_id: int) -> str:
    """As ``counted``, but the job is one C call that holds the GIL: ``3 ** e`` (a big-integer
    power; e is OPTIO_TEST_POW_EXPONENT). A thread of the process that notes the time every 10 ms
    measures how long it could not run: that time is recorded as how long the GIL was held."""
    _redis().rpush(starts_key(run_id), f"{job_id}:{time.time() * 1000:.0f}")
    exponent = int(os.environ["OPTIO_TEST_POW_EXPONENT"])
    done = threading.Event()
    longest = [0.0]

    def watch() -> None:
        last = time.perf_counter()
        while not done.wait(0.01):
            now = time.perf_counter()
            longest[0] = max(longest[0], now - last)
            last = now

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.05)  # the watcher is under way
    3**exponent  # noqa: B018 (the call is the point)
    time.sleep(0.05)  # the watcher notes the end of the gap
    done.set()
    watcher.join()
    _redis().rpush(gil_held_key(run_id), f"{longest[0]:.3f}")
    _redis().hincrby(executions_key(run_id), str(job_id), 1)
    return f"done-{job_id}"


#: The job after which slow_once's message runs long, on its first execution only.
SLOW_ONCE_JOB = 5


def slow_once(run_id: str, job_id: int) -> str:
    """As ``counted``; job SLOW_ONCE_JOB first sleeps OPTIO_TEST_SLOW_SECONDS (default 60) on its
    first execution, so the jobs before it in its message have ended while it runs."""
    if job_id == SLOW_ONCE_JOB and _redis().incr(f"test:slow:{run_id}") == 1:
        _redis().rpush(starts_key(run_id), f"{job_id}:{time.time() * 1000:.0f}")
        time.sleep(float(os.environ.get("OPTIO_TEST_SLOW_SECONDS", "60")))
    return counted(run_id, job_id)


def seen_items_key(run_id: str, job_id: int) -> str:
    """List of the items (JSON) that the executions of a job that fails at first were handed."""
    return f"test:seen:{run_id}:{job_id}"


def with_item(run_id: str, job_id: int, item: object) -> dict:
    """Takes its job's item (``f(run_id, job_id, item)``) and returns it with the job id (kept
    as JSON in the job's record), so each job's result shows which item it got; executions are
    recorded as ``counted``
    records them. An item ``{"fail": N, ...}`` makes its job raise on its first N executions,
    ``{"throttle": N, ...}`` raise optio.Throttle on them, and every execution of such a job
    records the item it was handed (``seen_items_key``)."""
    if isinstance(item, dict) and ("fail" in item or "throttle" in item):
        _redis().rpush(seen_items_key(run_id, job_id), json.dumps(item, sort_keys=True))
        if _redis().incr(f"test:tries:{run_id}:{job_id}") <= int(item.get("fail", 0)):
            raise RuntimeError(f"job {job_id} fails for now")
        if _redis().incr(f"test:throttles:{run_id}:{job_id}") <= int(item.get("throttle", 0)):
            raise Throttle(retry_after=0.2)
    counted(run_id, job_id)
    return {"job": job_id, "item": item}
