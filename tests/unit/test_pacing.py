"""The measure of the pacing goal (pure functions)."""

from optio.testing.pacing import bound, most_in_window


def test_bound_is_a_tenth_of_a_second_of_jobs_plus_one():
    assert bound(600) == 2
    assert bound(6_000) == 11
    assert bound(60_000) == 101
    assert bound(60) == 2


def test_most_in_window_counts_a_closed_interval():
    assert most_in_window([]) == 0
    assert most_in_window([0.0, 0.1, 0.2]) == 2  # both ends of one 100 ms interval
    assert most_in_window([0.0, 0.1001, 0.2002]) == 1
    assert most_in_window([0.5, 0.0, 0.52, 0.51, 0.05]) == 3  # any order
