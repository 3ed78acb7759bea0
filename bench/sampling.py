"""Percentiles, and a thread that samples a run's counters from Redis."""

from __future__ import annotations

import threading
import time

import redis

from optio.names import run_key

FIELDS = ("reserved", "enqueued", "processed", "failed")


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), nearest-rank on sorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary_ms(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": rounded(percentile(values, 50), 2),
        "p99_ms": rounded(percentile(values, 99), 2),
        "max_ms": rounded(max(values) if values else None, 2),
    }


def rounded(v: float | None, digits: int) -> float | None:
    """``round(v, digits)``, None for None (a figure that could not be measured)."""
    return None if v is None else round(v, digits)


def share_of_calls(accepted: float, refused: float) -> float | None:
    """The refused calls' share of all calls (refused / (accepted + refused)); None for none."""
    calls = accepted + refused
    return None if calls <= 0 else refused / calls


class CounterSampler:
    """Polls a run's counters every ``interval`` s; keeps (monotonic time, counters) rows.

    With ``changes_only`` a row is kept only when a counter changed (for fine-grained polling).
    """

    def __init__(self, url: str, run_id: str, interval: float, changes_only: bool = False):
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.key = run_key(run_id)
        self.interval = interval
        self.changes_only = changes_only
        self.rows: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> CounterSampler:
        self._thread.start()
        return self

    def stop(self) -> list[tuple[float, dict[str, int]]]:
        self._stop.set()
        self._thread.join(10)
        self.client.close()
        return self.rows

    def _loop(self) -> None:
        last = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            values = self.client.hmget(self.key, *FIELDS)
            now = time.monotonic()
            row = {f: int(float(v or 0)) for f, v in zip(FIELDS, values, strict=True)}
            if not self.changes_only or row != last:
                self.rows.append((now, row))
                last = row
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def value_at(rows: list[tuple[float, dict[str, int]]], t: float, field: str) -> int:
    """The counter's last sampled value at or before ``t``."""
    value = 0
    for when, row in rows:
        if when > t:
            break
        value = row[field]
    return value


def rate_between(rows, t0: float, t1: float, field: str) -> float:
    """Counter increase per second between two times, from the samples."""
    return (value_at(rows, t1, field) - value_at(rows, t0, field)) / (t1 - t0)
