"""optio as the benchmark starts it: the harness's System (``optio.testing``), started as the
tests start it except where the keyword arguments below say otherwise."""

from __future__ import annotations

from pathlib import Path

from optio.testing import System, children, wait_for

#: Worker processes per celery worker, as in the Procfile's default on a 2-core machine.
CONCURRENCY = 2


def start_optio(redis_url: str, work: Path, name: str, **env: str) -> System:
    """web + worker + beat of optio against one Redis, logs in ``work/name``."""
    system = System(
        redis_url,
        work / name,
        tick_seconds=None,  # optio's default (0.5 s), or OPTIO_TICK_SECONDS of the caller
        log_level="WARNING",  # the web writes no INFO lines while it is measured
        **env,
    )
    try:
        # no Celery event heartbeats: the broker carries only optio's work
        system.start_all(concurrency=CONCURRENCY, heartbeat=False)
        worker = system.procs["worker"].pid
        wait_for(lambda: len(children(worker)) >= CONCURRENCY, 30, "the worker's pool")
    except BaseException:
        system.stop_all()
        raise
    return system
