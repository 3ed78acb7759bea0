"""The default job: a demo that derives a result from the job's input.

Point ``OPTIO_JOB_FUNC`` at your own ``module:function`` taking ``(run_id, job_id)`` and
returning a string to run real work instead; one taking ``(run_id, job_id, item)`` is handed
its job's item in runs started with items (``POST /api/runs``). It may run more than once for
one job id (a redelivered message), so make it idempotent; it is counted once either way.
"""

from __future__ import annotations

import hashlib
import time

from optio import config


def demo(run_id: str, job_id: int) -> str:
    if config.SETTINGS.job_seconds > 0:
        time.sleep(config.SETTINGS.job_seconds)
    return hashlib.sha256(f"{run_id}:{job_id}".encode()).hexdigest()[:16]
