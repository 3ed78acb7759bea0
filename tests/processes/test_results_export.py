"""The results export against real processes: a system of the module's own (web, worker, beat)
whose job function (tests/outcome_jobs.py) returns a value computed from the job id, fails some
jobs for good and others once, and returns None for some. Each run's export, as JSON Lines and
as CSV, over HTTP and through ``optio results``, must list each job with its own outcome."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from optio.names import attempts_key
from optio.testing import System, start, wait_for
from optio.testing.runs import wait_finished
from tests.outcome_jobs import PLAIN_FROM, expected, heal_key

ENV = {
    "OPTIO_JOB_FUNC": "tests.outcome_jobs:outcome",
    "OPTIO_JOB_ATTEMPTS": "2",
    "OPTIO_RETRY_BACKOFF": "0.1",
}
X = 2000


@pytest.fixture(scope="module")
def outcome_system(redis_server, redis_db, tmp_path_factory) -> Iterator[System]:
    url = f"{redis_server.url}/{redis_db()}"
    with System(url, tmp_path_factory.mktemp("outcomes"), **ENV) as system:
        yield system.start_all()


@pytest.fixture
def idle(outcome_system) -> System:
    outcome_system.ensure_idle()
    wait_for(lambda: not outcome_system.get("/api/status").json()["running"], 30, "no run")
    return outcome_system


def export(system: System, run_id: str, **query: str) -> requests.Response:
    answer = requests.get(f"{system.base}/api/runs/{run_id}/results", params=query, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer


def jsonl_rows(system: System, run_id: str, **query: str) -> list[dict]:
    answer = export(system, run_id, **query)
    assert answer.headers["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in answer.text.splitlines()]


def csv_rows(text: str) -> list[dict]:
    """CSV rows as the JSON rows have them (item and result decoded, numbers as numbers)."""
    rows = []
    for cells in csv.DictReader(io.StringIO(text, newline="")):
        rows.append(
            {
                "job": int(cells["job"]),
                "item": json.loads(cells["item"]) if cells["item"] else None,
                "status": cells["status"],
                "result": json.loads(cells["result"]) if cells["result"] else None,
                "error": cells["error"] or None,
                "attempts": int(cells["attempts"]) if cells["attempts"] else None,
                "ms": float(cells["ms"]) if cells["ms"] else None,
                "finishedAt": int(cells["finishedAt"]) if cells["finishedAt"] else None,
            }
        )
    return rows


def check_rows(rows: list[dict], state: dict, jobs: list[int], healed: bool = False) -> None:
    assert [row["job"] for row in rows] == jobs
    for row in rows:
        status, result, error, attempts = expected(row["job"], healed)
        assert (row["status"], row["result"], row["error"], row["attempts"]) == (
            status,
            result,
            error,
            attempts,
        ), row
        assert row["item"] is None  # a run of x jobs has no items
        assert 0 <= row["ms"] < 5000, row
        assert state["startedAt"] <= row["finishedAt"] <= state["finishedAt"], row


def finished_run(system: System) -> tuple[str, dict]:
    run_id = start(system, X, 60_000)
    state = wait_finished(system, run_id, 90)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", 1800, 200)
    return run_id, state


def test_each_job_of_a_run_is_listed_with_its_outcome_as_jsonl_csv_and_by_the_cli(idle):
    system = idle
    run_id, state = finished_run(system)
    rows = jsonl_rows(system, run_id)
    check_rows(rows, state, list(range(X)))

    answer = export(system, run_id, format="csv")
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.text.startswith("job,item,status,result,error,attempts,ms,finishedAt\r\n")
    assert csv_rows(answer.text) == rows

    failed = jsonl_rows(system, run_id, status="failed")
    assert failed == [row for row in rows if row["status"] == "failed"]
    assert [row["job"] for row in failed] == list(range(7, X, 10))
    processed = jsonl_rows(system, run_id, status="processed")
    assert processed == [row for row in rows if row["status"] == "processed"]
    assert jsonl_rows(system, run_id, status="all") == rows  # nothing pending

    cli = subprocess.run(
        [sys.executable, "-m", "optio.cli", "results", run_id, "--failed", "--csv"],
        capture_output=True,
        env={**system.env, "OPTIO_URL": system.base},
        timeout=60,
    )
    assert (cli.returncode, cli.stderr) == (0, b"")
    assert csv_rows(cli.stdout.decode()) == failed


def test_after_retry_failed_the_retried_jobs_show_their_new_outcome(idle):
    system = idle
    run_id, _ = finished_run(system)
    system.redis.set(heal_key(run_id), 1)
    answer = system.post(f"/api/runs/{run_id}/retry-failed")
    assert answer.status_code == 200, answer.text
    state = wait_finished(system, run_id, 60)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", X, 0)
    rows = jsonl_rows(system, run_id)
    check_rows(rows, state, list(range(X)), healed=True)
    assert jsonl_rows(system, run_id, status="failed") == []
    assert csv_rows(export(system, run_id, format="csv").text) == rows


def test_while_a_run_runs_only_finished_jobs_are_listed_and_all_lists_the_rest_pending(idle):
    system = idle
    run_id = start(system, X, 6000)  # 100 jobs a second: about 20 s
    wait_for(lambda: system.get("/api/status").json()["processed"] >= 100, 30, "100 jobs done")
    finished = jsonl_rows(system, run_id)
    everything = jsonl_rows(system, run_id, status="all")
    state = system.get("/api/status").json()
    assert state["running"], "the run ended before the exports: make it slower"
    system.post("/api/stop")

    done_first = {row["job"] for row in finished}
    assert 100 <= len(done_first) <= state["processed"] + state["failed"] < X
    for row in finished:
        status, result, error, attempts = expected(row["job"])
        assert (row["status"], row["result"], row["error"], row["attempts"]) == (
            status,
            result,
            error,
            attempts,
        )
    assert [row["job"] for row in everything] == list(range(X))
    pending = [row for row in everything if row["status"] == "pending"]
    assert pending
    for row in pending:
        assert row == {**dict.fromkeys(row), "job": row["job"], "status": "pending"}
    done_then = {row["job"] for row in everything if row["status"] != "pending"}
    assert done_first <= done_then  # a job once finished stays finished


@pytest.mark.parametrize(
    "query, status, error",
    [
        ("format=xml", 400, "format must be one of jsonl, csv, got 'xml'"),
        ("status=ok", 400, "status must be one of finished, processed, failed, all, got 'ok'"),
        ("since=3", 400, "unknown query parameter(s): since"),
    ],
)
def test_a_bad_query_is_a_400_and_an_unknown_run_a_404(idle, query, status, error):
    system = idle
    run_id = start(system, 1, 600)
    wait_finished(system, run_id, 30)
    answer = system.get(f"/api/runs/{run_id}/results?{query}")
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    answer = system.get("/api/runs/0123456789ab/results")
    assert answer.status_code == 404 and "error" in answer.json()


def test_an_export_that_fails_midway_is_cut_off_not_short(idle):
    """A read that fails after the first slice went out (here: a corrupt attempts field of job
    1,500) ends the answer without its last chunk: clients see a cut transfer."""
    system = idle
    run_id, _ = finished_run(system)
    system.redis.hset(attempts_key(run_id), "1500", "not a number")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with requests.get(f"{system.base}/api/runs/{run_id}/results", stream=True, timeout=60) as r:
            assert r.status_code == 200
            for _ in r.iter_lines():
                pass
    cli = subprocess.run(
        [sys.executable, "-m", "optio.cli", "results", run_id],
        capture_output=True,
        env={**system.env, "OPTIO_URL": system.base},
        timeout=60,
    )
    assert cli.returncode == 3, cli.stderr
    assert b"the answer was cut off after" in cli.stderr
    assert len(cli.stdout.splitlines()) == 1000  # the first slice, whole
    assert "stopped midway" in system.procs["web"].log()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def test_a_large_export_streams_in_bounded_memory(idle):
    """200,000 jobs (ids from PLAIN_FROM on return their id at once): the web process's RSS,
    sampled every 20 ms while the whole JSON Lines export is read, grows far less than the
    export's size (a whole-run buffer would hold all of it, and more as Python objects)."""
    system = idle
    x = PLAIN_FROM + 190_000
    run_id = start(system, x, 1_200_000)
    state = wait_finished(system, run_id, 600)
    assert state["processed"] + state["failed"] == x
    web = system.procs["web"].pid
    before = rss_bytes(web)
    peak = before
    reading = True

    def sample() -> None:
        nonlocal peak
        while reading:
            peak = max(peak, rss_bytes(web))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.monotonic()
    rows = size = 0
    try:
        with requests.get(f"{system.base}/api/runs/{run_id}/results", stream=True, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                size += len(line) + 1
                rows += 1
                if rows == x:
                    assert json.loads(line)["result"] == x - 1
    finally:
        reading = False
        sampler.join()
    took = time.monotonic() - began
    grew = peak - before
    print(
        f"\nexport of {rows:,} rows, {size / 2**20:.1f} MiB in {took:.1f} s: web RSS "
        f"{before / 2**20:.1f} MiB before, peak {peak / 2**20:.1f} MiB (+{grew / 2**20:.1f} MiB)"
    )
    assert rows == x
    assert grew < size / 4, f"the web process grew by {grew:,} bytes for {size:,} bytes sent"
