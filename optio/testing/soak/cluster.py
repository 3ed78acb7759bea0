"""The soak's system and its supervisor: its own redis-server with an append-only file, the
web process, two workers with ``-c 2`` and beat, each in a process group of its own; a process
the chaos killed is started again as a supervisor would (a worker under a new node name)."""

from __future__ import annotations

import functools
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optio.names import LAST_TICK_KEY
from optio.testing.procs import Proc, RedisServer, children, wait_for
from optio.testing.system import System

#: A log record of level ERROR or CRITICAL ("[2026-12-05 01:57:38,171: CRITICAL/MainProcess] ...").
_RECORD = re.compile(r"^\[[^\]]*: (CRITICAL|ERROR)/")
#: The two worker slots; a restarted worker is named ``worker-a-2``, ``worker-a-3`` ...
WORKERS = ("worker-a", "worker-b")
CONCURRENCY = 2


class Cluster:
    """Redis, web, two workers and beat; ``workers[i]`` is the live worker of slot i."""

    def __init__(self, work: Path, env: dict[str, Any]) -> None:
        self.server = RedisServer(work / "redis", persistent=True)
        self.system = System(f"{self.server.url}/0", work / "logs", **env)
        self.workers: list[Proc] = []
        self.started = [0] * len(WORKERS)

    def start(self) -> None:
        self.system.start_web()
        for slot in range(len(WORKERS)):
            self.workers.append(self._start_worker(slot))
        self.system.start_beat()
        wait_for(lambda: all(self._pool_up(w) for w in self.workers), 30, "the pools")
        wait_for(lambda: self.system.get("/api/health").status_code == 200, 60, "a healthy system")

    @staticmethod
    def _pool_up(worker: Proc) -> bool:
        return len(children(worker.pid)) >= CONCURRENCY

    def _start_worker(self, slot: int) -> Proc:
        self.started[slot] += 1
        n = self.started[slot]
        name = WORKERS[slot] if n == 1 else f"{WORKERS[slot]}-{n}"
        return self.system.start_worker(name, CONCURRENCY)

    def restart_worker(self, slot: int) -> Proc:
        """A new worker in ``slot`` once the old one is gone (its group ended)."""
        self.workers[slot].stop(timeout=5)
        self.workers[slot] = self._start_worker(slot)
        return self.workers[slot]

    @property
    def web(self) -> Proc:
        return self.system.procs["web"]

    @property
    def beat(self) -> Proc:
        return self.system.procs["beat"]

    def restart_web(self) -> None:
        self.system.start_web()

    def restart_beat(self) -> None:
        """Beat again; returns once it has ticked (``optio:last_tick`` moved)."""
        before = self.last_tick()
        self.beat.stop(timeout=5)
        self.system.start_beat()
        wait_for(lambda: self.last_tick() not in (before, None), 60, "beat to tick again")

    def last_tick(self) -> str | None:
        try:
            return self.system.redis.get(LAST_TICK_KEY)
        except Exception:
            return None

    def supervise(self) -> list[dict[str, Any]]:
        """Start again, as a supervisor would, every process that exited on its own (not by the
        chaos, which restarts what it kills); returns what exited, with its last error line."""
        exited = []
        for slot, worker in enumerate(self.workers):
            if not worker.alive():
                exited.append(_restarted(worker, functools.partial(self.restart_worker, slot)))
        if not self.beat.alive():
            exited.append(_restarted(self.beat, self.restart_beat))
        if not self.web.alive():
            self.web.stop()
            exited.append(_restarted(self.web, self.restart_web))
        return exited

    def groups(self) -> dict[str, list[int]]:
        """Every live optio process by role: web, each worker (main process, then its pool),
        beat."""
        out = {"web": [self.web.pid], "beat": [self.beat.pid]}
        for worker in self.workers:
            out[worker.name] = [worker.pid, *children(worker.pid)]
        return out

    def stop(self) -> None:
        for worker in self.workers:
            worker.signal(signal.SIGCONT)  # a frozen group ends too
        self.system.stop_all()
        self.server.stop()


def _restarted(proc: Proc, restart: Callable[[], object]) -> dict[str, Any]:
    """What a process that exited said last (its exit code, its last CRITICAL or ERROR line),
    once ``restart`` started it again."""
    error = last_error(proc.log())
    began = time.monotonic()
    restart()
    return {
        "process": proc.name,
        "pid": proc.pid,
        "exit_code": proc.popen.returncode,
        "last_error": error[:300],
        "restart_s": round(time.monotonic() - began, 2),
    }


def last_error(log: str) -> str:
    """The last CRITICAL log record of a process's log (Celery's "Unrecoverable error: ..."),
    else its last ERROR record; empty when it has neither."""
    records = [line for line in log.splitlines() if _RECORD.match(line)]
    critical = [line for line in records if "CRITICAL/" in line]
    return (critical or records or [""])[-1]
