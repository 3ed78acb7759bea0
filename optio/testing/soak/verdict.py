"""What the soak concludes from the execution log, the fault log and the samples.

The explanation rule. A job's **extra executions** are its executions beyond one that
succeeded and the planned raises (its fail-once and throttle-once executions, which optio runs
again by design); an execution that never ended (its process was killed) counts too. An
execution ``e`` (of pid p in process group g, from ``e.start`` to ``e.end``, no end: forever)
is **hit** by a fault ``f`` (injected at ``f.start``, undone at ``f.end``) when

- ``f`` can reach it: a pool process SIGKILLed is p; a worker's main process SIGKILLed, or its
  group SIGSTOPped, is g (the worker's main process leads the group of its pool); a Redis
  restart or refusal of writes reaches every execution; the other kinds (beat killed, web
  restarted, pause, rate change, undecodable text) reach none;
- and ``[f.start, f.end]`` meets ``[e.start - BEFORE_S, e.end + AFTER_S]``: the fault happened
  while ``e`` ran, or within AFTER_S after it returned (its count may not be durable yet: a
  worker counts its finished jobs when the first job ending 20 ms or more after its last count
  ends, within milliseconds when the jobs after it are short, and Redis writes its append-only
  file every second; a slow job after it holds the count longer, which this rule does not
  excuse), or ended within BEFORE_S before it started (a frozen worker may start one job when
  it wakes up, before it learns its lease is gone).

A job's extra executions are **explained** when they are no more than its executions hit by a
fault: each fault that hit one of its executions may cost it one more. Every other extra
execution is **unexplained**, and fails the soak; so does a job that never succeeded (lost).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from optio.testing.soak.chaos import Fault
from optio.testing.soak.job import EXECUTIONS

AFTER_S = 2.0
BEFORE_S = 1.0
#: Memory is bounded when the last third's peak is at most this many times the first third's.
MEMORY_FACTOR = 1.5
#: No execution runs longer than this (long jobs, frozen for a while): how far back a fault
#: looks for the executions it interrupted.
LOOKBACK_S = 60.0


@dataclass
class Execution:
    job: int
    pid: int
    pgid: int
    start: float
    end: float | None = None
    outcome: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome in ("ok", "undecodable")

    @property
    def planned(self) -> bool:
        return self.outcome in ("fail", "throttle")


def read_executions(log: redis.Redis, chunk: int = 100_000) -> list[Execution]:
    """Every execution in the log, in the order they started."""
    started: dict[tuple[str, str, str], Execution] = {}
    at = 0
    while lines := log.lrange(EXECUTIONS, at, at + chunk - 1):
        at += len(lines)
        for line in lines:
            kind, job, pid, *rest = line.split()
            if kind == "S":
                pgid, start = rest
                execution = Execution(int(job), int(pid), int(pgid), float(start))
                started[(job, pid, start)] = execution
            else:
                start, end, outcome = rest
                execution = started[(job, pid, start)]
                execution.end, execution.outcome = float(end), outcome
    return sorted(started.values(), key=lambda e: e.start)


def reaches(fault: Fault, e: Execution) -> bool:
    if fault.scope == "pid":
        return e.pid == fault.pid
    if fault.scope == "group":
        return e.pgid == fault.pid
    return fault.scope == "all"


def hits(fault: Fault, e: Execution) -> bool:
    """The rule above: ``fault`` hit the execution ``e``."""
    end = math.inf if e.end is None else e.end
    return reaches(fault, e) and fault.start <= end + AFTER_S and fault.end >= e.start - BEFORE_S


def by_job(executions: Iterable[Execution]) -> dict[int, list[Execution]]:
    out: dict[int, list[Execution]] = {}
    for e in executions:
        out.setdefault(e.job, []).append(e)
    return out


def judge_jobs(x: int, jobs: dict[int, list[Execution]], faults: list[Fault]) -> dict[str, Any]:
    """Extra executions of every job, explained or not, and the jobs that never succeeded."""
    lost: list[int] = []
    extra = 0
    explained: Counter[str] = Counter()
    unexplained: list[dict[str, Any]] = []
    for job in range(x):
        runs = jobs.get(job, [])
        succeeded = sum(e.succeeded for e in runs)
        if not succeeded:
            lost.append(job)
        more = len(runs) - sum(e.planned for e in runs) - min(succeeded, 1)
        if more <= 0:
            continue
        extra += more
        hitters = [[f for f in faults if hits(f, e)] for e in runs]
        if more <= sum(1 for found in hitters if found):
            first = min((f for found in hitters for f in found), key=lambda f: f.start)
            explained[first.kind] += more
        else:
            unexplained.append({"job": job, "extra": more, "executions": runs})
    return {
        "executions": sum(len(runs) for runs in jobs.values()),
        "succeeded": sum(e.succeeded for runs in jobs.values() for e in runs),
        "planned_raises": sum(e.planned for runs in jobs.values() for e in runs),
        "never_ended": sum(e.end is None for runs in jobs.values() for e in runs),
        "unknown_jobs": sorted(j for j in jobs if not 0 <= j < x),
        "extra": extra,
        "explained": dict(explained),
        "unexplained": unexplained,
        "lost": lost,
    }


def context(item: dict[str, Any], faults: list[Fault], t0: float) -> dict[str, Any]:
    """An unexplained job with its executions and every fault within 30 s of them, in seconds
    since the run started."""
    runs: list[Execution] = item["executions"]
    first = min(e.start for e in runs) - 30
    last = max(e.end or e.start for e in runs) + 30
    return {
        "job": item["job"],
        "extra": item["extra"],
        "executions": [
            {
                "pid": e.pid,
                "pgid": e.pgid,
                "start_s": round(e.start - t0, 3),
                "end_s": None if e.end is None else round(e.end - t0, 3),
                "outcome": e.outcome,
            }
            for e in runs
        ],
        "faults_near": [
            {
                "kind": f.kind,
                "target": f.target,
                "pid": f.pid,
                "start_s": round(f.start - t0, 3),
                "end_s": round(f.end - t0, 3),
            }
            for f in faults
            if f.end >= first and f.start <= last
        ],
    }


def progress_after(states: list[tuple[float, dict[str, Any]]], at: float) -> float:
    """When the run counted a job again after ``at`` (``at`` when it had already ended)."""
    before = [s for t, s in states if t <= at]
    if not before or before[-1]["status"] not in ("running", "paused"):
        return at
    done = before[-1]["processed"] + before[-1]["failed"]
    for t, s in states:
        if t > at and s["processed"] + s["failed"] > done:
            return t
    return at


#: Kinds whose recovery counts from when they were undone (after a resume, until the run counts
#: jobs again), and kinds that have none (a rate change, a job armed to return bad text).
FROM_UNDONE = ("pause",)
NO_RECOVERY = ("rate_change", "undecodable")


def recovery(
    fault: Fault,
    executions: list[Execution],
    starts: list[float],
    jobs: dict[int, list[Execution]],
    states: list[tuple[float, dict[str, Any]]],
) -> float:
    """Seconds from the fault until it was undone (the process back and ready...), every job
    it interrupted (an execution it reaches that was running) had succeeded again, and the
    run counted jobs again; for a pause, from the resume until the run counted jobs again."""
    if fault.kind in FROM_UNDONE:
        return progress_after(states, fault.end) - fault.end
    until = max(fault.end, progress_after(states, fault.end))
    lo = bisect.bisect_left(starts, fault.start - LOOKBACK_S)
    hi = bisect.bisect_right(starts, fault.start)
    for e in executions[lo:hi]:
        if reaches(fault, e) and (e.end is None or e.end >= fault.start):
            again = [o.end for o in jobs[e.job] if o.succeeded and o.end and o.end >= fault.start]
            if again:
                until = max(until, min(again))
    return until - fault.start


def recoveries(
    faults: list[Fault],
    executions: list[Execution],
    jobs: dict[int, list[Execution]],
    states: list[tuple[float, dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Per kind of fault: how many, and their recovery times (median, max; None: no such
    thing)."""
    starts = [e.start for e in executions]
    times: dict[str, list[float]] = {}
    for fault in faults:
        times.setdefault(fault.kind, [])
        if fault.kind not in NO_RECOVERY:
            times[fault.kind].append(recovery(fault, executions, starts, jobs, states))
    return {
        kind: {
            "count": sum(f.kind == kind for f in faults),
            "recovery_median_s": round(statistics.median(values), 2) if values else None,
            "recovery_max_s": round(max(values), 2) if values else None,
        }
        for kind, values in sorted(times.items())
    }


def memory_bounds(samples: list[tuple[float, dict[str, int]]]) -> dict[str, dict[str, Any]]:
    """Per series: the peaks of the first and last thirds of the samples' time span, and
    whether the last stayed within MEMORY_FACTOR of the first."""
    if len(samples) < 3:
        return {}
    t0, t1 = samples[0][0], samples[-1][0]
    third = (t1 - t0) / 3
    out = {}
    for name in samples[0][1]:
        first = max(v[name] for t, v in samples if t <= t0 + third)
        last = max(v[name] for t, v in samples if t >= t1 - third)
        out[name] = {
            "first_third_max": first,
            "last_third_max": last,
            "ratio": round(last / first, 3) if first else None,
            "bounded": last <= MEMORY_FACTOR * first,
        }
    return out
