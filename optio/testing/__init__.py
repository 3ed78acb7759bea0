"""The harness of optio's tests and benchmark: real processes, never mocks.

A private redis-server on a free loopback port (``RedisServer``), a primary, a replica and three
Sentinels (``SentinelGroup``), a private RabbitMQ node (``RabbitServer``), the Procfile's
processes (``System``: web, worker, beat), runs driven over HTTP (``start``, ``wait_finished``,
...), and ``Proc``, which runs every process in its own group and ends that whole group. Needs the
``test`` or ``bench`` extra (requests; python-socketio's client for ``Watcher``).
"""

from optio.testing.procs import (
    ROOT,
    VENV_BIN,
    Command,
    Proc,
    RedisServer,
    celery_args,
    children,
    free_port,
    wait_for,
    worker_args,
)
from optio.testing.rabbit import RabbitServer
from optio.testing.runs import (
    assert_exactly_once,
    executions,
    executions_key,
    jobs_per_tick,
    most_ahead_of_schedule,
    past_schedule,
    start,
    starts,
    starts_key,
    status,
    wait_finished,
    wait_processed,
)
from optio.testing.sentinel import SentinelGroup
from optio.testing.system import System
from optio.testing.watcher import Published, Watcher

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
    "start",
    "starts",
    "starts_key",
    "status",
    "wait_finished",
    "wait_processed",
    "wait_for",
    "worker_args",
]
