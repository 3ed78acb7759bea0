"""Pacing: how evenly a run's jobs start, against the goal of issue 20 (at most ceil(y/600) + 1
job starts in any 100 ms window).

The job function is ``optio.testing.pacing:record_start``: each job pushes "job id:ms since the
epoch" onto the run's starts list in the benchmark's Redis (``OPTIO_TEST_REDIS_URL``) and returns.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import redis

from bench.brokers import RedisBroker
from bench.meters import CpuMeter
from bench.pipeline import drain
from bench.sampling import rounded
from bench.stack import start_optio
from optio.names import JOBS_QUEUE, LAST_TICK_KEY, run_key
from optio.testing import RedisServer, start, starts_key, wait_for
from optio.testing.pacing import bound, most_in_window

JOB_FUNC = "optio.testing.pacing:record_start"
#: Seconds from the start of the run until the measured window opens (jobs due before beat's
#: first tick of the run catch up at twice the rate).
WARM_UP = 3.0
#: Seconds between two readings of the run's heldBack and heldBackBy.
POLL = 0.25
#: More jobs than any window runs: the run is still going when it is stopped.
X = 10_000_000


def measure(rds: RedisServer, work: Path, y: float, window: float) -> dict[str, Any]:
    """One run at ``y`` jobs/min on a stack of its own, started once beat ticks; stopped after
    WARM_UP + ``window`` s, its queue drained, then every recorded start read."""
    stack = start_optio(
        rds.url, work, f"optio-pacing-{y:g}", OPTIO_JOB_FUNC=JOB_FUNC, OPTIO_TEST_REDIS_URL=rds.url
    )
    try:
        wait_ticked(rds.client)
        meter = CpuMeter({**stack.pids(), "redis": rds.pid, "bench": os.getpid()}).start()
        t_post = time.time()
        run_id = start(stack, X, y)
        held = watch_held(rds.client, run_id, t_post + WARM_UP + window)
        cpu = meter.stop()
        stack.post("/api/stop")
        drain(RedisBroker(rds), (JOBS_QUEUE,))
        times = read_starts(rds.client, run_id)
    finally:
        stack.stop_all()
    w0 = t_post + WARM_UP
    return {
        "asked_per_min": y,
        "warm_up_s": WARM_UP,
        "window_s": window,
        **analyse(times, w0, w0 + window, y),
        "first_start_after_post_ms": rounded((times[0] - t_post) * 1000 if times else None, 1),
        **held,
        "cpu": cpu,
    }


def wait_ticked(client: redis.Redis, timeout: float = 30) -> None:
    """Until beat has ticked twice (its first tick, then one more), so that the run starts on
    a beat that is already ticking."""
    first = wait_for(lambda: client.get(LAST_TICK_KEY), timeout, "beat's first tick")
    wait_for(lambda: client.get(LAST_TICK_KEY) not in (None, first), timeout, "beat's next tick")


def watch_held(client: redis.Redis, run_id: str, until: float) -> dict[str, Any]:
    """Reads the run's heldBack (and what held it back) every POLL s until ``until`` (epoch s)."""
    samples = held = 0
    by: dict[str, int] = {}
    while time.time() < until:
        flag, why = client.hmget(run_key(run_id), "heldBack", "heldBy")
        samples += 1
        if flag == "1":
            held += 1
            by[why or "?"] = by.get(why or "?", 0) + 1
        time.sleep(max(0.0, min(POLL, until - time.time())))
    return {"held_back_samples": held, "state_samples": samples, "held_back_by": by}


def read_starts(client: redis.Redis, run_id: str) -> list[float]:
    """The run's recorded job starts, epoch seconds, in order."""
    raw = client.lrange(starts_key(run_id), 0, -1)
    return sorted(float(item.partition(":")[2]) / 1000 for item in raw)


def analyse(times: list[float], w0: float, w1: float, y: float) -> dict[str, Any]:
    """Figures of the starts ``times`` (epoch s, sorted): the most in any 100 ms over the window
    [w0, w1) and over the whole run from its first start, and the rate over the window."""
    inside = [t for t in times if w0 <= t < w1]
    per_min = len(inside) * 60 / (w1 - w0)
    return {
        "bound": bound(y),
        "most_in_100ms": most_in_window(inside),
        "most_in_100ms_whole_run": most_in_window(times),
        "starts_in_window": len(inside),
        "starts": len(times),
        "starts_per_min": round(per_min, 2),
        "error_pct": round(100 * (per_min / y - 1), 3),
    }
