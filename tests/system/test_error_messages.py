"""Error messages speak to people: the real web process answers limits and conflicts in plain
numbers (the messages themselves: tests/unit/test_error_messages.py)."""

from __future__ import annotations

from optio.testing import wait_for


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
