"""The chaos loop: each planned event is injected, then undone (a supervisor's restart, a
SIGCONT, Redis accepting writes again, a resume...), and logged as a ``Fault``.

Events run one after another: the next starts at its planned time or, when undoing the last
took longer, right after it. Every time is ``time.time()``, the clock of the execution log.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from optio.names import run_key
from optio.testing.procs import children, wait_for
from optio.testing.soak.cluster import Cluster
from optio.testing.soak.job import ARMED
from optio.testing.soak.plan import Event

#: Which executions a fault of each kind can hit (see verdict.py): those of the process it
#: killed ("pid"), of the worker whose group it killed or froze ("group"), every execution
#: ("all": Redis went away or refused writes), none (the others).
SCOPES = {
    "kill_pool": "pid",
    "kill_worker": "group",
    "freeze_worker": "group",
    "redis_restart": "all",
    "redis_refuse": "all",
}


@dataclass
class Fault:
    """One fault as it happened: ``start`` when it was injected, ``end`` when it was undone
    (the process back and ready, the worker resumed, Redis answering or accepting writes, the
    run resumed or back at y). ``target``: what it hit; ``pid``: the process signalled (for
    scope "group", the worker's main process, which is its process group)."""

    kind: str
    start: float
    end: float = 0.0
    target: str = ""
    pid: int = 0
    scope: str = "none"
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Chaos:
    """Injects and undoes the events of a run of ``x`` jobs at ``y``/min on ``cluster``."""

    def __init__(self, cluster: Cluster, log: redis.Redis, run_id: str, x: int, y: float) -> None:
        self.cluster = cluster
        self.log = log
        self.run_id = run_id
        self.x = x
        self.y = y
        self.faults: list[Fault] = []
        #: processes that exited on their own, started again (``supervise``)
        self.incidents: list[dict[str, Any]] = []
        self.inject: dict[str, Callable[[Event, Fault], None]] = {
            "kill_pool": self._kill_pool,
            "kill_worker": self._kill_worker,
            "kill_beat": self._kill_beat,
            "freeze_worker": self._freeze_worker,
            "redis_restart": self._redis_restart,
            "redis_refuse": self._redis_refuse,
            "web_restart": self._web_restart,
            "pause": self._pause,
            "rate_change": self._rate_change,
            "undecodable": self._undecodable,
        }

    def play(self, events: list[Event], t0: float, done: Callable[[], bool]) -> list[Fault]:
        """Every event at ``t0 + event.at`` (or later), until the run is ``done``."""
        for event in events:
            while time.time() < t0 + event.at and not done():
                self.supervise(t0)
                time.sleep(0.1)
            if done():
                break
            fault = Fault(event.kind, time.time(), scope=SCOPES.get(event.kind, "none"))
            try:
                self.inject[event.kind](event, fault)
            except Exception as exc:  # logged with the fault; the loop goes on
                fault.detail["error"] = repr(exc)
            fault.end = fault.end or time.time()
            self.faults.append(fault)
            print(f"soak: {fault.start - t0:7.1f} s {_line(fault)}", flush=True)
        return self.faults

    def supervise(self, t0: float) -> None:
        """Start again what exited on its own, and log it (an incident, not a fault)."""
        at = time.time()
        for exited in self.cluster.supervise():
            exited["at_s"] = round(at - t0, 3)
            self.incidents.append(exited)
            print(f"soak: {at - t0:7.1f} s exited on its own, restarted: {exited}", flush=True)

    def _kill_pool(self, event: Event, fault: Fault) -> None:
        worker = self.cluster.workers[event.worker]
        pool = wait_for(lambda: children(worker.pid), 30, "a pool process")
        pid = pool[event.child % len(pool)]
        fault.target, fault.pid = f"{worker.name} pool", pid
        os.kill(pid, signal.SIGKILL)
        fault.start = time.time()

        def replaced() -> bool:
            now = children(worker.pid)
            return pid not in now and len(now) >= len(pool)

        wait_for(replaced, 30, "the pool to start a new process")

    def _kill_worker(self, event: Event, fault: Fault) -> None:
        worker = self.cluster.workers[event.worker]
        fault.target, fault.pid = worker.name, worker.pid
        fault.detail["pool"] = children(worker.pid)
        os.kill(worker.pid, signal.SIGKILL)
        fault.start = time.time()
        time.sleep(event.hold)
        fault.detail["restarted_as"] = self.cluster.restart_worker(event.worker).name

    def _kill_beat(self, event: Event, fault: Fault) -> None:
        beat = self.cluster.beat
        fault.target, fault.pid = "beat", beat.pid
        beat.signal(signal.SIGKILL)
        fault.start = time.time()
        time.sleep(event.hold)
        self.cluster.restart_beat()

    def _freeze_worker(self, event: Event, fault: Fault) -> None:
        worker = self.cluster.workers[event.worker]
        fault.target, fault.pid = worker.name, worker.pid
        fault.detail["pool"] = children(worker.pid)
        worker.signal(signal.SIGSTOP)
        fault.start = time.time()
        time.sleep(event.hold)
        worker.signal(signal.SIGCONT)

    def _redis_restart(self, event: Event, fault: Fault) -> None:
        server = self.cluster.server
        fault.target, fault.pid = "redis", server.pid
        server.stop()  # SIGTERM: it writes its append-only file out and exits
        fault.detail["down_after_s"] = round(time.time() - fault.start, 2)
        time.sleep(event.hold)
        server.start()  # loads the append-only file; returns once it answers

    def _redis_refuse(self, event: Event, fault: Fault) -> None:
        client = self.cluster.server.client
        fault.target = "redis"
        client.config_set("maxmemory", "1")  # noeviction: every write answers OOM
        fault.start = time.time()
        time.sleep(event.hold)
        client.config_set("maxmemory", "0")

    def _web_restart(self, event: Event, fault: Fault) -> None:
        web = self.cluster.web
        fault.target, fault.pid = "web", web.pid
        web.stop()  # SIGTERM, SIGKILL after 15 s
        time.sleep(event.hold)
        self.cluster.restart_web()

    def _pause(self, event: Event, fault: Fault) -> None:
        fault.target = "run"
        fault.detail["pause"] = self._call("post", "/api/pause")
        time.sleep(event.hold)
        fault.detail["resume"] = self._call("post", "/api/resume")

    def _rate_change(self, event: Event, fault: Fault) -> None:
        y = round(self.y * event.params["factor"])
        fault.target, fault.detail["y"] = "run", y
        fault.detail["changed"] = self._call("put", "/api/run", {"y": y})
        time.sleep(event.hold)
        fault.detail["back"] = self._call("put", "/api/run", {"y": self.y})

    def _undecodable(self, event: Event, fault: Fault) -> None:
        """Arm the job about two seconds ahead of the last one sent."""
        enqueued = int(self.cluster.system.redis.hget(run_key(self.run_id), "enqueued") or 0)
        job = min(self.x - 1, enqueued + int(self.y / 30))
        self.log.sadd(ARMED, job)
        fault.target, fault.detail["job"] = f"job {job}", job

    def _call(self, method: str, path: str, body: Any = None) -> int:
        """An API call, tried again for up to 15 s while the web or Redis is not there."""
        system = self.cluster.system

        def answered() -> int | None:
            response = getattr(system, method)(path, body)
            return response.status_code if response.status_code < 500 else None

        try:
            return wait_for(answered, 15, f"{method} {path}", interval=0.2)
        except AssertionError:
            return 0


def _line(fault: Fault) -> str:
    what = f"{fault.kind} {fault.target}" + (f" pid {fault.pid}" if fault.pid else "")
    extra = f" {fault.detail}" if fault.detail else ""
    return f"{what}: undone after {fault.end - fault.start:.1f} s{extra}"
