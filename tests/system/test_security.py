"""Security of the real web process: cross-site requests (CSRF), against the shared system. (The
same tests against a web process that wants an API token, and secrets in answers:
tests/processes/test_security.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from optio.testing import System

EVIL = "http://evil.example"
#: The fields of the state that a refused request could change.
STABLE = ("runId", "running", "status", "xTotal", "yMinute")


@pytest.fixture(params=["no token"])
def target(idle_system) -> Iterator[tuple[System, dict]]:
    """(the shared system, the headers our own client sends to it: none) with a run in
    progress."""
    yield from running(idle_system, {})


def running(system: System, auth: dict) -> Iterator[tuple[System, dict]]:
    """Start a run on ``system``, hand (system, auth) over, stop the run."""
    started = system.post("/api/run", {"x": 100_000, "y": 60}, headers=auth)
    assert started.status_code == 201, started.text
    yield system, auth
    stopped = system.post("/api/stop", headers=auth)
    assert stopped.status_code in (200, 409), stopped.text


def stable(system: System) -> dict:
    state = system.get("/api/status").json()
    return {k: state[k] for k in STABLE}


def form_multipart() -> tuple[bytes, str]:
    boundary = "----optio-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n5\r\n--{boundary}--\r\n'
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


MULTIPART, MULTIPART_TYPE = form_multipart()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: What another web site can make a browser send, with no preflight unless noted.
CROSS_SITE = [
    ("empty form post to stop", "POST", "/api/stop", {"Origin": EVIL, **FORM}, b""),
    ("form post with a field", "POST", "/api/stop", {"Origin": EVIL, **FORM}, b"confirm=1"),
    (
        "text/plain JSON to start",
        "POST",
        "/api/run",
        {"Origin": EVIL, "Content-Type": "text/plain"},
        b'{"x": 5, "y": 6000}',
    ),
    (
        "text/plain to stop",
        "POST",
        "/api/stop",
        {"Origin": EVIL, "Content-Type": "text/plain"},
        b"",
    ),
    (
        "multipart to stop",
        "POST",
        "/api/stop",
        {"Origin": EVIL, "Content-Type": MULTIPART_TYPE},
        MULTIPART,
    ),
    ("no body, no type (fetch)", "POST", "/api/stop", {"Origin": EVIL}, b""),
    (
        "JSON rate change (preflighted)",
        "PUT",
        "/api/run",
        {"Origin": EVIL, "Content-Type": "application/json"},
        b'{"y": 6000}',
    ),
    ("Referer only", "POST", "/api/stop", {"Referer": EVIL + "/page.html", **FORM}, b""),
    ("Origin null (sandboxed frame)", "POST", "/api/stop", {"Origin": "null", **FORM}, b""),
    ("look-alike origin", "POST", "/api/stop", {"Origin": "http://127.0.0.1.evil.example"}, b""),
    ("DELETE on a route", "DELETE", "/api/run", {"Origin": EVIL}, b""),
    ("PATCH on a future route", "PATCH", "/api/runs/1", {"Origin": EVIL}, b""),
]


@pytest.mark.parametrize(
    "method, path, headers, body", [c[1:] for c in CROSS_SITE], ids=[c[0] for c in CROSS_SITE]
)
def test_state_changes_from_other_sites_are_403_and_change_nothing(
    target, method, path, headers, body
):
    system, auth = target
    before = stable(system)
    assert before["running"] is True
    response = requests.request(
        method, system.base + path, data=body, headers={**headers, **auth}, timeout=5
    )
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert "cross-site request refused" in error and "OPTIO_CORS_ORIGINS" in error
    assert stable(system) == before


def test_our_own_pages_and_listed_origins_still_change_state(target):
    system, auth = target
    port = system.port
    same = {"Origin": system.base, **auth}
    update = requests.put(system.base + "/api/run", json={"y": 120}, headers=same, timeout=5)
    assert update.status_code == 200, update.text
    listed = {"Origin": f"http://localhost:{port}", **auth}  # in OPTIO_CORS_ORIGINS
    update = requests.put(system.base + "/api/run", json={"y": 90}, headers=listed, timeout=5)
    assert update.status_code == 200, update.text
    referer = {"Referer": system.base + "/", **auth}
    stop = requests.post(system.base + "/api/stop", headers=referer, timeout=5)
    assert stop.status_code == 200, stop.text
    assert stable(system)["status"] == "stopped"


def test_curl_stops_a_run_with_no_origin_and_no_body(target):
    """`curl -X POST localhost:3000/api/stop`: no Origin, no Referer, no body, no Content-Type."""
    system, auth = target
    response = requests.post(system.base + "/api/stop", headers=auth, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stopped"


def test_a_body_must_be_json_on_every_route(target):
    system, auth = target
    before = stable(system)
    for method, path in [("POST", "/api/stop"), ("PATCH", "/api/runs/1"), ("DELETE", "/api/run")]:
        response = requests.request(
            method,
            system.base + path,
            data=b"x=1",
            headers={"Content-Type": "application/x-www-form-urlencoded", **auth},
            timeout=5,
        )
        assert response.status_code == 415, (method, path, response.text)
        assert "application/json" in response.json()["error"]
    assert stable(system) == before
