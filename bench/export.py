"""``python -m bench.export [--jobs N] [--items]``: the results export of a large run, its time
and the web process's memory; with ``--items``, also the upload of the run's N items
(BENCHMARKS.md, "Keeping every job's outcome, and exporting it" and "Uploading items").

A redis-server and optio's processes of its own, then one run of N jobs at 2,000,000/min:
started with x (the job function of tests/outcome_jobs.py: jobs from 10,000 on return their id
at once), or with ``--items`` uploaded as N short items (``"user0000042@example.com"``) in one
streamed NDJSON body (chunked, as ``optio run --items`` sends it; the job function
``tests.outcome_jobs:item_length`` returns its item's length). The web process's RSS is sampled
every 20 ms while the upload is sent and while the whole export is read as JSON Lines and as
CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bench.meters import rss_bytes
from optio.testing import RedisServer, System, start
from optio.testing.runs import wait_finished

#: Seconds between two samples of the web process's RSS.
SAMPLE_SECONDS = 0.02
#: The run's rate, jobs per minute.
RATE = 2_000_000
#: Items per piece of the streamed upload body (about 240 KiB).
ITEMS_PER_PIECE = 10_000


class Peak:
    """The RSS of a process before and at its peak while sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = rss_bytes(pid)


@contextlib.contextmanager
def sampled(pid: int) -> Iterator[Peak]:
    """Sample ``pid``'s RSS every SAMPLE_SECONDS while the block runs."""
    found = Peak(pid)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            found.peak = max(found.peak, rss_bytes(pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield found
    finally:
        done.set()
        sampler.join()
        found.peak = max(found.peak, rss_bytes(pid))


def read_export(system: System, run_id: str, form: str) -> dict[str, Any]:
    """Read the whole export in ``form``: rows (lines), bytes, seconds, RSS before and peak, and
    its last row."""
    size = lines = 0
    tail = b""
    with sampled(system.procs["web"].pid) as rss:
        began = time.monotonic()
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
                tail = (tail + chunk)[-4096:]
        took = time.monotonic() - began
    return {
        "last": tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].decode(),
        "lines": lines,
        "bytes": size,
        "seconds": took,
        "rss_before": rss.before,
        "rss_peak": rss.peak,
    }


def item(k: int) -> str:
    return f"user{k:07d}@example.com"


def ndjson(n: int, sent: list[int]) -> Iterator[bytes]:
    """``n`` items as NDJSON pieces of ITEMS_PER_PIECE lines; ``sent[0]`` counts the bytes."""
    for first in range(0, n, ITEMS_PER_PIECE):
        piece = "".join(f'"{item(k)}"\n' for k in range(first, min(first + ITEMS_PER_PIECE, n)))
        data = piece.encode()
        sent[0] += len(data)
        yield data


def upload_items(system: System, n: int) -> tuple[str, dict[str, float]]:
    """POST n items as one streamed NDJSON body: the run's id, and bytes, seconds, RSS."""
    sent = [0]
    with sampled(system.procs["web"].pid) as rss:
        began = time.monotonic()
        answer = requests.post(
            f"{system.base}/api/runs",
            params={"y": RATE},
            data=ndjson(n, sent),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=600,
        )
        took = time.monotonic() - began
    if answer.status_code != 201:
        raise RuntimeError(f"the upload was refused: {answer.status_code} {answer.text[:500]}")
    state = answer.json()
    if state["xTotal"] != n:
        raise RuntimeError(f"the run has {state['xTotal']:,} jobs, not {n:,}")
    return state["runId"], {
        "bytes": sent[0],
        "seconds": took,
        "rss_before": rss.before,
        "rss_peak": rss.peak,
    }


def mib(size: float) -> str:
    return f"{size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the run")
    parser.add_argument(
        "--items", action="store_true", help="upload one item per job (NDJSON, streamed)"
    )
    args = parser.parse_args(argv)
    function = "tests.outcome_jobs:item_length" if args.items else "tests.outcome_jobs:outcome"
    with tempfile.TemporaryDirectory(prefix="optio-export-") as work:
        (Path(work) / "redis").mkdir()
        server = RedisServer(Path(work) / "redis")
        try:
            with System(
                f"{server.url}/0",
                Path(work) / "logs",
                OPTIO_JOB_FUNC=function,
                OPTIO_JOB_ATTEMPTS="2",
                OPTIO_RETRY_BACKOFF="0.1",
            ) as system:
                system.start_all()
                began = time.monotonic()
                if args.items:
                    run_id, up = upload_items(system, args.jobs)
                    print(
                        f"upload of {args.jobs:,} items, {mib(up['bytes'])} of NDJSON in "
                        f"{up['seconds']:.1f} s ({args.jobs / up['seconds']:,.0f} items/s); "
                        f"web RSS {mib(up['rss_before'])} before, {mib(up['rss_peak'])} at its "
                        "peak",
                        flush=True,
                    )
                    began = time.monotonic()  # the run started once the upload was stored
                else:
                    run_id = start(system, args.jobs, RATE)
                state = wait_finished(system, run_id, 1800, poll_redis=True)
                print(
                    f"run of {args.jobs:,} jobs in {time.monotonic() - began:.1f} s: "
                    f"{state['processed']:,} processed, {state['failed']:,} failed",
                    flush=True,
                )
                for form in ("jsonl", "csv"):
                    got = read_export(system, run_id, form)
                    print(
                        f"{form}: {got['lines']:,.0f} lines, {mib(got['bytes'])} in "
                        f"{got['seconds']:.1f} s; web RSS {mib(got['rss_before'])} before, "
                        f"{mib(got['rss_peak'])} at its peak; last row: {got['last'][:160]}",
                        flush=True,
                    )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
