"""Heartbeat threads of workers and beat, started from Celery's signals (see heartbeats.py).

Each process renews its heartbeat every OPTIO_HEARTBEAT_SECONDS; it runs out after three missed
beats, so a killed process disappears from /api/health within 3 × OPTIO_HEARTBEAT_SECONDS.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from celery import signals

from optio import names
from optio.config import Settings
from optio.store import heartbeats
from optio.store.connection import connect

log = logging.getLogger("optio")


class Heartbeat:
    def __init__(self, kind: str, name: str, settings: Settings) -> None:
        self.kind, self.name = kind, name
        self.seconds = settings.heartbeat_seconds
        self.client = connect(settings.redis_url, timeout=settings.redis_timeout)
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"optio-heartbeat-{self.name}", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                heartbeats.beat(self.client, self.kind, self.name, 3 * self.seconds)
            except redis.RedisError as exc:
                log.warning("Heartbeat not written (%s)", exc)
            self._stop.wait(self.seconds)

    def stop(self) -> None:
        self._stop.set()
        try:
            heartbeats.forget(self.client, self.kind, self.name)
        except redis.RedisError:
            pass  # it runs out by itself


class Liveness:
    """The heartbeats of this process: a worker's from ``worker_ready``, beat's from
    ``beat_init``; both stop at ``worker_shutdown``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.beats: list[Heartbeat] = []

    def install(self) -> None:
        signals.worker_ready.connect(self.worker_ready, weak=False)
        signals.beat_init.connect(self.beat_init, weak=False)
        signals.worker_shutdown.connect(self.shutdown, weak=False)

    def _start(self, kind: str, name: str) -> None:
        beat = Heartbeat(kind, name, self.settings)
        beat.start()
        self.beats.append(beat)

    def worker_ready(self, sender=None, **_: object) -> None:
        self._start(
            heartbeats.WORKER,
            getattr(sender, "hostname", None) or f"{socket.gethostname()}-{os.getpid()}",
        )

    def beat_init(self, **_: object) -> None:
        # beat logs every tick it sends at INFO: once a second is noise; ticks show in /api/health
        logging.getLogger("celery.beat").addFilter(_not_a_tick)
        self._start(heartbeats.BEAT, f"{socket.gethostname()}-{os.getpid()}")

    def shutdown(self, **_: object) -> None:
        for beat in self.beats:
            beat.stop()


def _not_a_tick(record: logging.LogRecord) -> bool:
    return names.TICK_ENTRY not in record.getMessage()
