"""Redis Sentinel: ``REDIS_URL`` names Sentinels, every process finds the primary through them and
follows a failover by itself, and a failover uncounts nothing: a worker's count returns only once
a replica has it (``WAIT``), before the message is acknowledged. Here in-process: the URL form,
WAIT without replicas, and what the tick sends again after a failover or a restart; with a
primary, a replica and three Sentinels of the test's own: tests/faults/test_sentinel.py."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from optio import names
from optio import urls as redis_urls
from optio.broker.delivery import delivery
from optio.config import Settings
from optio.names import results_key
from optio.redis_state import RunStore
from optio.testing import (
    ROOT,
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
    settings = delivery(URL, Settings().visibility_timeout)
    assert settings["broker_url"] == (
        "sentinel://:s3cret@s1:26379/2;sentinel://:s3cret@s2:26379/2;"
        "sentinel://:s3cret@[::1]:26380/2"
    )
    options = settings["broker_transport_options"]
    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"] == {"password": "sp"}
    assert options["visibility_timeout"] > 0  # optio's delivery settings are kept
    plain = delivery("redis://h:6379/0", Settings().visibility_timeout)
    assert plain["broker_url"] == "redis://h:6379/0"
    assert "master_name" not in plain["broker_transport_options"]


def test_celery_uses_optios_sentinel_transport_for_the_sentinel_form():
    import redis
    from celery import Celery

    from optio.broker.sentinel import SentinelChannel, SentinelTransport

    app = Celery("sentinel-test", set_as_current=False)
    app.conf.update(delivery(URL, Settings().visibility_timeout))
    connection = app.connection_for_write()
    assert isinstance(connection.transport, SentinelTransport)
    assert len(connection.alt) == 3 and connection.virtual_host == "2"
    # a channel closing after Celery detached its connection (the crash seen after a failover)
    # raises a connection error, which the closing code ignores
    detached = SentinelChannel.__new__(SentinelChannel)
    detached.connection = type("Detached", (), {"client": None})()
    with pytest.raises(redis.ConnectionError):
        detached._connparams()
    assert "broker_transport" not in delivery("redis://h:6379/0", Settings().visibility_timeout)


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
    assert client.hlen(results_key(run_id)) == 11  # 10 processed, 1 failed: each has its record


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
