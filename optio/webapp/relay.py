"""Relay of run states to Socket.IO clients, coalesced to at most OPTIO_EMIT_HZ emits/s.

Two channels carry the states: ``optio:progress`` those of the current run (the run clients are
shown by default), ``optio:states`` those of the other runs. Clients are in one of two kinds of
rooms: DEFAULT_ROOM (they chose no run) gets ``progress`` from ``optio:progress`` alone, as
before several runs could be active; ``run:<id>`` (they chose run ``<id>``: ``?run=<id>`` on
connect, or a ``follow`` event) gets that run's states from either channel. Every client gets
``runs``, the states of the active runs, at most RUNS_HZ times a second while they change.

The channels are trusted only as far as they vouch for themselves: a message that is not a run's
state is ignored (with a warning now and then), and a state that is not the next one of its run
(an older ``seq``, a jump ahead: a forged or corrupt message, or one in flight across a
resubscription) is replaced by the stored state, read at most once per STORE_EVERY. ``seq``
grows per run, so each run's last ``seq`` is held apart. The steady flow, each state one ``seq``
after the last of its run, costs no read of the store.
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
#: Most ``runs`` events per second (the list of active runs), sent only when it changed.
RUNS_HZ = 4.0
#: Most runs read from the store at one poll, for their states the channel could not vouch for
#: (more wait for the next poll); most runs waiting for such a read (more are forgotten: a flood
#: of forged run ids must not grow the relay).
RUN_READS_PER_POLL, MAX_DOUBTED = 20, 1000
#: The room of the clients that chose no run: they get the current run's states.
DEFAULT_ROOM = "optio:default"
#: JSON's names of the values json.loads gives that are not objects.
_JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def run_room(run_id: str) -> str:
    """The room of the clients that chose run ``run_id``."""
    return f"run:{run_id}"


class _Channels:
    """The listening half of the relay: subscribes to both channels (resubscribing with
    backoff), decodes each message and hands it to ``offer``; wakes ``flush`` at most
    OPTIO_EMIT_HZ times a second. The attributes it uses are set by ``Relay``."""

    socketio: SocketIO | None
    settings: Settings
    received: int
    ignored: int
    _clock: Callable[[], float]
    _start_lock: threading.Lock
    _started: bool
    _last_log: float
    _unreported: int
    _warned_at: float
    _wake: threading.Event

    def _sleep(self, seconds: float) -> None:
        """Sleep the way the web's async mode does (eventlet: a green sleep)."""
        assert self.socketio is not None, "the relay runs in a web process with Socket.IO"
        self.socketio.sleep(seconds)

    def offer(self, state: dict[str, Any], channel: str = names.CHANNEL) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        raise NotImplementedError

    def resync(self) -> None:
        raise NotImplementedError

    def seed(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._started = True
        assert self.socketio is not None
        self.socketio.start_background_task(self._listen)
        self.socketio.start_background_task(self._emit_loop)

    # ---- states in ----------------------------------------------------------------------

    def _listen(self) -> None:
        delay = RETRY_FIRST
        channels = (names.CHANNEL, names.STATES_CHANNEL)
        while True:
            pubsub = None
            try:
                # bytes: a message that is not UTF-8 is ignored, it must not fail the connection
                client = connect(
                    self.settings.redis_url, timeout=self.settings.redis_timeout, decode=False
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(*channels)
                log.info("[api] Subscribed to Redis channel: %s", ", ".join(channels))
                delay = RETRY_FIRST
                self.resync()
                self.seed()
                while True:
                    message = pubsub.get_message(timeout=STORE_EVERY)
                    if message and message.get("type") == "message":
                        channel = message.get("channel")
                        if isinstance(channel, bytes):
                            channel = channel.decode("utf-8", "replace")
                        self.receive(message["data"], channel or names.CHANNEL)
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
            self._sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def receive(self, data: bytes | str, channel: str = names.CHANNEL) -> None:
        """A message on ``channel``: a run's state is offered, anything else ignored."""
        try:
            state = json.loads(data)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
            self._ignore("not JSON text", channel)
            return
        problem = _not_a_state(state)
        if problem:
            self._ignore(problem, channel)
            return
        self.received += 1
        self.offer(state, channel)
        if channel != names.CHANNEL:
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY or not state.get("running"):
            self._last_log = now
            log.info(
                "[api] Received progress update: enqueued=%s, processed=%s",
                state.get("enqueued"),
                state.get("processed"),
            )

    def _ignore(self, why: str, channel: str) -> None:
        self.ignored += 1
        self._unreported += 1
        now = self._clock()
        if now - self._warned_at >= IGNORED_WARN_EVERY:
            log.warning(
                "[api] Ignored %d message(s) on %s that are not a run's state (the last: %s); "
                "this warning comes at most every %g s",
                self._unreported,
                channel,
                why,
                IGNORED_WARN_EVERY,
            )
            self._warned_at = now
            self._unreported = 0

    # ---- states out ---------------------------------------------------------------------

    def _emit_loop(self) -> None:
        gap = 1.0 / self.settings.emit_hz
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("[api] Emit failed")
            self._sleep(gap)


class Relay(_Channels):
    """Subscribes to both state channels; emits the latest state of the current run to the
    default clients, each run's latest state to the clients that chose it, and the list of
    active runs to every client."""

    def __init__(
        self,
        socketio: SocketIO | None,
        read_state: Callable[[], dict[str, Any]],
        settings: Settings,
        *,
        read_run: Callable[[str], dict[str, Any] | None] | None = None,
        read_active: Callable[[], list[dict[str, Any]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socketio = socketio
        self.read_state = read_state
        self.read_run = read_run
        self.read_active = read_active
        self.settings = settings
        #: the state the default clients were last given (the current run's)
        self.latest: dict[str, Any] | None = None
        #: run id -> its latest state, for the active runs and the runs clients chose
        self.states: dict[str, dict[str, Any]] = {}
        #: ids of the runs in the ``runs`` list: active, or ended and not yet listed as such
        self.listed: set[str] = set()
        #: whether the active runs were read from the store since the relay subscribed
        self.seeded = False
        #: states received on the channels, emits to clients, messages ignored (not a run's
        #: state) and reads of the stored state (for /metrics)
        self.received = 0
        self.emits = 0
        self.ignored = 0
        self.store_reads = 0
        self._clock = clock
        self._followers: dict[str, int] = {}  # run id -> clients that chose it
        self._doubt = False  # a state for the default clients was refused since the last read
        self._doubted: set[str] = set()  # runs a state of which was refused since their read
        self._default_due = False  # the default clients have not been sent ``latest``
        self._runs_due: set[str] = set()  # runs whose followers have not been sent their state
        self._list_due = False  # the ``runs`` list changed since it was last sent
        self._ended: set[str] = set()  # listed runs that ended: dropped once listed so
        self._listed_at = -math.inf
        self._read_at = -math.inf
        self._unreported = 0  # messages ignored since the last warning
        self._warned_at = -math.inf
        self._wake = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()
        self._last_log = 0.0

    def offer(self, state: dict[str, Any], channel: str = names.CHANNEL) -> None:
        """A state received on ``channel``. For its run's followers and the ``runs`` list, the
        next one of the run (``seq`` one more: every change of a run is published, in order),
        or the first of a new run (``seq`` 1), is taken at once. For the default clients
        (``optio:progress`` only), the same holds of the run they were shown last. Any other is
        not, since clients skip a state older than one they showed: the stored state is read
        instead, now, or once STORE_EVERY has passed since the last read (``poll``)."""
        self._track(state)
        if channel != names.CHANNEL:
            return
        held = self.latest or {}
        same_run = state["runId"] == held.get("runId")
        if (same_run and state["seq"] - 1 == held.get("seq")) or (
            not same_run and state["seq"] == 1  # the first change of a new run
        ):
            self._take(state)
            return
        self._doubt = True
        self.poll()

    def _track(self, state: dict[str, Any]) -> None:
        """Hold ``state`` as its run's latest when it is the next one, else doubt it."""
        run_id = state["runId"]
        held = self.states.get(run_id)
        if (held is None and state["seq"] == 1) or (
            held is not None and state["seq"] - 1 == held.get("seq")
        ):
            self._take_run(state)
        elif self.read_run is not None and len(self._doubted) < MAX_DOUBTED:
            self._doubted.add(run_id)

    def poll(self) -> None:
        """Read the store if a state was refused since the last read, at most every
        STORE_EVERY s (the listener calls this at least once a second)."""
        if (self._doubt or self._doubted) and self._clock() - self._read_at >= STORE_EVERY:
            if self._doubt:
                self.resync()
            else:
                self._read_at = self._clock()
            self._read_doubted()

    def resync(self) -> None:
        """Take the stored state, which has the last word: at each subscription (pub/sub keeps
        nothing for absent subscribers) and after a state the channel could not vouch for."""
        self._read_at = self._clock()
        self._doubt = False
        self.store_reads += 1
        stored = self.read_state()
        if stored != self.latest:
            self._take(stored)
        if stored.get("runId"):
            self._doubted.discard(stored["runId"])
            self._vouched(stored)

    def _read_doubted(self) -> None:
        if self.read_run is None:
            self._doubted.clear()
            return
        for run_id in list(self._doubted)[:RUN_READS_PER_POLL]:
            self._doubted.discard(run_id)
            self.store_reads += 1
            stored = self.read_run(run_id)
            if stored is not None:
                self._vouched(stored)

    def seed(self) -> None:
        """Take the active runs' stored states (at each subscription): runs that started or
        ended while the relay was not listening are listed, or listed as ended, at once."""
        if self.read_active is None:
            return
        self.store_reads += 1
        active = {state["runId"]: state for state in self.read_active()}
        for run_id in [r for r in self.listed if r not in active and r not in self._ended]:
            stored = self.read_run(run_id) if self.read_run else None
            if stored is not None:
                self._vouched(stored)
            else:  # gone from the store
                self._ended.add(run_id)
                self._list_due = True
        for state in active.values():
            self._vouched(state)
        self.seeded = True
        self._wake.set()

    def _vouched(self, state: dict[str, Any]) -> None:
        """Take a stored state of a run, unless it is already held (or the run ended and no
        one watches it: a late state of a run no longer listed is of no use)."""
        run_id = state["runId"]
        if self.states.get(run_id) == state:
            return
        if state.get("running") or run_id in self.states or run_id in self._followers:
            self._take_run(state)

    def _take(self, state: dict[str, Any]) -> None:
        self.latest = state
        self._default_due = True
        self._wake.set()

    def _take_run(self, state: dict[str, Any]) -> None:
        run_id = state["runId"]
        self.states[run_id] = state
        if self._followers.get(run_id):
            self._runs_due.add(run_id)
        if state.get("running"):
            self.listed.add(run_id)
            self._ended.discard(run_id)
            self._list_due = True
        elif run_id in self.listed:
            self._ended.add(run_id)
            self._list_due = True
        elif not self._followers.get(run_id):
            self.states.pop(run_id, None)
        self._wake.set()

    # ---- clients ------------------------------------------------------------------------

    def follow(self, run_id: str, state: dict[str, Any] | None) -> None:
        """A client chose run ``run_id``, whose stored state is ``state`` (None: unknown)."""
        self._followers[run_id] = self._followers.get(run_id, 0) + 1
        if state is not None:
            held = self.states.get(run_id)
            if held is None or held.get("seq", 0) <= state.get("seq", 0):
                self.states[run_id] = state

    def unfollow(self, run_id: str) -> None:
        """A client that chose run ``run_id`` left it (chose another, or went away)."""
        left = self._followers.get(run_id, 0) - 1
        if left > 0:
            self._followers[run_id] = left
            return
        self._followers.pop(run_id, None)
        self._runs_due.discard(run_id)
        if run_id not in self.listed:
            self.states.pop(run_id, None)

    def followed(self) -> dict[str, int]:
        """Run id -> clients that chose it."""
        return dict(self._followers)

    def runs_payload(self) -> dict[str, Any]:
        """The ``runs`` event: the listed runs' states, newest first, and the current run's id."""
        listed = [self.states[r] for r in self.listed if r in self.states]
        listed.sort(key=lambda s: (s.get("startedAt") or 0, s["runId"]), reverse=True)
        return {"runs": listed, "current": (self.latest or {}).get("runId")}

    # ---- the listener -------------------------------------------------------------------

    def flush(self) -> None:
        """Emit what is due: the default clients' state, each chosen run's latest state, and
        the ``runs`` list when it changed and RUNS_HZ allows (else the loop comes back)."""
        sio = self.socketio
        if sio is None:
            return
        if self._default_due and self.latest is not None:
            self._default_due = False
            sio.emit("progress", self.latest, to=DEFAULT_ROOM)
            self.emits += 1
        while self._runs_due:
            run_id = self._runs_due.pop()
            state = self.states.get(run_id)
            if state is not None and self._followers.get(run_id):
                sio.emit("progress", state, to=run_room(run_id))
                self.emits += 1
        if self._list_due:
            if self._clock() - self._listed_at < 1.0 / RUNS_HZ:
                self._wake.set()  # not yet: the next turn of the loop
                return
            self._list_due = False
            self._listed_at = self._clock()
            payload = self.runs_payload()
            sio.emit("runs", payload)
            for run_id in list(self._ended):  # listed once as ended: dropped from the list
                self._ended.discard(run_id)
                self._list_due = True  # the list without it, in turn
                self._wake.set()
                self.listed.discard(run_id)
                if not self._followers.get(run_id):
                    self.states.pop(run_id, None)


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
