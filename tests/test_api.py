"""The HTTP API: bad input of every kind (in-process, through Flask's test client, and a
sample of it against the real web process), CORS and conflicts (real web process)."""

from __future__ import annotations

import json

import pytest
import requests

from optio.testing import Watcher, wait_for
from tests.apps import build_app

JSON = {"Content-Type": "application/json"}


def raw(system, method: str, path: str, data: bytes | str = b"", headers=None):
    return requests.request(method, system.base + path, data=data, headers=headers, timeout=5)


@pytest.fixture(scope="module")
def web(redis_server):
    """Flask's test client of an app built in this process (request validation only)."""
    return build_app(redis_server, 6).test_client()


BAD_STARTS = [
    ("empty body", b"", JSON, 400),
    ("malformed JSON", b'{"x": 1,', JSON, 400),
    ("not UTF-8", b'{"x": \xff}', JSON, 400),
    ("text/plain content type", b'{"x": 1, "y": 1}', {"Content-Type": "text/plain"}, 415),
    ("form content type", b"x=1&y=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("no content type", b'{"x": 1, "y": 1}', {}, 415),
    ("a list", b"[1, 2]", JSON, 400),
    ("a string", b'"hello"', JSON, 400),
    ("null", b"null", JSON, 400),
    ("missing x", b'{"y": 60}', JSON, 400),
    ("missing y", b'{"x": 10}', JSON, 400),
    ("x a string", b'{"x": "10", "y": 60}', JSON, 400),
    ("x a boolean", b'{"x": true, "y": 60}', JSON, 400),
    ("x a float", b'{"x": 10.5, "y": 60}', JSON, 400),
    ("x a whole float", b'{"x": 10.0, "y": 60}', JSON, 400),
    ("x zero", b'{"x": 0, "y": 60}', JSON, 400),
    ("x negative", b'{"x": -5, "y": 60}', JSON, 400),
    ("x null", b'{"x": null, "y": 60}', JSON, 400),
    ("x absurdly large", b'{"x": 1000000000000000000000000, "y": 60}', JSON, 400),
    ("x overflows to infinity", b'{"x": 1e400, "y": 60}', JSON, 400),
    ("x with 5000 digits", b'{"x": ' + b"9" * 5000 + b', "y": 60}', JSON, 400),
    ("x a list", b'{"x": [10], "y": 60}', JSON, 400),
    ("y a string", b'{"x": 10, "y": "60"}', JSON, 400),
    ("y a boolean", b'{"x": 10, "y": false}', JSON, 400),
    ("y zero", b'{"x": 10, "y": 0}', JSON, 400),
    ("y negative", b'{"x": 10, "y": -1}', JSON, 400),
    ("y NaN", b'{"x": 10, "y": NaN}', JSON, 400),
    ("y Infinity", b'{"x": 10, "y": Infinity}', JSON, 400),
    ("y -Infinity", b'{"x": 10, "y": -Infinity}', JSON, 400),
    ("y overflows to infinity", b'{"x": 10, "y": 1e999}', JSON, 400),
    ("y absurdly large", b'{"x": 10, "y": 1e300}', JSON, 400),
    ("y an object", b'{"x": 10, "y": {"v": 1}}', JSON, 400),
    ("unknown field", b'{"x": 10, "y": 60, "z": 1}', JSON, 400),
    ("deep nesting", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, 400),
    ("oversized body", b'{"x": 10, "y": 60, "pad": "' + b"a" * 100_000 + b'"}', JSON, 413),
]


@pytest.mark.parametrize(
    "body, headers, status", [c[1:] for c in BAD_STARTS], ids=[c[0] for c in BAD_STARTS]
)
def test_bad_start_bodies_get_a_clear_4xx_and_change_nothing(web, body, headers, status):
    before = web.get("/api/status").json
    response = web.post("/api/run", data=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json["error"]
    assert isinstance(error, str) and error and "Traceback" not in error
    assert web.get("/api/status").json == before


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


BAD_UPDATES = [
    ("empty object", b"{}", 400),
    ("x a string", b'{"x": "5"}', 400),
    ("y NaN", b'{"y": NaN}', 400),
    ("y zero", b'{"y": 0}', 400),
    ("unknown field", b'{"rate": 5}', 400),
    ("malformed", b"{", 400),
]


@pytest.mark.parametrize(
    "body, status", [c[1:] for c in BAD_UPDATES], ids=[c[0] for c in BAD_UPDATES]
)
def test_bad_updates_are_refused_before_anything_else(web, body, status):
    response = web.put("/api/run", data=body, headers=JSON)
    assert response.status_code == status, response.text
    assert response.json["error"]


OTHER_BAD = [
    ("unknown route", "GET", "/api/nope", 404),
    ("unknown top-level route", "GET", "/nope/../../etc/passwd", 404),
    ("GET on run", "GET", "/api/run", 405),
    ("DELETE on status", "DELETE", "/api/status", 405),
    ("PATCH on run", "PATCH", "/api/run", 405),
    ("GET on stop", "GET", "/api/stop", 405),
]


@pytest.mark.parametrize(
    "method, path, status", [c[1:] for c in OTHER_BAD], ids=[c[0] for c in OTHER_BAD]
)
def test_unknown_routes_and_methods_answer_json(web, method, path, status):
    response = web.open(path, method=method)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json["error"]


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


def test_stop_with_a_body_is_refused(web):
    response = web.post("/api/stop", data=b'{"now": true}', headers=JSON)
    assert response.status_code == 400


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


def test_a_405_says_which_methods_are_allowed(web):
    """RFC 9110: a 405 carries Allow (the error handler keeps the headers of HTTP errors)."""
    response = web.open("/api/run", method="TRACE")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"POST", "PUT"}
    assert response.json["error"].startswith("method TRACE is not allowed here")


@pytest.mark.parametrize("limit", ["²", "٣", " 5", "1_0", "+5"])
def test_a_limit_must_be_ascii_digits(web, limit):
    """ "²".isdigit() is true but int("²") raises: that was a 500."""
    response = web.get("/api/runs", query_string={"limit": limit})
    assert response.status_code == 400, response.text
    assert response.json["error"].startswith("limit must be a whole number from 1 to 100")
