"""Several runs at once (issue 22): fairness under the deployment's ceiling, and the
scheduler's cost per active run.

``python -m bench.runs`` (``--quick``: shorter windows) prints two tables:

- **Fairness.** Three runs at once on the README's stack (web, worker -c 2, beat; Redis with
  AOF on, as ``scripts/run.sh`` starts it) under ``OPTIO_MAX_RATE=6000``: x = 600 at 600/min,
  x = 30 at 60/min and x = 60,000 at 60,000/min. Each run's rate while all three run, from the
  start time of each job (``optio.testing.pacing:record_start``), against its fair share (600,
  60 and the rest, 5,340), and the sum against the ceiling.
- **Tick cost.** One tick (not paced: it reserves and sends at once) with 1, 10 and 100 active
  runs of 60 jobs/min each, in this process against its own Redis (AOF on), with the Celery
  app of the workers publishing to that Redis; the median and the 90th percentile of 40
  ticks, and per run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stack import start_optio
from optio.config import Settings
from optio.names import LAST_TICK_KEY
from optio.redis_state import RunStore
from optio.testing import RedisServer, starts_key, wait_for
from optio.worker import tick as tick_module
from optio.worker.app import create_celery

JOB_FUNC = "optio.testing.pacing:record_start"
CEILING = 6000.0
#: (name, x, y) of the fairness part; the shares the ceiling gives while all three run.
RUNS = (("small", 600, 600.0), ("tiny", 30, 60.0), ("big", 60_000, 60_000.0))
SHARES = {"small": 600.0, "tiny": 60.0, "big": CEILING - 660.0}


def fairness(work: Path, window: float) -> dict[str, Any]:
    (work / "fair-redis").mkdir()
    rds = RedisServer(work / "fair-redis", persistent=True)
    stack = start_optio(
        rds.url,
        work,
        "optio-fairness",
        OPTIO_JOB_FUNC=JOB_FUNC,
        OPTIO_TEST_REDIS_URL=rds.url,
        OPTIO_MAX_RATE=f"{CEILING:g}",
    )
    try:
        wait_for(lambda: rds.client.get(LAST_TICK_KEY), 30, "beat's first tick")
        store = RunStore(rds.client)
        ids = {name: store.runs.start_run(x, y) for name, x, y in RUNS}
        began = time.time()
        wait_for(lambda: time.time() - began >= window + 3 and True, window + 30, "the window")
        for run_id in ids.values():
            if store.runs.run_state(run_id)["status"] in ("running", "paused"):
                store.runs.stop_run(run_id)
        times = {
            name: [
                float(s.rpartition(":")[2]) / 1000 for s in rds.client.lrange(starts_key(r), 0, -1)
            ]
            for name, r in ids.items()
        }
    finally:
        stack.stop_all()
        rds.stop()
    since, until = began + 3, began + 3 + window
    rows = []
    total = 0.0
    for name, x, y in RUNS:
        rate = sum(1 for t in times[name] if since <= t < until) * 60 / window
        total += rate
        rows.append(
            {
                "run": name,
                "x": x,
                "asked_per_min": y,
                "share_per_min": SHARES[name],
                "measured_per_min": round(rate, 1),
                "of_share_pct": round(100 * rate / SHARES[name], 1),
            }
        )
    return {"window_s": window, "ceiling": CEILING, "sum_per_min": round(total, 1), "runs": rows}


def read_starts(rds: RedisServer, run_id: str) -> list[float]:
    """Epoch seconds of each job start of the run (record_start's list)."""
    return [
        float(s.rpartition(":")[2]) / 1000 for s in rds.client.lrange(starts_key(run_id), 0, -1)
    ]


def tick_cost(work: Path, counts: tuple[int, ...], ticks: int) -> list[dict[str, Any]]:
    (work / "tick-redis").mkdir()
    rds = RedisServer(work / "tick-redis", persistent=True)
    out = []
    try:
        settings = Settings(redis_url=f"{rds.url}/0", broker_url=f"{rds.url}/0")
        app = create_celery(settings)
        ctx = app.optio_context
        store = RunStore(rds.client, settings)
        for n in counts:
            rds.client.flushdb()
            for _ in range(n):
                store.runs.start_run(1_000_000, 60.0)
            tick_module.tick(ctx)  # the first tick sends job 0 of each
            took = []
            for _ in range(ticks):
                time.sleep(0.05)
                t0 = time.perf_counter()
                tick_module.tick(ctx)
                took.append((time.perf_counter() - t0) * 1000)
            took.sort()
            median = statistics.median(took)
            out.append(
                {
                    "active_runs": n,
                    "tick_median_ms": round(median, 2),
                    "tick_p90_ms": round(took[int(len(took) * 0.9) - 1], 2),
                    "per_run_ms": round(median / n, 3),
                }
            )
    finally:
        rds.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 10 s fairness window")
    parser.add_argument("--only", choices=("fairness", "ticks"), help="one of the two parts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="optio-bench-runs-") as tmp:
        work = Path(tmp)
        if args.only in (None, "ticks"):
            print("bench: tick cost with 1, 10 and 100 active runs (Redis AOF on)", flush=True)
            for row in tick_cost(work, (1, 10, 100), 40):
                print(
                    f"  {row['active_runs']:>3} active runs: tick {row['tick_median_ms']} ms "
                    f"median, {row['tick_p90_ms']} ms p90, {row['per_run_ms']} ms per run"
                )
        if args.only in (None, "fairness"):
            window = 10.0 if args.quick else 25.0
            print(
                f"bench: three runs under OPTIO_MAX_RATE={CEILING:g} ({window:g} s window, "
                "README stack, AOF on)",
                flush=True,
            )
            result = fairness(work, window)
            for row in result["runs"]:
                print(
                    f"  {row['run']:>5}: asked {row['asked_per_min']:,.0f}/min, share "
                    f"{row['share_per_min']:,.0f}, measured {row['measured_per_min']:,.1f} "
                    f"({row['of_share_pct']} % of its share)"
                )
            print(f"  sum {result['sum_per_min']:,.1f}/min against the ceiling {CEILING:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
