"""A worker outlives the loss of its broker connection while it holds unacknowledged messages
(issue 19, the chaos soak's third finding). Before, kombu's Redis transport raised
``AttributeError: 'NoneType' object has no attribute 'hostname'`` while Celery closed the lost
connection (celery 5.7's consumer collects the connection, which drops its transport, then
closes it, which restores the unacknowledged messages through that transport), and the worker
exited with "Unrecoverable error": under honcho every process stopped with it. Real
redis-server (append-only file) restarted, real celery worker/beat and web processes.
"""

from __future__ import annotations

import time

import pytest

from optio.testing import assert_exactly_once, start, wait_finished, wait_for, wait_processed
from tests.fault_jobs import accept_writes, refuse_writes

RESTARTS = 3


@pytest.mark.env({"OPTIO_JOB_SECONDS": "0.7"})
def test_a_worker_outlives_redis_restarts_while_it_holds_messages(fault_system, record):
    s = fault_system
    s.start_web()
    worker = s.start_worker("worker", 2)
    s.start_beat()
    # one job a second, each 0.7 s: one message runs (delivered, not acknowledged) while the
    # worker's consumer waits in BRPOP for the next, as at any rate its pool keeps up with
    x = 20
    run_id = start(s, x, 60)
    for restart in range(1, RESTARTS + 1):
        wait_processed(s, 2 * restart, 60)
        s.server.stop()
        wait_for(
            lambda n=restart: worker.log().count("Connection to broker lost") >= n,
            15,
            "the worker to see the broker gone",
        )
        s.server.start()
        assert worker.popen.poll() is None, worker.log()[-3000:]
    wait_finished(s, run_id, 120)
    assert worker.popen.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()
    figures = assert_exactly_once(s, run_id, x)
    record(
        "Redis restarted while a worker holds messages",
        f"x={x}, y=60/min, 0.7 s jobs, worker -c 2; Redis (state and broker) restarted "
        f"{RESTARTS} times mid-job",
        worker_exits=0,
        **figures,
    )


#: Seconds the broker's Redis refuses writes, each time.
REFUSAL_SECONDS = 2.0


@pytest.mark.env({"OPTIO_JOB_FUNC": "optio.jobs:demo"})
def test_a_worker_outlives_its_broker_refusing_writes_while_it_acknowledges(split_system, record):
    """Celery's broker (a Redis of its own) refuses writes (OOM) three times while a worker
    acknowledges about 100 messages a second; the state's Redis keeps counting. An
    acknowledgement the broker refuses is logged and its message left unacknowledged: the broker
    hands it out again after the visibility timeout, and the bitmap drops it (its jobs are
    counted). Before, the refused acknowledgement raised in the worker's main process, Celery
    called it unrecoverable and the worker exited: the chaos soak's second finding, where the
    state's Redis was the broker."""
    s = split_system
    s.start_web()
    worker = s.start_worker("worker", 2)
    s.start_beat()
    x, y = 3000, 12_000  # 200 jobs/s, 2 jobs per message
    run_id = start(s, x, y)
    for refusal in range(1, RESTARTS + 1):
        wait_processed(s, 400 * refusal, 60)
        refuse_writes(s.broker_redis)
        time.sleep(REFUSAL_SECONDS)  # the fault itself (not a wait for a condition)
        accept_writes(s.broker_redis)
        assert worker.popen.poll() is None, worker.log()[-3000:]
    wait_finished(s, run_id, 120)
    assert worker.popen.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()
    figures = assert_exactly_once(s, run_id, x)
    refused = worker.log().count("OutOfMemoryError")
    assert refused > 0, "nothing met the refusal: the case was not exercised"
    record(
        "the broker refuses writes while a worker acknowledges",
        f"x={x}, y={y:,}/min (2 jobs per message), worker -c 2, broker on a Redis of its own; "
        f"it refuses writes {RESTARTS} times for {REFUSAL_SECONDS:g} s",
        refusals_logged=refused,
        worker_exits=0,
        **figures,
    )
