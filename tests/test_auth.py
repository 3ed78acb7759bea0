"""OPTIO_API_TOKEN: changes need the bearer token; reads too with OPTIO_PROTECT_READS."""

from __future__ import annotations

import pytest
import requests
import socketio

from optio.testing import Watcher, wait_for

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def token_system(web_alone):
    return web_alone(3, OPTIO_API_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def protected_system(web_alone):
    return web_alone(4, OPTIO_API_TOKEN=TOKEN, OPTIO_PROTECT_READS="1")


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), auth(""), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "empty", "no scheme", "basic scheme"],
)
def test_changes_without_the_right_token_are_401(token_system, headers):
    before = token_system.get("/api/status").json()
    for method, path, body in [
        ("POST", "/api/run", {"x": 5, "y": 60}),
        ("PUT", "/api/run", {"y": 60}),
        ("POST", "/api/stop", None),
    ]:
        response = requests.request(
            method, token_system.base + path, json=body, headers=headers, timeout=5
        )
        assert response.status_code == 401, (method, path)
        assert "token" in response.json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert token_system.get("/api/status").json() == before


def test_the_right_token_starts_and_stops_and_reads_stay_open(token_system):
    started = token_system.post("/api/run", {"x": 1000, "y": 60}, headers=auth(TOKEN))
    assert started.status_code == 201
    assert token_system.get("/api/status").json()["running"] is True
    assert token_system.post("/api/stop", headers=auth(TOKEN)).status_code == 200
    # reads need no token: /api/status and the live feed, which sends the state at once
    status = token_system.get("/api/status")
    assert status.status_code == 200 and status.json()["status"] == "stopped"
    watcher = Watcher(token_system.base)
    try:
        wait_for(watcher.states, 5, "the state sent to a client without a token")
        assert watcher.states()[0]["runId"] == started.json()["runId"]
    finally:
        watcher.close()


def test_protected_reads_need_the_token_too(protected_system):
    assert protected_system.get("/api/status").status_code == 401
    ok = requests.get(protected_system.base + "/api/status", headers=auth(TOKEN), timeout=5)
    assert ok.status_code == 200
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
