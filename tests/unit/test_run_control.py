"""Run control in the Lua scripts, in-process against the private Redis: pause and resume,
ordering (seq), history, retry of failed jobs, the webhook outbox. Fixed clocks make schedules
exact. (With real processes: tests/faults/test_run_control.py; in the dashboard:
tests/browser/test_run_control.py.)"""

from __future__ import annotations

import threading

import pytest

from optio.config import Settings
from optio.names import OUTBOX_KEY, RUNS_KEY, message_key, messages_key, run_keys
from optio.redis_state import (
    NoActiveRunError,
    NotPausedError,
    RetryRefusedError,
    RunStore,
    UnknownRunError,
)

T0 = 1_800_000_000_000


def lease(store, run_id, first, count, token="w1", now_ms=None, retry=0):
    key = message_key(first, count, retry)
    return key, store.leases.lease_message(run_id, key, first, count, token, 10_000, now_ms=now_ms)


def parked(store, run_id) -> list[str]:
    return store.client.zrangebyscore(messages_key(run_id), 9e15, "+inf")


class TestPause:
    def test_a_paused_run_is_running_but_reserves_nothing(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000).count == 11
        store.runs.pause_run(now_ms=T0 + 1000)
        state = store.runs.current_state()
        assert (state["status"], state["running"], state["pausedAt"]) == ("paused", True, T0 + 1000)
        assert store.schedule.reserve_due(run_id, 1, now_ms=T0 + 60_000).count == 0
        other = store.runs.start_run(5, 60, now_ms=T0 + 60_000)  # another run goes meanwhile
        assert store.schedule.reserve_due(other, 1, now_ms=T0 + 60_000).count == 1
        assert store.runs.run_state(run_id)["status"] == "paused"

    def test_resume_goes_on_at_y_from_the_resume_without_catching_up(self, store):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)  # 10 jobs/s
        store.schedule.reserve_due(run_id, 1, max_outstanding=1000, now_ms=T0 + 1000)  # jobs 0..10
        store.runs.pause_run(now_ms=T0 + 1000)
        store.runs.resume_run(now_ms=T0 + 61_000)  # a minute paused
        assert (
            store.schedule.reserve_due(run_id, 1, max_outstanding=1000, now_ms=T0 + 61_000).count
            == 0
        )
        got = store.schedule.reserve_due(run_id, 1, max_outstanding=1000, now_ms=T0 + 62_000)
        assert (got.first, got.count) == (11, 10)
        state = store.runs.current_state()
        assert (state["status"], state["pausedAt"], state["pausedMs"]) == ("running", None, 60_000)

    def test_pause_and_resume_refuse_what_cannot_work(self, store):
        with pytest.raises(NoActiveRunError):
            store.runs.pause_run()
        with pytest.raises(NotPausedError):
            store.runs.resume_run()
        store.runs.start_run(10, 60, now_ms=T0)
        with pytest.raises(NotPausedError):
            store.runs.resume_run()
        store.runs.pause_run(now_ms=T0 + 1)
        with pytest.raises(NoActiveRunError, match="already paused"):
            store.runs.pause_run()

    def test_a_delivery_while_paused_is_parked_then_sent_after_resume(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, batch=5, now_ms=T0 + 1000)
        store.schedule.confirm_enqueued(run_id, 11, ["0:5", "5:5", "10:1"])
        store.runs.pause_run(now_ms=T0 + 1500)
        key, got = lease(store, run_id, 0, 5, now_ms=T0 + 2000)
        assert (got.status, got.jobs) == ("paused", [])
        assert parked(store, run_id) == [key]
        # parked messages wait for the resume, however long the pause lasts
        assert store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 3_600_000).keys == []
        store.runs.resume_run(now_ms=T0 + 3_600_000)
        lost = store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 3_600_001)
        assert (lost.parked, lost.leases, lost.keys) == (1, 0, [key])
        again = lease(store, run_id, 0, 5, token="w2", now_ms=T0 + 3_600_002)[1]
        assert again.jobs == [0, 1, 2, 3, 4]

    def test_a_message_parked_before_its_publish_is_confirmed_stays_parked(self, store):
        """A worker got the message and parked it (the run is paused) before the tick heard
        from the broker that it was published (RabbitMQ's confirm can take that long): the
        confirmation must not take the parked message off, or nothing sends it again."""
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, batch=5, now_ms=T0 + 1000)
        store.runs.pause_run(now_ms=T0 + 1100)
        key, got = lease(store, run_id, 0, 5, now_ms=T0 + 1200)
        assert got.status == "paused" and parked(store, run_id) == [key]
        store.schedule.confirm_enqueued(run_id, 5, [key])
        assert parked(store, run_id) == [key]
        store.runs.resume_run(now_ms=T0 + 2000)
        assert key in store.schedule.claim_lost(run_id, most=10, now_ms=T0 + 2000).keys

    def test_a_message_running_at_the_pause_parks_its_rest_at_the_next_count(self, store):
        run_id = store.runs.start_run(100, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, batch=5, now_ms=T0 + 1000)
        key, _ = lease(store, run_id, 0, 5, now_ms=T0 + 1000)
        store.runs.pause_run(now_ms=T0 + 1100)
        flush = store.counting.mark_processed(run_id, {0: "r0"}, message=key, token="w1", handled=1)
        assert (flush.counted, flush.status, flush.lost) == (1, "paused", False)
        store.counting.mark_processed(run_id, {}, message=key, token="w1", handled=0, release=True)
        assert parked(store, run_id) == [key]
        assert store.client.hget(run_keys(run_id)[0], "leasedJobs") == "0"
        store.runs.resume_run(now_ms=T0 + 5000)
        assert store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 5001).keys == [key]
        assert lease(store, run_id, 0, 5, token="w2", now_ms=T0 + 5002)[1].jobs == [1, 2, 3, 4]

    def test_leases_are_renewed_and_failures_recorded_while_paused(self, store):
        run_id = store.runs.start_run(10, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 1, now_ms=T0)
        store.runs.pause_run(now_ms=T0 + 1)
        assert store.leases.renew_leases(run_id, {key: "w1"}, 10_000, now_ms=T0 + 2) == (
            "paused",
            [],
        )
        outcome = store.counting.fail_job(run_id, 0, "E", attempts=1, backoff_s=1, now_ms=T0 + 3)
        assert outcome[0] == "failed"

    def test_the_last_job_counted_while_paused_completes_the_run(self, store):
        run_id = store.runs.start_run(1, 600, now_ms=T0)
        key, _ = lease(store, run_id, 0, 1, now_ms=T0)
        store.runs.pause_run(now_ms=T0 + 1000)
        store.counting.mark_processed(
            run_id, {0: "r"}, message=key, token="w1", handled=1, release=True, now_ms=T0 + 3000
        )
        state = store.runs.run_state(run_id)
        assert (state["status"], state["running"], state["pausedMs"]) == ("completed", False, 2000)
        assert store.runs.active_run_ids() == []

    def test_a_new_rate_set_while_paused_counts_from_the_pause(self, store):
        run_id = store.runs.start_run(1000, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, max_outstanding=1000, now_ms=T0 + 1000)  # 0..10
        store.runs.pause_run(now_ms=T0 + 1000)
        store.runs.update_run(y=1200, now_ms=T0 + 30_000)
        store.runs.resume_run(now_ms=T0 + 60_000)
        got = store.schedule.reserve_due(run_id, 1, max_outstanding=1000, now_ms=T0 + 61_000)
        assert (got.first, got.count) == (11, 20)  # one second at the new 20/s

    def test_stop_while_paused_ends_the_pause(self, store):
        run_id = store.runs.start_run(10, 60, now_ms=T0)
        store.runs.pause_run(now_ms=T0 + 1000)
        store.runs.stop_run(now_ms=T0 + 4000)
        state = store.runs.run_state(run_id)
        assert (state["status"], state["pausedAt"], state["pausedMs"]) == ("stopped", None, 3000)


class TestStop:
    def test_a_tick_that_publishes_after_the_stop_leaves_the_final_state_alone(self, store):
        """The tick reserved jobs, then the run was stopped while it published them: their
        confirmation changes nothing of the ended run (its state stays the final one)."""
        run_id = store.runs.start_run(100, 6000, now_ms=T0)
        due = store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000)
        store.runs.stop_run(now_ms=T0 + 1001)
        final = store.runs.run_state(run_id)
        assert store.schedule.confirm_enqueued(run_id, due.count, due.messages) == 0
        assert store.runs.run_state(run_id) == final


class TestSeq:
    def test_every_published_change_has_a_higher_seq(self, store, published):
        run_id = store.runs.start_run(3, 600, now_ms=T0)
        store.schedule.reserve_due(run_id, 1, now_ms=T0 + 1000)
        store.schedule.confirm_enqueued(run_id, 3, [])
        store.runs.pause_run()
        store.runs.resume_run()
        store.counting.mark_processed(run_id, {0: "a", 1: "b", 2: "c"})
        seqs = [s["seq"] for s in published.drain(run_id, 5)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 5, seqs
        assert store.runs.run_state(run_id)["seq"] == seqs[-1]


class TestHistory:
    def test_runs_are_listed_newest_first_in_pages(self, store):
        ids = []
        for i in range(5):
            ids.append(store.runs.start_run(1, 60, now_ms=T0 + i))
            store.runs.stop_run(now_ms=T0 + i)
        runs, after = store.runs.list_runs(2)
        assert [r["runId"] for r in runs] == [ids[4], ids[3]] and after == ids[3]
        runs, after = store.runs.list_runs(2, before=after)
        assert [r["runId"] for r in runs] == [ids[2], ids[1]] and after == ids[1]
        runs, after = store.runs.list_runs(2, before=after)
        assert [r["runId"] for r in runs] == [ids[0]] and after is None
        with pytest.raises(UnknownRunError):
            store.runs.list_runs(2, before="0123456789ab")

    def test_only_the_newest_keep_runs_are_kept_with_their_keys(self, client):
        store = RunStore(client, Settings(keep_runs=3))
        ids = []
        for i in range(5):
            ids.append(store.runs.start_run(1, 60, now_ms=T0 + i))
            store.runs.stop_run(now_ms=T0 + i)
        assert client.zrange(RUNS_KEY, 0, -1) == ids[2:]
        for gone in ids[:2]:
            assert client.exists(*run_keys(gone)) == 0
        assert [r["runId"] for r in store.runs.list_runs(10)[0]] == ids[:1:-1]

    def test_an_expired_run_drops_out_of_the_history(self, store):
        a = store.runs.start_run(1, 60, now_ms=T0)
        store.runs.stop_run(now_ms=T0)
        b = store.runs.start_run(1, 60, now_ms=T0 + 1)
        store.runs.stop_run(now_ms=T0 + 1)
        store.client.delete(*run_keys(a))  # as OPTIO_RUN_TTL does
        runs, after = store.runs.list_runs(5)
        assert [r["runId"] for r in runs] == [b] and after is None
        assert store.client.zrange(RUNS_KEY, 0, -1) == [b]

    def test_errors_of_a_run_are_listed_by_job_id(self, store):
        run_id = store.runs.start_run(30, 600, now_ms=T0)
        for job in range(25, 0, -1):
            store.counting.fail_job(run_id, job, f"E{job}", attempts=1, backoff_s=1)
        errors = store.runs.run_errors(run_id)
        assert len(errors) == 20 and errors == sorted(errors, key=lambda e: e["job"])
        assert errors[0] == {"job": errors[0]["job"], "error": f"E{errors[0]['job']}"}


class TestRetryFailed:
    def failed_run(self, store, failed=(1, 3)):
        run_id = store.runs.start_run(5, 600, now_ms=T0)
        for job in failed:
            store.counting.fail_job(run_id, job, "boom", attempts=1, backoff_s=1, now_ms=T0)
        store.counting.mark_processed(
            run_id, {j: "ok" for j in range(5) if j not in failed}, now_ms=T0 + 1000
        )
        assert store.runs.run_state(run_id)["status"] == "completed"
        return run_id

    def test_failed_jobs_run_again_at_the_runs_rate_and_complete_it(self, store):
        run_id = self.failed_run(store)
        assert store.runs.retry_failed(run_id, now_ms=T0 + 10_000) == 2
        state = store.runs.current_state()
        assert (state["runId"], state["status"], state["failed"], state["retried"]) == (
            run_id,
            "running",
            0,
            2,
        )
        assert state["pausedMs"] == 9000  # the time it was over is not running time
        assert store.runs.active_run_ids() == [run_id]
        # y = 600/min: one job every 100 ms
        assert store.schedule.claim_lost(run_id, most=10, now_ms=T0 + 10_000).keys == ["1:1:r-1"]
        assert store.schedule.claim_lost(run_id, most=10, now_ms=T0 + 10_100).keys == ["3:1:r-1"]
        for job in (1, 3):
            key, got = lease(store, run_id, job, 1, retry=-1)
            assert got.jobs == [job]
            store.counting.mark_processed(
                run_id, {job: "ok"}, message=key, token="w1", handled=1, release=True
            )
        state = store.runs.run_state(run_id)
        assert (state["status"], state["processed"], state["failed"]) == ("completed", 5, 0)
        assert store.runs.run_errors(run_id) == []

    def test_a_job_that_fails_again_stays_failed(self, store):
        run_id = self.failed_run(store, failed=(2,))
        store.runs.retry_failed(run_id, now_ms=T0 + 10_000)
        assert store.counting.fail_job(run_id, 2, "again", attempts=1, backoff_s=1)[0] == "failed"
        state = store.runs.run_state(run_id)
        assert (state["status"], state["processed"], state["failed"]) == ("completed", 4, 1)
        assert store.runs.run_errors(run_id) == [{"job": 2, "error": "again"}]

    def test_retry_is_refused_when_it_cannot_work(self, store):
        with pytest.raises(UnknownRunError):
            store.runs.retry_failed("0123456789ab")
        self.failed_run(store)
        other = store.runs.start_run(5, 60)
        with pytest.raises(RetryRefusedError, match="running"):
            store.runs.retry_failed(other)
        store.runs.stop_run()
        with pytest.raises(RetryRefusedError, match="stopped"):
            store.runs.retry_failed(other)
        clean = self.failed_run(store, failed=())
        with pytest.raises(RetryRefusedError, match="no failed jobs"):
            store.runs.retry_failed(clean)


class TestWebhookOutbox:
    def test_a_run_ends_into_the_outbox_only_with_a_webhook(self, client):
        plain = RunStore(client, Settings(webhook_url=None))
        a = plain.runs.start_run(1, 60, now_ms=T0)
        plain.runs.stop_run(now_ms=T0 + 5)
        assert plain.runs.run_state(a)["webhook"] is None
        hooked = RunStore(client, Settings(webhook_url="http://127.0.0.1:9/hook"))
        b = hooked.runs.start_run(1, 60, now_ms=T0)
        hooked.runs.stop_run(now_ms=T0 + 5)
        assert hooked.runs.run_state(b)["webhook"] == "pending"
        assert client.zrange(OUTBOX_KEY, 0, -1, withscores=True) == [(b, T0 + 5)]

    def test_each_due_delivery_is_claimed_by_one_claimer(self, client):
        store = RunStore(client, Settings(webhook_url="http://127.0.0.1:9/hook"))
        run_id = store.runs.start_run(1, 60)
        store.runs.stop_run()  # due at once (by the Redis clock, as claims are)
        claims: list[list[str]] = []
        threads = [
            threading.Thread(target=lambda: claims.append(store.outbox.claim_webhooks(10_000)))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claims, key=len)[-1] == [run_id] and sum(map(len, claims)) == 1

    def test_outcomes_are_recorded_in_the_state(self, client):
        store = RunStore(client, Settings(webhook_url="http://127.0.0.1:9/hook"))
        run_id = store.runs.start_run(1, 60, now_ms=T0)
        store.runs.stop_run(now_ms=T0)
        store.outbox.record_webhook(run_id, "retry", due_ms=T0 + 2000, error="no answer")
        assert store.runs.run_state(run_id)["webhook"] == "pending"
        assert client.zscore(OUTBOX_KEY, run_id) == T0 + 2000
        store.outbox.record_webhook(run_id, "delivered")
        assert store.runs.run_state(run_id)["webhook"] == "delivered"
        assert client.zcard(OUTBOX_KEY) == 0
