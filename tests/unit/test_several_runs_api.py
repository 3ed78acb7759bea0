"""Several runs at once through the HTTP API, in-process (Flask's test client, the session's
private Redis; no worker or beat, so runs stay as started): starts beside active runs, the
controls that name a run, the 409 of the controls that name none, ``?active=1`` and the start's
terms (weight, maxInFlight, deadline). The same promises against the real processes:
tests/system/test_api.py (HTTP) and tests/processes/test_cli_commands.py (the CLI)."""

from __future__ import annotations

import pytest

from tests.unit.apps import build_app


@pytest.fixture(scope="module")
def app(redis_server, redis_db):
    return build_app(redis_server, redis_db(), max_y=6000)


@pytest.fixture
def web(app):
    client = app.test_client()
    yield client
    store = app.extensions["optio"].store
    for run_id in store.runs.active_run_ids():
        store.runs.stop_run(run_id)


def start(web, **body) -> str:
    response = web.post("/api/run", json={"x": 50, "y": 60, **body})
    assert response.status_code == 201, response.json
    return response.json["runId"]


def active(web) -> list[str]:
    response = web.get("/api/runs?active=1")
    assert response.status_code == 200, response.json
    assert response.json["next"] is None
    return [state["runId"] for state in response.json["runs"]]


def states(web) -> dict[str, dict]:
    return {state["runId"]: state for state in web.get("/api/runs?active=1").json["runs"]}


def test_a_second_start_runs_beside_the_first(web):
    first = start(web)
    second = web.post("/api/runs", json={"x": 5, "y": 600})
    assert second.status_code == 201 and second.json["xTotal"] == 5
    assert active(web) == [second.json["runId"], first]
    assert web.get("/api/status").json["runId"] == second.json["runId"]


def test_unnamed_controls_with_several_active_are_409_naming_them_and_change_nothing(web):
    first, second = start(web), start(web, y=120)
    before = states(web)
    for method, path, body in [
        ("POST", "/api/stop", None),
        ("POST", "/api/pause", None),
        ("POST", "/api/resume", None),
        ("PUT", "/api/run", {"y": 5}),
    ]:
        response = web.open(path, method=method, json=body)
        assert response.status_code == 409, (path, response.json)
        assert response.json["runs"] == [second, first], path
        assert "2 runs are active" in response.json["error"]
    after = states(web)
    for run_id in (first, second):
        assert after[run_id]["status"] == "running"
        assert after[run_id]["yMinute"] == before[run_id]["yMinute"]
        assert after[run_id]["seq"] == before[run_id]["seq"]


def test_unnamed_controls_with_one_active_work_as_before(web):
    run_id = start(web)
    assert web.put("/api/run", json={"y": 30}).json["yMinute"] == 30
    assert web.post("/api/pause").json["status"] == "paused"
    assert web.post("/api/resume").json["status"] == "running"
    stopped = web.post("/api/stop").json
    assert (stopped["runId"], stopped["status"]) == (run_id, "stopped")
    assert web.post("/api/stop").status_code == 409


def test_the_controls_that_name_a_run_leave_the_others_alone(web):
    first, second = start(web), start(web, y=120)
    paused = web.post(f"/api/runs/{first}/pause")
    assert (paused.status_code, paused.json["runId"], paused.json["status"]) == (
        200,
        first,
        "paused",
    )
    assert states(web)[second]["status"] == "running"
    assert web.post(f"/api/runs/{first}/pause").status_code == 409  # paused already
    assert web.post(f"/api/runs/{second}/resume").status_code == 409  # not paused
    changed = web.put(f"/api/runs/{second}", json={"x": 70, "y": 90})
    assert changed.status_code == 200 and changed.json["yMinute"] == 90
    assert changed.json["xTotal"] == 70
    assert states(web)[first]["yMinute"] == 60 and states(web)[first]["xTotal"] == 50
    assert web.post(f"/api/runs/{first}/resume").json["status"] == "running"
    stopped = web.post(f"/api/runs/{second}/stop")
    assert stopped.status_code == 200 and stopped.json["status"] == "stopped"
    assert active(web) == [first]
    assert web.post(f"/api/runs/{second}/stop").status_code == 409
    assert web.post(f"/api/runs/{second}/pause").status_code == 409
    assert web.put(f"/api/runs/{second}", json={"y": 5}).status_code == 409
    assert web.post("/api/stop").json["runId"] == first  # one active again: no name needed


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/api/runs/{}/stop"),
        ("POST", "/api/runs/{}/pause"),
        ("POST", "/api/runs/{}/resume"),
        ("PUT", "/api/runs/{}"),
    ],
)
@pytest.mark.parametrize("run_id", ["0123456789ab", "not-a-run-id"])
def test_the_controls_of_an_unknown_run_are_404(web, method, path, run_id):
    body = {"y": 5} if method == "PUT" else None
    response = web.open(path.format(run_id), method=method, json=body)
    assert response.status_code == 404, response.json
    assert response.json["error"].startswith("no run")


def test_the_named_controls_check_their_body(web):
    run_id = start(web)
    assert web.post(f"/api/runs/{run_id}/stop", json={"now": True}).status_code == 400
    assert web.put(f"/api/runs/{run_id}", json={}).status_code == 400
    assert web.put(f"/api/runs/{run_id}", json={"y": 0}).status_code == 400
    assert states(web)[run_id]["status"] == "running"


def test_a_start_takes_a_weight_and_max_in_flight(web):
    response = web.post("/api/run", json={"x": 5, "y": 60, "weight": 2.5, "maxInFlight": 3})
    assert response.status_code == 201, response.json
    assert (response.json["weight"], response.json["maxInFlight"]) == (2.5, 3)
    plain = web.post("/api/runs", json={"x": 5, "y": 60}).json
    assert (plain["weight"], plain["maxInFlight"]) == (1, 0)
    assert "deadline" not in plain


def test_a_deadline_in_seconds_or_iso_gives_a_deadline_run(app, web):
    now = app.extensions["optio"].store.runs.server_time_ms()
    response = web.post("/api/run", json={"x": 60, "deadline": 600})
    assert response.status_code == 201, response.json
    state = response.json
    assert now + 599_000 <= state["deadline"] <= now + 601_000 + 5_000
    assert state["yMinute"] == pytest.approx(6, rel=0.05)
    assert "onTrack" in state
    answer = web.put(f"/api/runs/{state['runId']}", json={"y": 5})
    assert answer.status_code == 409 and "deadline" in answer.json["error"]
    iso = web.post("/api/runs", json={"x": 10, "deadline": "2099-01-01T00:00:00+00:00"})
    assert iso.status_code == 201 and iso.json["deadline"] == 4_070_908_800_000


@pytest.mark.parametrize(
    "body, error",
    [
        ({"x": 5}, "missing field: y"),
        ({"x": 5, "y": 60, "deadline": 60}, "send y or deadline, not both"),
        ({"x": 5, "deadline": "2001-01-01T00:00:00Z"}, "deadline is in the past"),
        ({"x": 5, "deadline": -1}, "deadline in seconds from now must be a number above 0"),
        ({"x": 5, "deadline": "tomorrow"}, "deadline must be an ISO 8601 time"),
        ({"x": 6000, "deadline": 30}, "deadline too near: 6,000 jobs by then need 12,000"),
        ({"x": 5, "y": 60, "weight": 0}, "weight must be a number above 0"),
        ({"x": 5, "y": 60, "weight": 5000}, "weight must be a number above 0 and at most 1000"),
        ({"x": 5, "y": 60, "maxInFlight": 0}, "maxInFlight must be a whole number from 1"),
        ({"x": 5, "y": 60, "maxInFlight": "3"}, "maxInFlight must be a whole number from 1"),
    ],
)
@pytest.mark.parametrize("path", ["/api/run", "/api/runs"])
def test_bad_terms_of_a_start_are_400_and_start_nothing(web, path, body, error):
    response = web.post(path, json=body)
    assert response.status_code == 400, response.json
    assert response.json["error"].startswith(error), response.json["error"]
    assert active(web) == []


@pytest.mark.parametrize(
    "query, error",
    [
        ("y=60&deadline=60", "send y or deadline, not both"),
        ("deadline=2001-01-01T00:00:00Z", "deadline is in the past"),
        ("deadline=1", "deadline too near: 200 jobs by then need 12,"),
        ("y=60&weight=0", "weight must be a number above 0"),
        ("y=60&maxInFlight=x", "maxInFlight must be a whole number from 1"),
    ],
)
def test_bad_terms_of_an_upload_are_400_and_leave_nothing(app, web, query, error):
    items = b"".join(b"%d\n" % k for k in range(200))
    response = web.post(
        f"/api/runs?{query}", data=items, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 400, response.json
    assert response.json["error"].startswith(error), response.json["error"]
    assert active(web) == []
    assert app.extensions["optio"].store.client.keys("*:items") == []


def test_an_upload_and_an_items_body_take_the_terms(web):
    upload = web.post(
        "/api/runs?deadline=600&weight=3&maxInFlight=2",
        data=b'"a"\n"b"\n',
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert upload.status_code == 201, upload.json
    assert (upload.json["xTotal"], upload.json["weight"], upload.json["maxInFlight"]) == (2, 3, 2)
    assert "deadline" in upload.json
    body = web.post("/api/runs", json={"items": [1, 2, 3], "y": 60, "weight": 0.5})
    assert body.status_code == 201 and body.json["weight"] == 0.5
    assert active(web) == [body.json["runId"], upload.json["runId"]]


def test_the_active_runs_listing(web):
    assert active(web) == []
    first = start(web)
    second = start(web)
    web.post(f"/api/runs/{first}/pause")
    assert active(web) == [second, first]
    assert web.get("/api/runs?active=true").json["runs"][1]["status"] == "paused"
    web.post(f"/api/runs/{second}/stop")
    assert active(web) == [first]
    assert [run["runId"] for run in web.get("/api/runs?active=0").json["runs"]][:2] == [
        second,
        first,
    ]
    for query in ("active=1&limit=5", "active=1&before=0123456789ab", "active=maybe"):
        response = web.get(f"/api/runs?{query}")
        assert response.status_code == 400, query
        assert response.json["error"].startswith("active"), response.json
