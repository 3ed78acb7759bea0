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

from optio import config, heartbeats, names
from optio.redis_state import connect

log = logging.getLogger("optio")


class Heartbeat:
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        self.client = connect()
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"optio-heartbeat-{self.name}", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                heartbeats.beat(
                    self.client, self.kind, self.name, 3 * config.SETTINGS.heartbeat_seconds
                )
            except redis.RedisError as exc:
                log.warning("Heartbeat not written (%s)", exc)
            self._stop.wait(config.SETTINGS.heartbeat_seconds)

    def stop(self) -> None:
        self._stop.set()
        try:
            heartbeats.forget(self.client, self.kind, self.name)
        except redis.RedisError:
            pass  # it runs out by itself


_beats: list[Heartbeat] = []


@signals.worker_ready.connect
def _worker_ready(sender=None, **_: object) -> None:
    name = getattr(sender, "hostname", None) or f"{socket.gethostname()}-{os.getpid()}"
    beat = Heartbeat(heartbeats.WORKER, name)
    beat.start()
    _beats.append(beat)


def _not_a_tick(record: logging.LogRecord) -> bool:
    return names.TICK_ENTRY not in record.getMessage()


@signals.beat_init.connect
def _beat_init(**_: object) -> None:
    # beat logs every tick it sends at INFO: once a second is noise, the ticks show in /api/health
    logging.getLogger("celery.beat").addFilter(_not_a_tick)
    beat = Heartbeat(heartbeats.BEAT, f"{socket.gethostname()}-{os.getpid()}")
    beat.start()
    _beats.append(beat)


@signals.worker_shutdown.connect
def _shutdown(**_: object) -> None:
    for beat in _beats:
        beat.stop()
