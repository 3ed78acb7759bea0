"""optio's processes (the Procfile's web, worker and beat) against one Redis database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from optio.store.connection import client_for
from optio.testing.procs import (
    ROOT,
    Proc,
    celery_args,
    children,
    free_port,
    wait_for,
    worker_args,
)

#: OPTIO_TICK_SECONDS of the systems tests start (short ticks keep tests short).
TEST_TICK_SECONDS = 0.5


class System:
    """The web, worker and beat processes against one Redis database, each in its own group.

    ``tick_seconds``: OPTIO_TICK_SECONDS (TEST_TICK_SECONDS; None: optio's default or the
    caller's environment). ``log_level``: OPTIO_LOG_LEVEL of every process (None: optio's
    default). ``env``: more environment for every process.
    """

    def __init__(
        self,
        redis_url: str,
        log_dir: Path,
        *,
        tick_seconds: float | None = TEST_TICK_SECONDS,
        log_level: str | None = None,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.redis_url = redis_url
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        chosen = {"OPTIO_TICK_SECONDS": tick_seconds, "OPTIO_LOG_LEVEL": log_level}
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "OPTIO_HOST": "127.0.0.1",
            "OPTIO_CORS_ORIGINS": f"{self.base},http://localhost:{self.port}",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),  # workers import job functions from tests/
            **{name: str(value) for name, value in chosen.items() if value is not None},
            **env,
        }
        self.procs: dict[str, Proc] = {}
        self.redis = client_for(redis_url, decode_responses=True)
        #: where the test job functions record their executions (tests/fault_jobs.py):
        #: OPTIO_TEST_REDIS_URL when set, else REDIS_URL
        records = self.env.get("OPTIO_TEST_REDIS_URL")
        self.records = client_for(records, decode_responses=True) if records else self.redis

    def start_web(self, module: str = "optio.serve") -> Proc:
        """The web process, ``python -m module`` (the benchmark runs a variant of optio.serve)."""
        proc = Proc("web", [sys.executable, "-m", module], self.env, self.log_dir)
        self.procs["web"] = proc
        wait_for(
            lambda: requests.get(f"{self.base}/api/health", timeout=1).status_code in (200, 503),
            30,
            "the web process to answer",
        )
        return proc

    def start_worker(
        self,
        name: str = "worker",
        concurrency: int = 2,
        *extra: str,
        heartbeat: bool = True,
        **env: str,
    ) -> Proc:
        """A ``celery worker`` (``extra``: more arguments, e.g. "-P", "threads"; ``heartbeat``:
        False adds ``--without-heartbeat``; ``env``: more environment for this process only)."""
        args = [*worker_args(name, concurrency, heartbeat=heartbeat), *extra]
        proc = Proc(name, args, {**self.env, **env}, self.log_dir)
        self.procs[name] = proc
        wait_for(lambda: "ready." in proc.log(), 60, f"{name} to be ready")
        return proc

    def start_beat(self, name: str = "beat") -> Proc:
        schedule = self.log_dir / f"{name}-schedule"
        args = celery_args("beat", "-l", "INFO", "-s", str(schedule))
        proc = Proc(name, args, self.env, self.log_dir)
        self.procs[name] = proc
        return proc

    def start_all(self, *, concurrency: int = 2, heartbeat: bool = True) -> System:
        self.start_web()
        self.start_worker(concurrency=concurrency, heartbeat=heartbeat)
        self.start_beat()
        wait_for(lambda: self.get("/api/health").status_code == 200, 60, "a healthy system")
        return self

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.redis.close()
        self.records.close()

    def __enter__(self) -> System:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def pids(self) -> dict[str, int]:
        """Every process by name, the pool children of ``worker`` as ``worker-child-N``."""
        out = {name: proc.pid for name, proc in self.procs.items()}
        if "worker" in self.procs:
            for i, child in enumerate(children(self.procs["worker"].pid)):
                out[f"worker-child-{i}"] = child
        return out

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, timeout=5)

    def post(self, path: str, body=None, **kw) -> requests.Response:
        return requests.post(self.base + path, json=body, timeout=5, **kw)

    def put(self, path: str, body=None, **kw) -> requests.Response:
        return requests.put(self.base + path, json=body, timeout=5, **kw)

    def ensure_idle(self) -> None:
        """Stop whatever runs a previous test left running (several may be active)."""
        for state in self.get("/api/runs?active=1").json()["runs"]:
            self.post(f"/api/runs/{state['runId']}/stop")
