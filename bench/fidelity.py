"""Rate fidelity: the achieved enqueue rate over a window against the asked rate."""

from __future__ import annotations

import time

from bench.brokers import RedisBroker
from bench.pipeline import drain
from bench.sampling import CounterSampler, rounded
from optio.names import JOBS_QUEUE
from optio.testing import RedisServer, System, start

#: Seconds after the start before the window opens (the start's own tick, beat's first).
WARM_UP = 3.0
#: Polling interval of the counters (every change is kept, timed to this precision).
POLL = 0.01


def measure(stack: System, rds: RedisServer, y: float, window: float, tick_s: float) -> dict:
    t_post = time.monotonic()
    run_id = start(stack, 10_000_000, y)
    sampler = CounterSampler(rds.url, run_id, POLL, changes_only=True).start()
    time.sleep(WARM_UP + window + 0.5)
    rows = sampler.stop()
    stack.post("/api/stop")
    drain(RedisBroker(rds), (JOBS_QUEUE,))
    w0 = t_post + WARM_UP
    w1 = w0 + window
    return {"asked_per_min": y, "window_s": window, **analyse(rows, w0, w1, y, tick_s)}


def analyse(rows, w0: float, w1: float, y: float, tick_s: float) -> dict:
    """Figures of one window from the change rows (monotonic time, counters); ticks ``tick_s``
    apart."""
    steps = _steps(rows, "enqueued")
    before = [e for t, e in steps if t <= w0]
    inside = [(t, e) for t, e in steps if w0 < t <= w1]
    start_count = before[-1] if before else 0
    end_count = inside[-1][1] if inside else start_count
    fixed = (end_count - start_count) * 60 / (w1 - w0)
    # The slope of the enqueued count against time at the end of each tick of the window
    # (all it reserved is enqueued), by least squares: free of where the window's edges fall
    # between two ticks, which alone is worth up to one tick of jobs (y/60 × tick jobs: 0.8 % of
    # a 60 s window at 0.5 s ticks), and of one late tick at either edge.
    done = _steps([(t, r) for t, r in rows if r["enqueued"] == r["reserved"]], "enqueued")
    ticks = [(t, e) for t, e in done if w0 < t <= w1]
    between = _slope(ticks) * 60 if len(ticks) >= 3 else None
    return {
        "achieved_per_min": rounded(between, 3),
        "error_pct": rounded(None if between is None else 100 * (between / y - 1), 3),
        "fixed_window_per_min": rounded(fixed, 3),
        "fixed_window_error_pct": rounded(100 * (fixed / y - 1), 3),
        "max_enqueued_in_1s": max_in_window(inside, 1.0, start_count),
        "largest_tick": _largest_step([(t, r["reserved"]) for t, r in rows], w0, w1),
        "per_tick_expected": round(y / 60 * tick_s, 2),
        "ticks_in_window": len(ticks),
    }


def _largest_step(points: list[tuple[float, int]], w0: float, w1: float) -> int:
    """The most jobs one tick reserved in the window (reserved jumps once per tick)."""
    best, prev = 0, None
    for t, v in points:
        if prev is not None and w0 < t <= w1:
            best = max(best, v - prev)
        prev = v
    return best


def _slope(points: list[tuple[float, int]]) -> float:
    n = len(points)
    mt = sum(t for t, _ in points) / n
    me = sum(e for _, e in points) / n
    num = sum((t - mt) * (e - me) for t, e in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return num / den


def _steps(rows, field: str) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    for t, row in rows:
        if not out or row[field] != out[-1][1]:
            out.append((t, row[field]))
    return out


def max_in_window(steps: list[tuple[float, int]], span: float, start_count: int) -> int:
    """The largest increase of the counter within any ``span`` seconds."""
    best = 0
    values = [start_count] + [e for _, e in steps]
    times = [float("-inf")] + [t for t, _ in steps]
    j = 1
    for i in range(1, len(values)):
        # a window opening just before step i: count steps i .. j with t_j < t_i + span
        j = max(j, i)
        while j + 1 < len(values) and times[j + 1] < times[i] + span:
            j += 1
        best = max(best, values[j] - values[i - 1])
    return best
