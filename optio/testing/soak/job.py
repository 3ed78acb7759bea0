"""The soak's job function (OPTIO_JOB_FUNC=optio.testing.soak.job:run) and its execution log.

Every execution is recorded in a Redis of its own (OPTIO_SOAK_LOG_URL), not the system's, so
that a restart of the system's Redis loses none of it: one line when it starts (job, pid,
process group, time) and one when it ends (same job, pid and start, end time, outcome). An
execution killed or frozen for good has no end line.

What a job does is its plan (plan.job_plan, from OPTIO_SOAK_SEED and its id): it sleeps, then
on its first execution to get that far it raises (``fail``) or throttles (``throttle``) when
planned so, else returns its result (``ok``), text UTF-8 cannot encode when planned so or when
a chaos event armed it (``undecodable``).
"""

from __future__ import annotations

import os
import time
from functools import cache

import redis

from optio.testing.soak.plan import job_plan
from optio.throttle import Throttle

#: List of execution lines ("S job pid pgid start" / "E job pid start end outcome").
EXECUTIONS = "soak:executions"
#: Hash per planned raise ("fail", "throttle"): job id -> 1 once that raise happened.
RAISED = "soak:raised:"
#: Set of job ids an "undecodable" chaos event armed.
ARMED = "soak:armed"
#: The result of an undecodable job: a file name with the byte 0xff as os.fsdecode gives it.
UNDECODABLE = "soak-\udcff"
#: Outcomes of an execution that ended.
OUTCOMES = ("ok", "undecodable", "fail", "throttle")


@cache
def _log() -> redis.Redis:
    return redis.Redis.from_url(os.environ["OPTIO_SOAK_LOG_URL"], decode_responses=True)


@cache
def _seed() -> int:
    return int(os.environ["OPTIO_SOAK_SEED"])


def _first(log: redis.Redis, what: str, job_id: int) -> bool:
    """True for the first execution that reaches this planned raise (one per job)."""
    return bool(log.hsetnx(RAISED + what, str(job_id), 1))


def run(run_id: str, job_id: int) -> str:
    plan = job_plan(_seed(), job_id)
    log = _log()
    pid, started = os.getpid(), time.time()
    pipe = log.pipeline(transaction=False)
    pipe.rpush(EXECUTIONS, f"S {job_id} {pid} {os.getpgid(0)} {started:.6f}")
    pipe.sismember(ARMED, str(job_id))
    armed = pipe.execute()[1]
    if plan.seconds:
        time.sleep(plan.seconds)
    if plan.fails_once and _first(log, "fail", job_id):
        outcome = "fail"
    elif plan.throttled and _first(log, "throttle", job_id):
        outcome = "throttle"
    else:
        outcome = "undecodable" if plan.undecodable or armed else "ok"
    log.rpush(EXECUTIONS, f"E {job_id} {pid} {started:.6f} {time.time():.6f} {outcome}")
    if outcome == "fail":
        raise RuntimeError(f"job {job_id} fails once (planned)")
    if outcome == "throttle":
        raise Throttle()
    return UNDECODABLE if outcome == "undecodable" else f"ok-{job_id}"
