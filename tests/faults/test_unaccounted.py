"""A message whose jobs are not accounted for is never acknowledged (issue 19, case 1).

Whatever fails while a worker leases or counts a message (Redis away or refusing writes for
longer than OPTIO_REDIS_RETRY_SECONDS, a script error), the message goes back to the broker and
a lease it took stays until it runs out; a refusal shorter than OPTIO_REDIS_RETRY_SECONDS is
waited out in place. The real-process cases put Celery's broker on a second redis-server, where
the tick's old repair of lost messages never looked, and make the state's Redis refuse writes
(``maxmemory 1`` with ``noeviction``: OutOfMemoryError) with real processes running; the job
functions record their executions on the broker's server, which keeps taking writes.
"""

from __future__ import annotations

import time

import pytest

from optio import names
from optio.broker.redis_queue import priority_lists
from optio.names import (
    results_key,
)
from optio.testing import (
    assert_exactly_once,
    settled_executions,
    start,
    status,
    wait_finished,
    wait_for,
    wait_processed,
)
from tests.fault_jobs import accept_writes, refuse_writes

GIVEN_BACK = "goes back to the broker"
#: What Celery logged, before this change, for a task that raised: it then acknowledged it.
TASK_FAILED = "raised unexpected"
#: The text of Redis's OOM reply (OutOfMemoryError), whoever logs it.
REFUSED = "used memory > 'maxmemory'"
REPAIRED = "no message in the broker carries"


def lines(proc, text: str) -> list[str]:
    return [line for line in proc.log().splitlines() if text in line]


def failed_tasks(worker) -> list[str]:
    """Job messages whose task raised, which Celery logged and acknowledged (before this change:
    any failure to lease or count)."""
    return [line for line in lines(worker, TASK_FAILED) if names.PROCESS_JOBS_TASK in line]


def failed_deliveries(worker) -> int:
    """Deliveries of job messages whose leasing or counting failed: given back to the broker,
    or (before this change) failed as a task."""
    return len(lines(worker, GIVEN_BACK)) + len(failed_tasks(worker))


def in_broker(s) -> int:
    """Messages in the broker: in a second Redis, waiting in the jobs queue or delivered and not
    acknowledged; in RabbitMQ, waiting (ready)."""
    if s.broker == "rabbitmq":
        return s.rabbit.ready(names.JOBS_QUEUE) or 0
    waiting = sum(s.broker_redis.llen(name) for name in priority_lists(names.JOBS_QUEUE))
    return waiting + s.broker_redis.hlen(names.KOMBU_UNACKED)


def _refused_then_let_in(s, worker, seconds: float) -> float:
    """Make the state's Redis refuse writes until a worker has met the refusal and ``seconds``
    have passed; returns how long writes were refused."""
    refuse_writes(s.server.client)
    began = time.monotonic()
    try:
        wait_for(lambda: lines(worker, REFUSED), 30, "a worker to meet the refusal")
        # the outage's length is the case itself, not a stand-in for a condition
        time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    finally:
        accept_writes(s.server.client)
    return time.monotonic() - began


@pytest.mark.parametrize(
    "retry_s",
    [
        pytest.param(
            "60",
            marks=pytest.mark.env({"OPTIO_JOB_SECONDS": "0.3", "OPTIO_REDIS_RETRY_SECONDS": "60"}),
            id="waited-out",
        ),
        pytest.param(
            "1",
            marks=pytest.mark.env({"OPTIO_JOB_SECONDS": "0.3", "OPTIO_REDIS_RETRY_SECONDS": "1"}),
            id="outlasted",
        ),
    ],
)
def test_state_redis_refusing_writes_mid_run_loses_nothing(split_system, record, retry_s):
    """Issue 19, case 1 as reported: broker on a second Redis, x=30, y=600/min, 0.3 s jobs, the
    state's Redis refuses writes for 3 s. Before, the refused lease failed the task, Celery
    acknowledged it, and the run stayed `running` for good with jobs nothing accounted for."""
    s = split_system
    s.start_web()
    worker = s.start_worker("worker", 2)
    s.start_beat()
    x, y = 30, 600
    run_id = start(s, x, y)
    at_refusal = wait_processed(s, 10, 30)["processed"]
    refused_s = _refused_then_let_in(s, worker, 3.0)
    wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    ran = settled_executions(s, run_id)
    assert sorted(ran) == list(range(x))
    if retry_s == "60":
        # every refused call was retried in place until writes were taken again
        assert set(ran.values()) == {1}, ran
        assert not lines(worker, GIVEN_BACK)
    else:
        # a job whose count was refused for longer than the retries ran again once its lease
        # ran out (counted once): at most the job each of the 2 pool processes was in
        assert figures["executions"] - x <= 2, ran
        assert lines(worker, GIVEN_BACK)
    assert not lines(s.procs["beat"], REPAIRED)
    record(
        f"state Redis refuses writes for 3 s, broker on a second Redis (retries {retry_s} s)",
        f"x={x}, y={y}/min, 0.3 s jobs, -c 2; maxmemory 1 (OOM) at processed={at_refusal} for "
        f"{refused_s:.1f} s, OPTIO_REDIS_RETRY_SECONDS={retry_s}",
        given_back=len(lines(worker, GIVEN_BACK)),
        run_twice=figures["executions"] - x,
        **figures,
    )


@pytest.mark.env({"OPTIO_REDIS_RETRY_SECONDS": "1"})
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"], ids=["second-redis", "rabbitmq"])
def test_a_delivery_that_cannot_take_its_lease_goes_back_to_the_broker(request, record, broker):
    """A Redis error before the lease: every message waits in the broker (a second Redis, or
    RabbitMQ), then the state's Redis refuses writes for longer than the retries while a worker
    starts. Nothing of a message is recorded before its lease, so each goes back to the broker,
    again and again (one give-back per pool process and second), and runs once writes are taken
    again. Before, each was acknowledged as its task failed: those jobs never ran."""
    s = request.getfixturevalue("split_system" if broker == "redis" else "rabbit_system")
    s.start_web()
    s.start_beat()
    x = 6
    run_id = start(s, x, 6000)
    wait_for(lambda: status(s)["enqueued"] == x, 30, "every job enqueued, no worker yet")
    refuse_writes(s.server.client)
    try:
        worker = s.start_worker("worker", 2)
        wait_for(lambda: failed_deliveries(worker) >= 4, 60, "four deliveries to fail")
        kept = in_broker(s)  # before: at most 2 left, the others acknowledged
    finally:
        accept_writes(s.server.client)
    if broker == "redis":
        assert kept == x  # waiting, or delivered and not acknowledged
    else:
        assert kept >= x - 2  # waiting; the 2 pool processes may hold one each
    wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    assert settled_executions(s, run_id) == dict.fromkeys(range(x), 1)
    assert not lines(s.procs["beat"], REPAIRED)
    record(
        f"leasing refused: the state Redis refuses writes longer than the retries ({broker})",
        f"x={x}, all in the broker ({s.broker}), then maxmemory 1 (OOM) while a worker -c 2 "
        "starts; OPTIO_REDIS_RETRY_SECONDS=1",
        given_back=len(lines(worker, GIVEN_BACK)),
        in_broker_meanwhile=kept,
        **figures,
    )


@pytest.mark.parametrize(
    "retry_s",
    [
        pytest.param(
            "60",
            marks=pytest.mark.env(
                {
                    "OPTIO_JOB_FUNC": "tests.fault_jobs:refuses_writes_after_job_one",
                    "OPTIO_REDIS_RETRY_SECONDS": "60",
                }
            ),
            id="waited-out",
        ),
        pytest.param(
            "1",
            marks=pytest.mark.env(
                {
                    "OPTIO_JOB_FUNC": "tests.fault_jobs:refuses_writes_after_job_one",
                    "OPTIO_REDIS_RETRY_SECONDS": "1",
                }
            ),
            id="outlasted",
        ),
    ],
)
def test_a_refused_count_is_waited_out_or_its_lease_runs_out(split_system, record, retry_s):
    """A Redis error while counting: job 1 makes the state's Redis refuse writes right after it
    ran, so the count of its result is refused (its first write is the result's). Shorter than
    the retries, the count is retried in place and every job runs once. Longer, the message goes
    back to the broker and its lease, neither released nor renewed, runs out: the tick sends it
    again and job 1 runs a second time, counted once. (Before, the count slipped through:
    Redis refuses only a script's first write when it may grow memory, and that script's first
    write was a ZREM; the next message's lease was refused instead and that message
    acknowledged: the run stayed `running` for good.)"""
    s = split_system
    s.start_web()
    worker = s.start_worker("worker", 1)
    s.start_beat()
    x = 3
    run_id = start(s, x, 6000)
    seen = REFUSED if retry_s == "60" else GIVEN_BACK
    try:
        wait_for(lambda: lines(worker, seen) or failed_tasks(worker), 30, "the count refused")
    finally:
        accept_writes(s.server.client)
    wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    ran = settled_executions(s, run_id)
    if retry_s == "60":
        assert ran == {0: 1, 1: 1, 2: 1}
        assert not lines(worker, GIVEN_BACK)
    else:
        assert ran == {0: 1, 1: 2, 2: 1}
        # not acknowledged: given back, the broker delivered it again; that copy is dropped while
        # the lease lives, or (prefork: the main process ends the lease of a failed request at
        # once) runs the job the count of which was refused
        assert lines(worker, GIVEN_BACK)
    record(
        f"counting refused (retries {retry_s} s)",
        f"x={x}, -c 1; job 1 turns the state Redis to OOM as it ends, writes let in once the "
        f"worker met it; OPTIO_REDIS_RETRY_SECONDS={retry_s}",
        executions=figures["executions"],
        given_back=len(lines(worker, GIVEN_BACK)),
    )


@pytest.mark.env(
    {"OPTIO_JOB_FUNC": "tests.fault_jobs:breaks_its_count", "OPTIO_LEASE_SECONDS": "3"}
)
def test_a_script_error_while_counting_keeps_the_job(split_system, record):
    """A script error while counting: job 0 turns the run's results hash into a string as it
    ends, so mark_processed fails with WRONGTYPE. Before, the script had already released the
    lease and set the job's bit (Redis keeps the writes of a script that fails midway) and the
    message was acknowledged: the run stayed `running` for good at processed 0/1. Now the
    fallible write comes first, so the failed script changed nothing; the message goes back to
    the broker, the lease runs out and the job runs again, counted once."""
    s = split_system
    s.start_web()
    worker = s.start_worker("worker", 1)
    s.start_beat()
    run_id = start(s, 1, 600)
    try:
        wait_for(lambda: lines(worker, "WRONGTYPE"), 30, "the count to fail")
    finally:
        s.redis.delete(results_key(run_id))
    wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, 1)
    assert settled_executions(s, run_id) == {0: 2}  # its first result was never stored
    assert lines(worker, GIVEN_BACK)
    record(
        "a script error while counting (WRONGTYPE)",
        "x=1; job 0 makes the run's results key a string as it ends; the test deletes it",
        **figures,
    )


# In-process: the scripts and the classification, against the session's private redis-server.
