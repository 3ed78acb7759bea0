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


def test_a_second_start_starts_a_second_run_and_the_first_keeps_running(idle_system):
    first = idle_system.post("/api/run", {"x": 1000, "y": 60})
    assert first.status_code == 201
    second = idle_system.post("/api/run", {"x": 5, "y": 6000})
    assert second.status_code == 201, second.text
    first_id, second_id = first.json()["runId"], second.json()["runId"]
    assert second_id != first_id
    assert idle_system.get("/api/status").json()["runId"] == second_id
    # the worker runs the second run's jobs while the first goes on at its own rate
    wait_for(
        lambda: idle_system.get(f"/api/runs/{second_id}").json()["status"] == "completed",
        20,
        "the second run to complete",
    )
    state = idle_system.get(f"/api/runs/{first_id}").json()
    assert state["status"] == "running" and state["xTotal"] == 1000
    assert idle_system.post("/api/stop").json()["runId"] == first_id  # the one active


def _active(system) -> dict[str, dict]:
    return {s["runId"]: s for s in system.get("/api/runs?active=1").json()["runs"]}


def test_two_active_runs_are_controlled_by_id_and_an_unnamed_stop_is_409(idle_system):
    first = idle_system.post("/api/run", {"x": 1000, "y": 6}).json()["runId"]
    second = idle_system.post("/api/run", {"x": 1000, "y": 6}).json()["runId"]
    stop = idle_system.post("/api/stop")
    assert stop.status_code == 409, stop.text
    assert stop.json()["runs"] == [second, first]
    assert {s["status"] for s in _active(idle_system).values()} == {"running"}

    paused = idle_system.post(f"/api/runs/{first}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert _active(idle_system)[second]["status"] == "running"
    changed = idle_system.put(f"/api/runs/{second}", {"y": 12})
    assert changed.status_code == 200 and changed.json()["yMinute"] == 12
    assert _active(idle_system)[first]["yMinute"] == 6
    resumed = idle_system.post(f"/api/runs/{first}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running"
    assert _active(idle_system)[second]["status"] == "running"

    stopped = idle_system.post(f"/api/runs/{second}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert list(_active(idle_system)) == [first]
    assert idle_system.post(f"/api/runs/{second}/stop").status_code == 409
    assert idle_system.post("/api/runs/0123456789ab/stop").status_code == 404
    assert idle_system.post("/api/stop").json()["runId"] == first


def test_bad_terms_of_a_start_are_400(idle_system):
    for body, error in [
        ({"x": 5, "y": 60, "deadline": 60}, "send y or deadline, not both"),
        ({"x": 5, "deadline": "2001-01-01T00:00:00Z"}, "deadline is in the past"),
        ({"x": 5, "y": 60, "weight": 0}, "weight must be a number above 0"),
        ({"x": 5, "y": 60, "maxInFlight": 0}, "maxInFlight must be a whole number"),
    ]:
        response = idle_system.post("/api/run", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"].startswith(error)
    assert _active(idle_system) == {}


def test_a_deadline_run_runs_its_jobs(idle_system):
    response = idle_system.post("/api/run", {"x": 5, "deadline": 3, "maxInFlight": 2})
    assert response.status_code == 201, response.text
    run_id = response.json()["runId"]
    assert response.json()["maxInFlight"] == 2 and "deadline" in response.json()
    wait_for(
        lambda: idle_system.get(f"/api/runs/{run_id}").json()["status"] == "completed",
        20,
        "the deadline run to complete",
    )


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
