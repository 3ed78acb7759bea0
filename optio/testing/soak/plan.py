"""What the soak does, decided by its seed alone: each job's length and fate, the chaos
events and their timing, and the number of jobs x that fills the requested minutes."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

#: Lease of the soak's system (OPTIO_LEASE_SECONDS): short, so a run of a few minutes sees many
#: leases run out; long jobs and freezes are longer than it.
LEASE_SECONDS = 4.0
#: Shares of the jobs: long (longer than the lease), medium, short; the rest run no time at all.
LONG_SHARE = 1 / 40_000
MEDIUM_SHARE = 0.01
SHORT_SHARE = 0.09
#: Jobs that raise on their first execution (then succeed: one retry each).
FAIL_ONCE_SHARE = 0.05
#: Jobs that raise optio.Throttle on their first execution (each cuts the run's rate for a
#: while, so they are rare: see THROTTLE_COST_S).
THROTTLE_SHARE = 1 / 50_000
#: Jobs whose result is text UTF-8 cannot encode (besides the one each "undecodable" chaos
#: event arms).
UNDECODABLE_SHARE = 1 / 1_000
#: Seconds of the rate y that one throttle costs the run with optio's defaults: the rate is cut
#: to half (OPTIO_THROTTLE_DECREASE) and climbs back y/20 per 2 s window (OPTIO_THROTTLE_WINDOW).
THROTTLE_COST_S = 2.0 * sum(0.5 - k / 20 for k in range(10))

#: The chaos events, drawn with equal weight.
KINDS = (
    "kill_pool",  # SIGKILL of one pool process (the worker's pool starts another)
    "kill_worker",  # SIGKILL of a worker's main process (its pool dies with it); restarted
    "kill_beat",  # SIGKILL of beat; restarted
    "freeze_worker",  # SIGSTOP of a worker's process group for longer than the lease; SIGCONT
    "redis_restart",  # SIGTERM of redis-server (append-only file), started again
    "redis_refuse",  # Redis refuses writes (maxmemory 1: OOM errors) for a few seconds
    "web_restart",  # SIGTERM of the web process, started again on the same port
    "pause",  # POST /api/pause, then /api/resume
    "rate_change",  # PUT /api/run with another y, then y again
    "undecodable",  # a job about to be sent returns text UTF-8 cannot encode
)
#: Seconds between two chaos events (start to start, at least; an event that takes longer to
#: undo delays the next), and quiet seconds at the start and end of the chaos window.
GAP_S = (5.0, 20.0)
WARMUP_S = 5.0
QUIET_END_S = 10.0


@dataclass(frozen=True)
class JobPlan:
    """What one job does: sleeps ``seconds``; raises once (``fails_once``), or throttles once
    (``throttled``), before succeeding; ``undecodable``: its result is text UTF-8 cannot
    encode."""

    seconds: float
    fails_once: bool
    throttled: bool
    undecodable: bool


def _uniforms(seed: int, job_id: int) -> list[float]:
    digest = hashlib.blake2b(f"{seed}:{job_id}".encode(), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(0, 16, 4)]


def job_plan(seed: int, job_id: int) -> JobPlan:
    """The plan of job ``job_id``: a function of (seed, job id) alone."""
    kind, length, fate, fail = _uniforms(seed, job_id)
    if kind < LONG_SHARE:
        seconds = LEASE_SECONDS + 1.0 + 2.0 * length  # longer than the lease
    elif kind < LONG_SHARE + MEDIUM_SHARE:
        seconds = 0.02 + 0.08 * length
    elif kind < LONG_SHARE + MEDIUM_SHARE + SHORT_SHARE:
        seconds = 0.001 + 0.009 * length
    else:
        seconds = 0.0
    return JobPlan(
        seconds=seconds,
        fails_once=fail < FAIL_ONCE_SHARE,
        throttled=fate < THROTTLE_SHARE,
        undecodable=THROTTLE_SHARE <= fate < THROTTLE_SHARE + UNDECODABLE_SHARE,
    )


@dataclass(frozen=True)
class Event:
    """One chaos event: ``at`` seconds after the run started (at the earliest), ``kind``, and
    what was drawn for it: which worker (``worker`` index), which pool process (``child``
    index), how long before it is undone (``hold``), and for a rate change the factor."""

    at: float
    kind: str
    worker: int = 0
    child: int = 0
    hold: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


def _hold(kind: str, rng: random.Random) -> float:
    """Seconds between a fault and its undoing (a supervisor's restart delay, a freeze...)."""
    if kind == "freeze_worker":
        return LEASE_SECONDS + rng.uniform(1.0, 4.0)
    if kind in ("kill_worker", "kill_beat", "web_restart"):
        return rng.uniform(0.5, 3.0)
    if kind == "redis_restart":
        return rng.uniform(0.0, 2.0)
    if kind in ("redis_refuse", "pause"):
        return rng.uniform(2.0, 5.0)
    if kind == "rate_change":
        return rng.uniform(5.0, 15.0)
    return 0.0


def chaos_plan(seed: int, seconds: float) -> list[Event]:
    """The chaos events of a run of ``seconds``: one every GAP_S, none in the first WARMUP_S
    nor the last QUIET_END_S."""
    rng = random.Random(seed)
    events: list[Event] = []
    at = WARMUP_S + rng.uniform(*GAP_S) / 2
    while at + QUIET_END_S <= seconds:
        kind = rng.choice(KINDS)
        params = {"factor": rng.choice((0.5, 0.75, 1.25))} if kind == "rate_change" else {}
        events.append(Event(at, kind, rng.randrange(2), rng.randrange(2), _hold(kind, rng), params))
        at += rng.uniform(*GAP_S)
    return events


def size_run(seed: int, seconds: float, y: float, events: list[Event]) -> int:
    """x: the jobs that rate y fills ``seconds`` with, less the planned pauses and throttles,
    plus or minus the planned rate changes."""
    busy = seconds
    for event in events:
        if event.kind == "pause":
            busy -= event.hold
        elif event.kind == "rate_change":
            busy += (event.params["factor"] - 1.0) * event.hold
    x = int(y / 60 * busy)
    throttles = sum(job_plan(seed, j).throttled for j in range(x))
    return max(1, int(y / 60 * (busy - throttles * THROTTLE_COST_S)))
