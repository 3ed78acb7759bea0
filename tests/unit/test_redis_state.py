"""The Lua scripts and their verbs, against the session's private redis-server."""

from __future__ import annotations

import functools
import threading

import pytest

from optio.config import Settings
from optio.names import (
    METRICS_KEY,
    done_key,
    errors_key,
    holders_key,
    message_key,
    messages_key,
    parse_message_key,
    results_key,
    run_key,
)
from optio.redis_state import (
    Flush,
    Lease,
    NoActiveRunError,
    RunActiveError,
    RunStore,
    XBelowEnqueuedError,
)
from optio.webapp.schemas import idle_state

T0 = 1_800_000_000_000  # a fixed "now" in ms, so schedules are exact

FIVE = {"running": bool, "xTotal": int, "yMinute": (int, float), "enqueued": int, "processed": int}


def claimed(store: RunStore, run_id: str, **kwargs) -> tuple[int, list[str]]:
    """What claim_lost took: (expired leases among them, message keys)."""
    lost = store.schedule.claim_lost(run_id, **kwargs)
    return lost.leases, lost.keys


def assert_shape(state: dict) -> None:
    for name, kind in FIVE.items():
        assert isinstance(state[name], kind), f"{name} is {state[name]!r}"
    assert not isinstance(state["xTotal"], bool)


class TestStartRun:
    def test_starts_with_zero_counts_and_publishes(self, store, published):
        run_id = store.runs.start_run(100, 60, now_ms=T0)
        state = store.runs.current_state()
        assert_shape(state)
        assert state == {
            "running": True,
            "xTotal": 100,
            "yMinute": 60,
            "enqueued": 0,
            "processed": 0,
            "failed": 0,
            "runId": run_id,
            "status": "running",
            "startedAt": T0,
            "finishedAt": None,
            "rateNow": 60,
            "rateEnqueued": 0,
            "throttled": 0,
            "heldBack": False,
            "heldBackBy": None,
            "seq": 1,
            "pausedAt": None,
            "pausedMs": 0,
            "retried": 0,
            "webhook": None,
            "weight": 1,
            "maxInFlight": 0,
        }
        assert published.drain(run_id, 1)[0] == state

    def test_a_second_start_runs_beside_the_first_and_is_shown(self, store):
        first = store.runs.start_run(10, 60)
        second = store.runs.start_run(20, 60)
        assert store.runs.active_run_ids() == [second, first]
        assert store.runs.current_state()["runId"] == second
        assert store.runs.run_state(first)["status"] == "running"

    def test_a_start_with_the_id_of_a_run_is_refused(self, store):
        first = store.runs.start_run(10, 60)
        with pytest.raises(RunActiveError) as err:
            store.runs.start_run(20, 60, run_id=first)
        assert err.value.run_id == first
        assert store.runs.run_state(first)["xTotal"] == 10

    def test_concurrent_starts_start_one_run_each(self, store):
        started = []

        def start():
            started.append(store.runs.start_run(5, 60))

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(store.runs.active_run_ids()) == sorted(started) and len(set(started)) == 8

    def test_fractional_rate_is_kept(self, store):
        store.runs.start_run(3, 0.5, now_ms=T0)
        assert store.runs.current_state()["yMinute"] == 0.5

    def test_idle_state_before_any_run(self, store):
        assert store.runs.current_state() is None  # the web shows the idle state instead
        state = idle_state()
        assert_shape(state)
        assert state["running"] is False and state["status"] == "idle"


class TestReserveDue:
    def test_job_zero_is_due_at_start_then_y_per_minute(self, store):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)  # one job every 100 ms
        first = store.schedule.reserve_due(run_id, 1, now_ms=T0)
        assert (first.first, first.count) == (0, 1)
        second = store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000)
        assert (second.first, second.count) == (1, 10)
        third = store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1050)
        assert third.count == 0

    def test_two_ticks_at_the_same_moment_never_exceed_what_is_due(self, store):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)
        results: list[int] = []

        def tick():
            results.append(store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000).count)

        threads = [threading.Thread(target=tick) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(results) == 11  # jobs 0..10 are due at +1 s
        assert store.client.hget(run_key(run_id), "reserved") == "11"

    def test_fractional_rate_one_job_every_two_minutes(self, store):
        run_id = store.runs.start_run(10, 0.5, now_ms=T0)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0).count == 1
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 119_999).count == 0
        nxt = store.schedule.reserve_due(run_id, 1, now_ms=T0 + 120_000)
        assert (nxt.first, nxt.count) == (1, 1)

    def test_enqueuing_stops_at_exactly_x(self, store):
        run_id = store.runs.start_run(25, 6000, now_ms=T0)  # 100 per second
        total = sum(
            store.schedule.reserve_due(run_id, 1, now_ms=T0 + ms).count
            for ms in range(0, 5000, 250)
        )
        assert total == 25
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 60_000).count == 0

    def test_resume_after_downtime_has_no_catch_up_burst(self, store):
        run_id = store.runs.start_run(100_000, 600, now_ms=T0)  # 10 per 1 s tick
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0).count == 1
        # the scheduler was away for 100 s: 1000 jobs are "late", at most one tick's worth extra
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 100_000).count == 20
        # and from there it goes on at rate y
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 101_000).count == 10
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 102_000).count == 10

    def test_above_worker_capacity_the_queue_stays_bounded(self, store):
        run_id = store.runs.start_run(100_000, 60_000, now_ms=T0)  # 1000 per 1 s tick
        first = store.schedule.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 1000)
        assert first.count == 1001
        # nothing was processed: only 499 more may wait in the broker
        assert (
            store.schedule.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 2000).count
            == 499
        )
        assert (
            store.schedule.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 3000).count == 0
        )
        store.counting.mark_processed(run_id, {job_id: "r" for job_id in range(300)})
        later = store.schedule.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 4000)
        assert later.count == 300
        # the schedule slid instead of owing a burst: one tick later, one tick's worth is due
        store.counting.mark_processed(run_id, {job_id: "r" for job_id in range(300, 1800)})
        assert (
            store.schedule.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 5000).count
            == 1000
        )

    def test_no_active_run_reserves_nothing_but_records_the_tick(self, store):
        run_id = store.runs.start_run(10, 600, now_ms=T0)
        store.runs.stop_run(now_ms=T0)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 5000).count == 0
        assert store.schedule.last_tick_ms() == T0 + 5000


class TestUpdateRun:
    def test_new_rate_applies_from_the_next_tick(self, store, published):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000).count == 11
        store.runs.update_run(y=60, now_ms=T0 + 1000)  # now one job per second
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1500).count == 0
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 2000).count == 1
        assert published.drain(run_id, 2)[-1]["yMinute"] == 60

    def test_x_cannot_go_below_enqueued(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000)  # 11 reserved
        with pytest.raises(XBelowEnqueuedError):
            store.runs.update_run(x=5, now_ms=T0 + 1000)
        assert store.runs.current_state()["xTotal"] == 100
        store.runs.update_run(x=11, now_ms=T0 + 1000)
        assert store.runs.current_state()["xTotal"] == 11

    def test_lowering_x_to_what_is_done_completes_the_run(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0)
        assert store.counting.mark_processed(run_id, {0: "r0"}, now_ms=T0 + 10).counted == 1
        store.runs.update_run(x=1, now_ms=T0 + 20)
        state = store.runs.current_state()
        assert (state["running"], state["status"], state["finishedAt"]) == (
            False,
            "completed",
            T0 + 20,
        )

    def test_update_without_a_run_is_refused(self, store):
        with pytest.raises(NoActiveRunError):
            store.runs.update_run(y=10)


class TestStopRun:
    def test_stop_ends_enqueuing_and_publishes(self, store, published):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.runs.stop_run(now_ms=T0 + 500)
        state = store.runs.current_state()
        assert (state["running"], state["status"], state["finishedAt"]) == (
            False,
            "stopped",
            T0 + 500,
        )
        assert published.drain(run_id, 2)[-1]["status"] == "stopped"
        assert store.runs.active_run_ids() == []
        with pytest.raises(NoActiveRunError):
            store.runs.stop_run()


class TestConfirmEnqueued:
    def test_counts_and_publishes(self, store, published):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0 + 2000)  # 21 reserved
        assert store.schedule.confirm_enqueued(run_id, 10) == 10
        assert store.schedule.confirm_enqueued(run_id, 3) == 13
        assert [s["enqueued"] for s in published.drain(run_id, 3)] == [0, 10, 13]

    def test_never_counts_more_than_was_reserved(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0)  # job 0
        assert store.schedule.confirm_enqueued(run_id, 1) == 1
        assert store.schedule.confirm_enqueued(run_id, 1) == 1  # a retried confirmation


def lease(store, run_id, first, count, token="w1", lease_ms=10_000, now_ms=None):
    key = message_key(first, count)
    return key, store.leases.lease_message(
        run_id, key, first, count, token, lease_ms, now_ms=now_ms
    )


class TestMarkProcessed:
    def test_a_job_is_counted_once_even_when_delivered_twice(self, store, published):
        run_id = store.runs.start_run(3, 600, now_ms=T0)
        assert store.counting.mark_processed(run_id, {1: "a"}).counted == 1
        assert store.counting.mark_processed(run_id, {1: "b"}).counted == 0
        assert store.runs.current_state()["processed"] == 1
        assert store.runs.result(run_id, 1) == "a"
        assert store.client.getbit(done_key(run_id), 1) == 1
        # start + one counted job: the duplicate published nothing
        assert [s["processed"] for s in published.drain(run_id, 2)] == [0, 1]

    def test_last_job_completes_the_run_and_publishes_running_false(self, store, published):
        run_id = store.runs.start_run(3, 600, now_ms=T0)
        for job_id in range(3):
            flush = store.counting.mark_processed(run_id, {job_id: f"r{job_id}"}, now_ms=T0 + 100)
        assert flush.status == "completed"
        final = published.drain(run_id, 4)[-1]
        assert (final["running"], final["status"], final["processed"]) == (False, "completed", 3)
        assert final["finishedAt"] == T0 + 100
        assert store.runs.active_run_ids() == []
        assert store.client.hlen(results_key(run_id)) == 3
        store.runs.start_run(1, 60)  # the slot is free again

    def test_jobs_of_an_old_run_never_touch_the_new_one(self, store, published):
        old = store.runs.start_run(10, 600, now_ms=T0)
        store.runs.stop_run(now_ms=T0 + 1)
        new = store.runs.start_run(10, 600, now_ms=T0 + 2)
        assert store.counting.mark_processed(old, {4: "late"}).counted == 1
        assert store.runs.current_state()["runId"] == new
        assert store.runs.current_state()["processed"] == 0
        assert store.runs.run_state(old)["processed"] == 1
        # the old run's late job published nothing: clients watch the new run
        store.schedule.confirm_enqueued(
            new, 1
        )  # a later message, so everything before it has arrived
        published.drain(new, 2)
        assert [s["processed"] for s in published.all if s["runId"] == old] == [0, 0]

    def test_a_batch_counts_each_new_job_once_and_publishes_once(self, store, published):
        run_id = store.runs.start_run(10, 600, now_ms=T0)
        assert store.counting.mark_processed(run_id, {1: "a", 2: "b"}).counted == 2
        assert store.counting.mark_processed(run_id, {2: "again", 3: "c", 4: "d"}).counted == 2
        assert store.runs.current_state()["processed"] == 4
        assert store.runs.result(run_id, 2) == "b"
        assert [s["processed"] for s in published.drain(run_id, 3)] == [0, 2, 4]

    def test_enqueued_is_never_shown_below_what_is_done(self, store):
        run_id = store.runs.start_run(10, 6000, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0 + 100)  # 11 due, capped at 10, sent...
        store.counting.mark_processed(run_id, {0: "a", 1: "b"})  # ...done before the tick confirmed
        assert store.runs.current_state()["enqueued"] == 2
        store.schedule.confirm_enqueued(run_id, 10)
        assert store.runs.current_state()["enqueued"] == 10

    def test_unknown_run_counts_nothing(self, store):
        assert store.counting.mark_processed("nope", {0: "x"}) == Flush(0, "gone", True)
        assert store.client.exists(done_key("nope")) == 0


class TestLeases:
    def test_a_lease_gives_the_status_and_the_uncounted_jobs(self, store):
        run_id = store.runs.start_run(20, 600, now_ms=T0)
        store.counting.mark_processed(run_id, {3: "a", 5: "b", 12: "c"})
        _, got = lease(store, run_id, 2, 12)
        assert got == Lease("running", False, [2, 4, 6, 7, 8, 9, 10, 11, 13])
        assert store.client.hget(run_key(run_id), "leasedJobs") == "9"
        store.runs.stop_run()
        assert lease(store, run_id, 3, 1, token="w2")[1] == Lease("stopped", False, [])
        assert lease(store, "nope", 0, 2)[1] == Lease("gone", False, [])

    def test_a_second_delivery_of_a_live_lease_is_dropped(self, store):
        run_id = store.runs.start_run(20, 600, now_ms=T0)
        lease(store, run_id, 0, 5, token="w1", now_ms=T0)
        assert lease(store, run_id, 0, 5, token="w2", now_ms=T0 + 9_999)[1].held_elsewhere
        # expired, not yet taken by the tick: the new delivery takes it over
        _, got = lease(store, run_id, 0, 5, token="w2", now_ms=T0 + 10_001)
        assert got == Lease("running", False, [0, 1, 2, 3, 4])
        assert store.client.hget(run_key(run_id), "leasedJobs") == "5"  # not 10
        assert store.counting.mark_processed(run_id, {0: "r"}, message="0:5", token="w1").lost

    def test_a_message_whose_jobs_are_all_counted_is_not_leased(self, store):
        run_id = store.runs.start_run(20, 600, now_ms=T0)
        store.counting.mark_processed(run_id, {0: "a", 1: "b"})
        assert lease(store, run_id, 0, 2)[1] == Lease("running", False, [])
        assert store.client.hlen(holders_key(run_id)) == 0

    def test_flushes_account_the_lease_and_the_last_releases_it(self, store):
        run_id = store.runs.start_run(20, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 4)
        flush = store.counting.mark_processed(
            run_id, {0: "a", 1: "b"}, message=key, token="w1", handled=2
        )
        assert flush == Flush(2, "running", False)
        assert store.client.hget(run_key(run_id), "leasedJobs") == "2"
        flush = store.counting.mark_processed(
            run_id, {3: "d"}, message=key, token="w1", handled=2, release=True
        )
        assert flush == Flush(1, "running", False)
        assert store.client.hget(run_key(run_id), "leasedJobs") == "0"
        assert store.client.zcard(messages_key(run_id)) == 0
        assert store.client.hlen(holders_key(run_id)) == 0

    def test_a_lease_with_nothing_left_is_released_and_taken_cleanly(self, store):
        run_id = store.runs.start_run(20, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 2, now_ms=T0)
        store.counting.mark_processed(run_id, {0: "a", 1: "b"}, message=key, token="w1", handled=2)
        # nothing left in the lease: releasing it (or the tick taking it) changes no count
        flush = store.counting.mark_processed(run_id, {}, message=key, token="w1", release=True)
        assert flush == Flush(0, "running", False)
        key, _ = lease(store, run_id, 2, 2, now_ms=T0)
        store.counting.mark_processed(run_id, {2: "c", 3: "d"}, message=key, token="w1", handled=2)
        assert claimed(store, run_id, most=10, now_ms=T0 + 60_000) == (1, [key])
        assert store.client.hget(run_key(run_id), "leasedJobs") == "0"

    def test_renewal_extends_live_leases_and_reports_lost_ones(self, store):
        run_id = store.runs.start_run(20, 600, now_ms=T0)
        lease(store, run_id, 0, 2, token="w1")
        status, lost = store.leases.renew_leases(
            run_id, {"0:2": "w1", "2:2": "w1"}, 30_000, now_ms=T0
        )
        assert (status, lost) == ("running", ["2:2"])
        assert store.client.zscore(messages_key(run_id), "0:2") == T0 + 30_000
        store.runs.stop_run()
        assert store.leases.renew_leases(run_id, {"0:2": "w1"}, 30_000) == ("stopped", ["0:2"])

    def test_an_expired_lease_is_sent_again_once_per_expiry(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        reservation = store.schedule.reserve_due(run_id, 1, batch=5, now_ms=T0 + 1000)  # jobs 0..10
        assert reservation.messages == ["0:5", "5:5", "10:1"]
        store.schedule.confirm_enqueued(
            run_id,
            11,
            reservation.messages,
        )
        lease(store, run_id, 0, 5, token="dead", now_ms=T0 + 1100)
        lease(store, run_id, 5, 5, token="live", now_ms=T0 + 1100)
        store.leases.renew_leases(run_id, {"5:5": "live"}, 60_000, now_ms=T0 + 5000)
        # a message waiting in the broker (10:1) is never taken, however long it waits
        assert claimed(store, run_id, most=100, now_ms=T0 + 11_000) == (0, [])
        assert claimed(store, run_id, most=100, now_ms=T0 + 11_200) == (1, ["0:5"])
        assert claimed(store, run_id, most=100, now_ms=T0 + 11_300) == (0, [])
        assert store.client.hget(run_key(run_id), "leasedJobs") == "5"
        store.schedule.confirm_enqueued(run_id, 0, ["0:5"])  # published again
        assert claimed(store, run_id, most=100, now_ms=T0 + 60_000) == (0, [])
        # the frozen worker wakes up: its late result counts once, its lease is gone
        flush = store.counting.mark_processed(
            run_id, {0: "late"}, message="0:5", token="dead", handled=1
        )
        assert flush == Flush(1, "running", True)

    def test_a_reservation_never_confirmed_is_sent_again(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, batch=4, unconfirmed_ms=5000, now_ms=T0 + 1000)
        # the tick died before publishing: nothing for a few ticks, then all of it once
        assert claimed(store, run_id, most=100, unconfirmed_ms=5000, now_ms=T0 + 5999) == (
            0,
            [],
        )
        again = claimed(store, run_id, most=100, unconfirmed_ms=5000, now_ms=T0 + 6000)
        assert again == (0, ["0:4", "4:4", "8:3"])
        assert claimed(store, run_id, most=100, unconfirmed_ms=5000, now_ms=T0 + 6001)[1] == []

    def test_a_message_leased_before_its_confirmation_stays_leased(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, batch=4, now_ms=T0 + 1000)
        lease(store, run_id, 0, 4, token="fast", now_ms=T0 + 1001)
        store.schedule.confirm_enqueued(run_id, 11, ["0:4", "4:4", "8:3"])
        assert store.client.zrange(messages_key(run_id), 0, -1) == ["0:4"]

    def test_losses_bigger_than_one_call_are_all_taken_at_once(self, store):
        run_id = store.runs.start_run(20_000, 6_000_000, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, batch=1, max_outstanding=20_000, now_ms=T0 + 1000)
        again = claimed(store, run_id, most=100_000, now_ms=T0 + 60_000)[1]
        assert len(again) == 20_000

    def test_stopped_runs_send_nothing_again(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000)
        store.runs.stop_run(now_ms=T0 + 1000)
        assert claimed(store, run_id, most=100, now_ms=T0 + 60_000) == (0, [])

    def test_a_stop_is_seen_by_the_next_flush(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 50)
        store.runs.stop_run()
        flush = store.counting.mark_processed(run_id, {0: "a"}, message=key, token="w1", handled=1)
        assert flush.status == "stopped"


class TestBacklog:
    def test_running_jobs_do_not_count_against_the_cap(self, store):
        run_id = store.runs.start_run(10_000, 60_000, now_ms=T0)  # 1,000/s
        first = store.schedule.reserve_due(run_id, 1, max_outstanding=100, now_ms=T0 + 1000)
        assert first.count == 100
        # workers started all 100: none waits, so the next tick may reserve 100 more
        for key in first.messages:
            f, c, _ = parse_message_key(key)
            lease(store, run_id, f, c)
        assert (
            store.schedule.reserve_due(run_id, 1, max_outstanding=100, now_ms=T0 + 1100).count
            == 100
        )

    def test_held_back_and_rate_enqueued(self, store, published):
        run_id = store.runs.start_run(100_000, 60_000, now_ms=T0)  # 1,000/s, cap 100: held back
        for ms in range(0, 4001, 1000):
            store.schedule.reserve_due(run_id, 1, max_outstanding=100, now_ms=T0 + ms)
        state = store.runs.current_state()
        assert state["heldBack"] is True
        assert state["rateEnqueued"] == pytest.approx(100 * 60 / 3, rel=0.01)  # 100 in 3 s
        assert state["rateNow"] == state["yMinute"]  # the rate aimed at: no throttle
        # the workers catch up: everything is done, nothing waits, the rate is y again
        done = int(store.client.hget(run_key(run_id), "reserved"))
        store.client.hset(run_key(run_id), "processed", done)
        for ms in range(5000, 9001, 1000):
            got = store.schedule.reserve_due(run_id, 1, max_outstanding=100_000, now_ms=T0 + ms)
            store.schedule.confirm_enqueued(run_id, got.count, got.messages)  # as a tick does
        state = store.runs.current_state()
        assert state["heldBack"] is False
        assert state["heldBackBy"] is None
        assert state["rateEnqueued"] == pytest.approx(60_000, rel=0.01)


def reserve_and_send(store: RunStore, run_id: str, at_ms: int, **kwargs):
    """A tick at ``at_ms`` (tick interval 1 s) that publishes all it reserved at once."""
    got = store.schedule.reserve_due(run_id, 1, now_ms=at_ms, **kwargs)
    store.schedule.confirm_enqueued(run_id, got.count, got.messages)
    return got


class TestHeldBack:
    """heldBack says when the jobs enqueued fall behind the schedule, for any reason; heldBackBy
    says which."""

    def test_on_schedule_it_is_not_held_back(self, store):
        run_id = store.runs.start_run(100_000, 6_000, now_ms=T0)  # 100/s
        for s in range(1, 8):
            reserve_and_send(store, run_id, T0 + s * 1000)
        state = store.runs.current_state()
        assert (state["heldBack"], state["heldBackBy"]) == (False, None)

    def test_workers_behind_with_the_automatic_cap(self, store):
        run_id = store.runs.start_run(1_000_000, 600_000, now_ms=T0)  # 10,000/s: cap 50,000
        for s in range(1, 10):  # nothing is ever processed
            reserve_and_send(store, run_id, T0 + s * 1000)
        state = store.runs.current_state()
        assert (state["heldBack"], state["heldBackBy"]) == (True, "workers")

    def test_the_operators_cap(self, store):
        run_id = store.runs.start_run(100_000, 6_000, now_ms=T0)
        for s in range(1, 4):
            reserve_and_send(store, run_id, T0 + s * 1000, max_outstanding=150)
        state = store.runs.current_state()
        assert (state["heldBack"], state["heldBackBy"]) == (True, "cap")

    def test_a_scheduler_away_slides_the_schedule_and_says_so(self, store):
        run_id = store.runs.start_run(100_000, 6_000, now_ms=T0)
        reserve_and_send(store, run_id, T0 + 1000)
        got = reserve_and_send(store, run_id, T0 + 11_000)  # beat away for 10 s
        assert got.count == 200  # at most two ticks' worth: no burst of 1,000
        state = store.runs.current_state()
        assert (state["heldBack"], state["heldBackBy"]) == (True, "scheduler")
        for s in range(12, 16):  # on time again: clear once the window has passed
            reserve_and_send(store, run_id, T0 + s * 1000)
        assert store.runs.current_state()["heldBack"] is False

    def test_publishing_slower_than_the_schedule(self, store):
        """Reserved on time but not in the broker yet (a slow broker): the tick says so."""
        run_id = store.runs.start_run(100_000, 6_000, now_ms=T0)
        for s in range(1, 4):
            store.schedule.reserve_due(run_id, 1, now_ms=T0 + s * 1000)  # never confirmed
        state = store.runs.current_state()
        assert (state["heldBack"], state["heldBackBy"]) == (True, "scheduler")


class TestLookAhead:
    def test_a_paced_tick_reserves_a_tick_ahead_with_each_jobs_due_time(self, store):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)  # 10/s: job j due at T0 + 100(j+1)
        got = store.schedule.reserve_due(run_id, 0.5, lookahead_s=0.5, now_ms=T0 + 500)
        assert (got.first, got.count) == (0, 10)  # due by 1 s
        assert got.due_in(0) == pytest.approx(-0.4)
        assert got.due_in(9) == pytest.approx(0.5)
        assert got.spacing == pytest.approx(0.1)
        got = store.schedule.reserve_due(run_id, 0.5, lookahead_s=0.5, now_ms=T0 + 1000)
        assert (got.first, got.count) == (10, 5)  # due by 1.5 s
        assert got.due_in(10) == pytest.approx(0.1)


class TestFailJob:
    def test_retries_are_scheduled_with_doubling_backoff_then_the_job_fails(self, store):
        run_id = store.runs.start_run(2, 600, now_ms=T0)
        fail = functools.partial(store.counting.fail_job, run_id, 1, attempts=3, backoff_s=0.5)
        assert fail("E: one", now_ms=T0) == ("retry", 1, 0.5)
        assert fail("E: two", now_ms=T0 + 10) == ("retry", 2, 1.0)
        due = dict(store.client.zrange(messages_key(run_id), 0, -1, withscores=True))
        assert due == {"1:1:r1": T0 + 500, "1:1:r2": T0 + 1010}
        assert fail("E: three", now_ms=T0 + 20) == ("failed", 3, 0)
        assert fail("E: four") == ("done", 0, 0)
        assert store.runs.error(run_id, 1) == "E: three"
        assert store.runs.current_state()["failed"] == 1

    def test_failed_jobs_count_toward_completion(self, store, published):
        run_id = store.runs.start_run(2, 600, now_ms=T0)
        assert store.counting.mark_processed(run_id, {0: "ok"}).counted == 1
        outcome = store.counting.fail_job(run_id, 1, "ValueError: boom", attempts=1, backoff_s=1)
        assert outcome[0] == "failed"
        assert store.counting.mark_processed(run_id, {1: "late success"}).counted == 0
        final = published.drain(run_id, 3)[-1]
        assert (final["processed"], final["failed"], final["running"]) == (1, 1, False)
        assert final["status"] == "completed"
        assert store.runs.error(run_id, 1) == "ValueError: boom"

    def test_a_due_retry_is_sent_by_the_tick(self, store):
        run_id = store.runs.start_run(5, 600, now_ms=T0)
        store.counting.fail_job(run_id, 3, "E", attempts=3, backoff_s=1, now_ms=T0)
        assert claimed(store, run_id, most=10, now_ms=T0 + 999)[1] == []
        assert claimed(store, run_id, most=10, now_ms=T0 + 1000) == (0, ["3:1:r1"])
        assert parse_message_key("3:1:r1") == (3, 1, 1)

    def test_a_stopped_run_records_nothing(self, store):
        run_id = store.runs.start_run(5, 600, now_ms=T0)
        store.runs.stop_run()
        assert store.counting.fail_job(run_id, 3, "E", attempts=3, backoff_s=1)[0] == "ended"


class TestExpiry:
    def test_the_keys_of_a_finished_run_expire(self, store):
        run_id = store.runs.start_run(3, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 2)
        store.counting.fail_job(run_id, 2, "E", attempts=3, backoff_s=1)
        store.counting.mark_processed(run_id, {0: "a"}, message=key, token="w1", handled=1)
        store.runs.stop_run()
        keys = store.client.keys(f"{run_key(run_id)}*")
        assert len(keys) >= 4
        assert all(store.client.ttl(k) > 0 for k in keys), {k: store.client.ttl(k) for k in keys}
        # a late result of the stopped run keeps the keys expiring
        store.counting.mark_processed(run_id, {1: "late"})
        assert all(store.client.ttl(k) > 0 for k in store.client.keys(f"{run_key(run_id)}*"))


#: A job's text that UTF-8 cannot encode: os.fsdecode(b"name-\xff"), a lone surrogate.
UNDECODABLE = "name-\udcff"


class TestStoredText:
    """Whatever text a job returns or raises with is stored, readable and bounded."""

    def test_a_result_utf8_cannot_encode_is_counted_and_stored_as_its_escape(self, store):
        run_id = store.runs.start_run(2, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 2)
        flush = store.counting.mark_processed(
            run_id, {0: UNDECODABLE, 1: "ok"}, message=key, token="w1", handled=2, release=True
        )
        assert flush == Flush(2, "completed", False)
        assert store.runs.result(run_id, 0) == "name-\\udcff"
        assert store.runs.result(run_id, 1) == "ok"
        assert store.runs.run_state(run_id)["processed"] == 2

    def test_a_result_longer_than_the_cap_is_cut_and_says_so(self, client):
        store = RunStore(client, Settings(max_result_bytes=100))
        run_id = store.runs.start_run(2, 600, now_ms=T0)
        assert store.counting.mark_processed(run_id, {0: "é" * 1000, 1: "é" * 49}).counted == 2
        cut = store.runs.result(run_id, 0)
        assert len(cut.encode()) <= 100 and cut.endswith("… [cut: 2000 bytes]")
        assert cut.startswith("é" * 30)
        # 98 bytes and the two quotes of its JSON: kept whole
        assert store.runs.result(run_id, 1) == "é" * 49

    def test_an_error_utf8_cannot_encode_is_stored_as_its_escape_and_capped(self, store):
        run_id = store.runs.start_run(2, 600, now_ms=T0)
        error = f"OSError: cannot read {UNDECODABLE}"
        fail = functools.partial(store.counting.fail_job, run_id, attempts=2, backoff_s=0)
        assert fail(0, error)[0] == "retry"
        assert fail(0, error)[0] == "failed"
        assert fail(1, "RuntimeError: " + "x" * 5000, attempts=1)[0] == "failed"
        errors = {e["job"]: e["error"] for e in store.runs.run_errors(run_id)}
        assert errors[0] == "OSError: cannot read name-\\udcff"
        assert len(errors[1].encode()) <= 2000 and errors[1].endswith("… [cut: 5014 bytes]")
        state = store.runs.run_state(run_id)
        assert (state["status"], state["failed"]) == ("completed", 2)


def expire(store: RunStore, run_id: str, key: str, token: str, at: int) -> list[str]:
    """Lease message ``key`` for 1 s at ``at`` as ``token``, which dies; the tick finds the
    lease expired 1 ms after it ran out. Returns the keys the tick sends again."""
    first, count, _ = parse_message_key(key)
    store.leases.lease_message(run_id, key, first, count, token, 1000, now_ms=at)
    keys = store.schedule.claim_lost(run_id, most=100, now_ms=at + 1001).keys
    store.schedule.confirm_enqueued(run_id, 0, keys)  # published again
    return keys


DELIVERED_5 = (
    "delivered 5 times without finishing: its worker died, froze or lost Redis each time "
    "(OPTIO_MAX_DELIVERIES)"
)
DELIVERED_2 = DELIVERED_5.replace("delivered 5", "delivered 2")


class TestDeliveryLimit:
    """A message whose lease expired OPTIO_MAX_DELIVERIES times is given up, never sent again."""

    def test_the_tick_gives_up_a_message_at_its_fifth_expiry(self, store, published):
        run_id = store.runs.start_run(4, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 2, now_ms=T0)
        store.counting.mark_processed(run_id, {0: "a"}, message=key, token="w1", handled=1)
        assert claimed(store, run_id, most=100, now_ms=T0 + 10_001) == (1, [key])  # expiry 1
        store.schedule.confirm_enqueued(run_id, 0, [key])
        for n in range(2, 5):
            assert expire(store, run_id, key, f"w{n}", T0 + n * 10_000) == [key]
        assert published.drain(run_id, 2)[-1]["failed"] == 0
        # the fifth lease runs out too: no more deliveries, its job not done fails for good
        assert expire(store, run_id, key, "w5", T0 + 50_000) == []
        state = store.runs.run_state(run_id)
        assert (state["status"], state["processed"], state["failed"]) == ("running", 1, 1)
        assert published.drain(run_id, 3)[-1]["failed"] == 1
        assert store.runs.run_errors(run_id) == [{"job": 1, "error": DELIVERED_5}]
        assert store.runs.result(run_id, 0) == "a"  # the job done stays counted once
        assert store.client.bitcount(done_key(run_id)) == 2
        assert store.client.zscore(messages_key(run_id), key) is None
        assert store.client.hlen(holders_key(run_id)) == 0
        assert store.client.hget(run_key(run_id), "leasedJobs") == "0"
        assert store.client.hget(METRICS_KEY, "failed_total") == "1"
        # the last holder wakes up: its late result is not counted again
        late = store.counting.mark_processed(run_id, {1: "late"}, message=key, token="w5")
        assert late == Flush(0, "running", True)
        assert claimed(store, run_id, most=100, now_ms=T0 + 90_000) == (0, [])

    def test_a_redelivery_after_the_last_expiry_gives_up_and_completes_the_run(
        self, client, published
    ):
        """The broker hands the message out again after its lease ran out, before the tick
        saw it (lease_message finds the expiry), with OPTIO_MAX_DELIVERIES=2."""
        store = RunStore(client, Settings(max_deliveries=2))
        run_id = store.runs.start_run(1, 600, now_ms=T0)
        assert lease(store, run_id, 0, 1, "w1", 1000, now_ms=T0)[1].jobs == [0]
        assert lease(store, run_id, 0, 1, "w2", 1000, now_ms=T0 + 1001)[1].jobs == [0]
        _, last = lease(store, run_id, 0, 1, "w3", 1000, now_ms=T0 + 2002)
        assert (last.status, last.held_elsewhere, last.jobs) == ("completed", False, [])
        assert last.given_up == 1  # jobs failed now
        final = published.drain(run_id, 2)[-1]
        assert (final["status"], final["failed"], final["finishedAt"]) == (
            "completed",
            1,
            T0 + 2002,
        )
        assert store.runs.active_run_ids() == []
        error = store.runs.error(run_id, 0)
        assert error is not None and error.startswith("delivered 2 times without finishing")
        # retry-failed runs the job again with a fresh count of deliveries
        assert store.runs.retry_failed(run_id, now_ms=T0 + 3000) == 1
        assert expire(store, run_id, "0:1:r-1", "w4", T0 + 3000) == ["0:1:r-1"]
        assert store.runs.run_state(run_id)["failed"] == 0

    def test_expiries_are_counted_per_message(self, client):
        store = RunStore(client, Settings(max_deliveries=2))
        run_id = store.runs.start_run(10, 600, now_ms=T0)
        assert expire(store, run_id, "0:1", "w1", T0) == ["0:1"]
        assert expire(store, run_id, "1:1", "w2", T0 + 5000) == ["1:1"]
        assert expire(store, run_id, "0:1", "w3", T0 + 10_000) == []  # its second expiry
        assert expire(store, run_id, "1:1", "w4", T0 + 15_000) == []
        state = store.runs.run_state(run_id)
        assert (state["failed"], sorted(store.client.hkeys(errors_key(run_id)))) == (2, ["0", "1"])


def test_a_message_given_up_leaves_the_job_its_pending_retry_owns(client):
    """The delivery limit fails only the jobs the given-up message owns: a job whose retry is
    pending as a message of its own is that message's to run."""
    store = RunStore(client, Settings(max_deliveries=2))
    run_id = store.runs.start_run(3, 600, now_ms=T0)
    key, first = lease(store, run_id, 0, 3, "w1", 1000, now_ms=T0)
    assert first.jobs == [0, 1, 2]
    outcome = store.counting.fail_job(run_id, 1, "E: once", attempts=3, backoff_s=5, now_ms=T0)
    assert outcome[0] == "retry"  # job 1's retry, 1:1:r1, now owns it
    assert lease(store, run_id, 0, 3, "w2", 1000, now_ms=T0 + 1001)[1].jobs == [0, 2]
    _, last = lease(store, run_id, 0, 3, "w3", 1000, now_ms=T0 + 2002)
    assert last.given_up == 2  # jobs 0 and 2; not job 1
    assert store.runs.run_errors(run_id) == [
        {"job": 0, "error": DELIVERED_2},
        {"job": 2, "error": DELIVERED_2},
    ]
    retry = store.leases.lease_message(run_id, "1:1:r1", 1, 1, "w4", 1000, now_ms=T0 + 6000)
    assert retry.jobs == [1]  # its retry still runs it
    store.counting.mark_processed(
        run_id, {1: "ok"}, message="1:1:r1", token="w4", handled=1, release=True
    )
    state = store.runs.run_state(run_id)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", 1, 2)
