"""Items in, piece by piece: the parsing of NDJSON and CSV uploads (pure functions), the chunks
they are written in, a worker's reads of them on the session's redis-server, and the route
through Flask's test client. Over real sockets against real processes:
tests/processes/test_items.py."""

from __future__ import annotations

import io
import json

import pytest

from optio.names import items_key, run_keys
from optio.store.errors import XFixedByItemsError
from optio.store.items import ITEMS_PER_CHUNK, Items, chunks_of
from optio.webapp.uploads import (
    Limits,
    body_chunks,
    csv_items,
    json_items,
    lines,
    ndjson_items,
    upload_items,
    write_chunks,
)
from optio.webapp.validation import ApiError, validate_items_body, validate_upload_query
from optio.worker.items import ItemReader, takes_item
from tests.unit.apps import build_app

LIMITS = Limits(max_items=100, max_item_bytes=64)


def refused(call, status: int) -> str:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def test_lines_keep_their_endings_across_pieces():
    pieces = [b'{"a"', b": 1}\n2\r", b"\n\n3"]
    assert list(lines(pieces, 100)) == [b'{"a": 1}\n', b"2\r\n", b"\n", b"3"]


def test_a_line_too_long_is_refused_before_it_is_held_whole():
    def endless():
        yield b"1\n"
        while True:
            yield b"x" * 50

    message = refused(lambda: list(lines(endless(), 120)), 413)
    assert message.startswith("line 2: longer than 120 bytes")


def test_ndjson_items_are_compact_json_and_blank_lines_are_skipped():
    text = b'{"b": [1, 2],  "a": "\xc3\xa9"}\n\n  7 \n"x"\n\n'
    assert list(ndjson_items(lines([text], 200), LIMITS)) == ['{"b":[1,2],"a":"é"}', "7", '"x"']


@pytest.mark.parametrize(
    "bad, status, start",
    [
        (b'1\n{"a": \n', 400, "line 2: not valid JSON"),
        (b"1\n2\nNaN\n", 400, "line 3: not valid JSON"),
        (b"1\n[1] [2]\n", 400, "line 2: not valid JSON"),
        (b'"' + b"y" * 70 + b'"\n', 413, "line 1: the item is larger than 64 bytes"),
    ],
)
def test_a_bad_ndjson_line_is_named(bad, status, start):
    message = refused(lambda: list(ndjson_items(lines([bad], 1000), LIMITS)), status)
    assert message.startswith(start), message


def test_a_lone_surrogate_keeps_its_escape():
    assert list(ndjson_items([b'"\\ud800"\n'], LIMITS)) == ['"\\ud800"']


def test_csv_rows_are_objects_keyed_by_the_header():
    text = '\ufeffemail,note\r\na@x.org,"one, two"\r\n\r\nb@x.org,"line\nbreak"\r\n'
    got = [json.loads(item) for item in csv_items(lines([text.encode()], 200), LIMITS)]
    assert got == [
        {"email": "a@x.org", "note": "one, two"},
        {"email": "b@x.org", "note": "line\nbreak"},
    ]


@pytest.mark.parametrize(
    "text, start",
    [
        ("a,b\n1,2\n3,4,5\n", "line 3: 3 fields, but the header row has 2"),
        ('a,b\n"x\ny",2\n3\n', "line 4: 1 fields"),  # a quoted line break counts as a line
        ("a,b\n1,2\n\xff\n", "line 3: not UTF-8 text"),
        ("a,a\n1,2\n", "line 1: the header row names 'a' twice"),
        ("\n1,2\n", "line 1: the CSV has no header row"),
        ('a,b\n1,"2"x\n', "line 2: not valid CSV"),
    ],
)
def test_a_bad_csv_line_is_named(text, start):
    raw = text.encode("latin-1") if "\xff" in text else text.encode()
    message = refused(lambda: list(csv_items(lines([raw], 200), LIMITS)), 400)
    assert message.startswith(start), message


def test_a_csv_field_past_the_csv_modules_limit_is_an_item_too_large():
    limits = Limits(max_items=10, max_item_bytes=200_000)
    text = b"a,b\n1," + b"y" * 140_000 + b"\n"
    message = refused(lambda: list(csv_items(lines([text], 500_000), limits)), 413)
    assert message.startswith("line 2: the item is larger than 200,000 bytes")


def test_upload_items_picks_the_parser_by_media_type():
    assert list(upload_items("text/csv", [b"a\n1\n"], LIMITS)) == ['{"a":"1"}']
    message = refused(lambda: list(upload_items("application/x-ndjson", [b"a\n"], LIMITS)), 400)
    assert message.startswith("line 1: not valid JSON")


def test_body_chunks_read_content_length_and_refuse_a_short_body():
    body = io.BytesIO(b"x" * 100_000)
    assert b"".join(body_chunks(body.read, 100_000)) == b"x" * 100_000
    message = refused(lambda: list(body_chunks(io.BytesIO(b"abc").read, 10)), 400)
    assert message == "the upload was cut off after 3 of 10 bytes (Content-Length)"

    def broken(_: int) -> bytes:
        raise OSError("unexpected end of file while parsing chunked data")

    assert "cut off" in refused(lambda: list(body_chunks(broken, None)), 400)
    assert b"".join(body_chunks(io.BytesIO(b"chunked").read, None)) == b"chunked"


def test_write_chunks_writes_whole_chunks_in_order():
    written: list[tuple[int, int]] = []
    limits = Limits(max_items=10_000, max_item_bytes=64)
    count = write_chunks(
        (str(k) for k in range(2500)), lambda n, chunk: written.append((n, len(chunk))), limits
    )
    assert count == 2500
    assert written == [(0, 1000), (1, 1000), (2, 500)]


def test_write_chunks_refuses_more_than_the_limit_and_none():
    written: list[int] = []
    limits = Limits(max_items=1500, max_item_bytes=64)
    items = (str(k) for k in range(1501))
    message = refused(lambda: write_chunks(items, lambda n, c: written.append(n), limits), 413)
    assert message == "too many items: at most 1,500 a run (OPTIO_MAX_ITEMS)"
    assert written == [0]  # the second chunk, which would hold item 1,501, was never written
    assert refused(lambda: write_chunks(iter([]), lambda n, c: None, limits), 400)


def test_max_x_bounds_items_when_it_is_lower():
    assert "OPTIO_MAX_X" in Limits(100, 10, max_x=40).too_many().message
    assert "at most 100" in Limits(100, 10, max_x=400).too_many().message
    assert refused(lambda: list(json_items(list(range(41)), Limits(100, 10, max_x=40))), 413)


@pytest.mark.parametrize(
    "body, start",
    [
        ({"items": [1], "x": 1, "y": 1}, "send items or x, not both"),
        ({"items": [1], "y": 1, "z": 0}, "unknown field(s): z"),
        ({"items": {"a": 1}, "y": 1}, "items must be a JSON array, not an object"),
        ({"items": [], "y": 1}, "no items"),
        ({"items": [1]}, "missing field: y"),
        ({"items": [1], "y": "1"}, "y must be a number"),
    ],
)
def test_a_bad_items_body_is_refused(body, start):
    message = refused(lambda: validate_items_body(body), 400)
    assert message.startswith(start), message


def test_the_upload_query_carries_y_or_a_deadline_and_the_runs_terms():
    assert validate_upload_query({"y": "600"}).y == 600
    assert validate_upload_query({"y": "0.5"}).y == 0.5
    start = validate_upload_query({"deadline": "90", "weight": "2.5", "maxInFlight": "4"})
    assert (start.y, start.deadline.in_seconds, start.weight, start.max_in_flight) == (
        None,
        90.0,
        2.5,
        4,
    )
    at = validate_upload_query({"deadline": "2026-12-05T06:00:00Z"}).deadline
    assert at.at_ms == 1_796_450_400_000
    for query, start in [
        ({}, "missing query parameter: y"),
        ({"y": "6e2"}, "y must be a number"),
        ({"y": "0"}, "y must be greater than 0"),
        ({"y": "60", "x": "1"}, "unknown query parameter(s): x"),
        ({"y": "60", "deadline": "60"}, "send y or deadline, not both"),
        ({"deadline": "0"}, "deadline in seconds from now must be a number above 0"),
        ({"deadline": "noon"}, "deadline must be an ISO 8601 time"),
        ({"y": "1", "weight": "0"}, "weight must be a number above 0"),
        ({"y": "1", "weight": "-1"}, "weight must be a number above 0"),
        ({"y": "1", "maxInFlight": "0"}, "maxInFlight must be a whole number from 1"),
        ({"y": "1", "maxInFlight": "2.5"}, "maxInFlight must be a whole number from 1"),
    ]:
        assert refused(lambda q=query: validate_upload_query(q), 400).startswith(start)


def test_takes_item_reads_the_signature():
    def two(run_id, job_id):
        return None

    def three(run_id, job_id, item):
        return None

    def more(run_id, job_id, item=None, *rest):
        return None

    assert not takes_item(two)
    assert takes_item(three) and takes_item(more)


class CountingItems(Items):
    """The store part, counting the round trips of its reads."""

    reads = 0

    def read_chunks(self, run_id, numbers):
        self.reads += 1
        return super().read_chunks(run_id, numbers)


def test_a_message_reads_its_items_in_one_round_trip_and_the_next_none(store):
    run_id = "abcdefabcdef"
    items = CountingItems(store.client, store.settings)
    for n in range(3):
        items.write_chunk(run_id, n, [json.dumps({"k": n * 1000 + i}) for i in range(1000)])
    reader = ItemReader(items)
    assert reader.items_for(run_id, [998, 999, 1000, 1001]) == {
        k: {"k": k} for k in (998, 999, 1000, 1001)
    }
    assert items.reads == 1
    assert reader.items_for(run_id, [1500]) == {1500: {"k": 1500}}  # chunk 1 is kept
    assert reader.items_for(run_id, [7]) == {7: {"k": 7}}
    assert items.reads == 1
    assert reader.items_for(run_id, [2999]) == {2999: {"k": 2999}}
    assert items.reads == 2
    # a run without items: asked once, then known
    assert reader.items_for("000000000000", [1]) is None
    assert reader.items_for("000000000000", [2]) is None
    assert items.reads == 3
    assert list(chunks_of(999, 1000)) == [0, 1] and ITEMS_PER_CHUNK == 1000


def test_iter_items_reads_a_range_in_job_order(store):
    run_id = "0123456789ab"
    for n in range(25):
        size = 1000 if n < 24 else 300  # 24,300 items
        store.items.write_chunk(run_id, n, [str(n * 1000 + i) for i in range(size)])
    assert list(store.items.iter_items(run_id, 0, 24_299)) == [(k, k) for k in range(24_300)]
    assert list(store.items.iter_items(run_id, 998, 1001)) == [(k, k) for k in range(998, 1002)]
    tail = list(store.items.iter_items(run_id, 24_298, 30_000))
    assert tail == [(24_298, 24_298), (24_299, 24_299)]
    assert list(store.items.iter_items("000000000000", 0, 10)) == []


def test_items_expire_with_the_run_and_are_deleted_with_it(store):
    run_id = "abcdef012345"
    store.items.write_chunk(run_id, 0, ['"a"', '"b"'])
    assert 0 < store.client.ttl(items_key(run_id)) <= 3600  # an upload not started yet
    store.runs.start_run(2, 60, run_id=run_id)
    assert store.client.ttl(items_key(run_id)) == -1  # lasts as long as the running run
    assert items_key(run_id) in run_keys(run_id)
    with pytest.raises(XFixedByItemsError):
        store.runs.update_run(x=5)
    store.runs.update_run(x=2, y=120)  # the same x, and a new rate, are fine
    store.runs.stop_run()
    assert 0 < store.client.ttl(items_key(run_id)) <= store.settings.run_ttl


class StartsARunMidway(io.BytesIO):
    """A body that starts another run (as a second client would) once its first half is
    read."""

    def __init__(self, store, body: bytes) -> None:
        super().__init__(body)
        self.store = store
        self.half = len(body) // 2
        self.started: list[str] = []

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.half and not self.started:
            self.started.append(self.store.runs.start_run(1, 1))
        return super().read(min(size or self.half, self.half))


def test_a_run_started_during_an_upload_runs_beside_it(redis_server, redis_db):
    """Runs start beside each other: neither the run started midway nor the upload is
    refused, and each keeps its own items (the other has none)."""
    app = build_app(redis_server, redis_db())
    store = app.extensions["optio"].store
    body = b"".join(f"{k}\n".encode() for k in range(2500))
    midway = StartsARunMidway(store, body)
    response = app.test_client().post(
        "/api/runs?y=60",
        input_stream=midway,
        headers={
            "Content-Type": "application/x-ndjson",
            "Content-Length": str(len(body)),
        },
    )
    assert response.status_code == 201, response.get_json()
    uploaded = response.get_json()["runId"]
    assert response.get_json()["xTotal"] == 2500
    assert store.runs.active_run_ids() == [uploaded, *midway.started]
    assert store.client.keys("*:items") == [items_key(uploaded)]
    answer = app.test_client().post("/api/runs", json={"items": ["a", {"b": 1}], "y": 60})
    assert answer.status_code == 201, answer.get_json()
    run_id = answer.get_json()["runId"]
    assert answer.get_json()["xTotal"] == 2
    assert store.client.hget(items_key(run_id), "0") == '["a",{"b":1}]'
    for active in store.runs.active_run_ids():
        store.runs.stop_run(active)
    answer = app.test_client().post("/api/runs", json={"items": ["a", {"b": 1}], "y": 60})
    assert answer.status_code == 201, answer.get_json()
    run_id = answer.get_json()["runId"]
    assert answer.get_json()["xTotal"] == 2
    assert store.client.hget(items_key(run_id), "0") == '["a",{"b":1}]'
    store.runs.stop_run()
