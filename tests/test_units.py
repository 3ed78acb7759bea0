"""Plain unit tests of pure functions."""

from __future__ import annotations

import ast
import os
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


def test_the_relay_keeps_the_newest_state_of_a_run_whatever_the_order():
    from optio.webapp.relay import Relay

    relay = Relay(socketio=None, read_state=dict, settings=Settings())
    relay.offer({"runId": "a", "seq": 5, "processed": 50})
    relay.offer({"runId": "a", "seq": 4, "processed": 40})  # late: dropped
    assert relay.latest["processed"] == 50
    relay.offer({"runId": "b", "seq": 1, "processed": 0})  # another run: taken
    assert relay.latest["runId"] == "b"


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


def test_storable_text_replaces_what_utf8_cannot_encode():
    from optio.store.text import storable

    undecodable = os.fsdecode(b"name-\xff")  # a file name that is not UTF-8
    assert undecodable == "name-\udcff"
    assert storable(undecodable, 100) == "name-\\udcff"  # its escape, as Python writes it
    assert storable("\ud800 and \udfff", 100) == "\\ud800 and \\udfff"
    for text in ("plain", "é ✓ 😀", "", "nul\x00 byte"):
        assert storable(text, 100) == text  # storable text is kept as it is
    assert storable(undecodable, 100).encode("utf-8")  # strict UTF-8 encodes it now


def test_storable_text_is_cut_at_a_character_boundary_and_says_so():
    from optio.store.text import storable

    for text in ("x" * 200, "é" * 100, "😀" * 50, "\udcff" * 50):
        escaped = text.encode("utf-8", "backslashreplace")
        tail = f"… [cut: {len(escaped)} bytes]"
        stored = storable(text, 64)
        assert stored.endswith(tail), stored
        kept = stored[: -len(tail)].encode()
        # as much of the text as fits, less at most the 3 bytes of a character cut in two
        assert escaped.startswith(kept) and 64 - 3 <= len(kept) + len(tail.encode()) <= 64
        assert storable(stored, 64) == stored  # storing it again changes nothing
    assert storable("é" * 32, 64) == "é" * 32  # exactly 64 bytes: not cut
    assert storable("é" * 33, 64) != "é" * 33


def test_error_text_names_the_exception_whatever_its_message():
    from optio.store.text import MAX_ERROR_BYTES, error_text

    assert error_text(ValueError("job 7 always fails")) == "ValueError: job 7 always fails"
    assert error_text(OSError("cannot read name-\udcff")) == "OSError: cannot read name-\\udcff"
    long = error_text(RuntimeError("é" * 5000))
    assert len(long.encode()) <= MAX_ERROR_BYTES and long.startswith("RuntimeError: éé")

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise TypeError("no")

    assert error_text(Unprintable()) == "Unprintable: <str() of the exception raised TypeError>"


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
