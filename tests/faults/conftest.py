"""Fixtures of the faults tier: a system of each test's own (its own redis-server, and on request
its own RabbitMQ node or Sentinel group), processes started by the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from optio.testing import RedisServer, SentinelGroup, System, rabbit

#: Settings of the fault systems: quick heartbeats and retries so the suite stays short; leases
#: keep their default (OPTIO_LEASE_SECONDS=10) unless a test says otherwise.
FAULT_ENV = {
    "OPTIO_HEARTBEAT_SECONDS": "1",
    "OPTIO_RETRY_BACKOFF": "0.2",
    "OPTIO_REDIS_RETRY_SECONDS": "60",
    "OPTIO_JOB_FUNC": "tests.fault_jobs:counted",
}


@pytest.fixture
def fault_system(tmp_path, request):
    """A system of the test's own: its own redis-server (append-only file), processes started
    by the test; ``@pytest.mark.env({...})`` adds environment."""
    server = RedisServer(tmp_path)
    marker = request.node.get_closest_marker("env")
    env = {**FAULT_ENV, **(marker.args[0] if marker else {})}
    try:
        with System(f"{server.url}/0", tmp_path, **env) as system:
            system.server = server
            system.broker = "redis"
            yield system
    finally:
        server.stop()


@pytest.fixture
def split_system(tmp_path, request):
    """``fault_system`` with Celery's broker on a second redis-server of the test's own
    (``OPTIO_BROKER_URL``, database 0; ``.broker_server``, ``.broker_redis``). The job functions
    record their executions there too (database 1), so the records are kept while the state's
    Redis (``.server``) refuses writes. ``@pytest.mark.env`` as there."""
    state_dir, broker_dir = tmp_path / "state", tmp_path / "broker"
    state_dir.mkdir()
    broker_dir.mkdir()
    server = RedisServer(state_dir)
    broker = RedisServer(broker_dir)
    marker = request.node.get_closest_marker("env")
    env = {
        **FAULT_ENV,
        "OPTIO_BROKER_URL": f"{broker.url}/0",
        "OPTIO_TEST_REDIS_URL": f"{broker.url}/1",
        **(marker.args[0] if marker else {}),
    }
    try:
        with System(f"{server.url}/0", tmp_path, **env) as system:
            system.server = server
            system.broker_server = broker
            system.broker_redis = broker.client
            system.broker = "second redis"
            yield system
    finally:
        server.stop()
        broker.stop()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_system(request):
    """The same case on each broker: ``fault_system`` (Celery's broker in the state's Redis),
    then ``rabbit_system``; ``.broker`` says which."""
    return request.getfixturevalue("fault_system" if request.param == "redis" else "rabbit_system")


@pytest.fixture
def sentinel_group(tmp_path) -> Iterator[SentinelGroup]:
    """A primary, a replica and three Sentinels of the test's own (no persistence), on free
    loopback ports; ``.url`` is their ``redis+sentinel://`` URL (database 0)."""
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="session")
def rabbit_server(tmp_path_factory) -> Iterator[rabbit.RabbitServer]:
    """A RabbitMQ node of our own (own node name, ports, epmd, data under a temp folder); never
    the machine's broker. Skipped, with the reason, only when RabbitMQ is not installed."""
    problem = rabbit.missing()
    if problem:
        pytest.skip(problem)
    server = rabbit.RabbitServer(tmp_path_factory.mktemp("rabbitmq"))
    yield server
    server.close()


@pytest.fixture
def rabbit_system(rabbit_server, tmp_path, request):
    """``fault_system`` with Celery's broker on the private RabbitMQ node: its own redis-server
    for the state, optio's queues deleted from the node first; ``@pytest.mark.env`` as there."""
    if rabbit_server.proc is None:  # a test that stopped the node failed before starting it
        rabbit_server.start()
    rabbit_server.delete_queues()
    server = RedisServer(tmp_path)
    marker = request.node.get_closest_marker("env")
    env = {**FAULT_ENV, "OPTIO_BROKER_URL": rabbit_server.url, **(marker.args[0] if marker else {})}
    try:
        with System(f"{server.url}/0", tmp_path, **env) as system:
            system.server = server
            system.rabbit = rabbit_server
            system.broker = "rabbitmq"
            yield system
    finally:
        server.stop()
