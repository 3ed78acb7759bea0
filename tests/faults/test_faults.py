"""Faults mid-run, with real processes and real signals: nothing lost, nothing counted twice.

Each test runs a system of its own (its own redis-server with an append-only file, web, worker
and beat) and records what it measured; the session prints the table (see conftest) that
docs/RELIABILITY.md is written from.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from optio import config, names
from optio.names import errors_key, results_key
from optio.redis_state import RunStore
from optio.store.outcomes import parse
from optio.testing import (
    Watcher,
    assert_exactly_once,
    executions,
    jobs_per_tick,
    most_ahead_of_schedule,
    past_schedule,
    start,
    status,
    wait_finished,
    wait_for,
    wait_processed,
)
from tests.fault_jobs import POISON_JOB


def _kill(worker) -> None:
    worker.signal(signal.SIGKILL)  # the whole process group: main process and pool children


def _stop_gracefully(worker) -> None:
    worker.popen.send_signal(signal.SIGTERM)  # warm shutdown of the main process


def _shutdown_note(worker) -> str:
    """Wait for the lost worker to be gone; a warm shutdown that hangs is ended as a supervisor
    would, and said so."""
    try:
        worker.popen.wait(30)
        return ""
    except subprocess.TimeoutExpired:
        worker.signal(signal.SIGKILL)
        worker.popen.wait(5)
        return "; warm shutdown hung 30 s, SIGKILLed"


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.05"})
@pytest.mark.parametrize(
    "how, lose", [("SIGKILL", _kill), ("SIGTERM", _stop_gracefully)], ids=["sigkill", "sigterm"]
)
def test_a_lost_worker_loses_nothing(fault_system, record, how, lose):
    s = fault_system
    s.start_web()
    worker = s.start_worker("worker-a")
    s.start_beat()
    x = 300
    run_id = start(s, x, 3000)
    wait_processed(s, 60, 30)
    lost_at = time.monotonic()
    lose(worker)
    at_loss = status(s)
    s.start_worker("worker-b")  # a supervisor starts a replacement at once
    final = wait_finished(s, run_id, 90)
    after = time.monotonic() - lost_at
    shutdown = _shutdown_note(worker)  # (a hung warm shutdown does not hold the run up)
    figures = assert_exactly_once(s, run_id, x)
    late = past_schedule(final)
    # the lost messages come back when their leases run out: a lease, a few ticks, a new
    # worker's start-up (~3 s here)
    assert after <= config.SETTINGS.lease_seconds + 6
    assert figures["executions"] - x <= 2  # at most the two jobs it was running
    record(
        f"worker {how} mid-run",
        f"x={x}, y=3000/min, 50 ms jobs, -c 2; {how} at processed={at_loss['processed']}{shutdown}",
        **figures,
        finished_after_s=f"{after:.1f}",
        past_schedule_s=f"{late:.1f}",
        lease_s=f"{config.SETTINGS.lease_seconds:g}",
    )


#: What /api/health's 503 names while the restarted server is down.
DOWN_IN_HEALTH = {"redis": "Redis does not answer", "rabbitmq": "the broker does not answer"}


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.05"})
def test_a_broker_restart_mid_run_loses_nothing(broker_system, record):
    """The server that carries the messages goes down mid-run and comes back: Redis (state and
    Celery's broker, append-only file), or the RabbitMQ node (quorum queues on disk)."""
    s = broker_system
    server = s.rabbit if s.broker == "rabbitmq" else s.server
    s.start_all()
    with Watcher(s.base) as watcher:
        x = 300
        run_id = start(s, x, 1200)
        wait_processed(s, 40, 30)
        before = status(s)
        down_at = time.monotonic()
        server.stop()
        # the server stays down until the system has noticed: health says so, a worker too
        wait_for(
            lambda: DOWN_IN_HEALTH[s.broker] in s.get("/api/health").json().get("error", ""),
            10,
            "health to see the server down",
        )
        wait_for(
            lambda: "Connection to broker lost" in s.procs["worker"].log(), 10, "a worker to see it"
        )
        events_before = len(watcher.events)
        server.start()
        up_at, up_epoch = time.monotonic(), time.time()

        def progress_after_restart():
            """When a client first saw a job counted after the restart: the first state received
            after it with more processed than any received before it (late ones included)."""
            ours = [(at, e["processed"]) for at, e in watcher.events if e.get("runId") == run_id]
            seen = max(n for at, n in ours if at < up_epoch)
            return next((at for at, n in ours if at >= up_epoch and n > seen), None)

        moving_at = wait_for(progress_after_restart, 60, "a job counted after the restart")
        state = wait_finished(s, run_id, 120)
        finished_after = time.monotonic() - up_at
        figures = assert_exactly_once(s, run_id, x)
        if s.broker == "rabbitmq":
            # no process died and the leases stayed in Redis: every job ran once. (With Redis
            # itself restarted, a lease that ran out while it was down may let a job run again.)
            assert executions(s, run_id) == dict.fromkeys(range(x), 1)
        # the relay resubscribes with backoff and catches up: clients get updates again
        assert watcher.wait_final(run_id, 30)["processed"] == x
        later = [e for _, e in watcher.events[events_before:] if e.get("runId") == run_id]
        assert later, "no progress event reached the client after the restart"
        wait_for(lambda: s.get("/api/health").status_code == 200, 30, "a healthy system")
    record(
        f"{s.broker} restarted mid-run",
        f"x={x}, y=1200/min, 50 ms jobs; SIGTERM at processed={before['processed']}, "
        f"down {up_at - down_at:.1f} s",
        **figures,
        events_after_restart=len(later),
        jobs_again_after_s=f"{moving_at - up_epoch:.1f}",
        finished_after_s=f"{finished_after:.1f}",
        past_schedule_s=f"{past_schedule(state):.1f}",
    )


def test_web_restart_clients_reconnect_and_get_the_state(fault_system, record):
    s = fault_system
    s.start_all()
    with Watcher(s.base) as watcher:
        x = 200
        run_id = start(s, x, 1200)
        wait_processed(s, 20, 30)
        seen = len(watcher.events)
        s.procs["web"].stop()
        gone_at = time.time()
        s.start_web()
        first_after = wait_for(
            lambda: len(watcher.events) > seen and watcher.events[seen], 30, "an event after"
        )
        reconnect_s = first_after[0] - gone_at
        assert first_after[1]["runId"] == run_id
        final = watcher.wait_final(run_id, 60)
        assert final["processed"] == x
    record(
        "web process restarted mid-run",
        f"x={x}, y=1200/min; web SIGTERM at processed>=20, started again on the same port",
        first_event_after_s=f"{reconnect_s:.1f}",
        final_processed=final["processed"],
    )


def test_beat_killed_and_two_beats_never_exceed_the_rate(fault_system, record):
    s = fault_system
    s.start_web()
    s.start_worker()
    s.start_beat("beat-1")
    s.start_beat("beat-2")  # two beats fire every tick twice
    x, y = 150, 1200  # 20/s: 7.45 s at the exact rate
    run_id = start(s, x, y)
    samples: list[tuple[float, dict]] = []

    def sample():
        state = status(s)
        samples.append((time.time(), state))
        return state["enqueued"] >= 60

    wait_for(sample, 30, "60 enqueued")
    s.procs["beat-1"].signal(signal.SIGKILL)
    s.procs["beat-2"].signal(signal.SIGKILL)
    killed_at = status(s)["enqueued"]
    s.start_beat("beat-3")

    def finished():
        state = status(s)
        samples.append((time.time(), state))
        return not state["running"] and state

    state = wait_for(finished, 60, "the run to finish", interval=0.1)
    assert state["enqueued"] == x and state["processed"] == x
    per_tick = jobs_per_tick(y)
    worst = most_ahead_of_schedule(samples, run_id, y)
    assert worst <= 2 * per_tick + 1, f"ahead of schedule by {worst:.1f} jobs"
    duration = (state["finishedAt"] - state["startedAt"]) / 1000
    record(
        "two beats at once, then both SIGKILLed and one restarted",
        f"x={x}, y={y}/min, 0.5 s ticks; beats killed at enqueued={killed_at}",
        enqueued=state["enqueued"],
        most_ahead_jobs=f"{worst:.1f}",
        tick_jobs=f"{per_tick:.0f}",
        took_s=f"{duration:.1f}",
        exact_s=f"{(x - 1) * 60 / y:.2f}",
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.1"})
def test_old_runs_jobs_never_touch_a_new_run(fault_system, record):
    s = fault_system
    s.start_all()
    old = start(s, 400, 60_000)  # all due at once, processed slowly: a long queue
    wait_for(lambda: status(s)["enqueued"] >= 200, 20, "a queue of old jobs")
    assert s.post("/api/stop").status_code == 200
    new = start(s, 30, 6000)
    final = wait_finished(s, new, 60)
    assert status(s)["runId"] == new
    store = RunStore(s.redis)
    old_a = store.runs.run_state(old)
    # the old run's remaining messages drain; its recorded state must not move
    wait_for(lambda: s.redis.llen(names.JOBS_QUEUE) == 0, 60, "the old queue to drain")
    old_b = store.runs.run_state(old)
    assert final["processed"] == 30 and final["enqueued"] == 30 and final["status"] == "completed"
    assert old_b["status"] == "stopped" and old_b["processed"] == old_a["processed"]
    assert old_b["processed"] < 400
    record(
        "stop, then at once a new run while the old run's jobs are queued",
        "old x=400 all due, 100 ms jobs, stopped with >=200 queued; new x=30",
        new_enqueued=final["enqueued"],
        new_processed=final["processed"],
        old_status=old_b["status"],
        old_processed=old_b["processed"],
    )


@pytest.mark.env({"OPTIO_JOB_FUNC": "tests.fault_jobs:flaky", "OPTIO_JOB_ATTEMPTS": "3"})
def test_a_job_that_raises_is_retried_then_recorded_as_failed(fault_system, record):
    s = fault_system
    s.start_all()
    x = 50
    run_id = start(s, x, 6000)
    state = wait_finished(s, run_id, 60)
    always = [j for j in range(x) if j % 7 == 0]
    assert state["status"] == "completed"
    assert state["failed"] == len(always)
    assert state["processed"] == x - len(always)
    errors = s.redis.hgetall(errors_key(run_id))
    assert sorted(int(j) for j in errors) == always
    assert errors["7"] == "ValueError: job 7 always fails"
    # jobs 3, 10, ... failed twice, then succeeded on their third attempt
    assert parse(s.redis.hget(results_key(run_id), "3")).result == '"ok-3"'
    record(
        "jobs that raise",
        f"x={x}; every 7th job always raises, 3, 10, ... twice; 3 attempts, backoff 0.2 s",
        processed=state["processed"],
        failed=state["failed"],
        errors_stored=len(errors),
    )


def test_health_says_what_is_down(fault_system, record):
    s = fault_system
    s.start_all()
    assert s.get("/api/health").status_code == 200
    s.procs["worker"].signal(signal.SIGKILL)
    no_worker = wait_for(
        lambda: (r := s.get("/api/health")).status_code == 503 and r.json(), 20, "503"
    )
    assert "worker" in no_worker["error"]
    s.procs["beat"].signal(signal.SIGKILL)
    no_beat = wait_for(
        lambda: "no beat" in (r := s.get("/api/health").json()).get("error", "") and r, 20, "beat"
    )
    s.server.stop()
    down = s.get("/api/health")
    assert down.status_code == 503 and "Redis" in down.json()["error"]
    s.server.start()
    record(
        "health with parts down",
        "worker SIGKILLed, then beat SIGKILLed, then Redis stopped",
        no_worker=f'503 "{no_worker["error"]}"',
        no_beat=f'"{no_beat["error"]}"',
        no_redis=f'{down.status_code} "{down.json()["error"]}"',
    )


#: How a job's text that UTF-8 cannot encode ("name-\udcff") reads once stored: its escape.
STORED_UNDECODABLE = "name-\\udcff"


@pytest.mark.env(
    {"OPTIO_JOB_FUNC": "tests.fault_jobs:undecodable_result", "OPTIO_LEASE_SECONDS": "2"}
)
def test_a_result_utf8_cannot_encode_is_stored_and_its_job_runs_once(fault_system, record):
    """Issue 19, case 2: job 1 returns "name-\\udcff" (os.fsdecode of a file name that is not
    UTF-8); it was never counted and ran again every lease, forever."""
    s = fault_system
    s.start_all()
    x = 3
    run_id = start(s, x, 600)
    wait_finished(s, run_id, 25)
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == {0: 1, 1: 1, 2: 1}
    assert json.loads(parse(s.redis.hget(results_key(run_id), "1")).result) == STORED_UNDECODABLE
    record(
        "a job returns text UTF-8 cannot encode",
        f'x={x}; job 1 returns "name-\\udcff" (a lone surrogate, as os.fsdecode gives)',
        **figures,
        stored=STORED_UNDECODABLE,
    )


@pytest.mark.env(
    {
        "OPTIO_JOB_FUNC": "tests.fault_jobs:undecodable_error",
        "OPTIO_JOB_ATTEMPTS": "2",
        "OPTIO_LEASE_SECONDS": "2",
    }
)
def test_an_error_utf8_cannot_encode_is_stored_and_readable(fault_system, record):
    """Job 1 raises ValueError("cannot read name-\\udcff") on each of its 2 attempts."""
    s = fault_system
    s.start_all()
    x = 3
    run_id = start(s, x, 600)
    state = wait_finished(s, run_id, 25)
    assert (state["status"], state["processed"], state["failed"]) == ("completed", 2, 1)
    assert executions(s, run_id) == {0: 1, 1: 2, 2: 1}  # its two attempts, no more
    detail = s.get(f"/api/runs/{run_id}")
    assert detail.status_code == 200
    error = f"ValueError: cannot read {STORED_UNDECODABLE}"
    assert detail.json()["errors"] == [{"job": 1, "error": error}]
    record(
        "a job raises with text UTF-8 cannot encode",
        f'x={x}; job 1 raises ValueError("cannot read name-\\udcff"), 2 attempts',
        processed=state["processed"],
        failed=state["failed"],
        executions=sum(executions(s, run_id).values()),
    )


@pytest.mark.env(
    {
        "OPTIO_JOB_FUNC": "tests.fault_jobs:kills_its_process",
        "OPTIO_MAX_DELIVERIES": "3",
        "OPTIO_LEASE_SECONDS": "2",
    }
)
def test_a_message_that_kills_its_worker_is_given_up_after_max_deliveries(fault_system, record):
    """Job 3 ends its pool process (os._exit) each time it runs: the worker's main process ends
    its lease at once, and the broker's redelivery (or the tick) takes it again, until its third
    expiry; then it fails for good and the run completes."""
    s = fault_system
    s.start_all()
    x = 8
    run_id = start(s, x, 1200)  # one job per message
    began = time.monotonic()
    state = wait_finished(s, run_id, 30)
    took = time.monotonic() - began
    assert (state["status"], state["processed"], state["failed"]) == ("completed", x - 1, 1)
    assert executions(s, run_id) == {**dict.fromkeys(range(x), 1), POISON_JOB: 3}
    errors = s.get(f"/api/runs/{run_id}").json()["errors"]
    assert [e["job"] for e in errors] == [POISON_JOB]
    assert errors[0]["error"].startswith("delivered 3 times without finishing")
    assert s.redis.hlen(results_key(run_id)) == x  # the poison job's record: failed, no run time
    assert parse(s.redis.hget(results_key(run_id), str(POISON_JOB))).ms is None
    # found by the tick ("given up") or by the delivery that took the ended lease ("gave up")
    logs = s.procs["beat"].log() + s.procs["worker"].log()
    assert "given up" in logs or "gave up: delivered 3 times" in logs
    record(
        "a job that kills its worker every time",
        f"x={x}, y=1200/min; job {POISON_JOB} os._exit()s its pool process; "
        "OPTIO_MAX_DELIVERIES=3, lease 2 s",
        processed=state["processed"],
        failed=state["failed"],
        poison_executions=executions(s, run_id)[POISON_JOB],
        finished_after_s=f"{took:.1f}",
    )
