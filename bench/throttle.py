"""Throttling: a run asked far above what a rate-limited downstream allows.

The downstream is ``optio.testing.limited.LimitedServer`` (a token bucket of ``burst`` tokens
refilled at its rate, answering 429 when empty), running in the benchmark's own process; the job
function is ``optio.testing.limited:call_limited``, which raises ``optio.Throttle`` on a 429.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import redis

from bench.brokers import RedisBroker
from bench.meters import CpuMeter
from bench.pipeline import drain
from bench.sampling import rounded, share_of_calls
from bench.stack import start_optio
from optio.names import JOBS_QUEUE, run_key
from optio.testing import RedisServer, start
from optio.testing.limited import LimitedServer

JOB_FUNC = "optio.testing.limited:call_limited"
#: y is this many times the server's limit (as jobs/min: 5 x 20/s = 6,000/min).
OVER = 5
#: Seconds from the start of the run until the measured window opens (the first cuts).
WARM_UP = 10.0
#: Seconds between two samples of the run's state and the server's counters.
POLL = 0.25


class Sampler:
    """Samples, every POLL s: time.time() (the server's clock), the run's rateNow, throttled
    and processed from Redis (not over HTTP, so the web serves nothing while measured), and the
    server's accepted and refused counts."""

    def __init__(self, url: str, run_id: str, server: LimitedServer) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.key = run_key(run_id)
        self.server = server
        self.rows: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join(10)
        self.client.close()
        return self.rows

    def _loop(self) -> None:
        while not self._stop.wait(POLL):
            rate, throttled, processed = self.client.hmget(
                self.key, "rateNow", "throttled", "processed"
            )
            with self.server.lock:
                accepted, refused = len(self.server.accepted_at), self.server.refused
            self.rows.append(
                {
                    "t": time.time(),
                    "rate_now": float(rate or 0),
                    "throttled": int(throttled or 0),
                    "processed": int(processed or 0),
                    "accepted": accepted,
                    "refused": refused,
                }
            )


def measure(
    rds: RedisServer, work: Path, limit: float, burst: float, window: float
) -> dict[str, Any]:
    """One run at y = OVER x ``limit`` against a server allowing ``limit`` calls/s with a bucket
    of ``burst`` tokens, on a stack of its own; figures over ``window`` s after WARM_UP s."""
    server = LimitedServer(limit, burst)
    stack = None
    try:
        stack = start_optio(
            rds.url,
            work,
            f"optio-throttle-{limit:g}-burst-{burst:g}",
            OPTIO_JOB_FUNC=JOB_FUNC,
            OPTIO_TEST_LIMITED_URL=server.url,
        )
        y = OVER * limit * 60
        # more jobs than the server lets through in the time: the run is still going at the end
        x = int(3 * limit * (WARM_UP + window)) + 1000
        t_post = time.time()
        run_id = start(stack, x, y)
        sampler = Sampler(rds.url, run_id, server).start()
        time.sleep(WARM_UP)
        meter = CpuMeter({**stack.pids(), "redis": rds.pid, "bench (server)": os.getpid()})
        meter.start()
        t0 = time.time()
        time.sleep(window)
        t1 = time.time()
        cpu = meter.stop()
        time.sleep(2 * POLL)
        rows = sampler.stop()
        stack.post("/api/stop")
        drain(RedisBroker(rds), (JOBS_QUEUE,))
    finally:
        if stack is not None:
            stack.stop_all()
        server.close()
    # after the stop and the processes' end: nothing more reaches the server
    twice = sum(1 for n in server.accepted.values() if n > 1)
    return {
        "limit_per_s": limit,
        "burst": burst,
        "asked_per_min": y,
        "warm_up_s": WARM_UP,
        **analyse(rows, server, t0, t1, limit),
        "run_accepted": len(server.accepted),
        "run_accepted_calls": sum(server.accepted.values()),
        "run_refused": server.refused,
        "accepted_more_than_once": twice,
        "cpu": cpu,
        "samples_every_0_25_s": [
            [round(r["t"] - t_post, 2), r["rate_now"], r["accepted"], r["refused"]] for r in rows
        ],
    }


def _at(rows: list[dict[str, float]], t: float, field: str) -> float:
    """The last sampled value of ``field`` at or before ``t`` (the first sample before any)."""
    value = rows[0][field] if rows else 0
    for row in rows:
        if row["t"] > t:
            break
        value = row[field]
    return value


def analyse(
    rows: list[dict[str, float]], server: LimitedServer, t0: float, t1: float, limit: float
) -> dict[str, Any]:
    """Figures of the window [t0, t1): the server's own record of accepted calls, and the
    sampled counters for the rest."""
    seconds = t1 - t0
    accepted = server.accepted_between(t0, t1)
    refused = _at(rows, t1, "refused") - _at(rows, t0, "refused")
    throttled = _at(rows, t1, "throttled") - _at(rows, t0, "throttled")
    processed = _at(rows, t1, "processed") - _at(rows, t0, "processed")
    rates = [r["rate_now"] for r in rows if t0 <= r["t"] < t1]
    per_min = limit * 60
    mean = sum(rates) / len(rates) if rates else None
    return {
        "window_s": round(seconds, 3),
        "accepted": accepted,
        "accepted_per_s": round(accepted / seconds, 2),
        "capacity_used": round(accepted / (seconds * limit), 4),
        "refused_429": int(refused),
        "refused_per_1000_accepted": rounded(1000 * refused / accepted if accepted else None, 1),
        "refused_share_of_calls": rounded(share_of_calls(accepted, refused), 4),
        "throttled": int(throttled),
        "processed_per_s": round(processed / seconds, 2),
        "rate_now_samples": len(rates),
        "rate_now_min": rounded(min(rates) if rates else None, 1),
        "rate_now_mean": rounded(mean, 1),
        "rate_now_max": rounded(max(rates) if rates else None, 1),
        "rate_now_mean_over_limit": rounded(None if mean is None else mean / per_min, 3),
    }
