"""Redis Sentinel: ``REDIS_URL`` names Sentinels, every process finds the primary through them and
follows a failover by itself, and a failover uncounts nothing: a worker's count returns only once
a replica has it (``WAIT``), before the message is acknowledged."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from optio import names
from optio import urls as redis_urls
from optio.broker.delivery import delivery
from optio.config import Settings
from optio.names import done_key, results_key, run_key
from optio.redis_state import RunStore, connect
from optio.testing import (
    ROOT,
    RedisServer,
    System,
    Watcher,
    executions,
    executions_key,
    past_schedule,
    start,
    wait_finished,
    wait_for,
    wait_processed,
)
from optio.urls import where
from optio.webapp.security import redacted_url

URL = "redis+sentinel://:s3cret@s1:26379,s2,[::1]:26380/mymaster/2?sentinel_password=sp"

# -- the URL form -------------------------------------------------------------------------------


def test_the_sentinel_url_names_the_sentinels_the_service_and_the_database():
    parsed = redis_urls.parse_sentinel(URL)
    assert parsed.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (parsed.service, parsed.db) == ("mymaster", 2)
    assert (parsed.username, parsed.password) == (None, "s3cret")
    assert parsed.sentinel_password == "sp"
    assert "s3cret" not in repr(parsed) and "sp'" not in repr(parsed)
    assert redis_urls.parse_sentinel("redis+sentinel://h/svc").db == 0
    assert redis_urls.parse_sentinel("redis+sentinel://u:p%40ss@h/svc").password == "p@ss"


@pytest.mark.parametrize(
    "url, says",
    [
        ("redis+sentinel://h1:26379", "service name"),
        ("redis+sentinel://h1:26379/a/b/c", "service name"),
        ("redis+sentinel://h1:26379/svc/zero", "must be a number"),
        ("redis+sentinel://h1:port/svc", "bad Sentinel address"),
        ("redis+sentinel://h1/svc?password=x", "unknown parameter"),
    ],
)
def test_a_bad_sentinel_url_stops_the_process_at_start(url, says):
    with pytest.raises(ValueError, match=says):
        Settings(redis_url=url)


def test_with_sentinels_a_count_waits_for_one_replica_by_default():
    assert Settings(redis_url="redis+sentinel://h/svc").redis_min_replicas == 1
    assert Settings().redis_min_replicas == 0
    env = {"REDIS_URL": "redis+sentinel://h/svc", "OPTIO_REDIS_MIN_REPLICAS": "0"}
    assert Settings.from_env(env).redis_min_replicas == 0
    assert Settings.from_env({"OPTIO_REDIS_WAIT_MS": "250"}).redis_wait_ms == 250
    with pytest.raises(ValueError, match="OPTIO_REDIS_WAIT_MS"):
        Settings(redis_wait_ms=5000, redis_timeout=5)  # the socket would time out first


def test_the_broker_gets_kombus_sentinel_form_and_the_service():
    settings = delivery(URL, 10)
    assert settings["broker_url"] == (
        "sentinel://:s3cret@s1:26379/2;sentinel://:s3cret@s2:26379/2;"
        "sentinel://:s3cret@[::1]:26380/2"
    )
    options = settings["broker_transport_options"]
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"] == {"password": "sp"}
    assert options["visibility_timeout"] > 0  # optio's delivery settings are kept
    plain = delivery("redis://h:6379/0", 10)
    assert plain["broker_url"] == "redis://h:6379/0"
    assert "master_name" not in plain["broker_transport_options"]


def test_celery_uses_optios_sentinel_transport_for_the_sentinel_form():
    import redis
    from celery import Celery

    from optio.broker.sentinel import SentinelChannel, SentinelTransport

    app = Celery("sentinel-test", set_as_current=False)
    app.conf.update(delivery(URL, 10))
    connection = app.connection_for_write()
    assert isinstance(connection.transport, SentinelTransport)
    assert len(connection.alt) == 3 and connection.virtual_host == "2"
    # a channel closing after Celery detached its connection (the crash seen after a failover)
    # raises a connection error, which the closing code ignores
    detached = SentinelChannel.__new__(SentinelChannel)
    detached.connection = type("Detached", (), {"client": None})()
    with pytest.raises(redis.ConnectionError):
        detached._connparams()
    assert "broker_transport" not in delivery("redis://h:6379/0", 10)


def test_messages_name_the_sentinels_without_credentials():
    assert where(URL) == "mymaster/2 via Sentinels s1:26379,s2:26379,[::1]:26380"
    shown = redacted_url(URL)  # /api/health's 503 message
    assert "s3cret" not in shown and "=sp" not in shown
    assert shown == "redis+sentinel://***@s1:26379,s2,[::1]:26380/mymaster/2?sentinel_password=***"


def test_config_imports_no_redis_client():
    # the web process imports config before eventlet's monkey patching; redis-py imported
    # before it picks select.poll, which eventlet's green select lacks
    code = "import sys, optio.config; assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- WAIT for replicas ---------------------------------------------------------------------------


def test_without_replicas_a_count_waits_once_then_goes_on(client):
    """A primary with no replica: the first count waits the whole timeout, then counts stop
    waiting (one ROLE check a second says no replica is online) instead of stalling the run."""
    store = RunStore(client, Settings(redis_min_replicas=1, redis_wait_ms=200))
    run_id = store.runs.start_run(20, 60)
    began = time.monotonic()
    assert store.counting.mark_processed(run_id, {0: "a"}).counted == 1
    assert time.monotonic() - began >= 0.2
    assert (store.counting.replicas.waited, store.counting.replicas.short) == (1, 1)
    began = time.monotonic()
    for job in range(1, 10):
        store.counting.mark_processed(run_id, {job: "b"})
    assert time.monotonic() - began < 0.2
    assert store.counting.replicas.waited == 1
    assert store.counting.fail_job(run_id, 10, "boom", attempts=1, backoff_s=0)[0] == "failed"
    assert client.hlen(results_key(run_id)) == 10


def test_a_count_is_on_the_replica_when_it_returns_and_its_cost(sentinel_group, record):
    """WAIT makes each count return only once the replica has it; measured: what it adds to one
    counting call (one pipelined round trip: the script, then WAIT 1)."""
    group = sentinel_group
    replica = group.client("replica")
    plain = RunStore(connect(group.url, timeout=5), Settings(redis_min_replicas=0))
    waiting = RunStore(
        connect(group.url, timeout=5), Settings(redis_min_replicas=1, redis_wait_ms=1000)
    )
    rounds = 300
    run_id = plain.runs.start_run(2 * rounds, 60)
    took: dict[str, list[float]] = {"no WAIT": [], "WAIT 1": []}
    for i in range(rounds):  # interleaved, so both see the same machine load
        for name, store, job in (("no WAIT", plain, 2 * i), ("WAIT 1", waiting, 2 * i + 1)):
            began = time.perf_counter()
            store.counting.mark_processed(run_id, {job: f"r{job}"})
            took[name].append(time.perf_counter() - began)
        # WAIT returned: the replica has the count already (no waiting for it here)
        assert replica.getbit(done_key(run_id), 2 * i + 1) == 1
    assert waiting.counting.replicas.waited == rounds and waiting.counting.replicas.short == 0
    p50 = {name: statistics.median(t) * 1000 for name, t in took.items()}
    p99 = {name: statistics.quantiles(t, n=100)[98] * 1000 for name, t in took.items()}
    record(
        "cost of WAIT for 1 replica per count (mark_processed)",
        f"{rounds} calls each, interleaved, primary + replica on loopback",
        p50_without_ms=f"{p50['no WAIT']:.2f}",
        p50_with_ms=f"{p50['WAIT 1']:.2f}",
        added_p50_ms=f"{p50['WAIT 1'] - p50['no WAIT']:.2f}",
        p99_without_ms=f"{p99['no WAIT']:.2f}",
        p99_with_ms=f"{p99['WAIT 1']:.2f}",
    )


# -- a failover mid-run --------------------------------------------------------------------------

#: as tests/conftest.py's FAULT_ENV, with the job function's records in a Redis of their own
FAILOVER_ENV = {
    "OPTIO_HEARTBEAT_SECONDS": "1",
    "OPTIO_RETRY_BACKOFF": "0.2",
    "OPTIO_REDIS_RETRY_SECONDS": "60",
    "OPTIO_JOB_FUNC": "tests.fault_jobs:counted",
    "OPTIO_JOB_SECONDS": "0.02",
}


@pytest.mark.slow
def test_primary_killed_mid_run_the_run_finishes_exactly_once(sentinel_group, tmp_path, record):
    group = sentinel_group
    # what the job function really ran is written outside the group, where no failover loses it
    (tmp_path / "witness").mkdir()
    witness = RedisServer(tmp_path / "witness", persistent=False)
    system = System(
        f"{group.url}/0",
        tmp_path / "system",
        OPTIO_TEST_REDIS_URL=f"{witness.url}/0",
        **FAILOVER_ENV,
    )
    watcher = None
    try:
        s = system.start_all()
        watcher = Watcher(s.base)
        x = 300
        run_id = start(s, x, 1200)
        wait_processed(s, 60, 30)
        # Hold the primary's writes for a moment to read the last state it will ever publish,
        # then kill it: an event with a higher seq can only come from the new primary.
        primary = group.client("primary")
        primary.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
        last_seq = int(primary.hget(run_key(run_id), "seq"))
        killed_at = time.time()
        group.kill("primary")
        at_kill = len(watcher.events)

        def first_from_new_primary():
            for at, state in watcher.events[at_kill:]:
                if state.get("runId") == run_id and state["seq"] > last_seq:
                    return at, state
            return None

        wait_for(lambda: group.primary_name() == "replica", 30, "the Sentinels' failover")
        promoted_s = time.time() - killed_at
        first_at, first = wait_for(first_from_new_primary, 60, "an event from the new primary")
        final = wait_finished(s, run_id, 120)
        finished_s = time.time() - killed_at
        assert watcher.wait_final(run_id, 30)["processed"] == x  # clients kept receiving
        events_after = sum(1 for _, e in watcher.events[at_kill:] if e.get("runId") == run_id)

        r = s.redis  # through the Sentinels: the new primary
        figures = {
            "processed": final["processed"],
            "failed": final["failed"],
            "bits": r.bitcount(done_key(run_id)),
            "results": r.hlen(results_key(run_id)),
        }
        assert final["status"] == "completed"
        assert figures == {"processed": x, "failed": 0, "bits": x, "results": x}
        ran = {int(k): int(v) for k, v in witness.client.hgetall(executions_key(run_id)).items()}
        assert sorted(ran) == list(range(x))  # every job ran...
        twice = sum(ran.values()) - x  # ...and at most the few in flight at the kill again
        assert twice <= 4, f"{twice} extra executions"
        # the workers, beat and web found the new primary by themselves
        wait_for(lambda: s.get("/api/health").status_code == 200, 30, "a healthy system")
        # no replica is left: counts stopped waiting instead of stalling the run
        assert "Only 0 of 1 Redis replica(s)" in s.procs["worker"].log()
        resent = [line for line in s.procs["beat"].log().splitlines() if "Another Redis" in line]
        assert resent, "beat did not notice the new primary"
    finally:
        if watcher is not None:
            watcher.close()
        system.stop_all()
        witness.stop()
    record(
        "Redis primary SIGKILLed mid-run (Sentinel failover)",
        f"x={x}, y=1200/min, 20 ms jobs, -c 2; primary + replica + 3 Sentinels "
        f"(down-after {group.down_after_ms} ms), primary SIGKILLed at seq {last_seq}",
        **figures,
        executions=sum(ran.values()),
        new_primary_named_after_s=f"{promoted_s:.1f}",
        first_event_from_new_primary_after_s=f"{first_at - killed_at:.1f}",
        first_event_processed=first["processed"],
        events_after_kill=events_after,
        finished_after_s=f"{finished_s:.1f}",
        past_schedule_s=f"{past_schedule(final):.1f}",
    )


# -- after a failover or a restart: jobs the broker may have lost --------------------------------


def test_a_new_redis_server_is_noticed_once(store, client):
    assert store.schedule.primary_changed() is False  # the first server seen
    assert RunStore(client).schedule.primary_changed() is False  # the same server, another process
    client.set(names.SERVER_KEY, "the-run-id-of-the-old-primary")
    other = RunStore(client)
    assert other.schedule.primary_changed() is True
    assert other.schedule.primary_changed() is False
    assert RunStore(client).schedule.primary_changed() is False


def test_unaccounted_jobs_are_the_sent_jobs_nothing_else_accounts_for(store, client):
    run_id = store.runs.start_run(20, 60)
    now = store.runs.server_time_ms() + 60_000
    reservation = store.schedule.reserve_due(
        run_id, 5, now_ms=now
    )  # 10 due at most: two ticks' worth
    assert reservation.messages == [f"{job}:1" for job in range(10)]
    assert (
        store.schedule.unaccounted_jobs(run_id) == []
    )  # reserved, not confirmed: the tick resends them
    store.schedule.confirm_enqueued(run_id, 10, reservation.messages)  # in the broker now
    store.leases.lease_message(run_id, "3:1", 3, 1, "token", 10_000)  # a worker runs job 3
    store.counting.mark_processed(run_id, {0: "a", 1: "b"})  # jobs 0 and 1 are done
    store.counting.fail_job(run_id, 5, "boom", attempts=3, backoff_s=1)  # job 5 waits for its retry
    assert store.schedule.unaccounted_jobs(run_id) == [2, 4, 6, 7, 8, 9]


def test_unaccounted_jobs_go_out_in_messages_of_the_current_batch_size():
    from optio.worker.tick import as_messages

    assert as_messages([2, 3, 4, 7, 9, 10], 2) == ["2:2", "4:1", "7:1", "9:2"]
    assert as_messages([0, 1, 2], 1) == ["0:1", "1:1", "2:1"]
    assert as_messages([], 5) == []


@pytest.mark.slow
def test_messages_the_broker_lost_at_a_restart_are_sent_again(fault_system, record):
    """kombu takes a message off the queue and records it as unacknowledged in two calls: when
    the server dies in between, the message is gone. After a failover or a restart the tick
    sends the jobs nothing accounts for again. Here messages are taken off the queue by hand
    while no worker runs, then the Redis server restarts."""
    s = fault_system
    s.start_web()
    s.start_beat()
    x = 30
    run_id = start(s, x, 6000)  # all due within 0.3 s
    wait_for(lambda: s.redis.llen(names.JOBS_QUEUE) == x, 30, "every message in the broker")
    lost = [s.redis.rpop(names.JOBS_QUEUE) for _ in range(5)]  # the oldest: BRPOP's end
    s.server.stop()
    s.server.start()
    s.start_worker()
    final = wait_finished(s, run_id, 60)
    ran = executions(s, run_id)
    assert final["status"] == "completed" and final["processed"] == x
    assert s.redis.bitcount(done_key(run_id)) == x and s.redis.hlen(results_key(run_id)) == x
    assert sorted(ran) == list(range(x)) and sum(ran.values()) == x  # copies were dropped
    resent = [line for line in s.procs["beat"].log().splitlines() if "Another Redis" in line]
    assert resent and f"{x} waiting job(s)" in resent[0]
    record(
        "broker lost messages at a Redis restart",
        f"x={x}; {len(lost)} messages taken off the queue, no worker running, then redis-server "
        "restarted and a worker started",
        processed=final["processed"],
        executions=sum(ran.values()),
        resent_jobs=x,
    )
