"""The web process: HTTP API, pages and the Socket.IO relay of run progress.

``create_app(settings)`` builds one app (Flask's application factory); nothing is built at
import. Production entry: ``python -m optio.serve`` (monkey-patches for eventlet first).
Development: ``flask --app optio.web run`` (Flask finds ``create_app``; threading mode).
"""

from __future__ import annotations

import functools
import json
import logging
import time

import redis
from flask import Flask, request
from flask_socketio import SocketIO

from optio import api, config, metrics, openapi, pages
from optio.config import Settings
from optio.relay import Relay
from optio.services import Services

log = logging.getLogger("optio.web")


def create_app(settings: Settings | None = None) -> Flask:
    """The web app for ``settings`` (default: the environment's). Its Socket.IO server is
    ``app.extensions["socketio"]``; the relay, ``app.extensions["optio"].relay``, starts with
    the first HTTP or Socket.IO request the app serves (``python -m optio.serve`` starts it at
    once)."""
    settings = settings or config.SETTINGS
    app = Flask(__name__)
    services = app.extensions["optio"] = Services(settings)
    api.register(app)
    pages.register(app)
    openapi.register(app)
    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        cors_allowed_origins=functools.partial(api.origin_allowed, allowed=settings.cors_origins),
        max_http_buffer_size=64 * 1024,
        # Clients only listen. Handling their packets inline in the connection's reader
        # (instead of a green thread each) lets a flooding client be cut off at once
        # (PacketBudget below).
        async_handlers=False,
    )
    relay = services.relay = Relay(socketio, lambda: services.store.current_state(), settings)
    app.wsgi_app = _limiting_clients(app.wsgi_app, socketio.server.eio, settings.max_clients)
    if not settings.ws_compression:
        app.wsgi_app = _declining_ws_extensions(app.wsgi_app)
    app.wsgi_app = _starting(relay, app.wsgi_app)  # outside Socket.IO's: sees every request

    @socketio.on("connect")
    def on_connect(auth=None) -> bool | None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if settings.protect_reads and not api.token_ok(token, settings.api_token):
            return False  # refuses the connection
        try:
            state = services.store.current_state()
        except redis.RedisError as exc:
            log.warning("[api] Could not read the state for a new client: %s", exc)
            return None
        # sent once the handler has returned, so the client sees "connected" before the state
        sid = request.sid
        socketio.start_background_task(socketio.emit, "progress", state, to=sid)
        return None

    services.packet_budget = PacketBudget(socketio.server, CLIENT_PACKET_BUDGET, BUDGET_SECONDS)
    metrics.register(app, socketio)
    return app


def _starting(relay: Relay, wsgi_app):
    """``wsgi_app`` that first makes sure the relay runs (a no-op once it does)."""

    def app(environ, start_response):
        relay.start()
        return wsgi_app(environ, start_response)

    return app


def _limiting_clients(wsgi_app, eio, limit: int):
    """``wsgi_app`` answering 503 to a Socket.IO handshake (a request without a session id)
    while ``limit`` Engine.IO sessions are open here.

    Under eventlet every open WebSocket holds one of the server's green threads for its whole
    life (``serve.py`` sizes the pool: OPTIO_MAX_CLIENTS plus a reserve for HTTP). Without a
    limit the clients could take them all, and then the process would accept nothing more, HTTP
    requests included. A refused client tries again later (socket.io-client does by itself),
    or a load balancer passes the handshake to another web process.
    """
    body = json.dumps({"error": f"this web process serves {limit} clients; try another"})

    def app(environ, start_response):
        if (
            environ.get("PATH_INFO", "").startswith("/socket.io")
            and "sid=" not in environ.get("QUERY_STRING", "")
            and len(eio.sockets) >= limit
        ):
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Retry-After", "1")],
            )
            return [body.encode()]
        return wsgi_app(environ, start_response)

    return app


def _declining_ws_extensions(wsgi_app):
    """``wsgi_app`` seeing no WebSocket extension offered, so none is negotiated.

    Browsers and Node's ``ws`` offer permessage-deflate, and eventlet's WebSocket server (as
    simple-websocket's in threading mode) accepts whatever is offered; neither has an option to
    decline it. A compressed connection keeps its own zlib stream, so every ``progress`` event
    is compressed once per client: measured here, 45 µs per client per state with 1,000 clients
    (their compressors no longer fit in the CPU caches) against 2 µs to frame it uncompressed,
    and about 120 KiB of zlib state per client. The state is about 320 bytes: compression would
    save a few hundred bytes a second per client. RFC 6455 lets a server accept none of the
    extensions a client offers; leaving the header out is how we say so. OPTIO_WS_COMPRESSION
    turns it back on.
    """

    def app(environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return wsgi_app(environ, start_response)

    return app


#: Clients only listen: one that sends more than this many packets in BUDGET_SECONDS is cut off.
CLIENT_PACKET_BUDGET = 20
BUDGET_SECONDS = 10.0


class PacketBudget:
    """Counts every Socket.IO packet a client sends, before python-socketio looks at it.

    It sits on the Engine.IO ``message`` hook, in front of ``Server._handle_eio_message``:
    python-socketio would hand client events named ``connect``/``disconnect`` to our own
    handlers and accepts any JSON value as an event name, and a binary event's attachments reach
    no handler until the last one arrives. Clients only listen, so only Socket.IO CONNECT and
    DISCONNECT packets go on to python-socketio; events, acks and attachments are dropped.
    """

    def __init__(self, server, budget: int, seconds: float) -> None:
        self.server = server
        self.budget = budget
        self.seconds = seconds
        self._windows: dict[str, list[float]] = {}  # Engine.IO sid -> [window start, packets]
        self._dispatch = server._handle_eio_message
        self._eio_disconnect = server._handle_eio_disconnect
        server.eio.on("message", self.on_message)
        server.eio.on("disconnect", self.on_disconnect)

    def on_message(self, eio_sid: str, data: str | bytes) -> None:
        now = time.monotonic()
        window = self._windows.setdefault(eio_sid, [now, 0])
        if now - window[0] > self.seconds:
            window[:] = [now, 0]
        window[1] += 1
        if window[1] > self.budget:
            if window[1] == self.budget + 1:
                self._cut_off(eio_sid, data)
            return
        if isinstance(data, str) and data[:1] in ("0", "1"):  # Socket.IO CONNECT, DISCONNECT
            self._dispatch(eio_sid, data)
        self.server.sleep(0)  # let other clients and requests run between a client's packets

    def _cut_off(self, eio_sid: str, data: str | bytes) -> None:
        sample = data[:50] if isinstance(data, str) else f"<{len(data)} bytes>"
        log.warning("[api] Disconnecting client %s: it sends packets (%r, ...)", eio_sid, sample)
        sid = self.server.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            self.server.disconnect(sid)  # tells a socket.io client not to reconnect
        self.server.eio.disconnect(eio_sid)

    def on_disconnect(self, eio_sid: str, reason=None) -> None:
        self._windows.pop(eio_sid, None)
        self._eio_disconnect(eio_sid, reason)
