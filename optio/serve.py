"""Entry point of the web process: ``python -m optio.serve`` (``optio serve``).

eventlet must monkey-patch before anything else is imported: its patcher walks the objects that
already exist, and those of pydantic (the settings) make it fail. So the one setting that decides
it, OPTIO_ASYNC_MODE, is read here first; every other setting, this one included, then comes
from ``optio.config`` as usual.
"""

import os

if (os.environ.get("OPTIO_ASYNC_MODE") or "eventlet") == "eventlet":
    import eventlet

    eventlet.monkey_patch()

from optio import config  # noqa: E402
from optio.webapp import serve  # noqa: E402


def main() -> None:
    serve.main(config.SETTINGS)


if __name__ == "__main__":
    main()
