"""Relay of ``optio:progress`` to Socket.IO clients, coalesced to at most OPTIO_EMIT_HZ emits/s.

The channel is trusted only as far as it vouches for itself: a message that is not a run's state
is ignored (with a warning now and then), and a state that is not the next one of the run held
(another run, an older ``seq``, a jump ahead: a forged or corrupt message, or one in flight
across a resubscription) is replaced by the stored state, read at most once per STORE_EVERY.
The steady flow, each state one ``seq`` after the last, costs no read of the store.
"""

from __future__ import annotations

import json
import logging
import math
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
#: Most reads of the stored state per this many seconds, for states the channel can't vouch for.
STORE_EVERY = 1.0
#: Seconds between two warnings about messages on the channel that are not a run's state.
IGNORED_WARN_EVERY = 10.0
#: JSON's names of the values json.loads gives that are not objects.
_JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


class Relay:
    """Subscribes to the progress channel and emits the latest state to every client."""

    def __init__(
        self,
        socketio: SocketIO,
        read_state: Callable[[], dict[str, Any]],
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socketio = socketio
        self.read_state = read_state
        self.settings = settings
        self.latest: dict[str, Any] | None = None
        #: states received on the channel, emits to clients, messages ignored (not a run's
        #: state) and reads of the stored state (for /metrics)
        self.received = 0
        self.emits = 0
        self.ignored = 0
        self.store_reads = 0
        self._clock = clock
        self._doubt = False  # a state was refused since the last read of the store
        self._read_at = -math.inf
        self._unreported = 0  # messages ignored since the last warning
        self._warned_at = -math.inf
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
        """A state received on the channel. The next one of the run held (``seq`` one more:
        every change of the watched run is published, in order), or the first of another run (a
        new run: ``seq`` 1), is taken at once. Any other is not, since clients skip a state older
        than one they showed: the stored state is read
        instead, now, or once STORE_EVERY has passed since the last read (``poll``)."""
        held = self.latest or {}
        same_run = state["runId"] == held.get("runId")
        if (same_run and state["seq"] - 1 == held.get("seq")) or (
            not same_run and state["seq"] == 1  # the first change of a new run
        ):
            self._take(state)
            return
        self._doubt = True
        self.poll()

    def poll(self) -> None:
        """Read the store if a state was refused since the last read, at most every
        STORE_EVERY s (the listener calls this at least once a second)."""
        if self._doubt and self._clock() - self._read_at >= STORE_EVERY:
            self.resync()

    def resync(self) -> None:
        """Take the stored state, which has the last word: at each subscription (pub/sub keeps
        nothing for absent subscribers) and after a state the channel could not vouch for."""
        self._read_at = self._clock()
        self._doubt = False
        self.store_reads += 1
        stored = self.read_state()
        if stored != self.latest:
            self._take(stored)

    def _take(self, state: dict[str, Any]) -> None:
        self.latest = state
        self._wake.set()

    def _listen(self) -> None:
        delay = RETRY_FIRST
        while True:
            pubsub = None
            try:
                # bytes: a message that is not UTF-8 is ignored, it must not fail the connection
                client = connect(
                    self.settings.redis_url, timeout=self.settings.redis_timeout, decode=False
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(names.CHANNEL)
                log.info("[api] Subscribed to Redis channel: %s", names.CHANNEL)
                delay = RETRY_FIRST
                self.resync()
                while True:
                    message = pubsub.get_message(timeout=STORE_EVERY)
                    if message and message.get("type") == "message":
                        self.receive(message["data"])
                    self.poll()
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

    def receive(self, data: bytes | str) -> None:
        """A message on the channel: a run's state is offered, anything else ignored."""
        try:
            state = json.loads(data)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
            self._ignore("not JSON text")
            return
        problem = _not_a_state(state)
        if problem:
            self._ignore(problem)
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

    def _ignore(self, why: str) -> None:
        self.ignored += 1
        self._unreported += 1
        now = self._clock()
        if now - self._warned_at >= IGNORED_WARN_EVERY:
            log.warning(
                "[api] Ignored %d message(s) on %s that are not a run's state (the last: %s); "
                "this warning comes at most every %g s",
                self._unreported,
                names.CHANNEL,
                why,
                IGNORED_WARN_EVERY,
            )
            self._warned_at = now
            self._unreported = 0

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


def _not_a_state(value: Any) -> str | None:
    """Why a decoded message is not a run's state (a JSON object with a text runId and a whole
    seq), or None when it is one."""
    if not isinstance(value, dict):
        return "null" if value is None else _JSON_TYPES.get(type(value), "not an object")
    if not isinstance(value.get("runId"), str):
        return "an object without a text runId"
    seq = value.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return "an object without a whole seq"
    return None
