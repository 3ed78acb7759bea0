"""Several runs at once in the Lua scripts and the tick's shares, in-process against the private
Redis with fixed clocks (issue 22): runs side by side, the run-named and unnamed controls, the
shares of the deployment's ceilings, maxInFlight, deadline runs, which run clients are shown.
(With real processes: tests/faults/test_several_runs.py.)"""

from __future__ import annotations

import json

import pytest

from optio.names import CHANNEL, LEGACY_ACTIVE_KEY, STATES_CHANNEL, THROTTLES_KEY, run_key
from optio.redis_state import NoActiveRunError, RunStore, UnknownRunError
from optio.store.errors import DeadlineRunError, SeveralActiveError
from optio.store.shares import Grant, KeyRate, Load
from optio.worker.shares import climb, fair_shares, grants, settle_keys

T0 = 1_800_000_000_000


def load(run_id, rate, *, weight=1.0, most=0, out=0, unreserved=1000, deadline=None, key=None):
    return Load(run_id, True, rate, weight, most, deadline, unreserved, out, key)


class TestFairShares:
    def test_asks_that_fit_get_what_they_ask(self):
        assert fair_shares({"a": 10, "b": 20}, {"a": 1, "b": 1}, 100) == {"a": 10, "b": 20}

    def test_a_small_ask_leaves_the_rest_to_the_others(self):
        shares = fair_shares({"a": 600, "b": 60, "c": 60_000}, {"a": 1, "b": 1, "c": 1}, 6000)
        assert shares == {"a": 600, "b": 60, "c": 5340}

    def test_weights_split_what_no_one_leaves(self):
        shares = fair_shares({"a": 1e6, "b": 1e6}, {"a": 3, "b": 1}, 2400)
        assert shares == pytest.approx({"a": 1800, "b": 600})

    def test_nothing_to_share_gives_nothing(self):
        assert fair_shares({"a": 10}, {"a": 1}, 0) == {"a": 0}


class TestGrants:
    def test_no_ceiling_binds_below_it(self):
        loads = [load("a", 100), load("b", 200)]
        given = grants(loads, max_rate=1000, max_in_flight=0, tick_seconds=0.5, now_ms=T0)
        assert given == {"a": Grant(), "b": Grant()}

    def test_the_rate_ceiling_is_shared_when_it_binds(self):
        loads = [load("a", 600), load("b", 60), load("c", 60_000)]
        given = grants(loads, max_rate=6000, max_in_flight=0, tick_seconds=0.5, now_ms=T0)
        assert {run: g.rate for run, g in given.items()} == {"a": 600, "b": 60, "c": 5340}

    def test_a_paused_run_asks_for_nothing(self):
        paused = Load("p", False, 60_000, 1.0, 0, None, 1000, 0)
        given = grants(
            [paused, load("a", 60_000)], max_rate=6000, max_in_flight=0, tick_seconds=0.5, now_ms=T0
        )
        assert given["a"].rate == 6000 and given["p"].rate is None

    def test_in_flight_is_shared_by_what_each_run_needs(self):
        loads = [load("a", 60, out=1), load("b", 60_000, out=50, most=10), load("c", 60_000)]
        given = grants(loads, max_rate=0, max_in_flight=100, tick_seconds=0.5, now_ms=T0)
        # a needs 1 out + a tick's jobs (1) + 1; b is bounded by its own 10; c gets the rest
        assert {run: g.out for run, g in given.items()} == {"a": 3, "b": 10, "c": 87}

    def test_a_deadline_run_asks_for_its_jobs_over_the_time_left(self):
        late = load("d", 1.0, unreserved=3000, deadline=T0 + 60_500)
        given = grants(
            [late, load("a", 6000)], max_rate=3000, max_in_flight=0, tick_seconds=0.5, now_ms=T0
        )
        # d asks 3000/min (its y); a and d split the ceiling evenly
        assert given["d"].rate == pytest.approx(1500) and given["a"].rate == pytest.approx(1500)


class TestSideBySide:
    def test_each_run_keeps_its_own_schedule_and_counts(self, store):
        a = store.runs.start_run(100, 600, now_ms=T0)
        b = store.runs.start_run(100, 60, now_ms=T0)
        assert store.schedule.reserve_due(a, 1, now_ms=T0 + 1000).count == 11
        assert store.schedule.reserve_due(b, 1, now_ms=T0 + 1000).count == 2
        store.runs.stop_run(a)
        assert store.runs.active_run_ids() == [b]
        assert store.schedule.reserve_due(b, 1, now_ms=T0 + 2000).count == 1

    def test_unnamed_controls_refuse_to_guess_between_several_runs(self, store):
        a = store.runs.start_run(100, 600, now_ms=T0)
        b = store.runs.start_run(100, 60, now_ms=T0 + 1)
        for verb in (store.runs.stop_run, store.runs.pause_run, lambda: store.runs.update_run(y=5)):
            with pytest.raises(SeveralActiveError) as err:
                verb()
            assert err.value.run_ids == [b, a]
        assert [store.runs.run_state(r)["status"] for r in (a, b)] == ["running", "running"]
        store.runs.pause_run(a)
        assert store.runs.run_state(b)["status"] == "running"
        store.runs.resume_run(a)
        store.runs.update_run(y=120, run_id=b)
        rates = [store.runs.run_state(run)["yMinute"] for run in (a, b)]
        assert rates == [600, 120]

    def test_a_control_naming_no_known_run_says_so(self, store):
        with pytest.raises(UnknownRunError):
            store.runs.stop_run("0123456789ab")
        with pytest.raises(NoActiveRunError):
            store.runs.stop_run()

    def test_the_newest_run_is_shown_and_the_others_publish_beside(self, store, client):
        a = store.runs.start_run(100, 600, now_ms=T0)
        b = store.runs.start_run(100, 60, now_ms=T0 + 1)
        sub = client.pubsub()
        sub.subscribe(CHANNEL, STATES_CHANNEL)
        store.schedule.confirm_enqueued(a, 1)
        store.schedule.confirm_enqueued(b, 1)
        got = []
        while len(got) < 2:
            message = sub.get_message(timeout=5)
            assert message is not None, "no state published"
            if message["type"] == "message":
                got.append((message["channel"], json.loads(message["data"])["runId"]))
        sub.close()
        assert got == [(STATES_CHANNEL, a), (CHANNEL, b)]
        assert store.runs.current_state()["runId"] == b

    def test_when_the_shown_run_ends_the_newest_active_run_is_shown(self, store):
        a = store.runs.start_run(100, 600, now_ms=T0)
        b = store.runs.start_run(100, 60, now_ms=T0 + 1)
        store.runs.stop_run(b)
        assert store.runs.current_run_id() == b  # until a tick moves clients on
        assert store.schedule.follow_newest(a)
        assert store.runs.current_run_id() == a
        assert not store.schedule.follow_newest(a)

    def test_a_deployment_of_one_active_run_is_moved_over(self, store, client):
        run_id = store.runs.start_run(10, 60, now_ms=T0)
        client.delete("optio:active_runs")
        client.set(LEGACY_ACTIVE_KEY, run_id)
        store.schedule.move_legacy_active()
        assert store.runs.active_run_ids() == [run_id] and not client.exists(LEGACY_ACTIVE_KEY)


class TestCeilings:
    def test_a_share_slows_the_schedule_without_losing_its_place(self, store):
        run_id = store.runs.start_run(10_000, 6000, now_ms=T0)  # 100 jobs/s
        first = store.schedule.reserve_due(run_id, 1, max_outstanding=10_000, now_ms=T0 + 1000)
        assert first.first + first.count == 101
        # the ceiling binds from now: job 101 keeps its time, the next go at 10 jobs/s
        store.schedule.reserve_due(
            run_id, 1, max_outstanding=10_000, grant=Grant(600, ceiling=True), now_ms=T0 + 1000
        )
        held = store.schedule.reserve_due(
            run_id, 1, max_outstanding=10_000, grant=Grant(600, ceiling=True), now_ms=T0 + 2000
        )
        assert held.count == 10
        state = store.runs.run_state(run_id)
        assert (state["shareRate"], state["heldBackBy"]) == (600, "ceiling")
        free = store.schedule.reserve_due(run_id, 1, max_outstanding=10_000, now_ms=T0 + 3000)
        assert free.count == 10 and "shareRate" not in store.runs.run_state(run_id)

    def test_max_in_flight_bounds_the_jobs_out(self, store):
        run_id = store.runs.start_run(100, 6000, max_in_flight=2, now_ms=T0)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000).count == 2
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 2000).count == 0
        assert store.runs.run_state(run_id)["heldBackBy"] == "inFlight"
        store.counting.mark_processed(run_id, {0: None}, now_ms=T0 + 2000)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 3000).count == 1

    def test_a_share_of_the_in_flight_ceiling_bounds_it_too(self, store):
        run_id = store.runs.start_run(100, 6000, now_ms=T0)
        assert (
            store.schedule.reserve_due(run_id, 1, grant=Grant(out=3), now_ms=T0 + 1000).count == 3
        )


class TestDeadline:
    def test_the_rate_is_the_jobs_left_over_the_time_left(self, store):
        run_id = store.runs.start_run(3000, deadline_ms=T0 + 60_000, now_ms=T0)
        assert store.runs.run_state(run_id)["yMinute"] == pytest.approx(3000)
        store.schedule.reserve_due(run_id, 1, max_outstanding=10_000, now_ms=T0 + 1000)
        state = store.runs.run_state(run_id)
        # 3,000 jobs left (none reserved before this tick) over 58 s (a tick before the deadline)
        assert state["yMinute"] == pytest.approx(3000 * 60 / 58, rel=1e-3)
        assert state["deadline"] == T0 + 60_000 and state["onTrack"] is True
        assert state["projectedFinish"] <= T0 + 60_000

    def test_a_deadline_the_ceiling_cannot_meet_says_so_and_when(self, store):
        run_id = store.runs.start_run(3000, deadline_ms=T0 + 60_000, now_ms=T0)
        store.schedule.reserve_due(
            run_id, 1, max_outstanding=10_000, grant=Grant(1500, ceiling=True), now_ms=T0 + 1000
        )
        state = store.runs.run_state(run_id)
        assert state["onTrack"] is False
        # its first second at its share (26 jobs), the 2,974 left at 1,500/min: two minutes on
        assert state["projectedFinish"] == pytest.approx(T0 + 1000 + 2974 * 40 + 1000, abs=50)

    def test_y_of_a_deadline_run_cannot_be_set(self, store):
        run_id = store.runs.start_run(3000, deadline_ms=T0 + 60_000, now_ms=T0)
        with pytest.raises(DeadlineRunError):
            store.runs.update_run(y=10, run_id=run_id)
        assert store.client.hget(run_key(run_id), "deadline") == str(T0 + 60_000)


def test_a_store_without_runs_has_no_active_run(store: RunStore):
    assert store.runs.active_run_ids() == [] and store.runs.active_states() == []


class TestThrottleKeys:
    def test_a_keyed_throttle_cuts_the_keys_rate_not_the_runs(self, store, client):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)
        outcome, _, rate = store.counting.throttle_job(
            run_id, 0, key="api.example.com", decrease=0.5, window_s=2, now_ms=T0 + 100
        )
        assert (outcome, rate) == ("throttled", 300)
        state = store.runs.run_state(run_id)
        assert state["rateNow"] == 600 and state["throttled"] == 1
        assert store.shares.key_rates(["api.example.com"])["api.example.com"].rate == 300
        # within the window, another throttle does not cut again; after it, 95 % of the rate
        # its runs went at (the tick records it)
        store.counting.throttle_job(run_id, 1, key="api.example.com", window_s=2, now_ms=T0 + 500)
        store.shares.set_key("api.example.com", going=280)
        store.counting.throttle_job(run_id, 2, key="api.example.com", window_s=2, now_ms=T0 + 2200)
        assert store.shares.key_rates(["api.example.com"])["api.example.com"].rate == 266
        assert client.hget(run_key(run_id), "throttleKey") == "api.example.com"
        assert client.hlen(THROTTLES_KEY) == 6  # rate, at, top, last, going, late

    def test_the_runs_of_a_key_share_its_rate_by_weight(self):
        loads = [
            load("a", 600, key="api", weight=3),
            load("b", 600, key="api"),
            load("c", 600),
        ]
        given = grants(
            loads, max_rate=0, max_in_flight=0, tick_seconds=0.5, now_ms=T0, key_rates={"api": 400}
        )
        assert (given["a"].rate, given["b"].rate, given["c"].rate) == (300, 100, None)
        assert not given["a"].ceiling  # a throttle's share does not hold the run back

    def test_a_calm_key_climbs_back_and_is_dropped_once_above_what_its_runs_ask(self):
        loads = [load("a", 600, key="api"), load("b", 600, key="api")]
        calm = KeyRate(rate=300, cut_at=T0, top=600, last=T0, raised=T0)
        rates, changed = settle_keys(
            loads, {"api": calm}, now_ms=T0 + 1000, tick_seconds=0.5, window_ms=2000, steps=20
        )
        assert rates == {"api": 300} and changed == {}  # not a window yet
        rates, changed = settle_keys(
            loads, {"api": calm}, now_ms=T0 + 2000, tick_seconds=0.5, window_ms=2000, steps=20
        )
        assert rates == {"api": 360} and changed == {"api": 360}  # a step of y/20 at most
        near = KeyRate(rate=1190, cut_at=T0, top=600, last=T0, raised=T0)
        rates, changed = settle_keys(
            loads, {"api": near}, now_ms=T0 + 2000, tick_seconds=0.5, window_ms=2000, steps=20
        )
        assert rates == {} and changed == {"api": None}

    def test_climb_goes_halfway_to_the_rate_refused_then_probes(self):
        assert climb(100, 10_000, 400, 20) == 250
        assert climb(400, 10_000, 400, 20) == 408
        assert climb(100, 1000, 0, 20) == 150
