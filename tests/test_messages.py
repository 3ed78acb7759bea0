"""Error messages speak to people: numbers and limits as they are written, not 1e+06."""

from __future__ import annotations

import pytest

from optio import config
from optio.testing import wait_for
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


@pytest.mark.slow
def test_the_api_answers_limits_and_conflicts_in_plain_numbers(idle_system):
    too_fast = idle_system.post("/api/run", {"x": 10, "y": 4_000_000})
    assert too_fast.status_code == 400
    assert too_fast.json() == {"error": "y must be at most 2,000,000 jobs per minute"}

    big = idle_system.post("/api/run", {"x": 1_000_000, "y": 600_000})
    assert big.status_code == 201
    try:
        # once more than 1,000 are enqueued, ask for fewer than that
        enqueued = wait_for(
            lambda: (n := idle_system.get("/api/status").json()["enqueued"]) >= 1_000 and n,
            20,
            "1,000 jobs enqueued",
        )
        below = idle_system.put("/api/run", {"x": 1})
        assert below.status_code == 400
        error = below.json()["error"]
        assert error.startswith("x (1) cannot be below the ")
        shown = int(error.split("the ")[1].split(" jobs")[0].replace(",", ""))
        assert shown >= enqueued and "," in error.split("the ")[1]
    finally:
        idle_system.post("/api/stop")

    oversized = idle_system.post("/api/run", {"x": 1, "y": 1, "pad": "a" * 20_000})
    assert oversized.status_code == 413
    assert oversized.json() == {"error": "body too large: at most 16 KiB (16,384 bytes)"}
