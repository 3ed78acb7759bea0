"""RabbitMQ as Celery's broker (OPTIO_BROKER_URL=amqp://...): the messages go through durable
quorum queues on a private RabbitMQ node; counters, leases, schedule and the progress channel
stay in Redis. Real processes, real signals, a real broker restart; every case counts the
executions of the job function, not only the counters. (In-process, the configuration and the
takeover of a dead holder's lease: tests/unit/test_rabbitmq.py.)
"""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Queue

from optio import config, names
from optio.names import holders_key
from optio.testing import (
    Watcher,
    assert_exactly_once,
    executions,
    jobs_per_tick,
    most_ahead_of_schedule,
    past_schedule,
    start,
    starts,
    status,
    wait_finished,
    wait_for,
    wait_processed,
)
from optio.webapp import schemas
from optio.worker import confirms


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


def test_publisher_confirms_say_what_the_broker_took(rabbit_server):
    """The tick's wait for confirms (optio/confirms.py) against the node: a queue that refuses
    what exceeds 5 messages nacks the rest, and the wait says so. (A classic queue: a quorum
    queue applies its length limit late, so how many it refuses varies.)"""
    rabbit_server.delete_queues("confirms.ok", "confirms.full")
    ok = Queue("confirms.ok", durable=True, queue_arguments={"x-queue-type": "quorum"})
    full = Queue(
        "confirms.full",
        durable=True,
        queue_arguments={
            "x-queue-type": "classic",
            "x-max-length": 5,
            "x-overflow": "reject-publish",
        },
    )
    with Connection(rabbit_server.url) as conn:
        producer = conn.Producer()
        for queue in (ok, full):
            queue(producer.channel).declare()
        with confirms.tracked(producer) as tracker:
            for i in range(50):
                producer.publish({"i": i}, routing_key="confirms.ok")
            tracker.wait(tracker.mark())
            assert rabbit_server.ready("confirms.ok") == 50
            for i in range(10):
                producer.publish({"i": i}, routing_key="confirms.full")
            with pytest.raises(confirms.NotConfirmed, match="refused 5 message"):
                tracker.wait(tracker.mark())
    assert rabbit_server.ready("confirms.full") == 5
    rabbit_server.delete_queues("confirms.ok", "confirms.full")


# -- real processes on the private RabbitMQ node -----------------------------------------------


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
    schemas.Health.model_validate(health)  # the OpenAPI document's shape
    assert health["status"] == "ok" and health["checks"]["broker"] == "ok"
    assert health["checks"]["brokerType"] == "rabbitmq"
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
    with Watcher(s.base) as watcher:
        x, y = 60, 600
        run_id = start(s, x, y)
        final = watcher.wait_final(run_id, 60)
    assert_exactly_once(s, run_id, x)
    duration = (final["finishedAt"] - final["startedAt"]) / 1000
    expected = (x - 1) * 60 / y
    assert expected * 0.9 <= duration <= expected + 3, duration
    ahead = most_ahead_of_schedule(watcher.events, run_id, y)
    assert ahead <= jobs_per_tick(y) + 1, ahead
    record(
        "RabbitMQ broker: rate",
        f"x={x}, y={y}/min, 0.5 s ticks",
        took_s=f"{duration:.2f}",
        exact_s=f"{expected:.2f}",
        most_ahead_jobs=f"{ahead:.1f}",
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
    assert started_again_s < config.SETTINGS.lease_seconds / 2, started_again_s
    took_over = [at - killed_at for at in log_times(s.procs["worker-b"], "Took over message")]
    assert len(took_over) == len(cut), took_over
    record(
        "RabbitMQ broker: worker SIGKILLed mid-job",
        f"x={x}, y=1200/min, 0.5 s jobs, two workers -c 2 (capacity 8 jobs/s); worker-a "
        f"SIGKILLed at processed={at_kill['processed']} running {len(cut)} job(s)",
        **figures,
        taken_over_after_s=f"{max(took_over) / 1000:.2f}",
        killed_jobs_started_again_after_s=f"{started_again_s:.2f}",
        lease_s=f"{config.SETTINGS.lease_seconds:g}",
        finished_after_kill_s=f"{final['finishedAt'] / 1000 - killed_at / 1000:.1f}",
    )


@pytest.mark.env({"OPTIO_JOB_SECONDS": "20"})
def test_a_job_running_through_a_rabbitmq_restart_runs_once(rabbit_system, record):
    """RabbitMQ hands back the messages of a worker whose connection it lost, here while their
    jobs still run: the worker that gets them sees the holders alive (their Redis connections)
    and drops them; nothing runs twice."""
    s = rabbit_system
    s.start_web()
    s.start_worker("worker-a")
    s.start_worker("worker-b")
    s.start_beat()
    run_id = start(s, 2, 600)
    wait_for(lambda: len(starts(s, run_id)) == 2, 20, "both jobs running")
    s.rabbit.stop()
    s.rabbit.start()
    final = wait_finished(s, run_id, 90)
    assert_exactly_once(s, run_id, 2)
    assert executions(s, run_id) == {0: 1, 1: 1}
    assert len(starts(s, run_id)) == 2
    took_over = sum(
        len(log_times(s.procs[w], "Took over message")) for w in ("worker-a", "worker-b")
    )
    dropped = sum(
        len(log_times(s.procs[w], "Dropped a second delivery")) for w in ("worker-a", "worker-b")
    )
    assert took_over == 0
    record(
        "RabbitMQ restarted while two 20 s jobs run",
        f"x=2, two workers -c 2; node down {s.rabbit.started_in:.1f} s (its start-up)",
        executions=sum(executions(s, run_id).values()),
        taken_over=took_over,
        second_deliveries_dropped_logged=dropped,
        took_s=f"{(final['finishedAt'] - final['startedAt']) / 1000:.1f}",
    )
