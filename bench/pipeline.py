"""Throughput figures: optio's ceiling vs bare Celery, batched rates, API under load, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench import profiling
from bench.bare_celery import QUEUE as BARE_QUEUE
from bench.brokers import RabbitBroker, RedisBroker
from bench.meters import CpuMeter, rss
from bench.sampling import CounterSampler, rate_between, rounded, summary_ms, value_at
from bench.stack import CONCURRENCY
from optio.names import JOBS_QUEUE, done_key, results_key, run_key
from optio.testing import Proc, RedisServer, System, children, start, wait_finished, wait_for
from optio.testing import worker_args as celery_worker_args

#: Far above what 2 cores can do with one message per job (OPTIO_MAX_Y's default).
CEILING_Y = 1_000_000.0
#: Far above what 2 cores can do with batches (the bench raises OPTIO_MAX_Y to allow it).
BATCHED_CEILING_Y = 6_000_000.0
PROFILE_SECONDS = 10

Broker = RedisBroker | RabbitBroker


def drain(broker: Broker, queues: tuple[str, ...], timeout: float = 120) -> None:
    """Wait until no message is waiting (left over from a stopped run)."""
    wait_for(
        lambda: sum(broker.waiting(q) for q in queues) == 0,
        timeout,
        "the queues to drain",
        interval=0.2,
    )


def redis_commandstats(client: redis.Redis) -> dict[str, dict[str, float]]:
    stats = client.info("commandstats")
    out = {}
    for name, v in stats.items():
        if v.get("calls", 0) >= 100:
            out[name.removeprefix("cmdstat_")] = {
                "calls": v["calls"],
                "usec_per_call": v["usec_per_call"],
                "usec": v["usec"],
            }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["usec"]))


def _steady_rate(rows, field: str, total: int) -> float | None:
    """Rate between the moments the counter passed 20 % and 80 % of ``total``."""
    t20 = next((t for t, row in rows if row[field] >= 0.2 * total), None)
    t80 = next((t for t, row in rows if row[field] >= 0.8 * total), None)
    if t20 is None or t80 is None or t80 <= t20:
        return None
    return rate_between(rows, t20, t80, field)


# -- 1. ceiling, optio side -------------------------------------------------------------------


def optio_ceiling(
    stack: System, rds: RedisServer, n: int, prof_dir: Path | None, broker: Broker | None = None
) -> dict:
    """n jobs, one message each, at a rate far above capacity: jobs/s from start to last count."""
    broker = broker or RedisBroker(rds)
    client = rds.client
    client.config_resetstat()
    meter = CpuMeter({**stack.pids(), "redis": rds.pid, **broker.pids()}).start()
    run_id = start(stack, n, CEILING_Y)
    sampler = CounterSampler(rds.url, run_id, 0.25).start()
    h = wait_finished(stack, run_id, max(180.0, n / 50), poll_redis=True)
    rows = sampler.stop()
    cpu = meter.stop()
    seconds = (h["finishedAt"] - h["startedAt"]) / 1000
    out: dict[str, Any] = {
        "jobs": n,
        "processed": h["processed"],
        "seconds": round(seconds, 3),
        "jobs_per_s": round(h["processed"] / seconds, 1),
        "steady_jobs_per_s": rounded(_steady_rate(rows, "processed", n), 1),
        "cpu": cpu,
        "redis_commandstats": redis_commandstats(client),
    }
    if prof_dir is not None:
        out["profile"] = _profile_run(stack, broker, n, CEILING_Y, prof_dir)
    return out


def _profile_run(stack: System, broker: Broker, x: int, y: float, out: Path) -> dict:
    """A second run like the measured one, profiled (so the profiler slows no measured run)."""
    start(stack, x, y)
    time.sleep(3)
    pids = {k: v for k, v in stack.pids().items() if k.startswith("worker")}
    result = profiling.profile(pids, PROFILE_SECONDS, out)
    stack.post("/api/stop")
    drain(broker, (JOBS_QUEUE,))
    return result


# -- 1. ceiling, bare Celery side -------------------------------------------------------------


def _publish(env: dict[str, str], n: int, work: Path) -> Proc:
    args = [sys.executable, "-m", "bench.bare_celery", str(n)]
    return Proc("bare-publisher", args, env, work, stdout=subprocess.PIPE)


def _wait_bare_done(broker: Broker, pub: Proc, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pub.alive() and broker.waiting(BARE_QUEUE) == 0:
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError("bare Celery did not finish its jobs in time")


def bare_ceiling(
    rds: RedisServer, work: Path, n: int, prof_dir: Path | None, broker: Broker | None = None
) -> dict:
    """n no-op tasks through a bare Celery worker of the same concurrency on the same broker."""
    broker = broker or RedisBroker(rds)
    work = work / "bare"
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_BROKER_URL": broker.url, "PYTHONUNBUFFERED": "1"}
    args = celery_worker_args("bare", CONCURRENCY, heartbeat=False, app="bench.bare_celery")
    worker = Proc("bare-worker", args, env, work)
    try:
        wait_for(lambda: "ready." in worker.log(), 60, "the bare worker to be ready")
        wait_for(lambda: len(children(worker.pid)) >= CONCURRENCY, 30, "the bare worker's pool")
        client = rds.client
        client.config_resetstat()
        pids = {"worker": worker.pid, "redis": rds.pid, **broker.pids()}
        pids.update({f"worker-child-{i}": p for i, p in enumerate(children(worker.pid))})
        meter = CpuMeter(pids).start()
        pub = _publish(env, n, work)
        end = _wait_bare_done(broker, pub, timeout=max(180.0, n / 50))
        cpu = meter.stop()
        begun, ended, pub_cpu = (float(v) for v in pub.popen.stdout.read().split())
        pub.stop()
        cpu["cpu_s"]["publisher"] = round(pub_cpu, 3)
        seconds = end - begun
        out: dict[str, Any] = {
            "jobs": n,
            "seconds": round(seconds, 3),
            "jobs_per_s": round(n / seconds, 1),
            "publish_per_s": round(n / (ended - begun), 1),
            "cpu": cpu,
            "redis_commandstats": redis_commandstats(client),
        }
        if prof_dir is not None:
            pub = _publish(env, n, work)
            time.sleep(2)
            pids = {"worker": worker.pid}
            pids.update({f"worker-child-{i}": p for i, p in enumerate(children(worker.pid))})
            out["profile"] = profiling.profile(pids, PROFILE_SECONDS, prof_dir)
            _wait_bare_done(broker, pub, timeout=max(180.0, n / 50))
            pub.stop()
        return out
    finally:
        worker.stop()


# -- 2. batched: y = BATCHED_Y (cli.py) -------------------------------------------------------


def batched(
    stack: System, rds: RedisServer, x: int, y: float, broker: Broker | None = None
) -> tuple[dict, str]:
    """x jobs at y/min with the default batching: do enqueued and processed keep pace?"""
    broker = broker or RedisBroker(rds)
    client = rds.client
    client.config_resetstat()
    meter = CpuMeter({**stack.pids(), "redis": rds.pid, **broker.pids()}).start()
    t_post = time.monotonic()
    run_id = start(stack, x, y)
    sampler = CounterSampler(rds.url, run_id, 0.5).start()
    ideal = (x - 1) * 60 / y
    h = wait_finished(stack, run_id, 3 * ideal + 120, poll_redis=True)
    rows = sampler.stop()
    cpu = meter.stop()
    seconds = (h["finishedAt"] - h["startedAt"]) / 1000
    per_s = y / 60
    lag = max((row["enqueued"] - row["processed"] for _, row in rows), default=0)
    behind = max((min(x, 1 + (t - t_post) * per_s) - row["enqueued"] for t, row in rows), default=0)
    t_end = rows[-1][0] if rows else t_post
    # the steady part: from 5 s in until the last job was enqueued
    t_full = next((t for t, row in rows if row["enqueued"] >= x), t_end)
    t0 = t_post + 5
    return {
        "jobs": x,
        "asked_per_s": per_s,
        "seconds": round(seconds, 3),
        "ideal_seconds": round(ideal, 3),
        "jobs_per_s": round(x / seconds, 1),
        "enqueued_per_s_steady": rounded(rate_between(rows, t0, t_full, "enqueued"), 1),
        "processed_per_s_steady": rounded(rate_between(rows, t0, t_full, "processed"), 1),
        "max_enqueued_minus_processed": lag,
        "max_lag_seconds": round(lag / per_s, 3),
        "max_enqueued_behind_schedule": round(behind),
        "processed_at_last_enqueue": value_at(rows, t_full, "processed"),
        "cpu": cpu,
        "redis_commandstats": redis_commandstats(client),
        "counters_every_0_5_s": [[round(t - t_post, 2), row] for t, row in rows],
    }, run_id


def profile_batched(
    stack: System, rds: RedisServer, y: float, out: Path, broker: Broker | None = None
) -> dict:
    """Profile a run at y that lasts past the profile's window (3 s in, PROFILE_SECONDS long)."""
    x = int(y / 60 * (3 + PROFILE_SECONDS + 2))
    return _profile_run(stack, broker or RedisBroker(rds), x, y, out)


# -- 6. memory --------------------------------------------------------------------------------


def memory(stack: System, rds: RedisServer, run_id: str, baseline: int) -> dict:
    client = rds.client
    keys = {
        "run hash": run_key(run_id),
        "done bitmap": done_key(run_id),
        "results hash": results_key(run_id),
    }
    usage = {name: client.memory_usage(key, samples=0) for name, key in keys.items()}
    info = client.info("memory")
    after = rss(stack.pids())
    return {
        "rss_bytes": after,
        "worker_total_rss_bytes": sum(v for k, v in after.items() if k.startswith("worker")),
        "redis_used_memory": info["used_memory"],
        "redis_used_memory_before_run": baseline,
        "redis_used_memory_rss": info["used_memory_rss"],
        "key_bytes": usage,
        "bitmap_strlen": client.strlen(keys["done bitmap"]),
        "results_fields": client.hlen(keys["results hash"]),
        "results_ttl_s": client.ttl(keys["results hash"]),
        "results_encoding": client.object("encoding", keys["results hash"]),
    }


# -- 5. API under load ------------------------------------------------------------------------


def status_probe(stack: System, seconds: float, per_second: float) -> dict:
    port = stack.base.rsplit(":", 1)[1]
    args = [sys.executable, "-m", "bench.status_probe", "127.0.0.1", port]
    args += [str(seconds), str(per_second)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    data = json.loads(done.stdout)
    return {**summary_ms(data["latencies_ms"]), "errors": data["error_count"]}


def api_under_load(stack: System, rds: RedisServer, seconds: float, prof_dir: Path | None):
    """GET /api/status at 50/s, idle and while the default pipeline runs at its ceiling."""
    idle = status_probe(stack, min(seconds, 10), 50)
    run_id = start(stack, 10_000_000, BATCHED_CEILING_Y)
    sampler = CounterSampler(rds.url, run_id, 0.5).start()
    time.sleep(3)
    t0 = time.monotonic()
    meter = CpuMeter({**stack.pids(), "redis": rds.pid}).start()
    busy = status_probe(stack, seconds, 50)
    cpu = meter.stop()
    t1 = time.monotonic()
    web_profile = None
    if prof_dir is not None and (busy["p99_ms"] or 0) >= 10:
        web_profile = _web_profile(stack, prof_dir)
    rows = sampler.stop()
    stack.post("/api/stop")
    drain(RedisBroker(rds), (JOBS_QUEUE,))
    return {
        "asked_per_min": BATCHED_CEILING_Y,
        "idle": idle,
        "at_ceiling": busy,
        "ceiling_processed_per_s": rounded(rate_between(rows, t0, t1, "processed"), 1),
        "ceiling_enqueued_per_s": rounded(rate_between(rows, t0, t1, "enqueued"), 1),
        "cpu": cpu,
        "web_profile": web_profile,
    }


def _web_profile(stack: System, prof_dir: Path) -> dict:
    """Profile the web process while the probe runs again (only when the goal was missed)."""
    port = stack.base.rsplit(":", 1)[1]
    args = [sys.executable, "-m", "bench.status_probe", "127.0.0.1", port]
    args += [str(PROFILE_SECONDS + 2), "50"]
    probe = Proc("status-probe", args, dict(os.environ), stack.log_dir)
    try:
        return profiling.profile({"web": stack.procs["web"].pid}, PROFILE_SECONDS, prof_dir)
    finally:
        probe.popen.wait(PROFILE_SECONDS + 60)
        probe.stop()
