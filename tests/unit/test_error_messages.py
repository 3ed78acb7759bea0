"""Error messages speak to people: numbers and limits as they are written, not 1e+06 (the real
web process's answers: tests/system/test_error_messages.py)."""

from __future__ import annotations

import pytest

from optio import config
from optio.webapp.validation import ApiError, number, validate_x, validate_y


@pytest.mark.parametrize(
    "value, text",
    [
        (1_000_000.0, "1,000,000"),
        (10_000_000, "10,000,000"),
        (1500.5, "1,500.5"),
        (0.5, "0.5"),
        (60, "60"),
    ],
)
def test_number_writes_thousands_separators_and_no_exponent(value, text):
    assert number(value) == text


def test_limit_messages_name_the_limit_in_full():
    with pytest.raises(ApiError) as y_err:
        validate_y(config.SETTINGS.max_y * 2)
    assert y_err.value.message == "y must be at most 2,000,000 jobs per minute"
    with pytest.raises(ApiError) as x_err:
        validate_x(config.SETTINGS.max_x + 1)
    assert x_err.value.message == "x must be at most 10,000,000"
