"""The leases of prefork pool processes, renewed by the worker's main process by their owner
id (renew_owned.lua), and the tokens a pool process leases with, on the private Redis. (Real
workers: tests/faults/test_pool_leases.py.)"""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import redis

from optio.names import HOLDER_PREFIX, attempts_key, holders_key, messages_key
from optio.redis_state import RunStore
from optio.worker.leases import Held, Keeper
from optio.worker.pool_leases import pool_kind, process_alive

T0 = 1_800_000_000_000  # a fixed "now" in ms


def leased(store: RunStore, run_id: str, first: int, token: str, now_ms: int = T0) -> str:
    key = f"{first}:2"
    lease = store.leases.lease_message(run_id, key, first, 2, token, 10_000, now_ms=now_ms)
    assert not lease.held_elsewhere and lease.jobs
    return key


def test_the_main_process_renews_only_the_leases_of_the_process_running_each_message(store):
    run_id = store.runs.start_run(20, 600, now_ms=T0)
    mine = leased(store, run_id, 0, "ab12.100_9f9f")
    named = leased(store, run_id, 2, "ab12.100-0a0a")  # with RabbitMQ: holder id = owner id
    other_pid = leased(store, run_id, 4, "ab12.1000_1b1b")
    other_worker = leased(store, run_id, 6, "cd34.100_2c2c")
    owned = [(key, "ab12.100") for key in (mine, named, other_pid, other_worker, "8:2")]
    status, lost = store.leases.renew_owned(run_id, owned, 30_000, now_ms=T0 + 5000)
    assert (status, lost) == ("running", [other_pid, other_worker, "8:2"])
    deadlines = dict(store.client.zrange(messages_key(run_id), 0, -1, withscores=True))
    assert deadlines[mine] == deadlines[named] == T0 + 35_000
    assert deadlines[other_pid] == deadlines[other_worker] == T0 + 10_000
    # a message whose job ended (released in the last count) is renewed no more
    store.counting.mark_processed(
        run_id, {0: "a", 1: "b"}, message=mine, token="ab12.100_9f9f", handled=2, release=True
    )
    assert store.leases.renew_owned(run_id, [(mine, "ab12.100")], 30_000)[1] == [mine]
    assert store.client.zscore(messages_key(run_id), mine) is None
    store.runs.stop_run()
    assert store.leases.renew_owned(run_id, [(named, "ab12.100")], 30_000) == ("stopped", [named])


def test_a_dead_pool_process_s_lease_ends_at_once_and_counts_as_an_expiry(store):
    run_id = store.runs.start_run(20, 600, now_ms=T0)
    key = leased(store, run_id, 0, "ab12.100_9f9f")
    assert store.leases.renew_owned(run_id, [(key, "ab12.100")], 0, now_ms=T0 + 1000) == (
        "running",
        [],
    )
    # the broker's redelivery takes it at once (no live lease in its way) ...
    again = store.leases.lease_message(run_id, key, 0, 2, "ef56.7_3d3d", 10_000, now_ms=T0 + 1001)
    assert not again.held_elsewhere and again.jobs == [0, 1]
    assert store.client.hget(holders_key(run_id), key) == "ef56.7_3d3d:2"
    assert store.client.hget(attempts_key(run_id), f"expired:{key}") == "1"
    # ... or, when the tick comes first, the tick sends it again as an expired lease
    other = leased(store, run_id, 2, "ab12.100_4e4e")
    store.leases.renew_owned(run_id, [(other, "ab12.100")], 0, now_ms=T0 + 2000)
    lost = store.schedule.claim_lost(run_id, most=10, now_ms=T0 + 2001)
    assert (lost.leases, lost.keys) == (1, [other])


def pool_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "optio-leases")


def test_a_delegated_pool_process_leases_with_its_owner_id_and_renews_nothing(store):
    keeper = Keeper(store.leases, 10)
    keeper.delegate("ab12.100")
    token = keeper.token()
    assert token.startswith("ab12.100_") and "-" not in token  # never taken over on RabbitMQ
    threads = pool_threads()
    held = Held("r", "0:1", token)
    keeper.hold(held)
    keeper.drop(held)
    assert pool_threads() == threads  # the main process renews: no thread of its own


def test_with_rabbitmq_a_pool_process_s_holder_id_is_its_owner_id(redis_server, redis_db):
    url = f"{redis_server.url}/{redis_db()}"
    keeper = Keeper(
        RunStore(redis.Redis.from_url(url, decode_responses=True)).leases, 10, announce=True
    )
    keeper.delegate("ab12.4242")
    token = keeper.token()  # names its connection once: its thread keeps it named, no more
    assert token.startswith("ab12.4242-")
    names_now = {c["name"] for c in redis_server.client.client_list()}
    assert HOLDER_PREFIX + "ab12.4242" in names_now
    assert keeper.holder_alive(token)
    keeper._presence.disconnect()  # what the kernel does when the process dies
    assert not keeper.holder_alive(token)


def test_the_pool_is_known_by_its_option():
    assert [pool_kind(name) for name in ("prefork", "threads", "solo")] == [
        "prefork",
        "threads",
        "solo",
    ]


def test_a_pool_process_is_dead_once_it_is_a_zombie():
    """Celery's pool may reap a dead pool process seconds later: a zombie counts as dead."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert process_alive(child.pid)
        child.send_signal(signal.SIGSTOP)  # stopped is alive (its job may hold the GIL, too)
        assert process_alive(child.pid)
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not process_alive(child.pid)  # a zombie: not reaped yet
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)  # reaped: gone
