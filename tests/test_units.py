"""Plain unit tests of pure functions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from optio.config import Settings
from optio.webapp.validation import ApiError, parse_json_object, validate_start
from optio.worker.context import batch_size
from optio.worker.tick import _chunks


def test_batch_size_is_one_up_to_100_jobs_per_second_then_grows_to_the_cap():
    assert batch_size(0.5, 100) == 1
    assert batch_size(6_000, 100) == 1  # 100/s
    assert batch_size(60_000, 100) == 10  # 1,000/s
    assert batch_size(300_000, 100) == 50  # 5,000/s
    assert batch_size(10_000_000, 100) == 100
    assert batch_size(10_000_000, 7) == 7


def test_chunks_hold_about_ten_jobs_and_at_least_one_message():
    singles = [f"{i}:1" for i in range(25)]
    assert [len(c) for c in _chunks(singles)] == [10, 10, 5]
    assert _chunks(["0:50", "50:50", "7:1:r2"]) == [["0:50"], ["50:50"], ["7:1:r2"]]
    assert _chunks([]) == []


@pytest.mark.parametrize(
    "raw, mimetype, status",
    [
        (b"{}", "text/plain", 415),
        (b"", "application/json", 400),
        (b'{"x": NaN}', "application/json", 400),
        (b"[]", "application/json", 400),
    ],
)
def test_parse_json_object_refuses(raw, mimetype, status):
    with pytest.raises(ApiError) as err:
        parse_json_object(raw, mimetype)
    assert err.value.status == status


def test_validate_start_accepts_integers_and_fractions():
    assert validate_start({"x": 3, "y": 0.5}) == (3, 0.5)
    assert validate_start({"x": 3, "y": 60}) == (3, 60.0)


SECRET = "hunter2"
REDIS_URLS = [
    ("userinfo", f"redis://alice:{SECRET}@db.example:6379/0", "redis://***@db.example:6379/0"),
    ("password only", f"redis://:{SECRET}@db.example/0", "redis://***@db.example/0"),
    ("password query", f"redis://db.example:6379/0?password={SECRET}", None),
    ("username query", f"redis://db.example/0?username={SECRET}&password=x&db=1", None),
    ("TLS", f"rediss://:{SECRET}@db.example:6380/0?ssl_cert_reqs=none", None),
    ("TLS key password", f"rediss://db.example/0?ssl_password={SECRET}", None),
    ("sentinel", f"redis+sentinel://:{SECRET}@s1:26379/mymaster/0", None),
    ("sentinel list", f"sentinel://:{SECRET}@s1:26379;sentinel://:{SECRET}@s2:26379", None),
    ("sentinel password", f"sentinel://s1:26379?sentinel_password={SECRET}", None),
    ("unix socket", f"unix:///run/redis.sock?db=0&password={SECRET}", None),
    ("encoded userinfo", "redis://:hunter%232@db.example/0", None),
    ("# in the password", "redis://:hun#ter2@db.example/0", "redis://***@db.example/0"),
    ("? in the password", "redis://:hun#ter?2@db.example/0", "redis://***@"),
    ("@ in a query value", f"redis://db.example/0?password=a@{SECRET}", "redis://***@"),
]


@pytest.mark.parametrize(
    "url, expected", [c[1:] for c in REDIS_URLS], ids=[c[0] for c in REDIS_URLS]
)
def test_redacted_url_hides_every_credential_form(url, expected):
    from optio.webapp.security import redacted_url

    shown = redacted_url(url)
    for secret in (SECRET, "hunter%232", "hun#ter", "ter?2", "alice"):
        assert secret not in shown, shown
    assert "***" in shown
    if expected is not None:
        assert shown == expected


def test_redacted_url_keeps_what_helps_find_the_server():
    from optio.webapp.security import redacted_url

    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert (
        redacted_url("unix:///run/redis.sock?db=2&password=pw")
        == "unix:///run/redis.sock?db=2&password=***"
    )
    assert (
        redacted_url("redis://h:1/0?username=u&password=p&db=1")
        == "redis://h:1/0?username=***&password=***&db=1"
    )


class Stored:
    """The relay's read of the stored state (the web app's ``current_state``), reads counted."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self.reads = 0

    def __call__(self) -> dict:
        self.reads += 1
        return dict(self.state)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def subscribed_relay(stored: Stored, clock: Clock):
    """A relay that has just (re)subscribed: it read the stored state once."""
    from optio.webapp.relay import Relay

    relay = Relay(socketio=None, read_state=stored, settings=Settings(), clock=clock)
    relay.resync()
    assert relay.latest == stored.state and stored.reads == 1
    return relay


def test_the_relay_takes_each_next_state_of_its_run_without_reading_the_store():
    stored, clock = Stored({"runId": "a", "seq": 5}), Clock(100.0)
    relay = subscribed_relay(stored, clock)
    for seq in range(6, 10_006):
        relay.offer({"runId": "a", "seq": seq})
        clock.t += 0.001
        relay.poll()
    assert relay.latest == {"runId": "a", "seq": 10_005}
    assert stored.reads == 1  # the read at subscription only


def test_a_state_the_channel_cannot_vouch_for_is_taken_from_the_store_within_a_second():
    stored, clock = Stored({"runId": "a", "seq": 5, "processed": 50}), Clock(100.0)
    relay = subscribed_relay(stored, clock)
    clock.t = 102.0
    relay.offer({"runId": "a", "seq": 10**9, "processed": 999})  # forged, far ahead
    assert relay.latest["seq"] == 5 and stored.reads == 2  # checked at once, never taken
    relay.offer({"runId": "a", "seq": 6, "processed": 60})  # the next real one
    assert relay.latest["processed"] == 60 and stored.reads == 2
    relay.offer({"runId": "a", "seq": 4, "processed": 40})  # late: dropped, checked later
    stored.state = {"runId": "a", "seq": 7, "processed": 70}
    clock.t = 102.5
    relay.poll()  # the store was read half a second ago
    assert relay.latest["processed"] == 60 and stored.reads == 2
    clock.t = 103.0
    relay.poll()
    assert relay.latest["processed"] == 70 and stored.reads == 3
    relay.poll()
    assert stored.reads == 3  # nothing left to check

    # a new run: its state is taken from the store, which says which run is watched
    stored.state = {"runId": "b", "seq": 2, "processed": 0}
    clock.t = 105.0
    relay.offer({"runId": "b", "seq": 1, "processed": 0})
    assert relay.latest == stored.state and stored.reads == 4
    relay.offer({"runId": "b", "seq": 3, "processed": 999})  # forged with the next seq: taken
    stored.state = {"runId": "b", "seq": 3, "processed": 30}
    relay.offer({"runId": "b", "seq": 3, "processed": 30})  # the real one it hid
    clock.t = 106.0
    relay.poll()
    assert relay.latest == stored.state and stored.reads == 5


def test_messages_that_are_not_a_state_are_ignored_with_a_warning_now_and_then(caplog):
    import logging

    stored, clock = Stored({"runId": "a", "seq": 5}), Clock(100.0)
    relay = subscribed_relay(stored, clock)
    bad = [
        b"\xff\xfe\x00 not UTF-8",
        b"[1, 2, 3]",
        b"[" * 100_000,
        b"42",
        b"null",
        b"{",
        b'{"seq": 6}',
        b'{"runId": "a", "seq": "6"}',
        b'{"runId": "a", "seq": true}',
    ]
    with caplog.at_level(logging.WARNING, logger="optio.webapp.relay"):
        for data in bad:
            relay.receive(data)
        clock.t += 10.0
        relay.receive(b'["late"]')
    assert relay.ignored == len(bad) + 1 and relay.received == 0
    assert relay.latest == stored.state
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("[api] Ignored 1 message(s) on optio:progress that are not")
    assert warnings[1].startswith(f"[api] Ignored {len(bad)} message(s) on optio:progress")
    relay.receive('{"runId": "a", "seq": 6}')  # text, as from a client that decodes
    assert relay.latest == {"runId": "a", "seq": 6} and relay.received == 1


#: A fixed clock for Throttle.from_response: Tue, 14 Nov 2023 22:13:20 GMT.
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "value, wait",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100.0),  # IMF-fixdate
        ("Tuesday, 14-Nov-23 22:15:00 GMT", 100.0),  # RFC 850
        ("Tue Nov 14 22:15:00 2023", 100.0),  # asctime (GMT)
        ("Tue, 14 Nov 2023 22:10:00 GMT", 0.0),  # in the past: now
        ("Sun, 14 Nov 2077 10:13:20 GMT", 1_704_110_400.0),  # far: capped by the worker
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.7e9", None),
        ("nan", None),
        ("inf", None),
        ("Tue, 14 Nov 2023 25:99:00 GMT", None),
        ("Tue, 14 Nov 99999 22:15:00 GMT", None),
    ],
)
def test_from_response_reads_retry_after_as_seconds_or_an_http_date(value, wait):
    from optio import Throttle

    headers = {} if value is None else {"Retry-After": value}
    throttle = Throttle.from_response(429, headers, now=NOW)
    assert isinstance(throttle, Throttle) and throttle.retry_after == wait


def test_from_response_throttles_on_429_and_503_only():
    from http import HTTPStatus

    from optio import Throttle

    assert Throttle.from_response(503, {"Retry-After": "30"}, now=NOW).retry_after == 30
    assert Throttle.from_response(HTTPStatus.TOO_MANY_REQUESTS, {}, now=NOW).retry_after is None
    for status in (200, 204, 400, 404, 500, 502, 504):
        assert Throttle.from_response(status, {"Retry-After": "30"}, now=NOW) is None


def test_from_response_takes_the_headers_of_common_http_clients():
    from email.message import Message

    from requests.structures import CaseInsensitiveDict

    from optio import Throttle

    message = Message()  # urllib's HTTPError.headers, http.client's response.headers
    message["Retry-After"] = "9"
    pairs = [("Content-Type", "text/plain"), ("retry-after", "8"), ("Retry-After", "99")]
    cased = CaseInsensitiveDict({"RETRY-AFTER": "7"})  # requests' response.headers
    plain = {"retry-after": "6"}
    waits = [
        Throttle.from_response(429, h, now=NOW).retry_after for h in (message, pairs, cased, plain)
    ]
    assert waits == [9, 8, 7, 6]


def test_throttle_takes_seconds_from_zero_to_infinity_and_refuses_anything_else():
    import math

    from optio import Throttle

    assert Throttle(0).retry_after == 0 and Throttle(2.5).retry_after == 2.5
    assert Throttle(None).retry_after is None
    assert Throttle(math.inf).retry_after == math.inf  # as long as allowed: the cap
    for bad in (-1, -0.001, math.nan):
        with pytest.raises(ValueError, match="retry_after must be a number of seconds >= 0"):
            Throttle(bad)
    for wrong in ("5", True, [1]):
        with pytest.raises(TypeError, match="retry_after must be a number of seconds"):
            Throttle(wrong)


@pytest.mark.parametrize(
    "query, error",
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 100"),
        ({"limit": "101"}, "limit must be"),
        ({"limit": "-1"}, "limit must be"),
        ({"limit": "2.5"}, "limit must be"),
        ({"before": "../../etc"}, "before must be a run id"),
        ({"before": "ABCDEF012345"}, "before must be a run id"),
        ({"page": "2"}, "unknown query parameter(s): page"),
    ],
)
def test_runs_queries_are_checked(query, error):
    from optio.webapp.validation import validate_runs_query

    with pytest.raises(ApiError, match=re.escape(error)):
        validate_runs_query(query)


def test_runs_query_defaults():
    from optio.webapp.validation import validate_runs_query

    assert validate_runs_query({}) == (20, None)
    assert validate_runs_query({"limit": "5", "before": "0123456789ab"}) == (5, "0123456789ab")


def test_webhook_signature_and_backoff():
    import hashlib
    import hmac

    from optio.worker.webhooks import backoff, payload, signature

    body = payload({"runId": "a", "status": "completed", "webhook": "pending"})
    assert b"webhook" not in body
    assert signature(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert [backoff(s) for s in (0, 0.5, 3, 30, 500)] == [1, 1, 3, 30, 60]


def test_no_function_in_optio_is_longer_than_60_lines():
    """Decorators included: a view and its @operation count together."""
    package = Path(__file__).resolve().parents[1] / "optio"
    long = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - first + 1 > 60:
                    long.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name}")
    assert long == []
