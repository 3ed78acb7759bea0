"""The done bitmap read and written a range at a time (issue 20: fewer writes per job with the
append-only file on): a count of a message's jobs stores its results in one HSET and its bits in
one BITFIELD, whatever the number of jobs; the lease lists the jobs whose bit is 0. Against a
real redis-server (the unit tier's)."""

from __future__ import annotations

import random

import pytest

from optio.names import done_key, message_key, results_key
from optio.redis_state import RunStore

T0 = 1_800_000_000_000


def bits(store: RunStore, run_id: str, n: int) -> list[int]:
    return [store.client.getbit(done_key(run_id), j) for j in range(n)]


def writes(store: RunStore) -> dict[str, int]:
    """Calls so far of the commands that change a run's bitmap and results."""
    stats = store.client.info("commandstats")
    names = ("setbit", "bitfield", "hset")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in names}


@pytest.mark.parametrize("first, count", [(0, 100), (37, 60), (95, 7), (1000, 1)])
def test_a_message_s_count_sets_exactly_its_bits_with_one_command(store, first, count):
    run_id = store.runs.start_run(2000, 60_000, now_ms=T0)
    key = message_key(first, count)
    store.leases.lease_message(run_id, key, first, count, "w1", 10_000)
    before = writes(store)
    done = {j: f"r{j}" for j in range(first, first + count)}
    flush = store.counting.mark_processed(run_id, done, message=key, token="w1", handled=count)
    assert flush.counted == count
    delta = {k: v - before[k] for k, v in writes(store).items()}
    assert delta["setbit"] == 0 and delta["bitfield"] == 1
    assert delta["hset"] <= 2  # the results, and the lease's jobs left
    got = bits(store, run_id, 1200)
    assert [j for j, b in enumerate(got) if b] == list(range(first, first + count))
    assert store.client.hlen(results_key(run_id)) == count


def test_random_counts_agree_with_a_set(store):
    """Random overlapping counts, in random order, across field boundaries: every job is counted
    once and the bitmap holds exactly the jobs counted."""
    rng = random.Random(7)
    x = 700
    run_id = store.runs.start_run(x, 60_000, now_ms=T0)
    counted: set[int] = set()
    total = 0
    for _ in range(60):
        first = rng.randrange(x - 1)
        span = range(first, min(x, first + rng.randint(1, 120)))
        jobs = rng.sample(span, k=rng.randint(1, min(20, len(span))))
        flush = store.counting.mark_processed(run_id, {j: "" for j in jobs})
        assert flush.counted == len(set(jobs) - counted)
        counted |= set(jobs)
        total += flush.counted
    assert [j for j, b in enumerate(bits(store, run_id, x)) if b] == sorted(counted)
    assert store.runs.current_state()["processed"] == total == len(counted)


def test_jobs_far_apart_are_counted_without_reading_the_range_between(store):
    run_id = store.runs.start_run(10_000_000, 60_000, now_ms=T0)
    flush = store.counting.mark_processed(run_id, {3: "a", 9_000_000: "b"})
    assert flush.counted == 2
    assert store.client.getbit(done_key(run_id), 3) == 1
    assert store.client.getbit(done_key(run_id), 9_000_000) == 1
    assert store.client.bitcount(done_key(run_id)) == 2


def test_each_job_has_one_record_in_the_one_hset_none_included(store):
    run_id = store.runs.start_run(3, 600, now_ms=T0)
    flush = store.counting.mark_processed(
        run_id, {0: None, 1: "one"}, seconds={0: 0.0015, 1: 2}, now_ms=T0 + 5
    )
    assert flush.counted == 2
    assert store.client.hgetall(results_key(run_id)) == {
        "0": f"{T0 + 5}|1.5|",
        "1": f'{T0 + 5}|2000|"one"',
    }
    assert store.runs.current_state()["processed"] == 2


def test_a_lease_lists_the_jobs_not_counted(store):
    run_id = store.runs.start_run(300, 60_000, now_ms=T0)
    store.counting.mark_processed(run_id, {j: "" for j in (40, 47, 48, 95, 96, 149)})
    lease = store.leases.lease_message(run_id, message_key(40, 110), 40, 110, "w1", 10_000)
    assert lease.jobs == [j for j in range(40, 150) if j not in (40, 47, 48, 95, 96, 149)]
