"""Bare Celery for comparison: a no-op task, one message per job, on the same broker.

The same delivery settings and queue declaration as optio's job queue
(``optio.broker.delivery``: acks late, prefetch 1, no results; on Redis the same visibility
timeout, on RabbitMQ a durable quorum queue), so the difference measured is optio's own work
per job. The broker is ``BENCH_BROKER_URL`` (a Redis or an ``amqp://`` URL).

Worker: ``celery -A bench.bare_celery worker -c 2``. Publisher:
``python -m bench.bare_celery COUNT`` prints the monotonic times it started and finished
publishing, and the CPU seconds it used.
"""

from __future__ import annotations

import os
import sys
import time

from celery import Celery, signals

from optio.broker.delivery import delivery, queues
from optio.config import Settings
from optio.worker.app import quiet_per_task_lines

QUEUE = "bare.jobs"
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6399/0")

app = Celery("bare")
app.conf.update(
    task_default_queue=QUEUE,
    task_queues=queues(BROKER_URL, QUEUE),
    **delivery(BROKER_URL, Settings().visibility_timeout),
)
# the same per-task INFO lines optio silences, so neither side pays for logging
signals.after_setup_logger.connect(quiet_per_task_lines)


@app.task(name="bare.noop", ignore_result=True)
def noop(job_id: int) -> None:
    return None


def publish(count: int) -> tuple[float, float]:
    """Send ``count`` no-op messages through one producer; returns (start, end) monotonic."""
    start = time.monotonic()
    with app.producer_or_acquire() as producer:
        for job_id in range(count):
            noop.apply_async((job_id,), producer=producer)
    return start, time.monotonic()


if __name__ == "__main__":
    begun, ended = publish(int(sys.argv[1]))
    print(f"{begun} {ended} {time.process_time()}", flush=True)
