"""The deployment's ceilings shared between the active runs (the tick's part, pure functions).

``OPTIO_MAX_RATE`` bounds the jobs per minute of all runs together, ``OPTIO_MAX_IN_FLIGHT``
the jobs out at once. When the runs ask for more than a ceiling, each gets a weighted fair
share: capacity is handed out in proportion to the runs' weights, and a run asking less than
its share gets what it asks, the rest going to the others (water-filling, as max-min fairness
does), so no capacity sits idle while a run has jobs due. A run asks for its effective rate (y,
or cut by throttles; a deadline run the rate that makes its deadline), and for as many jobs
out as it has out now plus a tick's worth more, within its own ``maxInFlight``.

A downstream named by ``Throttle(key=...)`` has one adaptive rate for all the runs calling it
(names.THROTTLES_KEY): throttle_job.lua cuts it, and the tick climbs it back (``climb``, as
reserve_due.lua climbs a run's own rate) and shares it between those runs the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from optio.store.shares import Grant, KeyRate, Load

#: As in reserve_due.lua's climb: the share of the rate refused a probing step adds, the most
#: one adds near it (below NEAR_TOP times it).
PROBE = 0.02
PROBE_MOST = 0.08
NEAR_TOP = 1.25


def climb(rate: float, asked: float, top: float, steps: int) -> float:
    """A throttle key's rate one calm window after ``rate``: halfway back to ``top`` (the rate
    refused at its last cut), then probing above it by steps that double (the climb of a run's
    own rate, reserve_due.lua); no step above ``asked / steps``, never above ``asked``."""
    most = asked / steps
    if top <= 0:
        return min(asked, rate + most)
    if rate < top:
        return min(asked, top, rate + min(most, max((top - rate) / 2, top * PROBE)))
    step = max(top * PROBE, rate - top)
    if rate < top * NEAR_TOP:
        step = min(step, top * PROBE_MOST)
    return min(asked, rate + min(most, step))


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


def asked_rate(load: Load, now_ms: int, tick_seconds: float) -> float:
    """The rate a run asks for this tick: its effective rate, or a deadline run's."""
    if load.deadline is not None:
        return deadline_rate(load, now_ms, tick_seconds)
    return load.rate


def grants(
    loads: Sequence[Load],
    *,
    max_rate: float,
    max_in_flight: int,
    tick_seconds: float,
    now_ms: int,
    key_rates: Mapping[str, float] | None = None,
) -> dict[str, Grant]:
    """Each active run's grant this tick (a paused run asks for nothing). ``key_rates``: the
    adaptive rate of each throttle key that has one, shared by the runs calling it."""
    running = [load for load in loads if load.running and load.unreserved > 0]
    weights = {load.run_id: load.weight for load in loads}
    rates = {load.run_id: asked_rate(load, now_ms, tick_seconds) for load in running}
    rate_shares: dict[str, float] = {}
    if max_rate > 0 and sum(rates.values()) > max_rate:
        rate_shares = fair_shares(rates, weights, max_rate)
    key_shares: dict[str, float] = {}
    for key, capacity in (key_rates or {}).items():
        asks = {
            load.run_id: min(rates[load.run_id], rate_shares.get(load.run_id, math.inf))
            for load in running
            if load.throttle_key == key
        }
        if sum(asks.values()) > capacity:
            key_shares.update(fair_shares(asks, weights, capacity))
    out_shares: Mapping[str, float] = {}
    if max_in_flight > 0:
        needs: dict[str, float] = {}
        for load in loads:
            if load.run_id not in rates:  # nothing more to send: keeps what it has out
                needs[load.run_id] = load.outstanding
                continue
            ask = load.outstanding + math.ceil(rates[load.run_id] * tick_seconds / 60) + 1
            if load.max_in_flight > 0:
                ask = min(ask, load.max_in_flight)
            needs[load.run_id] = ask
        out_shares = fair_shares(needs, weights, max_in_flight)
    out: dict[str, Grant] = {}
    for load in loads:
        run = load.run_id
        rate = min(rate_shares.get(run, math.inf), key_shares.get(run, math.inf))
        out[run] = Grant(
            None if rate == math.inf else rate,
            math.floor(out_shares[run] + 1e-9) if run in out_shares else None,
            run in rate_shares and rate_shares[run] <= key_shares.get(run, math.inf),
        )
    return out


def settle_keys(
    loads: Sequence[Load],
    keys: Mapping[str, KeyRate],
    *,
    now_ms: int,
    tick_seconds: float,
    window_ms: float,
    steps: int,
) -> tuple[dict[str, float], dict[str, float | None]]:
    """The throttle keys' rates for this tick, and what changed: (rate of each key that has
    one, {key: its new rate after a climb, or None when it climbed back above what its runs
    ask and is dropped}). A key climbs one step per calm window (no cut, throttle or climb
    within it)."""
    rates: dict[str, float] = {}
    changed: dict[str, float | None] = {}
    for key, state in keys.items():
        asked = sum(
            asked_rate(load, now_ms, tick_seconds)
            for load in loads
            if load.throttle_key == key and load.running
        )
        rate = state.rate
        if now_ms - max(state.cut_at, state.last, state.raised) >= window_ms and asked > 0:
            rate = climb(rate, asked, state.top, steps)
            if rate >= asked:
                changed[key] = None
                continue
            changed[key] = rate
        rates[key] = rate
    return rates, changed
