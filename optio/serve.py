"""Entry point of the web process: ``python -m optio.serve``."""

from optio import config

if config.SETTINGS.async_mode == "eventlet":
    import eventlet

    eventlet.monkey_patch()

import errno  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402

from optio import preflight  # noqa: E402
from optio.web import create_app  # noqa: E402

#: Net new container objects between two young garbage collections (Python's default: 700).
#: Every state sent to a client leaves objects alive for a while: eventlet keeps the cancelled
#: timeout of python-engineio's writer in its timer heap until it sweeps the heap, about once
#: per round of the clients. Measured with 1,000 clients: the count of young objects swings by
#: about 8,000 and falls back, and nothing of it is cyclic garbage. With the default the young
#: collections promoted these objects, and every 3 s or so a full collection of the ~250,000
#: objects found nothing to free and held the process for 120 to 210 ms: the latency's tail.
#: Above the swing, they die young, freed by reference counting; cyclic garbage (a client that
#: left) waits until this many objects accumulate.
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


def main() -> None:
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    app = create_app(config.SETTINGS)
    socketio = app.extensions["socketio"]
    logging.basicConfig(
        level=config.SETTINGS.log_level, format="%(asctime)s %(levelname)s %(message)s"
    )
    for name in ("socketio.server", "engineio.server"):
        logging.getLogger(name).addFilter(_OneLine())
    log = logging.getLogger("optio")
    preflight.check_redis()
    log.info(
        "[api] Serving on %s:%d (async mode %s)",
        config.SETTINGS.host,
        config.SETTINGS.port,
        socketio.async_mode,
    )
    log.log(
        *preflight.exposure_notice(
            config.SETTINGS.host, config.SETTINGS.port, config.SETTINGS.api_token
        )
    )
    if socketio.async_mode != "eventlet":
        app.extensions["optio"].relay.start()
        socketio.run(
            app, host=config.SETTINGS.host, port=config.SETTINGS.port, allow_unsafe_werkzeug=True
        )
        return
    import eventlet.wsgi

    listener = listen(config.SETTINGS.host, config.SETTINGS.port)
    app.extensions["optio"].relay.start()  # subscribe now, before the first client
    # what socketio.run does under eventlet, on our own listening socket; every connection holds
    # a green thread of the pool (a WebSocket for its whole life): room for OPTIO_MAX_CLIENTS
    # clients (optio.web refuses more) and for HTTP requests besides
    pool = config.SETTINGS.max_clients + HTTP_CONNECTIONS
    eventlet.wsgi.server(listener, app, max_size=pool, log_output=False)


def listen(host: str, port: int):
    """The web process's listening socket, bound without SO_REUSEPORT; exits with one line when
    the port is taken.

    ``eventlet.listen`` (and so ``socketio.run``) sets SO_REUSEPORT unless told otherwise: a
    second web process started on a port in use would start too and silently take a share of
    the new connections, and a long-polling client whose requests land on both loses its
    session. Several web processes get a port each (README, Scaling).
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


if __name__ == "__main__":
    main()
