"""Entry point of the web process: ``python -m optio.serve``."""

from optio import config

if config.ASYNC_MODE == "eventlet":
    import eventlet

    eventlet.monkey_patch()

import logging  # noqa: E402

from optio.web import app, relay, socketio  # noqa: E402


def main() -> None:
    logging.basicConfig(level=config.LOG_LEVEL, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("optio").info(
        "[api] Serving on %s:%d (async mode %s)", config.HOST, config.PORT, socketio.async_mode
    )
    relay.start()
    socketio.run(app, host=config.HOST, port=config.PORT, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    main()
