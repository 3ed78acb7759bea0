"""Fixtures of the unit tier: a client of a database of the session's redis-server for the Lua
scripts, flushed around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from optio.redis_state import RunStore
from optio.testing import Published


@pytest.fixture(scope="session")
def scripts_db(redis_db) -> int:
    """The database of the in-process tests of the Lua scripts (``client``, ``store``,
    ``published``)."""
    return redis_db()


@pytest.fixture
def client(redis_server, scripts_db) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(f"{redis_server.url}/{scripts_db}", decode_responses=True)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def store(client) -> RunStore:
    return RunStore(client)


@pytest.fixture
def published(client) -> Iterator[Published]:
    """The states published on the progress channel from now on."""
    collected = Published(client)
    yield collected
    collected.pubsub.close()
