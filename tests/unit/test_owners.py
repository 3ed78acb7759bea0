"""One live message per job, in the Lua scripts, in-process with fixed clocks: a job whose retry,
throttle rerun or retry-failed rerun is pending as a message of its own is leased through that
message only, whatever sends its first message again (a resume of the parked message, the tick
after the lease expired, a late copy). Each case checks that every job not yet counted is listed
by exactly one lease, and that the run's counters still balance."""

from __future__ import annotations

from collections import Counter

from optio import names
from optio.names import message_key, parse_message_key, run_key
from optio.worker.tick import as_messages

T0 = 1_800_000_000_000
X, Y, BATCH = 20, 60_000, 10  # the reported case: 10 jobs per message
JOB = 3  # the job that fails (or is throttled) in message "0:10"


def started(store) -> str:
    """A run of X jobs at Y whose two messages ("0:10", "10:10") are in the broker."""
    run_id = store.runs.start_run(X, Y, now_ms=T0)
    due = store.schedule.reserve_due(run_id, 1, batch=BATCH, now_ms=T0 + 1000)
    assert due.messages == ["0:10", "10:10"]
    store.schedule.confirm_enqueued(run_id, due.count, due.messages)
    return run_id


def token_of(key: str) -> str:
    """A worker's lease token for message ``key`` (a token has no ":")."""
    return "w-" + key.replace(":", "_")


def lease(store, run_id, key: str, token: str, at: int) -> list[int]:
    """The jobs a worker that starts message ``key`` at T0 + ``at`` runs (paused: none)."""
    first, count, _ = parse_message_key(key)
    got = store.leases.lease_message(run_id, key, first, count, token, 10_000, now_ms=T0 + at)
    assert not got.held_elsewhere
    return got.jobs


def count(
    store, run_id, key: str, token: str, jobs: list[int], at: int, handled: int | None = None
) -> None:
    """The worker holding ``key`` ran ``jobs`` and releases it; ``handled``: the jobs it ran
    since its last count, failed or throttled ones too (default: ``jobs``)."""
    store.counting.mark_processed(
        run_id,
        {job: f"ok-{job}" for job in jobs},
        message=key,
        token=token,
        handled=len(jobs) if handled is None else handled,
        release=True,
        now_ms=T0 + at,
    )


def owners(store, run_id) -> dict[str, str]:
    """Job id -> the message that owns it (names.owners_key, looked up here so that these tests
    run, and fail at their first lease, on the code from before owners)."""
    return store.client.hgetall(names.owners_key(run_id))


def leased_jobs(store, run_id) -> int:
    return int(store.client.hget(run_key(run_id), "leasedJobs"))


def assert_one_lease_each(leases: dict[str, list[int]], jobs: set[int]) -> None:
    """Every job of ``jobs`` is listed by exactly one of the ``leases`` (message -> its jobs)."""
    listed = Counter(job for got in leases.values() for job in got)
    assert {job: n for job, n in listed.items() if n != 1} == {}, leases
    assert set(listed) == jobs, leases


def started_with_a_failure(store) -> str:
    """w1 runs "0:10" from T0 + 1000: jobs 0..2 counted, job 3 failed (its retry "3:1:r1" is
    due at T0 + 2100)."""
    run_id = started(store)
    assert lease(store, run_id, "0:10", "w1", 1000) == list(range(10))
    store.counting.mark_processed(
        run_id, {0: "ok-0", 1: "ok-1", 2: "ok-2"}, message="0:10", token="w1", handled=3
    )
    got = store.counting.fail_job(run_id, JOB, "E", attempts=3, backoff_s=1, now_ms=T0 + 1100)
    assert got == ("retry", 1, 1.0)
    return run_id


def test_a_retry_pending_at_a_pause_keeps_its_job_after_the_resume(store):
    """The reported case: pause right after the failure, resume; the parked range message and
    the retry both come back, and only the retry runs job 3."""
    run_id = started_with_a_failure(store)
    store.runs.pause_run(now_ms=T0 + 1150)
    # w1 counts job 4, sees the pause and parks "0:10" (jobs 5..9 not run; job 3 handled)
    count(store, run_id, "0:10", "w1", [4], 1300, handled=2)
    assert store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 2100).keys == ["3:1:r1"]
    assert lease(store, run_id, "3:1:r1", "w2", 2200) == []  # paused: parked
    assert lease(store, run_id, "10:10", "w3", 2200) == []
    store.runs.resume_run(now_ms=T0 + 5000)
    lost = store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 5001)
    assert (lost.parked, sorted(lost.keys)) == (3, ["0:10", "10:10", "3:1:r1"])
    leases = {key: lease(store, run_id, key, token_of(key), 5002) for key in lost.keys}
    assert leases["0:10"] == [5, 6, 7, 8, 9]
    assert leases["3:1:r1"] == [JOB]
    assert_one_lease_each(leases, set(range(X)) - {0, 1, 2, 4})
    assert leased_jobs(store, run_id) == X - 4  # each job once: the counters balance
    assert owners(store, run_id) == {"3": "3:1:r1"}
    count(store, run_id, "3:1:r1", token_of("3:1:r1"), [JOB], 5300)
    assert owners(store, run_id) == {}  # counted: owned no more (leases check nothing again)
    count(store, run_id, "0:10", token_of("0:10"), leases["0:10"], 5400)
    count(store, run_id, "10:10", token_of("10:10"), leases["10:10"], 5400)
    state = store.runs.run_state(run_id)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", X, 0)
    assert leased_jobs(store, run_id) == 0


def test_a_range_message_sent_again_after_its_lease_expired_leaves_the_retry_its_job(store):
    run_id = started_with_a_failure(store)  # then w1 dies holding "0:10" (lease until +11000)
    assert store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 2100).keys == ["3:1:r1"]
    store.schedule.confirm_enqueued(run_id, 0, ["3:1:r1"])
    lost = store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 11_001)
    assert (lost.leases, lost.keys) == (1, ["0:10"])
    # the re-sent range message starts first, or the retry does: either way job 3 is the retry's
    leases = {"0:10": lease(store, run_id, "0:10", "w2", 11_002)}
    leases["3:1:r1"] = lease(store, run_id, "3:1:r1", "w3", 11_003)
    assert leases == {"0:10": [4, 5, 6, 7, 8, 9], "3:1:r1": [JOB]}
    assert leased_jobs(store, run_id) == 7
    # the retry fails again while the range message runs: its next retry owns the job
    store.counting.fail_job(run_id, JOB, "E", attempts=3, backoff_s=1, now_ms=T0 + 11_100)
    count(store, run_id, "3:1:r1", "w3", [], 11_100, handled=1)
    assert owners(store, run_id) == {"3": "3:1:r2"}
    # a late copy of the first retry runs nothing; the second retry runs the job
    assert lease(store, run_id, "3:1:r1", "w4", 11_200) == []
    assert lease(store, run_id, "3:1:r2", "w5", 13_100) == [JOB]
    assert leased_jobs(store, run_id) == 7


def test_a_range_message_left_with_only_owned_jobs_is_done_not_parked(store):
    run_id = started_with_a_failure(store)
    others = {j: f"ok-{j}" for j in range(4, 10)}
    store.counting.mark_processed(run_id, others, message="0:10", token="w1", handled=7)
    store.runs.pause_run(now_ms=T0 + 1200)
    count(store, run_id, "0:10", "w1", [], 1200)  # its last count: every job handled
    assert lease(store, run_id, "0:10", "w2", 1300) == []  # a copy while paused
    assert store.client.zrangebyscore(f"optio:run:{run_id}:msgs", 9e15, "+inf") == []
    assert leased_jobs(store, run_id) == 0


def test_a_throttle_rerun_pending_keeps_its_job(store):
    run_id = started(store)
    assert lease(store, run_id, "0:10", "w1", 1000) == list(range(10))
    got = store.counting.throttle_job(run_id, JOB, 2.0, now_ms=T0 + 1100)
    assert got[0] == "throttled"
    store.runs.pause_run(now_ms=T0 + 1150)
    count(store, run_id, "0:10", "w1", [0, 1, 2], 1150, handled=4)  # 3 throttled; 4..9 parked
    store.runs.resume_run(now_ms=T0 + 4000)
    lost = store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 4000)
    assert sorted(lost.keys) == ["0:10", "3:1:r-2"]  # the rerun was due at +3100
    leases = {key: lease(store, run_id, key, token_of(key), 4001) for key in lost.keys}
    assert leases == {"0:10": [4, 5, 6, 7, 8, 9], "3:1:r-2": [JOB]}
    assert owners(store, run_id) == {"3": "3:1:r-2"}
    # throttled again inside its rerun: the next rerun owns it, a copy of this one runs nothing
    store.counting.throttle_job(run_id, JOB, 1.0, now_ms=T0 + 4100)
    assert owners(store, run_id) == {"3": "3:1:r-3"}
    count(store, run_id, "3:1:r-2", token_of("3:1:r-2"), [], 4100, handled=1)
    assert lease(store, run_id, "3:1:r-2", "w2", 4200) == []
    assert lease(store, run_id, "3:1:r-3", "w4", 5100) == [JOB]


def test_a_retry_failed_rerun_owns_its_job_against_a_late_copy_of_its_message(store):
    run_id = started(store)
    assert lease(store, run_id, "0:10", "w1", 1000) == list(range(10))
    store.counting.fail_job(run_id, JOB, "E", attempts=1, backoff_s=1, now_ms=T0 + 1100)
    count(store, run_id, "0:10", "w1", [j for j in range(10) if j != JOB], 1200, handled=10)
    assert lease(store, run_id, "10:10", "w1", 1200) == list(range(10, 20))
    count(store, run_id, "10:10", "w1", list(range(10, 20)), 1300)
    assert store.runs.run_state(run_id)["status"] == "completed"
    assert store.runs.retry_failed(run_id, now_ms=T0 + 10_000) == 1
    # the broker hands out a late copy of the first message (a visibility-timeout redelivery)
    leases = {"0:10": lease(store, run_id, "0:10", "w2", 10_001)}
    leases["3:1:r-1"] = lease(store, run_id, "3:1:r-1", "w3", 10_002)
    assert leases == {"0:10": [], "3:1:r-1": [JOB]}
    assert leased_jobs(store, run_id) == 1
    assert owners(store, run_id) == {"3": "3:1:r-1"}
    count(store, run_id, "3:1:r-1", "w3", [JOB], 10_100)
    state = store.runs.run_state(run_id)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", X, 0)


def test_a_retry_the_broker_lost_goes_out_again_as_itself(store):
    """The tick's sweep sends the jobs nothing accounts for again: a job a retry owns goes out in
    that retry's message, which alone may run it (a message "3:1" would run nothing)."""
    run_id = started_with_a_failure(store)
    count(store, run_id, "0:10", "w1", list(range(4, 10)), 1200, handled=7)
    store.schedule.claim_lost(run_id, most=100, now_ms=T0 + 2100)
    store.schedule.confirm_enqueued(run_id, 0, ["3:1:r1"])  # in the broker, which then loses it
    jobs = store.schedule.unaccounted_jobs(run_id)
    assert jobs == [JOB, *range(10, 20)]
    sent = as_messages(jobs, BATCH, store.schedule.job_owners(run_id, jobs))
    assert sent == ["3:1:r1", "10:10"]
    assert lease(store, run_id, "3:1:r1", "w3", 2200) == [JOB]
    assert lease(store, run_id, message_key(JOB, 1), "w2", 2200) == []  # the job is r1's
