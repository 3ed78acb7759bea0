"""Web apps built in this process with ``create_app``, for unit tests of request validation
and auth through Flask's test client.

Each uses a database of the session's private redis-server of its own (``redis_db``), like the
real processes. Behaviour users rely on is still proven over real sockets against real processes
(``optio.testing.System``) in tests/system/ or tests/processes/: each module here that uses these
apps names the one that does.
"""

from __future__ import annotations

import redis
from flask import Flask

from optio.config import Settings
from optio.web import create_app


def build_app(redis_server, db: int, **settings) -> Flask:
    """An app on database ``db`` (flushed first), with ``settings`` on top of the defaults."""
    url = f"{redis_server.url}/{db}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return create_app(Settings(redis_url=url, async_mode="threading", **settings))
