"""Entry point of workers and beat: ``celery -A optio.tasks worker`` / ``beat``.

The app is built from the environment's settings by ``optio.worker.app.create_celery``; the
tasks are ``optio.tick`` (``worker/tick.py``) and ``optio.process_jobs`` (``worker/batches.py``).
"""

from __future__ import annotations

from optio import config
from optio.worker.app import create_celery

app = create_celery(config.SETTINGS)
