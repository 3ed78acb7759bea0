"""``python -m bench.export [--jobs N]``: the results export of a large run, its time and the web
process's memory (BENCHMARKS.md, "Keeping every job's outcome, and exporting it").

A redis-server and optio's processes of its own (the job function of tests/outcome_jobs.py: jobs
from 10,000 on return their id at once), one run of N jobs at 2,000,000/min, then the whole
export read as JSON Lines and as CSV while the web process's RSS is sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.meters import rss_bytes
from optio.testing import RedisServer, System, start
from optio.testing.runs import wait_finished

#: Seconds between two samples of the web process's RSS.
SAMPLE_SECONDS = 0.02


def read_export(system: System, run_id: str, form: str) -> dict[str, float]:
    """Read the whole export in ``form``: rows (lines), bytes, seconds, RSS before and peak."""
    web = system.procs["web"].pid
    before = peak = rss_bytes(web)
    reading = True

    def sample() -> None:
        nonlocal peak
        while reading:
            peak = max(peak, rss_bytes(web))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.monotonic()
    size = lines = 0
    try:
        with requests.get(
            f"{system.base}/api/runs/{run_id}/results",
            params={"format": form},
            stream=True,
            timeout=120,
        ) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_content(64 * 1024):
                size += len(chunk)
                lines += chunk.count(b"\n")
    finally:
        reading = False
        sampler.join()
    return {
        "lines": lines,
        "bytes": size,
        "seconds": time.monotonic() - began,
        "rss_before": before,
        "rss_peak": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="optio-export-") as work:
        (Path(work) / "redis").mkdir()
        server = RedisServer(Path(work) / "redis")
        try:
            with System(
                f"{server.url}/0",
                Path(work) / "logs",
                OPTIO_JOB_FUNC="tests.outcome_jobs:outcome",
                OPTIO_JOB_ATTEMPTS="2",
                OPTIO_RETRY_BACKOFF="0.1",
            ) as system:
                system.start_all()
                began = time.monotonic()
                run_id = start(system, args.jobs, 2_000_000)
                state = wait_finished(system, run_id, 1800, poll_redis=True)
                print(
                    f"run of {args.jobs:,} jobs in {time.monotonic() - began:.1f} s: "
                    f"{state['processed']:,} processed, {state['failed']:,} failed",
                    flush=True,
                )
                for form in ("jsonl", "csv"):
                    got = read_export(system, run_id, form)
                    print(
                        f"{form}: {got['lines']:,.0f} lines, {got['bytes'] / 2**20:.1f} MiB in "
                        f"{got['seconds']:.1f} s; web RSS {got['rss_before'] / 2**20:.1f} MiB "
                        f"before, {got['rss_peak'] / 2**20:.1f} MiB at its peak",
                        flush=True,
                    )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
