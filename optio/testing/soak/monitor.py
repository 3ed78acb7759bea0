"""Samples taken while the soak runs: the run's counts every half second, and every few seconds
the memory of the web and worker processes (RSS) and of Redis: ``used_memory``, and its working
set, which is all but the run's results, attempts and done bitmap (they grow with the jobs by
design): ``used_memory_overhead`` (clients and their buffers, the append-only file's buffer, the
keyspace's own tables) plus ``MEMORY USAGE`` of every other key (the queues, Celery's
unacknowledged messages, the run's state, messages, leases and owners, heartbeats...)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optio.names import attempts_key, done_key, results_key, run_key
from optio.testing.soak.cluster import Cluster

STATE_EVERY_S = 0.5
MEMORY_EVERY_S = 5.0
#: Fields of the run hash sampled.
FIELDS = ("status", "processed", "failed", "enqueued")


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class Monitor:
    """Samples of ``run_id`` on ``cluster`` until ``stop()``; each sample is (time, values)."""

    cluster: Cluster
    run_id: str
    states: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    memory: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Monitor:
        self._thread = threading.Thread(target=self._run, name="soak-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        next_memory = 0.0
        while not self._stop.wait(STATE_EVERY_S):
            now = time.time()
            try:
                self.states.append((now, self.state()))
            except Exception:
                pass  # Redis restarting or refusing: no sample this second
            if now >= next_memory:
                next_memory = now + MEMORY_EVERY_S
                try:
                    self.memory.append((now, self.sample_memory()))
                except Exception:
                    pass

    def state(self) -> dict[str, Any]:
        values = self.cluster.system.redis.hmget(run_key(self.run_id), FIELDS)
        state: dict[str, Any] = {"status": values[0]}
        state.update({name: int(v or 0) for name, v in zip(FIELDS[1:], values[1:], strict=True)})
        return state

    def sample_memory(self) -> dict[str, int]:
        groups = self.cluster.groups()
        out = {
            "web_rss": rss_bytes(groups["web"][0]),
            "workers_rss": sum(
                rss_bytes(pid)
                for name, pids in groups.items()
                if name.startswith("worker")
                for pid in pids
            ),
        }
        client = self.cluster.system.redis
        memory = client.info("memory")
        working = int(memory["used_memory_overhead"])
        grown = {results_key(self.run_id), attempts_key(self.run_id), done_key(self.run_id)}
        for key in client.scan_iter(count=1000):
            if key not in grown:
                working += int(client.memory_usage(key, samples=0) or 0)
        out["redis_used"] = int(memory["used_memory"])
        out["redis_working_set"] = working
        return out
