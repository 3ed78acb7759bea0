"""Redis Sentinel with real processes: a count is on the replica when it returns (and what that
costs), a primary killed mid-run leaves the run exact, and after a restart the tick sends again the
jobs the broker lost. (The URL form, WAIT without replicas and the resend logic, in-process:
tests/unit/test_sentinel.py.)"""

from __future__ import annotations

import statistics
import time

from optio import names
from optio.config import Settings
from optio.names import done_key, results_key, run_key
from optio.redis_state import RunStore, connect
from optio.testing import (
    RedisServer,
    System,
    Watcher,
    executions,
    executions_key,
    past_schedule,
    start,
    wait_finished,
    wait_for,
    wait_processed,
)

# -- WAIT for replicas ---------------------------------------------------------------------------


def test_a_count_is_on_the_replica_when_it_returns_and_its_cost(sentinel_group, record):
    """WAIT makes each count return only once the replica has it; measured: what it adds to one
    counting call (one pipelined round trip: the script, then WAIT 1)."""
    group = sentinel_group
    replica = group.client("replica")
    plain = RunStore(connect(group.url, timeout=5), Settings(redis_min_replicas=0))
    waiting = RunStore(
        connect(group.url, timeout=5), Settings(redis_min_replicas=1, redis_wait_ms=1000)
    )
    rounds = 300
    run_id = plain.runs.start_run(2 * rounds, 60)
    took: dict[str, list[float]] = {"no WAIT": [], "WAIT 1": []}
    for i in range(rounds):  # interleaved, so both see the same machine load
        for name, store, job in (("no WAIT", plain, 2 * i), ("WAIT 1", waiting, 2 * i + 1)):
            began = time.perf_counter()
            store.counting.mark_processed(run_id, {job: f"r{job}"})
            took[name].append(time.perf_counter() - began)
        # WAIT returned: the replica has the count already (no waiting for it here)
        assert replica.getbit(done_key(run_id), 2 * i + 1) == 1
    assert waiting.counting.replicas.waited == rounds and waiting.counting.replicas.short == 0
    p50 = {name: statistics.median(t) * 1000 for name, t in took.items()}
    p99 = {name: statistics.quantiles(t, n=100)[98] * 1000 for name, t in took.items()}
    record(
        "cost of WAIT for 1 replica per count (mark_processed)",
        f"{rounds} calls each, interleaved, primary + replica on loopback",
        p50_without_ms=f"{p50['no WAIT']:.2f}",
        p50_with_ms=f"{p50['WAIT 1']:.2f}",
        added_p50_ms=f"{p50['WAIT 1'] - p50['no WAIT']:.2f}",
        p99_without_ms=f"{p99['no WAIT']:.2f}",
        p99_with_ms=f"{p99['WAIT 1']:.2f}",
    )


# -- a failover mid-run --------------------------------------------------------------------------

#: as tests/faults/conftest.py's FAULT_ENV, with the job function's records in a Redis of their own
FAILOVER_ENV = {
    "OPTIO_HEARTBEAT_SECONDS": "1",
    "OPTIO_RETRY_BACKOFF": "0.2",
    "OPTIO_REDIS_RETRY_SECONDS": "60",
    "OPTIO_JOB_FUNC": "tests.fault_jobs:counted",
    "OPTIO_JOB_SECONDS": "0.02",
}


def test_primary_killed_mid_run_the_run_finishes_exactly_once(sentinel_group, tmp_path, record):
    group = sentinel_group
    # what the job function really ran is written outside the group, where no failover loses it
    (tmp_path / "witness").mkdir()
    witness = RedisServer(tmp_path / "witness", persistent=False)
    system = System(
        f"{group.url}/0",
        tmp_path / "system",
        OPTIO_TEST_REDIS_URL=f"{witness.url}/0",
        **FAILOVER_ENV,
    )
    watcher = None
    try:
        s = system.start_all()
        watcher = Watcher(s.base)
        x = 300
        run_id = start(s, x, 1200)
        wait_processed(s, 60, 30)
        # Hold the primary's writes for a moment to read the last state it will ever publish,
        # then kill it: an event with a higher seq can only come from the new primary.
        primary = group.client("primary")
        primary.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
        last_seq = int(primary.hget(run_key(run_id), "seq"))
        killed_at = time.time()
        group.kill("primary")
        at_kill = len(watcher.events)

        def first_from_new_primary():
            for at, state in watcher.events[at_kill:]:
                if state.get("runId") == run_id and state["seq"] > last_seq:
                    return at, state
            return None

        wait_for(lambda: group.primary_name() == "replica", 30, "the Sentinels' failover")
        promoted_s = time.time() - killed_at
        first_at, first = wait_for(first_from_new_primary, 60, "an event from the new primary")
        final = wait_finished(s, run_id, 120)
        finished_s = time.time() - killed_at
        assert watcher.wait_final(run_id, 30)["processed"] == x  # clients kept receiving
        events_after = sum(1 for _, e in watcher.events[at_kill:] if e.get("runId") == run_id)

        r = s.redis  # through the Sentinels: the new primary
        figures = {
            "processed": final["processed"],
            "failed": final["failed"],
            "bits": r.bitcount(done_key(run_id)),
            "results": r.hlen(results_key(run_id)),
        }
        assert final["status"] == "completed"
        assert figures == {"processed": x, "failed": 0, "bits": x, "results": x}
        ran = {int(k): int(v) for k, v in witness.client.hgetall(executions_key(run_id)).items()}
        assert sorted(ran) == list(range(x))  # every job ran...
        twice = sum(ran.values()) - x  # ...and at most the few in flight at the kill again
        assert twice <= 4, f"{twice} extra executions"
        # the workers, beat and web found the new primary by themselves
        wait_for(lambda: s.get("/api/health").status_code == 200, 30, "a healthy system")
        # no replica is left: counts stopped waiting instead of stalling the run
        assert "Only 0 of 1 Redis replica(s)" in s.procs["worker"].log()
        resent = [line for line in s.procs["beat"].log().splitlines() if "Another Redis" in line]
        assert resent, "beat did not notice the new primary"
    finally:
        if watcher is not None:
            watcher.close()
        system.stop_all()
        witness.stop()
    record(
        "Redis primary SIGKILLed mid-run (Sentinel failover)",
        f"x={x}, y=1200/min, 20 ms jobs, -c 2; primary + replica + 3 Sentinels "
        f"(down-after {group.down_after_ms} ms), primary SIGKILLed at seq {last_seq}",
        **figures,
        executions=sum(ran.values()),
        new_primary_named_after_s=f"{promoted_s:.1f}",
        first_event_from_new_primary_after_s=f"{first_at - killed_at:.1f}",
        first_event_processed=first["processed"],
        events_after_kill=events_after,
        finished_after_s=f"{finished_s:.1f}",
        past_schedule_s=f"{past_schedule(final):.1f}",
    )


# -- after a restart: jobs the broker lost ------------------------------------------------------


def test_messages_the_broker_lost_at_a_restart_are_sent_again(fault_system, record):
    """kombu takes a message off the queue and records it as unacknowledged in two calls: when
    the server dies in between, the message is gone. After a failover or a restart the tick
    sends the jobs nothing accounts for again. Here messages are taken off the queue by hand
    while no worker runs, then the Redis server restarts."""
    s = fault_system
    s.start_web()
    s.start_beat()
    x = 30
    run_id = start(s, x, 6000)  # all due within 0.3 s
    wait_for(lambda: s.redis.llen(names.JOBS_QUEUE) == x, 30, "every message in the broker")
    lost = [s.redis.rpop(names.JOBS_QUEUE) for _ in range(5)]  # the oldest: BRPOP's end
    s.server.stop()
    s.server.start()
    s.start_worker()
    final = wait_finished(s, run_id, 60)
    ran = executions(s, run_id)
    assert final["status"] == "completed" and final["processed"] == x
    assert s.redis.bitcount(done_key(run_id)) == x and s.redis.hlen(results_key(run_id)) == x
    assert sorted(ran) == list(range(x)) and sum(ran.values()) == x  # copies were dropped
    resent = [line for line in s.procs["beat"].log().splitlines() if "Another Redis" in line]
    assert resent and f"{x} waiting job(s)" in resent[0]
    record(
        "broker lost messages at a Redis restart",
        f"x={x}; {len(lost)} messages taken off the queue, no worker running, then redis-server "
        "restarted and a worker started",
        processed=final["processed"],
        executions=sum(ran.values()),
        resent_jobs=x,
    )
