"""The Celery app of workers and beat: its configuration, its two tasks (the scheduler tick and
the job batch) and the handlers of Celery's signals, built from the settings in one call.

No monkey patching here: workers and beat are plain processes.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from optio.broker.delivery import celery_config
from optio.config import Settings
from optio.names import PROCESS_JOBS_TASK, TICK_TASK
from optio.store.version import check_redis
from optio.worker import batches, tick
from optio.worker.context import Context
from optio.worker.liveness import Liveness
from optio.worker.pool_leases import PoolRequest
from optio.worker.scheduler import schedule

log = logging.getLogger("optio")

#: Loggers that write one INFO line per task.
PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


def create_celery(settings: Settings) -> Celery:
    """The app ``celery -A optio.tasks`` runs (``optio/tasks.py`` builds it from the
    environment)."""
    app = Celery("optio")
    app.conf.update(
        beat_schedule=schedule(settings.tick_seconds),
        # beat runs the tick itself (scheduler.py); a tick sent as a message (the web's kick at
        # start) goes to the ticks queue
        beat_scheduler="optio.worker.scheduler:InlineTickScheduler",
        # survives a fault of kombu's Redis transport when the broker connection is lost
        worker_consumer="optio.worker.consumer:Consumer",
        **celery_config(settings.broker_url, settings.visibility_timeout),
    )
    ctx = app.optio_context = Context(app, settings)

    @app.task(name=TICK_TASK, acks_late=False, ignore_result=True)
    def tick_task(paced: bool = False) -> int:
        return tick.tick(ctx, paced=paced)

    # PoolRequest: a prefork pool process that dies has its lease ended at once (pool_leases.py)
    @app.task(name=PROCESS_JOBS_TASK, ignore_result=True, bind=True, Request=PoolRequest)
    def process_jobs_task(
        task,
        run_id: str,
        first: int,
        count: int,
        retry: int = 0,
        resent: bool = False,
        every: float = 0.0,
        gate: bool = False,
    ) -> int:
        # resent: sent again by the tick; informative only. every: seconds between job starts;
        # gate: each job starts one spacing after the run's last start (start_slot.lua)
        return batches.process_jobs(
            ctx, task.request.delivery_info, run_id, first, count, retry, every=every, gate=gate
        )

    _connect_signals(ctx)
    return app


def _connect_signals(ctx: Context) -> None:
    settings = ctx.settings
    signals.after_setup_logger.connect(quiet_per_task_lines, weak=False)
    Liveness(settings).install()

    def check_redis_at_start(**_: object) -> None:
        check_redis(settings.redis_url)

    def check_job_function(**_: object) -> None:
        """A worker whose OPTIO_JOB_FUNC can't be loaded stops at start, not job by job."""
        try:
            ctx.job_function  # noqa: B018 (loads it)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SystemExit(
                f"OPTIO_JOB_FUNC={settings.job_func!r} cannot be loaded: {exc}"
            ) from exc

    def announce_job_function(**_: object) -> None:
        """Say how the job function is called (read from its signature once)."""
        log.info(
            "[worker] Job function %s, called as f(run_id, job_id%s)",
            settings.job_func,
            ", item" if ctx.job_takes_item else "",
        )

    def warn_deprecated(**_: object) -> None:
        if settings.stall_seconds_deprecated is not None:
            log.warning(
                "OPTIO_STALL_SECONDS is ignored: workers hold leases now (OPTIO_LEASE_SECONDS=%g)",
                settings.lease_seconds,
            )

    pool_leases = ctx.pool_leases
    for handler in (check_redis_at_start, check_job_function, warn_deprecated):
        signals.worker_init.connect(handler, weak=False)
    signals.worker_init.connect(pool_leases.worker_init, weak=False)
    signals.worker_ready.connect(pool_leases.worker_ready, weak=False)
    signals.worker_ready.connect(announce_job_function, weak=False)
    signals.worker_process_init.connect(ctx.pool_process_init, weak=False)
    for handler in (check_redis_at_start, warn_deprecated):
        signals.beat_init.connect(handler, weak=False)


def quiet_per_task_lines(**_: object) -> None:
    """Celery logs two INFO lines per task; at thousands of jobs/s they drown everything else
    (connected to ``celery.signals.after_setup_logger``)."""
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
