"""Entry point of the web process: ``python -m optio.serve`` (``optio serve``).

Reads the settings, monkey-patches for eventlet when that is the async mode (before anything
imports the socket or threading modules), then serves ``optio.webapp``.
"""

from optio import config

if config.SETTINGS.async_mode == "eventlet":
    import eventlet

    eventlet.monkey_patch()

from optio.webapp import serve  # noqa: E402


def main() -> None:
    serve.main(config.SETTINGS)


if __name__ == "__main__":
    main()
