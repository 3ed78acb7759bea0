"""The throttle-aware rate in the Lua scripts (AIMD), in-process with fixed clocks. (Against a real
rate-limited server: tests/faults/test_throttle.py.)"""

from __future__ import annotations

import math

import pytest

from optio.names import messages_key

T0 = 1_800_000_000_000
KNOBS = {"decrease": 0.5, "window_s": 2.0, "min_rate": 60.0}


def throttle(store, run_id, job, at, retry_after=None):
    return store.counting.throttle_job(run_id, job, retry_after, now_ms=T0 + at, **KNOBS)


def due(store, run_id, message):
    """When the message (a throttled job's new run, "job:1:r-N") is due, ms after T0."""
    score = store.client.zscore(messages_key(run_id), message)
    return None if score is None else score - T0


def reserve(store, run_id, at):
    return store.schedule.reserve_due(
        run_id, 1, max_outstanding=100_000, throttle_window_s=2.0, now_ms=T0 + at
    )


def test_a_burst_of_throttles_cuts_the_rate_once_per_window(store):
    run_id = store.runs.start_run(10_000, 6000, now_ms=T0)  # 100/s
    assert throttle(store, run_id, 1, 1000)[2] == 3000
    for job in range(2, 30):
        assert throttle(store, run_id, job, 2500)[2] == 3000  # same window: no second cut
    # the next cut measures what the downstream took since the last: 60 jobs done in 2 s
    # (1800/min); the rate goes to 95 % of that
    store.counting.mark_processed(run_id, {job: "ok" for job in range(100, 160)})
    assert throttle(store, run_id, 40, 3000)[2] == pytest.approx(1800 * 0.95)
    state = store.runs.current_state()
    assert (state["throttled"], state["yMinute"]) == (30, 6000)
    for at in range(5000, 40_000, 2000):  # refused late in each window, none done: each cut
        for job in range(50, 55):  # is the deepest, by half
            throttle(store, run_id, job, at if job == 50 else at + 1500)
    assert store.runs.current_state()["rateNow"] == 60  # never below OPTIO_MIN_RATE


def test_a_lone_refusal_after_a_calm_spell_cuts_a_little_and_the_rate_climbs_back(store):
    run_id = store.runs.start_run(1_000_000, 6000, now_ms=T0)  # 100/s
    throttle(store, run_id, 1, 0)  # leaving full speed: the deepest cut, 3000
    throttle(store, run_id, 2, 10_000)  # the first refusal after calm: cut to 95 % of 3000
    top = 3000
    assert store.runs.current_state()["rateNow"] == pytest.approx(top * 0.95)
    rates = []
    for at in range(12_000, 24_000, 2000):  # calm windows: halfway back to the top, then probes
        reserve(store, run_id, at)
        rates.append(store.runs.current_state()["rateNow"])
    expected, rate = [], top * 0.95
    for _ in rates:
        if rate < top:
            rate = min(top, rate + max((top - rate) / 2, top * 0.02))
        else:
            rate += min(300, max(top * 0.02, rate - top))
        expected.append(rate)
    assert rates == pytest.approx(expected)
    assert rates[2] == pytest.approx(top) and rates[-1] == pytest.approx(top * 1.08)
    throttle(store, run_id, 3, 24_500)
    reserve(store, run_id, 26_000)  # a throttle in the last window: no step up
    assert store.runs.current_state()["rateNow"] < rates[-1]


def test_throttled_jobs_run_again_one_spacing_apart_without_an_attempt(store):
    run_id = store.runs.start_run(100, 600, now_ms=T0)  # 10/s
    throttle(store, run_id, 7, 0)  # cut to 5/s: 200 ms apart
    throttle(store, run_id, 8, 0)
    throttle(store, run_id, 9, 0, retry_after=3)  # its own wait, after two queued ahead of it
    queued = store.client.zrange(messages_key(run_id), 0, -1, withscores=True)
    assert queued == [("7:1:r-2", T0 + 200), ("8:1:r-2", T0 + 400), ("9:1:r-2", T0 + 3400)]
    throttle(store, run_id, 7, 5000)  # its second throttle: another message
    assert store.client.zscore(messages_key(run_id), "7:1:r-3") is not None
    assert store.client.hget(f"optio:run:{run_id}:attempts", "7") is None  # no attempt used


def test_the_schedule_gives_throttled_jobs_their_slots_then_climbs_back_to_y(store):
    run_id = store.runs.start_run(100_000, 6000, now_ms=T0)  # 100/s
    assert reserve(store, run_id, 1000).count == 101  # jobs 0..100
    throttle(store, run_id, 5, 1000)  # cut to 50/s; job 5 takes one slot
    assert reserve(store, run_id, 2000).count == 49  # 50 in the second, one was job 5's
    # no throttle for a window: +y/20 = +300/min per window
    assert reserve(store, run_id, 3000).count == 50
    assert store.runs.current_state()["rateNow"] == 3300
    rates = []
    for at in range(5000, 60_000, 2000):
        reserve(store, run_id, at)
        rates.append(store.runs.current_state()["rateNow"])
    assert rates == sorted(rates) and rates[-1] == 6000  # back at y, never above


def test_y_is_the_ceiling_of_the_effective_rate(store):
    run_id = store.runs.start_run(100_000, 6000, now_ms=T0)
    throttle(store, run_id, 1, 0)  # 3000
    store.runs.update_run(y=12_000, now_ms=T0 + 100)
    assert store.runs.current_state()["rateNow"] == 3000  # throttled: climbs to the new y
    store.runs.update_run(y=1200, now_ms=T0 + 200)
    assert store.runs.current_state()["rateNow"] == 1200  # never above y
    store.runs.stop_run()
    store.runs.start_run(10, 600, now_ms=T0)  # an unthrottled run follows y exactly
    store.runs.update_run(y=900, now_ms=T0 + 1)
    assert store.runs.current_state()["rateNow"] == 900


def test_a_throttle_after_the_job_was_counted_or_the_run_ended_does_nothing(store):
    run_id = store.runs.start_run(5, 600, now_ms=T0)
    store.counting.mark_processed(run_id, {1: "ok"})
    assert throttle(store, run_id, 1, 10)[0] == "done"
    store.runs.stop_run()
    assert throttle(store, run_id, 2, 20)[0] == "ended"
    assert store.runs.run_state(run_id)["throttled"] == 0


def test_a_jobs_own_wait_is_capped_at_the_max_wait(store):
    run_id = store.runs.start_run(100, 600, now_ms=T0)  # 10/s, cut to 5/s: 200 ms apart
    # an HTTP date read as epoch seconds: 54 years; capped at OPTIO_THROTTLE_MAX_WAIT (300 s)
    assert throttle(store, run_id, 1, 0, retry_after=1.7e9)[1] == 300
    assert due(store, run_id, "1:1:r-2") == 300_000
    throttle(store, run_id, 2, 0, retry_after=math.inf)  # "as long as you like": the cap too
    assert due(store, run_id, "2:1:r-2") == 300_000 + 200  # one place behind job 1
    outcome, wait_s, _ = store.counting.throttle_job(
        run_id, 3, 1.7e9, now_ms=T0 + 1000, max_wait_s=5, **KNOBS
    )
    assert (outcome, wait_s, due(store, run_id, "3:1:r-2")) == ("throttled", 5, 1000 + 5000)


def test_one_jobs_long_wait_never_delays_the_other_throttled_jobs(store):
    def run(waits):
        """Jobs 1 and 2 throttled asking ``waits``, then jobs 3, 4 and 5 with no wait of
        their own; the due times of all five."""
        run_id = store.runs.start_run(100, 600, now_ms=T0)  # 10/s, cut to 5/s: 200 ms apart
        throttle(store, run_id, 1, 0, retry_after=waits[0])
        throttle(store, run_id, 2, 0, retry_after=waits[1])
        throttle(store, run_id, 3, 0)
        throttle(store, run_id, 4, 100)
        throttle(store, run_id, 5, 1500)
        dues = [due(store, run_id, f"{job}:1:r-2") for job in range(1, 6)]
        store.runs.stop_run(now_ms=T0 + 2000)
        return dues

    long = run([1.7e9, 10])
    # 1 and 2 keep their own (capped) waits, each counted from its place in the queue
    assert long[:2] == [300_000, 10_000 + 200]
    # the others queue one spacing behind each throttled job, exactly as if 1 and 2 had asked
    # for no wait: no job's own wait moves them
    assert long[2:] == [600, 800, 1700]
    assert run([None, None]) == [200, 400, *long[2:]]
    # jobs asking for the same wait run one spacing apart, not all at once
    run_id = store.runs.start_run(100, 600, now_ms=T0)
    for job in (1, 2, 3):
        throttle(store, run_id, job, 0, retry_after=10)
    assert [due(store, run_id, f"{job}:1:r-2") for job in (1, 2, 3)] == [10_000, 10_200, 10_400]


def test_a_wait_that_is_not_a_number_of_seconds_is_refused_before_anything_is_written(store):
    run_id = store.runs.start_run(100, 600, now_ms=T0)
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="retry_after"):
            throttle(store, run_id, 1, 0, retry_after=bad)
    assert store.client.zcard(messages_key(run_id)) == 0
    assert store.runs.run_state(run_id)["throttled"] == 0


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.5])
def test_the_decrease_factor_is_checked(bad):
    from optio.config import Settings

    with pytest.raises(ValueError, match="OPTIO_THROTTLE_DECREASE"):
        Settings(throttle_decrease=bad)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_the_max_wait_is_checked(bad):
    from optio.config import Settings

    with pytest.raises(ValueError, match="OPTIO_THROTTLE_MAX_WAIT"):
        Settings(throttle_max_wait=bad)


def test_paced_starts_keep_a_spacing_whichever_worker_asks(store):
    run_id = store.runs.start_run(100, 1200, now_ms=T0)  # 20/s: 50 ms apart
    slot = store.counting.start_slot
    # two messages delivered together (jitter): the second waits one spacing less 2 %
    assert slot(run_id, 0.02, now_ms=T0 + 1000) == 0
    assert slot(run_id, 0.02, now_ms=T0 + 1000) == 0.049
    assert slot(run_id, 0.02, now_ms=T0 + 1010) == 0.088  # the third queues behind it
    assert slot(run_id, 0.02, now_ms=T0 + 2000) == 0  # on time after a gap: no wait
    throttle(store, run_id, 1, 2001)  # cut to 10/s: 100 ms apart from the next start on
    assert slot(run_id, 0.02, now_ms=T0 + 2001) == 0.048
    assert slot(run_id, 0.02, now_ms=T0 + 2049) == 0.098
    store.runs.pause_run(now_ms=T0 + 2050)
    assert slot(run_id, 0.02, now_ms=T0 + 2050) == 0  # paused: nothing to pace
