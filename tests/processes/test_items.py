"""Items in: runs started with items over real HTTP (a JSON array, a streamed NDJSON or CSV
upload) against a real web process, worker and beat on a database of the session's private
redis-server. The job function (``tests.fault_jobs:with_item``) takes its item and returns it
with its job id, so each job's stored result shows which item it got; the results export
lists each job's item and result.

Bad uploads start nothing and leave no key: each such test compares the database's run keys
before and after. The limits are small here (OPTIO_MAX_ITEMS=10,000, OPTIO_MAX_ITEM_BYTES=512)
so that going past them is cheap.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from optio.names import items_key, results_key
from optio.store.outcomes import parse
from optio.testing import ROOT, System, settled_executions, status, wait_finished, wait_for
from tests.fault_jobs import seen_items_key

MAX_ITEMS = 10_000
MAX_ITEM_BYTES = 512
#: Fast enough that 10,000 jobs take seconds: messages of 100 jobs.
Y = 600_000


@pytest.fixture(scope="module")
def items_system(redis_server, redis_db, tmp_path_factory) -> Iterator[System]:
    env = {
        "OPTIO_JOB_FUNC": "tests.fault_jobs:with_item",
        "OPTIO_MAX_ITEMS": str(MAX_ITEMS),
        "OPTIO_MAX_ITEM_BYTES": str(MAX_ITEM_BYTES),
        "OPTIO_JOB_ATTEMPTS": "3",
        "OPTIO_RETRY_BACKOFF": "0.2",
        "OPTIO_HEARTBEAT_SECONDS": "1",
    }
    url = f"{redis_server.url}/{redis_db()}"
    system = System(url, tmp_path_factory.mktemp("items"), **env)
    system.redis.flushdb()
    try:
        yield system.start_all()
    finally:
        system.stop_all()


@pytest.fixture
def system(items_system) -> System:
    items_system.ensure_idle()
    wait_for(lambda: not status(items_system)["running"], 30, "the last run to end")
    return items_system


def run_keys_now(system: System) -> set[str]:
    return set(system.redis.scan_iter("optio:run:*", count=1000))


def upload(system: System, body, media: str, y: float = Y, **kw) -> requests.Response:
    """POST /api/runs?y=... with ``body`` (bytes, or an iterator of bytes: sent chunked)."""
    return requests.post(
        f"{system.base}/api/runs",
        params={"y": y},
        data=body,
        headers={"Content-Type": media},
        timeout=60,
        **kw,
    )


def ndjson(values: list) -> Iterator[bytes]:
    """``values`` as NDJSON, 500 lines a piece: a chunked body that arrives in pieces."""
    for start in range(0, len(values), 500):
        yield "".join(json.dumps(v) + "\n" for v in values[start : start + 500]).encode()


def results(system: System, run_id: str) -> dict[int, dict]:
    """Job id -> what its function returned, from each job's record (optio/store/outcomes.py)."""
    raw = system.redis.hgetall(results_key(run_id))
    return {int(job): json.loads(parse(record).result or "null") for job, record in raw.items()}


def assert_nothing_started(system: System, before_keys: set[str], before: dict) -> None:
    """No run key was added (no chunk of items left either), and the state is the one shown
    before."""
    assert run_keys_now(system) == before_keys
    after = status(system)
    assert after["runId"] == before["runId"] and not after["running"]


def test_ten_thousand_ndjson_items_each_reach_their_job_and_come_back_in_the_export(system):
    items = [{"n": k, "name": f"item-{k}", "tags": ["a", k % 7]} for k in range(10_000)]
    answer = upload(system, ndjson(items), "application/x-ndjson")
    assert answer.status_code == 201, answer.text
    state = answer.json()
    run_id = state["runId"]
    assert state["xTotal"] == 10_000 and state["status"] == "running"
    final = wait_finished(system, run_id, 120)
    assert final["status"] == "completed" and final["processed"] == 10_000
    got = results(system, run_id)
    assert len(got) == 10_000
    wrong = [k for k in range(10_000) if got[k] != {"job": k, "item": items[k]}]
    assert wrong == []
    assert sum(settled_executions(system, run_id).values()) == 10_000
    # 10 chunks of 1,000 items, in the run's keys: they expire with it
    assert system.redis.hlen(items_key(run_id)) == 10
    assert 0 < system.redis.ttl(items_key(run_id)) <= system.redis.ttl(f"optio:run:{run_id}")

    # the export: one row per job in job order, with its item and what its function returned
    answer = requests.get(f"{system.base}/api/runs/{run_id}/results", timeout=60)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert len(rows) == 10_000
    wrong = [
        (k, row)
        for k, row in enumerate(rows)
        if (row["job"], row["item"], row["status"], row["result"])
        != (k, items[k], "processed", {"job": k, "item": items[k]})
    ]
    assert wrong == []
    answer = requests.get(
        f"{system.base}/api/runs/{run_id}/results", params={"format": "csv"}, timeout=60
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    cells = list(csv.DictReader(io.StringIO(answer.text, newline="")))
    assert len(cells) == 10_000
    wrong = [
        (k, row)
        for k, row in enumerate(cells)
        if (int(row["job"]), json.loads(row["item"]), row["status"], json.loads(row["result"]))
        != (k, items[k], "processed", {"job": k, "item": items[k]})
    ]
    assert wrong == []


def test_a_csv_row_with_an_extra_field_names_its_line_and_starts_nothing(system):
    before, keys = status(system), run_keys_now(system)
    rows = [f"user{k}@example.com,User {k}" for k in range(6000)]
    rows[4999] += ",extra"  # the file's line 5,001 (the header is line 1)
    body = ("email,name\n" + "\n".join(rows) + "\n").encode()
    answer = upload(system, body, "text/csv")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("line 5001: 3 fields"), answer.text
    assert_nothing_started(system, keys, before)


def test_csv_rows_become_objects_keyed_by_the_header(system):
    body = b'email,name\r\nada@example.com,"Lovelace, Ada"\r\ngrace@example.com,Grace\r\n'
    answer = upload(system, body, "text/csv; charset=utf-8")
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["runId"]
    assert answer.json()["xTotal"] == 2
    wait_finished(system, run_id, 60)
    assert results(system, run_id) == {
        0: {"job": 0, "item": {"email": "ada@example.com", "name": "Lovelace, Ada"}},
        1: {"job": 1, "item": {"email": "grace@example.com", "name": "Grace"}},
    }


def test_a_line_that_is_not_json_names_its_line(system):
    before, keys = status(system), run_keys_now(system)
    lines = [json.dumps({"n": k}) for k in range(3000)]
    lines[2499] = '{"n": 2499'
    answer = upload(system, ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("line 2500: not valid JSON"), answer.text
    assert_nothing_started(system, keys, before)


def test_an_item_over_the_size_limit_is_413(system):
    before, keys = status(system), run_keys_now(system)
    lines = [json.dumps({"n": k}) for k in range(1500)]
    lines[1200] = json.dumps({"n": 1200, "text": "x" * MAX_ITEM_BYTES})
    answer = upload(system, ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error.startswith("line 1201:") and "OPTIO_MAX_ITEM_BYTES" in error, error
    assert_nothing_started(system, keys, before)


def test_more_items_than_the_limit_is_413(system):
    before, keys = status(system), run_keys_now(system)
    answer = upload(system, ndjson(list(range(MAX_ITEMS + 1))), "application/x-ndjson")
    assert answer.status_code == 413, answer.text
    assert "at most 10,000" in answer.json()["error"] and "OPTIO_MAX_ITEMS" in answer.text
    assert_nothing_started(system, keys, before)
    answer = system.post("/api/runs", {"items": list(range(MAX_ITEMS + 1)), "y": Y})
    assert answer.status_code == 413, answer.text
    assert_nothing_started(system, keys, before)


def test_an_upload_cut_off_midway_starts_nothing_and_its_chunks_are_deleted(system):
    before, keys = status(system), run_keys_now(system)
    host = urlsplit(system.base)
    # two whole chunks of 1,000 items and more: 300 KB, past the server's reads of 64 KB
    sent = b"".join(ndjson([{"n": k, "pad": "x" * 100} for k in range(2500)]))
    with socket.create_connection((host.hostname, host.port), timeout=10) as conn:
        conn.sendall(
            b"POST /api/runs?y=600 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-ndjson\r\n"
            + f"Content-Length: {len(sent) * 4}\r\n\r\n".encode()
            + sent
        )
        # the chunks are written while the body streams (under a new run's id)...
        written = wait_for(lambda: run_keys_now(system) - keys, 30, "the first chunks")
        assert all(key.endswith(":items") for key in written), written
    # ...and deleted once the connection closes short of Content-Length
    wait_for(lambda: run_keys_now(system) == keys, 30, "the chunks of the cut upload to go")
    assert_nothing_started(system, keys, before)


def test_a_job_is_handed_the_same_item_on_each_retry_rerun_and_after_retry_failed(system):
    items = [{"n": k} for k in range(20)]
    items[3] = {"n": 3, "fail": 1}  # fails once, then its retry succeeds
    items[7] = {"n": 7, "fail": 4}  # fails its 3 attempts, then once after retry-failed
    items[11] = {"n": 11, "throttle": 2}  # throttled twice, then its rerun succeeds
    answer = system.post("/api/runs", {"items": items, "y": 1200})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["runId"]
    final = wait_finished(system, run_id, 60)
    assert (final["processed"], final["failed"]) == (19, 1)
    retried = system.post(f"/api/runs/{run_id}/retry-failed")
    assert retried.status_code == 200, retried.text
    final = wait_finished(system, run_id, 60)
    assert (final["processed"], final["failed"]) == (20, 0)
    for job, runs in ((3, 2), (7, 5), (11, 3)):
        seen = [json.loads(s) for s in system.redis.lrange(seen_items_key(run_id, job), 0, -1)]
        assert seen == [items[job]] * runs
    assert results(system, run_id)[7] == {"job": 7, "item": items[7]}


def test_x_and_y_on_runs_still_start_jobs_and_a_job_without_item_gets_none(system):
    answer = system.post("/api/runs", {"x": 5, "y": 6000})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["runId"]
    assert answer.json()["xTotal"] == 5
    wait_finished(system, run_id, 60)
    assert results(system, run_id) == {k: {"job": k, "item": None} for k in range(5)}
    assert not system.redis.exists(items_key(run_id))
    # read from the function's signature once, at the worker's start
    worker_log = system.procs["worker"].log()
    assert (
        "Job function tests.fault_jobs:with_item, called as f(run_id, job_id, item)" in worker_log
    )


def test_an_items_run_keeps_its_x_and_another_runs_beside_it(system):
    answer = system.post("/api/runs", {"items": ["a", "b", "c"], "y": 1})  # slow: stays running
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["runId"]
    changed = system.put("/api/run", {"x": 10})
    assert changed.status_code == 400 and "cannot change" in changed.json()["error"]
    other = upload(system, b'"d"\n', "application/x-ndjson", y=60)
    assert other.status_code == 201, other.text
    other_id = other.json()["runId"]
    assert other_id != run_id
    wait_for(
        lambda: system.get(f"/api/runs/{other_id}").json()["status"] == "completed",
        30,
        "the second items run to complete",
    )
    first = system.get(f"/api/runs/{run_id}").json()
    assert (first["status"], first["xTotal"]) == ("running", 3)
    # the unnamed controls now need a name only while several are active: one is left
    assert system.post("/api/stop").status_code == 200


def optio_run(system: System, *args: str, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "optio.cli", "run", *args, "--json"],
        cwd=ROOT,
        env={**os.environ, "OPTIO_URL": system.base},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_streams_a_csv_file(system, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"p{k}@example.com\n" for k in range(2500)))
    done = optio_run(system, "--items", str(path), "-y", str(Y))
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["runId"]
    wait_finished(system, run_id, 60)
    got = results(system, run_id)
    assert [got[k]["item"] for k in range(2500)] == [
        {"email": f"p{k}@example.com"} for k in range(2500)
    ]


def test_the_cli_reads_standard_input_and_says_which_line_is_bad(system):
    done = optio_run(system, "--items", "-", "-y", str(Y), stdin='"a"\n"b"\n')
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["runId"]
    wait_finished(system, run_id, 60)
    assert results(system, run_id) == {0: {"job": 0, "item": "a"}, 1: {"job": 1, "item": "b"}}
    before, keys = status(system), run_keys_now(system)
    done = optio_run(system, "--items", "-", "--csv", "-y", "60", stdin="a,b\n1,2\n3\n")
    assert done.returncode == 1
    assert done.stderr.startswith("optio run: line 3: 1 fields, but the header row has 2")
    assert_nothing_started(system, keys, before)
