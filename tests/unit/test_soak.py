"""The chaos soak's pure parts (optio/testing/soak): what its seed decides, and the rule that
says which extra executions a fault explains (the soak itself: tests/faults/test_soak.py)."""

from __future__ import annotations

from optio.testing.soak.chaos import Fault
from optio.testing.soak.cluster import last_error
from optio.testing.soak.plan import KINDS, LEASE_SECONDS, chaos_plan, job_plan, size_run
from optio.testing.soak.verdict import AFTER_S, Execution, by_job, hits, judge_jobs, memory_bounds

POOL, OTHER_POOL, WORKER = 101, 102, 100  # a pool process, another, their worker's main process


def execution(job, start, end=None, outcome="ok", pid=POOL):
    return Execution(job, pid, WORKER, start, end, outcome if end is not None else None)


def test_the_seed_alone_decides_the_jobs_and_the_chaos():
    assert [job_plan(7, j) for j in range(500)] == [job_plan(7, j) for j in range(500)]
    assert [job_plan(7, j) for j in range(500)] != [job_plan(8, j) for j in range(500)]
    events = chaos_plan(7, 600)
    assert events == chaos_plan(7, 600)
    gaps = [b.at - a.at for a, b in zip(events, events[1:], strict=False)]
    assert all(5 <= gap <= 20 for gap in gaps)
    assert {e.kind for e in events} == set(KINDS)
    freezes = [e.hold for e in events if e.kind == "freeze_worker"]
    assert freezes and min(freezes) > LEASE_SECONDS


def test_the_jobs_fill_the_minutes_at_the_rate_less_the_pauses():
    events = chaos_plan(7, 600)
    paused = sum(e.hold for e in events if e.kind == "pause")
    x = size_run(7, 600, 60_000, events)
    assert 0.8 * 1000 * (600 - paused) < x < 1.1 * 1000 * 600


def test_a_fault_hits_the_executions_of_its_process_while_they_run_or_just_after():
    kill = Fault("kill_pool", start=10.0, end=10.1, pid=POOL, scope="pid")
    assert hits(kill, execution(1, 9.0))  # killed mid-job: never ended
    assert hits(kill, execution(1, 8.0, 9.5))  # returned, not yet counted
    assert not hits(kill, execution(1, 5.0, 10.0 - AFTER_S - 0.1))  # long done
    assert not hits(kill, execution(1, 9.0, pid=OTHER_POOL))  # another process
    freeze = Fault("freeze_worker", start=10.0, end=16.0, pid=WORKER, scope="group")
    assert hits(freeze, execution(1, 9.0, 16.5, pid=OTHER_POOL))  # any process of the worker
    assert hits(freeze, execution(1, 16.5, 16.6))  # started as it woke up
    restart = Fault("redis_restart", start=10.0, end=11.0, scope="all")
    assert hits(restart, execution(1, 9.0, 9.1, pid=999))
    web = Fault("web_restart", start=10.0, end=11.0, pid=5, scope="none")
    assert not hits(web, execution(1, 9.0))


def test_extra_executions_are_explained_only_as_many_as_the_hits():
    kill = Fault("kill_pool", start=10.0, end=10.1, pid=POOL, scope="pid")
    runs = [
        execution(0, 1.0, 1.1),  # once: fine
        execution(1, 9.0),  # killed, then ran again: explained
        execution(1, 15.0, 15.1, pid=OTHER_POOL),
        execution(2, 3.0, 3.1, "fail"),  # its planned failure, then its retry: not extra
        execution(2, 3.5, 3.6),
        execution(3, 20.0, 20.1),  # twice, nothing hit it: unexplained
        execution(3, 20.0, 20.2, pid=OTHER_POOL),
    ]
    judged = judge_jobs(5, by_job(runs), [kill])
    assert judged["extra"] == 2
    assert judged["explained"] == {"kill_pool": 1}
    assert [item["job"] for item in judged["unexplained"]] == [3]
    assert judged["lost"] == [4]
    assert judged["planned_raises"] == 1 and judged["never_ended"] == 1


def test_memory_is_bounded_when_the_last_third_stays_within_the_factor():
    flat = [(t, {"rss": 100 + t % 7}) for t in range(90)]
    growing = [(t, {"rss": 100 + 2 * t}) for t in range(90)]
    assert memory_bounds(flat)["rss"]["bounded"]
    assert not memory_bounds(growing)["rss"]["bounded"]


def test_an_exited_process_is_reported_with_its_unrecoverable_error():
    log = "\n".join(
        [
            "[2026-12-05 01:57:38,100: ERROR/ForkPoolWorker-1] Task raised unexpected: X",
            "[2026-12-05 01:57:38,171: CRITICAL/MainProcess] Unrecoverable error: server:OOM",
            "Traceback (most recent call last):",
            "redis.exceptions.ConnectionError: Connection closed by server.",
            "[2026-12-05 01:57:39,816: ERROR/MainProcess] Error on stopping Hub: server:OOM",
        ]
    )
    assert last_error(log).endswith("Unrecoverable error: server:OOM")
    assert last_error(log.replace("CRITICAL", "INFO")).endswith("Error on stopping Hub: server:OOM")
    assert last_error("ready.") == ""
