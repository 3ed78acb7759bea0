"""Request validation in pure functions: JSON bodies, the start of a run, the runs query."""

from __future__ import annotations

import re

import pytest

from optio.webapp.validation import ApiError, parse_json_object, validate_start


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
