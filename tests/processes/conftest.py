"""Fixtures of the processes tier: a web process alone, with settings of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from optio.testing import System


@pytest.fixture(scope="module")
def web_alone(redis_server, redis_db, tmp_path_factory) -> Iterator[Callable[..., System]]:
    """``web_alone(**env)`` starts a web process without worker or beat on a free database of
    the private Redis (``redis_db``); every one started is stopped after the module."""
    started: list[System] = []

    def start_web(**env: str) -> System:
        db = redis_db()
        system = System(f"{redis_server.url}/{db}", tmp_path_factory.mktemp(f"web-db{db}"), **env)
        started.append(system)
        system.start_web()
        return system

    yield start_web
    for system in started:
        system.stop_all()
