"""The harness of optio's tests and benchmark: real processes, never mocks.

A private redis-server on a free loopback port (``RedisServer``), a primary, a replica and three
Sentinels (``SentinelGroup``), a private RabbitMQ node (``RabbitServer``), the Procfile's
processes (``System``: web, worker, beat), runs driven over HTTP (``start``, ``wait_finished``,
...), and ``Proc``, which runs every process in its own group and ends that whole group. Needs the
``test`` or ``bench`` extra (requests; python-socketio's client for ``Watcher``), except
``devredis``, the Redis that ``scripts/run.sh`` starts when none answers.
"""

import importlib
from typing import Any

#: Where each name of the harness lives. Imported on first use, so a tool of the package that
#: needs none of them (``python -m optio.testing.devredis``, run by ``scripts/run.sh``) works
#: without the test extra.
_HOMES = {
    "ROOT": "procs",
    "VENV_BIN": "procs",
    "Command": "procs",
    "Proc": "procs",
    "RedisServer": "procs",
    "celery_args": "procs",
    "children": "procs",
    "free_port": "procs",
    "wait_for": "procs",
    "worker_args": "procs",
    "RabbitServer": "rabbit",
    "assert_exactly_once": "runs",
    "executions": "runs",
    "executions_key": "runs",
    "jobs_per_tick": "runs",
    "most_ahead_of_schedule": "runs",
    "past_schedule": "runs",
    "settled_executions": "runs",
    "start": "runs",
    "starts": "runs",
    "starts_key": "runs",
    "status": "runs",
    "wait_finished": "runs",
    "wait_processed": "runs",
    "SentinelGroup": "sentinel",
    "System": "system",
    "Published": "watcher",
    "Watcher": "watcher",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "ROOT",
    "VENV_BIN",
    "Command",
    "Proc",
    "Published",
    "RabbitServer",
    "RedisServer",
    "SentinelGroup",
    "System",
    "Watcher",
    "assert_exactly_once",
    "celery_args",
    "children",
    "executions",
    "executions_key",
    "free_port",
    "jobs_per_tick",
    "most_ahead_of_schedule",
    "past_schedule",
    "settled_executions",
    "start",
    "starts",
    "starts_key",
    "status",
    "wait_finished",
    "wait_processed",
    "wait_for",
    "worker_args",
]
