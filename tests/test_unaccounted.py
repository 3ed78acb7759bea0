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

import json
import time

import pytest
import redis
from celery import Celery
from redis._parsers.base import BaseParser

from optio import names
from optio.broker.redis_queue import RedisQueue, priority_lists
from optio.names import (
    done_key,
    errors_key,
    holders_key,
    message_key,
    messages_key,
    results_key,
    run_key,
)
from optio.redis_state import Lease
from optio.store.connection import transient
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
        # not acknowledged: the broker delivered it again, dropped while its lease was alive
        assert lines(worker, f"Dropped a second delivery of message {message_key(1, 1)}")
    record(
        f"counting refused (retries {retry_s} s)",
        f"x={x}, -c 1; job 1 turns the state Redis to OOM as it ends, writes let in once the "
        f"worker met it; OPTIO_REDIS_RETRY_SECONDS={retry_s}",
        executions=figures["executions"],
        given_back=len(lines(worker, GIVEN_BACK)),
    )


@pytest.mark.slow
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


def test_a_count_whose_script_fails_counts_nothing_and_keeps_the_lease(store, client):
    run_id = store.runs.start_run(4, 600)
    key = message_key(0, 2)
    assert store.leases.lease_message(run_id, key, 0, 2, "w1", 10_000) == Lease(
        "running", False, [0, 1]
    )
    client.set(results_key(run_id), "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.counting.mark_processed(
            run_id, {0: "a", 1: "b"}, message=key, token="w1", handled=2, release=True
        )
    assert client.getbit(done_key(run_id), 0) == 0 and client.getbit(done_key(run_id), 1) == 0
    assert client.hget(run_key(run_id), "processed") == "0"
    assert client.hget(holders_key(run_id), key) == "w1:2"
    assert client.zscore(messages_key(run_id), key) is not None
    assert client.hget(run_key(run_id), "leasedJobs") == "2"


def test_a_failure_whose_script_fails_does_not_count_the_job(store, client):
    run_id = store.runs.start_run(2, 600)
    client.set(errors_key(run_id), "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.counting.fail_job(run_id, 1, "E: boom", attempts=1, backoff_s=1)
    assert client.getbit(done_key(run_id), 1) == 0
    assert client.hget(run_key(run_id), "failed") == "0"


def test_broken_metrics_never_stand_in_the_way_of_a_count(store, client):
    run_id = store.runs.start_run(1, 600)
    client.set(names.METRICS_KEY, "not a hash")
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            store.counting.mark_processed(run_id, {0: "a"})
        assert store.runs.run_state(run_id)["status"] == "completed"
        assert client.hget(results_key(run_id), "0") == "a"
    finally:
        client.delete(names.METRICS_KEY)


@pytest.mark.parametrize(
    "reply, waits",
    [
        ("OOM command not allowed when used memory > 'maxmemory'.", True),
        ("READONLY You can't write against a read only replica.", True),
        ("MISCONF Redis is configured to save RDB snapshots, but it's not able to", True),
        ("BUSY Redis is busy running a script.", True),
        ("NOREPLICAS Not enough good replicas to write.", True),
        ("MASTERDOWN Link with MASTER is down", True),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
        ("ERR Error running script", False),
    ],
)
def test_what_a_worker_waits_out(reply, waits):
    """The replies of a Redis that refuses a command for now are waited out like a lost
    connection (OPTIO_REDIS_RETRY_SECONDS); any other error is raised at once."""
    error = BaseParser.parse_error(reply)  # the error redis-py makes of the reply
    assert transient(error) is waits
    assert transient(redis.ConnectionError("gone")) and transient(TimeoutError())
    assert not transient(UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"))


BROKER_DB = 2


@pytest.fixture
def broker_client(redis_server):
    conn = redis.Redis.from_url(f"{redis_server.url}/{BROKER_DB}")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.mark.parametrize("priority", [0, 3, 5, 9])
def test_the_repair_sees_a_message_at_any_priority(redis_server, broker_client, priority):
    """kombu keeps a queue in one list per priority step; a message waits in any of them."""
    queue = RedisQueue(broker_client, names.JOBS_QUEUE)
    assert queue.idle()
    app = Celery("probe", broker=f"{redis_server.url}/{BROKER_DB}")
    app.send_task(names.PROCESS_JOBS_TASK, ("run", 0, 1), queue=names.JOBS_QUEUE, priority=priority)
    assert sum(broker_client.llen(name) for name in queue.lists) == 1
    assert not queue.idle()
    app.close()
    broker_client.flushdb()
    broker_client.hset(names.KOMBU_UNACKED, "tag", json.dumps(["message", "", names.JOBS_QUEUE]))
    assert not queue.idle()


def test_the_repair_reads_no_queue_of_a_rabbitmq_broker():
    from optio.config import Settings
    from optio.worker.context import Context

    settings = Settings(broker_url="amqp://guest:guest@127.0.0.1:1//")
    assert Context(Celery("probe"), settings).broker_queue is None


def test_the_repair_reads_the_jobs_left_and_the_last_publish(store):
    run_id = store.runs.start_run(10, 6000)
    reserved = store.schedule.reserve_due(run_id, 1)
    before = store.schedule.jobs_left(run_id)
    assert before.waiting == reserved.count > 0 and before.sent_ms == 0
    store.schedule.confirm_enqueued(run_id, reserved.count, reserved.messages)
    after = store.schedule.jobs_left(run_id)
    assert after.waiting == reserved.count
    assert before.now_ms <= after.sent_ms <= after.now_ms
