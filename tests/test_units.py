"""Plain unit tests of pure functions."""

from __future__ import annotations

import pytest

from optio import config
from optio.tasks import _chunks, batch_size
from optio.validation import ApiError, parse_json_object, validate_start


def test_batch_size_is_one_up_to_100_jobs_per_second_then_grows_to_the_cap():
    assert batch_size(0.5) == 1
    assert batch_size(6_000) == 1  # 100/s
    assert batch_size(60_000) == 10  # 1,000/s
    assert batch_size(300_000) == 50  # 5,000/s
    assert batch_size(10_000_000) == config.MAX_BATCH


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
