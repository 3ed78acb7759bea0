"""Each job's outcome as the run keeps it (optio/store/outcomes.py): the record the worker sends,
and the export's reads of a slice of jobs (read_outcomes.lua) on the session's redis-server."""

from __future__ import annotations

import json
import math

import pytest

from optio.config import Settings
from optio.names import results_key
from optio.redis_state import RunStore
from optio.store.outcomes import Outcome, Record, encode, ms_text, parse, result_json

T0 = 1_795_653_433_000


class Opaque:
    def __str__(self) -> str:
        return "an opaque object"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "value, text",
    [
        (None, ""),
        ("abc", '"abc"'),
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        ({"b": [1, 2], "a": None}, '{"b":[1,2],"a":null}'),
        ((1, "x"), '[1,"x"]'),
        ("é\n", '"é\\n"'),
        (math.nan, '"nan"'),  # not JSON: its str()
        ({1, 2}, '"{1, 2}"'),
        (b"\x00", "\"b'\\\\x00'\""),
        (Opaque(), '"an opaque object"'),
        (Unprintable(), '"<Unprintable that cannot be printed>"'),
        (False, "false"),
        ("name-\udcff", '"name-\\\\udcff"'),  # a lone surrogate: its escape, as text
        ({"k\udcff": 1}, '{"k\\\\udcff":1}'),
    ],
)
def test_a_return_value_is_kept_as_json(value, text):
    assert result_json(value, 1000) == text
    if text:
        json.loads(text)


def test_an_int_too_long_to_print_is_named():
    assert result_json(10**5000, 1000) == '"<int that cannot be printed>"'


def test_a_long_string_is_cut_to_the_cap_and_stays_a_string():
    text = result_json("x" * 5000, 100)
    assert len(text.encode()) <= 100
    value = json.loads(text)
    assert value.startswith("x" * 50) and value.endswith("… [cut: 5000 bytes]")


def test_a_long_object_becomes_its_cut_json_text_as_a_string():
    big = {"rows": list(range(2000))}
    text = result_json(big, 200)
    assert len(text.encode()) <= 200
    value = json.loads(text)
    assert value.startswith('{"rows":[0,1,2,') and value.endswith("bytes]")


def test_text_that_quoting_makes_longer_is_cut_until_it_fits():
    text = result_json("\x01" * 1000, 100)  # each character is 6 bytes in JSON
    assert len(text.encode()) <= 100
    assert json.loads(text).endswith("… [cut: 1000 bytes]")


@pytest.mark.parametrize(
    "seconds, text", [(None, ""), (0, "0"), (0.0015, "1.5"), (2, "2000"), (0.0000004, "0")]
)
def test_run_times_are_ms_to_the_microsecond(seconds, text):
    assert ms_text(seconds) == text


def test_a_record_reads_back():
    assert encode({"a": 1}, 0.25, 100) == '250|{"a":1}'
    assert parse(f'{T0}|250|{{"a":1}}') == Record(T0, 250.0, '{"a":1}')
    assert parse(f"{T0}||") == Record(T0, None, None)
    assert parse(None) == Record(None, None, None)
    # a result stored before records had times: its text, as a JSON string
    assert parse("ok-3") == Record(None, None, '"ok-3"')
    assert parse(f'{T0}|1|"a|b"') == Record(T0, 1.0, '"a|b"')


def test_a_slice_lists_each_job_in_order_as_processed_failed_or_pending(store):
    run_id = store.runs.start_run(6, 600, now_ms=T0)
    store.counting.mark_processed(
        run_id, {0: "zero", 2: None, 3: [3]}, seconds={0: 0.001, 2: 0.002}, now_ms=T0 + 10
    )
    fail = store.counting.fail_job
    assert fail(run_id, 1, "E: one", attempts=2, backoff_s=0, now_ms=T0)[0] == "retry"
    assert fail(run_id, 1, "E: one", attempts=2, backoff_s=0, seconds=0.5, now_ms=T0 + 20)[0] == (
        "failed"
    )
    assert fail(run_id, 4, "E: four", attempts=3, backoff_s=0, now_ms=T0)[0] == "retry"
    store.counting.mark_processed(run_id, {4: 4}, seconds={4: 0.003}, now_ms=T0 + 30)
    assert store.outcomes.read(run_id, 0, 6) == [
        Outcome(0, "processed", '"zero"', None, 1, 1.0, T0 + 10),
        Outcome(1, "failed", None, "E: one", 2, 500.0, T0 + 20),
        Outcome(2, "processed", None, None, 1, 2.0, T0 + 10),
        Outcome(3, "processed", "[3]", None, 1, None, T0 + 10),
        Outcome(4, "processed", "4", None, 2, 3.0, T0 + 30),  # failed once, then returned
        Outcome(5, "pending"),
    ]
    assert store.outcomes.read(run_id, 4, 1) == [
        Outcome(4, "processed", "4", None, 2, 3.0, T0 + 30)
    ]
    assert store.outcomes.read(run_id, 100, 3) == [Outcome(j, "pending") for j in (100, 101, 102)]


def test_after_retry_failed_a_job_is_pending_then_shows_its_new_outcome(store):
    run_id = store.runs.start_run(2, 600, now_ms=T0)
    store.counting.mark_processed(run_id, {0: "a"}, now_ms=T0 + 1)
    store.counting.fail_job(run_id, 1, "E: no", attempts=1, backoff_s=0, now_ms=T0 + 2)
    assert store.outcomes.read(run_id, 1, 1)[0].status == "failed"
    store.runs.retry_failed(run_id, now_ms=T0 + 3)
    assert store.outcomes.read(run_id, 0, 2) == [
        Outcome(0, "processed", '"a"', None, 1, None, T0 + 1),
        Outcome(1, "pending"),
    ]
    store.counting.mark_processed(run_id, {1: "yes"}, seconds={1: 0.004}, now_ms=T0 + 4)
    assert store.outcomes.read(run_id, 1, 1) == [
        Outcome(1, "processed", '"yes"', None, 1, 4.0, T0 + 4)
    ]


def test_a_message_given_up_fails_its_jobs_with_a_record_without_run_time(client):
    store = RunStore(client, Settings(max_deliveries=1))
    run_id = store.runs.start_run(2, 600, now_ms=T0)
    store.leases.lease_message(run_id, "0:2", 0, 2, "w1", 1000, now_ms=T0)
    store.leases.lease_message(run_id, "0:2", 0, 2, "w2", 1000, now_ms=T0 + 5000)
    outcomes = store.outcomes.read(run_id, 0, 2)
    assert [(o.status, o.attempts, o.ms, o.finished_at) for o in outcomes] == [
        ("failed", 0, None, T0 + 5000)
    ] * 2
    assert outcomes[0].error.startswith("delivered 1 times without finishing")
    assert client.hget(results_key(run_id), "0") == f"{T0 + 5000}||"
