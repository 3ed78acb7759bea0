"""OPTIO_API_TOKEN in the real web process: it checks the token over real sockets as the app
does in-process (tests/unit/test_api_token.py)."""

from __future__ import annotations

import pytest
import requests
import socketio

from optio.testing import wait_for
from tests.unit.test_api_token import TOKEN, auth


@pytest.fixture(scope="module")
def protected_system(web_alone):
    return web_alone(OPTIO_API_TOKEN=TOKEN, OPTIO_PROTECT_READS="1")


def test_the_real_server_checks_the_token_the_same_way(protected_system):
    base = protected_system.base
    assert protected_system.post("/api/stop").status_code == 401
    assert protected_system.get("/api/status").status_code == 401
    assert requests.get(base + "/api/status", headers=auth(TOKEN), timeout=5).status_code == 200
    assert protected_system.get("/api/health").status_code in (200, 503)  # health stays open


def test_protected_socketio_needs_the_token(protected_system):
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(protected_system.base, transports=["websocket"], wait_timeout=5)
    got: list = []
    client = socketio.Client(reconnection=False)
    client.on("progress", got.append)
    client.connect(
        protected_system.base, transports=["websocket"], auth={"token": TOKEN}, wait_timeout=5
    )
    try:
        wait_for(lambda: got, 5, "the state sent on connect")
    finally:
        client.disconnect()
