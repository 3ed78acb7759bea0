"""Fixtures: a private redis-server per test session, and the real optio processes
(``optio.testing`` holds the harness)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from optio.redis_state import RunStore
from optio.testing import ROOT, Published, RedisServer, SentinelGroup, System, rabbit
from tests.chromium import browser, page  # noqa: F401 (the browser tests' fixtures)

#: Database for in-process tests of the Lua scripts (flushed around each test).
SCRIPTS_DB = 1


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A redis-server of our own on a free port, without persistence; never the machine's."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False)
    yield server
    server.stop()


@pytest.fixture
def client(redis_server) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(f"{redis_server.url}/{SCRIPTS_DB}", decode_responses=True)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def store(client) -> RunStore:
    return RunStore(client)


@pytest.fixture
def published(client) -> Iterator[Published]:
    """The states published on the progress channel from now on."""
    collected = Published(client)
    yield collected
    collected.pubsub.close()


@pytest.fixture(scope="session")
def system(redis_server, tmp_path_factory) -> Iterator[System]:
    """One running optio (web, worker, beat) on database 0 of the private Redis."""
    with System(f"{redis_server.url}/0", tmp_path_factory.mktemp("system")) as running:
        yield running.start_all()


@pytest.fixture(scope="module")
def web_alone(redis_server, tmp_path_factory) -> Iterator[Callable[..., System]]:
    """``web_alone(db, **env)`` starts a web process without worker or beat on database ``db``
    of the private Redis; every one started is stopped after the module."""
    started: list[System] = []

    def start_web(db: int, **env: str) -> System:
        system = System(f"{redis_server.url}/{db}", tmp_path_factory.mktemp(f"web-db{db}"), **env)
        started.append(system)
        system.start_web()
        return system

    yield start_web
    for system in started:
        system.stop_all()


@pytest.fixture
def idle_system(system) -> System:
    system.ensure_idle()
    return system


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


#: Rows (case, what was done, figures) recorded by the fault and lease suites.
RELIABILITY_ROWS: list[tuple[str, str, str]] = []


@pytest.fixture
def record():
    """Record one row of the reliability table (printed at the end, saved under artifacts/):
    the case, what was done, and the figures measured as ``name=value``."""

    def add(case: str, done: str, **figures: object) -> None:
        measured = ", ".join(f"{name}={value}" for name, value in figures.items())
        RELIABILITY_ROWS.append((case, done, measured))

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    if not RELIABILITY_ROWS:
        return
    lines = ["| case | what was done | result and figures |", "|---|---|---|"]
    lines += [f"| {case} | {done} | {measured} |" for case, done, measured in RELIABILITY_ROWS]
    out = Path(ROOT) / "artifacts" / "reliability.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    terminalreporter.section(
        "reliability (measured by tests/test_faults.py, test_leases.py, test_run_control.py, "
        "test_sentinel.py, test_unaccounted.py)"
    )
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"saved to {out}")
