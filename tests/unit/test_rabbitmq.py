"""RabbitMQ as Celery's broker, in-process: the configuration, and the takeover of a dead
holder's lease (Lua script and named connection) on the private Redis. (Real processes on a
private RabbitMQ node: tests/faults/test_rabbitmq.py.)
"""

from __future__ import annotations

import os

import pytest
import redis

from optio import names
from optio.broker.delivery import broker_kind, celery_config
from optio.config import Settings
from optio.names import HOLDER_PREFIX, holders_key, message_key, run_key
from optio.redis_state import RunStore
from optio.testing import wait_for
from optio.worker.leases import Keeper


def test_the_broker_is_redis_unless_optio_broker_url_says_otherwise():
    redis_url = "redis://r:6379/0"
    assert Settings.from_env({"REDIS_URL": redis_url}).broker_url == redis_url
    assert Settings.from_env({"REDIS_URL": redis_url, "OPTIO_BROKER_URL": ""}).broker_url == (
        redis_url
    )
    amqp = "amqp://u:p@rabbit:5672/optio"
    assert Settings.from_env({"OPTIO_BROKER_URL": amqp}).broker_url == amqp
    assert broker_kind(amqp) == "rabbitmq" and broker_kind(redis_url) == "redis"


def test_rabbitmq_gets_durable_quorum_queues_and_no_visibility_timeout():
    amqp = celery_config("amqp://guest:guest@127.0.0.1:5672//", 10)
    assert amqp["broker_url"].startswith("amqp://")
    for queue in amqp["task_queues"]:
        assert queue.queue_arguments == {"x-queue-type": "quorum"} and queue.durable
        # topic: Celery's native delayed delivery could route a countdown (optio sends none)
        assert queue.exchange.type == "topic" and queue.routing_key == queue.name
    assert {q.name for q in amqp["task_queues"]} == {names.JOBS_QUEUE, names.TICKS_QUEUE}
    assert amqp["worker_detect_quorum_queues"] and amqp["task_acks_late"]
    assert amqp["task_reject_on_worker_lost"] and amqp["worker_prefetch_multiplier"] == 1
    assert "broker_transport_options" not in amqp  # no visibility timeout on RabbitMQ
    redis_side = celery_config("redis://127.0.0.1:6379/0", 10)
    assert redis_side["broker_transport_options"]["visibility_timeout"] == 10
    assert all(not q.queue_arguments for q in redis_side["task_queues"])


def test_a_live_lease_is_taken_over_only_from_the_holder_named(store):
    run_id = store.runs.start_run(10, 600)
    key = message_key(0, 2)
    first = store.leases.lease_message(run_id, key, 0, 2, "aaaa-1", 10_000)
    assert first.jobs == [0, 1] and not first.held_elsewhere
    second = store.leases.lease_message(run_id, key, 0, 2, "bbbb-1", 10_000)
    assert (second.held_elsewhere, second.holder, second.jobs) == (True, "aaaa-1", [])
    wrong = store.leases.lease_message(run_id, key, 0, 2, "bbbb-1", 10_000, take_from="cccc-1")
    assert wrong.held_elsewhere and wrong.holder == "aaaa-1"
    store.counting.mark_processed(run_id, {0: "done by a"}, message=key, token="aaaa-1", handled=1)
    taken = store.leases.lease_message(run_id, key, 0, 2, "bbbb-1", 10_000, take_from="aaaa-1")
    assert (taken.held_elsewhere, taken.jobs) == (False, [1])  # job 0 was counted already
    assert store.client.hget(holders_key(run_id), key) == "bbbb-1:1"
    assert store.client.hget(run_key(run_id), "leasedJobs") == "1"
    # the old holder, if it was alive after all, finds its lease gone and starts no more jobs
    assert store.leases.renew_leases(run_id, {key: "aaaa-1"}, 10_000) == ("running", [key])


def test_a_holder_is_alive_while_its_named_connection_is_open(redis_server, redis_db):
    url = f"{redis_server.url}/{redis_db()}"
    other = Keeper(
        RunStore(redis.Redis.from_url(url, decode_responses=True)).leases, 10, announce=True
    )
    mine = Keeper(
        RunStore(redis.Redis.from_url(url, decode_responses=True)).leases, 10, announce=True
    )
    mine._holder = "c0ffee"  # what token() sets up once per process, without its thread
    mine._name()
    token, holder = "c0ffee-1", "c0ffee"
    names_now = {c["name"] for c in redis_server.client.client_list()}
    assert HOLDER_PREFIX + holder in names_now
    assert other.holder_alive(token)
    assert other.holder_alive("a0b1c2-9") is False  # nobody by that id
    assert other.holder_alive("tokenwithoutholder")  # leased without announce: can't tell
    mine._presence.disconnect()  # what the kernel does when the process dies
    # (Redis drops the closed connection from its list when it reads the close: soon, not at once)
    wait_for(lambda: not other.holder_alive(token), 5, "the holder's connection to be gone")


def test_a_holder_that_cannot_name_its_connection_leases_with_plain_tokens(redis_server, redis_db):
    """Without CLIENT SETNAME (an ACL, a managed Redis) a process's tokens carry no holder id:
    its leases are never taken over, they run out as with the Redis broker."""
    admin = redis_server.client
    admin.acl_setuser(
        "optio-noclient", enabled=True, nopass=True, keys=["*"], commands=["+@all", "-client"]
    )
    try:
        url = f"redis://optio-noclient@127.0.0.1:{redis_server.port}/{redis_db()}"
        keeper = Keeper(RunStore(redis.Redis.from_url(url, decode_responses=True)).leases, 10)
        keeper.announce = True
        keeper._holder = "c0ffee"
        with pytest.raises(redis.ConnectionError, match="NOPERM|no permissions"):
            keeper._name()
        assert not keeper._named
        keeper._pid = os.getpid()  # as if started: token() must not hand out the holder id
        assert "-" not in keeper.token()
    finally:
        admin.acl_deluser("optio-noclient")
