"""The Lua scripts and their verbs, against the session's private redis-server."""

from __future__ import annotations

import json
import threading

import pytest

from optio import config
from optio.redis_state import (
    NoActiveRunError,
    RunActiveError,
    XBelowEnqueuedError,
    done_key,
)
from tests.helpers import wait_for

T0 = 1_800_000_000_000  # a fixed "now" in ms, so schedules are exact

FIVE = {"running": bool, "xTotal": int, "yMinute": (int, float), "enqueued": int, "processed": int}


class Published:
    """Collects the states published on optio:progress for one run id."""

    def __init__(self, client) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(config.CHANNEL)
        self.states: list[dict] = []
        self.all: list[dict] = []

    def drain(self, run_id: str, expect: int) -> list[dict]:
        def got_enough():
            while (m := self.pubsub.get_message(timeout=0.05)) is not None:
                state = json.loads(m["data"])
                self.all.append(state)
                if state["runId"] == run_id:
                    self.states.append(state)
            return len(self.states) >= expect

        wait_for(got_enough, 5, f"{expect} published states")
        return self.states


@pytest.fixture
def published(client):
    p = Published(client)
    yield p
    p.pubsub.close()


def assert_shape(state: dict) -> None:
    for name, kind in FIVE.items():
        assert isinstance(state[name], kind), f"{name} is {state[name]!r}"
    assert not isinstance(state["xTotal"], bool)


class TestStartRun:
    def test_starts_with_zero_counts_and_publishes(self, store, published):
        run_id = store.start_run(100, 60, now_ms=T0)
        state = store.current_state()
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
        }
        assert published.drain(run_id, 1)[0] == state

    def test_second_start_is_refused_while_running(self, store):
        first = store.start_run(10, 60)
        with pytest.raises(RunActiveError) as err:
            store.start_run(20, 60)
        assert err.value.run_id == first
        assert store.current_state()["xTotal"] == 10

    def test_concurrent_starts_start_exactly_one(self, store):
        started, refused = [], []

        def start():
            try:
                started.append(store.start_run(5, 60))
            except RunActiveError:
                refused.append(1)

        threads = [threading.Thread(target=start) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(started) == 1 and len(refused) == 7

    def test_fractional_rate_is_kept(self, store):
        store.start_run(3, 0.5, now_ms=T0)
        assert store.current_state()["yMinute"] == 0.5

    def test_idle_state_before_any_run(self, store):
        state = store.current_state()
        assert_shape(state)
        assert state["running"] is False and state["status"] == "idle"


class TestReserveDue:
    def test_job_zero_is_due_at_start_then_y_per_minute(self, store):
        run_id = store.start_run(1000, 600, now_ms=T0)  # one job every 100 ms
        first = store.reserve_due(run_id, 1, now_ms=T0)
        assert (first.first, first.count) == (0, 1)
        second = store.reserve_due(run_id, 1, now_ms=T0 + 1000)
        assert (second.first, second.count) == (1, 10)
        third = store.reserve_due(run_id, 1, now_ms=T0 + 1050)
        assert third.count == 0

    def test_two_ticks_at_the_same_moment_never_exceed_what_is_due(self, store):
        run_id = store.start_run(1000, 600, now_ms=T0)
        results: list[int] = []

        def tick():
            results.append(store.reserve_due(run_id, 1, now_ms=T0 + 1000).count)

        threads = [threading.Thread(target=tick) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(results) == 11  # jobs 0..10 are due at +1 s
        assert store.client.hget(f"optio:run:{run_id}", "reserved") == "11"

    def test_fractional_rate_one_job_every_two_minutes(self, store):
        run_id = store.start_run(10, 0.5, now_ms=T0)
        assert store.reserve_due(run_id, 1, now_ms=T0).count == 1
        assert store.reserve_due(run_id, 1, now_ms=T0 + 119_999).count == 0
        nxt = store.reserve_due(run_id, 1, now_ms=T0 + 120_000)
        assert (nxt.first, nxt.count) == (1, 1)

    def test_enqueuing_stops_at_exactly_x(self, store):
        run_id = store.start_run(25, 6000, now_ms=T0)  # 100 per second
        total = sum(
            store.reserve_due(run_id, 1, now_ms=T0 + ms).count for ms in range(0, 5000, 250)
        )
        assert total == 25
        assert store.reserve_due(run_id, 1, now_ms=T0 + 60_000).count == 0

    def test_resume_after_downtime_has_no_catch_up_burst(self, store):
        run_id = store.start_run(100_000, 600, now_ms=T0)  # 10 per 1 s tick
        assert store.reserve_due(run_id, 1, now_ms=T0).count == 1
        # the scheduler was away for 100 s: 1000 jobs are "late", at most one tick's worth extra
        assert store.reserve_due(run_id, 1, now_ms=T0 + 100_000).count == 20
        # and from there it goes on at rate y
        assert store.reserve_due(run_id, 1, now_ms=T0 + 101_000).count == 10
        assert store.reserve_due(run_id, 1, now_ms=T0 + 102_000).count == 10

    def test_above_worker_capacity_the_queue_stays_bounded(self, store):
        run_id = store.start_run(100_000, 60_000, now_ms=T0)  # 1000 per 1 s tick
        first = store.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 1000)
        assert first.count == 1001
        # nothing was processed: only 499 more may wait in the broker
        assert store.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 2000).count == 499
        assert store.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 3000).count == 0
        store.mark_processed(run_id, {job_id: "r" for job_id in range(300)})
        later = store.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 4000)
        assert later.count == 300
        # the schedule slid instead of owing a burst: one tick later, one tick's worth is due
        store.mark_processed(run_id, {job_id: "r" for job_id in range(300, 1800)})
        assert store.reserve_due(run_id, 1, max_outstanding=1500, now_ms=T0 + 5000).count == 1000

    def test_no_active_run_reserves_nothing_but_records_the_tick(self, store):
        run_id = store.start_run(10, 600, now_ms=T0)
        store.stop_run(now_ms=T0)
        assert store.reserve_due(run_id, 1, now_ms=T0 + 5000).count == 0
        assert store.last_tick_ms() == T0 + 5000


class TestUpdateRun:
    def test_new_rate_applies_from_the_next_tick(self, store, published):
        run_id = store.start_run(1000, 600, now_ms=T0)
        assert store.reserve_due(run_id, 1, now_ms=T0 + 1000).count == 11
        store.update_run(y=60, now_ms=T0 + 1000)  # now one job per second
        assert store.reserve_due(run_id, 1, now_ms=T0 + 1500).count == 0
        assert store.reserve_due(run_id, 1, now_ms=T0 + 2000).count == 1
        assert published.drain(run_id, 2)[-1]["yMinute"] == 60

    def test_x_cannot_go_below_enqueued(self, store):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0 + 1000)  # 11 reserved
        with pytest.raises(XBelowEnqueuedError):
            store.update_run(x=5, now_ms=T0 + 1000)
        assert store.current_state()["xTotal"] == 100
        store.update_run(x=11, now_ms=T0 + 1000)
        assert store.current_state()["xTotal"] == 11

    def test_lowering_x_to_what_is_done_completes_the_run(self, store):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0)
        assert store.mark_processed(run_id, {0: "r0"}, now_ms=T0 + 10) == 1
        store.update_run(x=1, now_ms=T0 + 20)
        state = store.current_state()
        assert (state["running"], state["status"], state["finishedAt"]) == (
            False,
            "completed",
            T0 + 20,
        )

    def test_update_without_a_run_is_refused(self, store):
        with pytest.raises(NoActiveRunError):
            store.update_run(y=10)


class TestStopRun:
    def test_stop_ends_enqueuing_and_publishes(self, store, published):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.stop_run(now_ms=T0 + 500)
        state = store.current_state()
        assert (state["running"], state["status"], state["finishedAt"]) == (
            False,
            "stopped",
            T0 + 500,
        )
        assert published.drain(run_id, 2)[-1]["status"] == "stopped"
        assert store.active_run_id() is None
        with pytest.raises(NoActiveRunError):
            store.stop_run()


class TestConfirmEnqueued:
    def test_counts_and_publishes(self, store, published):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0 + 2000)  # 21 reserved
        assert store.confirm_enqueued(run_id, 10) == 10
        assert store.confirm_enqueued(run_id, 3) == 13
        assert [s["enqueued"] for s in published.drain(run_id, 3)] == [0, 10, 13]

    def test_never_counts_more_than_was_reserved(self, store):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0)  # job 0
        assert store.confirm_enqueued(run_id, 1) == 1
        assert store.confirm_enqueued(run_id, 1) == 1  # a retried confirmation


class TestMarkProcessed:
    def test_a_job_is_counted_once_even_when_delivered_twice(self, store, published):
        run_id = store.start_run(3, 600, now_ms=T0)
        assert store.mark_processed(run_id, {1: "a"}) == 1
        assert store.mark_processed(run_id, {1: "b"}) == 0
        assert store.current_state()["processed"] == 1
        assert store.result(run_id, 1) == "a"
        assert store.client.getbit(done_key(run_id), 1) == 1
        # start + one counted job: the duplicate published nothing
        assert [s["processed"] for s in published.drain(run_id, 2)] == [0, 1]

    def test_last_job_completes_the_run_and_publishes_running_false(self, store, published):
        run_id = store.start_run(3, 600, now_ms=T0)
        for job_id in range(3):
            store.mark_processed(run_id, {job_id: f"r{job_id}"}, now_ms=T0 + 100)
        final = published.drain(run_id, 4)[-1]
        assert (final["running"], final["status"], final["processed"]) == (False, "completed", 3)
        assert final["finishedAt"] == T0 + 100
        assert store.active_run_id() is None
        assert store.result_count(run_id) == 3
        store.start_run(1, 60)  # the slot is free again

    def test_jobs_of_an_old_run_never_touch_the_new_one(self, store, published):
        old = store.start_run(10, 600, now_ms=T0)
        store.stop_run(now_ms=T0 + 1)
        new = store.start_run(10, 600, now_ms=T0 + 2)
        assert store.mark_processed(old, {4: "late"}) == 1
        assert store.current_state()["runId"] == new
        assert store.current_state()["processed"] == 0
        assert store.run_state(old)["processed"] == 1
        # the old run's late job published nothing: clients watch the new run
        store.confirm_enqueued(new, 1)  # a later message, so everything before it has arrived
        published.drain(new, 2)
        assert [s["processed"] for s in published.all if s["runId"] == old] == [0, 0]

    def test_a_batch_counts_each_new_job_once_and_publishes_once(self, store, published):
        run_id = store.start_run(10, 600, now_ms=T0)
        assert store.mark_processed(run_id, {1: "a", 2: "b"}) == 2
        assert store.mark_processed(run_id, {2: "again", 3: "c", 4: "d"}) == 2
        assert store.current_state()["processed"] == 4
        assert store.result(run_id, 2) == "b"
        assert [s["processed"] for s in published.drain(run_id, 3)] == [0, 2, 4]

    def test_enqueued_is_never_shown_below_what_is_done(self, store):
        run_id = store.start_run(10, 6000, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0 + 100)  # 11 due, capped at 10, sent...
        store.mark_processed(run_id, {0: "a", 1: "b"})  # ...done before the tick confirmed
        assert store.current_state()["enqueued"] == 2
        store.confirm_enqueued(run_id, 10)
        assert store.current_state()["enqueued"] == 10

    def test_pending_jobs_gives_the_status_and_the_uncounted_ids(self, store):
        run_id = store.start_run(20, 600, now_ms=T0)
        store.mark_processed(run_id, {3: "a", 5: "b", 12: "c"})
        assert store.pending_jobs(run_id, 2, 12) == ("running", [2, 4, 6, 7, 8, 9, 10, 11, 13])
        store.stop_run()
        assert store.pending_jobs(run_id, 3, 1) == ("stopped", [])
        assert store.pending_jobs("nope", 0, 2) == (None, [0, 1])

    def test_unknown_run_counts_nothing(self, store):
        assert store.mark_processed("nope", {0: "x"}) == 0
        assert store.client.exists(done_key("nope")) == 0


class TestMarkFailed:
    def test_failed_jobs_count_toward_completion(self, store, published):
        run_id = store.start_run(2, 600, now_ms=T0)
        assert store.mark_processed(run_id, {0: "ok"}) == 1
        assert store.mark_failed(run_id, 1, "ValueError: boom", now_ms=T0 + 5) is True
        assert store.mark_failed(run_id, 1, "again") is False
        assert store.mark_processed(run_id, {1: "late success"}) == 0
        final = published.drain(run_id, 3)[-1]
        assert (final["processed"], final["failed"], final["running"]) == (1, 1, False)
        assert final["status"] == "completed"
        assert store.error(run_id, 1) == "ValueError: boom"

    def test_attempts_are_counted_per_job(self, store):
        run_id = store.start_run(5, 600)
        assert [store.add_attempt(run_id, 3) for _ in range(3)] == [1, 2, 3]
        assert store.add_attempt(run_id, 4) == 1


class TestClaimStalled:
    def test_a_run_with_progress_is_not_stalled(self, store):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0 + 1000)
        assert store.claim_stalled(run_id, 5, 100, now_ms=T0 + 4000) == []

    def test_uncounted_reserved_jobs_of_a_stalled_run_are_returned_once(self, store, published):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0 + 1000)  # jobs 0..10
        store.confirm_enqueued(run_id, 4)  # the tick died after sending 4 of 11
        for job_id in (0, 2, 3, 9):
            store.mark_processed(run_id, {job_id: "r"}, now_ms=T0 + 1100)
        assert store.claim_stalled(run_id, 5, 100, now_ms=T0 + 6000) == []  # not yet 5 s quiet
        lost = store.claim_stalled(run_id, 5, 100, now_ms=T0 + 6200)
        assert lost == [1, 4, 5, 6, 7, 8, 10]
        assert store.current_state()["enqueued"] == 11  # every job has a message again
        # swept: not again until another quiet period
        assert store.claim_stalled(run_id, 5, 100, now_ms=T0 + 7000) == []
        assert store.claim_stalled(run_id, 5, 3, now_ms=T0 + 11_300) == [1, 4, 5]

    def test_scans_beyond_the_first_chunk(self, store):
        run_id = store.start_run(100_000, 6_000_000, now_ms=T0)
        store.reserve_due(run_id, 60, now_ms=T0 + 60_000)  # 100,000 jobs due after a minute
        assert store.current_state()["xTotal"] == 100_000
        reserved = int(store.client.hget(f"optio:run:{run_id}", "reserved"))
        assert reserved % 8 == 0
        store.client.set(done_key(run_id), b"\xff" * (reserved // 8))
        store.client.setbit(done_key(run_id), reserved - 1, 0)
        lost = store.claim_stalled(run_id, 1, 10, now_ms=T0 + 200_000)
        assert lost == [reserved - 1]

    def test_stopped_runs_are_not_swept(self, store):
        run_id = store.start_run(100, 600, now_ms=T0)
        store.reserve_due(run_id, 1, now_ms=T0 + 1000)
        store.stop_run(now_ms=T0 + 1000)
        assert store.claim_stalled(run_id, 1, 100, now_ms=T0 + 60_000) == []
