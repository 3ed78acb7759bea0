"""Heartbeats of workers and beat in Redis, read by /api/health.

Each process refreshes a key that expires after three missed beats, so a killed process
disappears from /api/health within 3 × OPTIO_HEARTBEAT_SECONDS.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from celery import signals

from optio import config
from optio.redis_state import BEAT_KEY_PREFIX, WORKER_KEY_PREFIX, RunStore, connect

log = logging.getLogger("optio")


class Heartbeat:
    def __init__(self, prefix: str, name: str) -> None:
        self.prefix, self.name = prefix, name
        self.store = RunStore(connect())
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"optio-heartbeat-{self.name}", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.heartbeat(self.prefix, self.name, 3 * config.HEARTBEAT_SECONDS)
            except redis.RedisError as exc:
                log.warning("Heartbeat not written (%s)", exc)
            self._stop.wait(config.HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        try:
            self.store.forget(self.prefix, self.name)
        except redis.RedisError:
            pass  # the key expires by itself


_beats: list[Heartbeat] = []


@signals.worker_ready.connect
def _worker_ready(sender=None, **_: object) -> None:
    name = getattr(sender, "hostname", None) or f"{socket.gethostname()}-{os.getpid()}"
    beat = Heartbeat(WORKER_KEY_PREFIX, name)
    beat.start()
    _beats.append(beat)


def _not_a_tick(record: logging.LogRecord) -> bool:
    return "optio-tick" not in record.getMessage()


@signals.beat_init.connect
def _beat_init(**_: object) -> None:
    # beat logs every tick it sends at INFO: once a second is noise, the ticks show in /api/health
    logging.getLogger("celery.beat").addFilter(_not_a_tick)
    beat = Heartbeat(BEAT_KEY_PREFIX, f"{socket.gethostname()}-{os.getpid()}")
    beat.start()
    _beats.append(beat)


@signals.worker_shutdown.connect
def _shutdown(**_: object) -> None:
    for beat in _beats:
        beat.stop()
