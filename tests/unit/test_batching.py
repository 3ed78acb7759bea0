"""How jobs are batched: jobs per message as the rate grows, and messages per chunk of a tick."""

from __future__ import annotations

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
