"""optio.Throttle, what a job raises when the downstream says "slow down": the seconds it takes,
and ``Throttle.from_response`` reading a response's status and Retry-After."""

from __future__ import annotations

import pytest

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
