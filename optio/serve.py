"""Entry point of the web process: ``python -m optio.serve``."""

from optio import config

if config.ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()

import logging  # noqa: E402

from optio import preflight  # noqa: E402
from optio.web import create_app  # noqa: E402


class _OneLine(logging.Filter):
    """Malformed packets from clients make python-socketio log tracebacks: keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def main() -> None:
    app = create_app(config.SETTINGS)
    socketio = app.extensions["socketio"]
    logging.basicConfig(level=config.LOG_LEVEL, format="%(asctime)s %(levelname)s %(message)s")
    for name in ("socketio.server", "engineio.server"):
        logging.getLogger(name).addFilter(_OneLine())
    log = logging.getLogger("optio")
    preflight.check_redis()
    log.info(
        "[api] Serving on %s:%d (async mode %s)", config.HOST, config.PORT, socketio.async_mode
    )
    log.log(*preflight.exposure_notice(config.HOST, config.PORT, config.API_TOKEN))
    app.extensions["optio"].relay.start()  # subscribe now, before the first client
    socketio.run(app, host=config.HOST, port=config.PORT, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    main()
