"""The HTTP API's answers to bad input of every kind, in-process through Flask's test client
(a sample of them is proven against the real web process: tests/system/test_api.py)."""

from __future__ import annotations

import pytest

from tests.unit.apps import build_app

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def web(redis_server, redis_db):
    """Flask's test client of an app built in this process (request validation only)."""
    return build_app(redis_server, redis_db()).test_client()


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


def test_stop_with_a_body_is_refused(web):
    response = web.post("/api/stop", data=b'{"now": true}', headers=JSON)
    assert response.status_code == 400


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
