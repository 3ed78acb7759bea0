"""The web app: HTTP API, pages and the Socket.IO relay of run progress, built by
:func:`create_app` (Flask's application factory) from one ``Settings``."""

from __future__ import annotations

import functools
import json
import logging

from flask import Flask, request
from flask_socketio import SocketIO

from optio.config import Settings
from optio.webapp import api, metrics, openapi, pages, security
from optio.webapp.budget import BUDGET_SECONDS, CLIENT_PACKET_BUDGET, PacketBudget
from optio.webapp.choices import Choices
from optio.webapp.relay import Relay
from optio.webapp.services import Services

log = logging.getLogger("optio.web")


def create_app(settings: Settings) -> Flask:
    """The web app for ``settings``. Its Socket.IO server is
    ``app.extensions["socketio"]``; the relay, ``app.extensions["optio"].relay``, starts with
    the first HTTP or Socket.IO request the app serves (``python -m optio.serve`` starts it at
    once)."""
    app = Flask(__name__)
    services = app.extensions["optio"] = Services(settings)
    api.register(app)
    pages.register(app)
    openapi.register(app)
    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        cors_allowed_origins=functools.partial(
            security.origin_allowed, allowed=settings.cors_origins
        ),
        max_http_buffer_size=64 * 1024,
        # Clients only listen. Handling their packets inline in the connection's reader
        # (instead of a green thread each) lets a flooding client be cut off at once
        # (PacketBudget below).
        async_handlers=False,
    )
    relay = services.relay = Relay(
        socketio,
        services.current_state,
        settings,
        read_run=lambda run_id: services.store.runs.run_state(run_id),
        read_active=lambda: services.store.runs.active_states(),
    )
    # each wraps the WSGI app (Flask's documented way to add middleware)
    app.wsgi_app = _limiting_clients(  # type: ignore[method-assign]
        app.wsgi_app, socketio.server.eio, settings.max_clients
    )
    if not settings.ws_compression:
        app.wsgi_app = _declining_ws_extensions(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = _starting(relay, app.wsgi_app)  # type: ignore[method-assign]  # outside Socket.IO's: sees every request

    _client_events(socketio, relay, services)

    services.packet_budget = PacketBudget(socketio.server, CLIENT_PACKET_BUDGET, BUDGET_SECONDS)
    metrics.register(app, socketio)
    return app


def _client_events(socketio: SocketIO, relay: Relay, services: Services) -> None:
    """The Socket.IO handlers: a client connects (following the current run, or the run of
    ``?run=<id>``), chooses a run (``follow``), leaves."""
    settings = services.settings
    choices = Choices(socketio, relay, services)

    @socketio.on("connect")
    def on_connect(auth=None) -> bool | None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if settings.protect_reads and not security.token_ok(token, settings.api_token):
            return False  # refuses the connection
        sid = request.sid  # type: ignore[attr-defined]  # set by Flask-SocketIO
        # ``?run=<id>``: this client follows that run; without it, the current run
        choices.choose(sid, request.args.get("run") or None, on_connect=True)
        return None

    @socketio.on("follow")
    def on_follow(data=None) -> None:
        run_id = data.get("run") if isinstance(data, dict) else None
        choices.choose(request.sid, run_id)  # type: ignore[attr-defined]

    @socketio.on("disconnect")
    def on_disconnect(*_) -> None:
        choices.forget(request.sid)  # type: ignore[attr-defined]


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
    is compressed once per client, which costs far more CPU than framing it uncompressed, and
    zlib state per client (measured in docs/BENCHMARKS.md, "WebSocket compression"); a state is
    a few hundred bytes. RFC 6455 lets a server accept none of the
    extensions a client offers; leaving the header out is how we say so. OPTIO_WS_COMPRESSION
    turns it back on.
    """

    def app(environ, start_response):
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return wsgi_app(environ, start_response)

    return app
