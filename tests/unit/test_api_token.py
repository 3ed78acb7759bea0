"""OPTIO_API_TOKEN: changes need the bearer token; reads too with OPTIO_PROTECT_READS.

The token checks run in-process (create_app with the token settings, Flask's and
Flask-SocketIO's test clients); the real web process is proven to check the token the same way
over real sockets in tests/processes/test_api_token.py.
"""

from __future__ import annotations

import pytest

from optio.testing import wait_for
from tests.unit.apps import build_app

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def token_app(redis_server, redis_db):
    return build_app(redis_server, redis_db(), api_token=TOKEN)


@pytest.fixture(scope="module")
def protected_app(redis_server, redis_db):
    return build_app(redis_server, redis_db(), api_token=TOKEN, protect_reads=True)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def first_state(client) -> dict:
    """The ``progress`` state a Socket.IO test client received on connect."""
    received = wait_for(client.get_received, 5, "the state sent on connect")
    return next(p["args"][0] for p in received if p["name"] == "progress")


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), auth(""), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong", "empty", "no scheme", "basic scheme"],
)
def test_changes_without_the_right_token_are_401(token_app, headers):
    web = token_app.test_client()
    before = web.get("/api/status").json
    for method, path, body in [
        ("POST", "/api/run", {"x": 5, "y": 60}),
        ("PUT", "/api/run", {"y": 60}),
        ("POST", "/api/stop", None),
    ]:
        response = web.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert "token" in response.json["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert web.get("/api/status").json == before


def test_the_right_token_starts_and_stops_and_reads_stay_open(token_app):
    web = token_app.test_client()
    started = web.post("/api/run", json={"x": 1000, "y": 60}, headers=auth(TOKEN))
    assert started.status_code == 201
    assert web.get("/api/status").json["running"] is True
    assert web.post("/api/stop", headers=auth(TOKEN)).status_code == 200
    # reads need no token: /api/status and the live feed, which sends the state at once
    status = web.get("/api/status")
    assert status.status_code == 200 and status.json["status"] == "stopped"
    client = token_app.extensions["socketio"].test_client(token_app)
    try:
        assert first_state(client)["runId"] == started.json["runId"]
    finally:
        client.disconnect()


def test_protected_reads_need_the_token_too(protected_app):
    web = protected_app.test_client()
    assert web.get("/api/status").status_code == 401
    assert web.get("/api/status", headers=auth(TOKEN)).status_code == 200
    assert web.get("/api/health").status_code in (200, 503)  # health stays open


def test_the_protected_results_export_needs_the_token(redis_server, redis_db):
    web = build_app(redis_server, redis_db(), api_token=TOKEN, protect_reads=True).test_client()
    run_id = web.post("/api/run", json={"x": 3, "y": 60}, headers=auth(TOKEN)).json["runId"]
    web.post("/api/stop", headers=auth(TOKEN))
    results = f"/api/runs/{run_id}/results?status=all"
    assert web.get(results).status_code == 401
    answer = web.get(results, headers=auth(TOKEN))
    assert answer.status_code == 200 and answer.get_data(as_text=True).count("\n") == 3


def test_protected_socketio_needs_the_token_in_process(protected_app):
    sio = protected_app.extensions["socketio"]
    assert not sio.test_client(protected_app).is_connected()
    for wrong in ({"token": "wrong"}, {"token": None}, "not a dict"):
        assert not sio.test_client(protected_app, auth=wrong).is_connected()
    client = sio.test_client(protected_app, auth={"token": TOKEN})
    try:
        assert client.is_connected()
        assert first_state(client)["status"] == "idle"
    finally:
        client.disconnect()
