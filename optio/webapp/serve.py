"""Serving the web app: under eventlet on a listening socket of its own (or with threads), the
garbage collector tuned for many clients, and the start-up lines. ``optio/serve.py`` is the
entry (it monkey-patches for eventlet first)."""

import errno
import gc
import ipaddress
import logging

from optio.config import Settings
from optio.store.version import check_redis
from optio.webapp.app import create_app

#: Net new container objects between two young garbage collections (Python's default: 700).
#: Each state sent to the clients leaves short-lived objects; above their swing they die young
#: instead of being promoted into costly full collections (docs/BENCHMARKS.md, "Garbage
#: collection in the web process").
GC_YOUNG_THRESHOLD = 20_000


#: Connections the web process keeps for HTTP requests (API, pages, metrics, long-polling
#: requests) on top of its OPTIO_MAX_CLIENTS Socket.IO clients.
HTTP_CONNECTIONS = 100


class _OneLine(logging.Filter):
    """Malformed packets from clients make python-socketio log tracebacks: keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def main(settings: Settings) -> None:
    """Serve the web app of ``settings`` until the process is stopped."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    app = create_app(settings)
    socketio = app.extensions["socketio"]
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    for name in ("socketio.server", "engineio.server"):
        logging.getLogger(name).addFilter(_OneLine())
    log = logging.getLogger("optio")
    check_redis(settings.redis_url)
    log.info(
        "[api] Serving on %s:%d (async mode %s)",
        settings.host,
        settings.port,
        socketio.async_mode,
    )
    log.log(*exposure_notice(settings.host, settings.port, settings.api_token))
    if socketio.async_mode != "eventlet":
        app.extensions["optio"].relay.start()
        socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True)
        return
    import eventlet.wsgi

    listener = listen(settings.host, settings.port)
    app.extensions["optio"].relay.start()  # subscribe now, before the first client
    # what socketio.run does under eventlet, on our own listening socket; every connection holds
    # a green thread of the pool (a WebSocket for its whole life): room for OPTIO_MAX_CLIENTS
    # clients (optio.web refuses more) and for HTTP requests besides
    pool = settings.max_clients + HTTP_CONNECTIONS
    eventlet.wsgi.server(listener, app, max_size=pool, log_output=False)


def listen(host: str, port: int):
    """The web process's listening socket, bound without SO_REUSEPORT; exits with one line when
    the port is taken.

    ``eventlet.listen`` (and so ``socketio.run``) sets SO_REUSEPORT unless told otherwise: a
    second web process started on a port in use would start too and silently take a share of
    the new connections, and a long-polling client whose requests land on both loses its
    session. Several web processes get a port each (docs/DEPLOY.md, "Several web processes").
    """
    import eventlet
    from eventlet.green import socket

    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    try:
        return eventlet.listen(address, family, reuse_port=False)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(
                f"optio serve: port {port} on {host} is in use (another web process?); "
                "give each web process its own PORT"
            ) from None
        raise


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it reaches beyond this machine


def exposure_notice(host: str, port: int, token: str | None) -> tuple[int, str]:
    """The start-up log line (level, text) about who can reach the web process."""
    if is_loopback(host):
        return logging.INFO, (
            f"[api] Listening on {host} only; to serve other machines set OPTIO_HOST=0.0.0.0 "
            "together with OPTIO_API_TOKEN"
        )
    if not token:
        return logging.WARNING, (
            f"[api] OPTIO_HOST={host} without OPTIO_API_TOKEN: anyone who reaches port {port} "
            "can start, change and stop runs; set OPTIO_API_TOKEN"
        )
    return logging.INFO, f"[api] Listening on {host}; start, change and stop need the API token"
