"""The results export's rows (optio/webapp/export.py) and its route's answers to bad queries,
in-process through Flask's test client (proven against the real processes:
tests/processes/test_results_export.py)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import redis

from optio.redis_state import RunStore
from optio.store.outcomes import Outcome
from optio.webapp import api, export
from tests.unit.apps import build_app

T0 = 1_795_653_433_000

OUTCOMES = [
    Outcome(0, "processed", '{"a":[1,"é"]}', None, 1, 1.5, T0),
    Outcome(1, "failed", None, 'ValueError: bad "input", line 1\nline 2', 4, 20.0, T0 + 1),
    Outcome(2, "processed", None, None, 2, 0.0, T0 + 2),
    Outcome(3, "pending"),
]


def fake_read(outcomes):
    def read(first, count):
        return [o for o in outcomes if first <= o.job < first + count]

    return read


def test_a_json_line_holds_every_column():
    lines = [export.jsonl_line(o, None) for o in OUTCOMES]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    rows = [json.loads(line) for line in lines]
    assert [list(row) for row in rows] == [list(export.COLUMNS)] * 4
    assert rows[0] == {
        "job": 0,
        "item": None,
        "status": "processed",
        "result": {"a": [1, "é"]},
        "error": None,
        "attempts": 1,
        "ms": 1.5,
        "finishedAt": T0,
    }
    assert rows[1]["error"] == 'ValueError: bad "input", line 1\nline 2'
    assert rows[1]["result"] is None and rows[2]["result"] is None
    assert rows[3] == {**dict.fromkeys(export.COLUMNS), "job": 3, "status": "pending"}
    assert json.loads(export.jsonl_line(OUTCOMES[0], {"email": "a@b.c"}))["item"] == {
        "email": "a@b.c"
    }


def test_an_item_utf8_cannot_encode_stays_escaped():
    line = export.jsonl_line(OUTCOMES[3], {"name": "a\udcff"})
    line.encode()
    assert json.loads(line)["item"] == {"name": "a\udcff"}


def test_csv_cells_hold_json_for_item_and_result_and_nothing_for_null():
    text = "".join(
        export.csv_text(
            iter([[(o, item) for o, item in zip(OUTCOMES, ["x", None, 3, None], strict=True)]])
        )
    )
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(export.COLUMNS)
    assert rows[1] == ["0", '"x"', "processed", '{"a":[1,"é"]}', "", "1", "1.5", str(T0)]
    assert rows[2][3:5] == ["", 'ValueError: bad "input", line 1\nline 2']
    assert rows[3][:4] == ["2", "3", "processed", ""]
    assert rows[4] == ["3", "", "pending", "", "", "", "", ""]


def test_a_csv_without_rows_is_its_header():
    assert "".join(export.csv_text(iter([]))) == ",".join(export.COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    "status, jobs",
    [("finished", [0, 1, 2]), ("processed", [0, 2]), ("failed", [1]), ("all", [0, 1, 2, 3])],
)
def test_rows_keep_job_order_and_the_statuses_asked_for(status, jobs):
    chunks = list(export.rows(fake_read(OUTCOMES), 4, status, slice_size=2))
    assert [o.job for chunk in chunks for o, _ in chunk] == jobs
    assert all(chunk for chunk in chunks)  # a slice with nothing to list sends nothing


def test_items_come_from_items_for_one_call_per_slice():
    calls = []

    def items_for(first, count):
        calls.append((first, count))
        return [f"item-{first + n}" for n in range(count)]

    chunks = export.rows(fake_read(OUTCOMES), 4, "all", items_for, slice_size=3)
    assert [(o.job, item) for chunk in chunks for o, item in chunk] == [
        (0, "item-0"),
        (1, "item-1"),
        (2, "item-2"),
        (3, "item-3"),
    ]
    assert calls == [(0, 3), (3, 1)]


@pytest.fixture(scope="module")
def app(redis_server, redis_db):
    return build_app(redis_server, redis_db())


def app_store(app) -> RunStore:
    url = app.extensions["optio"].settings.redis_url
    return RunStore(redis.Redis.from_url(url, decode_responses=True))


@pytest.fixture
def finished_run(app) -> str:
    """A completed run of 3 jobs: 0 and 2 processed, 1 failed."""
    store = app_store(app)
    run_id = store.runs.start_run(3, 600)
    store.counting.mark_processed(run_id, {0: "a", 2: {"n": 2}}, seconds={0: 0.001})
    store.counting.fail_job(run_id, 1, "E: no", attempts=1, backoff_s=0)
    return run_id


@pytest.mark.parametrize(
    "query, error",
    [
        ("format=xml", "format must be one of jsonl, csv, got 'xml'"),
        ("status=done", "status must be one of finished, processed, failed, all, got 'done'"),
        ("format=", "format must be one of jsonl, csv, got ''"),
        ("limit=5", "unknown query parameter(s): limit"),
    ],
)
def test_a_bad_query_is_a_400_saying_what_is_wrong(app, finished_run, query, error):
    answer = app.test_client().get(f"/api/runs/{finished_run}/results?{query}")
    assert (answer.status_code, answer.get_json()) == (400, {"error": error})


@pytest.mark.parametrize("run_id", ["0123456789ab", "nope", "x" * 300])
def test_an_unknown_run_is_a_404(app, run_id):
    answer = app.test_client().get(f"/api/runs/{run_id}/results")
    assert answer.status_code == 404
    assert "error" in answer.get_json()


def test_the_export_answers_each_format_as_a_download(app, finished_run):
    web = app.test_client()
    answer = web.get(f"/api/runs/{finished_run}/results")
    assert answer.status_code == 200
    assert answer.mimetype == "application/x-ndjson"
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="optio-{finished_run}-finished.jsonl"'
    )
    rows = [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]
    assert [(r["job"], r["status"], r["result"], r["error"]) for r in rows] == [
        (0, "processed", "a", None),
        (1, "failed", None, "E: no"),
        (2, "processed", {"n": 2}, None),
    ]
    answer = web.get(f"/api/runs/{finished_run}/results?format=csv&status=failed")
    assert answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True), newline="")))
    assert rows[0] == list(export.COLUMNS) and len(rows) == 2
    assert rows[1][:7] == ["1", "", "failed", "", "E: no", "1", ""]
    assert rows[1][7].isdigit()


@pytest.mark.parametrize("answer", [None, [], ["only-0"]])
def test_a_slice_with_no_or_too_few_items_has_null_items(answer):
    chunks = export.rows(fake_read(OUTCOMES), 4, "all", lambda first, count: answer)
    items = [item for chunk in chunks for _, item in chunk]
    assert items == [answer[0] if answer else None, None, None, None]


#: The items of items_run: three chunks of the items hash (1,000 items a chunk), the last short.
ITEMS = [{"k": k, "mail": f"user{k}@example.com"} for k in range(2500)]


@pytest.fixture
def items_run(app) -> str:
    """A completed run started with ITEMS: job k returned 2k, job 1,234 failed."""
    answer = app.test_client().post("/api/runs", json={"items": ITEMS, "y": 600})
    assert answer.status_code == 201, answer.get_json()
    run_id = answer.get_json()["runId"]
    store = app_store(app)
    store.counting.mark_processed(run_id, {k: 2 * k for k in range(len(ITEMS)) if k != 1234})
    store.counting.fail_job(run_id, 1234, "E: no", attempts=1, backoff_s=0)
    return run_id


def test_each_row_of_a_run_with_items_holds_its_jobs_item(app, items_run):
    web = app.test_client()
    text = web.get(f"/api/runs/{items_run}/results").get_data(as_text=True)
    rows = [json.loads(line) for line in text.splitlines()]
    assert [(r["job"], r["item"], r["result"]) for r in rows] == [
        (k, item, None if k == 1234 else 2 * k) for k, item in enumerate(ITEMS)
    ]
    text = web.get(f"/api/runs/{items_run}/results?format=csv&status=failed").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["job"], json.loads(r["item"]), r["error"]) for r in rows] == [
        ("1234", ITEMS[1234], "E: no")
    ]


def test_items_for_holds_its_store_and_reads_outside_the_app_context(app, items_run, finished_run):
    with app.app_context():
        read = api.items_for(items_run)
        plain = api.items_for(finished_run)
    assert plain is export.no_items  # a run of x jobs reads no chunk
    assert read(0, 3) == ITEMS[:3]
    assert read(998, 4) == ITEMS[998:1002]  # across two chunks
    assert read(2000, 1000) == ITEMS[2000:]  # too few: the rest of the slice has null items
    assert read(3000, 1000) is None
