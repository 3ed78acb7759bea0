"""Relay of ``optio:progress`` to Socket.IO clients, coalesced to at most OPTIO_EMIT_HZ emits/s."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask_socketio import SocketIO
from redis.sentinel import MasterNotFoundError

from optio import names
from optio.config import Settings
from optio.store.connection import connect

log = logging.getLogger("optio.webapp.relay")

#: Seconds between "[api] Received progress update" log lines while updates flow.
LOG_EVERY = 1.0
#: Backoff bounds, seconds, for resubscribing after Redis drops.
RETRY_FIRST, RETRY_MAX = 0.5, 10.0


class Relay:
    """Subscribes to the progress channel and emits the latest state to every client."""

    def __init__(
        self,
        socketio: SocketIO,
        read_state: Callable[[], dict[str, Any]],
        settings: Settings,
    ) -> None:
        self.socketio = socketio
        self.read_state = read_state
        self.settings = settings
        self.latest: dict[str, Any] | None = None
        #: states received on the channel, and emits to clients (for /metrics)
        self.received = 0
        self.emits = 0
        self._wake = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._last_log = 0.0

    def start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        self.socketio.start_background_task(self._listen)
        self.socketio.start_background_task(self._emit_loop)

    def offer(self, state: dict[str, Any]) -> None:
        """Take a new state, unless it is older than the one held (same run, lower ``seq``: the
        stored state read at a resubscription can be ahead of messages still in flight); the
        emit loop sends the latest one."""
        held = self.latest
        if (
            held is not None
            and state.get("runId") == held.get("runId")
            and state.get("seq", 0) < held.get("seq", 0)
        ):
            return
        self.latest = state
        self._wake.set()

    def _listen(self) -> None:
        delay = RETRY_FIRST
        while True:
            pubsub = None
            try:
                client = connect(self.settings.redis_url, timeout=self.settings.redis_timeout)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(names.CHANNEL)
                log.info("[api] Subscribed to Redis channel: %s", names.CHANNEL)
                delay = RETRY_FIRST
                # Pub/sub keeps nothing for absent subscribers: catch up from the stored state.
                self.offer(self.read_state())
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._receive(message["data"])
            except (redis.RedisError, OSError) as exc:
                if isinstance(exc, MasterNotFoundError):
                    # the Sentinels answer but name no primary: a failover is under way (it
                    # takes seconds), so look again soon instead of backing off
                    delay = RETRY_FIRST
                log.warning(
                    "[api] Lost Redis subscription (%s); resubscribing in %.1f s", exc, delay
                )
            except Exception:
                log.exception("[api] Relay failed; resubscribing in %.1f s", delay)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
            self.socketio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _receive(self, data: str) -> None:
        try:
            state = json.loads(data)
        except ValueError:
            log.warning("[api] Ignored a message that is not JSON on %s", names.CHANNEL)
            return
        self.received += 1
        self.offer(state)
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY or not state.get("running"):
            self._last_log = now
            log.info(
                "[api] Received progress update: enqueued=%s, processed=%s",
                state.get("enqueued"),
                state.get("processed"),
            )

    def _emit_loop(self) -> None:
        gap = 1.0 / self.settings.emit_hz
        while True:
            self._wake.wait()
            self._wake.clear()
            state = self.latest
            if state is not None:
                try:
                    self.socketio.emit("progress", state)
                    self.emits += 1
                except Exception:
                    log.exception("[api] Emit failed")
            self.socketio.sleep(gap)
