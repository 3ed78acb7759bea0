"""The throttle-aware rate in the Lua scripts (AIMD), in-process with fixed clocks. (Against a real
rate-limited server: tests/faults/test_throttle.py.)"""

from __future__ import annotations

import pytest

from optio.names import messages_key

T0 = 1_800_000_000_000
KNOBS = {"decrease": 0.5, "window_s": 2.0, "min_rate": 60.0}


def throttle(store, run_id, job, at, retry_after=None):
    return store.counting.throttle_job(run_id, job, retry_after, now_ms=T0 + at, **KNOBS)


def reserve(store, run_id, at):
    return store.schedule.reserve_due(
        run_id, 1, max_outstanding=100_000, throttle_window_s=2.0, now_ms=T0 + at
    )


def test_a_burst_of_throttles_cuts_the_rate_once_per_window(store):
    run_id = store.runs.start_run(10_000, 6000, now_ms=T0)  # 100/s
    assert throttle(store, run_id, 1, 1000)[2] == 3000
    for job in range(2, 30):
        assert throttle(store, run_id, job, 1500)[2] == 3000  # same window: no second cut
    assert throttle(store, run_id, 40, 3000)[2] == 1500
    state = store.runs.current_state()
    assert (state["rateNow"], state["throttled"], state["yMinute"]) == (1500, 30, 6000)
    for at in range(5000, 30_000, 2000):
        throttle(store, run_id, 50, at)
    assert store.runs.current_state()["rateNow"] == 60  # never below OPTIO_MIN_RATE


def test_throttled_jobs_run_again_one_spacing_apart_without_an_attempt(store):
    run_id = store.runs.start_run(100, 600, now_ms=T0)  # 10/s
    throttle(store, run_id, 7, 0)  # cut to 5/s: 200 ms apart
    throttle(store, run_id, 8, 0)
    throttle(store, run_id, 9, 0, retry_after=3)
    due = store.client.zrange(messages_key(run_id), 0, -1, withscores=True)
    assert due == [("7:1:r-2", T0 + 200), ("8:1:r-2", T0 + 400), ("9:1:r-2", T0 + 3000)]
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


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.5])
def test_the_decrease_factor_is_checked(bad):
    from optio.config import Settings

    with pytest.raises(ValueError, match="OPTIO_THROTTLE_DECREASE"):
        Settings(throttle_decrease=bad)
