"""Security of the real web process: cross-site requests (CSRF) and secrets in answers."""

from __future__ import annotations

import pytest
import requests

from optio.testing import System, free_port

pytestmark = pytest.mark.slow

TOKEN = "csrf-test-token"
EVIL = "http://evil.example"
#: The fields of the state that a refused request could change.
STABLE = ("runId", "running", "status", "xTotal", "yMinute")


@pytest.fixture(scope="module")
def token_web(web_alone):
    """A web process that wants a token for changes (no worker: a run just stays running)."""
    return web_alone(5, OPTIO_API_TOKEN=TOKEN)


@pytest.fixture(params=["no token", "token"])
def target(request, idle_system) -> tuple[System, dict]:
    """(a running system, the headers our own client sends to it) with a run in progress."""
    if request.param == "no token":
        system, auth = idle_system, {}
    else:
        system, auth = request.getfixturevalue("token_web"), {"Authorization": f"Bearer {TOKEN}"}
        if system.get("/api/status").json()["running"]:
            system.post("/api/stop", headers=auth)
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


def test_health_does_not_show_a_redis_password_given_in_the_query(tmp_path):
    """redis-py honours ?password=; the 503 of /api/health (open to all) must not echo it."""
    secret = "hunter2-in-the-query"
    closed = free_port()  # nothing listens there: Redis "does not answer"
    with System(
        f"redis://127.0.0.1:{closed}/0?password={secret}&username=optio-user",
        tmp_path,
        OPTIO_API_TOKEN=TOKEN,
        OPTIO_PROTECT_READS="1",
    ) as system:
        system.start_web()
        response = system.get("/api/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and "does not answer" in body["error"]
        assert f"127.0.0.1:{closed}" in body["error"]  # still says where it looked
        assert secret not in response.text and "optio-user" not in response.text
        assert "password=***" in body["error"]
