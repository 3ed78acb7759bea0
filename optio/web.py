"""The web process: HTTP API, pages and the Socket.IO relay of run progress.

Production entry: ``python -m optio.serve`` (monkey-patches for eventlet first).
Development: ``flask --app optio.web run`` (Flask's reloader-friendly threading mode).
"""

from __future__ import annotations

import logging
import os
import time

import redis
from flask import Flask, request
from flask_socketio import SocketIO, disconnect

from optio import api, config, pages
from optio.relay import Relay

log = logging.getLogger("optio.web")


def async_mode() -> str:
    """The one async-mode setting; ``flask run`` serves with threads, as Flask-SocketIO does."""
    return "threading" if os.environ.get("FLASK_RUN_FROM_CLI") else config.ASYNC_MODE


app = Flask(__name__)
api.register(app)
pages.register(app)
socketio = SocketIO(
    app,
    async_mode=async_mode(),
    cors_allowed_origins=api.origin_allowed,
    max_http_buffer_size=64 * 1024,
    # Clients only listen. Handling their events inline in the connection's reader (instead of a
    # green thread each) lets a flooding client be cut off at once, before it monopolises the hub.
    async_handlers=False,
)
relay = Relay(socketio, lambda: api.store().current_state())


@app.before_request
def _ensure_relay() -> None:
    relay.start()


@socketio.on("connect")
def on_connect(auth=None) -> bool | None:
    token = auth.get("token") if isinstance(auth, dict) else None
    if config.PROTECT_READS and not api.token_ok(token):
        return False  # refuses the connection
    relay.start()
    try:
        state = api.store().current_state()
    except redis.RedisError as exc:
        log.warning("[api] Could not read the state for a new client: %s", exc)
        return None
    # sent once the handler has returned, so the client sees "connected" before the state
    sid = request.sid
    socketio.start_background_task(socketio.emit, "progress", state, to=sid)
    return None


#: Clients only listen: one that sends more than this many events in 10 s is disconnected.
CLIENT_EVENT_BUDGET = 20
_client_events: dict[str, list[float]] = {}


@socketio.on("*")
def on_client_event(event, *args) -> None:
    sid = request.sid
    now = time.monotonic()
    window = _client_events.setdefault(sid, [now, 0])
    if now - window[0] > 10:
        window[:] = [now, 0]
    window[1] += 1
    if window[1] == CLIENT_EVENT_BUDGET + 1:
        log.warning("[api] Disconnecting client %s: it sends events (%r, ...)", sid, event[:50])
        disconnect()
    socketio.sleep(0)  # let other clients and requests run between a client's events


@socketio.on("disconnect")
def on_disconnect(*_: object) -> None:
    _client_events.pop(request.sid, None)
