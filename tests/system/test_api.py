"""The HTTP API of the real web process: a sample of the bad input tests/unit/test_api_validation.py
sends in-process, unknown routes, CORS and conflicts."""

from __future__ import annotations

import json

import pytest
import requests

from optio.testing import Watcher, wait_for
from tests.unit.test_api_validation import BAD_STARTS, JSON


def raw(system, method: str, path: str, data: bytes | str = b"", headers=None):
    return requests.request(method, system.base + path, data=data, headers=headers, timeout=5)


#: Cases that depend on the server in front of Flask (eventlet's parsing of bodies, headers and
#: sizes): proven against the real web process too.
REAL_SERVER_CASES = ["no content type", "not UTF-8", "deep nesting", "oversized body"]


@pytest.mark.parametrize(
    "body, headers, status",
    [c[1:] for c in BAD_STARTS if c[0] in REAL_SERVER_CASES],
    ids=REAL_SERVER_CASES,
)
def test_the_real_server_refuses_bad_bodies_the_same_way(idle_system, body, headers, status):
    before = idle_system.get("/api/status").json()
    response = raw(idle_system, "POST", "/api/run", body, headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and error and "Traceback" not in error
    assert idle_system.get("/api/status").json() == before


def test_the_real_server_answers_unknown_routes_with_json(idle_system):
    for method, path, status in [
        ("GET", "/nope/../../etc/passwd", 404),
        ("PATCH", "/api/run", 405),
    ]:
        response = raw(idle_system, method, path)
        assert response.status_code == status
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]


def test_nothing_running_gives_409_for_update_and_stop(idle_system):
    update = idle_system.put("/api/run", {"y": 10})
    assert update.status_code == 409 and "no run" in update.json()["error"]
    stop = idle_system.post("/api/stop")
    assert stop.status_code == 409 and "no run" in stop.json()["error"]


def test_a_second_start_while_running_is_409_and_keeps_the_run(idle_system):
    first = idle_system.post("/api/run", {"x": 1000, "y": 60})
    assert first.status_code == 201
    second = idle_system.post("/api/run", {"x": 5, "y": 6000})
    assert second.status_code == 409
    assert "already running" in second.json()["error"]
    state = idle_system.get("/api/status").json()
    assert state["runId"] == first.json()["runId"] and state["xTotal"] == 1000
    below = idle_system.put("/api/run", {"x": 0})
    assert below.status_code == 400
    assert idle_system.post("/api/stop").status_code == 200


def test_x_below_enqueued_is_a_clear_400(idle_system):
    assert idle_system.post("/api/run", {"x": 1000, "y": 6000}).status_code == 201
    wait_for(lambda: idle_system.get("/api/status").json()["enqueued"] >= 5, 10, "enqueued")
    response = idle_system.put("/api/run", {"x": 1})
    assert response.status_code == 400
    assert "already enqueued" in response.json()["error"]
    assert idle_system.get("/api/status").json()["xTotal"] == 1000
    idle_system.post("/api/stop")


class TestCors:
    def test_allowed_origin_is_echoed(self, idle_system):
        response = requests.get(
            idle_system.base + "/api/status", headers={"Origin": idle_system.base}, timeout=5
        )
        assert response.headers["Access-Control-Allow-Origin"] == idle_system.base

    def test_preflight_from_an_allowed_origin(self, idle_system):
        response = requests.options(
            idle_system.base + "/api/run",
            headers={
                "Origin": idle_system.base,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=5,
        )
        assert response.status_code == 200
        assert "POST" in response.headers["Access-Control-Allow-Methods"]

    def test_other_origins_get_no_cors_grant(self, idle_system):
        response = requests.get(
            idle_system.base + "/api/status", headers={"Origin": "http://evil.example"}, timeout=5
        )
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_socketio_refuses_other_origins(self, idle_system):
        import socketio

        with pytest.raises(socketio.exceptions.ConnectionError):
            Watcher(idle_system.base, origin="http://evil.example")

    @pytest.mark.parametrize("own", ["base", "listed"])
    def test_socketio_accepts_our_origin(self, idle_system, own):
        origin = idle_system.base if own == "base" else f"http://localhost:{idle_system.port}"
        with Watcher(idle_system.base, origin=origin) as watcher:
            assert watcher.client.connected
            wait_for(watcher.states, 5, "the state sent to a new client")
            assert watcher.states()[0] == idle_system.get("/api/status").json()


def test_json_error_bodies_are_json_objects(idle_system):
    response = raw(idle_system, "POST", "/api/run", b"{", JSON)
    assert json.loads(response.text) == {"error": response.json()["error"]}
