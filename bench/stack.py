"""A private redis-server and the optio processes (web, worker, beat) on it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import redis

from bench.procs import VENV_BIN, Proc, children, free_port, rss_bytes, wait_for

#: Worker processes per celery worker, as in the Procfile's default on a 2-core machine.
CONCURRENCY = 2


class RedisProc:
    """redis-server on a free loopback port, without persistence; never the machine's Redis."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = shutil.which("redis-server")
        if binary is None:
            from optio.devredis import find_binary

            binary = find_binary()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(work)]
        args += ["--save", "", "--appendonly", "no"]
        self.proc = Proc("redis", args, dict(os.environ), work)
        self.client = redis.Redis.from_url(self.url, decode_responses=True)
        wait_for(self.client.ping, 15, "redis-server to answer")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def version(self) -> str:
        return self.client.info("server")["redis_version"]

    def stop(self) -> None:
        self.client.close()
        self.proc.stop()


def worker_args(app: str, name: str, queues: str | None = None) -> list[str]:
    args = [str(VENV_BIN / "celery"), "-A", app, "worker", "-l", "INFO", "-c", str(CONCURRENCY)]
    args += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if queues:
        args += ["-Q", queues]
    return args


class OptioStack:
    """web + worker + beat of optio against one Redis, each in its own process group."""

    def __init__(self, redis_url: str, work: Path, name: str, **env: str) -> None:
        self.work = work / name
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "PORT": str(self.port),
            "OPTIO_HOST": "127.0.0.1",
            "OPTIO_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.procs: dict[str, Proc] = {}

    def start(self) -> OptioStack:
        import requests

        web = Proc("web", [sys.executable, "-m", "optio.serve"], self.env, self.work)
        self.procs["web"] = web
        worker = Proc("worker", worker_args("optio.tasks", "bench"), self.env, self.work)
        self.procs["worker"] = worker
        beat_args = [str(VENV_BIN / "celery"), "-A", "optio.tasks", "beat", "-l", "INFO"]
        beat_args += ["-s", str(self.work / "beat-schedule")]
        self.procs["beat"] = Proc("beat", beat_args, self.env, self.work)
        wait_for(lambda: requests.get(self.base + "/api/status", timeout=1).ok, 30, "web")
        wait_for(lambda: "ready." in worker.log(), 60, "worker to be ready")
        wait_for(lambda: len(children(worker.pid)) >= CONCURRENCY, 30, "worker pool")
        wait_for(
            lambda: requests.get(self.base + "/api/health", timeout=2).status_code == 200,
            60,
            "a healthy optio (worker and beat heartbeats, ticks)",
        )
        return self

    def pids(self) -> dict[str, int]:
        """Every process of the stack, pool children by name ``worker-child-N``."""
        out = {name: proc.pid for name, proc in self.procs.items()}
        for i, child in enumerate(children(self.procs["worker"].pid)):
            out[f"worker-child-{i}"] = child
        return out

    def rss(self) -> dict[str, int]:
        out = {}
        for name, pid in self.pids().items():
            try:
                out[name] = rss_bytes(pid)
            except FileNotFoundError:
                out[name] = 0
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
