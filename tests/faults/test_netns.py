"""Separate hosts: Redis, a worker, and the web process (with beat) in three Linux network
namespaces joined by veth pairs on a bridge, so they meet only over real network interfaces.
A run completes exactly; cutting the worker's link for longer than its lease loses nothing
and counts nothing twice. Needs root and ``ip netns`` (skipped with the reason otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
import requests

from optio.testing import Proc, free_port, wait_for, worker_args
from optio.testing.devredis import server_args
from optio.testing.procs import celery_args
from optio.testing.runs import executions_key

SUBNET = "10.231.{}.{}"
LEASE_SECONDS = 3


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    probe = f"optio-probe-{os.getpid()}"
    try:
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"`ip netns` is not permitted here: {exc}"
    return None


class Hosts:
    """Three namespaces ("redis", "worker", "web") on a bridge that the test (root namespace)
    also sits on, each with one veth interface and an address of its own."""

    def __init__(self) -> None:
        tag = os.getpid() % 10_000
        self.net = 16 + os.getpid() % 200
        self.bridge = f"obr{tag}"
        self.names = {host: f"optio-{host}-{tag}" for host in ("redis", "worker", "web")}
        self.addr = {"redis": self.ip(2), "worker": self.ip(3), "web": self.ip(4)}
        self.inner = {host: f"o{host[:3]}{tag}" for host in self.names}  # inside the namespace
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.ip(1)}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host, ns in self.names.items():
            outer = f"{self.inner[host]}x"
            ip("netns", "add", ns)
            ip("link", "add", outer, "type", "veth", "peer", "name", self.inner[host])
            ip("link", "set", self.inner[host], "netns", ns)
            ip("link", "set", outer, "master", self.bridge)
            ip("link", "set", outer, "up")
            ip("-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", self.inner[host])
            ip("-n", ns, "link", "set", self.inner[host], "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def ip(self, last: int) -> str:
        return SUBNET.format(self.net, last)

    def run(self, host: str, args: list[str]) -> list[str]:
        """``args`` run inside ``host``'s namespace."""
        return ["ip", "netns", "exec", self.names[host], *args]

    def link(self, host: str, up: bool) -> None:
        ip("-n", self.names[host], "link", "set", self.inner[host], "up" if up else "down")

    def remove(self) -> None:
        for ns in self.names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    made = Hosts()
    try:
        yield made
    finally:
        made.remove()


def test_a_run_across_three_hosts_survives_a_cut_worker_link(hosts, tmp_path, record):
    procs: list[Proc] = []
    redis_port, web_port = free_port(), free_port()
    redis_url = f"redis://{hosts.addr['redis']}:{redis_port}/0"
    base = f"http://{hosts.addr['web']}:{web_port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PORT": str(web_port),
        "OPTIO_HOST": hosts.addr["web"],
        "OPTIO_CORS_ORIGINS": base,
        "OPTIO_TICK_SECONDS": "0.5",
        "OPTIO_LEASE_SECONDS": str(LEASE_SECONDS),
        "OPTIO_HEARTBEAT_SECONDS": "1",
        "OPTIO_JOB_FUNC": "tests.fault_jobs:counted",
        "OPTIO_JOB_SECONDS": "0.1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(os.getcwd()),
    }
    args = server_args(redis_port, tmp_path, persistent=True)
    args[args.index("--bind") + 1] = hosts.addr["redis"]
    args += ["--protected-mode", "no"]  # reachable from the other namespaces
    try:
        procs.append(Proc("redis", hosts.run("redis", args), env, tmp_path))
        client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
        wait_for(client.ping, 10, "redis-server in its namespace")
        procs.append(
            Proc("web", hosts.run("web", [sys.executable, "-m", "optio.serve"]), env, tmp_path)
        )
        schedule = str(tmp_path / "beat-schedule")
        procs.append(
            Proc(
                "beat",
                hosts.run("web", celery_args("beat", "-l", "INFO", "-s", schedule)),
                env,
                tmp_path,
            )
        )
        worker = Proc("worker", hosts.run("worker", worker_args("worker", 2)), env, tmp_path)
        procs.append(worker)
        wait_for(
            lambda: requests.get(base + "/api/health", timeout=2).status_code == 200,
            60,
            "a healthy system across the namespaces",
        )
        x = 200
        run_id = requests.post(base + "/api/run", json={"x": x, "y": 1200}, timeout=5).json()[
            "runId"
        ]
        wait_for(
            lambda: requests.get(base + "/api/status", timeout=2).json()["processed"] >= 40,
            60,
            "jobs to run",
        )
        hosts.link("worker", up=False)
        cut_at = time.monotonic()
        cut_for = 3 * LEASE_SECONDS
        # the worker is gone for the rest of the system: its leases run out and the tick sends
        # its messages again (they wait in the broker until a worker can take them)
        wait_for(
            lambda: "whose lease expired" in (tmp_path / "beat.log").read_text(),
            cut_for + 10,
            "the tick to send the cut-off worker's messages again",
        )
        time.sleep(max(0.0, cut_for - (time.monotonic() - cut_at)))  # the cut lasts cut_for s
        hosts.link("worker", up=True)
        restored_at = time.monotonic()

        def finished():
            state = requests.get(base + "/api/status", timeout=2).json()
            return not state["running"] and state

        state = wait_for(finished, 120, "the run to finish after the link is back")
        finished_after = time.monotonic() - restored_at
        ran = {int(k): int(v) for k, v in client.hgetall(executions_key(run_id)).items()}
        bits = client.bitcount(f"optio:run:{run_id}:done")
        results = client.hlen(f"optio:run:{run_id}:results")
    finally:
        for proc in reversed(procs):
            proc.stop()
    assert (state["status"], state["processed"], state["failed"]) == ("completed", x, 0)
    assert bits == x and results == x and sorted(ran) == list(range(x))
    record(
        "worker's network link cut for 3 leases (separate namespaces)",
        f"x={x}, y=1200/min, 100 ms jobs, -c 2; Redis, worker, web+beat in 3 netns; "
        f"link down {cut_for} s (lease {LEASE_SECONDS} s)",
        processed=state["processed"],
        bits=bits,
        results=results,
        executions=sum(ran.values()),
        run_twice=sum(1 for n in ran.values() if n > 1),
        finished_after_restore_s=f"{finished_after:.1f}",
    )
