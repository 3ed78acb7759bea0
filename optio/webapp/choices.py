"""The run each Socket.IO client follows: the current one (the default: the room
``relay.DEFAULT_ROOM``), or the one it chose with ``?run=<id>`` on connect or a ``follow``
event ``{"run": "<id>"}`` (``{"run": null}``: back to the default), in that run's room. A client
gets the state of what it chose at once, from the store; the relay sends the rest."""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
from flask_socketio import SocketIO

from optio.webapp.relay import DEFAULT_ROOM, Relay, run_room

log = logging.getLogger("optio.web")

#: What a run id may look like (the store's ids are 12 hex digits).
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The event telling a client that the run it chose is not known (``{"run": "<id>"}``).
UNKNOWN_RUN = "unknown_run"
_NOTHING = object()


class Choices:
    """Client sid -> the run it follows (None: the current run)."""

    def __init__(self, socketio: SocketIO, relay: Relay, services: Any) -> None:
        self.socketio = socketio
        self.relay = relay
        self.services = services
        self._chosen: dict[str, str | None] = {}

    def choose(self, sid: str, run_id: Any, *, on_connect: bool = False) -> None:
        """Put client ``sid`` in the room of ``run_id`` (None: the default room) and send it
        that run's state; on connect, the list of active runs too."""
        valid = run_id is None or (isinstance(run_id, str) and RUN_ID.fullmatch(run_id))
        self.forget(sid)
        if valid:
            self._chosen[sid] = run_id
            self.socketio.server.enter_room(sid, run_room(run_id) if run_id else DEFAULT_ROOM)
        state = self._read(run_id) if valid else None
        if run_id is not None and valid:
            self.relay.follow(run_id, state)
        unknown = run_id is not None and state is None
        runs = self._runs() if on_connect else None
        # sent once the handler has returned, so the client sees "connected" before the state
        self.socketio.start_background_task(self._send, sid, state, runs, unknown and run_id)

    def forget(self, sid: str) -> None:
        """Client ``sid`` leaves what it followed (it chose again, or went away)."""
        previous = self._chosen.pop(sid, _NOTHING)
        if previous is _NOTHING:
            return
        room = run_room(previous) if isinstance(previous, str) and previous else DEFAULT_ROOM
        try:
            self.socketio.server.leave_room(sid, room)
        except (KeyError, ValueError):  # the client is gone, rooms and all
            pass
        if isinstance(previous, str) and previous:
            self.relay.unfollow(previous)

    def _read(self, run_id: str | None) -> dict[str, Any] | None:
        try:
            if run_id is None:
                return self.services.current_state()
            return self.services.store.runs.run_state(run_id)
        except redis.RedisError as exc:
            log.warning("[api] Could not read the state for a client: %s", exc)
            return None

    def _runs(self) -> dict[str, Any] | None:
        """The ``runs`` event for a new client: the relay's, or the store's before the relay
        has read it."""
        if self.relay.seeded:
            return self.relay.runs_payload()
        try:
            states = self.services.store.runs.active_states()
        except redis.RedisError:
            return None
        return {"runs": states, "current": states[0]["runId"] if states else None}

    def _send(self, sid: str, state: dict | None, runs: dict | None, unknown: Any) -> None:
        if unknown:
            self.socketio.emit(UNKNOWN_RUN, {"run": unknown}, to=sid)
        elif state is not None:
            self.socketio.emit("progress", state, to=sid)
        if runs is not None:
            self.socketio.emit("runs", runs, to=sid)
