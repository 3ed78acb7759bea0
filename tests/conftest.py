"""Fixtures: a private redis-server per test session, and the real optio processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from optio.devredis import server_args, wait_until_answering
from optio.redis_state import RunStore
from tests.helpers import ROOT, Proc, RedisServer, celery_args, free_port, wait_for

#: Database for in-process tests of the Lua scripts (flushed around each test).
SCRIPTS_DB = 1


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[dict]:
    """A redis-server of our own on a free port; never the machine's Redis."""
    data = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = Proc("redis", server_args(port, data, persistent=False), dict(os.environ), data)
    url = f"redis://127.0.0.1:{port}"
    wait_until_answering(url)
    yield {"port": port, "url": url, "proc": proc, "dir": data}
    proc.stop()


@pytest.fixture
def client(redis_server) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(f"{redis_server['url']}/{SCRIPTS_DB}", decode_responses=True)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def store(client) -> RunStore:
    return RunStore(client)


class System:
    """The web, worker and beat processes against one Redis database."""

    def __init__(self, redis_url: str, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "OPTIO_HOST": "127.0.0.1",
            "OPTIO_CORS_ORIGINS": f"{self.base},http://localhost:{self.port}",
            "OPTIO_TICK_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),  # workers import job functions from tests/
            **env,
        }
        self.procs: dict[str, Proc] = {}
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def start_web(self) -> Proc:
        proc = Proc("web", [sys.executable, "-m", "optio.serve"], self.env, self.log_dir)
        self.procs["web"] = proc
        wait_for(
            lambda: requests.get(f"{self.base}/api/health", timeout=1).status_code in (200, 503),
            20,
            "the web process to answer",
        )
        return proc

    def start_worker(
        self, name: str = "worker", concurrency: int = 2, *extra: str, **env: str
    ) -> Proc:
        """A ``celery worker`` (``extra``: more arguments, e.g. "-P", "threads"; ``env``: more
        environment for this process only)."""
        args = celery_args(
            "worker",
            "-l",
            "INFO",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            *extra,
        )
        proc = Proc(name, args, {**self.env, **env}, self.log_dir)
        self.procs[name] = proc
        wait_for(lambda: "ready." in proc.log(), 30, f"{name} to be ready")
        return proc

    def start_beat(self, name: str = "beat") -> Proc:
        schedule = self.log_dir / f"{name}-schedule"
        args = celery_args("beat", "-l", "INFO", "-s", str(schedule))
        proc = Proc(name, args, self.env, self.log_dir)
        self.procs[name] = proc
        return proc

    def start_all(self) -> System:
        self.start_web()
        self.start_worker()
        self.start_beat()
        wait_for(lambda: self.get("/api/health").status_code == 200, 30, "a healthy system")
        return self

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.redis.close()

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, timeout=5)

    def post(self, path: str, body=None, **kw) -> requests.Response:
        return requests.post(self.base + path, json=body, timeout=5, **kw)

    def put(self, path: str, body=None, **kw) -> requests.Response:
        return requests.put(self.base + path, json=body, timeout=5, **kw)

    def ensure_idle(self) -> None:
        """Stop whatever run a previous test left running."""
        if self.get("/api/status").json()["running"]:
            self.post("/api/stop")


@pytest.fixture(scope="session")
def system(redis_server, tmp_path_factory) -> Iterator[System]:
    """One running optio (web, worker, beat) on database 0 of the private Redis."""
    sys_ = System(f"{redis_server['url']}/0", tmp_path_factory.mktemp("system"))
    try:
        sys_.start_all()
        yield sys_
    finally:
        sys_.stop_all()


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
    system = System(f"{server.url}/0", tmp_path, **env)
    system.server = server
    try:
        yield system
    finally:
        system.stop_all()
        server.stop()


#: Rows (case, what was done, what was measured) recorded by the fault suite.
RELIABILITY_ROWS: list[tuple[str, str, str]] = []


@pytest.fixture
def record():
    """Record one row of the reliability table (printed at the end, saved under artifacts/)."""

    def add(case: str, done: str, measured: str) -> None:
        RELIABILITY_ROWS.append((case, done, measured))

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    if not RELIABILITY_ROWS:
        return
    lines = ["| case | what was done | result and figures |", "|---|---|---|"]
    lines += [f"| {case} | {done} | {measured} |" for case, done, measured in RELIABILITY_ROWS]
    out = Path(__file__).resolve().parent.parent / "artifacts" / "reliability.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    terminalreporter.section("reliability (measured by tests/test_faults.py)")
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"saved to {out}")
