"""Request validation in pure functions: JSON bodies, the start of a run, the runs query."""

from __future__ import annotations

import re

import pytest

from optio.webapp.validation import (
    ApiError,
    Deadline,
    Start,
    check_deadline_rate,
    parse_json_object,
    validate_start,
)


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
    assert validate_start({"x": 3, "y": 0.5}) == Start(3, 0.5)
    assert validate_start({"x": 3, "y": 60}) == Start(3, 60.0)


def test_validate_start_takes_a_deadline_a_weight_and_max_in_flight():
    start = validate_start({"x": 3, "deadline": 90, "weight": 0.5, "maxInFlight": 2})
    assert start == Start(3, None, Deadline(in_seconds=90.0), 0.5, 2)
    at = validate_start({"x": 3, "deadline": "2026-12-05T07:00:00+01:00"}).deadline
    assert at == Deadline(at_ms=1_796_450_400_000)
    assert at.ms(1_796_450_399_000) == 1_796_450_400_000
    with pytest.raises(ApiError, match="deadline is in the past"):
        at.ms(1_796_450_400_000)
    assert Deadline(in_seconds=1.5).ms(1000) == 2500


@pytest.mark.parametrize(
    "body, error",
    [
        ({"x": 3}, "missing field: y (jobs per minute), or a deadline"),
        ({"x": 3, "y": 1, "deadline": 60}, "send y or deadline, not both"),
        ({"x": 3, "deadline": 0}, "deadline in seconds from now must be a number above 0"),
        ({"x": 3, "deadline": -5}, "deadline in seconds from now must be a number above 0"),
        ({"x": 3, "deadline": "soon"}, "deadline must be an ISO 8601 time with a timezone"),
        ({"x": 3, "deadline": "2026-12-05T06:00:00"}, "deadline needs a timezone"),
        ({"x": 3, "deadline": True}, "deadline must be an ISO 8601 time"),
        ({"x": 3, "deadline": 1e12}, "deadline must be at most"),
        ({"x": 3, "y": 1, "weight": 0}, "weight must be a number above 0 and at most 1000"),
        ({"x": 3, "y": 1, "weight": 1001}, "weight must be a number above 0 and at most 1000"),
        ({"x": 3, "y": 1, "weight": "2"}, "weight must be a number above 0"),
        ({"x": 3, "y": 1, "maxInFlight": 0}, "maxInFlight must be a whole number from 1"),
        ({"x": 3, "y": 1, "maxInFlight": 2.5}, "maxInFlight must be a whole number from 1"),
        ({"x": 3, "y": 1, "maxInFlight": True}, "maxInFlight must be a whole number from 1"),
    ],
)
def test_validate_start_refuses_bad_terms(body, error):
    with pytest.raises(ApiError) as err:
        validate_start(body)
    assert err.value.status == 400 and err.value.message.startswith(error), err.value.message


def test_a_deadline_too_near_for_max_y_is_refused():
    check_deadline_rate(100, 60_000, 0, 100)  # 100 a minute: just allowed
    with pytest.raises(ApiError, match="deadline too near: 101 jobs by then need 101 jobs"):
        check_deadline_rate(101, 60_000, 0, 100)


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
