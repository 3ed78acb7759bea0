"""The deployment's ceilings shared between the active runs (the tick's part, pure functions).

``OPTIO_MAX_RATE`` bounds the jobs per minute of all runs together, ``OPTIO_MAX_IN_FLIGHT``
the jobs out at once. When the runs ask for more than a ceiling, each gets a weighted fair
share: capacity is handed out in proportion to the runs' weights, and a run asking less than
its share gets what it asks, the rest going to the others (water-filling, as max-min fairness
does), so no capacity sits idle while a run has jobs due. A run asks for its effective rate (y,
or cut by throttles; a deadline run the rate that makes its deadline), and for as many jobs
out as it has out now plus a tick's worth more, within its own ``maxInFlight``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optio.store.schedule import Load


def fair_shares(
    asks: Mapping[str, float], weights: Mapping[str, float], capacity: float
) -> dict[str, float]:
    """Each run's share of ``capacity``: what it asks when all asks fit; else, by weight, the
    asks below their weighted part of what is left in full and the others that part."""
    shares: dict[str, float] = {}
    left = {run: max(0.0, ask) for run, ask in asks.items()}
    room = max(0.0, capacity)
    while left:
        total = sum(weights[run] for run in left)
        small = {run: ask for run, ask in left.items() if ask <= room * weights[run] / total}
        if not small:
            shares.update((run, room * weights[run] / total) for run in left)
            break
        for run, ask in small.items():
            shares[run] = ask
            room -= ask
            del left[run]
    return shares


def deadline_rate(load: Load, now_ms: int, tick_seconds: float) -> float:
    """The rate a deadline run asks for: its jobs not reserved yet over the time left (a tick
    before the deadline), as reserve_due.lua derives its y."""
    assert load.deadline is not None
    tick_ms = tick_seconds * 1000
    left_ms = max(load.deadline - tick_ms - now_ms, tick_ms)
    return load.unreserved * 60_000 / left_ms


@dataclass(frozen=True)
class Grant:
    """What one tick gives a run: at most ``rate`` jobs/min (None: no ceiling binds it) and at
    most ``out`` jobs out at once after the tick (None: no bound but its own maxInFlight)."""

    rate: float | None = None
    out: int | None = None


def grants(
    loads: Sequence[Load],
    *,
    max_rate: float,
    max_in_flight: int,
    tick_seconds: float,
    now_ms: int,
) -> dict[str, Grant]:
    """Each active run's grant this tick (a paused run asks for nothing)."""
    running = [load for load in loads if load.running and load.unreserved > 0]
    weights = {load.run_id: load.weight for load in loads}
    rates: dict[str, float] = {}
    for load in running:
        ask = load.rate
        if load.deadline is not None:
            ask = deadline_rate(load, now_ms, tick_seconds)
        rates[load.run_id] = ask
    rate_shares: Mapping[str, float] = {}
    if max_rate > 0 and sum(rates.values()) > max_rate:
        rate_shares = fair_shares(rates, weights, max_rate)
    out_shares: Mapping[str, float] = {}
    if max_in_flight > 0:
        asks: dict[str, float] = {}
        for load in loads:
            if load.run_id not in rates:  # nothing more to send: keeps what it has out
                asks[load.run_id] = load.outstanding
                continue
            ask = load.outstanding + math.ceil(rates[load.run_id] * tick_seconds / 60) + 1
            if load.max_in_flight > 0:
                ask = min(ask, load.max_in_flight)
            asks[load.run_id] = ask
        out_shares = fair_shares(asks, weights, max_in_flight)
    return {
        load.run_id: Grant(
            rate_shares.get(load.run_id),
            math.floor(out_shares[load.run_id] + 1e-9) if load.run_id in out_shares else None,
        )
        for load in loads
    }
