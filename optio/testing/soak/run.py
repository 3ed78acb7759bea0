"""One soak: start the system, run x jobs at y/min under chaos, let the run finish, judge."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from optio.names import done_key, run_key
from optio.testing.procs import ROOT, RedisServer
from optio.testing.runs import start
from optio.testing.soak import report, verdict
from optio.testing.soak.chaos import Chaos, Fault
from optio.testing.soak.cluster import Cluster
from optio.testing.soak.monitor import Monitor
from optio.testing.soak.plan import LEASE_SECONDS, chaos_plan, size_run

RATE = 60_000.0
SEED = 337
MINUTES = 30.0
#: Memory series judged (Redis's ``used_memory`` grows with the run's results by design).
JUDGED_MEMORY = ("web_rss", "workers_rss", "redis_working_set")


def drain_seconds(seconds: float) -> float:
    """How long after its schedule's end the run may take to complete."""
    return 60.0 + 0.05 * seconds


def environment(log_url: str, seed: int) -> dict[str, str]:
    """The soak's settings of every optio process (the fault suite's, a shorter lease)."""
    return {
        "OPTIO_JOB_FUNC": "optio.testing.soak.job:run",
        "OPTIO_SOAK_LOG_URL": log_url,
        "OPTIO_SOAK_SEED": str(seed),
        "OPTIO_LEASE_SECONDS": f"{LEASE_SECONDS:g}",
        "OPTIO_HEARTBEAT_SECONDS": "1",
        "OPTIO_RETRY_BACKOFF": "0.2",
        "OPTIO_REDIS_RETRY_SECONDS": "60",
    }


def run_soak(
    minutes: float = MINUTES,
    seed: int = SEED,
    *,
    y: float = RATE,
    work: Path | None = None,
    out: Path | None = ROOT / "artifacts",
) -> dict[str, Any]:
    """The soak's report (``report["ok"]``: every check passed); written to ``out`` as
    soak-<seed>-<minutes>min.json and .md unless ``out`` is None."""
    seconds = minutes * 60
    events = chaos_plan(seed, seconds)
    x = size_run(seed, seconds, y, events)
    work = work or Path(tempfile.mkdtemp(prefix="optio-soak-"))
    print(
        f"soak: seed {seed}, {minutes:g} min, x={x:,} at y={y:,.0f}/min, "
        f"{len(events)} chaos events; logs in {work}",
        flush=True,
    )
    for folder in ("log", "redis"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    log_server = RedisServer(work / "log", persistent=False)
    cluster = Cluster(work, environment(f"{log_server.url}/0", seed))
    try:
        cluster.start()
        measured = drive(cluster, log_server.client, events, x, y, seconds)
    finally:
        cluster.stop()
        log_server.stop()
    result = conclude(measured, seed=seed, minutes=minutes, x=x, y=y, work=str(work))
    if out is not None:
        write(result, out)
    print(report.render(result), flush=True)
    return result


def drive(
    cluster: Cluster, log: redis.Redis, events: list, x: int, y: float, seconds: float
) -> dict[str, Any]:
    """Start the run, play the chaos, wait (bounded) for the run to complete, and read what
    the judging needs before the system stops."""
    run_id = start(cluster.system, x, y)
    t0 = time.time()
    monitor = Monitor(cluster, run_id).start()
    chaos = Chaos(cluster, log, run_id, x, y)

    def over() -> bool:
        last = monitor.states[-1][1]["status"] if monitor.states else "running"
        return last in ("completed", "stopped") or time.time() > t0 + seconds

    faults = chaos.play(events, t0, over)
    deadline = t0 + seconds + drain_seconds(seconds)
    while time.time() < deadline and _active(cluster, run_id):
        chaos.supervise(t0)
        time.sleep(0.5)
    time.sleep(2)  # the last samples
    monitor.stop()
    with redis.Redis.from_url(cluster.system.redis_url) as raw:  # the bitmap as bytes
        bitmap = raw.get(done_key(run_id)) or b""
    return {
        "run_id": run_id,
        "t0": t0,
        "seconds": seconds,
        "state": cluster.system.redis.hgetall(run_key(run_id)),
        "bitmap": bitmap,
        "faults": faults,
        "incidents": chaos.incidents,
        "executions": verdict.read_executions(log),
        "states": monitor.states,
        "memory": monitor.memory,
    }


def _active(cluster: Cluster, run_id: str) -> bool:
    try:
        return cluster.system.redis.hget(run_key(run_id), "status") in ("running", "paused")
    except redis.RedisError:
        return True


def missing_bits(bitmap: bytes, x: int) -> list[int]:
    return [j for j in range(x) if j // 8 >= len(bitmap) or not bitmap[j // 8] >> (7 - j % 8) & 1]


def conclude(m: dict[str, Any], **about: Any) -> dict[str, Any]:
    """The report: the run, the faults, the executions, memory, and the checks."""
    x, t0, faults = about["x"], m["t0"], m["faults"]
    jobs = verdict.by_job(m["executions"])
    judged = verdict.judge_jobs(x, jobs, faults)
    state = m["state"]
    started, finished = int(state.get("startedAt", 0)), int(state.get("finishedAt") or 0)
    run = {
        "run_id": m["run_id"],
        "status": state.get("status"),
        "processed": int(state.get("processed", 0)),
        "failed": int(state.get("failed", 0)),
        "enqueued": int(state.get("enqueued", 0)),
        "bits": sum(bin(b).count("1") for b in m["bitmap"]),
        "schedule_s": m["seconds"],
        "took_s": round((finished - started) / 1000, 1) if finished else None,
        "drain_limit_s": drain_seconds(m["seconds"]),
    }
    for fault in faults:
        if fault.kind == "undecodable":  # how the armed job's executions ended
            fault.detail["outcomes"] = [e.outcome for e in jobs.get(fault.detail["job"], [])]
    kinds = verdict.recoveries(faults, m["executions"], jobs, m["states"])
    for kind, row in kinds.items():
        row["explained_extra"] = judged["explained"].get(kind, 0)
    memory = verdict.memory_bounds(m["memory"])
    unexplained = [verdict.context(item, faults, t0) for item in judged["unexplained"]]
    missing = missing_bits(m["bitmap"], x)
    result = {
        **about,
        "lease_s": LEASE_SECONDS,
        "run": run,
        "faults": kinds,
        "executions": {k: v for k, v in judged.items() if k not in ("unexplained", "lost")},
        "unexplained": unexplained,
        "lost": judged["lost"][:100],
        "lost_count": len(judged["lost"]),
        "missing_bits": missing[:100],
        "memory": memory,
        "memory_judged": JUDGED_MEMORY,
        "memory_factor": verdict.MEMORY_FACTOR,
        "fault_log": [_relative(f, t0) for f in faults],
        "incidents": m["incidents"],
        "memory_samples": [{"t": round(t - t0, 1), **values} for t, values in m["memory"]],
        "samples": {"states": len(m["states"]), "memory": len(m["memory"])},
    }
    result["checks"] = checks(result, x)
    result["ok"] = all(c["ok"] for c in result["checks"])
    return result


def _relative(fault: Fault, t0: float) -> dict[str, Any]:
    out = fault.as_dict()
    out["start"] = round(fault.start - t0, 3)
    out["end"] = round(fault.end - t0, 3)
    return out


def checks(r: dict[str, Any], x: int) -> list[dict[str, Any]]:
    run, ex = r["run"], r["executions"]
    took, limit = run["took_s"], run["schedule_s"] + run["drain_limit_s"]
    memory = {name: r["memory"].get(name, {}) for name in JUDGED_MEMORY}
    rows = [
        (
            "the run completed",
            run["status"] == "completed" and took is not None and took <= limit,
            f"status {run['status']}, took {took} s (limit {limit:g} s)",
        ),
        (
            "processed + failed = x",
            run["processed"] + run["failed"] == x,
            f"{run['processed']:,} + {run['failed']:,} = {run['processed'] + run['failed']:,}; "
            f"x = {x:,}",
        ),
        (
            "the bitmap has x bits",
            run["bits"] == x and not r["missing_bits"],
            f"{run['bits']:,} bits; missing: {r['missing_bits'][:10]}",
        ),
        (
            "every job ran",
            not r["lost_count"] and not ex["unknown_jobs"],
            f"{r['lost_count']} never succeeded: {r['lost'][:10]}",
        ),
        (
            "every extra execution explained",
            not r["unexplained"],
            f"{ex['extra']} extra, {len(r['unexplained'])} job(s) unexplained",
        ),
    ]
    for name, bound in memory.items():
        rows.append(
            (
                f"memory bounded: {name}",
                bool(bound.get("bounded")),
                f"last third max / first third max = {bound.get('ratio')} "
                f"(limit {verdict.MEMORY_FACTOR})",
            )
        )
    return [{"name": n, "ok": bool(ok), "detail": d} for n, ok, d in rows]


def write(result: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{result['seed']}-{result['minutes']:g}min"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / f"{stem}.md").write_text(report.render(result) + "\n")
    print(f"soak: wrote {out / stem}.json and .md", flush=True)
    return out / f"{stem}.json"
