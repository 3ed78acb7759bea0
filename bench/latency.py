"""Live latency: from a counter change in Redis to the ``progress`` event at N clients, served
by one web process or spread over two.

The benchmark changes the watched run's ``xTotal`` to a new marker value with the
``update_run`` verb (the Lua script writes the counter and PUBLISHes the state in one step)
STATES_PER_SECOND times a second, and notes the monotonic time just before each call. One
Node.js process (``bench/sio_clients.js``, socket.io-client) drives every client and notes the
monotonic time at which each client first receives a state carrying that marker (or a later
one). Both clocks are the machine's CLOCK_MONOTONIC, so the difference is the end-to-end
latency: script + pub/sub + relay + Socket.IO fan-out + the client's own decoding. Nothing else
is published, so every marker is emitted at once: each one is a fan-out to every client.

Each configuration runs twice: with the web process as it is ("now": permessage-deflate
declined, the young-generation GC threshold of ``optio/serve.py``) and as it was before
(``bench/web_before.py``: permessage-deflate accepted, Python's default GC thresholds). The
web processes are started for the benchmark, without worker or beat (the run's state changes
only by the markers).
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench import profiling
from bench.meters import CpuMeter, rss
from bench.pipeline import PROFILE_SECONDS
from bench.sampling import summary_ms
from optio.redis_state import RunStore, connect
from optio.testing import ROOT, Proc, RedisServer, System

#: Values of xTotal at or above this are latency markers (as in bench/sio_clients.js).
MARKER_BASE = 1_000_000_000
STATES_PER_SECOND = 10
GOAL_P99_MS = 100.0
#: Web processes the clients are spread over, in turn.
WEB_COUNTS = (1, 2)
#: (label, module run as the web process, its environment): optio's web process as it is,
#: then as it was before the web-tier changes.
VARIANTS = (
    ("now", "optio.serve", {}),
    ("before", "bench.web_before", {"OPTIO_WS_COMPRESSION": "1"}),
)
DRIVER = ROOT / "bench" / "sio_clients.js"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("the latency benchmark needs Node.js (`node`) on PATH")
    if not (ROOT / "node_modules" / "socket.io-client").is_dir():
        raise RuntimeError(f"socket.io-client is missing: run `npm ci` in {ROOT}")
    return found


def versions() -> dict[str, str]:
    done = subprocess.run([node(), "--version"], capture_output=True, text=True, timeout=10)
    package = json.loads((ROOT / "node_modules" / "socket.io-client" / "package.json").read_text())
    return {"node": done.stdout.strip().lstrip("v"), "socket.io-client": package["version"]}


class Clients:
    """COUNT socket.io-client clients in one Node.js process, spread in turn over ``urls``."""

    def __init__(self, urls: list[str], count: int, work: Path) -> None:
        self.proc = Proc(
            f"clients-{count}-{len(urls)}web",
            [node(), str(DRIVER), str(count), *urls],
            dict(os.environ),
            work,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        line = _readline(self.proc, 300)
        if not line.startswith("READY"):
            self.close()
            raise RuntimeError(f"the clients did not connect: {line!r}; see {self.proc.log_path}")

    def dump(self) -> dict[str, Any]:
        """What the clients saw since the previous dump."""
        self.proc.popen.stdin.write(b"dump\n")
        self.proc.popen.stdin.flush()
        return json.loads(_readline(self.proc, 120))

    def close(self) -> None:
        try:
            self.proc.popen.stdin.close()
        except OSError:
            pass
        try:
            self.proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            pass
        self.proc.stop()


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
        self.store = RunStore(connect(url, timeout=5))
        self.next = MARKER_BASE

    def send_for(self, seconds: float) -> dict[int, float]:
        sent: dict[int, float] = {}
        gap = 1.0 / STATES_PER_SECOND
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            self.next += 1
            sent[self.next] = time.monotonic()
            self.store.runs.update_run(x=self.next)
            next_at += gap
            time.sleep(max(0.0, next_at - time.monotonic()))
        return sent


def latencies(sent: dict[int, float], seen: list[list[float]]) -> tuple[list[float], int]:
    """Milliseconds from each marker's write to one client's first state carrying it (or a
    later marker), for a client's ``seen`` [[value, time], ...]; and the markers it missed."""
    out: list[float] = []
    missing = 0
    # earliest arrival of any value >= marker: suffix minimum over the values, sorted
    suffix: list[tuple[int, float]] = []
    best = math.inf
    for value, t in sorted(seen, reverse=True):
        best = min(best, t)
        suffix.append((int(value), best))
    suffix.reverse()
    i = 0
    for marker in sorted(sent):
        while i < len(suffix) and suffix[i][0] < marker:
            i += 1
        if i == len(suffix):
            missing += 1
        else:
            out.append((suffix[i][1] - sent[marker]) * 1000)
    return out, missing


def measure(
    rds: RedisServer,
    counts: list[int],
    seconds: float,
    work: Path,
    prof_dir: Path | None,
) -> dict[str, Any]:
    store = RunStore(connect(rds.url, timeout=5))
    for run_id in store.runs.active_run_ids():
        store.runs.stop_run(run_id)
    store.runs.start_run(MARKER_BASE, 0.001)  # one job due now (no worker runs it), then none
    markers = Markers(rds.url)
    results: dict[str, Any] = {
        "states_per_s": STATES_PER_SECOND,
        "seconds": seconds,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        **versions(),
        "rows": [],
    }
    webs = {}
    try:
        for label, module, env in VARIANTS:
            webs[label] = [
                _web(rds.url, work, f"web-{label}-{i + 1}", module, env)
                for i in range(max(WEB_COUNTS))
            ]
        # the variants take turns, so that both see about the same load from the rest of the
        # machine
        for count in counts:
            for n in WEB_COUNTS:
                for label, _, _ in VARIANTS:
                    profile = None
                    if prof_dir is not None and count == max(counts) and n == 1:
                        profile = prof_dir / f"web-{label}"
                    print(
                        f"bench: latency, {count:,} clients on {n} web process(es) ({label})",
                        flush=True,
                    )
                    row = _row(rds, markers, webs[label][:n], count, seconds, work, profile)
                    row["variant"] = label
                    results["rows"].append(row)
    finally:
        for started in webs.values():
            for web in started:
                web.stop_all()
        for run_id in store.runs.active_run_ids():
            store.runs.stop_run(run_id)
        results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return results


def _web(redis_url: str, work: Path, name: str, module: str, env: dict[str, str]) -> System:
    """One web process on a port of its own, logging warnings only (as in bench/stack.py)."""
    system = System(redis_url, work / name, tick_seconds=None, log_level="WARNING", **env)
    system.start_web(module)
    return system


def _row(rds, markers, webs: list[System], count: int, seconds: float, work, profile) -> dict:
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    clients = Clients([w.base for w in webs], count, work)
    connect_s = time.monotonic() - t0
    try:
        time.sleep(1.0)  # the states sent on connect are in
        clients.dump()  # start with the clients' records emptied
        pids = {f"web-{i + 1}": w.procs["web"].pid for i, w in enumerate(webs)}
        rss_bytes = rss(pids)
        meter = CpuMeter({**pids, "clients": clients.proc.pid, "redis": rds.pid}).start()
        sent = markers.send_for(seconds)
        time.sleep(1.0)  # let the last markers arrive
        cpu = meter.stop()
        seen = clients.dump()
        values: list[float] = []
        per_web: list[list[float]] = [[] for _ in webs]
        missing = 0
        for client in seen["clients"]:
            got, lost = latencies(sent, client["first_seen"])
            values += got
            per_web[client["url"]] += got
            missing += lost
        row: dict[str, Any] = {
            "clients": count,
            "webs": len(webs),
            **summary_ms(values),
            "per_web": [summary_ms(v) for v in per_web],
            "markers": len(sent),
            "missing": missing,
            "connected": seen["connected"],
            "extensions": seen["extensions"],
            "connect_s": round(connect_s, 1),
            "load_average_1m": round(load, 2),
            "web_rss_bytes": rss_bytes,
            "cpu": cpu,
        }
        if profile is not None:
            row["web_profile"] = _profile(markers, pids["web-1"], profile)
        return row
    finally:
        clients.close()


def _profile(markers: Markers, web_pid: int, out: Path) -> dict:
    """Profile the web process while markers keep going (not measured)."""
    sender = threading.Thread(target=markers.send_for, args=(PROFILE_SECONDS + 2,), daemon=True)
    sender.start()
    try:
        return profiling.profile({"web": web_pid}, PROFILE_SECONDS, out)
    finally:
        sender.join(30)
