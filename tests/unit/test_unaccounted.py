"""A message whose jobs are not accounted for is never acknowledged (issue 19, case 1), in
process: a counting script that fails counts nothing and keeps the lease, what a worker waits
out, and the lost-message repair's view of a Redis broker (every priority list, unacked) and of
the run (the jobs left, the last publish)."""

from __future__ import annotations

import json

import pytest
import redis
from celery import Celery
from redis._parsers.base import BaseParser

from optio import names
from optio.broker.redis_queue import RedisQueue
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
        assert store.runs.result(run_id, 0) == "a"
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


@pytest.fixture
def broker_url(redis_server, redis_db) -> str:
    """A database of the session's server standing for a Redis broker."""
    return f"{redis_server.url}/{redis_db()}"


@pytest.fixture
def broker_client(broker_url):
    conn = redis.Redis.from_url(broker_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.mark.parametrize("priority", [0, 3, 5, 9])
def test_the_repair_sees_a_message_at_any_priority(broker_url, broker_client, priority):
    """kombu keeps a queue in one list per priority step; a message waits in any of them."""
    queue = RedisQueue(broker_client, names.JOBS_QUEUE)
    assert queue.idle()
    app = Celery("probe", broker=broker_url)
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
