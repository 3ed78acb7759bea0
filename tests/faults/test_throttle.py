"""Throttle-aware rate against a real rate-limited HTTP server, with real Redis and Celery
processes: the run slows to what the server allows, every job is accepted once, and the rate
follows the server's limit down and up. (The rate's arithmetic in the Lua scripts:
tests/unit/test_throttle.py.)"""

from __future__ import annotations

import time

import pytest

from optio.testing import assert_exactly_once, executions, starts, status, wait_finished, wait_for
from optio.testing.limited import LimitedServer
from tests.fault_jobs import throttled_at_key

JOB = {"OPTIO_JOB_FUNC": "optio.testing.limited:call_limited"}


@pytest.fixture
def limited():
    made: list[LimitedServer] = []

    def make(rate: float) -> LimitedServer:
        made.append(LimitedServer(rate))
        return made[-1]

    yield make
    for server in made:
        server.close()


def throttled_system(fault_system, server):
    s = fault_system
    s.env.update(JOB, OPTIO_TEST_LIMITED_URL=server.url)
    s.start_all()
    return s


def test_a_run_against_a_limit_of_20_per_second_uses_it_and_runs_each_job_once(
    fault_system, limited, record
):
    server = limited(20)
    s = throttled_system(fault_system, server)
    x, y = 3000, 6000  # y is 100/s: five times what the server takes
    response = s.post("/api/run", {"x": x, "y": y})
    started = time.time()
    run_id = response.json()["runId"]
    state = wait_finished(s, run_id, 400)
    ended = max(server.accepted_at)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", x, 0)
    # every job accepted by the server exactly once
    assert len(server.accepted) == x and set(server.accepted.values()) == {1}
    # after the first 10 s, the accepted calls use at least 80 % of the server's capacity
    used = server.accepted_between(started + 10, ended + 0.001) / ((ended - started - 10) * 20)
    assert used >= 0.8, used
    assert server.refused < 0.1 * x, server.refused
    assert state["throttled"] == server.refused
    record(
        "throttled by a server allowing 20/s",
        f"x={x}, y={y}/min (100/s), server token bucket 20/s",
        capacity_used=f"{used:.1%}",
        refused_429=server.refused,
        per_1000_jobs=f"{server.refused * 1000 / x:.0f}",
        took_s=f"{ended - started:.0f}",
        accepted_once=len(server.accepted),
    )


def accepted_rate(server: LimitedServer, seconds: float = 3.0) -> float:
    now = time.time()
    return server.accepted_between(now - seconds, now) / seconds


def test_the_rate_follows_the_servers_limit_down_and_up(fault_system, limited, record):
    server = limited(20)
    s = throttled_system(fault_system, server)
    run_id = s.post("/api/run", {"x": 100_000, "y": 6000}).json()["runId"]
    # settled on 20/s: the accepted rate is close to it
    wait_for(lambda: accepted_rate(server) >= 0.75 * 20, 40, "the run to use the 20/s")

    server.set_rate(5)
    cut_at = time.monotonic()
    # the effective rate drops to what 5/s allows (within a quarter)
    wait_for(lambda: status(s)["rateNow"] <= 5 * 60 * 1.25, 30, "the rate to follow 5/s down")
    down_s = time.monotonic() - cut_at
    wait_for(lambda: accepted_rate(server) >= 0.75 * 5, 30, "the run to use the 5/s")

    server.set_rate(40)
    raised_at = time.monotonic()
    wait_for(lambda: accepted_rate(server) >= 0.75 * 40, 60, "the run to use the 40/s")
    up_s = time.monotonic() - raised_at
    final = status(s)
    assert final["runId"] == run_id and final["status"] == "running"
    assert final["rateNow"] <= final["yMinute"]
    assert set(server.accepted.values()) == {1}  # nothing accepted twice along the way
    s.post("/api/stop")
    record(
        "the server's limit drops, then rises",
        "y=6000/min; server 20/s, then 5/s, then 40/s",
        settled_down_s=f"{down_s:.1f}",
        settled_up_s=f"{up_s:.1f}",
        throttled=final["throttled"],
        refused_429=server.refused,
    )


@pytest.mark.env(
    {"OPTIO_JOB_FUNC": "tests.fault_jobs:throttled_once", "OPTIO_THROTTLE_MAX_WAIT": "4"}
)
def test_a_huge_retry_after_is_capped_and_delays_no_other_job(fault_system, record):
    s = fault_system.start_all()
    x = 20
    run_id = s.post("/api/run", {"x": x, "y": 1200}).json()["runId"]  # 20/s
    state = wait_finished(s, run_id, 30)  # before the cap: job 0 was due in 54 years
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == {job: 1 for job in range(x)}  # each ran once, once allowed
    throttled_at = {int(k): int(v) for k, v in s.redis.hgetall(throttled_at_key(run_id)).items()}
    assert sorted(throttled_at) == [0, 1, 5, 9, 13, 17] and state["throttled"] == 6
    ran_at = dict(starts(s, run_id))
    waited = {job: (ran_at[job] - at) / 1000 for job, at in throttled_at.items()}
    # job 0 waited the cap (OPTIO_THROTTLE_MAX_WAIT=4 s), plus at most a tick and its queue
    assert 4 <= waited[0] < 4 + 2, waited
    # the others ran again one spacing or so later: job 0's wait held none of them back
    others = [waited[job] for job in throttled_at if job]
    assert max(others) < 2 and all(ran_at[job] < ran_at[0] for job in throttled_at if job)
    assert f"Job {run_id}/0 asked to wait 1.7e+09 s" in s.procs["worker"].log()
    record(
        "a job asks to wait 1.7e9 s (an HTTP date read as seconds)",
        f"x={x}, y=1200/min; job 0 throttled with retry_after=1.7e9, jobs 1, 5, 9, 13, 17 with "
        "none; OPTIO_THROTTLE_MAX_WAIT=4",
        job_0_waited_s=f"{waited[0]:.1f}",
        others_waited_most_s=f"{max(others):.1f}",
        finished_after_s=f"{(state['finishedAt'] - state['startedAt']) / 1000:.1f}",
        **figures,
    )
