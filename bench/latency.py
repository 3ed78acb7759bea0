"""Live latency: from a counter change in Redis to the ``progress`` event at N clients.

The benchmark changes the watched run's ``xTotal`` to a new marker value with the
``update_run`` verb (the Lua script writes the counter and PUBLISHes the state in one step)
and notes the monotonic time just before the call. Client processes note the monotonic time
at which each client first receives a state carrying that marker (or a later one). Both
clocks are the machine's CLOCK_MONOTONIC, so the difference is the end-to-end latency:
script + pub/sub + relay (coalescing) + Socket.IO fan-out + the client's own decoding.

Two loads: "quiet" (only the markers, 5/s: the relay emits at once) and "busy" (a
publisher also sends the state 500 times a second, as workers do at speed, so every marker
waits for the relay's next 20 Hz emit slot).
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import profiling
from bench.meters import CpuMeter
from bench.pipeline import PROFILE_SECONDS
from bench.sampling import summary_ms
from bench.sio_clients import MARKER_BASE
from optio.redis_state import RunStore, connect
from optio.testing import Proc, RedisServer, System

CLIENTS_PER_PROCESS = 500
MARKERS_PER_SECOND = 5
NOISE_PER_SECOND = 500
GOAL_P99_MS = 100.0
#: BENCH_PIN_CLIENTS=1 runs the client processes on the last core only (measured: no
#: difference on an idle 2-core machine, so off by default).
PIN_CLIENTS = os.environ.get("BENCH_PIN_CLIENTS", "0") == "1"


class Clients:
    """COUNT Socket.IO clients spread over a few processes."""

    def __init__(self, base: str, count: int, work: Path) -> None:
        self.procs: list[Proc] = []
        procs = math.ceil(count / CLIENTS_PER_PROCESS)
        for i in range(procs):
            share = count // procs + (1 if i < count % procs else 0)
            args = [sys.executable, "-m", "bench.sio_clients", base, str(share)]
            self.procs.append(
                Proc(
                    f"clients-{count}-{i}",
                    args,
                    {**os.environ, "PYTHONUNBUFFERED": "1"},
                    work,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for proc in self.procs:
            # Real clients are elsewhere: keep ours off the web process's core where we can.
            if PIN_CLIENTS and (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(proc.pid, {(os.cpu_count() or 1) - 1})
        for proc in self.procs:
            line = _readline(proc, 300)
            if not line.startswith("READY"):
                raise RuntimeError(f"{proc.name} did not connect: {line!r}; see {proc.log_path}")

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.procs}

    def dump(self) -> list[dict[str, Any]]:
        out = []
        for proc in self.procs:
            proc.popen.stdin.write(b"dump\n")
            proc.popen.stdin.flush()
        for proc in self.procs:
            out.append(json.loads(_readline(proc, 120)))
        return out

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.popen.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            proc.stop()


def _readline(proc: Proc, timeout: float) -> str:
    out = proc.popen.stdout
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([out], [], [], 1.0)
        if ready:
            chunk = out.readline()
            if not chunk:
                break
            buf += chunk
            if buf.endswith(b"\n"):
                return buf.decode().strip()
        elif not proc.alive():
            break
    raise TimeoutError(f"no line from {proc.name} within {timeout:.0f} s; see {proc.log_path}")


class Markers:
    """Writes increasing marker values into the watched run's xTotal."""

    def __init__(self, url: str) -> None:
        self.store = RunStore(connect(url))
        self.next = MARKER_BASE

    def send_for(self, seconds: float) -> dict[int, float]:
        sent: dict[int, float] = {}
        gap = 1.0 / MARKERS_PER_SECOND
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            self.next += 1
            sent[self.next] = time.monotonic()
            self.store.update_run(x=self.next)
            next_at += gap
            time.sleep(max(0.0, next_at - time.monotonic()))
        return sent


def latencies(sent: dict[int, float], dumps: list[dict]) -> tuple[list[float], int]:
    """Milliseconds from each marker's write to each client's first state carrying it."""
    out: list[float] = []
    missing = 0
    markers = sorted(sent)
    for dump in dumps:
        for seen in dump["first_seen"]:
            values = sorted((int(k), t) for k, t in seen.items())
            # earliest arrival of any value >= marker: suffix minimum over sorted values
            suffix: list[tuple[int, float]] = []
            best = math.inf
            for v, t in reversed(values):
                best = min(best, t)
                suffix.append((v, best))
            suffix.reverse()
            i = 0
            for m in markers:
                while i < len(suffix) and suffix[i][0] < m:
                    i += 1
                if i == len(suffix):
                    missing += 1
                else:
                    out.append((suffix[i][1] - sent[m]) * 1000)
    return out, missing


def measure(
    stack: System,
    rds: RedisServer,
    counts: list[int],
    seconds: float,
    work: Path,
    prof_dir: Path | None,
) -> dict:
    store = RunStore(connect(rds.url))
    if store.active_run_id():
        store.stop_run()
    store.start_run(MARKER_BASE, 0.001)  # one job now, then none for ~16 hours
    markers = Markers(rds.url)
    web_pid = stack.procs["web"].pid
    results: dict[str, Any] = {}
    try:
        for count in counts:
            t0 = time.monotonic()
            clients = Clients(stack.base, count, work)
            connect_s = time.monotonic() - t0
            row: dict[str, Any] = {"clients": count, "connect_s": round(connect_s, 1)}
            try:
                time.sleep(1.0)
                for load in ("quiet", "busy"):
                    row[load] = _phase(rds, markers, clients, web_pid, load, seconds)
                worst = max(row["quiet"]["p99_ms"] or 0, row["busy"]["p99_ms"] or 0)
                if prof_dir is not None and count == max(counts) and worst >= GOAL_P99_MS:
                    row["web_profile"] = _profile_busy(rds, markers, web_pid, prof_dir)
            finally:
                clients.close()
            results[str(count)] = row
    finally:
        if store.active_run_id():
            store.stop_run()
    return results


def _phase(rds, markers, clients, web_pid, load: str, seconds: float) -> dict:
    noise = None
    if load == "busy":
        noise = _noise(rds, seconds + 3)
        time.sleep(0.5)
    clients.dump()  # start each phase with the client processes' buffers emptied
    meter = CpuMeter({"web": web_pid, "redis": rds.pid, **clients.pids()}).start()
    sent = markers.send_for(seconds)
    time.sleep(1.0)  # let the last markers arrive
    cpu = meter.stop()
    dumps = clients.dump()
    if noise is not None:
        _finish(noise)
    values, missing = latencies(sent, dumps)
    return {
        **summary_ms(values),
        "markers": len(sent),
        "missing": missing,
        "connected": sum(d["connected"] for d in dumps),
        "cpu": cpu,
    }


def _noise(rds: RedisServer, seconds: float) -> Proc:
    args = [sys.executable, "-m", "bench.noise", rds.url, str(NOISE_PER_SECOND), str(seconds)]
    return Proc("noise", args, dict(os.environ), rds.dir)


def _finish(proc: Proc) -> None:
    """Let ``proc`` end by itself (30 s at most), then end its group."""
    try:
        proc.popen.wait(30)
    except subprocess.TimeoutExpired:
        pass
    proc.stop()


def _profile_busy(rds, markers, web_pid: int, prof_dir: Path) -> dict:
    """Profile the web process under the busy load (markers keep going, not measured)."""
    from threading import Thread

    noise = _noise(rds, PROFILE_SECONDS + 4)
    sender = Thread(target=markers.send_for, args=(PROFILE_SECONDS + 2,), daemon=True)
    sender.start()
    try:
        return profiling.profile({"web": web_pid}, PROFILE_SECONDS, prof_dir)
    finally:
        sender.join(30)
        _finish(noise)
