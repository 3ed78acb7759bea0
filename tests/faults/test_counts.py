"""Finished jobs are counted while a long job of their message runs (issue 19, the chaos soak's
first finding): a worker killed during the long job runs none of them again. Before, a message's
loop counted its jobs only after the next job ended, so a kill during a long job re-ran the fast
jobs before it although their process had ended them. Real redis-server, celery worker, beat and
web processes, a real SIGKILL.
"""

from __future__ import annotations

import signal

import pytest

from optio.testing import (
    assert_exactly_once,
    executions,
    start,
    starts,
    status,
    wait_finished,
    wait_for,
)
from tests.fault_jobs import SLOW_ONCE_JOB


@pytest.mark.env({"OPTIO_JOB_FUNC": "tests.fault_jobs:slow_once", "OPTIO_LEASE_SECONDS": "2"})
def test_jobs_before_a_long_one_are_counted_while_it_runs(fault_system, record):
    s = fault_system
    x, y = 10, 60_000  # one message of 10 jobs (100 jobs/s make a message)
    s.start_web()
    worker = s.start_worker("worker", 1)
    s.start_beat()
    run_id = start(s, x, y)
    wait_for(
        lambda: any(job == SLOW_ONCE_JOB for job, _ in starts(s, run_id)),
        30,
        "the long job to start",
    )
    state = wait_for(
        lambda: (st := status(s))["processed"] >= SLOW_ONCE_JOB and st,
        5,
        f"the {SLOW_ONCE_JOB} jobs before the long one to be counted while it runs",
    )
    assert executions(s, run_id) == dict.fromkeys(range(SLOW_ONCE_JOB), 1)
    counted_during = state["processed"]
    worker.signal(signal.SIGKILL)  # the whole process group, during the long job
    worker.popen.wait(10)
    s.start_worker("worker-2", 1)
    wait_finished(s, run_id, 60)
    figures = assert_exactly_once(s, run_id, x)
    assert executions(s, run_id) == dict.fromkeys(range(x), 1)  # the killed one never ended
    record(
        "jobs counted while a long job of their message runs",
        f"x={x}, y={y:,}/min (one message), job {SLOW_ONCE_JOB} sleeps 60 s once; worker -c 1 "
        "SIGKILLed during it, another started",
        counted_during_long_job=counted_during,
        **figures,
    )
