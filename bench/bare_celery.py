"""Bare Celery for comparison: a no-op task, one message per job, on the same Redis.

The same delivery settings as optio's job queue (``optio.celery_settings.DELIVERY``: acks
late, prefetch 1, no results, the same visibility timeout), so the difference measured is
optio's own work per job.

Worker: ``celery -A bench.bare_celery worker -c 2``. Publisher:
``python -m bench.bare_celery COUNT`` prints the monotonic times it started and finished
publishing, and the CPU seconds it used.
"""

from __future__ import annotations

import os
import sys
import time

from celery import Celery, signals
from kombu import Queue

from optio.celery_settings import DELIVERY, quiet_per_task_lines

QUEUE = "bare.jobs"

app = Celery("bare", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6399/0"))
app.conf.update(task_default_queue=QUEUE, task_queues=[Queue(QUEUE)], **DELIVERY)
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
