"""RabbitMQ as Celery's broker (OPTIO_BROKER_URL=amqp://...): the messages go through durable
quorum queues on a private RabbitMQ node; counters, leases, schedule and the progress channel
stay in Redis. Real processes, real signals, a real broker restart; every case counts the
executions of the job function, not only the counters.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Queue

from optio import config, names
from optio.redis_state import holders_key
from optio.testing import (
    Watcher,
    assert_exactly_once,
    executions,
    past_schedule,
    start,
    starts,
    status,
    wait_finished,
    wait_for,
    wait_processed,
)

pytestmark = pytest.mark.slow


def post_ok(system, path: str) -> dict:
    response = system.post(path)
    assert response.status_code == 200, response.text
    return response.json()


def celery_keys_in_redis(system) -> list[str]:
    """Keys of kombu's Redis transport (queues, unacked messages, bindings): none may exist."""
    found = set(system.redis.keys("_kombu*")) | set(system.redis.keys("unacked*"))
    queues = {q for q in (names.JOBS_QUEUE, names.TICKS_QUEUE) if system.redis.exists(q)}
    return sorted(found | queues)


def log_times(proc, text: str) -> list[float]:
    """Epoch ms of the lines of a Celery log that contain ``text`` (local time, ms precision)."""
    out = []
    for line in proc.log().splitlines():
        if text in line:
            stamp = line[1 : line.index(": ")]  # [2026-11-26 11:58:29,017: WARNING/...]
            out.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1000)
    return out


def is_quorum(url: str, queue: str) -> bool:
    """Declaring the queue as a classic one is refused only when it is a quorum queue."""
    with Connection(url) as conn:
        try:
            Queue(queue, queue_arguments={"x-queue-type": "classic"}, durable=True)(
                conn.default_channel
            ).declare()
        except PreconditionFailed as exc:
            return "x-queue-type" in str(exc)
    return False


def test_a_run_goes_through_rabbitmq_exactly_once(rabbit_system, record):
    s = rabbit_system
    s.start_all()
    x = 200
    run_id = start(s, x, 6000)
    final = wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == dict.fromkeys(range(x), 1)
    # the messages went through RabbitMQ's quorum queues, nothing of Celery's is in Redis
    assert is_quorum(s.rabbit.url, names.JOBS_QUEUE) and is_quorum(s.rabbit.url, names.TICKS_QUEUE)
    assert celery_keys_in_redis(s) == []
    assert s.rabbit.ready(names.JOBS_QUEUE) == 0
    health = s.get("/api/health").json()
    assert health["status"] == "ok" and health["checks"]["broker"] == "ok"
    assert health["checks"]["brokerUrl"] == f"amqp://***@127.0.0.1:{s.rabbit.port}//"
    record(
        "RabbitMQ broker: a run",
        f"x={x}, y=6000/min, quorum queues, -c 2",
        **figures,
        took_s=f"{(final['finishedAt'] - final['startedAt']) / 1000:.1f}",
        past_schedule_s=f"{past_schedule(final):.1f}",
    )


def test_the_rate_holds_on_rabbitmq(rabbit_system, record):
    s = rabbit_system
    s.start_all()
    watcher = Watcher(s.base)
    try:
        x, y = 60, 600
        run_id = start(s, x, y)
        final = watcher.wait_final(run_id, 60)
    finally:
        watcher.close()
    assert_exactly_once(s, run_id, x)
    duration = (final["finishedAt"] - final["startedAt"]) / 1000
    expected = (x - 1) * 60 / y
    assert expected * 0.9 <= duration <= expected + 3, duration
    per_tick = y / 60 * 0.5
    ahead = max(
        state["enqueued"] - (1 + (at - state["startedAt"] / 1000) * y / 60)
        for at, state in watcher.events
        if state.get("runId") == run_id
    )
    assert ahead <= per_tick + 1, ahead
    record(
        "RabbitMQ broker: rate",
        f"x={x}, y={y}/min, 0.5 s ticks",
        took_s=f"{duration:.2f}",
        exact_s=f"{expected:.2f}",
        most_ahead_jobs=f"{ahead:.1f}",
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.05"})
def test_pause_and_resume_on_rabbitmq(rabbit_system, record):
    s = rabbit_system
    s.start_all()
    x, y = 240, 1200
    run_id = start(s, x, y)
    wait_processed(s, 40, 30)
    paused = post_ok(s, "/api/pause")
    paused_at = paused["pausedAt"]
    wait_for(lambda: s.redis.hlen(holders_key(run_id)) == 0, 10, "running messages to park")
    settled = status(s)
    time.sleep(2.0)  # the window in which nothing may happen (not a wait for a condition)
    later = status(s)
    assert (later["enqueued"], later["processed"]) == (settled["enqueued"], settled["processed"])
    late = [at - paused_at for _, at in starts(s, run_id) if at > paused_at]
    assert max(late, default=0) < 50 + 20 + 250, late
    post_ok(s, "/api/resume")
    state = wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == dict.fromkeys(range(x), 1)
    record(
        "RabbitMQ broker: pause, then resume",
        f"x={x}, y={y}/min, 50 ms jobs; paused at processed={paused['processed']} "
        f"for {state['pausedMs'] / 1000:.1f} s",
        latest_start_after_pause_ms=f"{max(late, default=0):.0f}",
        **figures,
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.5"})
def test_a_sigkilled_worker_s_jobs_come_back_at_once(rabbit_system, record):
    s = rabbit_system
    s.start_web()
    worker = s.start_worker("worker-a")
    s.start_worker("worker-b")  # already running: the redelivery needs no start-up
    s.start_beat()
    x = 120
    run_id = start(s, x, 1200)
    wait_processed(s, 20, 30)
    wait_for(lambda: s.redis.hlen(holders_key(run_id)) >= 2, 10, "jobs running")
    at_kill = status(s)
    killed_at = time.time() * 1000
    worker.signal(signal.SIGKILL)  # main process and pool children, mid-job
    final = wait_finished(s, run_id, 90)
    figures = assert_exactly_once(s, run_id, x)
    ran = executions(s, run_id)
    assert sorted(ran) == list(range(x))
    # the jobs the killed worker was running (started before the kill, started again after it)
    first: dict[int, float] = {}
    again: dict[int, float] = {}
    for job, at in starts(s, run_id):
        if job in first:
            again.setdefault(job, at)
        else:
            first[job] = at
    cut = {job: again[job] - killed_at for job in again if first[job] < killed_at}
    assert cut, "the killed worker was running no job"
    # a job killed mid-way recorded no execution; one killed between its end and its count did
    assert len(again) <= 2 and figures["executions"] - x <= 2
    started_again_s = max(cut.values()) / 1000
    # not after the lease ran out: the broker handed them back at once, and worker-b took the
    # dead worker's leases over (it logs when)
    assert started_again_s < config.LEASE_SECONDS / 2, started_again_s
    took_over = [at - killed_at for at in log_times(s.procs["worker-b"], "Took over message")]
    assert len(took_over) == len(cut), took_over
    record(
        "RabbitMQ broker: worker SIGKILLed mid-job",
        f"x={x}, y=1200/min, 0.5 s jobs, two workers -c 2 (capacity 8 jobs/s); worker-a "
        f"SIGKILLed at processed={at_kill['processed']} running {len(cut)} job(s)",
        **figures,
        taken_over_after_s=f"{max(took_over) / 1000:.2f}",
        killed_jobs_started_again_after_s=f"{started_again_s:.2f}",
        lease_s=f"{config.LEASE_SECONDS:g}",
        finished_after_kill_s=f"{final['finishedAt'] / 1000 - killed_at / 1000:.1f}",
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.05"})
def test_a_rabbitmq_restart_mid_run_loses_nothing(rabbit_system, record):
    s = rabbit_system
    s.start_all()
    watcher = Watcher(s.base)
    try:
        x = 300
        run_id = start(s, x, 1200)
        wait_processed(s, 40, 30)
        before = status(s)
        down_at = time.monotonic()
        s.rabbit.stop()
        wait_for(
            lambda: "broker" in s.get("/api/health").json().get("error", ""),
            10,
            "health to see the broker down",
        )
        wait_for(
            lambda: "Connection to broker lost" in s.procs["worker"].log(), 10, "a worker to see it"
        )
        stuck = status(s)["processed"]
        s.rabbit.start()
        up_at = time.monotonic()
        moving = wait_processed(s, stuck + 1, 60)
        moving_after = time.monotonic() - up_at
        state = wait_finished(s, run_id, 120)
        finished_after = time.monotonic() - up_at
        figures = assert_exactly_once(s, run_id, x)
        assert executions(s, run_id) == dict.fromkeys(range(x), 1)  # no process died
        assert watcher.wait_final(run_id, 30)["processed"] == x
        wait_for(lambda: s.get("/api/health").status_code == 200, 30, "a healthy system")
    finally:
        watcher.close()
    record(
        "RabbitMQ restarted mid-run (quorum queues on disk)",
        f"x={x}, y=1200/min, 50 ms jobs; node SIGTERM at processed={before['processed']}, "
        f"down {up_at - down_at:.1f} s (node start {s.rabbit.started_in:.1f} s)",
        **figures,
        jobs_again_after_s=f"{moving_after:.1f}",
        processed_then=moving["processed"],
        finished_after_s=f"{finished_after:.1f}",
        past_schedule_s=f"{past_schedule(state):.1f}",
    )
