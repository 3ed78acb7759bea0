"""``python -m bench``: run every measurement, write the JSON, fill the tables of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fidelity, latency, machine, pacing, pipeline, report, throttle
from bench.brokers import RabbitBroker
from bench.meters import rss
from bench.stack import CONCURRENCY, start_optio
from optio import config
from optio.testing import ROOT, RabbitServer, RedisServer
from optio.testing.soak import run as soak

PARTS = ("ceiling", "batched", "fidelity", "latency", "api", "throttle", "pacing", "soak")
#: Parts run only when ``--only`` names them (the chaos soak takes half an hour).
OPT_IN = ("soak",)
DEFAULT_PARTS = tuple(p for p in PARTS if p not in OPT_IN)
#: The keys of the results each part writes (a part not listed writes the key of its name).
PART_KEYS = {"batched": ("batched", "memory")}
#: The parts that ``--broker amqp`` runs on RabbitMQ.
RABBITMQ_PARTS = ("ceiling", "batched")
BATCHED_Y = 2_000_000.0
FIDELITY_YS = [60.0, 600.0, 6000.0, 60000.0]
#: The rate-limited server of the throttle part, one run each: [calls allowed per second, its
#: bucket's size in calls] (a bucket of 1 allows no burst at all; of the rate, one second's worth).
THROTTLE_RUNS = [[20.0, 1.0], [20.0, 5.0], [20.0, 20.0], [100.0, 100.0]]
PACING_YS = [600.0, 6000.0, 60000.0]
#: How the bench's redis-server keeps its data: as ``scripts/run.sh`` runs it (devredis: an
#: append-only file written out every second, no RDB snapshots), or not at all
#: (``--no-persistence``).
PERSISTENCE = {True: "aof everysec", False: "off"}


def settings(quick: bool, persistent: bool = True) -> dict[str, Any]:
    return {
        "quick": quick,
        "redis_persistence": PERSISTENCE[persistent],
        "ceiling_jobs": 3_000 if quick else 20_000,
        "ceiling_rounds": 1 if quick else 2,
        "batched_jobs": 200_000 if quick else 2_000_000,
        "batched_y": BATCHED_Y,
        "fidelity_window_s": 10.0 if quick else 60.0,
        "fidelity_ys": FIDELITY_YS,
        "latency_clients": [100, 1000],
        "latency_seconds": 5.0 if quick else 20.0,
        "api_seconds": 5.0 if quick else 20.0,
        "throttle_runs": THROTTLE_RUNS,
        "throttle_window_s": 20.0 if quick else 60.0,
        "pacing_ys": PACING_YS,
        "pacing_warm_up_s": pacing.WARM_UP,
        "pacing_window_s": 10.0 if quick else 30.0,
        "worker_concurrency": CONCURRENCY,
        "tick_seconds": config.SETTINGS.tick_seconds,
    }


def wait_quiet(minutes: float, below: float) -> float:
    """Wait (bounded) for the 1-minute load average to drop below ``below``; returns it."""
    deadline = time.monotonic() + minutes * 60
    load = os.getloadavg()[0]
    while load >= below and time.monotonic() < deadline:
        print(f"bench: load average {load:.2f} >= {below}; waiting for a quiet machine", flush=True)
        time.sleep(30)
        load = os.getloadavg()[0]
    return load


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def write_markdown(path: Path, results: dict[str, Any]) -> None:
    """Fill the tables of ``path`` (kept as written by hand around them) from ``results``."""
    path.write_text(report.render(results, path.read_text() if path.exists() else None))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows, for development")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma list of {PARTS} (default: all that the broker runs but {OPT_IN})",
    )
    parser.add_argument(
        "--soak-minutes", type=float, default=soak.MINUTES, help="length of the soak part's run"
    )
    parser.add_argument(
        "--soak-seed", type=int, default=soak.SEED, help="seed of the soak part's jobs and chaos"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument(
        "--no-persistence",
        action="store_true",
        help="run the bench's redis-server without persistence (default: an append-only file "
        "written out every second and no RDB snapshots, as scripts/run.sh runs Redis)",
    )
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where to write the results")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="first wait up to MINUTES for the load average to fall below 1.0",
    )
    parser.add_argument(
        "--broker",
        choices=("redis", "amqp"),
        default="redis",
        help="amqp: run the ceiling and batched parts with Celery's messages in a private "
        "RabbitMQ node (Redis keeps optio's state); their results replace only the "
        '"rabbitmq" section of benchmarks.json, beside the Redis figures already there',
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only fill the tables of BENCHMARKS.md again from the benchmarks.json in --out",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.report_only:
        out = Path(args.out)
        results = json.loads((out / "benchmarks.json").read_text())
        write_markdown(out / "BENCHMARKS.md", results)
        print(report.summary_table(results), flush=True)
        return 0
    everything = RABBITMQ_PARTS if args.broker == "amqp" else DEFAULT_PARTS
    parts = [p.strip() for p in (args.only or ",".join(everything)).split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    if args.broker == "amqp" and set(parts) - set(RABBITMQ_PARTS):
        parser.error(f"--broker amqp runs only the parts {RABBITMQ_PARTS}")
    if args.wait_quiet:
        wait_quiet(args.wait_quiet, 1.0)

    cfg = settings(args.quick, persistent=not args.no_persistence)
    cfg.update(soak_minutes=args.soak_minutes, soak_seed=args.soak_seed)
    cfg["fd_limit"] = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="optio-bench-"))
    prof = None if args.no_profile else work / "profiles"
    started = time.time()
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "settings": cfg,
        "parts": parts,
        "work_dir": str(work),
    }
    print(f"bench: logs and profiles in {work}", flush=True)
    if args.broker == "amqp":
        return _on_rabbitmq(Path(args.out), work, prof, cfg, parts, results, started)
    rds = _redis_server(work, cfg)
    try:
        results["machine"] = machine.describe(rds.version())
        _measure(rds, work, prof, cfg, parts, results)
    finally:
        rds.stop()
    results["duration_s"] = round(time.time() - started, 1)
    results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    earlier = out / "benchmarks.json"
    if not set(parts) >= set(DEFAULT_PARTS) and earlier.exists():
        results = merge(json.loads(earlier.read_text()), results, parts)
    for kept_part in ("rabbitmq", "soak"):  # --broker amqp, --only soak: kept until measured
        if earlier.exists() and kept_part not in results:
            kept = json.loads(earlier.read_text()).get(kept_part)
            if kept:
                results[kept_part] = kept
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(out / "BENCHMARKS.md", results)
    print(report.summary_table(results), flush=True)
    print(f"bench: wrote {out / 'BENCHMARKS.md'} and {out / 'benchmarks.json'}", flush=True)
    return 0


def _redis_server(work: Path, cfg: dict[str, Any]) -> RedisServer:
    """The bench's private redis-server, persistent as ``cfg`` says (its files in ``work``)."""
    persistent = cfg["redis_persistence"] != PERSISTENCE[False]
    print(f"bench: redis-server with persistence {cfg['redis_persistence']}", flush=True)
    return RedisServer(work, persistent=persistent)


def _measure(rds, work, prof, cfg, parts, results) -> None:
    """Every part of ``parts`` on the Redis ``rds``, its results into ``results``."""
    if {"batched", "fidelity", "api"} & set(parts):
        _default_stack(rds, work, prof, cfg, parts, results)
    if "latency" in parts:
        rds.client.flushall()
        print("bench: live latency to Socket.IO clients", flush=True)
        results["latency"] = latency.measure(
            rds,
            cfg["latency_clients"],
            cfg["latency_seconds"],
            work,
            None if prof is None else prof / "latency",
        )
    if "ceiling" in parts:
        rds.client.flushall()
        results["ceiling"] = _ceiling(rds, work, prof, cfg)
    if "throttle" in parts:
        results["throttle"] = _throttle(rds, work, cfg)
    if "pacing" in parts:
        results["pacing"] = _pacing(rds, work, cfg)
    if "soak" in parts:
        results["soak"] = _soak(work, cfg)


def merge(earlier: dict[str, Any], run: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """The results of a run of some ``parts`` (``--only``) put into those of an earlier run: the
    parts measured now replace theirs, the others stay as they were, and so do the machine and
    settings of the earlier run; when, where and with what settings each part measured now ran
    goes under "separately" (the machine table shows it)."""
    merged = dict(earlier)
    for part in parts:
        for key in PART_KEYS.get(part, (part,)):
            if key in run:
                merged[key] = run[key]
            else:
                merged.pop(key, None)
    merged["parts"] = [p for p in PARTS if p in {*earlier.get("parts", ()), *parts}]
    separately = dict(earlier.get("separately", {}))
    mach = run["machine"]
    for part in parts:
        separately[part] = {
            "started_at": run["started_at"],
            "duration_s": run["duration_s"],
            "load_average_at_start": run["load_average_at_start"],
            "load_average_at_end": run["load_average_at_end"],
            "optio_commit": mach["optio_commit"],
            "optio_uncommitted_changes": mach["optio_uncommitted_changes"],
            "work_dir": run["work_dir"],
            "settings": run["settings"],
        }
    merged["separately"] = separately
    return merged


def _soak(work: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The chaos soak (optio/testing/soak), with its own Redis servers; its full report goes to
    artifacts/, the results keep all but the fault log and the memory samples."""
    minutes, seed = cfg["soak_minutes"], cfg["soak_seed"]
    print(f"bench: chaos soak, {minutes:g} min, seed {seed}", flush=True)
    result = soak.run_soak(minutes, seed, work=work / "soak")
    left_out = ("fault_log", "memory_samples", "lost", "unexplained")
    kept = {k: v for k, v in result.items() if k not in left_out}
    kept["lost"] = result["lost"][:20]
    kept["unexplained"] = result["unexplained"][:20]
    return kept


def _throttle(rds, work, cfg) -> list[dict]:
    """A run against a rate-limited server at each limit and burst, each on a stack of its own."""
    out = []
    for limit, burst in cfg["throttle_runs"]:
        rds.client.flushall()
        print(
            f"bench: throttled by a server allowing {limit:g} calls/s, bursts of {burst:g}",
            flush=True,
        )
        out.append(throttle.measure(rds, work, limit, burst, cfg["throttle_window_s"]))
    return out


def _pacing(rds, work, cfg) -> list[dict]:
    """A run at each rate with the job that records its start, each on a stack of its own."""
    out = []
    for y in cfg["pacing_ys"]:
        rds.client.flushall()
        print(f"bench: pacing at y = {y:,.0f}/min", flush=True)
        out.append(pacing.measure(rds, work, y, cfg["pacing_window_s"]))
    return out


def _default_stack(rds, work, prof, cfg, parts, results) -> None:
    """Everything measured on optio with its default settings (batching on)."""
    # OPTIO_MAX_Y raised so that a rate far above capacity can be asked with batching on
    stack = start_optio(rds.url, work, "optio-default", OPTIO_MAX_Y="10000000")
    try:
        if "batched" in parts:
            print(f"bench: batched run (y = {cfg['batched_y']:,.0f}/min) and memory", flush=True)
            baseline = rds.client.info("memory")["used_memory"]
            rss_before = rss(stack.pids())
            batched, run_id = pipeline.batched(stack, rds, cfg["batched_jobs"], cfg["batched_y"])
            results["batched"] = batched
            results["memory"] = pipeline.memory(stack, rds, run_id, baseline)
            results["memory"]["rss_bytes_before_run"] = rss_before
            if prof is not None:
                results["batched"]["profile"] = pipeline.profile_batched(
                    stack, rds, cfg["batched_y"], prof / "batched"
                )
        if "fidelity" in parts:
            results["fidelity"] = []
            for y in cfg["fidelity_ys"]:
                print(f"bench: rate fidelity at y = {y:g}/min", flush=True)
                results["fidelity"].append(
                    fidelity.measure(stack, rds, y, cfg["fidelity_window_s"], cfg["tick_seconds"])
                )
        if "api" in parts:
            print("bench: GET /api/status at the pipeline's ceiling", flush=True)
            results["api"] = pipeline.api_under_load(
                stack, rds, cfg["api_seconds"], None if prof is None else prof / "api"
            )
    finally:
        stack.stop_all()


def _on_rabbitmq(
    out: Path, work: Path, prof, cfg, parts, run: dict[str, Any], started: float
) -> int:
    """The ceiling and batched parts with a private RabbitMQ node as Celery's broker (optio's
    state in a private Redis, as always); written as the "rabbitmq" section of the results in
    ``out``, the rest of them kept."""
    rds = _redis_server(work, cfg)
    rabbit = RabbitServer(work / "rabbitmq")
    broker = RabbitBroker(rabbit)
    try:
        run["machine"] = {**machine.describe(rds.version()), "rabbitmq_server": rabbit.version()}
        run["node_start_s"] = round(rabbit.started_in, 2)
        if "batched" in parts:
            print(f"bench: RabbitMQ: batched run (y = {cfg['batched_y']:,.0f}/min)", flush=True)
            stack = start_optio(
                rds.url, work, "optio-rabbitmq", OPTIO_MAX_Y="10000000", OPTIO_BROKER_URL=broker.url
            )
            try:
                run["batched"], _ = pipeline.batched(
                    stack, rds, cfg["batched_jobs"], cfg["batched_y"], broker
                )
                if prof is not None:
                    run["batched"]["profile"] = pipeline.profile_batched(
                        stack, rds, cfg["batched_y"], prof / "rabbitmq-batched", broker
                    )
            finally:
                stack.stop_all()
        if "ceiling" in parts:
            rds.client.flushall()
            rabbit.delete_queues()
            run["ceiling"] = _ceiling(rds, work, prof, cfg, broker)
    finally:
        rabbit.close()
        rds.stop()
    run["duration_s"] = round(time.time() - started, 1)
    run["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    out.mkdir(parents=True, exist_ok=True)
    earlier = out / "benchmarks.json"
    results = json.loads(earlier.read_text()) if earlier.exists() else {"settings": cfg}
    results["rabbitmq"] = run
    earlier.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(out / "BENCHMARKS.md", results)
    print(report.summary_table(results), flush=True)
    print(f"bench: wrote the RabbitMQ section of {out / 'BENCHMARKS.md'}", flush=True)
    return 0


def _ceiling(rds, work, prof, cfg, broker=None) -> dict:
    """optio with one message per job against bare Celery, alternating, same broker (the Redis
    unless ``broker`` says otherwise)."""
    n = cfg["ceiling_jobs"]
    optio_runs, bare_runs = [], []
    on_rabbit = {"OPTIO_BROKER_URL": broker.url} if broker else {}
    name = "optio-batch1-rabbitmq" if broker else "optio-batch1"
    stack = start_optio(rds.url, work, name, OPTIO_MAX_BATCH="1", **on_rabbit)
    side = f"{broker.kind}-" if broker else ""
    try:
        for i in range(cfg["ceiling_rounds"]):
            last = i == cfg["ceiling_rounds"] - 1
            print(f"bench: ceiling round {i + 1}: optio, one message per job", flush=True)
            p = None if prof is None or not last else prof / f"{side}ceiling-optio"
            optio_runs.append(pipeline.optio_ceiling(stack, rds, n, p, broker))
            print(f"bench: ceiling round {i + 1}: bare Celery", flush=True)
            p = None if prof is None or not last else prof / f"{side}ceiling-bare"
            bare_runs.append(pipeline.bare_ceiling(rds, work, n, p, broker))
    finally:
        stack.stop_all()
    optio_rate = statistics.median(r["jobs_per_s"] for r in optio_runs)
    bare_rate = statistics.median(r["jobs_per_s"] for r in bare_runs)
    return {
        "optio_runs": optio_runs,
        "bare_runs": bare_runs,
        "optio_jobs_per_s": optio_rate,
        "bare_jobs_per_s": bare_rate,
        "ratio": round(optio_rate / bare_rate, 3),
    }
